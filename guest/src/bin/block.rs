//! Blocking (ABI 1.0): SCHEDOP_block wakes on a timer (the host idles in HLT
//! with its local APIC timer meanwhile) and never before the deadline; the
//! "enable events, then block" race is closed: with an event already pending
//! (sent while events were masked) SCHEDOP_block returns at once, without any
//! timer armed (a vCPU that really blocked with nothing to wake it would be
//! killed); HLT with IF = 1 blocks until the timer's upcall; SCHEDOP_poll
//! returns at once for a pending port and at its timeout otherwise; poll
//! refuses bad ports.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Blocking: SCHEDOP_block wakes on time, the block/wake race, HLT, SCHEDOP_poll",
    category: Functional,
    main: test_main,
}

const VECTOR: u8 = 0xf5;
static TIMER_EVENTS: AtomicU64 = AtomicU64::new(0);
static IPI_EVENTS: AtomicU64 = AtomicU64::new(0);
static TIMER_PORT: AtomicU64 = AtomicU64::new(u64::MAX);

fn on_event(port: u32) {
    if u64::from(port) == TIMER_PORT.load(SeqCst) {
        TIMER_EVENTS.fetch_add(1, SeqCst);
    } else {
        IPI_EVENTS.fetch_add(1, SeqCst);
    }
}

fn test_main() {
    let tport = match events::bind_timer_upcalls(VECTOR, on_event) {
        Ok(p) => p,
        Err(e) => {
            failure!("{e}");
            return;
        }
    };
    TIMER_PORT.store(tport.into(), SeqCst);
    let ipi = guest::evtchn_bind_ipi(0).unwrap_or(0);
    check!(ipi != 0, "bind an IPI port");

    // 1. Block until a timer, IF = 0 (Linux's xen_safe_halt): returns at or after
    // the deadline; the upcall follows the STI.
    let (deadline, woke) = match events::block_on_timer(20_000_000) {
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
    println!(
        "SCHEDOP_block: woke {} ns after a 20 ms deadline",
        woke - deadline.min(woke)
    );
    check_eq!(TIMER_EVENTS.load(SeqCst), 0, "no upcall while IF = 0");
    check_eq!(
        events::upcall_mask().load(SeqCst),
        0,
        "SCHEDOP_block enabled events"
    );
    arch::sti();
    core::hint::black_box(0);
    check_eq!(TIMER_EVENTS.load(SeqCst), 1, "the timer upcall after STI");

    // 2. The race: the event arrives after "disable" and before "block". Block
    // must return at once (no timer is armed: blocking would kill the domain).
    arch::cli();
    events::disable();
    check_eq!(guest::evtchn_send(ipi), Ok(()), "send while masked");
    let t0 = events::now_ns();
    check_eq!(
        guest::sched_block(),
        Ok(()),
        "SCHEDOP_block with an event pending"
    );
    let dt = events::now_ns() - t0;
    check!(dt < 5_000_000, "block with a pending event took {dt} ns");
    arch::sti();
    core::hint::black_box(0);
    check_eq!(
        IPI_EVENTS.load(SeqCst),
        1,
        "the pending IPI delivered after block"
    );

    // 3. HLT with IF = 1 and events enabled: wakes on the timer's upcall.
    events::enable();
    let before = TIMER_EVENTS.load(SeqCst);
    let deadline = events::now_ns() + 10_000_000;
    check_eq!(guest::set_timer_op(deadline), Ok(()), "set_timer_op");
    arch::hlt();
    check_eq!(
        TIMER_EVENTS.load(SeqCst),
        before + 1,
        "HLT woke on the timer upcall"
    );
    check!(events::now_ns() >= deadline, "HLT woke before the deadline");

    // 4. SCHEDOP_poll: at once for a pending port; at the timeout otherwise.
    arch::cli();
    events::disable();
    check_eq!(guest::evtchn_send(ipi), Ok(()), "send");
    let t0 = events::now_ns();
    check_eq!(
        guest::sched_poll(&[ipi], 0),
        Ok(()),
        "poll on a pending port"
    );
    check!(
        events::now_ns() - t0 < 5_000_000,
        "poll on a pending port blocked"
    );
    // Deliver it, keep events masked, and poll a quiet port with a timeout.
    events::enable();
    arch::sti();
    core::hint::black_box(0);
    arch::cli();
    events::disable();
    let deadline = events::now_ns() + 15_000_000;
    check_eq!(
        guest::sched_poll(&[ipi], deadline),
        Ok(()),
        "poll with a timeout"
    );
    let woke = events::now_ns();
    check!(
        woke >= deadline,
        "poll returned {} ns before its timeout",
        deadline - woke.min(deadline)
    );
    check_eq!(
        guest::sched_poll(&[5000], 0),
        Err(Errno::EINVAL),
        "poll on port 5000"
    );
    let many = [ipi; 129];
    check_eq!(
        guest::sched_poll(&many, 0),
        Err(Errno::EINVAL),
        "poll on 129 ports"
    );
    events::enable();
    arch::sti();
    success();
}
