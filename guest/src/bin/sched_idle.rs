//! When every domain is blocked the CPU idles until the earliest deadline of
//! any of them (runs with `sleeper`, domain 2, which blocks on 1 ms timers
//! for a minute): this domain's timers still wake it on time, a
//! `SCHEDOP_poll` times out on time, and an upcall follows each wake-up.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::event::VIRQ_TIMER;
use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Scheduler: idle while every domain blocks, each woken by its own deadline",
    category: Functional,
    main: test_main,
}

/// Slices are 1 ms; the other domain runs for a moment at each of its timers.
const BOUND_NS: u64 = 20_000_000;
const VECTOR: u8 = 0xf5;
static UPCALLS: AtomicU64 = AtomicU64::new(0);

fn on_event(_port: u32) {
    UPCALLS.fetch_add(1, SeqCst);
}

fn test_main() {
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    let port = guest::evtchn_bind_virq(VIRQ_TIMER, 0).unwrap_or(0);
    check!(port != 0, "bind VIRQ_TIMER");
    check_eq!(
        events::set_upcall_handler(VECTOR, on_event),
        Ok(()),
        "callback vector"
    );
    let mut worst = 0;
    for i in 0..10u64 {
        arch::cli();
        events::disable();
        let deadline = events::now_ns() + 3_000_000 + i * 500_000;
        check_eq!(guest::set_timer_op(deadline), Ok(()), "set_timer_op #{i}");
        check_eq!(guest::sched_block(), Ok(()), "SCHEDOP_block #{i}");
        let woke = events::now_ns();
        check!(woke >= deadline, "block #{i} woke before its deadline");
        worst = worst.max(woke.saturating_sub(deadline));
        events::enable();
        arch::sti();
    }
    let _ = guest::xen_version();
    check!(
        worst < BOUND_NS,
        "a wake-up came {worst} ns late (bound {BOUND_NS})"
    );
    check!(UPCALLS.load(SeqCst) >= 1, "no timer upcall");
    println!("10 blocks on timers beside a sleeping domain: the latest woke {worst} ns after its deadline");

    // A poll with no port pending times out on time.
    arch::cli();
    events::disable();
    let timeout = events::now_ns() + 4_000_000;
    check_eq!(guest::sched_poll(&[port], timeout), Ok(()), "SCHEDOP_poll");
    let back = events::now_ns();
    check!(back >= timeout, "the poll returned before its timeout");
    check!(
        back < timeout + BOUND_NS,
        "the poll returned {} ns after its timeout",
        back.saturating_sub(timeout)
    );
    events::enable();
    arch::sti();
    success();
}
