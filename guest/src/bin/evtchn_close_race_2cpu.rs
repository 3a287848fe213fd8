//! An interdomain channel closed while the other end floods it, from two
//! domains on two CPUs (runs with `evtchn_peer role=flood`, domain 2, on CPU
//! 1; this test is domain 1 on CPU 0).
//!
//! Each round this domain offers port 1 to the flooder, waits until it is
//! bound and the flood arrives (the port pending), then closes it while the
//! flooder goes on sending. From the close on, the flooder's end is unbound
//! and its sends are dropped: nothing may make port 1 pending any more. So
//! after the close (and one more exit, where this CPU takes what was posted
//! to it) port 1 must not be pending. The rule it checks (Xen's, and
//! `docs/abi/events.md`): a send before a close is delivered before it, and
//! none after it.
//!
//! A send to a domain on another CPU is posted to that domain and made
//! pending by its own CPU later (`hypervisor/src/peers/inbox.rs`); the close
//! is a cross-CPU operation, which first takes every post. Without that, a
//! send posted between this CPU's last look at its posts and the close
//! would be taken after the close, and set the freed port pending.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::Ordering::SeqCst;

use keel_guest::abi::event::{EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN};
use keel_guest::abi::guest;
use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Interdomain channel closed while the other end (on another CPU) floods it: no event after the close",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

/// The flooder: the companion domain.
const PEER: u16 = 2;
/// Rounds of offer, flood, close.
const ROUNDS: u32 = 100;
/// The longest one wait of a round lasts (system time): the flooder binds
/// within a few cross-CPU operations (milliseconds under nested KVM).
const WAIT_NS: u64 = 5_000_000_000;

fn pending(p: u32) -> bool {
    events::pending_word((p / 64) as usize).load(SeqCst) & (1 << (p % 64)) != 0
}

fn clear(p: u32) {
    events::pending_word((p / 64) as usize).fetch_and(!(1u64 << (p % 64)), SeqCst);
}

/// Yield until `cond` holds, for at most [`WAIT_NS`].
fn wait(cond: impl Fn() -> bool) -> bool {
    let end = events::now_ns() + WAIT_NS;
    while !cond() {
        if events::now_ns() > end {
            return false;
        }
        let _ = guest::sched_yield();
    }
    true
}

fn test_main() {
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    // Events are read from the pending bits; no upcall.
    events::disable();
    for round in 0..ROUNDS {
        let p = match guest::evtchn_alloc_unbound_for(PEER) {
            Ok(p) => p,
            Err(e) => {
                failure!("round {round}: offer a port to domain {PEER}: {e}");
                return;
            }
        };
        if p != 1 {
            failure!("round {round}: offered port {p}, not the lowest free (1)");
            return;
        }
        if !wait(|| guest::evtchn_status(p).is_ok_and(|s| s.status == EVTCHNSTAT_INTERDOMAIN)) {
            failure!("round {round}: domain {PEER} did not bind port {p}");
            return;
        }
        // The flood arrives: the port goes pending, is cleared, and goes
        // pending again (so sends are on their way at the close).
        for _ in 0..2 {
            if !wait(|| pending(p)) {
                failure!("round {round}: no event from domain {PEER} on port {p}");
                return;
            }
            clear(p);
        }
        if let Err(e) = guest::evtchn_close(p) {
            failure!("round {round}: close port {p}: {e}");
            return;
        }
        // One more exit: whatever was posted to this domain is taken in it.
        let _ = guest::xen_version();
        let status = guest::evtchn_status(p).map(|s| s.status);
        if status != Ok(EVTCHNSTAT_CLOSED) {
            failure!("round {round}: port {p} after the close: {status:?}");
            return;
        }
        if pending(p) {
            failure!("round {round}: port {p} pending after its close: a send from before the close was delivered after it");
            return;
        }
    }
    println!("{ROUNDS} rounds: no event after a close");
    success();
}
