//! `set_timer_op` and `VCPUOP_set_periodic_timer` take their arguments by
//! Xen's rules (docs/abi/time.md): a timeout that is negative as a signed time
//! or more than 2^50 ns ahead arms the timer 100 ms from now (not for a deadline
//! that never comes), and a period above 2^62 - 1 ns is -EINVAL.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Timer arguments: huge and negative set_timer_op deadlines, periodic bounds (Xen's rules)",
    category: Functional,
    main: test_main,
}

const VECTOR: u8 = 0xf4;
/// Xen's fallback: 100 ms.
const FALLBACK_NS: u64 = 100_000_000;

static FIRED: AtomicU64 = AtomicU64::new(0);
static FIRED_AT: AtomicU64 = AtomicU64::new(0);
static TIMER_PORT: AtomicU64 = AtomicU64::new(u64::MAX);

fn on_event(port: u32) {
    if u64::from(port) == TIMER_PORT.load(SeqCst) {
        FIRED_AT.store(events::now_ns(), SeqCst);
        FIRED.fetch_add(1, SeqCst);
    }
}

fn test_main() {
    let port = match events::timer_upcalls(VECTOR, on_event) {
        Ok(p) => p,
        Err(e) => {
            failure!("{e}");
            return;
        }
    };
    TIMER_PORT.store(port.into(), SeqCst);

    for (what, timeout) in [
        ("negative", u64::MAX),
        ("bit 63", 1u64 << 63),
        ("2^51 ns ahead", events::now_ns() + (1 << 51)),
    ] {
        let before = FIRED.load(SeqCst);
        let start = events::now_ns();
        check_eq!(
            guest::set_timer_op(timeout).map_err(|e| e.as_return()),
            Ok(()),
            "set_timer_op({what})"
        );
        // Block until the timer fires (with the old rule it never did: a
        // domain blocked with only that deadline slept for ever).
        while FIRED.load(SeqCst) == before {
            if let Err(e) = guest::sched_block() {
                failure!("SCHEDOP_block: {e}");
                return;
            }
            arch::sti();
        }
        let at = FIRED_AT.load(SeqCst);
        check!(
            at >= start + FALLBACK_NS,
            "{what}: fired {} ns after the call, before 100 ms",
            at - start
        );
        check!(
            at < start + 2 * FALLBACK_NS,
            "{what}: fired {} ns after the call, long after 100 ms",
            at - start
        );
    }

    for (period, want) in [
        ((1u64 << 62) - 1, Ok(())),
        (1 << 62, Err(Errno::EINVAL)),
        (u64::MAX, Err(Errno::EINVAL)),
    ] {
        check_eq!(
            guest::vcpu_set_periodic_timer(period),
            want,
            "VCPUOP_set_periodic_timer({period:#x})"
        );
    }
    let _ = guest::vcpu_stop_periodic_timer();
    success();
}
