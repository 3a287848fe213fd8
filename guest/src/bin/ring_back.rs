//! The split-driver demo's back end (ABI 1.1): the companion of `ring_front`
//! (and, as a service domain, of `bench_ring`). The front end's id is
//! `peer=<id>` on the command line (default 1).
//!
//! It maps the front end's ring grant and binds its port
//! ([`keel_guest::ring::demo::attach`]), then serves the ring
//! ([`keel_guest::ring::serve`]): an echo request is answered with the
//! payload transformed, a `Stats` request with the notifications it sent and
//! the times it slept since the previous one. It notifies only when the front
//! end asked (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`) and sleeps in
//! `SCHEDOP_poll` after `RING_FINAL_CHECK_FOR_REQUESTS` found nothing.
//!
//! A `Probe` request turns it hostile: it answers it, then fills every other
//! slot with garbage, publishes a `rsp_prod` far beyond the requests, notifies
//! whether asked or not, unmaps the ring, closes its port and ends. The front
//! end must refuse that index. Alone (no front end offers a ring) it reports
//! SKIP.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::events;
use keel_guest::prelude::*;
use keel_guest::ring::demo::{self, Op, Request, Response, SetupError, STATUS_BAD_OP, STATUS_OK};
use keel_guest::ring::{serve, Back, Channel, Flow, MappedPage, Page, PAGE_WORDS, RSP_PROD};

keel_guest::test! {
    title: "Split-driver demo, back end: serves ring_front's requests over a granted ring",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

fn test_main() {
    let peer = keel_guest::start::cmdline_value(cmdline(), "peer")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(1);
    if events::shared_info().is_none() {
        keel_guest::report::crash(format_args!("no shared_info page"));
    }
    // Upcalls stay masked: the ends sleep in SCHEDOP_poll.
    events::disable();
    let a = match demo::attach(peer) {
        Ok(a) => a,
        Err(SetupError::NoPeer) => {
            skip!("no front end offered a ring (run with ring_front)");
            return;
        }
        Err(e) => keel_guest::report::crash(format_args!("attaching to the ring: {e:?}")),
    };
    let chan = &a.chan;
    let mut back = Back::<MappedPage, Request, Response>::attach(a.page);
    let mut echoes = 0u64;
    loop {
        let (sent, waits) = (chan.sent(), chan.waits());
        let mut probe = false;
        serve(&mut back, &mut &a.chan, |q: &Request| {
            let ok = |value| Response {
                seq: q.seq,
                status: STATUS_OK,
                value,
            };
            match q.op {
                Op::Echo => {
                    echoes += 1;
                    (ok(demo::echo(q.seq, q.payload)), Flow::More)
                }
                Op::Stats => {
                    let c = demo::BackCounts {
                        notifies: chan.sent().wrapping_sub(sent),
                        waits: chan.waits().wrapping_sub(waits),
                    };
                    (ok(c.pack()), Flow::Stop)
                }
                Op::Probe => {
                    probe = true;
                    (ok(0), Flow::Stop)
                }
                Op::Unknown(_) => (
                    Response {
                        seq: q.seq,
                        status: STATUS_BAD_OP,
                        value: 0,
                    },
                    Flow::More,
                ),
            }
        });
        if probe {
            break;
        }
    }
    hostile(a.page);
    let mut c = &a.chan;
    c.notify();
    println!(
        "ring_back: answered {echoes} echoes; sent {} notifications, slept {} times ({} polls); then published a bogus rsp_prod",
        chan.sent(),
        chan.waits(),
        chan.polls()
    );
    if let Err(e) = demo::detach(&a) {
        keel_guest::report::crash(format_args!("detaching from the ring: {e:?}"));
    }
    success();
}

/// Garbage in every slot but the last response's (the front end may still
/// be reading that one), then `rsp_prod` far beyond the requests.
fn hostile(page: MappedPage) {
    let honest = page.load(RSP_PROD);
    let keep = demo::Geometry::entry_word(honest.wrapping_sub(1));
    let first = demo::Geometry::entry_word(0);
    for w in first..PAGE_WORDS {
        if !(keep..keep + demo::Geometry::ENTRY / 4).contains(&w) {
            page.store(w, 0xdead_beef);
        }
    }
    page.store(RSP_PROD, honest.wrapping_add(demo::PROBE_OVERRUN));
    page.fence();
}
