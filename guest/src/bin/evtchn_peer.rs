//! A companion for the interdomain event-channel tests (ABI 1.1), by its
//! `role=` word (docs/abi/domains.md, "Finding each other"):
//!
//! - `role=echo`: binds ports 1 (data) and 2 (control) of domain
//!   `peer=` (default 1), which that domain offered it as its first two
//!   allocations, retrying while they are not offered yet; then offers its own
//!   port 3 to domain 3 and port 4 to the peer, and says it is ready with an
//!   event on the control port. From then on it answers every upcall of its
//!   data port with a send on it, and an event on the control port by closing
//!   its data port and answering on the control port. It runs until it is
//!   destroyed (`keel.service`); a refusal it did not expect crashes it, which
//!   fails the test.
//! - no `role=` (alone, as every test program also runs): a loopback channel,
//!   offered to itself and bound by itself; a send on either end is an upcall
//!   on the other; closing one end leaves the other unbound.
//! - `role=pong` (for `bench_interdomain`): binds port 1 of the peer, then,
//!   upcalls masked, waits in `SCHEDOP_poll` on it, clears its pending bits
//!   and sends back, until it is destroyed (`keel.service`).
//! - `role=flood` (for `evtchn_close_race_2cpu`): binds port 1 of the peer
//!   whenever it is offered, and sends on it without pause; when the peer
//!   closes its end (ours becomes unbound), closes ours and binds again; once
//!   the peer has ended, yields until it is destroyed (`keel.service`).
//! - `role=offer_exit`: offers its port 1 to the peer, waits (bounded) until
//!   the peer has bound it (60 s of system time), sends one event on it,
//!   and ends.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};

use keel_guest::abi::event::{DOMID_SELF, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND};
use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;
use keel_guest::start::cmdline_value;

keel_guest::test! {
    title: "Interdomain event-channel companion: an echo, or a domain that offers a port and ends",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

const VECTOR: u8 = 0xf6;
static DATA: AtomicU32 = AtomicU32::new(u32::MAX);
static CTL: AtomicU32 = AtomicU32::new(u32::MAX);
static CLOSE: AtomicBool = AtomicBool::new(false);

fn on_event(port: u32) {
    if port == DATA.load(SeqCst) {
        // An echo: a send back for every upcall of the data port.
        let _ = guest::evtchn_send(port);
    } else if port == CTL.load(SeqCst) {
        CLOSE.store(true, SeqCst);
    }
}

/// End at once as a crash: a companion's verdict counts only through how it
/// ends (a crash fails the test; a service domain's result line is never
/// judged).
fn bail(what: core::fmt::Arguments<'_>) -> ! {
    keel_guest::report::crash(what)
}

/// Bind `port` of `dom`, retrying while it is not offered yet (`-EINVAL`),
/// yielding between tries, for at most 5 s of system time.
fn bind_when_offered(dom: u16, port: u32) -> u32 {
    let end = events::now_ns() + 5_000_000_000;
    loop {
        match guest::evtchn_bind_interdomain(dom, port) {
            Ok(p) => return p,
            Err(Errno::EINVAL) if events::now_ns() < end => {
                let _ = guest::sched_yield();
            }
            Err(e) => bail(format_args!("bind port {port} of domain {dom}: {e}")),
        }
    }
}

fn test_main() {
    let cmd = cmdline();
    let peer = cmdline_value(cmd, "peer")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(1);
    if events::shared_info().is_none() {
        bail(format_args!("no shared_info page"));
    }
    if let Err(e) = events::set_upcall_handler(VECTOR, on_event) {
        bail(format_args!("callback vector: {e}"));
    }
    match cmdline_value(cmd, "role") {
        Some("offer_exit") => offer_exit(peer),
        Some("echo") => echo(peer),
        Some("pong") => pong(peer),
        Some("flood") => flood(peer),
        _ => loopback(),
    }
}

fn echo(peer: u16) {
    let data = bind_when_offered(peer, 1);
    let ctl = bind_when_offered(peer, 2);
    // A port that binds starts pending (Xen: nothing sent before is lost);
    // nothing was, so these are not requests.
    for p in [data, ctl] {
        events::pending_word((p / 64) as usize).fetch_and(!(1u64 << (p % 64)), SeqCst);
    }
    DATA.store(data, SeqCst);
    CTL.store(ctl, SeqCst);
    // Port 3: offered to domain 3 (the peer may not bind it); port 4: to the peer.
    for (want, to) in [(3, 3), (4, peer)] {
        match guest::evtchn_alloc_unbound_for(to) {
            Ok(p) if p == want => {}
            r => bail(format_args!("offer port {want} to {to}: {r:?}")),
        }
    }
    if let Err(e) = guest::evtchn_send(ctl) {
        bail(format_args!("ready: {e}"));
    }
    events::enable();
    arch::sti();
    let _ = guest::xen_version();
    loop {
        arch::cli();
        events::disable();
        if CLOSE.swap(false, SeqCst) {
            events::enable();
            arch::sti();
            if let Err(e) = guest::evtchn_close(data) {
                bail(format_args!("close the data port: {e}"));
            }
            if let Err(e) = guest::evtchn_send(ctl) {
                bail(format_args!("answer on the control port: {e}"));
            }
            continue;
        }
        if let Err(e) = guest::sched_block() {
            bail(format_args!("SCHEDOP_block: {e}"));
        }
        events::enable();
        arch::sti();
        // The upcall is taken here, past STI's shadow (the loop's CLI could
        // otherwise follow STI at once and close the window again).
        let _ = guest::xen_version();
    }
}

fn offer_exit(peer: u16) {
    let p = match guest::evtchn_alloc_unbound_for(peer) {
        Ok(p) => p,
        Err(e) => bail(format_args!("offer a port to {peer}: {e}")),
    };
    let end = events::now_ns() + 60_000_000_000;
    loop {
        match guest::evtchn_status(p) {
            Ok(s) if s.status == EVTCHNSTAT_INTERDOMAIN => break,
            Ok(_) if events::now_ns() < end => {
                let _ = guest::sched_yield();
            }
            r => bail(format_args!("waiting for domain {peer} to bind: {r:?}")),
        }
    }
    if let Err(e) = guest::evtchn_send(p) {
        bail(format_args!("send before ending: {e}"));
    }
    println!("offered port {p} to domain {peer}, bound, sent; ending");
    success();
}

static SEEN: [AtomicU32; 8] = [const { AtomicU32::new(0) }; 8];

fn count(port: u32) {
    if let Some(c) = SEEN.get(port as usize) {
        c.fetch_add(1, SeqCst);
    }
}

fn seen(p: u32) -> u32 {
    SEEN.get(p as usize).map_or(0, |c| c.load(SeqCst))
}

fn loopback() {
    check_eq!(
        events::set_upcall_handler(VECTOR, count),
        Ok(()),
        "callback vector"
    );
    events::enable();
    arch::sti();
    let a = match guest::evtchn_alloc_unbound_for(DOMID_SELF) {
        Ok(a) => a,
        Err(e) => {
            failure!("alloc_unbound for ourselves: {e}");
            return;
        }
    };
    let b = match guest::evtchn_bind_interdomain(DOMID_SELF, a) {
        Ok(b) => b,
        Err(e) => {
            failure!("bind our own offer: {e}");
            return;
        }
    };
    // A port that binds starts pending: its upcall came with the call.
    check_eq!(seen(b), 1, "upcalls of the port that bound");
    let s = guest::evtchn_status(a).map(|s| (s.status, s.u[1]));
    check_eq!(
        s,
        Ok((EVTCHNSTAT_INTERDOMAIN, b)),
        "status of the offer once bound"
    );
    check_eq!(guest::evtchn_send(a), Ok(()), "send on the offer");
    check_eq!(seen(b), 2, "upcalls on the other end");
    check_eq!(guest::evtchn_send(b), Ok(()), "send back");
    check_eq!(seen(a), 1, "upcalls on the offer");
    check_eq!(guest::evtchn_close(b), Ok(()), "close one end");
    let s = guest::evtchn_status(a).map(|s| s.status);
    check_eq!(s, Ok(EVTCHNSTAT_UNBOUND), "the other end once one closed");
    check_eq!(guest::evtchn_send(a), Ok(()), "send on it (dropped)");
    check_eq!(seen(a) + seen(b), 3, "upcalls after a dropped send");
    check_eq!(guest::evtchn_close(a), Ok(()), "close it");
    println!("loopback channel: ports {a} and {b}");
    success();
}

fn flood(peer: u16) {
    events::disable();
    loop {
        // Offered again after each close; not offered while the peer looks
        // at the closed port (-EINVAL). A peer that ended (-ESRCH) is done
        // with the flood: this domain only waits to be destroyed.
        let p = loop {
            match guest::evtchn_bind_interdomain(peer, 1) {
                Ok(p) => break p,
                Err(Errno::EINVAL) => {}
                Err(Errno::ESRCH) => loop {
                    let _ = guest::sched_yield();
                },
                Err(e) => bail(format_args!("bind port 1 of domain {peer}: {e}")),
            }
            let _ = guest::sched_yield();
        };
        loop {
            for _ in 0..16 {
                if let Err(e) = guest::evtchn_send(p) {
                    bail(format_args!("send on port {p}: {e}"));
                }
            }
            match guest::evtchn_status(p) {
                Ok(s) if s.status == EVTCHNSTAT_INTERDOMAIN => {}
                Ok(s) if s.status == EVTCHNSTAT_UNBOUND => break,
                r => bail(format_args!("status of port {p}: {r:?}")),
            }
        }
        if let Err(e) = guest::evtchn_close(p) {
            bail(format_args!("close port {p}: {e}"));
        }
    }
}

fn pong(peer: u16) {
    events::disable();
    let p = bind_when_offered(peer, 1);
    // Its bind left it pending: not a ping.
    events::pending_word((p / 64) as usize).fetch_and(!(1u64 << (p % 64)), SeqCst);
    loop {
        if let Err(e) = guest::sched_poll(&[p], 0) {
            bail(format_args!("SCHEDOP_poll: {e}"));
        }
        events::pending_word((p / 64) as usize).fetch_and(!(1u64 << (p % 64)), SeqCst);
        events::pending_sel().store(0, SeqCst);
        events::upcall_pending().store(0, SeqCst);
        if let Err(e) = guest::evtchn_send(p) {
            bail(format_args!("send back: {e}"));
        }
    }
}
