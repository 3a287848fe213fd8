//! What a domain switch costs with 8 domains on the CPU (runs with 7
//! `yielder` domain(s), which call `SCHEDOP_yield` in a loop): one
//! `SCHEDOP_yield` of this domain is a round of 8 switches (this domain
//! to each yielder in turn and back), each a yield hypercall, the run loop's
//! scheduling, VMPTRLD, the unswitched state saved and loaded, and
//! VMRESUME. The figure `domain_switch_8` is per switch; the scheduler's
//! own steps are the same for any number of domains (`crate::sched`), so
//! with more domains it should not grow.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: a domain switch with 8 domains (SCHEDOP_yield round robin)",
    category: Bench,
    main: test_main,
}

fn test_main() {
    keel_guest::bench::domain_switch("domain_switch_8", 8);
}
