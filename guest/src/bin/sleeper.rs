//! A domain that sleeps: for `sleep_ms=<N>` milliseconds of system time
//! (default 100) it blocks on a 1 ms timer again and again, then reports and
//! powers off. Alone it is a test that a domain blocking in a loop wakes for
//! each timer; beside another domain (`keel.service`, a long `sleep_ms`) it
//! makes the CPU idle whenever the other blocks too (`sched_idle`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

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
    if let Err(e) = events::bind_timer_upcalls(VECTOR, on_event) {
        failure!("{e}");
        return;
    }
    let end = events::now_ns().saturating_add(ms.saturating_mul(1_000_000));
    let mut sleeps = 0u64;
    while events::now_ns() < end {
        let (deadline, woke) = match events::block_on_timer(1_000_000) {
            Ok(t) => t,
            Err(e) => {
                failure!("{e}");
                return;
            }
        };
        check!(woke >= deadline, "woke before the deadline");
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
