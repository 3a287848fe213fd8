//! Benchmark: how late a timer's upcall comes while the guest keeps the
//! hypervisor busy with the largest batch it can build (docs/abi/mmu.md,
//! "Preemption"), beside the same figure with the guest idle (spinning):
//!
//! - `timer_deadline_to_upcall_idle`: from the TSC at which the pvclock reaches
//!   a single-shot deadline until the upcall handler runs, the guest spinning;
//! - `timer_deadline_to_upcall_under_batch`: the same while the guest is inside
//!   one `mmu_update` of 2^31 - 1 requests (one request page aliased through
//!   one L1, one L2 and 32 L3 entries; each request rewrites a page-table
//!   entry with its own value). The upcall interrupts the preempted VMCALL;
//!   the hook then marks the batch done, so that the next sample can start.
//! - `timer_deadline_to_upcall_under_pin`: the same while the guest is inside
//!   one `MMUEXT_PIN_L4_TABLE` of a tree of 16 full L1 tables (some 9,000
//!   entries to validate, far more than the deadline leaves time for); the pin
//!   then completes and the tree is unpinned before the next sample.
//!
//! Target: under batch and under pin at most twice idle. Fails if an operation errs, a
//! sample is zero, an upcall comes before its deadline, or an upcall does not
//! interrupt the batch.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::abi::mmu::{MmuextOp, DOMID_SELF, MMUEXT_PIN_L4_TABLE, MMU_BATCH_MAX};
use keel_guest::arch;
use keel_guest::bench::Bench;
use keel_guest::events;
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, Pte};
use keel_guest::prelude::*;
use keel_guest::tsc;

keel_guest::test! {
    title: "Benchmark: timer deadline to upcall, idle, under a batch of 2^31-1 requests and under a large pin (TSC ticks)",
    category: Bench,
    main: test_main,
}

const VECTOR: u8 = 0xf6;
const PREEMPTED: u64 = 1 << 31;
const RAX: usize = 0;
const RSI: usize = 4;
const RDI: usize = 5;

static HANDLER_TSC: AtomicU64 = AtomicU64::new(0);
static HITS: AtomicU64 = AtomicU64::new(0);
static LIST: AtomicU64 = AtomicU64::new(0);
/// Upcalls that found the batch preempted (and ended it).
static IN_BATCH: AtomicU64 = AtomicU64::new(0);
/// The pin's op list, and the upcalls that found the pin preempted.
static PIN_LIST: AtomicU64 = AtomicU64::new(0);
static IN_PIN: AtomicU64 = AtomicU64::new(0);

fn on_event(_port: u32) {
    HANDLER_TSC.store(tsc::rdtsc(), SeqCst);
    HITS.fetch_add(1, SeqCst);
}

/// The upcall interrupted the batch: let it complete at once.
fn hook(gpr: &mut [u64; 15], _rip: u64) {
    if gpr[RAX] == Hypercall::MMU_UPDATE.0
        && gpr[RDI] == LIST.load(SeqCst)
        && gpr[RSI] & PREEMPTED != 0
    {
        IN_BATCH.fetch_add(1, SeqCst);
        gpr[RSI] = ((MMU_BATCH_MAX - 1) << 32) | PREEMPTED | MMU_BATCH_MAX;
    }
    if gpr[RAX] == Hypercall::MMUEXT_OP.0
        && gpr[RDI] == PIN_LIST.load(SeqCst)
        && gpr[RSI] & PREEMPTED != 0
    {
        IN_PIN.fetch_add(1, SeqCst);
    }
}

fn test_main() {
    let Some(t) = aliased_requests() else { return };
    LIST.store(t.va, SeqCst);
    let tree = tree(16);
    let pin_op = [MmuextOp {
        cmd: MMUEXT_PIN_L4_TABLE,
        pad: 0,
        arg1: tree.l4.mfn.get(),
        arg2: 0,
    }];
    PIN_LIST.store(pin_op.as_ptr() as u64, SeqCst);
    events::set_interrupted_hook(Some(hook));
    if let Err(e) = events::timer_upcalls(VECTOR, on_event) {
        failure!("{e}");
        return;
    }

    let mut bench = Bench::new();
    let (mut errors, mut early) = (0u32, 0u32);

    // Idle: spinning.
    let mut s = [0u64; 50];
    let started = bench.start();
    for x in s.iter_mut() {
        let before = HITS.load(SeqCst);
        let deadline = events::now_ns() + 2_000_000;
        let deadline_tsc = events::tsc_at_ns(deadline);
        if guest::set_timer_op(deadline).is_err() {
            errors += 1;
        }
        while HITS.load(SeqCst) == before {
            core::hint::spin_loop();
        }
        let h = HANDLER_TSC.load(SeqCst);
        early += u32::from(h < deadline_tsc);
        *x = h.saturating_sub(deadline_tsc);
    }
    let idle = bench.finish("timer_deadline_to_upcall_idle", 1, &mut s, started);

    // Under the batch.
    let done = AtomicU64::new(0);
    let mut s = [0u64; 50];
    let started = bench.start();
    for x in s.iter_mut() {
        let before = HITS.load(SeqCst);
        let deadline = events::now_ns() + 2_000_000;
        let deadline_tsc = events::tsc_at_ns(deadline);
        if guest::set_timer_op(deadline).is_err() {
            errors += 1;
        }
        let r = guest::hypercall_scalar(
            Hypercall::MMU_UPDATE,
            [t.va, MMU_BATCH_MAX, done.as_ptr() as u64, DOMID_SELF, 0],
        );
        errors += u32::from(r != 0 || HITS.load(SeqCst) != before + 1);
        let h = HANDLER_TSC.load(SeqCst);
        early += u32::from(h < deadline_tsc);
        *x = h.saturating_sub(deadline_tsc);
    }
    let batch = bench.finish("timer_deadline_to_upcall_under_batch", 1, &mut s, started);

    // Under a pin.
    let mut s = [0u64; 50];
    let started = bench.start();
    for x in s.iter_mut() {
        let before = HITS.load(SeqCst);
        let deadline = events::now_ns() + 2_000_000;
        let deadline_tsc = events::tsc_at_ns(deadline);
        if guest::set_timer_op(deadline).is_err() {
            errors += 1;
        }
        let (done, r) = guest::mmuext_op(&pin_op);
        errors += u32::from(r.is_err() || done != 1 || HITS.load(SeqCst) != before + 1);
        let h = HANDLER_TSC.load(SeqCst);
        early += u32::from(h < deadline_tsc);
        *x = h.saturating_sub(deadline_tsc);
        errors += u32::from(unpin(tree.l4.mfn).is_err());
    }
    let pin = bench.finish("timer_deadline_to_upcall_under_pin", 1, &mut s, started);
    events::set_interrupted_hook(None);
    arch::cli();

    check_eq!(errors, 0, "operations that failed");
    check_eq!(early, 0, "upcalls before their deadline");
    check_eq!(
        IN_BATCH.load(SeqCst),
        50,
        "upcalls that interrupted the batch"
    );
    check_eq!(IN_PIN.load(SeqCst), 50, "upcalls that interrupted the pin");
    if let (Some(i), Some(b), Some(p)) = (&idle, &batch, &pin) {
        check!(
            i.stats.min > 0 && b.stats.min > 0 && p.stats.min > 0,
            "a sample measured 0 ticks"
        );
        println!(
            "timer deadline to upcall: idle {}, under batch {}, under pin {} (median ticks)",
            i.stats.median, b.stats.median, p.stats.median
        );
    }
    expect_ok(
        format_args!("removing the aliased tree"),
        update(slot(cr3_mfn(), t.l4_slot), Pte::EMPTY),
    );
    success();
}
