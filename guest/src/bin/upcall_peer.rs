//! The companion of `bench_upcall` and `bench_upcall_2cpu` (ABI 1.1): it
//! meets domain `peer=` (default 1) as the split-driver demo's back end does
//! (maps its granted page, binds its port), then halts with upcalls enabled
//! (`STI; HLT`); its upcall handler reads the TSC first thing, writes it and
//! the sequence number it found on the page, and sends back
//! (`guest/src/bin/bench_body/upcall.rs` describes the measurement). Once
//! its handler is live it sends once, to say so. It runs
//! until it is destroyed (`keel.service`). Alone (no domain offers a page)
//! it reports SKIP.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;
use keel_guest::ring::demo::{self, SetupError};
use keel_guest::ring::{MappedPage, Page};

keel_guest::test! {
    title: "The peer of the send-to-upcall benchmarks: answers each upcall with its TSC and a send",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

const VECTOR: u8 = 0xf6;
/// The page words (`bench_body/upcall.rs`'s `W_*`).
const W_SEQ: usize = 0;
const W_ANSWERED: usize = 1;
const W_TSC_LO: usize = 2;
const W_TSC_HI: usize = 3;

static PAGE_VA: AtomicU64 = AtomicU64::new(0);
static PORT: AtomicU32 = AtomicU32::new(u32::MAX);

fn on_event(port: u32) {
    let t = arch::rdtsc();
    if port != PORT.load(SeqCst) {
        return;
    }
    let page = MappedPage::new(PAGE_VA.load(SeqCst));
    page.store(W_TSC_LO, t as u32);
    page.store(W_TSC_HI, (t >> 32) as u32);
    page.store(W_ANSWERED, page.load(W_SEQ));
    page.fence();
    if let Err(e) = guest::evtchn_send(port) {
        keel_guest::report::crash(format_args!("send back: {e}"));
    }
}

fn test_main() {
    let peer = keel_guest::start::cmdline_value(cmdline(), "peer")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(1);
    if events::shared_info().is_none() {
        keel_guest::report::crash(format_args!("no shared_info page"));
    }
    events::disable();
    let a = match demo::attach(peer) {
        Ok(a) => a,
        Err(SetupError::NoPeer) => {
            skip!("no domain offered a page (runs with bench_upcall)");
            return;
        }
        Err(e) => keel_guest::report::crash(format_args!("meeting domain {peer}: {e:?}")),
    };
    PAGE_VA.store(a.va.get(), SeqCst);
    PORT.store(a.chan.port(), SeqCst);
    if let Err(e) = events::set_upcall_handler(VECTOR, on_event) {
        keel_guest::report::crash(format_args!("callback vector: {e}"));
    }
    events::enable();
    // Ready: from here every send reaches the handler. A send that came
    // before `attach` cleared the port's bind-time pending bit was lost with
    // it (it found the bit set and raised nothing), so the other end sends
    // nothing before this notification.
    if let Err(e) = guest::evtchn_send(a.chan.port()) {
        keel_guest::report::crash(format_args!("ready: {e}"));
    }
    loop {
        // Halted with upcalls on: each send wakes it straight into the handler.
        arch::sti_hlt();
    }
}
