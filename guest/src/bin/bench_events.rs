//! Benchmark (ABI 1.0): events and time as the guest sees them on the TSC
//! (under Bochs one tick is one emulated instruction). Medians over many runs:
//!
//! - `send->upcall`: `EVTCHNOP_send` to our own IPI port until the upcall
//!   handler runs (one exit, the injection, the handler's entry);
//! - `timer deadline->upcall`: from the TSC at which the pvclock reaches a
//!   single-shot deadline until the handler runs, the guest spinning meanwhile
//!   (VMX-preemption timer exit, VIRQ_TIMER, injection);
//! - `block wake-up`: from the deadline's TSC until `SCHEDOP_block` returns (the
//!   host idles in HLT on its local APIC timer meanwhile);
//! - `pvclock read`: one `now_ns()` (no exit).
//!
//! Each figure is printed in the `cargo keel bench` line format
//! (`keel_guest::bench`), with the exits and VMCS accesses the hypervisor counted
//! over its loop. It fails if an operation errs, a sample is zero, an upcall/wake
//! comes before its deadline (a negative latency), or a pvclock read exits.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::bench::{Bench, Figure};
use keel_guest::events;
use keel_guest::prelude::*;
use keel_guest::tsc;

keel_guest::test! {
    title: "Benchmark: event send to upcall, timer deadline to upcall, block wake-up, pvclock read (TSC ticks)",
    category: Bench,
    main: test_main,
}

const VECTOR: u8 = 0xf6;
static HANDLER_TSC: AtomicU64 = AtomicU64::new(0);
static HITS: AtomicU64 = AtomicU64::new(0);

fn on_event(_port: u32) {
    HANDLER_TSC.store(tsc::rdtsc(), SeqCst);
    HITS.fetch_add(1, SeqCst);
}

fn nonzero(name: &str, f: &Option<Figure>) {
    if let Some(f) = f {
        check!(f.stats.min > 0, "{name}: a sample measured 0 ticks");
    }
}

fn test_main() {
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    let ipi = guest::evtchn_bind_ipi(0);
    check!(ipi.is_ok(), "bind an IPI port: {ipi:?}");
    let ipi = ipi.unwrap_or(0);
    if let Err(e) = events::timer_upcalls(VECTOR, on_event) {
        failure!("{e}");
        return;
    }

    let mut bench = Bench::new();
    let mut errors = 0u32;
    let mut early = 0u32;

    // send -> upcall.
    let mut s = [0u64; 300];
    let started = bench.start();
    for x in s.iter_mut() {
        let before = HITS.load(SeqCst);
        let t0 = tsc::rdtsc_ordered();
        if guest::evtchn_send(ipi).is_err() {
            errors += 1;
        }
        if HITS.load(SeqCst) != before + 1 {
            errors += 1;
        }
        *x = HANDLER_TSC.load(SeqCst).saturating_sub(t0);
    }
    let f = bench.finish("send_to_upcall", 1, &mut s, started);
    nonzero("send_to_upcall", &f);

    // timer deadline -> upcall, spinning.
    let mut s = [0u64; 100];
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
        if h < deadline_tsc {
            early += 1;
        }
        *x = h.saturating_sub(deadline_tsc);
    }
    let f = bench.finish("timer_deadline_to_upcall", 1, &mut s, started);
    nonzero("timer_deadline_to_upcall", &f);

    // deadline -> SCHEDOP_block returns (IF = 0: the upcall comes after).
    let mut s = [0u64; 100];
    let started = bench.start();
    for x in s.iter_mut() {
        arch::cli();
        let deadline = events::now_ns() + 2_000_000;
        let deadline_tsc = events::tsc_at_ns(deadline);
        if guest::set_timer_op(deadline).is_err() || guest::sched_block().is_err() {
            errors += 1;
        }
        let t = tsc::rdtsc();
        if t < deadline_tsc {
            early += 1;
        }
        *x = t.saturating_sub(deadline_tsc);
        arch::sti();
        core::hint::black_box(0);
    }
    let f = bench.finish("block_wakeup", 1, &mut s, started);
    nonzero("block_wakeup", &f);

    // pvclock read.
    let mut s = [0u64; 500];
    let f = bench.measure("pvclock_read", 1, &mut s, || {
        let _ = events::now_ns();
    });
    nonzero("pvclock_read", &f);
    // Reading the time must never leave the guest.
    if let Some(e) = f.as_ref().and_then(Figure::exits) {
        check_eq!(e, 0, "exits during pvclock reads");
    }

    check_eq!(errors, 0, "operations that failed");
    check_eq!(early, 0, "upcalls or wake-ups before their deadline");
    arch::cli();
    success();
}
