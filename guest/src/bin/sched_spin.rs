//! A spinning domain cannot starve another (runs with `spinner`, domain 2,
//! which spins for a minute without a hypercall): each `SCHEDOP_yield` comes
//! back within a few slices; a timer wakes this domain from `SCHEDOP_block`
//! on time although the spinner is always runnable; and this domain, spinning
//! itself, is preempted in turn (time slices both ways).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Scheduler: a spinning domain cannot starve another (yield, block on a timer, preemption)",
    category: Functional,
    main: test_main,
}

/// A slice is 1 ms (docs/abi/sched.md); allow many, for the exits and the
/// console around them: what must not happen is waiting for the spinner's
/// whole minute.
const BOUND_NS: u64 = 50_000_000;
const VECTOR: u8 = 0xf5;
static TIMER_EVENTS: AtomicU64 = AtomicU64::new(0);

fn on_event(_port: u32) {
    TIMER_EVENTS.fetch_add(1, SeqCst);
}

fn test_main() {
    // 1. Yield: the spinner runs, is preempted at the end of its slice, and
    // this domain comes back.
    let mut worst = 0;
    for i in 0..10 {
        let t0 = events::now_ns();
        check_eq!(guest::sched_yield(), Ok(()), "SCHEDOP_yield #{i}");
        worst = worst.max(events::now_ns() - t0);
    }
    check!(
        worst < BOUND_NS,
        "a yield came back after {worst} ns (bound {BOUND_NS})"
    );
    println!("10 yields to the spinner: the longest came back after {worst} ns");

    // 2. Block until a timer 5 ms ahead: the spinner is preempted at the
    // deadline, and this domain wakes at or after it, not much later.
    if let Err(e) = events::bind_timer_upcalls(VECTOR, on_event) {
        failure!("{e}");
        return;
    }
    let (deadline, woke) = match events::block_on_timer(5_000_000) {
        Ok(t) => t,
        Err(e) => {
            failure!("{e}");
            return;
        }
    };
    check!(
        woke >= deadline,
        "woke {} ns before the deadline",
        deadline - woke.min(deadline)
    );
    check!(
        woke < deadline + BOUND_NS,
        "woke {} ns after the deadline (bound {BOUND_NS})",
        woke.saturating_sub(deadline)
    );
    events::enable();
    arch::sti();
    // The upcall comes once STI's one-instruction shadow is over.
    for _ in 0..1000 {
        if TIMER_EVENTS.load(SeqCst) >= 1 {
            break;
        }
        core::hint::spin_loop();
    }
    check!(
        TIMER_EVENTS.load(SeqCst) >= 1,
        "no timer upcall after the wake-up"
    );
    println!(
        "blocked on a 5 ms timer beside the spinner: woke {} ns after the deadline",
        woke - deadline
    );

    // 3. Spin here for 20 ms: the clock jumps (another domain ran) at each
    // slice end.
    let start = events::now_ns();
    let mut last = start;
    let mut jumps = 0;
    while last < start + 20_000_000 {
        let now = events::now_ns();
        if now - last > 500_000 {
            jumps += 1;
        }
        last = now;
    }
    check!(
        jumps >= 2,
        "spinning 20 ms, this domain was preempted {jumps} times"
    );
    println!("spinning 20 ms beside the spinner: preempted {jumps} times");
    success();
}
