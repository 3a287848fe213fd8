//! The split-driver demo (ABI 1.1): this domain is the front end, and
//! `ring_back` (domain 2 here, `peer=<id>` to change it) the back end. They
//! exchange requests and responses over one page laid out as Xen's
//! `io/ring.h`, which this domain grants to the back end, with an event
//! channel it offers ([`keel_guest::ring::demo`]).
//!
//! Each end notifies the other only when the other asked (its `*_event`
//! index: `RING_PUSH_*_AND_CHECK_NOTIFY`) and sleeps in `SCHEDOP_poll` when it
//! has nothing to do, after `RING_FINAL_CHECK_FOR_*` found nothing.
//!
//! 1. **Lockstep**: 200 echo requests, one outstanding at a time: every round
//!    trip is a notification each way and a sleep on each side.
//! 2. **Full ring**: 1,024 echo requests with up to 128 (the ring's size)
//!    outstanding: the ends notify once per batch, so fewer than one
//!    notification per round trip (checked).
//!
//! Every response is checked: its sequence number (in order: no loss, no
//! duplicate), its status, and the payload transformed as the back end
//! must. For each phase it reports round trips per second (pvclock time),
//! TSC ticks per round trip (emulated instructions under Bochs) and the
//! notifications per round trip, each end's (the back end's counted by it
//! and fetched with a `Stats` request after the phase).
//!
//! 3. **A hostile back end**: after a `Probe` request the back end publishes a
//!    `rsp_prod` 4,096 beyond the requests made (and garbage in the slots).
//!    The front end must refuse it (`RING_RESPONSE_PROD_OVERFLOW`) and
//!    consume nothing: trusting it would read garbage as responses.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::events;
use keel_guest::prelude::*;
use keel_guest::ring::demo::{self, Evtchn, Op, Request, Response, SetupError};
use keel_guest::ring::{run_front, Channel, Front, FrontError, MappedPage, ResponseOverflow};
use keel_guest::tsc;

keel_guest::test! {
    title: "Split-driver demo: requests and responses over a granted io/ring.h ring, notified only when asked",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

type Ring = Front<MappedPage, Request, Response>;

/// Round trips in the lockstep phase.
const LOCKSTEP: u32 = 200;
/// Round trips in the full-ring phase.
const FULL: u32 = 1024;

fn test_main() {
    let peer = keel_guest::start::cmdline_value(cmdline(), "peer")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(2);
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    // Upcalls stay masked: the ends sleep in SCHEDOP_poll.
    events::disable();
    let (off, mut front) = match demo::offer(peer, Ring::init) {
        Ok(o) => o,
        Err(SetupError::NoPeer) => {
            skip!("no back end bound the ring's port (run with ring_back)");
            return;
        }
        Err(e) => {
            failure!("offering the ring: {e:?}");
            return;
        }
    };
    let chan = &off.chan;
    println!(
        "ring: domain {peer} attached; {} entries of {} bytes in one granted page",
        front.size(),
        demo::Geometry::ENTRY
    );
    let mut seq = 0;
    let Some(lock) = phase(&mut front, chan, &mut seq, "lockstep", LOCKSTEP, 1) else {
        return;
    };
    check!(
        lock.front_notifies <= LOCKSTEP && lock.back_notifies <= LOCKSTEP,
        "lockstep: at most one notification each way per round trip ({} and {})",
        lock.front_notifies,
        lock.back_notifies
    );
    let size = front.size();
    let Some(full) = phase(&mut front, chan, &mut seq, "full ring", FULL, size) else {
        return;
    };
    check!(
        full.front_notifies + full.back_notifies < FULL,
        "full ring: batching sends fewer than one notification per round trip ({} + {} for {FULL})",
        full.front_notifies,
        full.back_notifies
    );
    probe(&mut front, chan, seq);
    success();
}

/// What a phase measured.
struct Phase {
    front_notifies: u32,
    back_notifies: u32,
}

/// `x / y` with two decimals.
struct Ratio(u64, u64);

impl core::fmt::Display for Ratio {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let c = (self.0 * 100).checked_div(self.1).unwrap_or(0);
        write!(f, "{}.{:02}", c / 100, c % 100)
    }
}

/// `total` echo round trips with at most `window` outstanding, timed, then a
/// `Stats` round trip for the back end's counts.
fn phase(
    front: &mut Ring,
    chan: &Evtchn,
    seq: &mut u32,
    name: &str,
    total: u32,
    window: u32,
) -> Option<Phase> {
    let base = *seq;
    let (polls0, waits0) = (chan.polls(), chan.waits());
    let t0 = events::now_ns();
    let c0 = tsc::rdtsc_ordered();
    let r = run_front(
        front,
        &mut &*chan,
        total,
        window,
        |n| demo::echo_request(base + n),
        |n, r| demo::echo_ok(base + n, r),
    );
    let ticks = tsc::rdtsc_ordered() - c0;
    let ns = events::now_ns() - t0;
    let st = match r {
        Ok(st) => st,
        Err(FrontError::WrongResponse(n)) => {
            failure!(
                "{name}: response {n} is not the answer to request {}",
                base + n
            );
            return None;
        }
        Err(FrontError::Overflow(o)) => {
            failure!("{name}: the back end published an impossible rsp_prod: {o:?}");
            return None;
        }
    };
    let (polls, waits) = (chan.polls() - polls0, chan.waits() - waits0);
    *seq = base + total + 1;
    let back = match demo::fetch_stats(front, chan, base + total) {
        Ok(b) => b,
        Err(e) => {
            failure!("{name}: the back end's counts: {e:?}");
            return None;
        }
    };
    let (back_notifies, back_waits) = (back.notifies, back.waits);
    let n = u64::from(total);
    println!(
        "ring: {name} ({} outstanding at most): {total} round trips, every response checked, in {} us",
        window.min(front.size()),
        ns / 1000
    );
    println!(
        "ring: {name}: {} round trips/s, {} TSC ticks (instructions under Bochs) per round trip",
        (n * 1_000_000_000).checked_div(ns).unwrap_or(0),
        ticks / n
    );
    println!(
        "ring: {name}: notifications per round trip {} (front {}, back {}); sleeps: front {waits} ({polls} polls), back {back_waits}",
        Ratio(u64::from(st.notifies) + u64::from(back_notifies), n),
        st.notifies,
        back_notifies
    );
    Some(Phase {
        front_notifies: st.notifies,
        back_notifies,
    })
}

/// The hostile back end: its `rsp_prod` after a `Probe` must be refused,
/// with nothing consumed.
fn probe(front: &mut Ring, chan: &Evtchn, seq: u32) {
    let r = run_front(
        front,
        &mut &*chan,
        1,
        1,
        |_| Request {
            seq,
            op: Op::Probe,
            payload: 0,
        },
        |_, r| r.seq == seq && r.status == demo::STATUS_OK,
    );
    let consumed = front.consumed();
    let refused: Option<ResponseOverflow> = match r {
        Err(FrontError::Overflow(o)) => Some(o),
        Err(e) => {
            failure!("probe: {e:?}");
            return;
        }
        // The honest answer came first: the bogus index follows it.
        Ok(_) => loop {
            match front.response() {
                Err(o) => break Some(o),
                Ok(Some(r)) => {
                    failure!("probe: consumed a response to no request: {r:?}");
                    break None;
                }
                Ok(None) => {
                    if !front.final_check_for_responses() {
                        (&*chan).wait();
                    }
                }
            }
        },
    };
    let Some(o) = refused else {
        return;
    };
    check_eq!(
        o.rsp_prod.wrapping_sub(o.req_prod),
        demo::PROBE_OVERRUN,
        "the refused rsp_prod is the back end's bogus one ({o:?})"
    );
    check_eq!(
        front.consumed(),
        consumed,
        "nothing consumed past the bogus rsp_prod"
    );
    println!(
        "ring: a hostile back end published rsp_prod {:#x} with {} requests made: refused, nothing consumed",
        o.rsp_prod, o.req_prod
    );
}
