//! # The VMX instructions
//!
//! Thin wrappers over VMXON, VMCLEAR, VMPTRLD, VMREAD, VMWRITE, INVVPID and XSETBV,
//! and the two host registers the exit path must set for the guest (CR2). Every
//! other VMX file calls these; none of them writes assembly.
//!
//! ## What is safe
//! VMREAD and INVVPID cannot break the host. A VMWRITE can: host state decides
//! where the CPU resumes after the next exit, and some controls (MSR and I/O
//! bitmaps, MSR-load areas, exit controls) decide what the guest may touch. So
//! [`vmwrite`] is safe only for the fields whose every value affects the guest
//! alone ([`guest_facing`]: guest state, the event-injection fields, the CR read
//! shadows and the exception filter) and refuses the rest; [`vmwrite_unchecked`]
//! writes any field and is `unsafe`.
//!
//! ## VMCS accesses are counted
//! Under nested KVM every VMREAD/VMWRITE that the L0 hypervisor does not shadow is
//! itself a VM exit: they are the cost that predicts nested performance. Every
//! access goes through [`vmread`]/[`vmwrite`], which count into this CPU's
//! [`VmxStats`](super::percpu::VmxStats) with one instruction.
#![allow(unsafe_code)]

use core::arch::asm;
use core::fmt;

use x86::vmx::vmcs::{control, ro};

use super::control_bits::PrimaryControls;
use super::names::vm_instruction_error_name;
use super::percpu;
use crate::addr::MachineAddr;
use crate::policy::cpuid::Xcr0;

/// How a VMX instruction failed (SDM 31.2: "conventions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFail {
    /// RFLAGS.CF = 1: no current VMCS (or a bad pointer).
    Invalid,
    /// RFLAGS.ZF = 1: the VM-instruction error field says why.
    Valid(u32),
    /// Keel's own refusal: [`vmwrite`] was asked to write a field that can
    /// affect the host (a Keel bug; see [`guest_facing`]).
    NotGuestFacing(u32),
}

impl fmt::Display for VmFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmFail::Invalid => write!(f, "VMfailInvalid (no valid current VMCS)"),
            VmFail::Valid(0) => write!(
                f,
                "VMfailValid (no current VMCS to hold the error number; e.g. already in VMX operation)"
            ),
            VmFail::Valid(n) => write!(
                f,
                "VMfailValid, VM-instruction error {n} ({})",
                vm_instruction_error_name(*n)
            ),
            VmFail::NotGuestFacing(field) => write!(
                f,
                "refused: VMCS field {field:#x} can affect the host and needs vmwrite_unchecked"
            ),
        }
    }
}

/// RFLAGS.CF and ZF, as the VMX instructions report failure.
const RFLAGS_CF: u64 = crate::arch::bits::rflags::CF;
const RFLAGS_ZF: u64 = crate::arch::bits::rflags::ZF;

/// Decode the RFLAGS a VMX instruction left. VMfailValid reads the error field of
/// the current VMCS.
pub fn vm_result(rflags: u64) -> Result<(), VmFail> {
    if rflags & RFLAGS_CF != 0 {
        Err(VmFail::Invalid)
    } else if rflags & RFLAGS_ZF != 0 {
        Err(VmFail::Valid(vmread(ro::VM_INSTRUCTION_ERROR) as u32))
    } else {
        Ok(())
    }
}

/// VMREAD. Safe: reading the current VMCS cannot break memory safety. With no
/// current VMCS or a field the CPU does not implement it fails and returns 0;
/// Keel reads optional fields only when their feature is enabled.
#[inline(always)]
pub fn vmread(field: u32) -> u64 {
    percpu::count_vmread();
    let v: u64;
    // SAFETY: VMREAD only reads the current VMCS into a register. A failed VMREAD
    // leaves the destination unchanged: it starts at 0, so the result is then 0,
    // not whatever the register held.
    unsafe {
        asm!("vmread {v}, {f}", f = in(reg) u64::from(field), v = inout(reg) 0u64 => v,
             options(nostack, nomem))
    };
    v
}

/// VMREAD of a field the current VMCS always has (an architectural guest-state
/// or exit-information field, read on the exit path, where the VMCS whose exit
/// is being handled is current): such a VMREAD cannot fail, so the result
/// register is not zeroed first (one instruction fewer than [`vmread`]; were it
/// to fail anyway, the value would be meaningless but no memory is touched).
#[inline(always)]
pub fn vmread_current(field: u32) -> u64 {
    percpu::count_vmread();
    let v: u64;
    // SAFETY: VMREAD only reads the current VMCS into a register.
    unsafe {
        asm!("vmread {v}, {f}", f = in(reg) u64::from(field), v = out(reg) v,
             options(nostack, nomem))
    };
    v
}

/// Bits 11:10 of a VMCS field encoding: its type (SDM appendix B).
const FIELD_TYPE_SHIFT: u32 = 10;
/// Field type 2: guest state.
const FIELD_TYPE_GUEST: u32 = 2;

/// Whether every value of `field` affects only the guest: guest-state fields,
/// and the controls that only shape what the guest sees (the event to inject,
/// the CR0/CR4 read shadows, which exceptions and #PF error codes exit). A
/// control-field constant folds this test away at compile time.
#[inline(always)]
pub const fn guest_facing(field: u32) -> bool {
    (field >> FIELD_TYPE_SHIFT) & 3 == FIELD_TYPE_GUEST
        || matches!(
            field,
            control::VMENTRY_INTERRUPTION_INFO_FIELD
                | control::VMENTRY_EXCEPTION_ERR_CODE
                | control::VMENTRY_INSTRUCTION_LEN
                | control::CR0_READ_SHADOW
                | control::CR4_READ_SHADOW
                | control::EXCEPTION_BITMAP
                | control::PAGE_FAULT_ERR_CODE_MASK
                | control::PAGE_FAULT_ERR_CODE_MATCH
        )
}

/// VMWRITE of a [`guest_facing`] field; any other field is refused. A bad
/// guest-state value cannot hurt the host: the next VM entry fails its checks
/// and the domain ends.
#[inline(always)]
pub fn vmwrite(field: u32, value: u64) -> Result<(), VmFail> {
    if !guest_facing(field) {
        return Err(VmFail::NotGuestFacing(field));
    }
    // SAFETY: a guest-facing field (above) changes only what the guest sees.
    unsafe { vmwrite_unchecked(field, value) }
}

/// VMWRITE of a [`guest_facing`] field on the exit path, where the VMCS is
/// current and its failure (a Keel bug: a field the CPU lacks) would be
/// reported by the next entry's checks: the result is not examined, which saves
/// the flag test on every write. Any other field is not written.
#[inline(always)]
pub fn vmwrite_guest(field: u32, value: u64) {
    if !guest_facing(field) {
        refused(field);
        return;
    }
    percpu::count_vmwrite();
    // SAFETY: a guest-facing field changes only what the guest sees.
    unsafe {
        asm!("vmwrite {f}, {v}", f = in(reg) u64::from(field), v = in(reg) value,
             options(nostack, nomem))
    };
}

/// Report a refused [`vmwrite_guest`] (a Keel bug; never on a constant field,
/// for which the test is decided at compile time).
#[cold]
#[inline(never)]
fn refused(field: u32) {
    log::error!("vmx: {}", VmFail::NotGuestFacing(field));
}

/// VMWRITE of any field.
///
/// # Safety
/// The VMCS decides what the CPU loads on the next VM exit (host RIP, RSP, CR3...)
/// and what the guest may touch: the caller must write values that keep the host
/// intact.
#[inline(always)]
pub unsafe fn vmwrite_unchecked(field: u32, value: u64) -> Result<(), VmFail> {
    percpu::count_vmwrite();
    let ok: u8;
    // SAFETY: delegated to the caller; `setna` captures CF|ZF (either failure).
    unsafe {
        asm!("vmwrite {f}, {v}", "setna {ok}", f = in(reg) u64::from(field), v = in(reg) value,
             ok = lateout(reg_byte) ok, options(nostack, nomem))
    };
    if ok == 0 {
        Ok(())
    } else {
        // Rare path: find out which failure it was.
        let err = vmread(ro::VM_INSTRUCTION_ERROR) as u32;
        Err(if err == 0 {
            VmFail::Invalid
        } else {
            VmFail::Valid(err)
        })
    }
}

/// Turn "interrupt-window exiting" on or off, leaving every other primary
/// processor-based control as it is (the one control the exit path changes).
pub fn set_interrupt_window_exiting(on: bool) -> Result<(), VmFail> {
    let bit = u64::from(PrimaryControls::INTERRUPT_WINDOW_EXITING.bits());
    let procv = vmread(control::PRIMARY_PROCBASED_EXEC_CONTROLS);
    let v = if on { procv | bit } else { procv & !bit };
    // SAFETY: only the interrupt-window bit changes, which makes the CPU exit
    // when the guest can take an interrupt; no host state is involved.
    unsafe { vmwrite_unchecked(control::PRIMARY_PROCBASED_EXEC_CONTROLS, v) }
}

/// Execute a VMX instruction that takes a 64-bit memory operand (VMXON, VMCLEAR,
/// VMPTRLD) and return RFLAGS.
macro_rules! vmx_mem_insn {
    ($insn:literal, $pa:expr) => {{
        let pa: u64 = $pa;
        let rflags: u64;
        // SAFETY: the operand is a u64 on our stack; the caller of the enclosing
        // function guarantees the physical address is a proper VMX region.
        unsafe {
            asm!(concat!($insn, " qword ptr [{pa}]"), "pushfq", "pop {rf}",
                 pa = in(reg) &pa, rf = lateout(reg) rflags)
        };
        rflags
    }};
}

/// VMXON with the VMXON region at `pa`.
///
/// # Safety
/// `pa` must be a zeroed 4-KiB frame holding the revision identifier, owned by VMX
/// from now until VMXOFF.
pub unsafe fn vmxon(pa: MachineAddr) -> Result<(), VmFail> {
    let rf = vmx_mem_insn!("vmxon", pa.get());
    // After a failed VMXON there is no current VMCS: do not VMREAD the error.
    if rf & (RFLAGS_CF | RFLAGS_ZF) != 0 {
        return Err(if rf & RFLAGS_CF != 0 {
            VmFail::Invalid
        } else {
            VmFail::Valid(0)
        });
    }
    Ok(())
}

/// VMCLEAR the VMCS at `pa`.
///
/// # Safety
/// `pa` must be a VMCS region.
pub unsafe fn vmclear(pa: MachineAddr) -> Result<(), VmFail> {
    let rf = vmx_mem_insn!("vmclear", pa.get());
    vm_result(rf)
}

/// VMPTRLD the VMCS at `pa`.
///
/// # Safety
/// `pa` must be a VMCS region that was VMCLEARed.
pub unsafe fn vmptrld(pa: MachineAddr) -> Result<(), VmFail> {
    let rf = vmx_mem_insn!("vmptrld", pa.get());
    vm_result(rf)
}

/// INVVPID types (SDM 31.3, INVVPID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum InvvpidType {
    /// One linear address of one VPID.
    IndividualAddress = 0,
    /// Every mapping of one VPID.
    SingleContext = 1,
    /// Every VPID.
    AllContext = 2,
    /// One VPID, except global translations.
    SingleContextRetainingGlobals = 3,
}

/// INVVPID. Invalidates cached linear translations tagged with `vpid`.
pub fn invvpid(ty: InvvpidType, vpid: u16, addr: u64) -> Result<(), VmFail> {
    let desc: [u64; 2] = [u64::from(vpid), addr];
    let rflags: u64;
    // SAFETY: INVVPID only drops TLB entries; the descriptor is on our stack. The
    // caller chose a type the CPU supports (EPT_VPID_CAP), else it fails cleanly.
    unsafe {
        asm!("invvpid {t}, [{d}]", "pushfq", "pop {rf}", t = in(reg) ty as u64,
             d = in(reg) &desc, rf = lateout(reg) rflags)
    };
    vm_result(rflags)
}

/// XSETBV: load XCR0.
///
/// # Safety
/// CR4.OSXSAVE must be set and `xcr0` valid for this CPU (else #GP in the host).
pub unsafe fn xsetbv(xcr0: u64) {
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("xsetbv", in("ecx") 0u32, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32,
             options(nostack, nomem))
    };
}

/// Load XCR0 with `xcr0` if `policy::insns::xsetbv` accepts it for a guest with
/// CR4.OSXSAVE set and `allowed` (a subset of the host's XCR0 bits, not empty
/// only when the host runs with CR4.OSXSAVE); returns whether it was loaded.
/// The check is the policy's own, so this cannot fault.
pub fn xsetbv_checked(xcr0: Xcr0, allowed: Xcr0) -> bool {
    let Ok(v) = crate::policy::insns::xsetbv(true, 0, xcr0.bits(), allowed) else {
        return false;
    };
    // SAFETY: the policy accepted the value: a non-empty `allowed` implies host
    // CR4.OSXSAVE, and the value is a subset of what the host supports with x87
    // set and AVX only with SSE, so XSETBV cannot fault.
    unsafe { xsetbv(v.bits()) };
    true
}

/// Set the CR2 the guest will see with a #PF Keel injects. A #PF VM exit does
/// not write CR2 (SDM 27.1), and neither does event injection, but the guest's
/// handler must find the faulting address there; the guest's CR2 is the CPU's
/// CR2 (it is not switched on VM entry or exit), so Keel writes it.
pub fn set_guest_cr2(cr2: u64) {
    // SAFETY: CR2 holds no host state (a host #PF is fatal and reports its own
    // CR2); the value only reaches the guest.
    unsafe { asm!("mov cr2, {}", in(reg) cr2, options(nostack, preserves_flags)) };
}
