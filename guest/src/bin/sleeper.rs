//! A domain that sleeps: for `sleep_ms=<N>` milliseconds of system time
//! (default 100) it blocks on a 1 ms timer again and again, then reports and
//! powers off. Alone it is a test that a domain blocking in a loop wakes for
//! each timer; beside another domain (`keel.service`, a long `sleep_ms`) it
//! makes the CPU idle whenever the other blocks too (`sched_idle`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::event::VIRQ_TIMER;
use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "A domain that blocks on a 1 ms timer in a loop for its given time, then ends",
    category: Functional,
    main: test_main,
}

const VECTOR: u8 = 0xf5;
static UPCALLS: AtomicU64 = AtomicU64::new(0);

fn on_event(_port: u32) {
    UPCALLS.fetch_add(1, SeqCst);
}

fn test_main() {
    let ms = keel_guest::start::cmdline_value(cmdline(), "sleep_ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(100);
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
    let end = events::now_ns().saturating_add(ms.saturating_mul(1_000_000));
    let mut sleeps = 0u64;
    while events::now_ns() < end {
        arch::cli();
        events::disable();
        let deadline = events::now_ns() + 1_000_000;
        if guest::set_timer_op(deadline).is_err() || guest::sched_block().is_err() {
            failure!("set_timer_op or SCHEDOP_block failed");
            return;
        }
        check!(events::now_ns() >= deadline, "woke before the deadline");
        events::enable();
        arch::sti();
        sleeps += 1;
    }
    // Let the last upcall in (after STI's shadow).
    let _ = guest::xen_version();
    check!(
        UPCALLS.load(SeqCst) > 0,
        "no timer upcall in {sleeps} sleeps"
    );
    println!(
        "slept {ms} ms in {sleeps} blocks, {} upcalls",
        UPCALLS.load(SeqCst)
    );
    success();
}
