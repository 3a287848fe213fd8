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
//! | 7 | frame Y (a copy of its L4, read-only in its own tables) | writable |
//!
//! Then it answers the grantee's commands: report entries 1 and 6 and try
//! to pin Z as an L1 and Y as an L4 (refused while mapped by grant); rewrite
//! entry 1 to name another frame while it is mapped; revoke entry 2 the
//! Linux way (a compare-and-exchange that fails while the grant is in use);
//! and end while its frames are still mapped. For `grant_race_2cpu` (on
//! another CPU than the grantee) it makes Z or Y a page table, checks it and
//! undoes that in a loop (in steps the grantee starts) while the grantee
//! maps the frame writable and writes into it ([`race`]): one race per kind
//! of type change (a pin of Z as an L1, an `mmu_update` hooking Z into one
//! of its L2 tables, a pin of Y as an L4 that MOV to CR3 then loads). Alone
//! (no grantee comes) it reports SKIP. With `mode=bench` (beside `bench_grant`, as a service domain) it
//! grants the same and then only blocks.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::Ordering::SeqCst;

use keel_guest::abi::grant_table::*;
use keel_guest::abi::guest::gnttab_setup_table;
use keel_guest::fault::Cr;
use keel_guest::mailbox::{grant_cross as cmd, Mailbox};
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, read_entry, Pte, PteFlags};
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
    let Some(frames) = RaceFrames::new(z) else {
        return;
    };
    let y = frames.y;
    let mb = Mailbox::at(mbox.va.get());
    mb.publish(&[
        a.mfn.get(),
        b.mfn.get(),
        z.mfn.get(),
        c.mfn.get(),
        y.mfn.get(),
        frames.y_free.start as u64,
        frames.y_free.len() as u64,
    ]);
    set_entry(1, GTF_PERMIT_ACCESS, peer, a.mfn);
    set_entry(2, GTF_PERMIT_ACCESS | GTF_READONLY, peer, b.mfn);
    set_entry(3, GTF_PERMIT_ACCESS, peer, cr3_mfn());
    set_entry(4, GTF_PERMIT_ACCESS, peer.wrapping_add(2), a.mfn);
    set_entry(6, GTF_PERMIT_ACCESS, peer, z.mfn);
    set_entry(cmd::GREF_Y.into(), GTF_PERMIT_ACCESS, peer, y.mfn);
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
                let pin_once = |level, mfn| match pin(level, mfn) {
                    Ok(()) => {
                        let _ = unpin(mfn);
                        0
                    }
                    Err(e) => e.as_return() as u64,
                };
                let f1 = u64::from(word(1).load(SeqCst) as u16);
                let f6 = u64::from(word(6).load(SeqCst) as u16);
                mb.answer(seq, [f1, f6, pin_once(1, z.mfn), pin_once(4, y.mfn)]);
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
            cmd::RACE | cmd::RACE_HOOK | cmd::RACE_CR3 => {
                // A new race: no step started, no progress, before the
                // answer lets the grantee look.
                mb.scratch(cmd::STEP_GRANTER).store(0, SeqCst);
                mb.report_progress([0; 4]);
                mb.answer(seq, [0; 4]);
                let kind = match c_ {
                    cmd::RACE => Kind::Pin,
                    cmd::RACE_HOOK => Kind::Hook,
                    _ => Kind::Cr3,
                };
                let Some(stop) = race(&mb, &frames, kind, seq) else {
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

/// A type-changing operation the granter races against the grantee's
/// writable maps (`cmd::RACE`, `cmd::RACE_HOOK`, `cmd::RACE_CR3`).
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Pin Z as an L1, check it, unpin it.
    Pin,
    /// Hook Z into a free slot of an L2 table of this domain's with
    /// `mmu_update` (validation takes an L1 type reference on Z), check it,
    /// write the slot back to zero (the type goes).
    Hook,
    /// Pin Y as an L4, MOV it to CR3, unpin it (CR3 keeps the type), check
    /// its unused entries, MOV the original L4 back to CR3 (the type goes).
    Cr3,
}

impl Kind {
    /// What one success is, for the messages.
    fn what(self) -> &'static str {
        match self {
            Kind::Pin => "pin of Z as an L1",
            Kind::Hook => "hook of Z into an L2",
            Kind::Cr3 => "pin of Y as an L4",
        }
    }
}

/// The frames the races use: Z (granted as reference 6), Y (a copy of the
/// L4, granted as `cmd::GREF_Y`) with the entries of it this domain's L4
/// does not use, the free L2 slot for [`Kind::Hook`], and the L4 to go
/// back to.
struct RaceFrames {
    z: Frame,
    y: Frame,
    y_free: core::ops::Range<usize>,
    hook_l2: Mfn,
    hook_slot: usize,
    base: Mfn,
}

impl RaceFrames {
    /// Y made (a copy of the current L4, not pinned, read-only here), the
    /// longest run of empty entries in it, and a free slot of the L2 table
    /// that maps Z. `None` after a failure.
    fn new(z: Frame) -> Option<Self> {
        let base = cr3_mfn();
        let y = copy_of_l4();
        let (mut y_free, mut run) = (0..0, 0..0);
        for i in 0..512 {
            if read_entry(y.mfn, i) == Ok(Pte::EMPTY) {
                run = if run.is_empty() {
                    i..i + 1
                } else {
                    run.start..i + 1
                };
                if run.len() > y_free.len() {
                    y_free = run.clone();
                }
            } else {
                run = 0..0;
            }
        }
        if y_free.is_empty() {
            failure!("no empty entry in this domain's L4");
            return None;
        }
        let mut t = base;
        for level in [4u32, 3] {
            match read_entry(t, z.va.table_index(level)) {
                Ok(e) if e.is_present() => t = e.frame(),
                other => {
                    failure!("no L{level} entry on the way to Z: {other:?}");
                    return None;
                }
            }
        }
        let Some(hook_slot) = (0..512).find(|&i| read_entry(t, i) == Ok(Pte::EMPTY)) else {
            failure!("no free slot in the L2 table that maps Z");
            return None;
        };
        Some(Self {
            z,
            y,
            y_free,
            hook_l2: t,
            hook_slot,
            base,
        })
    }
}

/// The counts of a race, as `cmd::STOP` answers them.
#[derive(Clone, Copy, Default)]
struct Tally {
    ok: u64,
    refused: u64,
    nonzero: u64,
    wrong: u64,
}

impl Tally {
    fn words(&self) -> [u64; 4] {
        [self.ok, self.refused, self.nonzero, self.wrong]
    }

    /// A result no rule allows: counted, the first one reported.
    fn wrong(&mut self, what: core::fmt::Arguments<'_>) {
        self.wrong += 1;
        if self.wrong == 1 {
            failure!("{what}");
        }
    }

    /// Entries `range` of `f` (typed as a page table now) must be zero: the
    /// grantee writes into them only while its writable map succeeded.
    fn check_zero(&mut self, f: &Frame, range: core::ops::Range<usize>, kind: Kind) {
        for i in range {
            let v = arch::shared_u64(f.va.get() + 8 * i as u64).load(SeqCst);
            if v != 0 {
                self.nonzero += 1;
                if self.nonzero == 1 {
                    failure!(
                        "entry {i} of the frame is {v:#x} after {} {}: the grantee wrote into a page table of this domain's",
                        kind.what(),
                        self.ok
                    );
                }
            }
        }
    }
}

/// MOV to CR3 of the L4 `m`.
fn mov_cr3(m: Mfn) -> Result<(), Fault> {
    fault::write_cr(Cr::Cr3, m.get() << 12)
}

/// What one attempt of a race came to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// The type change succeeded (and was checked and undone).
    Done,
    /// Refused (-EINVAL): the grantee held the frame mapped writable.
    Refused,
    /// A result no rule allows (counted and reported).
    Wrong,
}

/// One attempt of a race of `kind`: the type change, the check while typed,
/// the undo; or the refusal (-EINVAL, the grantee holds the frame mapped
/// writable), which must change nothing.
fn attempt(r: &RaceFrames, kind: Kind, t: &mut Tally) -> Attempt {
    let done = match kind {
        Kind::Pin => pin(1, r.z.mfn),
        Kind::Hook => update(
            slot(r.hook_l2, r.hook_slot),
            entry(r.z.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
        ),
        Kind::Cr3 => pin(4, r.y.mfn),
    };
    match done {
        Ok(()) => t.ok += 1,
        Err(Errno::EINVAL) => {
            t.refused += 1;
            if let Kind::Hook = kind {
                let e = read_entry(r.hook_l2, r.hook_slot);
                if e != Ok(Pte::EMPTY) {
                    t.wrong(format_args!(
                        "the L2 slot after a refused hook of Z: {e:?}, expected empty"
                    ));
                    return Attempt::Wrong;
                }
            }
            return Attempt::Refused;
        }
        Err(e) => {
            t.wrong(format_args!(
                "{}: {e}, expected success or -EINVAL",
                kind.what()
            ));
            return Attempt::Wrong;
        }
    }
    let n = t.ok;
    let before = t.wrong;
    match kind {
        Kind::Pin => {
            t.check_zero(&r.z, 0..512, kind);
            if let Err(e) = unpin(r.z.mfn) {
                t.wrong(format_args!("unpinning Z after pin {n}: {e}"));
            }
        }
        Kind::Hook => {
            t.check_zero(&r.z, 0..512, kind);
            if let Err(e) = update(slot(r.hook_l2, r.hook_slot), Pte::EMPTY) {
                t.wrong(format_args!("unhooking Z after hook {n}: {e}"));
            }
        }
        Kind::Cr3 => {
            if let Err(f) = mov_cr3(r.y.mfn) {
                t.wrong(format_args!("MOV CR3 of Y after pin {n}: {f:?}"));
                let _ = unpin(r.y.mfn);
                return Attempt::Wrong;
            }
            if let Err(e) = unpin(r.y.mfn) {
                t.wrong(format_args!("unpinning Y (CR3) after pin {n}: {e}"));
            }
            t.check_zero(&r.y, r.y_free.clone(), kind);
            if let Err(f) = mov_cr3(r.base) {
                t.wrong(format_args!(
                    "MOV CR3 back to the original L4 after pin {n}: {f:?}"
                ));
            }
        }
    }
    if t.wrong == before {
        Attempt::Done
    } else {
        Attempt::Wrong
    }
}

/// A race of `kind` (command number `seq`, answered), in steps the grantee
/// starts (`cmd::STEP_GRANTEE`, `cmd::STEP_GRANTER`: both must have started
/// a step before either attempts anything in it): wait `cmd::DELAY_GRANTER`
/// spins, then [`attempt`] again and again until one succeeds (the grantee
/// holds the frame meanwhile, or has it already given back), until the
/// grantee posts its next command, which must be `cmd::STOP`; answered with
/// the counts. The type change must be refused (-EINVAL) while the grantee
/// holds the frame mapped writable, and a typed frame must hold only zeros
/// where the grantee writes: it writes its marker only while its map
/// succeeded, so a marker seen here means both succeeded at once (a
/// writable mapping of a page table). The number of the `STOP` command, or
/// `None` after a FAILURE.
fn race(mb: &Mailbox, r: &RaceFrames, kind: Kind, seq: u32) -> Option<u32> {
    // Nothing in the race stops this CPU for another's today (grant
    // operations run on the grantee's CPU alone), but a cross-CPU operation
    // (`vmx/lend.rs`) would need this CPU's wake-up IPI exit, and without
    // the VMX-preemption timer the local APIC timer's exit: spin with IF set
    // and upcalls masked (docs/platforms.md,
    // `bochs-extint-masked-by-guest-if`).
    events::disable();
    arch::sti();
    let mut t = Tally::default();
    let (mine, theirs) = (mb.scratch(cmd::STEP_GRANTER), mb.scratch(cmd::STEP_GRANTEE));
    let mut n = 0;
    let stop = 'race: loop {
        n += 1;
        mine.store(n, SeqCst);
        while theirs.load(SeqCst) < n {
            if let Some(c) = mb.peek(seq) {
                break 'race c;
            }
            core::hint::spin_loop();
        }
        for _ in 0..mb.scratch(cmd::DELAY_GRANTER).load(SeqCst) {
            core::hint::spin_loop();
        }
        while attempt(r, kind, &mut t) == Attempt::Refused {
            mb.report_progress(t.words());
            if let Some(c) = mb.peek(seq) {
                break 'race c;
            }
        }
        mb.report_progress(t.words());
    };
    println!(
        "{}: {} successes, {} refusals; {} nonzero entries seen typed, {} results no rule allows",
        kind.what(),
        t.ok,
        t.refused,
        t.nonzero,
        t.wrong
    );
    match stop {
        (s, cmd::STOP) => {
            mb.answer(s, t.words());
            Some(s)
        }
        (_, other) => {
            failure!("command {other} during the race, expected STOP");
            None
        }
    }
}
