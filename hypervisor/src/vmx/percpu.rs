//! # Per-CPU state
//!
//! Everything one physical CPU owns while it runs guests lives in one [`PerCpu`]:
//! its architectural part first (`arch::percpu::ArchCpu`: GDT, TSS, local
//! APIC), then the register save area the exit stub fills, the running vCPU
//! (which holds its domain), the CPU's VMX ([`VmxCpu`]: capabilities, derived
//! controls, VMXON region) and current VMCS, the VMX counters, and the
//! once-only log bitmaps of the exit path. The stack the exit handler runs on
//! and the bitmap of logged I/O ports are the CPU's entries of separate,
//! all-zero statics (`.bss`, not bytes of the image: `PerCpu`'s handlers are
//! not zero, which puts all of it in `.data`).
//!
//! There is one `PerCpu` per CPU in [`PERCPU`], and one way to reach it: the
//! CPU's GS base points at its own instance ([`init`] sets it; the VMCS's host
//! GS base restores it on every VM exit). [`this`] reads it back with one
//! instruction, and the counters are incremented with one `inc gs:[...]`, so the
//! exit path pays nothing for being SMP-ready. The boot CPU is entry 0; the
//! others are numbered in MADT order as `smp::bringup` starts them, and each
//! calls [`init`] for its own entry once it has loaded its GDT.
//!
//! Every field is only touched by its own CPU, and on the exit path with
//! interrupts off; fields the stub or the counters write behind Rust's back are
//! `UnsafeCell`s or atomics, so no `&mut PerCpu` ever exists.
#![allow(unsafe_code)]

use core::arch::asm;
use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use spin::Once;

use super::caps::VmxCaps;
use super::controls::Controls;
use super::frame::{DomainEnd, GuestGprs, LEAVE_DOMAIN_ENDED, TAKE_FULL_PATH};
use crate::addr::Mfn;
use crate::arch::percpu::ArchCpu;

/// The most CPUs Keel runs on.
pub const MAX_CPUS: usize = crate::arch::percpu::MAX_CPUS;

/// The number of basic exit reasons counted individually; higher ones share a slot.
pub const COUNTED_EXIT_REASONS: usize = 80;

/// Cheap counters for benchmarks and diagnostics: exits per basic reason and
/// every VMREAD/VMWRITE executed, on one CPU.
#[repr(C)]
pub struct VmxStats {
    /// Exits by basic reason; the last slot counts reasons >= `COUNTED_EXIT_REASONS - 1`.
    pub exits: [AtomicU64; COUNTED_EXIT_REASONS],
    /// VMREAD executions.
    pub vmreads: AtomicU64,
    /// VMWRITE executions.
    pub vmwrites: AtomicU64,
}

impl VmxStats {
    const fn new() -> Self {
        VmxStats {
            exits: [const { AtomicU64::new(0) }; COUNTED_EXIT_REASONS],
            vmreads: AtomicU64::new(0),
            vmwrites: AtomicU64::new(0),
        }
    }
    /// Total exits.
    pub fn total_exits(&self) -> u64 {
        self.exits.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// A bitmap of "already logged" flags, so a diagnostic the guest can repeat at
/// will is printed once.
pub struct LogOnce<const WORDS: usize>([AtomicU64; WORDS]);

impl<const WORDS: usize> LogOnce<WORDS> {
    const fn new() -> Self {
        LogOnce([const { AtomicU64::new(0) }; WORDS])
    }
    /// Set bit `i`; true if it was clear (and `i` is in range).
    pub fn first_time(&self, i: usize) -> bool {
        match self.0.get(i / 64) {
            Some(w) => w.fetch_or(1 << (i % 64), Relaxed) & (1 << (i % 64)) == 0,
            None => false,
        }
    }
}

/// A CPU in VMX root operation, with what Keel knows about its VMX.
pub struct VmxCpu {
    pub(crate) caps: VmxCaps,
    pub(crate) controls: Controls,
    pub(crate) maxphyaddr: u8,
    pub(super) vmxon_region: Mfn,
}

impl VmxCpu {
    /// The decoded capability MSRs.
    pub fn caps(&self) -> &VmxCaps {
        &self.caps
    }
    /// The controls Keel uses on this CPU.
    pub fn controls(&self) -> &Controls {
        &self.controls
    }
    /// The VMXON region (owned by the CPU until VMXOFF).
    pub fn vmxon_region(&self) -> Mfn {
        self.vmxon_region
    }
}

/// The exit handler's stack (hypercall dispatch, logging, diagnostics).
pub const EXIT_STACK_SIZE: usize = 64 * 1024;

/// One CPU's state. `#[repr(C)]`: the exit stub addresses fields by offset, and
/// `arch` must be at offset 0 (its first word is this structure's own address,
/// what `gs:[0]` reads, and `arch` finds its part the same way).
#[repr(C, align(4096))]
pub struct PerCpu {
    /// The architectural part: GDT, TSS, local APIC (`arch::percpu`).
    pub arch: ArchCpu,
    /// The guest's GPRs while Keel handles an exit (the stub writes them).
    pub(super) gprs: UnsafeCell<GuestGprs>,
    /// RSP inside `keel_vmx_launch`, to return to when the domain ends.
    pub(super) launch_rsp: UnsafeCell<u64>,
    /// RFLAGS after a failed VMLAUNCH/VMRESUME.
    pub(super) fail_rflags: UnsafeCell<u64>,
    /// The exit handler the stub calls, for the running vCPU's type
    /// (`stub::launch`); [`no_vcpu`] when no domain runs.
    pub(super) handler: Cell<ExitHandler>,
    /// The fast exit handler the stub calls first (`stub::launch`);
    /// [`no_vcpu_fast`] when no domain runs.
    pub(super) fast: Cell<ExitHandler>,
    /// The running vCPU (which holds its domain) while a domain runs, of the
    /// type `handler` was made for; null otherwise.
    pub(super) running: Cell<*mut ()>,
    /// Why the domain ended.
    pub(super) end: Cell<Option<DomainEnd>>,
    /// What this CPU's VMX offers and what Keel uses of it, once VMXON has
    /// succeeded (`enable::enable`).
    pub(super) vmx: Once<VmxCpu>,
    /// The current VMCS, while a domain runs.
    pub(super) vmcs: Cell<Option<Mfn>>,
    /// A new end (TSC) for the running vCPU's run, which had no slice: a
    /// hypercall of it woke another domain ([`crate::sched::Scheduler::rearm`]);
    /// 0: none. Written by the run loop's peers, taken by the VMCALL exit.
    pub(super) slice_rearm: Cell<u64>,
    /// VMX counters.
    pub stats: VmxStats,
    /// Host interrupt vectors logged as arriving while a guest ran.
    pub vectors_logged: LogOnce<4>,
}

/// One CPU's exit handler stack. Kept out of [`PerCpu`], whose few non-zero
/// initial values (the handlers) would otherwise put every stack's bytes in
/// the image's `.data`; all zeroes, these are `.bss`.
#[repr(C, align(16))]
struct ExitStack(UnsafeCell<[u8; EXIT_STACK_SIZE]>);

// SAFETY: a CPU's stack is only used by that CPU (its VMCS's host RSP), and
// Rust code only takes its address.
unsafe impl Sync for ExitStack {}

/// Every CPU's exit stack, indexed by CPU number like [`PERCPU`].
static EXIT_STACKS: [ExitStack; MAX_CPUS] =
    [const { ExitStack(UnsafeCell::new([0; EXIT_STACK_SIZE])) }; MAX_CPUS];

/// Each CPU's I/O ports whose "no device" line has been logged (8 KB each,
/// zeroes: `.bss`, like the exit stacks), indexed by CPU number.
static PORTS_LOGGED: [LogOnce<1024>; MAX_CPUS] = [const { LogOnce::new() }; MAX_CPUS];

/// What the exit stub calls with this CPU's `PerCpu`: handle the exit, and
/// answer `frame::RESUME_GUEST` or `frame::LEAVE_DOMAIN_ENDED`.
pub type ExitHandler = unsafe extern "C" fn(*const PerCpu) -> u64;

/// The handler while no vCPU runs (an exit then cannot happen): leave.
unsafe extern "C" fn no_vcpu(pc: *const PerCpu) -> u64 {
    // SAFETY: the stub passes this CPU's PerCpu, a static.
    unsafe { (*pc).end.set(Some(DomainEnd::Crashed)) };
    LEAVE_DOMAIN_ENDED
}

/// The fast handler while no vCPU runs: take the full path (`no_vcpu`).
unsafe extern "C" fn no_vcpu_fast(_: *const PerCpu) -> u64 {
    TAKE_FULL_PATH
}

/// [`no_vcpu_fast`], for `stub::launch` to reinstall when the domain is over.
pub(super) fn no_vcpu_fast_handler() -> ExitHandler {
    no_vcpu_fast
}

/// [`no_vcpu`], for `stub::launch` to reinstall when the domain is over.
pub(super) fn no_vcpu_handler() -> ExitHandler {
    no_vcpu
}

// SAFETY: each instance is used only by its own CPU (reached through that CPU's
// GS base), never concurrently; the exit path runs with interrupts off.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            arch: ArchCpu::new(),
            gprs: UnsafeCell::new(GuestGprs::ZERO),
            launch_rsp: UnsafeCell::new(0),
            fail_rflags: UnsafeCell::new(0),
            handler: Cell::new(no_vcpu),
            fast: Cell::new(no_vcpu_fast),
            running: Cell::new(core::ptr::null_mut()),
            end: Cell::new(None),
            vmx: Once::new(),
            vmcs: Cell::new(None),
            slice_rearm: Cell::new(0),
            stats: VmxStats::new(),
            vectors_logged: LogOnce::new(),
        }
    }

    /// Set port `port`'s "logged" flag on this CPU; true if it was clear.
    pub fn first_port_log(&self, port: u16) -> bool {
        PORTS_LOGGED
            .get(self.index())
            .is_some_and(|l| l.first_time(usize::from(port)))
    }

    /// This CPU's VMX, once it is in VMX operation.
    pub fn vmx(&self) -> Option<&VmxCpu> {
        self.vmx.get()
    }

    /// This CPU's index.
    pub fn index(&self) -> usize {
        self.arch.index()
    }

    /// The running vCPU's run must end at TSC `until` (it ran alone; another
    /// domain has become runnable).
    pub(super) fn set_slice_rearm(&self, until: u64) {
        self.slice_rearm.set(until.max(1));
    }

    /// [`Self::set_slice_rearm`]'s end, once.
    #[inline(always)]
    pub(super) fn take_slice_rearm(&self) -> Option<u64> {
        match self.slice_rearm.get() {
            0 => None,
            t => {
                self.slice_rearm.set(0);
                Some(t)
            }
        }
    }

    /// The top of this CPU's exit stack (16-byte aligned), the VMCS's host
    /// RSP; None only if the CPU's index were out of range, which [`init`]
    /// rules out.
    pub fn exit_stack_top(&self) -> Option<u64> {
        let stack = EXIT_STACKS.get(self.index())?;
        Some(stack.0.get() as u64 + EXIT_STACK_SIZE as u64)
    }

    /// A raw pointer for the assembly (which sees only offsets).
    pub(super) fn as_ptr(&self) -> *mut u8 {
        (self as *const PerCpu).cast_mut().cast()
    }
}

/// Every CPU's state, indexed by CPU number.
pub static PERCPU: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

const _: () = assert!(core::mem::offset_of!(PerCpu, arch) == 0);

/// Make `PERCPU[cpu]` the executing CPU's state: point GS at it. Called once
/// per CPU, on that CPU, first thing (the boot CPU before its GDT, application
/// processors as they start), and again harmlessly by `enable`. Returns the
/// state, or None if `cpu` is out of range.
pub fn init(cpu: usize) -> Option<&'static PerCpu> {
    let pc = PERCPU.get(cpu)?;
    // SAFETY: `arch` is at offset 0 of a static PerCpu (asserted above); CPU
    // numbers are handed out once each (the boot CPU is 0, bring-up numbers
    // the others), so no other CPU activated this entry.
    unsafe { pc.arch.activate(cpu) };
    Some(pc)
}

/// This CPU's state.
#[inline(always)]
pub fn this() -> &'static PerCpu {
    let p: *const PerCpu;
    // SAFETY: `init` pointed GS at this CPU's entry of PERCPU, whose field at
    // offset 0 is its own address; VM exits restore GS from the VMCS.
    unsafe {
        asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags));
        &*p
    }
}

/// Offset of `stats` in `PerCpu`.
const STATS: usize = core::mem::offset_of!(PerCpu, stats);

/// Count one VMREAD on this CPU (one instruction).
#[inline(always)]
pub fn count_vmread() {
    // SAFETY: GS points at this CPU's PerCpu (`init`); the counter is an
    // AtomicU64 only this CPU writes.
    unsafe {
        asm!("inc qword ptr gs:[{off}]",
             off = const STATS + core::mem::offset_of!(VmxStats, vmreads),
             options(nostack))
    };
}

/// Count one VMWRITE on this CPU (one instruction).
#[inline(always)]
pub fn count_vmwrite() {
    // SAFETY: as for `count_vmread`.
    unsafe {
        asm!("inc qword ptr gs:[{off}]",
             off = const STATS + core::mem::offset_of!(VmxStats, vmwrites),
             options(nostack))
    };
}

/// Count one exit with basic reason `basic` on this CPU.
#[inline(always)]
pub fn count_exit(basic: u16) {
    let i = usize::from(basic).min(COUNTED_EXIT_REASONS - 1);
    // SAFETY: as for `count_vmread`; `i` is within `exits`.
    unsafe {
        asm!("inc qword ptr gs:[{i} * 8 + {off}]",
             i = in(reg) i,
             off = const STATS + core::mem::offset_of!(VmxStats, exits),
             options(nostack))
    };
}
