//! A vCPU spinning with a hypercall number in RAX does not stop its domain's
//! vCPU on another CPU (ABI 1.2 preview; the runner boots it with
//! `keel.vcpus=2 keel.vcpu_cpus=0,1` on a machine of 2 CPUs).
//!
//! vCPU 1, on CPU 1, runs CPUID in a loop and counts: each CPUID is an exit,
//! and each exit of a vCPU away from its domain's CPU is a cross-CPU
//! operation that takes CPU 0 out of its guest. vCPU 0, on CPU 0, spins
//! (no hypercall) twice for [`SPAN_NS`] of system time: first with
//! `XEN_VERSION`'s number in RAX (a hypercall that reaches no other domain:
//! the reference), then with `EVENT_CHANNEL_OP`'s. Every exit CPU 1 causes
//! finds that number there. Only a VMCALL is a hypercall; an interrupt's exit
//! taken for one would make each of CPU 0's exits a cross-CPU operation too
//! in the second spin, and the two CPUs would take each other out of their
//! guests for ever (neither guest runs: the test times out). vCPU 1 must
//! make at least half as many CPUIDs in the second spin as in the first
//! (the rate is the platform's: a cross-CPU operation costs about 4,000
//! instructions under Bochs, milliseconds under nested KVM emulated by
//! Bochs), and at least [`MIN_REFERENCE`] in the first.
//!
//! First, vCPU 1 must be seen running while vCPU 0 runs
//! ([`smp::Alongside`]): if the two share a CPU, the test reports SKIP.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use keel_guest::abi::hypercall::Hypercall;
use keel_guest::prelude::*;
use keel_guest::{arch, cpu, events, smp, tsc};

keel_guest::test! {
    title: "vCPUs on 2 CPUs: one spinning with a hypercall number in RAX does not stop the other (ABI 1.2 preview)",
    category: Security,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: run,
}

/// How long vCPU 0 waits for vCPU 1 (system time).
const PATIENCE_NS: u64 = 5_000_000_000;
/// Each of vCPU 0's spins (system time).
const SPAN_NS: u64 = 1_000_000_000;
/// The spin's steps (TSC ticks): RAX holds the number but for the few
/// instructions between two.
const STEP_TICKS: u64 = 50_000;
/// The CPUIDs vCPU 1 must make during the reference spin for the comparison
/// to mean anything (about 500 under Bochs, where CPU 0 lends at most once
/// every 4,096 ticks, `vmx::lend::GUEST_TICKS`, of a 2 MHz TSC).
const MIN_REFERENCE: u64 = 10;

static ALONGSIDE: smp::Alongside = smp::Alongside::new();
static COUNT: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

/// vCPU 1: the probe's count, then CPUIDs until told to stop.
fn worker(_: u32) {
    ALONGSIDE.count();
    while !STOP.load(SeqCst) {
        let _ = cpu::cpuid(0, 0);
        COUNT.fetch_add(1, SeqCst);
    }
}

/// vCPU 0 spins for [`SPAN_NS`] holding `rax` in RAX: the CPUIDs vCPU 1
/// made meanwhile.
fn spin(rax: u64) -> u64 {
    let before = COUNT.load(SeqCst);
    let end = events::now_ns().saturating_add(SPAN_NS);
    while events::now_ns() < end {
        arch::spin_holding_rax(rax, tsc::rdtsc().saturating_add(STEP_TICKS));
    }
    COUNT.load(SeqCst) - before
}

fn run() {
    // Spinning vCPUs keep RFLAGS.IF set (docs/platforms.md,
    // `bochs-extint-masked-by-guest-if`), upcalls masked.
    events::disable();
    arch::sti();
    if !smp::need_vcpus(2) {
        return;
    }
    smp::init();
    if let Err(e) = smp::start(1, worker) {
        failure!("starting vCPU 1: {e}");
        return;
    }
    if !ALONGSIDE.probe_or_report(PATIENCE_NS) {
        return;
    }
    let first = COUNT.load(SeqCst);
    if !smp::yield_until(PATIENCE_NS, || COUNT.load(SeqCst) > first) {
        failure!("vCPU 1 did not start its CPUIDs");
        return;
    }
    let reference = spin(Hypercall::XEN_VERSION.0);
    let held = spin(Hypercall::EVENT_CHANNEL_OP.0);
    println!(
        "vCPU 1 made {reference} CPUIDs while vCPU 0 spun with RAX = {} (the reference), {held} with RAX = {}",
        Hypercall::XEN_VERSION.0,
        Hypercall::EVENT_CHANNEL_OP.0
    );
    STOP.store(true, SeqCst);
    check!(
        reference >= MIN_REFERENCE,
        "vCPU 1 made {reference} CPUIDs in {} ms of vCPU 0's reference spin (at least {MIN_REFERENCE} expected)",
        SPAN_NS / 1_000_000
    );
    check!(
        held * 2 >= reference,
        "vCPU 1 made {held} CPUIDs while vCPU 0 held EVENT_CHANNEL_OP's number in RAX, against {reference} in the reference spin (at least half expected)"
    );
    check!(
        smp::yield_until(PATIENCE_NS, || smp::is_up(1) == Ok(false)),
        "vCPU 1 did not end"
    );
    success();
}
