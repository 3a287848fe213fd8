//! CPU registers and instructions the rest of the hypervisor needs: MSRs, control
//! registers, descriptor-table registers, interrupt flag, halt.
//!
//! The VMX code reads host state from here (CR0/CR3/CR4, GDTR/IDTR bases, TR) to
//! fill the VMCS host-state area.

use core::arch::asm;

use keel_abi::cpuid::CpuidResult;

/// IA32_EFER (its bits: `x86_64::registers::model_specific::EferFlags`).
pub const IA32_EFER: u32 = 0xC000_0080;
/// IA32_PAT.
pub const IA32_PAT: u32 = 0x277;
/// IA32_FS_BASE.
pub const IA32_FS_BASE: u32 = 0xC000_0100;
/// IA32_GS_BASE: the host points it at this CPU's `vmx::percpu::PerCpu`.
pub const IA32_GS_BASE: u32 = 0xC000_0101;
/// IA32_SYSENTER_CS.
pub const IA32_SYSENTER_CS: u32 = 0x174;
/// IA32_SYSENTER_ESP.
pub const IA32_SYSENTER_ESP: u32 = 0x175;
/// IA32_SYSENTER_EIP.
pub const IA32_SYSENTER_EIP: u32 = 0x176;

/// The CPUID leaf of [`l0_marker`]: the ASCII bytes "KELM", a leaf no CPU or
/// hypervisor defines (it answers as the highest basic leaf, as any undefined
/// leaf does).
pub const L0_MARKER_LEAF: u32 = 0x4b45_4c4d;

/// The host CPU's CPUID for leaf `leaf`, subleaf `sub` (CPUID always exists in
/// 64-bit mode): the hypervisor's one way to execute it.
#[inline(always)]
pub fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// Whether Keel itself runs as the guest of another hypervisor: CPUID.1:ECX[31]
/// (the "hypervisor present" bit, which CPUs leave clear and hypervisors set).
pub fn under_hypervisor() -> bool {
    cpuid(1, 0).ecx & (1 << 31) != 0
}

/// The 12-byte CPUID signature of the hypervisor beneath Keel (leaf 0x4000_0000),
/// if there is one.
pub fn hypervisor_signature() -> Option<[u8; 12]> {
    if !under_hypervisor() {
        return None;
    }
    let r = cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..].copy_from_slice(&r.edx.to_le_bytes());
    Some(sig)
}

/// A mark in the trace of a hypervisor beneath Keel: a CPUID of
/// [`L0_MARKER_LEAF`], which always exits to it (KVM traces it as `kvm_cpuid`
/// with that function). The nested backend counts that hypervisor's exits
/// between marks to attribute them to benchmark figures. Without a hypervisor
/// beneath (`under` false) it does nothing.
#[inline]
pub fn l0_marker(under: bool) {
    if under {
        let _ = cpuid(L0_MARKER_LEAF, 0);
    }
}
/// IA32_FEATURE_CONTROL.
pub const IA32_FEATURE_CONTROL: u32 = 0x3A;

/// Read a model-specific register.
///
/// Reading an MSR the CPU does not implement raises #GP, which the exception
/// handler reports (with this RIP) and powers off: callers must know the MSR exists
/// (CPUID or the VMX capability MSRs tell them).
#[inline]
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDMSR reads a register; a missing MSR faults into our handler.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Write a model-specific register.
///
/// # Safety
/// MSRs control paging (EFER), system-call entry, the FS/GS bases and more: the
/// caller must know the effect of the write on Rust's execution environment.
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

/// Whether no-execute pages are enabled (EFER.NXE; the boot code sets it exactly
/// when CPUID reports NX). Guests get EFER.NXE under the same condition.
pub fn nx_enabled() -> bool {
    rdmsr(IA32_EFER) & (1 << 11) != 0
}

/// CR0.
#[inline]
pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CR2 (the faulting linear address of the last page fault).
#[inline]
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: as for `read_cr0`.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CR3 (the current top-level page table; Keel's host CR3 for VMX).
#[inline]
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: as for `read_cr0`.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CR4.
#[inline]
pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: as for `read_cr0`.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Write CR0.
///
/// # Safety
/// CR0 controls paging and protection: the caller must keep PE/PG/WP as Keel needs.
#[inline]
pub unsafe fn write_cr0(v: u64) {
    // SAFETY: delegated to the caller.
    unsafe { asm!("mov cr0, {}", in(reg) v, options(nostack, preserves_flags)) };
}

/// Write CR4.
///
/// # Safety
/// CR4 controls paging features (PAE must stay set) and VMXE.
#[inline]
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: delegated to the caller.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) };
}

/// A descriptor-table register value (GDTR or IDTR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableRegister {
    /// Linear base address.
    pub base: u64,
    /// Limit (size - 1).
    pub limit: u16,
}

#[repr(C, packed)]
struct RawTableRegister {
    limit: u16,
    base: u64,
}

/// SGDT: the current GDTR.
pub fn sgdt() -> TableRegister {
    let mut r = RawTableRegister { limit: 0, base: 0 };
    // SAFETY: SGDT stores 10 bytes into `r`, which is 10 bytes.
    unsafe { asm!("sgdt [{}]", in(reg) &raw mut r, options(nostack, preserves_flags)) };
    TableRegister {
        base: r.base,
        limit: r.limit,
    }
}

/// SIDT: the current IDTR.
pub fn sidt() -> TableRegister {
    let mut r = RawTableRegister { limit: 0, base: 0 };
    // SAFETY: SIDT stores 10 bytes into `r`, which is 10 bytes.
    unsafe { asm!("sidt [{}]", in(reg) &raw mut r, options(nostack, preserves_flags)) };
    TableRegister {
        base: r.base,
        limit: r.limit,
    }
}

/// STR: the current task-register selector.
pub fn str_selector() -> u16 {
    let v: u16;
    // SAFETY: STR only reads TR.
    unsafe { asm!("str {0:x}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Disable maskable interrupts. Keel 0.1 runs with interrupts off throughout.
#[inline]
pub fn cli() {
    // SAFETY: clears IF; no memory effects.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// Halt until the next interrupt (forever if interrupts are off, except NMI/SMI).
#[inline]
pub fn hlt() {
    // SAFETY: HLT stops the CPU; it resumes on an interrupt.
    unsafe { asm!("hlt", options(nomem, nostack, preserves_flags)) };
}

/// Stop this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        cli();
        hlt();
    }
}

/// `RDTSC`.
#[inline]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC reads the time-stamp counter (CR4.TSD is clear in the host).
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}
