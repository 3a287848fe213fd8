//! When every domain is blocked the CPU idles until the earliest deadline of
//! any of them (runs with `sleeper`, domain 2, which blocks on 1 ms timers
//! for a minute): this domain's timers still wake it on time, a
//! `SCHEDOP_poll` times out on time, and an upcall follows each wake-up.
//!
//! "On time" is Keel's part of each lateness: what remains after the time the
//! machine beneath Keel held Keel's own timers past due
//! (`DEBUGOP_PLATFORM_DELAY`, ABI 1.2, which this image declares; under nested
//! KVM its stalls reach tens of milliseconds, docs/abi/time.md).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Scheduler: idle while every domain blocks, each woken by its own deadline",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
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
    let port = match events::bind_timer_upcalls(VECTOR, on_event) {
        Ok(p) => p,
        Err(e) => {
            failure!("{e}");
            return;
        }
    };
    let mut worst = 0;
    let mut late = [(0u64, 0u64); 10];
    for i in 0..10u64 {
        let (deadline, woke) = match events::block_on_timer(3_000_000 + i * 500_000) {
            Ok(t) => t,
            Err(e) => {
                failure!("block #{i}: {e}");
                return;
            }
        };
        let platform = events::platform_delay_since(deadline);
        check!(woke >= deadline, "block #{i} woke before its deadline");
        let keel = woke.saturating_sub(deadline).saturating_sub(platform);
        late[i as usize] = (woke.saturating_sub(deadline), platform);
        worst = worst.max(keel);
        events::enable();
        arch::sti();
    }
    let _ = guest::xen_version();
    // Each one: a failure shows whether one wake-up was late or every one.
    println!("each wake-up's lateness and the platform's part of it, ns: {late:?}");
    check!(
        worst < BOUND_NS,
        "a wake-up came {worst} ns late beyond the platform's delay (bound {BOUND_NS})"
    );
    check!(UPCALLS.load(SeqCst) >= 1, "no timer upcall");
    println!("10 blocks on timers beside a sleeping domain: the latest woke {worst} ns after its deadline, beyond the platform's delay");

    // A poll with no port pending times out on time.
    arch::cli();
    events::disable();
    let timeout = events::now_ns() + 4_000_000;
    check_eq!(guest::sched_poll(&[port], timeout), Ok(()), "SCHEDOP_poll");
    let back = events::now_ns();
    let platform = events::platform_delay_since(timeout);
    check!(back >= timeout, "the poll returned before its timeout");
    check!(
        back.saturating_sub(platform) < timeout + BOUND_NS,
        "the poll returned {} ns after its timeout ({platform} ns of it the platform's)",
        back.saturating_sub(timeout)
    );
    events::enable();
    arch::sti();
    success();
}
