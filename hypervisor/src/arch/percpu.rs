//! # The architectural part of a CPU's state
//!
//! What `arch` keeps for each physical CPU: its own GDT and TSS (and through the
//! TSS its own IST stacks), its local APIC's address and timer mode, and the
//! one-shot timer's calibration. One [`ArchCpu`] per CPU; it is the first field
//! of that CPU's `vmx::percpu::PerCpu`, so the CPU's GS base points at both and
//! `arch` finds its own part with one `mov rax, gs:[0]` ([`this`]) without
//! knowing the rest of the structure.
//!
//! The IDT is shared: its 256 gates are the same on every CPU, written before
//! any application processor starts and only read afterwards; the IST slots its
//! gates name are resolved in the TSS of the CPU that takes the exception, so
//! each CPU still handles #DF, NMI and #MC on stacks of its own.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use x86_64::structures::gdt::GlobalDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;

/// The most CPUs Keel runs on; CPUs the MADT lists beyond this are reported
/// and left out at bring-up.
pub const MAX_CPUS: usize = 8;

/// One CPU's architectural state. `#[repr(C)]` with `this` at offset 0: GS
/// points here (see the module documentation).
#[repr(C)]
pub struct ArchCpu {
    /// This structure's own address (what `gs:[0]` reads).
    this: AtomicUsize,
    /// The CPU's index (0 for the boot CPU).
    index: AtomicUsize,
    /// The local APIC ID (from the MADT for application processors).
    apic_id: AtomicU32,
    /// The address of the local APIC's EOI register (the timer ISR writes it).
    pub(super) lapic_eoi: AtomicU64,
    /// The local APIC's MMIO base (every CPU reaches its own APIC there).
    pub(super) lapic_base: AtomicU64,
    /// Whether the APIC timer runs in TSC-deadline mode on this CPU.
    pub(super) tsc_deadline: AtomicBool,
    /// APIC timer ticks per 2^20 TSC ticks (one-shot mode only).
    pub(super) apic_per_tsc_2_20: AtomicU64,
    /// The task-state segment (its IST entries are this CPU's stacks).
    pub(super) tss: spin::Once<TaskStateSegment>,
    /// The GDT, whose TSS descriptor names `tss`.
    pub(super) gdt: spin::Once<GlobalDescriptorTable>,
    /// The TSC deadline the APIC timer is armed for while a guest runs
    /// (`timer::arm`; 0: not armed), to tell how late its interrupt came.
    pub(super) apic_armed: AtomicU64,
    /// How late the machine delivered this CPU's timers (`crate::overdue`).
    pub(super) overdue: crate::overdue::OverdueLog,
}

impl ArchCpu {
    /// An inactive CPU's state.
    pub const fn new() -> Self {
        ArchCpu {
            this: AtomicUsize::new(0),
            index: AtomicUsize::new(0),
            apic_id: AtomicU32::new(0),
            lapic_eoi: AtomicU64::new(0),
            lapic_base: AtomicU64::new(0),
            tsc_deadline: AtomicBool::new(false),
            apic_per_tsc_2_20: AtomicU64::new(0),
            tss: spin::Once::new(),
            gdt: spin::Once::new(),
            apic_armed: AtomicU64::new(0),
            overdue: crate::overdue::OverdueLog::new(),
        }
    }

    /// Make this the executing CPU's state: record `index` and the CPU's
    /// initial APIC ID (CPUID.1:EBX[31:24]) and point the GS base here.
    ///
    /// # Safety
    /// `self` must be the first field (offset 0) of the structure the rest of
    /// the hypervisor reaches through GS (`vmx::percpu::PerCpu`), and no other
    /// CPU may have activated it.
    pub unsafe fn activate(&'static self, index: usize) {
        let addr = self as *const ArchCpu as usize;
        let apic_id = core::arch::x86_64::__cpuid(1).ebx >> 24;
        self.this.store(addr, Relaxed);
        self.index.store(index, Relaxed);
        self.apic_id.store(apic_id, Relaxed);
        // SAFETY: the host uses GS only for the per-CPU block; the address is a
        // static that lives forever. The VMCS's host GS base is read from this
        // MSR afterwards, so VM exits restore it.
        unsafe { super::cpu::wrmsr(super::cpu::IA32_GS_BASE, addr as u64) };
    }

    /// The CPU's index (0 for the boot CPU).
    pub fn index(&self) -> usize {
        self.index.load(Relaxed)
    }

    /// The CPU's local APIC ID.
    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Relaxed)
    }

    /// The linear address of this CPU's TSS (0 before `gdt::init`).
    pub fn tss_base(&self) -> u64 {
        self.tss
            .get()
            .map_or(0, |t| t as *const TaskStateSegment as u64)
    }
}

impl Default for ArchCpu {
    fn default() -> Self {
        Self::new()
    }
}

/// The executing CPU's architectural state. Only valid after
/// [`ArchCpu::activate`] ran on this CPU.
#[inline(always)]
pub fn this() -> &'static ArchCpu {
    let p: *const ArchCpu;
    // SAFETY: `activate` pointed GS at a static ArchCpu whose field at offset 0
    // is its own address; VM exits restore GS from the VMCS.
    unsafe {
        asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags));
        &*p
    }
}

/// Offset of the EOI register's address in [`ArchCpu`] (the timer ISR reads
/// `gs:[LAPIC_EOI]`).
pub(super) const LAPIC_EOI: usize = core::mem::offset_of!(ArchCpu, lapic_eoi);
