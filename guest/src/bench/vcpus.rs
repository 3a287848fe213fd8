//! The body of the `bench_vcpus_N` programs (ABI 1.2 preview): the null
//! hypercall (`xen_version(XENVER_version)`, as [`super::cpus`]), `CPUID`
//! leaf 0 and `VCPUOP_is_up` timed on each of one domain's N vCPUs at once, vCPU K on
//! CPU K (the runner boots the domain with `keel.vcpus=N` and
//! `keel.vcpu_cpus=0,1,...`: `loader/src/runner.rs`'s `TEST_DOMAIN_WORDS`).
//!
//! [`super::cpus`] puts one domain on each CPU; here the CPUs share one
//! domain, and every vCPU but 0 is a remote vCPU of it (the hypervisor's
//! `vmx/run/visit.rs`). Neither of the first two reaches any state but the
//! calling vCPU's and what its domain was built with, so a remote vCPU's
//! CPU answers both alone, and those figures should not grow with N. Were
//! each a cross-CPU operation, every CPU's calls would stop all the
//! others. `VCPUOP_is_up` reads the domain's vCPU table: a remote vCPU's
//! call is an operation that stops the domain's CPU (every remote vCPU's
//! calls meet there, so this figure grows with N), and no other.
//!
//! Each vCPU reports `xen_version.cpuK`, `cpuid.cpuK` and `is_up.cpuK`;
//! the tool adds the `.worst` of each. vCPU K's counters are CPU K's. Every vCPU starts its
//! loops at the same system time ([`super::cpus::START_NS`]) and keeps
//! quiet until every loop is over; vCPU 0 then prints every figure (a
//! remote vCPU's console write would be a cross-CPU operation). The
//! counter reads of all the vCPUs share the domain's one mark sequence
//! (`marks=`), so under nested KVM a figure's marks do not delimit its own
//! loop alone.

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

use crate::abi::guest::{self, hypercall_scalar};
use crate::abi::hypercall::Hypercall;
use crate::abi::version::XENVER_VERSION;
use crate::arch;
use crate::bench::{Bench, Figure};
use crate::events;
use crate::prelude::*;
use crate::smp;

/// Calls per sample.
const PER: u64 = 100;
/// Samples per figure.
const SAMPLES: usize = 20;
/// The most vCPUs measured.
const MOST: usize = 4;
/// How long vCPU 0 waits for the others' figures after its own (system
/// time): far longer than a loop takes on any platform.
const PATIENCE_NS: u64 = 20_000_000_000;

/// Each vCPU's two figures (`None` until measured), its wrong answers, and
/// whether it is done (1) or arrived too late (2).
static FIGURES: spin::Mutex<[[Option<Figure>; 3]; MOST]> = spin::Mutex::new([[None; 3]; MOST]);
static ERRORS: [AtomicU32; MOST] = [const { AtomicU32::new(0) }; MOST];
static STATE: [AtomicU32; MOST] = [const { AtomicU32::new(0) }; MOST];
const DONE: u32 = 1;
const LATE: u32 = 2;

const NAMES: [[&str; 3]; MOST] = [
    ["xen_version.cpu0", "cpuid.cpu0", "is_up.cpu0"],
    ["xen_version.cpu1", "cpuid.cpu1", "is_up.cpu1"],
    ["xen_version.cpu2", "cpuid.cpu2", "is_up.cpu2"],
    ["xen_version.cpu3", "cpuid.cpu3", "is_up.cpu3"],
];
/// Calls per sample of `is_up` (each a cross-CPU operation on a remote
/// vCPU: fewer, so that the loops stay within the quiet time).
const PER_IS_UP: u64 = 10;

/// Spin on the clock until system time `t` (no exit).
fn spin_until(t: u64) {
    while events::now_ns() < t {
        core::hint::spin_loop();
    }
}

/// On every vCPU: wait for the common start, time both operations, keep
/// quiet as long again, and leave the figures for vCPU 0.
fn measure(id: u32) {
    let i = id as usize;
    // Upcalls masked, IF set: the others' cross-CPU operations (vCPU 0's
    // start of the next vCPU) must be able to take this CPU out of its
    // guest (docs/platforms.md, `bochs-extint-masked-by-guest-if`).
    events::disable();
    arch::sti();
    let want = i64::from(guest::xen_version().encode());
    let leaf0 = arch::cpuid(0, 0);
    let mut bench = Bench::new();
    if events::now_ns() >= super::cpus::START_NS {
        STATE[i].store(LATE, SeqCst);
        return;
    }
    spin_until(super::cpus::START_NS);
    let began = events::now_ns();
    let mut samples = [0u64; SAMPLES];
    let mut errors = 0u32;
    let version = bench.run(NAMES[i][0], PER, &mut samples, || {
        for _ in 0..PER {
            if hypercall_scalar(Hypercall::XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0]) != want {
                errors += 1;
            }
        }
    });
    let cpuid = bench.run(NAMES[i][1], PER, &mut samples, || {
        for _ in 0..PER {
            if arch::cpuid(0, 0) != leaf0 {
                errors += 1;
            }
        }
    });
    let is_up = bench.run(NAMES[i][2], PER_IS_UP, &mut samples, || {
        for _ in 0..PER_IS_UP {
            if smp::is_up(0) != Ok(true) {
                errors += 1;
            }
        }
    });
    let ended = events::now_ns();
    // Quiet (no console line, no end) until the slowest loop is surely over.
    spin_until(ended + (ended - began));
    FIGURES.lock()[i] = [version, cpuid, is_up];
    ERRORS[i].store(errors, SeqCst);
    STATE[i].store(DONE, SeqCst);
}

/// A worker vCPU: measure, then return (it takes itself down).
fn worker(id: u32) {
    measure(id);
}

/// vCPU 0: start the others, measure with them, print every figure.
pub fn run() {
    let n = match smp::count() {
        Ok(n) => n as usize,
        Err(e) => {
            failure!("VCPUOP_is_up: {e}");
            return;
        }
    };
    let want = smp::requested().unwrap_or(1) as usize;
    if n != want || !(1..=MOST).contains(&n) {
        failure!("the domain has {n} vCPUs; keel.vcpus= asked for {want} (1 to {MOST} measured)");
        return;
    }
    for w in 1..n {
        if let Err(e) = smp::start(w as u32, worker) {
            failure!("starting vCPU {w}: {e}");
            return;
        }
    }
    measure(0);
    let end = events::now_ns().saturating_add(PATIENCE_NS);
    while (0..n).any(|i| STATE[i].load(SeqCst) == 0) && events::now_ns() < end {
        core::hint::spin_loop();
    }
    let mut bench = Bench::new();
    let figures = *FIGURES.lock();
    for (i, pair) in figures.iter().enumerate().take(n) {
        let state = STATE[i].load(SeqCst);
        for (k, (name, fig)) in NAMES[i].into_iter().zip(pair).enumerate() {
            let per = if k == 2 { PER_IS_UP } else { PER };
            match (state, fig) {
                (DONE, Some(f)) => bench.report(name, per, f),
                (LATE, _) => bench.missing(
                    name,
                    format_args!("vCPU {i} arrived after the common start"),
                ),
                _ => bench.missing(name, format_args!("vCPU {i} did not finish")),
            }
        }
    }
    for (i, s) in STATE.iter().enumerate().take(n) {
        check_eq!(s.load(SeqCst), DONE, "vCPU {i}'s loops (1: done, 2: late)");
        check_eq!(
            ERRORS[i].load(SeqCst),
            0,
            "vCPU {i}'s calls that answered wrongly"
        );
    }
    success();
}
