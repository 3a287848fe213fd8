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
/// Calls per sample.
pub const PER: u64 = 100;
/// Samples per figure.
const SAMPLES: usize = 20;

/// The figure's name for CPU `cpu` (`xen_version.cpu0` ... `.cpu7`).
pub fn figure_name(cpu: u32) -> Option<&'static str> {
    const NAMES: [&str; 8] = [
        "xen_version.cpu0",
        "xen_version.cpu1",
        "xen_version.cpu2",
        "xen_version.cpu3",
        "xen_version.cpu4",
        "xen_version.cpu5",
        "xen_version.cpu6",
        "xen_version.cpu7",
    ];
    NAMES.get(cpu as usize).copied()
}

/// The program of the domain on CPU `cpu=` (0 when the command line does not
/// say): wait for the common start, measure, report.
pub fn run() {
    let cpu = crate::start::cmdline_value(cmdline(), "cpu")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    let Some(name) = figure_name(cpu) else {
        failure!("cpu={cpu}: at most 8 CPUs");
        return;
    };
    let arrived = events::now_ns();
    if arrived >= START_NS {
        failure!("cpu {cpu}: started at {arrived} ns, too late for the common start at {START_NS} ns: the loops would not overlap");
        return;
    }
    // Spin on the clock (no exit: the pvclock is read in place) rather
    // than block on a timer: a timer bound or armed makes every later exit
    // look at it, and the loop would measure that too.
    arch::cli();
    events::disable();
    while events::now_ns() < START_NS {}
    let began = events::now_ns();
    let want = i64::from(guest::xen_version().encode());
    let mut b = Bench::new();
    let mut samples = [0u64; SAMPLES];
    let mut errors = 0u32;
    let fig = b.run(name, PER, &mut samples, || {
        for _ in 0..PER {
            if hypercall_scalar(Hypercall::XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0]) != want {
                errors += 1;
            }
        }
    });
    let ended = events::now_ns();
    // Stay quiet (no console line, no end: a domain's end stops every other
    // CPU) until the slowest loop is surely over: as long again as this one.
    let quiet = ended + (ended - began);
    while events::now_ns() < quiet {}
    if let Some(fig) = fig {
        b.report(name, PER, &fig);
    }
    crate::println!(
        "bench_cpus: cpu {cpu}: arrived at {arrived} ns, measured from {began} to {ended} ns"
    );
    check_eq!(
        errors,
        0,
        "null hypercalls that returned an unexpected value"
    );
    success();
}
