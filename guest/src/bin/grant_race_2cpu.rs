//! Grant maps racing every kind of type change of the same frame, from two
//! domains on two CPUs (runs with `grant_peer`, domain 2, the granter, on
//! CPU 1; this test is domain 1, the grantee, on CPU 0). They meet on the
//! granter's mailbox ([`keel_guest::mailbox`]); the frames are the
//! granter's Z (zero, mapped read-only in its own tables, granted writable
//! here as reference 6) and Y (a copy of the granter's L4 made at its start,
//! not pinned, read-only in its own tables, granted writable as reference
//! `cmd::GREF_Y`; the granter publishes which of Y's entries its L4 leaves
//! empty).
//!
//! Three rounds, one per kind of type change, each announced through the
//! mailbox, each until both sides have [`TARGET`] successes and [`TARGET`]
//! refusals, or for at most [`RACE_NS`] of system time. A round goes in
//! steps; in each step both sides go for the frame (free at the step's
//! start) and each keeps trying until it has had it once. This domain maps
//! the round's frame writable, writes a marker into one entry it may write
//! (not present: bit 63 set, bit 0 clear, so that validation would not
//! refuse it; [`marker`]), reads all 512 back, writes zero again and
//! unmaps. The granter:
//! 1. `cmd::RACE`: pins Z as an L1, reads its 512 entries (each must be
//!    zero) and unpins it;
//! 2. `cmd::RACE_HOOK`: hooks Z into a free slot of one of its own L2
//!    tables with `mmu_update` (a present entry: validation takes an L1 type
//!    reference on Z), reads Z's 512 entries (zero), and writes the slot back
//!    to zero (the type goes);
//! 3. `cmd::RACE_CR3`: pins Y as an L4, loads it with MOV to CR3 (which Keel
//!    allows only for a pinned, validated L4), unpins it (CR3 keeps the
//!    type), reads the entries of Y its L4 leaves empty (zero; only there
//!    does this domain write), and loads its original L4 again, which drops
//!    Y's last type reference.
//!
//! The frame's type word decides between the two sides: a writable mapping
//! needs the frame not to be a page table, a pin or a hook (a type
//! reference) needs it without writable references; from the pin of Y to the
//! switch back, this domain's maps of Y must be refused. Were that decision
//! not atomic (with the two requests on two CPUs at once), both could
//! succeed together, and the granter would see a marker in its typed table.
//!
//! How a step goes ([`race`]): both sides meet at a barrier (two step
//! counters in the mailbox), one of them waits the step's offset (spins),
//! and both make their first attempt on the free frame: the contest, which
//! one wins. The loser is refused, and goes on trying while the winner holds
//! the frame (refused through the winner's type change, check and undo:
//! the hammering) until it gets the frame in turn. So each step gives each
//! side a success and the loser refusals. The offset moves against each
//! contest's winner in strides that halve when the winner changes, so it
//! settles where each side wins about half the contests, which is where the
//! two requests' exchanges on the frame's type word come within a few
//! instructions of each other: what a hypervisor whose exchange is not atomic
//! fails on. Rounds, one kind at a time, so that both sides go for the same
//! frame in every step. The first version of this test raced free-running
//! loops (each side retrying back to back): under Bochs (deterministic, each
//! CPU a few instructions at a time) the phase of one side's retries against
//! the other's release locked where the exchanges did not meet, and its pin
//! round caught the racy exchange in none of four runs.
//!
//! What must hold, for each round:
//! - every map either succeeds (and its unmap too) or is refused
//!   (`GNTST_general_error`, the frame typed); every type change succeeds
//!   (and its undo too, and MOV to CR3 of the pinned Y) or is refused
//!   (-EINVAL, the frame mapped writable), changing nothing; nothing else;
//! - no typed frame holds a nonzero entry where this domain writes;
//! - the race happened: each side saw successes and refusals (a refusal
//!   means the other side held the frame at that moment); else ERROR;
//! - afterwards Z and Y are free again: the granter pins Z as an L1 and Y as
//!   an L4 and unpins them, this domain maps and unmaps both, and both
//!   teardowns find every count back at zero (else the hypervisor powers off
//!   with status 3).
//!
//! Where the hypervisor makes each grant operation a stop-the-world
//! cross-CPU operation (`vmx/lend.rs`) the two never meet inside the
//! exchange, and this checks the outcome; where grant operations run beside
//! the other CPUs' guests (today: `docs/architecture.md`, "A grant stops no
//! other CPU"), they meet in the frame table's compare-and-exchange
//! (`paging/mod.rs`, "Several CPUs").
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::Ordering::SeqCst;

use keel_guest::abi::grant_table::*;
use keel_guest::mailbox::{grant_cross as cmd, Mailbox};
use keel_guest::mmu::{free_va, grant_map, grant_unmap};
use keel_guest::prelude::*;
use keel_guest::rand::Rng;
use keel_guest::start::cmdline_value;
use keel_guest::{arch, events};

keel_guest::test! {
    title: "Grants across domains on 2 CPUs: a writable map races pin, mmu_update and MOV CR3 of the same frame",
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
/// Each side's successes and refusals after which a round ends.
const TARGET: u64 = 32;
/// The longest one round lasts (system time), should one count stay below
/// [`TARGET`]: under Bochs [`TARGET`] comes in about a second; a nested KVM
/// takes longer for each hypercall.
const RACE_NS: u64 = 10_000_000_000;

/// The marker written into entry `i` of the frame while mapped: not present
/// (bit 0 clear), so validation ignores it, but nonzero (bit 63 set).
const fn marker(i: u64) -> u64 {
    1 << 63 | 0xa5 << 1 | i << 12
}

/// One round of the race.
#[derive(Clone, Copy)]
struct Round {
    /// What the granter does, for the messages.
    what: &'static str,
    /// The command that starts the granter's side.
    cmd: u8,
    /// The frame's grant reference.
    gref: u32,
    /// The entries this domain may write (a marker in one at a time) and
    /// checks: `first .. first + count`. The others are only read.
    first: u64,
    count: u64,
}

/// Counts of one side of a round.
#[derive(Clone, Copy, Default)]
struct Counts {
    ok: u64,
    refused: u64,
    wrong: u64,
}

/// One map of the round's frame at `va`, attempt `k`: mapped, the marker
/// written into one of the entries this domain may write, all 512 entries
/// read (the marker there, zeros in the others it may write: the granter
/// never writes those; and the read keeps the frame mapped about as long as
/// the granter keeps it typed), zero written back, unmapped.
fn map_once(r: &Round, va: GuestVirt, k: u64, c: &mut Counts) -> Mapped {
    let h = match grant_map(PEER, r.gref, GNTMAP_HOST_MAP, va) {
        (GNTST_OKAY, h) => h,
        (GNTST_GENERAL_ERROR, _) => {
            c.refused += 1;
            return Mapped::Refused;
        }
        (st, _) => {
            c.wrong += 1;
            if c.wrong == 1 {
                failure!(
                    "{}: map writable: status {st}, expected {GNTST_OKAY} or {GNTST_GENERAL_ERROR}",
                    r.what
                );
            }
            return Mapped::Wrong;
        }
    };
    c.ok += 1;
    let mine = r.first..r.first + r.count;
    let i = r.first + k % r.count;
    let word = |j: u64| GuestVirt::new(va.get() + 8 * j);
    let w = fault::write_u64(word(i), marker(i));
    let bad = (0..512).find_map(|j| {
        let got = fault::read_u64(word(j));
        let want = if j == i { marker(i) } else { 0 };
        let bad = if mine.contains(&j) {
            got != Ok(want)
        } else {
            got.is_err()
        };
        bad.then_some((j, got))
    });
    let z = fault::write_u64(word(i), 0);
    if w.is_err() || z.is_err() || bad.is_some() {
        c.wrong += 1;
        failure!(
            "{}: map {}: the frame through the writable mapping: marker in entry {i} {w:?}, zero {z:?}, first unexpected entry {bad:?}",
            r.what,
            c.ok
        );
    }
    let st = grant_unmap(h, va);
    if st != GNTST_OKAY {
        c.wrong += 1;
        failure!("{}: map {}: unmap: status {st}", r.what, c.ok);
    }
    Mapped::Done
}

/// What one map attempt came to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mapped {
    /// Mapped (and written, read, unmapped: any fault in that is counted
    /// as wrong).
    Done,
    /// Refused (`GNTST_general_error`): the frame is typed.
    Refused,
    /// A status no rule allows.
    Wrong,
}

/// The contests of a round: who won each step's first attempts, and the
/// offset that decides when each side attempts ([`race`]).
#[derive(Clone, Copy, Default)]
struct Contests {
    /// Steps whose first map succeeded (this domain took the frame first).
    won: u64,
    /// Steps whose first map was refused.
    lost: u64,
    /// The offset (spins: positive, this domain waits; negative, the
    /// granter) at the round's end.
    offset: i64,
}

/// The offset's first change (spins); it halves each time the winner of a
/// step's contest changes, and doubles (up to [`STRIDE_MAX`]) after
/// [`STREAK`] contests won by the same side.
const STRIDE_START: i64 = 256;
/// The smallest change of the offset (spins).
const STRIDE_MIN: i64 = 2;
/// The largest.
const STRIDE_MAX: i64 = 8192;
/// Contests the same side wins before the offset moves faster.
const STREAK: u32 = 3;
/// Random spins added to each step's offset, either way.
const JITTER: u64 = 8;

/// This domain's side of a round, in steps, until both sides have
/// [`TARGET`] successes and refusals (the granter's progress in the
/// mailbox), a failure was seen (a nonzero entry the granter saw, a result
/// no rule allows on either side: the test has failed, and the frame's
/// counts may be wrong from then on), or [`RACE_NS`] passed: its counts,
/// the contests, and how long it took (ns).
///
/// A step starts when both sides have reached it (`cmd::STEP_GRANTEE`,
/// `cmd::STEP_GRANTER`); then one side waits the step's offset (spins: this
/// domain when positive, else the granter, told through
/// `cmd::DELAY_GRANTER`), and each side attempts its operation on the free
/// frame, again and again until it succeeds. The offset moves against the
/// winner of the first attempts (this domain waits longer after a won
/// contest, the granter after a lost one), plus [`JITTER`].
fn race(mb: &Mailbox, r: &Round, va: GuestVirt, rng: &mut Rng) -> (Counts, Contests, u64) {
    // Nothing in the race stops this CPU for another's today (grant
    // operations run on this CPU alone, the granter's MMU operations on
    // its), but a cross-CPU operation (`vmx/lend.rs`) would need this CPU's
    // wake-up IPI exit, and without the VMX-preemption timer the local APIC
    // timer's exit: spin with IF set and upcalls masked (docs/platforms.md,
    // `bochs-extint-masked-by-guest-if`).
    events::disable();
    arch::sti();
    let (mine, theirs, delay) = (
        mb.scratch(cmd::STEP_GRANTEE),
        mb.scratch(cmd::STEP_GRANTER),
        mb.scratch(cmd::DELAY_GRANTER),
    );
    let mut c = Counts::default();
    let mut k = Contests::default();
    let (mut stride, mut streak, mut last) = (STRIDE_START, 0, Mapped::Wrong);
    let start = events::now_ns();
    let spent = || events::now_ns().saturating_sub(start);
    let mut n = 0;
    let mut attempts = 0u64;
    loop {
        let [ok, refused, nonzero, wrong] = mb.progress();
        let enough = [c.ok, c.refused, ok, refused].iter().all(|&n| n >= TARGET);
        let failed = nonzero != 0 || wrong != 0 || c.wrong != 0;
        if enough || failed || spent() >= RACE_NS {
            return (c, k, spent());
        }
        n += 1;
        let offset = k.offset + rng.range(0, 2 * JITTER) as i64 - JITTER as i64;
        delay.store((-offset).max(0) as u64, SeqCst);
        mine.store(n, SeqCst);
        while theirs.load(SeqCst) < n {
            if spent() >= RACE_NS {
                return (c, k, spent());
            }
            core::hint::spin_loop();
        }
        for _ in 0..offset.max(0) {
            core::hint::spin_loop();
        }
        let first = map_once(r, va, attempts, &mut c);
        attempts += 1;
        let won = match first {
            Mapped::Done => 1,
            Mapped::Refused => -1,
            Mapped::Wrong => continue,
        };
        if won == 1 {
            k.won += 1;
        } else {
            k.lost += 1;
        }
        if first == last {
            streak += 1;
            if streak >= STREAK {
                stride = (stride * 2).min(STRIDE_MAX);
                streak = 0;
            }
        } else {
            stride = (stride / 2).max(STRIDE_MIN);
            streak = 0;
        }
        last = first;
        k.offset = (k.offset + won * stride).clamp(-4 * STRIDE_MAX, 4 * STRIDE_MAX);
        let mut now = first;
        while now == Mapped::Refused && spent() < RACE_NS {
            now = map_once(r, va, attempts, &mut c);
            attempts += 1;
        }
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
    let (y_first, y_count) = (mb.fact(cmd::FACT_Y_FREE), mb.fact(cmd::FACT_Y_FREE_COUNT));
    if !check!(
        y_count >= 1 && y_first + y_count <= 512,
        "the granter's empty L4 entries: {y_count} from entry {y_first}"
    ) {
        return;
    }
    let mut seq = 0;
    let mut call = |c: u8| {
        seq += 1;
        let r = mb.call(seq, c, WAIT);
        check!(r.is_some(), "command {c} answered");
        r
    };

    let rounds = [
        Round {
            what: "pin Z as an L1",
            cmd: cmd::RACE,
            gref: Z,
            first: 0,
            count: 512,
        },
        Round {
            what: "hook Z into an L2 (mmu_update)",
            cmd: cmd::RACE_HOOK,
            gref: Z,
            first: 0,
            count: 512,
        },
        Round {
            what: "pin Y as an L4, MOV CR3",
            cmd: cmd::RACE_CR3,
            gref: cmd::GREF_Y,
            first: y_first,
            count: y_count,
        },
    ];
    let seed = cmdline_value(cmdline(), "seed")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(keel_guest::tsc::rdtsc);
    let mut rng = Rng::new(seed);
    let va = free_va();
    for r in &rounds {
        // No step started before the granter's answer lets it look.
        mb.scratch(cmd::STEP_GRANTEE).store(0, SeqCst);
        if call(r.cmd).is_none() {
            return;
        }
        let (c, k, spent) = race(&mb, r, va, &mut rng);
        let Some([ok, refused, nonzero, wrong]) = call(cmd::STOP) else {
            return;
        };
        println!(
            "{}: in {} ms: this domain mapped the frame {} times and was refused {} times; the granter succeeded {ok} times and was refused {refused} times; of {} contests this domain won {}, the granter {} (offset {} spins at the end)",
            r.what,
            spent / 1_000_000,
            c.ok,
            c.refused,
            k.won + k.lost,
            k.won,
            k.lost,
            k.offset
        );
        let mine_ok = check_eq!(
            c.wrong,
            0,
            "{}: maps or unmaps with a result no rule allows",
            r.what
        );
        let theirs_ok = check_eq!(
            wrong,
            0,
            "{}: granter's steps with a result no rule allows (its output says which)",
            r.what
        );
        let typed_ok = check_eq!(
            nonzero,
            0,
            "{}: nonzero entries the granter saw in its typed frame: this domain held a writable mapping of a page table",
            r.what
        );
        // A round cut short by a failure has counts that say nothing more.
        let failed = !(mine_ok && theirs_ok && typed_ok);
        if !failed && (c.ok == 0 || c.refused == 0 || ok == 0 || refused == 0) {
            error!(
                "{}: the race did not happen in {} s: each side needs successes and refusals",
                r.what,
                spent / 1_000_000_000
            );
        }
    }

    // Afterwards Z and Y are free: the granter pins them, this domain maps
    // them.
    let Some(r) = call(cmd::REPORT) else {
        return;
    };
    check_eq!(
        r[1] as u16,
        GTF_PERMIT_ACCESS,
        "entry 6's flags after the race"
    );
    check_eq!(r[2], 0, "the granter pins Z as an L1 after the race");
    check_eq!(r[3], 0, "the granter pins Y as an L4 after the race");
    for (what, gref) in [("Z", Z), ("Y", cmd::GREF_Y)] {
        let (st, h) = grant_map(PEER, gref, GNTMAP_HOST_MAP, va);
        if check_eq!(st, GNTST_OKAY, "map {what} writable after the race") {
            let first = if gref == Z { 0 } else { y_first };
            check_eq!(
                fault::read_u64(GuestVirt::new(va.get() + 8 * first)),
                Ok(0),
                "{what}'s entry {first}"
            );
            check_eq!(grant_unmap(h, va), GNTST_OKAY, "unmap {what}");
        }
    }
    call(cmd::EXIT);
    check_eq!(grant_unmap(h_mbox, mva), GNTST_OKAY, "unmap the mailbox");
    success();
}
