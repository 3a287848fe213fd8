//! # Bringing up the application processors (bare metal)
//!
//! The boot CPU starts the application processors (APs) the MADT lists, one at
//! a time. For each it allocates the AP's stack and IST stacks and its VMXON
//! region, starts it (`arch::smp::start`) and then follows a handshake through
//! the statics below, with a timeout at every step (PIT-timed, on the boot CPU):
//!
//! 1. the AP reaches Rust, makes `PERCPU[n]` its state (GS), loads its own GDT
//!    and TSS and the shared IDT, and reports *alive*;
//! 2. three TSC handshakes (`smp::tsc_check`);
//! 3. the AP compares its VMX capability MSRs and CPUID features with the boot
//!    CPU's (`smp::caps_mismatch`, `smp::features_mismatch`) and its local
//!    APIC base, enables its local APIC,
//!    and executes VMXON (`vmx::enable`), then reports *online* or why not.
//!
//! An AP that differs, fails, or does not answer in time is reported and left
//! out (one that did not answer is sent INIT again, so it cannot wake later
//! on the next AP's stack); the boot goes on. Its frames are not reused: it
//! may still be running on them. Every AP then waits for work
//! (`arch::smp::wait_for_work`: halted, woken by an IPI): the domains run on
//! one CPU, CPU 0 unless the command line's `run_cpu=N` names an online one
//! ([`online`]), to which CPU 0 hands the run over.

use super::{
    caps_mismatch, choose_trampoline, features_mismatch, tsc_check, CpuFeatures, TscSample, TscSync,
};
use crate::addr::{Mfn, PAGE_SIZE};
use crate::arch;
use crate::arch::gdt::IST_STACK_SIZE;
use crate::arch::percpu::MAX_CPUS;
use crate::boot::{MachineRange, MemRegion};
use crate::mem::FrameSource;
use crate::vmx::caps::VmxCaps;
use crate::vmx::enable::{enable, VmxError};
use crate::vmx::percpu;
use core::fmt;
use core::sync::atomic::{
    AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

/// An AP's own stack (the hypervisor's stack on that CPU; exits use the exit
/// stack in its `PerCpu`): 256 KiB, as the boot CPU's (`arch::boot`). The
/// run loop's frame alone is about 48 KiB (its tables of vCPUs, the
/// scheduler), and starting a remote vCPU (`vmx::run::visit`) goes deeper
/// from there; 64 KiB overflowed into the IST stacks below.
const AP_STACK_FRAMES: u64 = 64;
/// Its three IST stacks.
const IST_FRAMES: u64 = 3 * IST_STACK_SIZE as u64 / PAGE_SIZE;
/// TSC handshakes per AP.
const TSC_ROUNDS: u32 = 3;
/// How long the boot CPU waits for each step of an AP, in PIT rounds of 50 ms.
const STEP_TIMEOUT_ROUNDS: u32 = 20;
/// How long an AP spins for the boot CPU's next TSC handshake (iterations).
const AP_SPIN_LIMIT: u64 = 50_000_000;

/// The handshake's stages, in `STAGE`'s low byte (the high bits hold the CPU
/// number, so a report from another AP is never taken for this one's).
const ALIVE: u32 = 1;
const ONLINE: u32 = 2;
const LEFT_OUT: u32 = 3;

static STAGE: AtomicU32 = AtomicU32::new(0);
/// Each CPU's local APIC ID plus one once it is online (0: not online). CPU 0's
/// is set when bring-up starts.
static ONLINE_APIC: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

// `run_cpu=` names CPUs this table can hold.
const _: () = assert!(crate::boot::MAX_RUN_CPU == MAX_CPUS);

/// The local APIC ID of CPU `cpu` if it came online (CPU 0: once bring-up ran
/// with more than one CPU listed; `None` before, or on a one-CPU machine).
pub fn online(cpu: usize) -> Option<u32> {
    let v = ONLINE_APIC.get(cpu)?.load(Acquire);
    v.checked_sub(1)
}
static TSC_ASK: AtomicU32 = AtomicU32::new(0);
static TSC_DONE: AtomicU32 = AtomicU32::new(0);
static TSC_AP: AtomicU64 = AtomicU64::new(0);
static IST_BASE: AtomicU64 = AtomicU64::new(0);
static VMXON_FRAME: AtomicU64 = AtomicU64::new(0);
static BOOT_LAPIC: AtomicU64 = AtomicU64::new(0);
static BOOT_CAPS: spin::Once<VmxCaps> = spin::Once::new();
static BOOT_FEATURES: spin::Once<CpuFeatures> = spin::Once::new();
static FAILURE: spin::Mutex<Option<ApFailure>> = spin::Mutex::new(None);

/// Why an AP was left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApFailure {
    /// Beyond `MAX_CPUS`.
    NoPerCpuState,
    /// Not enough frames for its stacks or VMXON region.
    OutOfMemory,
    /// The start-up sequence could not be sent.
    Start(arch::smp::StartError),
    /// It did not reach the named step in time.
    Timeout(&'static str),
    /// Its VMX capabilities differ from the boot CPU's (the first difference).
    CapsDiffer(&'static str),
    /// Its CPUID features differ from the boot CPU's (the first difference).
    FeaturesDiffer(&'static str),
    /// Its local APIC is at another address than the boot CPU's.
    LapicBase(u64),
    /// VMXON (or what precedes it) failed.
    Vmx(VmxError),
}

impl fmt::Display for ApFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApFailure::NoPerCpuState => {
                write!(f, "no per-CPU state (Keel runs on at most {MAX_CPUS} CPUs)")
            }
            ApFailure::OutOfMemory => write!(f, "no frames for its stacks or VMXON region"),
            ApFailure::Start(e) => write!(f, "cannot start it: {e}"),
            ApFailure::Timeout(step) => write!(f, "no answer within 1 s ({step})"),
            ApFailure::CapsDiffer(what) => {
                write!(f, "its VMX capabilities differ from CPU 0's: {what}")
            }
            ApFailure::FeaturesDiffer(what) => {
                write!(f, "its CPUID differs from CPU 0's: {what}")
            }
            ApFailure::LapicBase(b) => {
                write!(f, "its local APIC is at {b:#x}, not where CPU 0's is")
            }
            ApFailure::Vmx(e) => write!(f, "{e}"),
        }
    }
}

/// What bring-up did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// CPUs online, the boot CPU included.
    pub online: usize,
    /// Enabled CPUs in the MADT.
    pub listed: usize,
    /// The boot CPU's TSC ticks spent bringing up the APs.
    pub ticks: u64,
}

/// A frame source of one frame: the AP's VMXON region, allocated by the boot
/// CPU (the allocator is not shared between CPUs).
struct OneFrame(Option<Mfn>);

impl FrameSource for OneFrame {
    fn alloc_frame(&mut self) -> Option<Mfn> {
        self.0.take()
    }
    fn alloc_contiguous(&mut self, n: u64) -> Option<Mfn> {
        if n == 1 {
            self.0.take()
        } else {
            None
        }
    }
    fn free_frame(&mut self, f: Mfn) {
        self.0 = Some(f);
    }
    fn free_count(&self) -> u64 {
        u64::from(self.0.is_some())
    }
}

fn stage_of(cpu: usize, stage: u32) -> u32 {
    ((cpu as u32) << 8) | stage
}

/// Wait (on the boot CPU) until `done`, for at most [`STEP_TIMEOUT_ROUNDS`].
fn wait(mut done: impl FnMut() -> bool) -> bool {
    let round = arch::timer::pit_ticks_us(50_000);
    (0..STEP_TIMEOUT_ROUNDS).any(|_| arch::timer::poll_for(round, &mut done))
}

/// Bring up every enabled CPU in `apic_ids` (the MADT's, in order) other than
/// the executing boot CPU, which is in VMX operation with `boot_caps`. Logs one
/// line per AP and a summary.
pub fn bring_up(
    apic_ids: &[u32],
    listed: u32,
    boot_caps: &VmxCaps,
    regions: &[MemRegion],
    reserved: &[MachineRange],
    frames: &mut impl FrameSource,
) -> Summary {
    let mut sum = Summary {
        online: 1,
        listed: listed as usize,
        ticks: 0,
    };
    if listed <= 1 {
        log::info!("smp: 1 CPU in the MADT: no application processors to start");
        return sum;
    }
    let t0 = arch::timer::rdtsc();
    // The boot CPU's local APIC sends the IPIs.
    arch::timer::init_lapic();
    let boot_id = arch::smp::local_apic_id();
    ONLINE_APIC[0].store(boot_id + 1, Release);
    BOOT_LAPIC.store(arch::timer::lapic_base(), Relaxed);
    BOOT_CAPS.call_once(|| *boot_caps);
    BOOT_FEATURES.call_once(read_features);
    if apic_ids.len() < listed as usize {
        log::warn!(
            "smp: {} CPUs in the MADT; only the first {} are considered",
            listed,
            apic_ids.len()
        );
    }
    let Some(tramp) = choose_trampoline(regions, reserved) else {
        log::warn!("smp: no free page of usable RAM below 640 KiB for the trampoline: running on CPU 0 only");
        return sum;
    };
    if let Err(e) = arch::smp::install_trampoline(tramp.get()) {
        log::warn!("smp: {e}: running on CPU 0 only");
        return sum;
    }
    log::info!(
        "smp: {listed} CPUs in the MADT; CPU 0 is APIC ID {boot_id}; starting the others one at a time (trampoline at {:#x})",
        tramp.get()
    );
    // CPU numbers follow the MADT's order; the boot CPU is 0.
    for (cpu, &id) in (1usize..).zip(apic_ids.iter().filter(|&&id| id != boot_id)) {
        match start_one(cpu, id, tramp.get(), frames) {
            Ok(tsc) => {
                sum.online += 1;
                if let Some(o) = ONLINE_APIC.get(cpu) {
                    o.store(id + 1, Release);
                }
                match tsc {
                    Some(v @ TscSync::InSync { .. }) => log::info!(
                        "smp: CPU {cpu} (APIC ID {id}) online: own GDT, TSS, stacks, VMXON; {v}; waiting for work"
                    ),
                    Some(v) => log::warn!(
                        "smp: CPU {cpu} (APIC ID {id}) online: own GDT, TSS, stacks, VMXON; {v}; waiting for work"
                    ),
                    None => log::warn!("smp: CPU {cpu} (APIC ID {id}) online; TSC not checked"),
                }
            }
            Err(e) => log::warn!("smp: CPU {cpu} (APIC ID {id}) left out: {e}"),
        }
    }
    sum.ticks = arch::timer::rdtsc().wrapping_sub(t0);
    let aps = sum.listed.saturating_sub(1).max(1) as u64;
    log::info!(
        "smp: {} of {} CPUs online ({} application processor(s) waiting for work); bring-up took {} TSC ticks ({} per application processor)",
        sum.online,
        sum.listed,
        sum.online - 1,
        sum.ticks,
        sum.ticks / aps
    );
    sum
}

/// Start AP number `cpu` (APIC ID `id`) and follow its handshake.
fn start_one(
    cpu: usize,
    id: u32,
    tramp: u64,
    frames: &mut impl FrameSource,
) -> Result<Option<TscSync>, ApFailure> {
    if cpu >= MAX_CPUS {
        return Err(ApFailure::NoPerCpuState);
    }
    let stacks = frames
        .alloc_contiguous(AP_STACK_FRAMES + IST_FRAMES)
        .ok_or(ApFailure::OutOfMemory)?;
    let vmxon = frames.alloc_frame().ok_or(ApFailure::OutOfMemory)?;
    let base = stacks.addr().get();
    IST_BASE.store(base, Relaxed);
    VMXON_FRAME.store(vmxon.get(), Relaxed);
    *FAILURE.lock() = None;
    TSC_ASK.store(0, Relaxed);
    TSC_DONE.store(0, Relaxed);
    STAGE.store(0, Release);
    let ap = arch::smp::ApStart {
        apic_id: id,
        trampoline: tramp,
        stack_top: base + (IST_FRAMES + AP_STACK_FRAMES) * PAGE_SIZE,
        entry: ap_entry,
        arg: cpu as u64,
        init_wait_us: super::init_wait_us(core::arch::x86_64::__cpuid(1).eax),
    };
    let alive = || STAGE.load(Acquire) == stage_of(cpu, ALIVE);
    arch::smp::start(&ap, alive).map_err(ApFailure::Start)?;
    if !wait(alive) {
        arch::smp::stop(id);
        return Err(ApFailure::Timeout("it never reached its Rust entry"));
    }
    let mut samples = [TscSample {
        before: 0,
        ap: 0,
        after: 0,
    }; TSC_ROUNDS as usize];
    for (r, s) in (1..=TSC_ROUNDS).zip(samples.iter_mut()) {
        let before = arch::timer::rdtsc();
        TSC_ASK.store(r, Release);
        if !wait(|| TSC_DONE.load(Acquire) == r) {
            arch::smp::stop(id);
            return Err(ApFailure::Timeout("TSC handshake"));
        }
        let after = arch::timer::rdtsc();
        *s = TscSample {
            before,
            ap: TSC_AP.load(Relaxed),
            after,
        };
    }
    let ended = || {
        let s = STAGE.load(Acquire);
        s == stage_of(cpu, ONLINE) || s == stage_of(cpu, LEFT_OUT)
    };
    if !wait(ended) {
        arch::smp::stop(id);
        return Err(ApFailure::Timeout("VMX start-up"));
    }
    if STAGE.load(Acquire) == stage_of(cpu, LEFT_OUT) {
        let why = FAILURE.lock().take();
        return Err(why.unwrap_or(ApFailure::Timeout("report")));
    }
    Ok(tsc_check(&samples))
}

/// The AP's Rust entry (called by the trampoline on its own stack).
extern "C" fn ap_entry(cpu: u64) -> ! {
    let cpu = cpu as usize;
    let Some(pc) = percpu::PERCPU.get(cpu) else {
        arch::cpu::halt_forever()
    };
    let ist = IST_BASE.load(Relaxed);
    let ist_tops = [1u64, 2, 3].map(|i| ist + i * IST_STACK_SIZE as u64);
    // The GDT first: loading it resets the GS base, which `percpu::init` sets.
    arch::gdt::init(&pc.arch, ist_tops);
    arch::idt::load();
    let _ = percpu::init(cpu);
    STAGE.store(stage_of(cpu, ALIVE), Release);

    for r in 1..=TSC_ROUNDS {
        let mut spins = 0u64;
        while TSC_ASK.load(Acquire) < r {
            spins += 1;
            if spins > AP_SPIN_LIMIT {
                // The boot CPU gave up on us (it sends INIT next).
                arch::cpu::halt_forever();
            }
            core::hint::spin_loop();
        }
        TSC_AP.store(arch::timer::rdtsc(), Relaxed);
        TSC_DONE.store(r, Release);
    }

    match start_vmx(cpu) {
        Ok(()) => {
            STAGE.store(stage_of(cpu, ONLINE), Release);
            arch::smp::wait_for_work(cpu)
        }
        Err(e) => {
            *FAILURE.lock() = Some(e);
            STAGE.store(stage_of(cpu, LEFT_OUT), Release);
            arch::cpu::halt_forever()
        }
    }
}

/// Check the AP against the boot CPU, enable its local APIC and VMX.
fn start_vmx(cpu: usize) -> Result<(), ApFailure> {
    let caps = VmxCaps::from_msrs(arch::cpu::rdmsr);
    if let Some(what) = BOOT_CAPS.get().and_then(|b| caps_mismatch(b, &caps)) {
        return Err(ApFailure::CapsDiffer(what));
    }
    let features = read_features();
    if let Some(what) = BOOT_FEATURES
        .get()
        .and_then(|b| features_mismatch(b, &features))
    {
        return Err(ApFailure::FeaturesDiffer(what));
    }
    let base = arch::timer::lapic_base();
    if base != BOOT_LAPIC.load(Relaxed) {
        return Err(ApFailure::LapicBase(base));
    }
    arch::timer::init_lapic();
    let mut one = OneFrame(Some(Mfn::new(VMXON_FRAME.load(Relaxed))));
    enable(cpu, &mut one).map(|_| ()).map_err(ApFailure::Vmx)
}

/// The executing CPU's CPUID words that a guest's CPUID is built from.
fn read_features() -> CpuFeatures {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let max = __cpuid(0).eax;
    let max_ext = __cpuid(0x8000_0000).eax;
    let l1 = __cpuid(1);
    let (l7b, l7c, l7d) = if max >= 7 {
        let r = __cpuid_count(7, 0);
        (r.ebx, r.ecx, r.edx)
    } else {
        (0, 0, 0)
    };
    let e1 = if max_ext >= 0x8000_0001 {
        let r = __cpuid(0x8000_0001);
        [r.ecx, r.edx]
    } else {
        [0, 0]
    };
    CpuFeatures {
        max_leaves: [max, max_ext],
        signature: l1.eax,
        leaf1: [l1.ecx, l1.edx],
        leaf7: [l7b, l7c, l7d],
        ext1: e1,
    }
}
