//! A domain that gives the CPU away: it calls `SCHEDOP_yield` in a loop,
//! `yields=<N>` times (default 1000), then reports and powers off. Alone it
//! is a test that yielding with nobody else to run returns at once; beside
//! `bench_switch_*` (`keel.service`, a huge `yields`) each of its yields is
//! half of a domain switch round trip.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "A domain that calls SCHEDOP_yield in a loop for its given count, then ends",
    category: Functional,
    main: test_main,
}

fn test_main() {
    let n = keel_guest::start::cmdline_value(cmdline(), "yields")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1000);
    let mut errors = 0u64;
    for _ in 0..n {
        if guest::sched_yield().is_err() {
            errors += 1;
        }
    }
    check_eq!(errors, 0, "SCHEDOP_yield calls that failed");
    println!("{n} yields");
    success();
}
