//! What a domain switch costs with 32 domains on the CPU (runs with 31
//! `yielder` domain(s), which call `SCHEDOP_yield` in a loop): one
//! `SCHEDOP_yield` of this domain is a round of 32 switches (this domain
//! to each yielder in turn and back), each a yield hypercall, the run loop's
//! scheduling, VMPTRLD, the unswitched state saved and loaded, and
//! VMRESUME. The figure `domain_switch_32` is per switch; the scheduler's
//! own steps are the same for any number of domains (`crate::sched`), so
//! with more domains it should not grow.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest;
use keel_guest::bench::Bench;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Benchmark: a domain switch with 32 domains (SCHEDOP_yield round robin)",
    category: Bench,
    main: test_main,
}

/// Domains on the CPU, this one included.
const DOMAINS: u64 = 32;

fn test_main() {
    let mut b = Bench::new();
    let mut samples = [0u64; 200];
    let mut errors = 0u32;
    let f = b.measure("domain_switch_32", DOMAINS, &mut samples, || {
        if guest::sched_yield().is_err() {
            errors += 1;
        }
    });
    check_eq!(errors, 0, "SCHEDOP_yield calls that failed");
    if let Some(f) = f {
        // Alone, a yield would be one exit: with the yielders it is one per switch.
        if let Some(e) = f.exits() {
            check!(
                e >= DOMAINS,
                "{e} exits per round of {DOMAINS} switches: the others did not run"
            );
        }
    }
    success();
}
