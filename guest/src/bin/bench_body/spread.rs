//! The body of `bench_spread` and `bench_spread_local` (ABI 1.2 preview):
//! what a domain's vCPU on another CPU costs its domain. `bench_spread`
//! boots with `keel.vcpus=2 keel.vcpu_cpus=0,1` on 2 CPUs (vCPU 0 on CPU 0,
//! vCPU 1 on CPU 1); `bench_spread_local` boots one vCPU on one CPU and
//! measures only the reference update.
//!
//! Every exit of vCPU 1 runs as a cross-CPU operation (every other CPU stops
//! and lends its domains: the hypervisor's `vmx/run/visit.rs`), its wake-ups
//! go by request and IPI, and an update that owes a TLB flush is followed
//! by an empty cross-CPU operation (the shootdown). All times are guest TSC
//! (Bochs: instructions; every CPU's TSC is one clock, as `bench_upcall_2cpu`
//! relies on, so a time stamped on CPU 1 minus one read on CPU 0 is the
//! latency).
//!
//! - `mmu_update_flush_local` (`bench_spread_local`): one `mmu_update` that
//!   drops RW from the PTE of an ordinary frame and one that restores it
//!   (both change a present entry, so both owe a flush), per update, in a
//!   domain with no vCPU placed elsewhere: the reference.
//! - `mmu_update_flush_vcpu1_down`: the same in `bench_spread` before
//!   vCPU 1 is up: the domain has a vCPU placed on CPU 1, so each update's
//!   flush is still followed by the shootdown's cross-CPU operation, which
//!   wakes CPU 1 from its idle loop.
//! - `mmu_update_remote_flush`: the same with vCPU 1 spinning in guest mode
//!   on CPU 1: the shootdown takes CPU 1 out of its guest, which flushes
//!   vCPU 1's VPID before it enters again.
//! - `ipi_to_upcall_remote_vcpu`: vCPU 0's `EVTCHNOP_send` on an IPI port
//!   bound to vCPU 1, from the TSC read before the send to the first
//!   instruction of the upcall handler on vCPU 1, which spins with upcalls
//!   enabled (one way).
//! - `ipi_to_upcall_remote_vcpu_blocked`: the same with vCPU 1 halted
//!   (`STI; HLT`, upcalls enabled; `VCPUOP_get_runstate_info` says blocked
//!   before each send).
//! - `xen_version_remote_vcpu` and `cpuid_remote_vcpu`: the null hypercall
//!   (`xen_version(XENVER_version)`, as `bench_hypercalls`) and `CPUID`
//!   leaf 0 (as `bench_policy`'s `cpuid_0`), timed on vCPU 1 while vCPU 0
//!   spins in guest mode on CPU 0, [`PER`] to a sample. Neither reaches
//!   any state but the calling vCPU's own, so neither should stop CPU 0.
//!
//! The exits and VMCS accesses are those of the CPU that measured (the
//! counters are per CPU): for the figures vCPU 0 measures, CPU 0's own
//! hypercalls and the times it was taken out of its guest for CPU 1's
//! cross-CPU operations; for the two vCPU 1 measures, CPU 1's.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::abi::hypercall::Hypercall;
use keel_guest::abi::vcpu::RUNSTATE_BLOCKED;
use keel_guest::abi::version::XENVER_VERSION;
use keel_guest::arch;
use keel_guest::bench::Bench;
use keel_guest::events;
use keel_guest::mmu::{leaf, set_leaf, take_frame};
use keel_guest::pagetable::PteFlags;
use keel_guest::prelude::*;
use keel_guest::smp;
use keel_guest::start;
use keel_guest::tsc;

/// The upcall vector (any free one: the library's handlers take it).
const VECTOR: u8 = 0xf6;
/// How long vCPU 0 waits for vCPU 1 (system time).
const PATIENCE_NS: u64 = 2_000_000_000;
/// The figures measured with vCPU 1 up, reported missing without it.
/// Whether vCPU 1 runs while vCPU 0 runs (its remote figures mean nothing
/// otherwise: the hypervisor may keep both on one CPU).
static ALONGSIDE: smp::Alongside = smp::Alongside::new();

const REMOTE_FIGURES: [&str; 5] = [
    "mmu_update_remote_flush",
    "ipi_to_upcall_remote_vcpu",
    "ipi_to_upcall_remote_vcpu_blocked",
    "xen_version_remote_vcpu",
    "cpuid_remote_vcpu",
];
/// Operations per sample of the figures vCPU 1 measures: under Bochs with
/// several CPUs the TSC advances in steps (each CPU runs a trace in turn),
/// which a batch spreads over its calls.
const PER: u64 = 10;

/// vCPU 1's IPI port ([`NONE`] until bound), or the error of its bind.
static IPI_PORT: AtomicU32 = AtomicU32::new(NONE);
static BIND_ERR: AtomicU64 = AtomicU64::new(0);
const NONE: u32 = u32::MAX;
/// Upcalls on vCPU 1 that found its IPI port, and the TSC of the last one
/// (first thing in the handler).
static HITS: AtomicU64 = AtomicU64::new(0);
static HANDLER_TSC: AtomicU64 = AtomicU64::new(0);
/// Upcalls for anything else, or on another vCPU.
static STRAY: AtomicU32 = AtomicU32::new(0);
/// What vCPU 1 does: [`SPIN`], [`HALT`] or [`EXIT`] (vCPU 0 says).
static MODE: AtomicU32 = AtomicU32::new(SPIN);
const SPIN: u32 = 0;
const HALT: u32 = 1;
const EXIT: u32 = 2;
/// vCPU 1 measures its figures, then goes back to [`SPIN`].
const MEASURE: u32 = 3;
/// Set by vCPU 1 when its figures are printed; the calls among them that
/// answered wrongly.
static MEASURED: AtomicU32 = AtomicU32::new(0);
static REMOTE_ERRORS: AtomicU32 = AtomicU32::new(0);
/// Set once vCPU 1 bound its port and takes upcalls; how many times it
/// went to halt.
static READY: AtomicU32 = AtomicU32::new(0);
static HALTS: AtomicU64 = AtomicU64::new(0);

fn on_event(port: u32) {
    let t = tsc::rdtsc();
    if port == IPI_PORT.load(SeqCst) && smp::current() == 1 {
        HANDLER_TSC.store(t, SeqCst);
        HITS.fetch_add(1, SeqCst);
    } else {
        STRAY.fetch_add(1, SeqCst);
    }
}

/// vCPU 1: bind its IPI port, take upcalls, and spin or halt as [`MODE`]
/// says, with no hypercall and no exit while it spins.
fn remote(_: u32) {
    ALONGSIDE.count();
    match smp::bind_ipi() {
        Ok(p) => IPI_PORT.store(p, SeqCst),
        Err(e) => BIND_ERR.store(e.0 as u64, SeqCst),
    }
    events::enable();
    arch::sti();
    READY.store(1, SeqCst);
    loop {
        match MODE.load(SeqCst) {
            SPIN => core::hint::spin_loop(),
            MEASURE => {
                measure_here();
                MODE.store(SPIN, SeqCst);
                MEASURED.store(1, SeqCst);
            }
            HALT => {
                HALTS.fetch_add(1, SeqCst);
                // An upcall between the count and the HLT leaves it halted
                // until the next send: vCPU 0 waits for the blocked state.
                arch::sti_hlt();
            }
            _ => return,
        }
    }
}

/// vCPU 1: time the null hypercall and CPUID here, and print the figures
/// (vCPU 0 spins meanwhile, printing nothing).
fn measure_here() {
    let want = i64::from(guest::xen_version().encode());
    let leaf0 = arch::cpuid(0, 0);
    let mut bench = Bench::new();
    let mut s = [0u64; 20];
    let mut errors = 0u32;
    bench.measure("xen_version_remote_vcpu", PER, &mut s, || {
        for _ in 0..PER {
            if hypercall_scalar(Hypercall::XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0]) != want {
                errors += 1;
            }
        }
    });
    bench.measure("cpuid_remote_vcpu", PER, &mut s, || {
        for _ in 0..PER {
            if arch::cpuid(0, 0) != leaf0 {
                errors += 1;
            }
        }
    });
    REMOTE_ERRORS.store(errors, SeqCst);
}

/// Spin (no hypercall) until vCPU 1's handler saw the IPI after `before`
/// hits; whether it did within [`PATIENCE_NS`].
fn wait_hit(before: u64) -> bool {
    let end = events::now_ns().saturating_add(PATIENCE_NS);
    while HITS.load(SeqCst) == before {
        if events::now_ns() > end {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// The program: the figures, then the verdict.
pub fn run() {
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    let spread = start::cmdline_value(start::cmdline(), "keel.vcpu_cpus").is_some();
    let mut bench = Bench::new();

    // The update pair on one frame's PTE: RW dropped, then restored.
    let f = take_frame();
    let orig = leaf(f.va);
    let ro = orig.without(PteFlags::WRITABLE);
    let errors = core::cell::Cell::new(0u32);
    let pair = || {
        for val in [ro, orig] {
            if set_leaf(f.va, val).is_err() {
                errors.set(errors.get() + 1);
            }
        }
    };
    let mut s = [0u64; 64];
    let reference = if spread {
        "mmu_update_flush_vcpu1_down"
    } else {
        "mmu_update_flush_local"
    };
    bench.measure(reference, 2, &mut s, &pair);
    if !spread {
        check_eq!(errors.get(), 0, "mmu_update calls that failed");
        success();
        return;
    }
    match smp::count() {
        Ok(n) if n >= 2 => {}
        r => {
            for name in REMOTE_FIGURES {
                bench.missing(
                    name,
                    format_args!("the domain has no vCPU 1 (VCPUOP_is_up: {r:?})"),
                );
            }
            check_eq!(errors.get(), 0, "mmu_update calls that failed");
            success();
            return;
        }
    }
    // Upcalls masked (vCPU 0 takes none), but RFLAGS.IF set: under Bochs,
    // vCPU 0 spinning with IF clear took no external-interrupt exit for
    // CPU 1's requests to lend (none counted), although external-interrupt
    // exiting makes IF irrelevant on hardware; CPU 1's cross-CPU operations
    // then waited for vCPU 0's next hypercall.
    events::disable();
    arch::sti();
    if let Err(e) = events::set_upcall_handler(VECTOR, on_event) {
        failure!("callback vector: {e}");
        return;
    }
    if let Err(e) = smp::start(1, remote) {
        failure!("starting vCPU 1: {e}");
        return;
    }
    if ALONGSIDE.probe(PATIENCE_NS) != Some(true) {
        for name in REMOTE_FIGURES {
            bench.missing(name, format_args!("{}", smp::SHARED_CPU));
        }
        check_eq!(errors.get(), 0, "mmu_update calls that failed");
        success();
        return;
    }
    if !smp::yield_until(PATIENCE_NS, || READY.load(SeqCst) != 0) {
        failure!("vCPU 1 did not start");
        return;
    }
    let port = IPI_PORT.load(SeqCst);
    if port == NONE {
        failure!(
            "EVTCHNOP_bind_ipi on vCPU 1: error {}",
            BIND_ERR.load(SeqCst) as i64
        );
        return;
    }
    // One send unmeasured: vCPU 1 must answer while vCPU 0 spins, which it
    // does only if the two run at once.
    let (mut send_errors, mut lost) = (0u32, 0u32);
    let first = HITS.load(SeqCst);
    if guest::evtchn_send(port).is_err() || !wait_hit(first) {
        let later = smp::yield_until(PATIENCE_NS, || HITS.load(SeqCst) != first);
        let st = guest::vcpu_runstate(1).map(|r| r.state);
        failure!(
            "vCPU 1's upcall did not run while vCPU 0 spun (seen after yielding: {later}; port pending {}; vCPU 1 run state {st:?})",
            events::is_pending(port)
        );
        return;
    }

    // vCPU 1 spinning in guest mode.
    let mut s = [0u64; 64];
    bench.measure("mmu_update_remote_flush", 2, &mut s, &pair);

    let mut s = [0u64; 100];
    let started = bench.start();
    for x in s.iter_mut() {
        let before = HITS.load(SeqCst);
        let t0 = tsc::rdtsc_ordered();
        if guest::evtchn_send(port).is_err() {
            send_errors += 1;
            continue;
        }
        if !wait_hit(before) {
            lost += 1;
            break;
        }
        *x = HANDLER_TSC.load(SeqCst).saturating_sub(t0);
    }
    bench.finish("ipi_to_upcall_remote_vcpu", 1, &mut s, started);

    // vCPU 1 measures; vCPU 0 spins in guest mode, IF set.
    MODE.store(MEASURE, SeqCst);
    let end = events::now_ns().saturating_add(5 * PATIENCE_NS);
    while MEASURED.load(SeqCst) == 0 && events::now_ns() < end {
        core::hint::spin_loop();
    }
    check!(
        MEASURED.load(SeqCst) != 0,
        "vCPU 1 did not finish its figures"
    );
    check_eq!(
        REMOTE_ERRORS.load(SeqCst),
        0,
        "vCPU 1's calls that answered wrongly"
    );

    // vCPU 1 halted: each send once the hypervisor has it blocked.
    let mut unblocked = 0u32;
    MODE.store(HALT, SeqCst);
    let mut s = [0u64; 50];
    let started = bench.start();
    for x in s.iter_mut() {
        let blocked = smp::yield_until(PATIENCE_NS, || {
            guest::vcpu_runstate(1).is_ok_and(|r| r.state == RUNSTATE_BLOCKED as i32)
        });
        if !blocked {
            unblocked += 1;
            break;
        }
        let before = HITS.load(SeqCst);
        let t0 = tsc::rdtsc_ordered();
        if guest::evtchn_send(port).is_err() {
            send_errors += 1;
            continue;
        }
        if !wait_hit(before) {
            lost += 1;
            break;
        }
        *x = HANDLER_TSC.load(SeqCst).saturating_sub(t0);
    }
    bench.finish("ipi_to_upcall_remote_vcpu_blocked", 1, &mut s, started);

    // vCPU 1 returns from its function (and takes itself down).
    MODE.store(EXIT, SeqCst);
    let _ = guest::evtchn_send(port);
    check!(
        smp::yield_until(PATIENCE_NS, || smp::is_up(1) == Ok(false)),
        "vCPU 1 did not end"
    );
    check_eq!(errors.get(), 0, "mmu_update calls that failed");
    check_eq!(send_errors, 0, "sends that failed");
    check_eq!(lost, 0, "IPIs vCPU 1's upcall did not see");
    check_eq!(unblocked, 0, "times vCPU 1 was not seen blocked");
    check_eq!(STRAY.load(SeqCst), 0, "upcalls for another port or vCPU");
    check!(HALTS.load(SeqCst) > 0, "vCPU 1 never halted");
    success();
}
