//! The body of `bench_interdomain` and `bench_interdomain_2cpu` (ABI 1.1):
//! interdomain event channels, measured as the peer hypervisors' figures were
//! (`/work/shared/peers`-style method: net instructions per operation, Bochs
//! counting each emulated instruction as a TSC tick). The two programs differ
//! only in where the companion runs: on this domain's CPU, or on another
//! (`loader/src/runner.rs`'s `TEST_CPUS`), where every send and poll is a
//! cross-CPU operation (the other CPU's domains lent, `vmx/lend.rs`).
//!
//! - `evtchn_send_interdomain`: `EVTCHNOP_send` on an interdomain channel
//!   whose two ends are this domain's (a loopback: `alloc_unbound` for
//!   ourselves, bound by ourselves), upcalls masked and the receiving port's
//!   pending, selector and upcall bits cleared before each send, so that every
//!   send does the whole work of making a port pending (Xen's figure is the
//!   same, on a dom0-to-dom0 channel);
//! - `evtchn_ping_pong`: a round trip with another domain (the companion
//!   `evtchn_peer role=pong`, domain 2): this domain sends and blocks in
//!   `SCHEDOP_poll`; the other wakes from its own `SCHEDOP_poll`, clears its
//!   pending bits and sends back; this one wakes. Two sends, two blocking
//!   polls, two wake-ups, two domain switches (Xen's `ping_pong_round_trip`).
//!   On two CPUs there is no domain switch: each CPU idles while its
//!   domain polls, and each send is a cross-CPU operation.

use keel_guest::abi::event::{DOMID_SELF, EVTCHNSTAT_INTERDOMAIN};
use keel_guest::abi::guest;
use keel_guest::bench::Bench;
use keel_guest::events;
use keel_guest::prelude::*;

/// Clear port `p`'s pending bit, and the selector and upcall flags (nothing
/// else is pending here).
fn clear(p: u32) {
    events::pending_word((p / 64) as usize)
        .fetch_and(!(1u64 << (p % 64)), core::sync::atomic::Ordering::SeqCst);
    events::pending_sel().store(0, core::sync::atomic::Ordering::SeqCst);
    events::upcall_pending().store(0, core::sync::atomic::Ordering::SeqCst);
}

/// The program: both figures, then its verdict.
pub fn run() {
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    // Upcalls stay masked: the figures are the hypervisor's work alone.
    events::disable();
    // Port 1: offered to domain 2 (the pong), by convention our first port.
    let pong = guest::evtchn_alloc_unbound_for(2);
    check_eq!(pong, Ok(1), "offer port 1 to domain 2");
    let a = guest::evtchn_alloc_unbound_for(DOMID_SELF);
    let b = a.and_then(|a| guest::evtchn_bind_interdomain(DOMID_SELF, a));
    let (Ok(pong), Ok(a), Ok(b)) = (pong, a, b) else {
        failure!("loopback channel: {a:?} {b:?}");
        return;
    };
    let mut bench = Bench::new();
    let mut errors = 0u32;
    let mut s = [0u64; 300];
    bench.measure_with_setup(
        "evtchn_send_interdomain",
        1,
        &mut s,
        || clear(b),
        || {
            if guest::evtchn_send(a).is_err() {
                errors += 1;
            }
        },
    );
    check!(
        events::is_pending(b),
        "the send did not reach the other end"
    );
    check_eq!(errors, 0, "sends that failed");

    // Wait (bounded) for the pong to bind port 1.
    let end = events::now_ns() + 60_000_000_000;
    while guest::evtchn_status(pong).map(|s| s.status) != Ok(EVTCHNSTAT_INTERDOMAIN) {
        if events::now_ns() >= end {
            failure!("domain 2 did not bind port {pong}");
            return;
        }
        let _ = guest::sched_yield();
    }
    let mut s = [0u64; 200];
    let mut lost = 0u32;
    bench.measure_with_setup(
        "evtchn_ping_pong",
        1,
        &mut s,
        || clear(pong),
        || {
            if guest::evtchn_send(pong).is_err() || guest::sched_poll(&[pong], 0).is_err() {
                errors += 1;
            }
            if !events::is_pending(pong) {
                lost += 1;
            }
        },
    );
    check_eq!(errors, 0, "sends or polls that failed");
    check_eq!(lost, 0, "round trips without an answer");
    success();
}
