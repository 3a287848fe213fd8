//! The body of `bench_upcall` and `bench_upcall_2cpu` (ABI 1.1): the latency
//! from an `EVTCHNOP_send` to the upcall handler of the domain at the other
//! end (`upcall_peer`, domain 2: on this domain's CPU, or on another).
//!
//! The two domains meet as the split-driver demo's ends do
//! (`keel_guest::ring::demo`: a granted page and a port), and this domain
//! waits for the peer's first send, which says its handler is live. Each sample: this
//! domain writes a sequence number on the page, reads its TSC and sends; the
//! peer, halted with upcalls enabled (`STI; HLT`), takes the upcall, reads
//! its TSC first thing in its handler, writes it and the sequence number on
//! the page and sends back; this domain waits in `SCHEDOP_poll` (upcalls
//! masked) and takes the peer's TSC minus its own as the sample. Before
//! each send it waits `SETTLE_NS`, so that the peer has halted again.
//! Every CPU's TSC is one clock (the boot checks them in sync), so the
//! difference is the latency whichever CPU the peer is on.
//!
//! - `evtchn_send_to_upcall`: on one CPU it holds this domain's send, its
//!   poll that blocks, the switch to the peer and the upcall's injection; on
//!   two, the send as a cross-CPU operation (the peer's CPU, idle, lends its
//!   domain), the peer's CPU waking from its idle HLT, the VM entry and the
//!   injection. This domain's own exits are counted (the counters are per
//!   CPU); the answer's path back is outside the sample.

use keel_guest::abi::guest;
use keel_guest::bench::Bench;
use keel_guest::events;
use keel_guest::prelude::*;
use keel_guest::ring::demo::{self, SetupError};
use keel_guest::ring::{Channel, Page};
use keel_guest::tsc;

/// The peer (the first companion).
const PEER: u16 = 2;
/// Page words: the sequence number this domain sends, the one the peer
/// answers, and the peer's TSC in the handler (low, high).
pub const W_SEQ: usize = 0;
/// See [`W_SEQ`].
pub const W_ANSWERED: usize = 1;
/// See [`W_SEQ`].
pub const W_TSC_LO: usize = 2;
/// See [`W_SEQ`].
pub const W_TSC_HI: usize = 3;

/// How long the peer is given to halt again before each send: 10 ms of
/// system time (20,000 instructions under Bochs; a halted peer's round ends
/// in a few thousand).
const SETTLE_NS: u64 = 10_000_000;

/// Wait [`SETTLE_NS`], spinning in guest mode. On one CPU the peer, if
/// still runnable, takes the CPU at this domain's slice end meanwhile: that
/// exit is counted with the sample's (the counters run over the whole loop).
fn settle() {
    let end = events::now_ns() + SETTLE_NS;
    while events::now_ns() < end {
        core::hint::spin_loop();
    }
}

/// The program: the figure, then its verdict.
pub fn run() {
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    events::disable();
    let mut bench = Bench::new();
    let off = match demo::offer(PEER, |page| page) {
        Ok((o, _)) => o,
        Err(SetupError::NoPeer) => {
            bench.missing(
                "evtchn_send_to_upcall",
                format_args!("no peer (runs with upcall_peer as domain 2)"),
            );
            success();
            return;
        }
        Err(e) => {
            failure!("meeting the peer: {e:?}");
            return;
        }
    };
    let page = off.page;
    let mut chan = &off.chan;
    // The peer says when its handler is live; a send before that could be
    // lost in its setup (`upcall_peer`).
    chan.wait();
    let (mut errors, mut bad) = (0u32, 0u32);
    let mut s = [0u64; 200];
    let started = bench.start();
    for (i, sample) in s.iter_mut().enumerate() {
        let seq = i as u32 + 1;
        // The peer halts after each answer: a send before it has would
        // time the rest of the peer's last round too (on one CPU it did,
        // 4,908 instructions against 2,103 with the wait).
        settle();
        chan.take_pending();
        page.store(W_SEQ, seq);
        page.fence();
        let t0 = tsc::rdtsc_ordered();
        if guest::evtchn_send(chan.port()).is_err() {
            errors += 1;
            continue;
        }
        chan.wait();
        let t1 = u64::from(page.load(W_TSC_LO)) | u64::from(page.load(W_TSC_HI)) << 32;
        if page.load(W_ANSWERED) != seq || t1 < t0 {
            bad += 1;
        }
        *sample = t1.saturating_sub(t0);
    }
    bench.finish("evtchn_send_to_upcall", 1, &mut s, started);
    check_eq!(errors, 0, "sends that failed");
    check_eq!(bad, 0, "samples without the peer's answer to them");
    success();
}
