//! The body of the `bench_cpus_N` programs (each domain of one runs the same
//! image): the null hypercall (`xen_version(XENVER_version)`, the loop of
//! `bench_hypercalls`' `xen_version`) timed on each of N CPUs at once, one
//! domain per CPU (`keel.cpu=`, `loader/src/runner.rs`'s `TEST_CPUS`).
//!
//! Each domain reports its own figure, `xen_version.cpuK` for CPU K (the
//! `cpu=K` word the runner gives it beside `keel.cpu=K`); the tool adds
//! `xen_version.worst`, the dearest of them (`loader/src/bench/derive.rs`).
//! Each CPU runs its own domains with no lock on its own exits, so the figure
//! should not grow with N: a growth is a shared lock or line on the null path.
//!
//! Then, from a second common start ([`SECOND_NS`]), `evtchn_send_self.cpuK`:
//! `EVTCHNOP_send` on a loopback interdomain channel (both ends this
//! domain's, as `bench_interdomain`'s `evtchn_send_interdomain`), on each CPU
//! at once. An event-channel operation of a domain whose channels lead only
//! to domains of its own CPU stops no other CPU (`hypervisor/src/peers/links.rs`),
//! so this figure should not grow with N either; were each send a cross-CPU
//! operation, every CPU's sends would stop all the others.
//!
//! All the domains start their loops at the same system time ([`START_NS`]:
//! every CPU's TSC, hence its pvclock, is in step), so the loops overlap:
//! each spins on the clock until then (no exit, no timer: see [`run`]). A
//! domain that arrives after the start would measure alone: it fails
//! instead. Nor may a domain print or end while another still measures (a
//! domain's end is a cross-CPU operation: it stops every other CPU), so each
//! keeps quiet after its loop for as long again as the loop took.
//!
//! Samples are batches of [`PER`] calls, so that a TSC that advances in
//! steps (Bochs with several CPUs: by the longest of one trace of each CPU,
//! run in turn) costs each call at most a few hundredths of a tick.

use crate::abi::event::DOMID_SELF;
use crate::abi::guest::{self, hypercall_scalar};
use crate::abi::hypercall::Hypercall;
use crate::abi::version::XENVER_VERSION;
use crate::arch;
use crate::bench::Bench;
use crate::events;
use crate::prelude::*;

/// The system time at which every domain starts its loop: well after the
/// last domain of a 4-CPU machine has started. Under Bochs, on 2 CPUs, the
/// domains start at about 0.66 s, within milliseconds of each other; under
/// nested KVM, where each of a domain's start-up hypercalls costs exits to L0
/// and back, at 1.4 s (CPU 1) and 1.8 s (CPU 0, whose QEMU thread shared L0's
/// one CPU with CPU 1's spinning domain).
pub const START_NS: u64 = 5_000_000_000;
/// The system time of the second common start (the sends): well after
/// the first loop and its quiet time on every platform (under Bochs the
/// first loop takes about 0.2 s, under nested KVM under 1 s).
pub const SECOND_NS: u64 = START_NS + 4_000_000_000;
/// Calls per sample.
pub const PER: u64 = 100;
/// Samples per figure.
const SAMPLES: usize = 20;

/// The figures' names for CPU `cpu` (`xen_version.cpu0` ... `.cpu7`, and
/// `evtchn_send_self.cpu0` ...).
pub fn figure_names(cpu: u32) -> Option<(&'static str, &'static str)> {
    const NAMES: [(&str, &str); 8] = [
        ("xen_version.cpu0", "evtchn_send_self.cpu0"),
        ("xen_version.cpu1", "evtchn_send_self.cpu1"),
        ("xen_version.cpu2", "evtchn_send_self.cpu2"),
        ("xen_version.cpu3", "evtchn_send_self.cpu3"),
        ("xen_version.cpu4", "evtchn_send_self.cpu4"),
        ("xen_version.cpu5", "evtchn_send_self.cpu5"),
        ("xen_version.cpu6", "evtchn_send_self.cpu6"),
        ("xen_version.cpu7", "evtchn_send_self.cpu7"),
    ];
    NAMES.get(cpu as usize).copied()
}

/// Spin on the clock until system time `t` (no exit: the pvclock is read in
/// place) rather than block on a timer: a timer bound or armed makes every
/// later exit look at it, and the loops would measure that too.
fn spin_until(t: u64) {
    while events::now_ns() < t {}
}

/// The program of the domain on CPU `cpu=` (0 when the command line does not
/// say): wait for the common start, measure, wait for the second, measure,
/// report.
pub fn run() {
    let cpu = crate::start::cmdline_value(cmdline(), "cpu")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    let Some((name, send_name)) = figure_names(cpu) else {
        failure!("cpu={cpu}: at most 8 CPUs");
        return;
    };
    // The loopback channel, before the start: binding it reaches other
    // CPUs (`bind_interdomain` is a cross-CPU operation).
    let a = guest::evtchn_alloc_unbound_for(DOMID_SELF);
    let b = a.and_then(|a| guest::evtchn_bind_interdomain(DOMID_SELF, a));
    let (Ok(a), Ok(_)) = (a, b) else {
        failure!("cpu {cpu}: loopback channel: {a:?} {b:?}");
        return;
    };
    let arrived = events::now_ns();
    if arrived >= START_NS {
        failure!("cpu {cpu}: started at {arrived} ns, too late for the common start at {START_NS} ns: the loops would not overlap");
        return;
    }
    // Upcalls masked, IF set: another domain's cross-CPU operation (its
    // binding above) must be able to take this CPU out of the guest, which
    // Bochs does not do for a guest spinning with IF clear
    // (docs/platforms.md, `bochs-extint-masked-by-guest-if`).
    events::disable();
    arch::sti();
    spin_until(START_NS);
    let began = events::now_ns();
    let want = i64::from(guest::xen_version().encode());
    let mut bench = Bench::new();
    let mut samples = [0u64; SAMPLES];
    let mut errors = 0u32;
    let fig = bench.run(name, PER, &mut samples, || {
        for _ in 0..PER {
            if hypercall_scalar(Hypercall::XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0]) != want {
                errors += 1;
            }
        }
    });
    let ended = events::now_ns();
    if ended >= SECOND_NS {
        failure!("cpu {cpu}: the first loop ended at {ended} ns, after the second start at {SECOND_NS} ns");
        return;
    }
    spin_until(SECOND_NS);
    let began2 = events::now_ns();
    let mut send_errors = 0u32;
    let fig2 = bench.run(send_name, PER, &mut samples, || {
        for _ in 0..PER {
            if guest::evtchn_send(a).is_err() {
                send_errors += 1;
            }
        }
    });
    let ended2 = events::now_ns();
    // Stay quiet (no console line, no end: a domain's end stops every other
    // CPU) until the slowest loop is surely over: as long again as this one.
    spin_until(ended2 + (ended2 - began2));
    if let Some(fig) = fig {
        bench.report(name, PER, &fig);
    }
    if let Some(fig) = fig2 {
        bench.report(send_name, PER, &fig);
    }
    crate::println!(
        "bench_cpus: cpu {cpu}: arrived at {arrived} ns, measured from {began} to {ended} ns and from {began2} to {ended2} ns"
    );
    check_eq!(
        errors,
        0,
        "null hypercalls that returned an unexpected value"
    );
    check_eq!(send_errors, 0, "sends that failed");
    success();
}
