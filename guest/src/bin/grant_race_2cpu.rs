//! A grant map racing a pin of the same frame, from two domains on two CPUs
//! (runs with `grant_peer`, domain 2, the granter, on CPU 1; this test is
//! domain 1, the grantee, on CPU 0). They meet on the granter's mailbox
//! ([`keel_guest::mailbox`]); the frame is the granter's Z (zero, mapped
//! read-only in its own tables, granted writable here as reference 6).
//!
//! Then both loop at once (`RACE`) until each side has [`TARGET`] successes
//! and [`TARGET`] refusals, or for at most [`RACE_NS`] of system time: the
//! granter pins Z as an L1, reads its 512 entries (each must be zero) and
//! unpins it; this domain maps Z writable, writes a marker into one entry
//! (not present: bit 63 set, bit 0 clear, so that a pin would not be refused
//! for it; [`marker`]), reads all 512 back, writes zero again and unmaps. The
//! frame's type word decides between the two: a writable mapping needs Z
//! not to be a page table, a pin needs Z without writable references. Were
//! that decision not atomic (with the two requests on two CPUs at once), both
//! could succeed together, and the granter would see a marker in its pinned
//! table. What must hold:
//! - every map either succeeds (and its unmap too) or is refused
//!   (`GNTST_general_error`, Z pinned); every pin succeeds (and its unpin
//!   too) or is refused (-EINVAL, Z mapped writable); nothing else;
//! - no pinned Z holds a nonzero entry;
//! - the race happened: each side saw successes and refusals (a refusal means
//!   the other side held Z at that moment); else ERROR;
//! - afterwards Z is free again: the granter pins and unpins it, this domain
//!   maps and unmaps it, and both teardowns find every count back at zero
//!   (else the hypervisor powers off with status 3).
//!
//! Where the hypervisor makes each grant operation a stop-the-world
//! cross-CPU operation (`vmx/lend.rs`) the two never meet inside the
//! exchange, and this checks the outcome; where grant operations run beside
//! the other CPUs' guests, they meet in the frame table's
//! compare-and-exchange (`paging/mod.rs`, "Several CPUs").
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::grant_table::*;
use keel_guest::mailbox::{grant_cross as cmd, Mailbox};
use keel_guest::mmu::{free_va, grant_map, grant_unmap};
use keel_guest::prelude::*;
use keel_guest::{arch, events};

keel_guest::test! {
    title: "Grants across domains on 2 CPUs: a writable map races a pin of the same frame",
    category: Security,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

/// The granter: the companion domain.
const PEER: u16 = 2;
/// Yields to wait for the granter's mailbox and answers.
const WAIT: u32 = 200_000;
/// The reference of frame Z.
const Z: u32 = 6;
/// Each side's successes and refusals after which the race ends.
const TARGET: u64 = 32;
/// The longest the two sides race (system time), should one count stay
/// below [`TARGET`]: under Bochs [`TARGET`] comes in about a second; a
/// nested KVM takes milliseconds for each cross-CPU operation.
const RACE_NS: u64 = 10_000_000_000;

/// The marker written into entry `i` of Z while mapped: not present (bit 0
/// clear), so validation ignores it, but nonzero (bit 63 set).
const fn marker(i: u64) -> u64 {
    1 << 63 | 0xa5 << 1 | i << 12
}

/// Counts of one side of the race.
#[derive(Clone, Copy, Default)]
struct Counts {
    ok: u64,
    refused: u64,
    wrong: u64,
}

/// One map of Z at `va`, attempt `k`: mapped, the marker written into entry
/// `k % 512`, all 512 entries read (the marker there, zeros elsewhere: the
/// granter never writes Z, and the read keeps Z mapped about as long as the
/// granter keeps it pinned), zero written back, unmapped.
fn map_once(va: GuestVirt, k: u64, c: &mut Counts) {
    let h = match grant_map(PEER, Z, GNTMAP_HOST_MAP, va) {
        (GNTST_OKAY, h) => h,
        (GNTST_GENERAL_ERROR, _) => {
            c.refused += 1;
            return;
        }
        (st, _) => {
            c.wrong += 1;
            if c.wrong == 1 {
                failure!(
                    "map Z writable: status {st}, expected {GNTST_OKAY} or {GNTST_GENERAL_ERROR}"
                );
            }
            return;
        }
    };
    c.ok += 1;
    let i = k % 512;
    let word = |j: u64| GuestVirt::new(va.get() + 8 * j);
    let w = fault::write_u64(word(i), marker(i));
    let bad = (0..512).find_map(|j| {
        let want = if j == i { marker(i) } else { 0 };
        let got = fault::read_u64(word(j));
        (got != Ok(want)).then_some((j, got))
    });
    let z = fault::write_u64(word(i), 0);
    if w.is_err() || z.is_err() || bad.is_some() {
        c.wrong += 1;
        failure!(
            "map {}: Z through the writable mapping: marker in entry {i} {w:?}, zero {z:?}, first unexpected entry {bad:?}",
            c.ok
        );
    }
    let st = grant_unmap(h, va);
    if st != GNTST_OKAY {
        c.wrong += 1;
        failure!("map {}: unmap: status {st}", c.ok);
    }
}

/// This domain's side of the race, until both sides have [`TARGET`]
/// successes and refusals (the granter's progress in the mailbox) or
/// [`RACE_NS`] passed: its counts and how long it took (ns).
fn race(mb: &Mailbox, va: GuestVirt) -> (Counts, u64) {
    // Each map and unmap is a cross-CPU operation that needs the granter's
    // CPU's wake-up IPI exit, and the granter's pins need this CPU's: spin
    // with IF set and upcalls masked (docs/platforms.md,
    // `bochs-extint-masked-by-guest-if`).
    events::disable();
    arch::sti();
    let mut c = Counts::default();
    let start = events::now_ns();
    let mut k = 0u64;
    loop {
        let [pinned, pin_refused, ..] = mb.progress();
        let enough = [c.ok, c.refused, pinned, pin_refused]
            .iter()
            .all(|&n| n >= TARGET);
        let spent = events::now_ns().saturating_sub(start);
        if enough || spent >= RACE_NS {
            return (c, spent);
        }
        map_once(va, k, &mut c);
        k += 1;
    }
}

fn test_main() {
    // Meet: the mailbox is mapped once the granter has written its entry.
    let Some((mb, h_mbox, mva)) = Mailbox::map_granted(PEER, 0, WAIT) else {
        failure!("the granter's mailbox grant never appeared");
        return;
    };
    if !check!(mb.ready(), "the mailbox page holds the granter's facts") {
        return;
    }
    let mut seq = 0;
    let mut call = |c: u8| {
        seq += 1;
        let r = mb.call(seq, c, WAIT);
        check!(r.is_some(), "command {c} answered");
        r
    };

    let va = free_va();
    if call(cmd::RACE).is_none() {
        return;
    }
    let (c, spent) = race(&mb, va);
    let Some([pinned, pin_refused, nonzero, pin_wrong]) = call(cmd::STOP) else {
        return;
    };
    println!(
        "in {} ms: this domain mapped Z {} times and was refused {} times; the granter pinned Z {pinned} times and was refused {pin_refused} times",
        spent / 1_000_000,
        c.ok,
        c.refused
    );
    check_eq!(
        c.wrong,
        0,
        "maps or unmaps of Z with a result no rule allows"
    );
    check_eq!(
        pin_wrong,
        0,
        "pins or unpins of Z with a result no rule allows (the granter's output says which)"
    );
    check_eq!(
        nonzero,
        0,
        "nonzero entries the granter saw in Z while pinned: this domain held a writable mapping of a page table"
    );
    if c.ok == 0 || c.refused == 0 || pinned == 0 || pin_refused == 0 {
        error!(
            "the race did not happen in {} s: each side needs successes and refusals",
            spent / 1_000_000_000
        );
    }

    // Afterwards Z is free: the granter pins it, this domain maps it.
    let Some(r) = call(cmd::REPORT) else {
        return;
    };
    check_eq!(
        r[1] as u16,
        GTF_PERMIT_ACCESS,
        "entry 6's flags after the race"
    );
    check_eq!(r[2], 0, "the granter pins Z after the race");
    let (st, h) = grant_map(PEER, Z, GNTMAP_HOST_MAP, va);
    if check_eq!(st, GNTST_OKAY, "map Z writable after the race") {
        check_eq!(fault::read_u64(va), Ok(0), "Z's first entry");
        check_eq!(grant_unmap(h, va), GNTST_OKAY, "unmap Z");
    }
    call(cmd::EXIT);
    check_eq!(grant_unmap(h_mbox, mva), GNTST_OKAY, "unmap the mailbox");
    success();
}
