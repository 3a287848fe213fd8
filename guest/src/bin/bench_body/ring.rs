//! The body of `bench_ring` and `bench_ring_2cpu` (ABI 1.1): the split-driver
//! ring of `ring_front`, beside `ring_back` (domain 2, the runner's companion,
//! a service domain; on this domain's CPU, or on another), measured as the
//! other cross-domain figures are (TSC ticks, which under Bochs are emulated
//! instructions; medians):
//!
//! - `ring_round_trip`: one echo request written into the granted
//!   `io/ring.h` page and pushed (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: the
//!   back end sleeps, so it asked: a send), a final check and a sleep in
//!   `SCHEDOP_poll`; the back end wakes, consumes the request, pushes the
//!   response, notifies (this end asked), finds nothing more and polls; this
//!   end wakes and checks the response. Two sends, two blocking polls, two
//!   wake-ups, two domain switches (on two CPUs: none, each CPU idles while
//!   its end sleeps): `evtchn_ping_pong` plus the ring's work on both sides.
//! - `ring_round_trip_batch`: 128 requests (the ring full) pushed at once and
//!   their 128 responses, per request: one notification each way per batch.

use keel_guest::bench::Bench;
use keel_guest::events;
use keel_guest::prelude::*;
use keel_guest::ring::demo::{self, Evtchn, Request, Response, SetupError};
use keel_guest::ring::{run_front, Front, MappedPage};

/// The back end (the first companion).
const PEER: u16 = 2;
/// Requests per batch: the ring's size.
const BATCH: u32 = demo::Geometry::SIZE;

/// The program: both figures, then its verdict.
pub fn run() {
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    events::disable();
    let mut bench = Bench::new();
    let (off, mut front) = match demo::offer(PEER, Ring::init) {
        Ok(o) => o,
        Err(SetupError::NoPeer) => {
            for name in ["ring_round_trip", "ring_round_trip_batch"] {
                bench.missing(
                    name,
                    format_args!("no back end (runs with ring_back as domain 2)"),
                );
            }
            success();
            return;
        }
        Err(e) => {
            failure!("offering the ring: {e:?}");
            return;
        }
    };
    let chan = &off.chan;
    let mut seq = 0u32;
    let mut bad = 0u32;
    let mut round = |front: &mut Front<_, _, _>, n: u32| {
        let base = seq;
        if run_front(
            front,
            &mut &*chan,
            n,
            n,
            |i| demo::echo_request(base + i),
            |i, r| demo::echo_ok(base + i, r),
        )
        .is_err()
        {
            bad += 1;
        }
        seq += n;
    };
    let mut s = [0u64; 200];
    let at = Mark::of(chan);
    bench.measure("ring_round_trip", 1, &mut s, || round(&mut front, 1));
    counts(&mut front, chan, "ring_round_trip", 200, at, 1_000_000);
    let mut s = [0u64; 16];
    let at = Mark::of(chan);
    bench.measure("ring_round_trip_batch", u64::from(BATCH), &mut s, || {
        round(&mut front, BATCH)
    });
    counts(
        &mut front,
        chan,
        "ring_round_trip_batch",
        16 * BATCH,
        at,
        1_000_001,
    );
    check_eq!(bad, 0, "round trips with a wrong or missing response");
    success();
}

type Ring = Front<MappedPage, Request, Response>;

/// This end's counts before a figure.
#[derive(Clone, Copy)]
struct Mark {
    sent: u32,
    waits: u32,
    polls: u32,
}

impl Mark {
    fn of(c: &Evtchn) -> Self {
        Self {
            sent: c.sent(),
            waits: c.waits(),
            polls: c.polls(),
        }
    }
}

/// What the `n` round trips of a figure did besides: each end's
/// notifications and sleeps (the back end's fetched with a `Stats` request,
/// sequence number `seq`, after the figure; its own sequence numbers are far
/// from the echoes').
fn counts(front: &mut Ring, chan: &Evtchn, name: &str, n: u32, at: Mark, seq: u32) {
    let now = Mark::of(chan);
    match demo::fetch_stats(front, chan, seq) {
        Ok(b) => keel_guest::println!(
            "bench_ring: {name}: {n} round trips: notifications front {} back {}; sleeps front {} ({} polls) back {}",
            now.sent - at.sent,
            b.notifies,
            now.waits - at.waits,
            now.polls - at.polls,
            b.waits
        ),
        Err(e) => failure!("{name}: the back end's counts: {e:?}"),
    }
}
