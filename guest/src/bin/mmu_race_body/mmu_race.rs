//! The body of `mmu_race` and `mmu_race_spread` (ABI 1.2 preview): two vCPUs
//! of one domain racing MMU operations, on the CPUs the test's
//! `keel.vcpu_cpus=` places them (the runner's `TEST_DOMAIN_WORDS`).
//!
//! vCPU 0 pins and unpins a tree of page tables too large for one exit, again
//! and again, while vCPU 1 keeps changing entries of a table of its own
//! (`mmu_update`), pinning and unpinning it, and loading the current L4 again
//! (`MMUEXT_NEW_BASEPTR`).
//!
//! What must hold:
//! - every request from either vCPU answers 0 or the error it documents, and
//!   never another vCPU's result;
//! - vCPU 0's pins finish: a validation stopped by the end of vCPU 0's time
//!   slice is not undone for good by vCPU 1's requests (the domain has one
//!   validation job; were each of vCPU 1's requests to abandon it, a tree
//!   larger than one slice of work would never get pinned: a livelock vCPU 1
//!   reports when vCPU 0's pin takes [`PATIENCE_NS`]);
//! - at the end, with everything unpinned, the frames are ordinary memory
//!   again (each can be made writable), and the domain's teardown finds every
//!   count back at zero (`keel: domain 1: torn down, every count back to zero`:
//!   a status 3 power-off otherwise).
//!
//! On one CPU (`mmu_race`) the two vCPUs interleave at the end of each slice
//! and at every stopped (preempted) hypercall; with vCPU 1 on another CPU
//! (`mmu_race_spread`, [`run_spread`]) the same program races them for real,
//! once vCPU 1 is seen running while vCPU 0 runs ([`smp::Alongside`]; SKIP
//! if it is not).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use keel_guest::abi::mmu::MMUEXT_NEW_BASEPTR;
use keel_guest::events;
use keel_guest::mmu::{self, entry, fill, Frame};
use keel_guest::pagetable::{cr3_mfn, PteFlags};
use keel_guest::prelude::*;
use keel_guest::smp;

/// L1 tables in vCPU 0's tree: pinning it validates about 512 * 33 entries,
/// many slices' worth of work under Bochs.
const L1S: u64 = 32;
/// How many times vCPU 0 pins and unpins the tree at least; it goes on, up
/// to [`MAX_ROUNDS`], until one of vCPU 1's requests came while a pin was
/// part way (the race this test is about). With vCPU 1 on another CPU,
/// each of its requests stops vCPU 0's CPU, which lends at its own exits
/// and at most once in the hypervisor's `lend::GUEST_TICKS`: on a CPU
/// without the VMX-preemption timer (`core2_penryn_t9600`) vCPU 1 made 3
/// or 4 requests in 3 rounds, and whether one fell inside a pin moved with
/// a few instructions more or less on either path.
const ROUNDS: u32 = 3;
const MAX_ROUNDS: u32 = 30;
/// How long one pin or unpin of vCPU 0 may take before vCPU 1 calls it a
/// livelock (system time): far more than the work takes alone.
const PATIENCE_NS: u64 = 20_000_000_000;
/// How long vCPU 0 waits for vCPU 1 to start and to stop.
const START_NS: u64 = 5_000_000_000;

/// vCPU 0's phase: 0 while it sets up, `2k + 1` while its k-th pin or unpin
/// runs, [`STOP`] when it is done.
static PHASE: AtomicU32 = AtomicU32::new(0);
const STOP: u32 = u32::MAX;
/// When the current phase began (system time).
static PHASE_AT: AtomicU64 = AtomicU64::new(0);
/// vCPU 1's requests, and those answered with an error it does not document.
static OPS: AtomicU64 = AtomicU64::new(0);
static BAD: AtomicU64 = AtomicU64::new(0);
/// vCPU 1 has left its loop.
static DONE: AtomicU32 = AtomicU32::new(0);
/// vCPU 1's count while vCPU 0 probes whether the two run at once.
static ALONGSIDE: smp::Alongside = smp::Alongside::new();
/// vCPU 1's table and the data frame its entries map.
static TABLE: AtomicU64 = AtomicU64::new(0);
static DATA: AtomicU64 = AtomicU64::new(0);

fn expect(what: &str, r: Result<(), Errno>, allowed: &[Errno]) {
    OPS.fetch_add(1, SeqCst);
    if let Err(e) = r {
        if !allowed.contains(&e) {
            BAD.fetch_add(1, SeqCst);
            failure!("vCPU 1: {what}: {e}");
        }
    }
}

/// vCPU 1: MMU requests in a loop until vCPU 0 is done, watching that vCPU
/// 0's current operation keeps finishing.
fn racer(_: u32) {
    let table = Mfn::new(TABLE.load(SeqCst));
    let data = Mfn::new(DATA.load(SeqCst));
    let f = Frame {
        pfn: Pfn::new(0),
        mfn: table,
        va: GuestVirt::new(0),
    };
    let mut k = 0usize;
    loop {
        let phase = PHASE.load(SeqCst);
        if phase == STOP {
            break;
        }
        if phase != 0 && events::now_ns() > PHASE_AT.load(SeqCst) + PATIENCE_NS {
            failure!(
                "vCPU 0's operation {phase} has not finished after {} s while vCPU 1 made MMU requests: a livelock",
                PATIENCE_NS / 1_000_000_000
            );
            keel_guest::report::finish();
        }
        let i = k % 512;
        // An entry of a table that is pinned (validated update) or not
        // (ordinary memory, mapped read-only): both are allowed.
        let val = if k.is_multiple_of(2) {
            entry(data, PteFlags::PRESENT)
        } else {
            keel_guest::pagetable::Pte::EMPTY
        };
        expect("mmu_update", fill(&f, i, val), &[]);
        match k % 8 {
            3 => expect("pin L1", mmu::pin(1, table), &[Errno::EINVAL]),
            6 => expect("unpin", mmu::unpin(table), &[Errno::EINVAL]),
            7 => expect(
                "NEW_BASEPTR to the current L4",
                mmu::ext(MMUEXT_NEW_BASEPTR, cr3_mfn()),
                &[],
            ),
            _ => {}
        }
        k += 1;
    }
    let _ = mmu::unpin(table);
    DONE.store(1, SeqCst);
}

/// `mmu_race`: the two vCPUs where the hypervisor puts them.
#[allow(dead_code)]
pub fn run() {
    run_placed(false);
}

/// `mmu_race_spread`: vCPU 1 on another CPU than vCPU 0 (`keel.vcpu_cpus=`),
/// which it must prove first.
#[allow(dead_code)]
pub fn run_spread() {
    run_placed(true);
}

/// vCPU 1 of `mmu_race_spread`: count while vCPU 0 probes, then race.
fn counter_then_racer(id: u32) {
    ALONGSIDE.count();
    racer(id);
}

fn run_placed(spread: bool) {
    if !smp::need_vcpus(2) {
        return;
    }
    smp::init();
    let tree = mmu::tree(L1S);
    let table = mmu::table_frame();
    let data = mmu::take_frame();
    TABLE.store(table.mfn.get(), SeqCst);
    DATA.store(data.mfn.get(), SeqCst);
    let vcpu1: fn(u32) = if spread { counter_then_racer } else { racer };
    if let Err(e) = smp::start(1, vcpu1) {
        failure!("starting vCPU 1: {e}");
        return;
    }
    if spread && !ALONGSIDE.probe_or_report(START_NS) {
        return;
    }
    if !smp::yield_until(START_NS, || OPS.load(SeqCst) > 0) {
        failure!("vCPU 1 made no request in {} s", START_NS / 1_000_000_000);
        return;
    }
    let mut phase = 1;
    // vCPU 1's requests made while one of vCPU 0's pins was part way.
    let mut during_pins = 0;
    let mut rounds = 0;
    for round in 0..MAX_ROUNDS {
        if round >= ROUNDS && during_pins > 0 {
            break;
        }
        rounds += 1;
        PHASE_AT.store(events::now_ns(), SeqCst);
        PHASE.store(phase, SeqCst);
        let before = OPS.load(SeqCst);
        let r = mmu::pin(4, tree.l4.mfn);
        during_pins += OPS.load(SeqCst) - before;
        if !check!(r.is_ok(), "round {round}: pinning the tree: {r:?}") {
            break;
        }
        phase += 2;
        PHASE_AT.store(events::now_ns(), SeqCst);
        PHASE.store(phase, SeqCst);
        let r = mmu::unpin(tree.l4.mfn);
        if !check!(r.is_ok(), "round {round}: unpinning the tree: {r:?}") {
            break;
        }
        phase += 2;
    }
    let ops_during = OPS.load(SeqCst);
    PHASE.store(STOP, SeqCst);
    if !smp::yield_until(START_NS, || DONE.load(SeqCst) == 1) {
        failure!("vCPU 1 did not stop");
        return;
    }
    println!(
        "{rounds} pins and unpins of a {}-table tree; vCPU 1 made {ops_during} requests meanwhile ({during_pins} while a pin was part way), {} refused unexpectedly",
        tree.tables,
        BAD.load(SeqCst)
    );
    if during_pins == 0 {
        error!("vCPU 1 made no request while a pin of vCPU 0 was part way: the race this test is about did not happen");
    }
    // Everything unpinned: vCPU 1's table and the tree's L4 are ordinary
    // memory again, so they can be made writable.
    for (what, f) in [("vCPU 1's table", &table), ("the tree's L4", &tree.l4)] {
        let r = mmu::make_writable(f.va);
        check!(r.is_ok(), "making {what} writable again: {r:?}");
    }
    if BAD.load(SeqCst) == 0 {
        success();
    }
}
