//! Interdomain event channels (ABI 1.1), with two companions
//! (`COMPANION_DOMAINS`): domain 2 an echo (`evtchn_peer role=echo`),
//! domain 3 one that offers a port and ends (`role=offer_exit`). They find
//! each other by domain id and by ports agreed by convention
//! (docs/abi/domains.md). Covered: the offers and their status; the refusals
//! (another domain's ports, a domain that does not exist, a port not offered
//! to us, port 0 and out of range); consent (a port offered to domain 3 is
//! refused to us, the one offered to us binds); 200 ping-pongs, each send
//! one upcall in the other domain and one back; a flood of 5,000 sends
//! that does not starve the echo; close from this end (the echo's end becomes
//! unbound for us and binds again), close from the echo's end (ours becomes
//! unbound, a send on it is dropped); a domain that ends (our end becomes
//! unbound, binding its port again is -ESRCH).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

use keel_guest::abi::event::{
    EvtchnStatus, DOMID_SELF, EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND,
    KEEL_NR_EVTCHN_PORTS,
};
use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Interdomain event channels: offers, consent, refusals, ping-pong, flood, close from either end, a peer that ends",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

const VECTOR: u8 = 0xf3;
const ECHO: u16 = 2;
const ENDER: u16 = 3;
const PINGS: u32 = 200;
static SEEN: [AtomicU32; 16] = [const { AtomicU32::new(0) }; 16];

fn on_event(port: u32) {
    if let Some(c) = SEEN.get(port as usize) {
        c.fetch_add(1, SeqCst);
    }
}

fn seen(p: u32) -> u32 {
    SEEN.get(p as usize).map_or(0, |c| c.load(SeqCst))
}

/// Wait (polling `ports`, events off while deciding) until `cond` holds or
/// `ms` of system time passed; whether it held.
fn wait_for(ports: &[u32], ms: u64, cond: impl Fn() -> bool) -> bool {
    let end = events::now_ns() + ms * 1_000_000;
    loop {
        arch::cli();
        events::disable();
        let (ok, late) = (cond(), events::now_ns() >= end);
        if !ok && !late {
            let _ = guest::sched_poll(ports, end);
        }
        events::enable();
        arch::sti();
        // The upcall (if any) is taken after STI's shadow.
        let _ = guest::xen_version();
        if ok || cond() {
            return true;
        }
        if late {
            return false;
        }
    }
}

fn status(p: u32) -> (u32, [u32; 2]) {
    match guest::evtchn_status(p) {
        Ok(EvtchnStatus { status, u, .. }) => (status, u),
        Err(e) => (u32::MAX, [e.as_return() as u32, 0]),
    }
}

fn test_main() {
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    // The offers, by convention our first two allocations: ports 1 and 2.
    let data = guest::evtchn_alloc_unbound_for(ECHO);
    let ctl = guest::evtchn_alloc_unbound_for(ECHO);
    check_eq!(data, Ok(1), "offer port 1 to domain {ECHO}");
    check_eq!(ctl, Ok(2), "offer port 2 to domain {ECHO}");
    let (Ok(data), Ok(ctl)) = (data, ctl) else {
        return;
    };
    check_eq!(
        events::set_upcall_handler(VECTOR, on_event),
        Ok(()),
        "callback vector"
    );

    // Refusals that need no peer action.
    check_eq!(
        guest::evtchn_alloc_unbound_in(ECHO, DOMID_SELF),
        Err(Errno::EPERM),
        "alloc_unbound in another domain"
    );
    check_eq!(
        guest::evtchn_alloc_unbound_in(77, DOMID_SELF),
        Err(Errno::ESRCH),
        "alloc_unbound in a domain that does not exist"
    );
    check_eq!(
        guest::evtchn_status_of(ECHO, 1).map(|s| s.status),
        Err(Errno::EPERM),
        "status of another domain's port"
    );
    check_eq!(
        guest::evtchn_bind_interdomain(77, 1),
        Err(Errno::ESRCH),
        "bind to a domain that does not exist"
    );
    check_eq!(
        guest::evtchn_bind_interdomain(DOMID_SELF, data),
        Err(Errno::EINVAL),
        "bind our own port offered to another domain"
    );
    check_eq!(
        guest::evtchn_bind_interdomain(ECHO, 0),
        Err(Errno::EINVAL),
        "bind port 0"
    );
    check_eq!(
        guest::evtchn_bind_interdomain(ECHO, KEEL_NR_EVTCHN_PORTS),
        Err(Errno::EINVAL),
        "bind a port beyond the table"
    );

    events::enable();
    arch::sti();

    // The echo binds both offers and says it is ready on the control port.
    if !check!(
        wait_for(&[ctl], 5_000, || seen(ctl) >= 1),
        "no ready event from domain {ECHO}"
    ) {
        return;
    }
    check_eq!(
        status(data),
        (EVTCHNSTAT_INTERDOMAIN, [u32::from(ECHO), 1]),
        "status of the data port once bound"
    );
    check_eq!(
        status(ctl),
        (EVTCHNSTAT_INTERDOMAIN, [u32::from(ECHO), 2]),
        "status of the control port once bound"
    );

    // Consent: the echo offered port 3 to domain 3, port 4 to us.
    check_eq!(
        guest::evtchn_bind_interdomain(ECHO, 3),
        Err(Errno::EINVAL),
        "bind a port offered to another domain"
    );
    match guest::evtchn_bind_interdomain(ECHO, 4) {
        Ok(p) => {
            check_eq!(
                status(p),
                (EVTCHNSTAT_INTERDOMAIN, [u32::from(ECHO), 4]),
                "status of the port bound with consent"
            );
            check_eq!(guest::evtchn_close(p), Ok(()), "close it");
            check_eq!(status(p).0, EVTCHNSTAT_CLOSED, "closed");
        }
        Err(e) => failure!("bind the port offered to us: {e}"),
    }

    // Ping-pong: every send is one upcall there and one answer here.
    let base = seen(data);
    let mut lost = 0;
    for i in 1..=PINGS {
        if guest::evtchn_send(data).is_err() || !wait_for(&[data], 1_000, || seen(data) >= base + i)
        {
            lost += 1;
            break;
        }
    }
    check_eq!(lost, 0, "ping-pongs without an answer");
    check_eq!(seen(data) - base, PINGS, "answers to the pings");

    // A flood: 5,000 sends without yielding. The echo still runs while it
    // lasts (its answers arrive during the flood: slices end, it is woken)
    // and still answers afterwards.
    let before = seen(data);
    let mut sends = 0u64;
    for _ in 0..5_000 {
        if guest::evtchn_send(data).is_err() {
            break;
        }
        sends += 1;
    }
    check_eq!(sends, 5_000, "sends of the flood");
    let during = seen(data) - before;
    check!(during > 0, "no answer during a flood of {sends} sends");
    // Let the last answers in.
    let _ = wait_for(&[data], 50, || false);
    let base = seen(data);
    check!(
        guest::evtchn_send(data).is_ok() && wait_for(&[data], 1_000, || seen(data) > base),
        "no answer after the flood"
    );
    println!("flood: {sends} sends, {during} answers during it");

    // Close from this end: the echo's end becomes unbound for us, and binds again.
    check_eq!(guest::evtchn_close(data), Ok(()), "close the data port");
    check_eq!(status(data).0, EVTCHNSTAT_CLOSED, "closed");
    let base = seen(data);
    let again = guest::evtchn_bind_interdomain(ECHO, 1);
    let Ok(again) = again else {
        failure!("bind the echo's end again: {again:?}");
        return;
    };
    check_eq!(again, data, "the lowest free port again");
    // A port that binds starts pending: one upcall, before the call returns.
    check_eq!(seen(again), base + 1, "upcalls of the port bound again");
    check!(
        guest::evtchn_send(again).is_ok() && wait_for(&[again], 1_000, || seen(again) > base + 1),
        "no answer on the port bound again"
    );

    // Close from the echo's end (asked on the control port): ours becomes
    // unbound for it; a send on it is dropped.
    let c0 = seen(ctl);
    check_eq!(guest::evtchn_send(ctl), Ok(()), "ask the echo to close");
    check!(
        wait_for(&[ctl], 1_000, || seen(ctl) > c0),
        "no answer on the control port"
    );
    check_eq!(
        status(again),
        (EVTCHNSTAT_UNBOUND, [u32::from(ECHO), 0]),
        "status once the peer closed"
    );
    let base = seen(again);
    check_eq!(guest::evtchn_send(again), Ok(()), "send on the unbound end");
    check!(
        !wait_for(&[again], 50, || seen(again) > base),
        "an answer to a send on an unbound port"
    );
    check_eq!(guest::evtchn_close(again), Ok(()), "close the unbound end");

    // A domain that ends: its port binds, its last event arrives, then our end
    // becomes unbound and binding its port again is -ESRCH.
    let mut r = Err(Errno::EINVAL);
    let end = events::now_ns() + 5_000_000_000;
    while r == Err(Errno::EINVAL) && events::now_ns() < end {
        r = guest::evtchn_bind_interdomain(ENDER, 1);
        if r.is_err() {
            let _ = guest::sched_yield();
        }
    }
    let Ok(r) = r else {
        failure!("bind domain {ENDER}'s offer: {r:?}");
        return;
    };
    check!(
        wait_for(&[r], 5_000, || status(r).0 == EVTCHNSTAT_UNBOUND),
        "our end of a domain that ended is not unbound: {:?}",
        status(r)
    );
    check_eq!(
        status(r),
        (EVTCHNSTAT_UNBOUND, [u32::from(ENDER), 0]),
        "status of our end once the peer ended"
    );
    check_eq!(
        guest::evtchn_bind_interdomain(ENDER, 1),
        Err(Errno::ESRCH),
        "bind a port of a domain that ended"
    );
    check_eq!(guest::evtchn_send(r), Ok(()), "send to a domain that ended");
    check_eq!(guest::evtchn_close(r), Ok(()), "close it");
    success();
}
