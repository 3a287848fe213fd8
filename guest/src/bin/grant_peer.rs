//! The granting domain of `grant_cross` (its companion, domain 2; the
//! grantee's id is `peer=<id>` on the command line, default 1). It sets up a
//! one-frame grant table and grants the grantee:
//!
//! | ref | frame | access |
//! |---|---|---|
//! | 0 | the mailbox page ([`keel_guest::mailbox`]) | writable |
//! | 1 | frame A (a pattern) | writable |
//! | 2 | frame B (a pattern) | read-only |
//! | 3 | its own L4, a page table | writable (refused by the hypervisor at use) |
//! | 4 | frame A | writable, but to another domain |
//! | 6 | frame Z (zero, read-only in its own tables) | writable |
//!
//! Then it answers the grantee's commands: report entries 1 and 6 and try
//! to pin Z as an L1 (refused while Z is mapped by grant); rewrite entry 1
//! to name another frame while it is mapped; revoke entry 2 the Linux way
//! (a compare-and-exchange that fails while the grant is in use); and end
//! while its frames are still mapped. For `grant_race_2cpu` (on another CPU
//! than the grantee) it pins Z, checks it and unpins it in a loop while the
//! grantee maps Z writable and writes into it ([`race`]). Alone (no grantee
//! comes) it reports SKIP. With `mode=bench` (beside `bench_grant`, as a service domain) it
//! grants the same and then only blocks.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::Ordering::SeqCst;

use keel_guest::abi::grant_table::*;
use keel_guest::abi::guest::gnttab_setup_table;
use keel_guest::mailbox::{grant_cross as cmd, Mailbox};
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, PteFlags};
use keel_guest::prelude::*;
use keel_guest::{arch, events};

keel_guest::test! {
    title: "grant_cross's granting domain: grants frames, answers its commands, ends while mapped",
    category: Security,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

/// Yields to wait for the grantee's first command (a long time: it maps the
/// mailbox first), and between later ones.
const FIRST_WAIT: u32 = 20_000;
const WAIT: u32 = 200_000;

fn test_main() {
    let peer = keel_guest::start::cmdline_value(cmdline(), "peer")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(1);
    let mut list = [0u64; 1];
    if !check_eq!(gnttab_setup_table(&mut list), Ok(GNTST_OKAY), "setup_table") {
        return;
    }
    let t = take_frame();
    if !expect_ok(
        format_args!("map the grant-table frame"),
        set_leaf(
            t.va,
            entry(Mfn::new(list[0]), PteFlags::PRESENT | PteFlags::WRITABLE),
        ),
    ) {
        return;
    }
    let word = |gref: u64| keel_guest::arch::shared_u32(t.va.get() + 8 * gref);
    let set_entry = |gref: u64, flags: u16, domid: u16, frame: Mfn| {
        keel_guest::arch::shared_u32(t.va.get() + 8 * gref + 4).store(frame.get() as u32, SeqCst);
        word(gref).store(u32::from(flags) | u32::from(domid) << 16, SeqCst);
    };
    let (mbox, a, b, c, z) = (
        take_frame(),
        take_frame(),
        take_frame(),
        take_frame(),
        take_frame(),
    );
    for i in 0..512 {
        let _ = fault::write_u64(GuestVirt::new(a.va.get() + 8 * i), 0xa000 + i);
        let _ = fault::write_u64(GuestVirt::new(b.va.get() + 8 * i), 0xb000 + i);
        let _ = fault::write_u64(GuestVirt::new(c.va.get() + 8 * i), 0xc000 + i);
    }
    if !expect_ok(format_args!("Z read-only"), make_readonly(z.va)) {
        return;
    }
    let mb = Mailbox::at(mbox.va.get());
    mb.publish(&[a.mfn.get(), b.mfn.get(), z.mfn.get(), c.mfn.get()]);
    set_entry(1, GTF_PERMIT_ACCESS, peer, a.mfn);
    set_entry(2, GTF_PERMIT_ACCESS | GTF_READONLY, peer, b.mfn);
    set_entry(3, GTF_PERMIT_ACCESS, peer, cr3_mfn());
    set_entry(4, GTF_PERMIT_ACCESS, peer.wrapping_add(2), a.mfn);
    set_entry(6, GTF_PERMIT_ACCESS, peer, z.mfn);
    // The mailbox last: the grantee's map of it succeeds only now.
    set_entry(0, GTF_PERMIT_ACCESS, peer, mbox.mfn);

    if keel_guest::start::cmdline_value(cmdline(), "mode") == Some("bench") {
        // The granting domain of `bench_grant` (a service domain): the
        // grants stay, and it blocks (no event ever comes) until it is
        // destroyed, so that it takes no time from the measurements.
        loop {
            let _ = keel_guest::abi::guest::sched_block();
        }
    }
    let mut last = 0;
    let mut wait = FIRST_WAIT;
    loop {
        let Some((seq, c_)) = mb.next(last, wait) else {
            if last == 0 {
                skip!("no grantee mapped the mailbox (run with grant_cross)");
            } else {
                failure!("the grantee stopped after command {last}");
            }
            return;
        };
        last = seq;
        wait = WAIT;
        match c_ {
            cmd::REPORT => {
                let pin = match pin(1, z.mfn) {
                    Ok(()) => {
                        let _ = unpin(z.mfn);
                        0
                    }
                    Err(e) => e.as_return() as u64,
                };
                let f1 = u64::from(word(1).load(SeqCst) as u16);
                let f6 = u64::from(word(6).load(SeqCst) as u16);
                mb.answer(seq, [f1, f6, pin, 0]);
            }
            cmd::REWRITE_1 => {
                set_entry(1, GTF_PERMIT_ACCESS, peer, c.mfn);
                mb.answer(seq, [0; 4]);
            }
            cmd::REVOKE_2 => {
                let granted = u32::from(GTF_PERMIT_ACCESS | GTF_READONLY) | u32::from(peer) << 16;
                let ok = word(2).compare_exchange(granted, 0, SeqCst, SeqCst).is_ok();
                mb.answer(seq, [u64::from(ok), 0, 0, 0]);
            }
            cmd::RACE => {
                mb.answer(seq, [0; 4]);
                let Some(stop) = race(&mb, &z, seq) else {
                    return;
                };
                last = stop;
            }
            cmd::EXIT => {
                mb.answer(seq, [0; 4]);
                // Ends with frames A, Z and the mailbox still mapped by the
                // grantee: they outlive this domain.
                success();
                return;
            }
            other => {
                failure!("unknown command {other}");
                return;
            }
        }
    }
}

/// `cmd::RACE` (command number `seq`, answered): pin Z as an L1, read its 512
/// entries through this domain's read-only mapping, unpin it, until the
/// grantee posts its next command, which must be `cmd::STOP`; answered with
/// the counts. A pin must be refused (-EINVAL) while the grantee holds Z
/// mapped writable, and a pinned Z must hold only zeros: the grantee writes a
/// marker into Z only while its map succeeded, so a marker seen here means
/// both succeeded at once (a writable mapping of a page table). The number
/// of the `STOP` command, or `None` after a FAILURE.
fn race(mb: &Mailbox, z: &Frame, seq: u32) -> Option<u32> {
    // The grantee's maps and unmaps are cross-CPU operations that need this
    // CPU's wake-up IPI exit: spin with IF set and upcalls masked
    // (docs/platforms.md, `bochs-extint-masked-by-guest-if`).
    events::disable();
    arch::sti();
    let (mut pinned, mut refused, mut nonzero, mut wrong) = (0u64, 0u64, 0u64, 0u64);
    let stop = loop {
        if let Some(c) = mb.peek(seq) {
            break c;
        }
        match pin(1, z.mfn) {
            Ok(()) => {
                pinned += 1;
                for i in 0..512 {
                    let v = arch::shared_u64(z.va.get() + 8 * i).load(SeqCst);
                    if v != 0 {
                        nonzero += 1;
                        if nonzero == 1 {
                            failure!("entry {i} of Z is {v:#x} while Z is pinned as an L1 (pin {pinned}): the grantee wrote into a page table of this domain's");
                        }
                    }
                }
                if let Err(e) = unpin(z.mfn) {
                    wrong += 1;
                    if wrong == 1 {
                        failure!("unpinning Z after pin {pinned}: {e}");
                    }
                }
            }
            Err(Errno::EINVAL) => refused += 1,
            Err(e) => {
                wrong += 1;
                if wrong == 1 {
                    failure!("pinning Z: {e}, expected success or -EINVAL");
                }
            }
        }
        mb.report_progress([pinned, refused, nonzero, wrong]);
    };
    println!("pinned Z {pinned} times, refused {refused} times; {nonzero} nonzero entries seen pinned, {wrong} results no rule allows");
    match stop {
        (s, cmd::STOP) => {
            mb.answer(s, [pinned, refused, nonzero, wrong]);
            Some(s)
        }
        (_, other) => {
            failure!("command {other} during the race, expected STOP");
            None
        }
    }
}
