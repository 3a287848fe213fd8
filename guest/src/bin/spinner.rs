//! A domain that never gives the CPU up: it spins on the clock, making no
//! hypercall, for `spin_ms=<N>` milliseconds of system time (default 200),
//! then reports and powers off. Alone it is a test that a domain which never
//! yields still ends; beside another domain (`keel.service`, a long
//! `spin_ms`) it is the spinner the scheduler's tests must not be starved by
//! (`sched_spin`). It spins with interrupts off, as every guest starts, unless
//! `irq=on`: then with RFLAGS.IF set (no upcall is registered, so none comes),
//! which is what a platform that masks external-interrupt exits by the
//! guest's IF needs to preempt it (docs/platforms.md, "Bochs defects").
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "A domain that spins without a hypercall for its given time, then ends",
    category: Functional,
    main: test_main,
}

fn test_main() {
    let ms = keel_guest::start::cmdline_value(cmdline(), "spin_ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(200);
    if keel_guest::start::cmdline_value(cmdline(), "irq") == Some("on") {
        keel_guest::arch::sti();
    }
    let start = events::now_ns();
    let end = start.saturating_add(ms.saturating_mul(1_000_000));
    let mut reads = 0u64;
    while events::now_ns() < end {
        reads += 1;
        core::hint::spin_loop();
    }
    check!(reads > 0, "the clock never advanced");
    println!("spun {ms} ms ({reads} clock reads) without a hypercall");
    success();
}
