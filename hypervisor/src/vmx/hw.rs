//! # VT-x on the real CPU: VMXON, the VMCS, VMLAUNCH, and the VM-exit stub
//!
//! Everything here runs on `target_os = "none"` only, and together with `vmx::exit`
//! is the only VMX code allowed `unsafe` and assembly. The policy it applies comes
//! from the pure modules: [`caps`](super::caps) says what the CPU offers,
//! [`controls`](super::controls) what Keel turns on, [`checks`](super::checks)
//! whether the VMCS will pass VM entry, [`cr`] and `crate::policy::cpuid` what
//! the guest sees.
//!
//! ## The life of a VM exit
//! The VMCS's host RIP is `keel_vmx_exit_stub` and its host RSP the top of a
//! dedicated per-CPU exit stack, whose top slot holds the CPU's [`PerCpu`] pointer.
//! On an exit the stub saves the guest's general-purpose registers into
//! `PerCpu::gprs` (RSP and RIP are in the VMCS), calls the Rust handler
//! (`keel_vmx_exit_handler` -> `vmx::exit`), and either restores the registers and
//! executes VMRESUME, or, when the domain has ended, switches back to the stack of
//! `keel_vmx_launch`'s caller and returns from it. So `run_domain` calls
//! `keel_vmx_launch` once and gets control back only when the domain is over.
//!
//! ## VMCS accesses are counted
//! Under nested KVM every VMREAD/VMWRITE that the L0 hypervisor does not shadow is
//! itself a VM exit: they are the cost that predicts nested performance. Every
//! access goes through [`vmread`]/[`vmwrite`], which count into [`STATS`].

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use x86::vmx::vmcs::{control, guest, host, ro};

use super::caps::{msr, VmxCaps};
use super::checks::{check_vm_entry, guest_layout, Segment, VmcsState};
use super::controls::{derive, ControlError, Controls, TlbFlush};
use super::cr::{self, CrPolicy};
use super::exit::{ExitEnv, Vcpu};
use super::names::{vm_instruction_error_name, ExitReason};
use crate::addr::{MachineAddr, Mfn, PAGE_SIZE};
use crate::domain::Domain;
use crate::mem::{Console, FrameSource, PhysMem};
use keel_abi::hypercall::HypercallArgs;

// ---------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------

/// The number of basic exit reasons counted individually; higher ones share a slot.
pub const COUNTED_EXIT_REASONS: usize = 80;

/// Cheap counters for benchmarks and diagnostics (issue 8): exits per basic reason
/// and every VMREAD/VMWRITE executed. Keel 0.1 runs on one CPU, so there is one set;
/// with SMP this becomes one per CPU (the `Relaxed` increments are already
/// contention-free per CPU).
pub struct VmxStats {
    /// Exits by basic reason; the last slot counts reasons >= `COUNTED_EXIT_REASONS - 1`.
    pub exits: [AtomicU64; COUNTED_EXIT_REASONS],
    /// VMREAD executions.
    pub vmreads: AtomicU64,
    /// VMWRITE executions.
    pub vmwrites: AtomicU64,
}

/// This CPU's VMX counters.
pub static STATS: VmxStats = VmxStats {
    exits: [const { AtomicU64::new(0) }; COUNTED_EXIT_REASONS],
    vmreads: AtomicU64::new(0),
    vmwrites: AtomicU64::new(0),
};

impl VmxStats {
    /// Count one exit with basic reason `basic`.
    #[inline(always)]
    pub fn count_exit(&self, basic: u16) {
        let i = usize::from(basic).min(COUNTED_EXIT_REASONS - 1);
        if let Some(c) = self.exits.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }
    /// Total exits.
    pub fn total_exits(&self) -> u64 {
        self.exits.iter().map(|c| c.load(Relaxed)).sum()
    }
}

// ---------------------------------------------------------------------------------
// VMX instructions
// ---------------------------------------------------------------------------------

/// How a VMX instruction failed (SDM 31.2: "conventions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFail {
    /// RFLAGS.CF = 1: no current VMCS (or a bad pointer).
    Invalid,
    /// RFLAGS.ZF = 1: the VM-instruction error field says why.
    Valid(u32),
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
        }
    }
}

const RFLAGS_CF: u64 = 1 << 0;
const RFLAGS_ZF: u64 = 1 << 6;

/// Decode the RFLAGS a VMX instruction left. VMfailValid reads the error field of
/// the current VMCS.
fn vm_result(rflags: u64) -> Result<(), VmFail> {
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
    STATS.vmreads.fetch_add(1, Relaxed);
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

/// VMWRITE.
///
/// # Safety
/// The VMCS decides what the CPU loads on the next VM exit (host RIP, RSP, CR3...)
/// and what the guest may touch: the caller must write values that keep the host
/// intact.
#[inline(always)]
pub unsafe fn vmwrite(field: u32, value: u64) -> Result<(), VmFail> {
    STATS.vmwrites.fetch_add(1, Relaxed);
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
unsafe fn vmxon(pa: u64) -> Result<(), VmFail> {
    let rf = vmx_mem_insn!("vmxon", pa);
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
unsafe fn vmclear(pa: u64) -> Result<(), VmFail> {
    let rf = vmx_mem_insn!("vmclear", pa);
    vm_result(rf)
}

/// VMPTRLD the VMCS at `pa`.
///
/// # Safety
/// `pa` must be a VMCS region that was VMCLEARed.
unsafe fn vmptrld(pa: u64) -> Result<(), VmFail> {
    let rf = vmx_mem_insn!("vmptrld", pa);
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

// ---------------------------------------------------------------------------------
// Enabling VMX
// ---------------------------------------------------------------------------------

/// Why VMX could not be turned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmxError {
    /// CPUID.1:ECX.VMX = 0.
    NoVmx,
    /// IA32_FEATURE_CONTROL is locked with "VMX outside SMX" clear.
    DisabledByFirmware {
        /// The MSR's value.
        feature_control: u64,
    },
    /// A control Keel requires is missing (or one it forbids is forced).
    Controls(ControlError),
    /// The CPU's VMX fixed bits forbid a CR0/CR4 bit the host runs with.
    FixedBits {
        /// "CR0" or "CR4".
        reg: &'static str,
        /// The bits the CPU forbids.
        bits: u64,
    },
    /// IA32_VMX_BASIC reports a VMCS region larger than a page, or the 32-bit
    /// physical-address limit that Keel's frame allocator cannot honour.
    UnsupportedVmcs {
        /// The raw IA32_VMX_BASIC.
        basic: u64,
    },
    /// No frame for the VMXON region.
    OutOfMemory,
    /// VMXON failed.
    VmxonFailed(VmFail),
}

impl VmxError {
    /// The power-off status for this error (contract: no VMX 4, firmware 5, VMXON 6;
    /// a CPU whose controls cannot run a Keel guest would fail VM entry: 7).
    pub fn status(&self) -> keel_abi::platform::ExitStatus {
        use keel_abi::platform::ExitStatus as S;
        match self {
            VmxError::NoVmx => S::NoVmx,
            VmxError::DisabledByFirmware { .. } => S::VmxDisabledByFirmware,
            VmxError::Controls(_) => S::VmEntryFailed,
            VmxError::OutOfMemory => S::OutOfMemory,
            VmxError::FixedBits { .. }
            | VmxError::UnsupportedVmcs { .. }
            | VmxError::VmxonFailed(_) => S::VmxonFailed,
        }
    }
}

impl fmt::Display for VmxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmxError::NoVmx => write!(f, "VT-x not available: CPUID.1:ECX.VMX[bit 5] = 0"),
            VmxError::DisabledByFirmware { feature_control } => write!(
                f,
                "VT-x disabled by firmware: IA32_FEATURE_CONTROL = {feature_control:#x} is locked with \"VMX outside SMX\" (bit 2) clear; enable VT-x in the firmware setup"
            ),
            VmxError::Controls(e) => write!(f, "VT-x unusable for Keel: {e}"),
            VmxError::FixedBits { reg, bits } => write!(
                f,
                "VMXON impossible: IA32_VMX_{reg}_FIXED1 forbids {reg} bits {bits:#x} that the host needs"
            ),
            VmxError::UnsupportedVmcs { basic } => write!(
                f,
                "VMXON impossible: IA32_VMX_BASIC = {basic:#x} (VMCS larger than 4 KiB, or 32-bit physical addresses only)"
            ),
            VmxError::OutOfMemory => write!(f, "VMXON impossible: no free frame for the VMXON region"),
            VmxError::VmxonFailed(e) => write!(f, "VMXON failed: {e}"),
        }
    }
}

/// A CPU in VMX root operation, with what Keel knows about its VMX.
pub struct VmxCpu {
    pub(super) caps: VmxCaps,
    pub(super) controls: Controls,
    pub(super) maxphyaddr: u8,
    vmxon_region: Mfn,
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

/// IA32_FEATURE_CONTROL bits (SDM 24.7).
const FC_LOCK: u64 = 1 << 0;
const FC_VMX_OUTSIDE_SMX: u64 = 1 << 2;

/// Turn VMX on: detect it, make sure firmware allows it, apply the CR0/CR4 fixed
/// bits, derive the controls, and execute VMXON (SDM 24.7, "Enabling and entering
/// VMX operation").
pub fn enable(frames: &mut impl FrameSource) -> Result<VmxCpu, VmxError> {
    let cpuid = raw_cpuid::CpuId::new();
    if !cpuid.get_feature_info().is_some_and(|f| f.has_vmx()) {
        return Err(VmxError::NoVmx);
    }
    // MAXPHYADDR bounds every physical address the VMCS holds (SDM 27.2.1.1).
    let maxphyaddr = cpuid
        .get_processor_capacity_feature_info()
        .map_or(36, |c| c.physical_address_bits());

    // IA32_FEATURE_CONTROL: locked by firmware (the BIOS usually locks it) or not.
    // Locked without VMX-outside-SMX means VMXON would #GP: report it. Unlocked: set
    // the bit and lock, as the SDM asks system software to do.
    let fc = crate::arch::cpu::rdmsr(msr::IA32_FEATURE_CONTROL);
    if fc & FC_LOCK != 0 {
        if fc & FC_VMX_OUTSIDE_SMX == 0 {
            return Err(VmxError::DisabledByFirmware {
                feature_control: fc,
            });
        }
    } else {
        // SAFETY: enabling VMX outside SMX and locking has no effect on running code.
        unsafe {
            crate::arch::cpu::wrmsr(msr::IA32_FEATURE_CONTROL, fc | FC_LOCK | FC_VMX_OUTSIDE_SMX)
        };
        log::info!("vmx: IA32_FEATURE_CONTROL was unlocked ({fc:#x}): enabled VMX outside SMX and locked it");
    }

    let caps = VmxCaps::from_msrs(crate::arch::cpu::rdmsr);
    if caps.vmcs_size as u64 > PAGE_SIZE || caps.addr_32bit_only {
        return Err(VmxError::UnsupportedVmcs { basic: caps.basic });
    }
    let controls = derive(&caps).map_err(VmxError::Controls)?;

    // CR0/CR4 fixed bits (SDM 24.8, A.7, A.8): VMXON requires every FIXED0 bit set
    // (CR0.NE on every CPU Keel has seen; PE and PG, which we have anyway) and no
    // bit outside FIXED1.
    let cr0 = crate::arch::cpu::read_cr0();
    let cr4 = crate::arch::cpu::read_cr4();
    if cr0 & !caps.cr0_fixed1 != 0 {
        return Err(VmxError::FixedBits {
            reg: "CR0",
            bits: cr0 & !caps.cr0_fixed1,
        });
    }
    // CR4.OSXSAVE when the CPU has XSAVE: Keel offers XSAVE to guests and
    // emulates their XSETBV with its own, which needs it (`vmx::exit`). The
    // soft-float host never touches extended state, so it changes nothing here.
    let osxsave = if cpuid.get_feature_info().is_some_and(|f| f.has_xsave())
        && caps.cr4_fixed1 & cr::cr4::OSXSAVE != 0
    {
        cr::cr4::OSXSAVE
    } else {
        0
    };
    let cr4_new = cr4 | caps.cr4_fixed0 | cr::cr4::VMXE | osxsave;
    if cr4_new & !caps.cr4_fixed1 != 0 {
        return Err(VmxError::FixedBits {
            reg: "CR4",
            bits: cr4_new & !caps.cr4_fixed1,
        });
    }
    // SAFETY: setting the FIXED0 bits (NE, and PE/PG which are set) changes only
    // x87 error reporting, which the soft-float host never uses; CR4.VMXE only
    // permits VMXON.
    unsafe {
        crate::arch::cpu::write_cr0(cr0 | caps.cr0_fixed0);
        crate::arch::cpu::write_cr4(cr4_new);
    }

    // The VMXON region: a zeroed frame starting with the revision identifier
    // (SDM 25.11.5).
    let region = frames.alloc_frame().ok_or(VmxError::OutOfMemory)?;
    let mut mem = crate::arch::mem::DirectMap;
    mem.zero_frame(region);
    mem.write(region.addr(), &caps.revision_id.to_le_bytes());
    // SAFETY: `region` is a zeroed frame we own, with the revision identifier.
    if let Err(e) = unsafe { vmxon(region.addr().0) } {
        frames.free_frame(region);
        return Err(VmxError::VmxonFailed(e));
    }
    log::info!(
        "vmx: VMXON ok (VMCS revision {:#x}, {} true controls, MAXPHYADDR {}); VPID {}, EFER/PAT switching {}/{}, MSR bitmaps {}",
        caps.revision_id,
        if caps.true_controls { "with" } else { "without" },
        maxphyaddr,
        if controls.vpid { "on" } else { "off (not offered)" },
        if controls.load_efer { "on" } else { "off" },
        if controls.load_pat { "on" } else { "off" },
        if controls.msr_bitmaps { "on" } else { "off" },
    );
    Ok(VmxCpu {
        caps,
        controls,
        maxphyaddr,
        vmxon_region: region,
    })
}

// ---------------------------------------------------------------------------------
// The per-CPU area and the assembly that enters and leaves the guest
// ---------------------------------------------------------------------------------

/// The guest's general-purpose registers, as the exit stub saves them. RSP and RIP
/// live in the VMCS.
///
/// The order is chosen for the hypercall path: RAX and the five argument
/// registers of Keel's (Xen's) convention, RDI, RSI, RDX, R10, R8, come first
/// and in that order, so that they *are* a [`HypercallArgs`] (see
/// [`Self::hypercall_args`]): a hypercall is dispatched from the saved registers
/// in place, as Xen dispatches from its `cpu_user_regs`, instead of copying six
/// registers into a new structure on every call. The stub addresses each field by
/// `offset_of!`, so the order is free to change.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestGprs {
    /// RAX (the hypercall number).
    pub rax: u64,
    /// RDI (hypercall argument 1).
    pub rdi: u64,
    /// RSI (hypercall argument 2).
    pub rsi: u64,
    /// RDX (hypercall argument 3).
    pub rdx: u64,
    /// R10 (hypercall argument 4).
    pub r10: u64,
    /// R8 (hypercall argument 5).
    pub r8: u64,
    /// RCX.
    pub rcx: u64,
    /// RBX.
    pub rbx: u64,
    /// RBP.
    pub rbp: u64,
    /// R9.
    pub r9: u64,
    /// R11.
    pub r11: u64,
    /// R12.
    pub r12: u64,
    /// R13.
    pub r13: u64,
    /// R14.
    pub r14: u64,
    /// R15.
    pub r15: u64,
}

// The prefix of `GuestGprs` is a `HypercallArgs`, field for field.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(offset_of!(HypercallArgs, nr) == offset_of!(GuestGprs, rax));
    assert!(offset_of!(HypercallArgs, args) == offset_of!(GuestGprs, rdi));
    assert!(offset_of!(GuestGprs, rsi) == offset_of!(GuestGprs, rdi) + 8);
    assert!(offset_of!(GuestGprs, rdx) == offset_of!(GuestGprs, rdi) + 16);
    assert!(offset_of!(GuestGprs, r10) == offset_of!(GuestGprs, rdi) + 24);
    assert!(offset_of!(GuestGprs, r8) == offset_of!(GuestGprs, rdi) + 32);
    assert!(size_of::<HypercallArgs>() == 6 * 8);
    assert!(align_of::<HypercallArgs>() <= align_of::<GuestGprs>());
};

impl GuestGprs {
    /// RAX, RDI, RSI, RDX, R10 and R8 as the hypercall they carry, without a
    /// copy (the layout is asserted above).
    #[inline(always)]
    pub fn hypercall_args(&self) -> &HypercallArgs {
        // SAFETY: `HypercallArgs` is `repr(C)` { u64, [u64; 5] }, and the
        // assertions above prove it lies exactly over the first six fields of
        // this `repr(C)` struct of `u64`s with no stricter alignment; every bit
        // pattern is a valid u64, and the returned reference borrows `self`.
        unsafe { &*(self as *const GuestGprs).cast::<HypercallArgs>() }
    }

    const ZERO: GuestGprs = GuestGprs {
        rax: 0,
        rcx: 0,
        rdx: 0,
        rbx: 0,
        rbp: 0,
        rsi: 0,
        rdi: 0,
        r8: 0,
        r9: 0,
        r10: 0,
        r11: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0,
    };
}

/// Why `keel_vmx_launch` returned.
const LEAVE_LAUNCH_FAILED: u64 = 1;
const LEAVE_RESUME_FAILED: u64 = 2;
const LEAVE_DOMAIN_ENDED: u64 = 3;

/// One CPU's VMX state that the assembly touches. `#[repr(C)]`: the stub addresses
/// the fields by offset.
#[repr(C)]
pub struct PerCpu {
    /// The guest's GPRs while Keel handles an exit.
    pub gprs: GuestGprs,
    /// RSP inside `keel_vmx_launch`, to return to when the domain ends.
    launch_rsp: u64,
    /// RFLAGS after a failed VMLAUNCH/VMRESUME.
    fail_rflags: u64,
    /// The exit handler's environment while a domain runs (see `run_domain`).
    env: Option<NonNull<dyn ExitEnv>>,
    /// Why the domain ended.
    end: Option<DomainEnd>,
}

struct PerCpuCell(UnsafeCell<PerCpu>);
// SAFETY: one CPU in 0.1; the cell is touched only by that CPU, by `run_domain` and
// the exit path it starts, never concurrently.
unsafe impl Sync for PerCpuCell {}

static PERCPU: PerCpuCell = PerCpuCell(UnsafeCell::new(PerCpu {
    gprs: GuestGprs::ZERO,
    launch_rsp: 0,
    fail_rflags: 0,
    env: None,
    end: None,
}));

/// The exit handler runs on this stack (hypercall dispatch, logging, diagnostics).
const EXIT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(4096))]
struct ExitStack(UnsafeCell<[u8; EXIT_STACK_SIZE]>);
// SAFETY: as for `PerCpuCell`.
unsafe impl Sync for ExitStack {}
static EXIT_STACK: ExitStack = ExitStack(UnsafeCell::new([0; EXIT_STACK_SIZE]));

global_asm!(
    // keel_vmx_launch(pc: *mut PerCpu) -> u64 (System V): saves the callee-saved
    // registers, remembers RSP in pc.launch_rsp, loads the guest GPRs and executes
    // VMLAUNCH. It "returns" when VMLAUNCH fails (code 1) or, via the exit stub,
    // when the domain ends (code 3) or VMRESUME fails (code 2).
    ".global keel_vmx_launch",
    "keel_vmx_launch:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rdi",
    "mov [rdi + {launch_rsp}], rsp",
    "mov rax, rdi",
    "mov rcx, [rax + {rcx}]",
    "mov rdx, [rax + {rdx}]",
    "mov rbx, [rax + {rbx}]",
    "mov rbp, [rax + {rbp}]",
    "mov rsi, [rax + {rsi}]",
    "mov rdi, [rax + {rdi}]",
    "mov r8, [rax + {r8}]",
    "mov r9, [rax + {r9}]",
    "mov r10, [rax + {r10}]",
    "mov r11, [rax + {r11}]",
    "mov r12, [rax + {r12}]",
    "mov r13, [rax + {r13}]",
    "mov r14, [rax + {r14}]",
    "mov r15, [rax + {r15}]",
    "mov rax, [rax + {rax}]",
    "vmlaunch",
    // VMLAUNCH failed: we are still here, on the launch stack.
    "pushfq",
    "pop rax",
    "mov rbx, [rsp]",
    "mov [rbx + {fail_rflags}], rax",
    "mov eax, {launch_failed}",
    "keel_vmx_launch_return:",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    "",
    // The VM-exit entry point (the VMCS's host RIP). RSP = host RSP: 16-byte
    // aligned, [RSP] = this CPU's PerCpu. Interrupts are off (VM exit clears
    // RFLAGS except bit 1), DF is clear.
    ".global keel_vmx_exit_stub",
    "keel_vmx_exit_stub:",
    "push rax",
    "mov rax, [rsp + 8]",
    "mov [rax + {rcx}], rcx",
    "mov [rax + {rdx}], rdx",
    "mov [rax + {rbx}], rbx",
    "mov [rax + {rbp}], rbp",
    "mov [rax + {rsi}], rsi",
    "mov [rax + {rdi}], rdi",
    "mov [rax + {r8}], r8",
    "mov [rax + {r9}], r9",
    "mov [rax + {r10}], r10",
    "mov [rax + {r11}], r11",
    "mov [rax + {r12}], r12",
    "mov [rax + {r13}], r13",
    "mov [rax + {r14}], r14",
    "mov [rax + {r15}], r15",
    "pop rcx",
    "mov [rax + {rax}], rcx",
    // RBX is callee-saved: it still holds PerCpu after the call. RSP is 16-byte
    // aligned here, as the call ABI requires.
    "mov rbx, rax",
    "mov rdi, rax",
    "call {handler}",
    "test rax, rax",
    "jnz 2f",
    "mov rax, rbx",
    "mov rcx, [rax + {rcx}]",
    "mov rdx, [rax + {rdx}]",
    "mov rbx, [rax + {rbx}]",
    "mov rbp, [rax + {rbp}]",
    "mov rsi, [rax + {rsi}]",
    "mov rdi, [rax + {rdi}]",
    "mov r8, [rax + {r8}]",
    "mov r9, [rax + {r9}]",
    "mov r10, [rax + {r10}]",
    "mov r11, [rax + {r11}]",
    "mov r12, [rax + {r12}]",
    "mov r13, [rax + {r13}]",
    "mov r14, [rax + {r14}]",
    "mov r15, [rax + {r15}]",
    "mov rax, [rax + {rax}]",
    "vmresume",
    // VMRESUME failed.
    "pushfq",
    "pop rax",
    "mov rbx, [rsp]",
    "mov [rbx + {fail_rflags}], rax",
    "mov eax, {resume_failed}",
    "2:",
    // Leave: back onto keel_vmx_launch's stack, return to its caller with RAX.
    "mov rsp, [rbx + {launch_rsp}]",
    "jmp keel_vmx_launch_return",
    rax = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, rax),
    rcx = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, rcx),
    rdx = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, rdx),
    rbx = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, rbx),
    rbp = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, rbp),
    rsi = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, rsi),
    rdi = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, rdi),
    r8 = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, r8),
    r9 = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, r9),
    r10 = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, r10),
    r11 = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, r11),
    r12 = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, r12),
    r13 = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, r13),
    r14 = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, r14),
    r15 = const core::mem::offset_of!(PerCpu, gprs) + core::mem::offset_of!(GuestGprs, r15),
    launch_rsp = const core::mem::offset_of!(PerCpu, launch_rsp),
    fail_rflags = const core::mem::offset_of!(PerCpu, fail_rflags),
    launch_failed = const LEAVE_LAUNCH_FAILED,
    resume_failed = const LEAVE_RESUME_FAILED,
    handler = sym keel_vmx_exit_handler,
);

extern "C" {
    /// `pc` is a `*mut PerCpu` (declared as bytes: the assembly sees only offsets).
    fn keel_vmx_launch(pc: *mut u8) -> u64;
    fn keel_vmx_exit_stub();
}

/// Called by the exit stub with the guest's GPRs saved. Returns 0 to resume the
/// guest, [`LEAVE_DOMAIN_ENDED`] to leave.
extern "C" fn keel_vmx_exit_handler(pc: *mut PerCpu) -> u64 {
    // SAFETY: the stub passes this CPU's PerCpu; nothing else references it while
    // the handler runs (run_domain is suspended inside keel_vmx_launch).
    let pc = unsafe { &mut *pc };
    let Some(env) = pc.env else {
        // Cannot happen: run_domain sets `env` before launching. Leave rather than
        // run the guest without a handler.
        pc.end = Some(DomainEnd::Crashed);
        return LEAVE_DOMAIN_ENDED;
    };
    // SAFETY: `env` points at run_domain's `Vcpu`, alive for the whole launch (see
    // run_domain), and exits happen only inside that launch.
    let env = unsafe { &mut *env.as_ptr() };
    match env.handle_exit(&mut pc.gprs) {
        None => 0,
        Some(end) => {
            pc.end = Some(end);
            LEAVE_DOMAIN_ENDED
        }
    }
}

// ---------------------------------------------------------------------------------
// Running a domain
// ---------------------------------------------------------------------------------

/// How a domain's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainEnd {
    /// The guest called `sched_op(SCHEDOP_shutdown)` with this `SHUTDOWN_*` reason.
    Shutdown(u32),
    /// The guest was killed; the diagnostic has been printed.
    Crashed,
    /// VM entry failed (software check, VMLAUNCH/VMRESUME error, or an entry-failure
    /// exit); the named failure has been printed.
    EntryFailed,
}

const IA32_EFER: u32 = 0xc000_0080;
const IA32_PAT: u32 = 0x277;
const IA32_FS_BASE: u32 = 0xc000_0100;
const IA32_GS_BASE: u32 = 0xc000_0101;
const IA32_SYSENTER_CS: u32 = 0x174;
const IA32_SYSENTER_ESP: u32 = 0x175;
const IA32_SYSENTER_EIP: u32 = 0x176;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;
/// The power-on PAT (SDM 13.12.4): WB, WT, UC-, UC, repeated.
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;

/// The frames a VMCS needs, so they can be given back.
struct VmcsFrames {
    vmcs: Mfn,
    msr_bitmap: Option<Mfn>,
    io_bitmaps: Option<(Mfn, Mfn)>,
}

impl VmcsFrames {
    fn free(self, frames: &mut impl FrameSource) {
        frames.free_frame(self.vmcs);
        if let Some(f) = self.msr_bitmap {
            frames.free_frame(f);
        }
        if let Some((a, b)) = self.io_bitmaps {
            frames.free_frame(a);
            frames.free_frame(b);
        }
    }
}

/// Read a segment register's selector.
macro_rules! read_sel {
    ($seg:literal) => {{
        let v: u16;
        // SAFETY: reading a segment register has no side effects.
        unsafe {
            asm!(concat!("mov {0:x}, ", $seg), out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }};
}

/// The base address of the host's TSS, read from its GDT descriptor (a 16-byte
/// system descriptor in IA-32e mode, SDM 8.2.3).
fn host_tr_base(gdt_base: u64, tr: u16) -> u64 {
    let at = gdt_base + u64::from(tr & !7);
    // SAFETY: the GDT is ours and mapped; TR names a valid 16-byte TSS descriptor.
    let (lo, hi) = unsafe {
        (
            core::ptr::read_volatile(at as *const u64),
            core::ptr::read_volatile((at + 8) as *const u64),
        )
    };
    ((lo >> 16) & 0xff_ffff) | (((lo >> 56) & 0xff) << 24) | ((hi & 0xffff_ffff) << 32)
}

/// Write every VMCS field for `dom`'s first entry. Returns the first failing
/// VMWRITE (an unsupported field would be a Keel bug).
///
/// # Safety
/// A VMCS must be current, and `frames` its bitmaps.
unsafe fn setup_vmcs(
    cpu: &VmxCpu,
    dom: &Domain,
    vpid: u16,
    vf: &VmcsFrames,
) -> Result<(), (u32, VmFail)> {
    let c = &cpu.controls;
    let w = |field: u32, value: u64| -> Result<(), (u32, VmFail)> {
        // SAFETY: the caller guarantees a current VMCS; each value below is
        // chosen to keep the host intact.
        unsafe { vmwrite(field, value) }.map_err(|e| (field, e))
    };

    // --- Controls (SDM 25.6 - 25.8), from `controls::derive`.
    // The VMX-preemption timer (issue 6: guest timers while the guest runs),
    // when the CPU has it; its value is set before each entry, "never" until a
    // timer is armed.
    let preempt = super::controls::pin::PREEMPTION_TIMER;
    let pin = if cpu.caps.pin.can_set(preempt) {
        c.pin | preempt
    } else {
        c.pin
    };
    w(control::PINBASED_EXEC_CONTROLS, pin.into())?;
    if pin & preempt != 0 {
        w(guest::VMX_PREEMPTION_TIMER_VALUE, u32::MAX.into())?;
    }
    w(control::PRIMARY_PROCBASED_EXEC_CONTROLS, c.proc.into())?;
    if c.proc & super::controls::proc::ACTIVATE_SECONDARY_CONTROLS != 0 {
        w(control::SECONDARY_PROCBASED_EXEC_CONTROLS, c.proc2.into())?;
    }
    w(control::VMEXIT_CONTROLS, c.exit.into())?;
    w(control::VMENTRY_CONTROLS, c.entry.into())?;
    // Guest exceptions go through the guest's own IDT; none exits. (A fault the
    // guest cannot deliver ends as a triple-fault exit.)
    w(control::EXCEPTION_BITMAP, 0)?;
    w(control::PAGE_FAULT_ERR_CODE_MASK, 0)?;
    w(control::PAGE_FAULT_ERR_CODE_MATCH, 0)?;
    // No CR3-target values: every CR3 load exits (direct paging validates each).
    w(control::CR3_TARGET_COUNT, 0)?;
    w(control::VMEXIT_MSR_STORE_COUNT, 0)?;
    w(control::VMEXIT_MSR_LOAD_COUNT, 0)?;
    w(control::VMENTRY_MSR_LOAD_COUNT, 0)?;
    w(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0)?;
    w(control::CR0_GUEST_HOST_MASK, cr::CR0_GUEST_HOST_MASK)?;
    w(control::CR4_GUEST_HOST_MASK, cr::CR4_GUEST_HOST_MASK)?;
    w(control::CR0_READ_SHADOW, cr::GUEST_CR0_INITIAL)?;
    w(control::CR4_READ_SHADOW, cr::GUEST_CR4_INITIAL)?;
    if c.vpid {
        w(control::VPID, vpid.into())?;
    }
    if let Some(f) = vf.msr_bitmap {
        w(control::MSR_BITMAPS_ADDR_FULL, f.addr().0)?;
    }
    if let Some((a, b)) = vf.io_bitmaps {
        w(control::IO_BITMAP_A_ADDR_FULL, a.addr().0)?;
        w(control::IO_BITMAP_B_ADDR_FULL, b.addr().0)?;
    }

    // --- Host state (SDM 25.5): what the CPU loads on every VM exit, taken from
    // the CPU as it runs now.
    let gdtr = crate::arch::cpu::sgdt();
    let idtr = crate::arch::cpu::sidt();
    let tr = crate::arch::cpu::str_selector();
    w(host::CR0, crate::arch::cpu::read_cr0())?;
    w(host::CR3, crate::arch::cpu::read_cr3())?;
    w(host::CR4, crate::arch::cpu::read_cr4())?;
    w(host::CS_SELECTOR, read_sel!("cs").into())?;
    w(host::SS_SELECTOR, read_sel!("ss").into())?;
    w(host::DS_SELECTOR, read_sel!("ds").into())?;
    w(host::ES_SELECTOR, read_sel!("es").into())?;
    // FS and GS selectors: 0 (Keel loads null selectors; the bases come from the
    // MSRs). A non-null host selector with RPL/TI bits would fail 27.2.3.
    w(host::FS_SELECTOR, (read_sel!("fs") & !7).into())?;
    w(host::GS_SELECTOR, (read_sel!("gs") & !7).into())?;
    w(host::TR_SELECTOR, tr.into())?;
    w(host::FS_BASE, crate::arch::cpu::rdmsr(IA32_FS_BASE))?;
    w(host::GS_BASE, crate::arch::cpu::rdmsr(IA32_GS_BASE))?;
    w(host::TR_BASE, host_tr_base(gdtr.base, tr))?;
    w(host::GDTR_BASE, gdtr.base)?;
    w(host::IDTR_BASE, idtr.base)?;
    w(
        host::IA32_SYSENTER_CS,
        crate::arch::cpu::rdmsr(IA32_SYSENTER_CS),
    )?;
    w(
        host::IA32_SYSENTER_ESP,
        crate::arch::cpu::rdmsr(IA32_SYSENTER_ESP),
    )?;
    w(
        host::IA32_SYSENTER_EIP,
        crate::arch::cpu::rdmsr(IA32_SYSENTER_EIP),
    )?;
    if c.load_efer {
        w(host::IA32_EFER_FULL, crate::arch::cpu::rdmsr(IA32_EFER))?;
    }
    if c.load_pat {
        w(host::IA32_PAT_FULL, crate::arch::cpu::rdmsr(IA32_PAT))?;
    }
    // The exit stack: 16-byte aligned top slot holding this CPU's PerCpu pointer.
    let stack_top = EXIT_STACK.0.get() as u64 + EXIT_STACK_SIZE as u64 - 16;
    // SAFETY: the slot is inside EXIT_STACK, which only the exit path uses.
    unsafe { core::ptr::write_volatile(stack_top as *mut u64, PERCPU.0.get() as u64) };
    w(host::RSP, stack_top)?;
    w(host::RIP, keel_vmx_exit_stub as *const () as u64)?;

    // --- Guest state (SDM 25.4), per the contract's guest-facing section.
    let policy = CrPolicy::new(&cpu.caps);
    // A CPU whose FIXED1 forbids one of the contract's bits fails the software
    // checks below, by name; so write the value even then.
    let cr0 = policy
        .real_cr0(cr::GUEST_CR0_INITIAL)
        .unwrap_or(cr::GUEST_CR0_INITIAL | cpu.caps.cr0_fixed0);
    let cr4 = policy
        .real_cr4(cr::GUEST_CR4_INITIAL)
        .unwrap_or(cr::GUEST_CR4_INITIAL | cpu.caps.cr4_fixed0);
    w(guest::CR0, cr0)?;
    w(guest::CR3, dom.boot.cr3.addr().0)?;
    w(guest::CR4, cr4)?;
    w(guest::DR7, 0x400)?;
    w(guest::RSP, dom.boot.stack_top.0)?;
    w(guest::RIP, dom.boot.entry.0)?;
    w(guest::RFLAGS, 0x2)?;
    let seg = |sel: u32, base: u32, limit: u32, ar: u32, s: Segment| -> Result<(), (u32, VmFail)> {
        w(sel, s.selector.into())?;
        w(base, s.base)?;
        w(limit, s.limit.into())?;
        w(ar, s.access.into())
    };
    seg(
        guest::CS_SELECTOR,
        guest::CS_BASE,
        guest::CS_LIMIT,
        guest::CS_ACCESS_RIGHTS,
        guest_layout::CS,
    )?;
    for (s, b, l, a) in [
        (
            guest::SS_SELECTOR,
            guest::SS_BASE,
            guest::SS_LIMIT,
            guest::SS_ACCESS_RIGHTS,
        ),
        (
            guest::DS_SELECTOR,
            guest::DS_BASE,
            guest::DS_LIMIT,
            guest::DS_ACCESS_RIGHTS,
        ),
        (
            guest::ES_SELECTOR,
            guest::ES_BASE,
            guest::ES_LIMIT,
            guest::ES_ACCESS_RIGHTS,
        ),
        (
            guest::FS_SELECTOR,
            guest::FS_BASE,
            guest::FS_LIMIT,
            guest::FS_ACCESS_RIGHTS,
        ),
        (
            guest::GS_SELECTOR,
            guest::GS_BASE,
            guest::GS_LIMIT,
            guest::GS_ACCESS_RIGHTS,
        ),
    ] {
        seg(s, b, l, a, guest_layout::DATA)?;
    }
    seg(
        guest::TR_SELECTOR,
        guest::TR_BASE,
        guest::TR_LIMIT,
        guest::TR_ACCESS_RIGHTS,
        guest_layout::TR,
    )?;
    seg(
        guest::LDTR_SELECTOR,
        guest::LDTR_BASE,
        guest::LDTR_LIMIT,
        guest::LDTR_ACCESS_RIGHTS,
        guest_layout::LDTR,
    )?;
    w(guest::GDTR_BASE, 0)?;
    w(guest::GDTR_LIMIT, 0)?;
    w(guest::IDTR_BASE, 0)?;
    w(guest::IDTR_LIMIT, 0)?;
    w(guest::IA32_DEBUGCTL_FULL, 0)?;
    w(guest::IA32_SYSENTER_CS, 0)?;
    w(guest::IA32_SYSENTER_ESP, 0)?;
    w(guest::IA32_SYSENTER_EIP, 0)?;
    let efer = EFER_LME | EFER_LMA | EFER_SCE | if dom.nx_enabled() { EFER_NXE } else { 0 };
    if c.load_efer {
        w(guest::IA32_EFER_FULL, efer)?;
    }
    if c.load_pat {
        w(guest::IA32_PAT_FULL, PAT_DEFAULT)?;
    }
    w(guest::ACTIVITY_STATE, 0)?;
    w(guest::INTERRUPTIBILITY_STATE, 0)?;
    w(guest::PENDING_DBG_EXCEPTIONS, 0)?;
    // No shadow VMCS: the link pointer must be all ones (SDM 27.3.1.5).
    w(guest::LINK_PTR_FULL, u64::MAX)?;
    Ok(())
}

/// Read back every field the VM-entry checks need, exactly as the CPU holds them.
fn read_state(cpu: &VmxCpu) -> VmcsState {
    let r = vmread;
    let seg = |sel: u32, base: u32, limit: u32, ar: u32| Segment {
        selector: r(sel) as u16,
        base: r(base),
        limit: r(limit) as u32,
        access: r(ar) as u32,
    };
    let c = &cpu.controls;
    let proc = r(control::PRIMARY_PROCBASED_EXEC_CONTROLS) as u32;
    VmcsState {
        maxphyaddr: cpu.maxphyaddr,
        pin: r(control::PINBASED_EXEC_CONTROLS) as u32,
        proc,
        proc2: if proc & super::controls::proc::ACTIVATE_SECONDARY_CONTROLS != 0 {
            r(control::SECONDARY_PROCBASED_EXEC_CONTROLS) as u32
        } else {
            0
        },
        exit: r(control::VMEXIT_CONTROLS) as u32,
        entry: r(control::VMENTRY_CONTROLS) as u32,
        cr3_target_count: r(control::CR3_TARGET_COUNT) as u32,
        io_bitmap_a: r(control::IO_BITMAP_A_ADDR_FULL),
        io_bitmap_b: r(control::IO_BITMAP_B_ADDR_FULL),
        msr_bitmap: r(control::MSR_BITMAPS_ADDR_FULL),
        // The field exists only on CPUs with "use TPR shadow"; Keel never sets it.
        virtual_apic: if proc & super::controls::proc::USE_TPR_SHADOW != 0 {
            r(control::VIRT_APIC_ADDR_FULL)
        } else {
            0
        },
        vpid: if c.vpid { r(control::VPID) as u16 } else { 0 },
        exit_msr_store_count: r(control::VMEXIT_MSR_STORE_COUNT) as u32,
        exit_msr_store_addr: r(control::VMEXIT_MSR_STORE_ADDR_FULL),
        exit_msr_load_count: r(control::VMEXIT_MSR_LOAD_COUNT) as u32,
        exit_msr_load_addr: r(control::VMEXIT_MSR_LOAD_ADDR_FULL),
        entry_msr_load_count: r(control::VMENTRY_MSR_LOAD_COUNT) as u32,
        entry_msr_load_addr: r(control::VMENTRY_MSR_LOAD_ADDR_FULL),
        entry_intr_info: r(control::VMENTRY_INTERRUPTION_INFO_FIELD) as u32,
        entry_exception_error_code: r(control::VMENTRY_EXCEPTION_ERR_CODE) as u32,
        entry_instruction_len: r(control::VMENTRY_INSTRUCTION_LEN) as u32,
        host_cr0: r(host::CR0),
        host_cr3: r(host::CR3),
        host_cr4: r(host::CR4),
        host_es: r(host::ES_SELECTOR) as u16,
        host_cs: r(host::CS_SELECTOR) as u16,
        host_ss: r(host::SS_SELECTOR) as u16,
        host_ds: r(host::DS_SELECTOR) as u16,
        host_fs: r(host::FS_SELECTOR) as u16,
        host_gs: r(host::GS_SELECTOR) as u16,
        host_tr: r(host::TR_SELECTOR) as u16,
        host_fs_base: r(host::FS_BASE),
        host_gs_base: r(host::GS_BASE),
        host_tr_base: r(host::TR_BASE),
        host_gdtr_base: r(host::GDTR_BASE),
        host_idtr_base: r(host::IDTR_BASE),
        host_sysenter_esp: r(host::IA32_SYSENTER_ESP),
        host_sysenter_eip: r(host::IA32_SYSENTER_EIP),
        host_pat: if c.load_pat {
            r(host::IA32_PAT_FULL)
        } else {
            0
        },
        // Without "load IA32_EFER" on exit the check needs the CPU's own EFER.
        host_efer: if c.load_efer {
            r(host::IA32_EFER_FULL)
        } else {
            crate::arch::cpu::rdmsr(IA32_EFER)
        },
        host_rip: r(host::RIP),
        guest_cr0: r(guest::CR0),
        guest_cr3: r(guest::CR3),
        guest_cr4: r(guest::CR4),
        guest_dr7: r(guest::DR7),
        guest_debugctl: r(guest::IA32_DEBUGCTL_FULL),
        guest_sysenter_esp: r(guest::IA32_SYSENTER_ESP),
        guest_sysenter_eip: r(guest::IA32_SYSENTER_EIP),
        guest_pat: if c.load_pat {
            r(guest::IA32_PAT_FULL)
        } else {
            0
        },
        guest_efer: if c.load_efer {
            r(guest::IA32_EFER_FULL)
        } else {
            0
        },
        guest_cs: seg(
            guest::CS_SELECTOR,
            guest::CS_BASE,
            guest::CS_LIMIT,
            guest::CS_ACCESS_RIGHTS,
        ),
        guest_ss: seg(
            guest::SS_SELECTOR,
            guest::SS_BASE,
            guest::SS_LIMIT,
            guest::SS_ACCESS_RIGHTS,
        ),
        guest_ds: seg(
            guest::DS_SELECTOR,
            guest::DS_BASE,
            guest::DS_LIMIT,
            guest::DS_ACCESS_RIGHTS,
        ),
        guest_es: seg(
            guest::ES_SELECTOR,
            guest::ES_BASE,
            guest::ES_LIMIT,
            guest::ES_ACCESS_RIGHTS,
        ),
        guest_fs: seg(
            guest::FS_SELECTOR,
            guest::FS_BASE,
            guest::FS_LIMIT,
            guest::FS_ACCESS_RIGHTS,
        ),
        guest_gs: seg(
            guest::GS_SELECTOR,
            guest::GS_BASE,
            guest::GS_LIMIT,
            guest::GS_ACCESS_RIGHTS,
        ),
        guest_ldtr: seg(
            guest::LDTR_SELECTOR,
            guest::LDTR_BASE,
            guest::LDTR_LIMIT,
            guest::LDTR_ACCESS_RIGHTS,
        ),
        guest_tr: seg(
            guest::TR_SELECTOR,
            guest::TR_BASE,
            guest::TR_LIMIT,
            guest::TR_ACCESS_RIGHTS,
        ),
        guest_gdtr_base: r(guest::GDTR_BASE),
        guest_gdtr_limit: r(guest::GDTR_LIMIT) as u32,
        guest_idtr_base: r(guest::IDTR_BASE),
        guest_idtr_limit: r(guest::IDTR_LIMIT) as u32,
        guest_rip: r(guest::RIP),
        guest_rflags: r(guest::RFLAGS),
        activity_state: r(guest::ACTIVITY_STATE) as u32,
        interruptibility: r(guest::INTERRUPTIBILITY_STATE) as u32,
        pending_dbg: r(guest::PENDING_DBG_EXCEPTIONS),
        link_pointer: r(guest::LINK_PTR_FULL),
    }
}

/// Allocate and fill the MSR bitmap (SDM 25.6.9): every bit 1 (intercept),
/// except the reads and writes `crate::policy::msr`'s table passes through
/// (`msr::bitmap_passes`; why each is safe is stated there, row by row).
fn build_msr_bitmap(
    frames: &mut impl FrameSource,
    mem: &mut impl PhysMem,
    env: &crate::policy::msr::MsrEnv,
) -> Option<Mfn> {
    let f = frames.alloc_frame()?;
    let ones = [0xffu8; 512];
    let mut off = 0;
    while off < PAGE_SIZE {
        mem.write(MachineAddr(f.addr().0 + off), &ones);
        off += ones.len() as u64;
    }
    for (index, read, write) in crate::policy::msr::bitmap_passes(env) {
        for (is_write, passes) in [(false, read), (true, write)] {
            let Some((byte, bit)) = crate::policy::msr::bitmap_position(index, is_write) else {
                continue;
            };
            if !passes {
                continue;
            }
            let at = MachineAddr(f.addr().0 + byte as u64);
            let mut b = [0u8; 1];
            mem.read(at, &mut b);
            b[0] &= !(1 << bit);
            mem.write(at, &b);
        }
    }
    Some(f)
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

/// Allocate a frame filled with ones (an I/O bitmap that intercepts every port).
fn ones_frame(frames: &mut impl FrameSource, mem: &mut impl PhysMem) -> Option<Mfn> {
    let f = frames.alloc_frame()?;
    let ones = [0xffu8; 512];
    let mut off = 0;
    while off < PAGE_SIZE {
        mem.write(MachineAddr(f.addr().0 + off), &ones);
        off += ones.len() as u64;
    }
    Some(f)
}

/// Run `dom` on this CPU until it shuts down, crashes, or cannot be entered.
pub fn run_domain(
    cpu: &mut VmxCpu,
    dom: &mut Domain,
    mem: &mut impl PhysMem,
    console: &mut impl Console,
    frames: &mut impl FrameSource,
) -> DomainEnd {
    // --- The VMCS region: a zeroed frame starting with the revision identifier,
    // VMCLEARed (which also initializes its launch state) and made current.
    let Some(vmcs) = frames.alloc_frame() else {
        log::error!("vmx: no free frame for the VMCS");
        return DomainEnd::EntryFailed;
    };
    mem.zero_frame(vmcs);
    mem.write(vmcs.addr(), &cpu.caps.revision_id.to_le_bytes());
    let mut vf = VmcsFrames {
        vmcs,
        msr_bitmap: None,
        io_bitmaps: None,
    };
    if cpu.controls.msr_bitmaps {
        vf.msr_bitmap = build_msr_bitmap(frames, mem, &super::exit::msr_env(cpu));
    }
    if cpu.controls.io_bitmaps {
        vf.io_bitmaps = ones_frame(frames, mem).zip(ones_frame(frames, mem));
    }
    if (cpu.controls.msr_bitmaps && vf.msr_bitmap.is_none())
        || (cpu.controls.io_bitmaps && vf.io_bitmaps.is_none())
    {
        log::error!("vmx: no free frames for the MSR/I/O bitmaps");
        vf.free(frames);
        return DomainEnd::EntryFailed;
    }
    // SAFETY: `vmcs` is a zeroed frame we own, with the revision identifier.
    let loaded = unsafe { vmclear(vmcs.addr().0).and_then(|()| vmptrld(vmcs.addr().0)) };
    if let Err(e) = loaded {
        log::error!(
            "vmx: VMCLEAR/VMPTRLD of the VMCS at {:#x} failed: {e}",
            vmcs.addr().0
        );
        vf.free(frames);
        return DomainEnd::EntryFailed;
    }

    // VPID: the domain id (0 would mean "no VPID", so domain 0 would get 0xffff).
    let vpid = if dom.id.0 == 0 { 0xffff } else { dom.id.0 };

    // On CPUs that cannot switch EFER through the VMCS, the guest runs with the
    // host's EFER (LMA/LME come from the entry controls): give the host the bits the
    // guest is promised (SCE; NXE when its tables use NX). Neither changes how the
    // host runs.
    if !cpu.controls.load_efer {
        let want = EFER_SCE | if dom.nx_enabled() { EFER_NXE } else { 0 };
        let efer = crate::arch::cpu::rdmsr(IA32_EFER);
        if efer & want != want {
            // SAFETY: SCE and NXE only enable SYSCALL and the NX bit.
            unsafe { crate::arch::cpu::wrmsr(IA32_EFER, efer | want) };
        }
    }

    // SAFETY: the VMCS is current; the bitmaps are in `vf`.
    if let Err((field, e)) = unsafe { setup_vmcs(cpu, dom, vpid, &vf) } {
        log::error!("vmx: VMWRITE of VMCS field {field:#x} failed: {e}");
        return finish(vf, frames, DomainEnd::EntryFailed);
    }

    // --- The software VM-entry checks, on what the CPU actually holds.
    let state = read_state(cpu);
    if let Err(f) = check_vm_entry(&state, &cpu.caps) {
        log::error!("vmx: VM-entry check failed: {f}");
        return finish(vf, frames, DomainEnd::EntryFailed);
    }
    log::info!(
        "vmx: VMCS for domain {} passes the software VM-entry checks (pin {:#x} proc {:#x} proc2 {:#x} exit {:#x} entry {:#x}; host CR0 {:#x} CR4 {:#x})",
        dom.id.0,
        state.pin,
        state.proc,
        state.proc2,
        state.exit,
        state.entry,
        state.host_cr0,
        state.host_cr4
    );

    // An earlier domain may have used this VPID: drop its translations.
    if cpu.controls.vpid {
        let ty = match cpu.controls.tlb_flush {
            TlbFlush::InvvpidAllContext => InvvpidType::AllContext,
            _ if cpu.caps.ept_vpid.invvpid_single_context() => InvvpidType::SingleContext,
            _ => InvvpidType::AllContext,
        };
        if let Err(e) = invvpid(ty, vpid, 0) {
            log::error!("vmx: INVVPID before the first entry failed: {e}");
            return finish(vf, frames, DomainEnd::EntryFailed);
        }
    }

    // --- Run. The exit handler's environment lives on this stack frame for the
    // whole of `keel_vmx_launch`; its lifetime is erased for the PerCpu slot and
    // the slot is cleared before the frame goes away.
    let pcp = PERCPU.0.get();
    let (dom_id, entry, start_info) = (dom.id.0, dom.boot.entry.0, dom.boot.start_info.0);
    let ev = start_time_and_events(dom, mem, cpu);
    let mut vcpu = Vcpu::new(cpu, dom, mem, console, vpid, ev);
    let env: &mut dyn ExitEnv = &mut vcpu;
    // SAFETY: only the lifetime changes; see above.
    let env: NonNull<dyn ExitEnv> = unsafe {
        core::mem::transmute::<NonNull<dyn ExitEnv + '_>, NonNull<dyn ExitEnv>>(NonNull::from(env))
    };
    // SAFETY: PERCPU is this CPU's and nothing else holds a reference to it now.
    unsafe {
        (*pcp).gprs = GuestGprs {
            rsi: start_info,
            ..GuestGprs::ZERO
        };
        (*pcp).env = Some(env);
        (*pcp).end = None;
    }
    log::info!("vmx: entering domain {dom_id} at {entry:#x}");
    // SAFETY: the VMCS is current and checked; PERCPU and the exit stack are set up.
    let code = unsafe { keel_vmx_launch(pcp.cast()) };
    // SAFETY: as above; the guest is no longer running.
    let (fail_rflags, end) = unsafe {
        (*pcp).env = None;
        ((*pcp).fail_rflags, (*pcp).end.take())
    };
    // `vcpu` (the handler's environment) stays alive until here, past the launch.

    let end = match code {
        LEAVE_DOMAIN_ENDED => end.unwrap_or(DomainEnd::Crashed),
        LEAVE_LAUNCH_FAILED | LEAVE_RESUME_FAILED => {
            let what = if code == LEAVE_LAUNCH_FAILED {
                "VMLAUNCH"
            } else {
                "VMRESUME"
            };
            match vm_result(fail_rflags) {
                Err(e) => log::error!("vmx: {what} failed: {e}"),
                Ok(()) => log::error!("vmx: {what} failed with RFLAGS {fail_rflags:#x}"),
            }
            if code == LEAVE_LAUNCH_FAILED {
                // Which check did the CPU apply that Keel's software does not?
                let again = read_state(cpu);
                match check_vm_entry(&again, &cpu.caps) {
                    Ok(()) => log::error!("vmx: the software VM-entry checks pass: the CPU applied a check Keel does not model"),
                    Err(f) => log::error!("vmx: VM-entry check now fails: {f}"),
                }
            }
            DomainEnd::EntryFailed
        }
        other => {
            log::error!("vmx: unexpected return {other} from the VM-entry path");
            DomainEnd::Crashed
        }
    };
    finish(vf, frames, end)
}

/// Issue 6's hardware set-up before the first entry: mask the PIC, calibrate the
/// TSC against the PIT, read the RTC, enable the local APIC and its timer, and
/// make the domain's event state (shared_info page, pvclock, wall clock).
fn start_time_and_events(
    dom: &Domain,
    mem: &mut impl PhysMem,
    cpu: &VmxCpu,
) -> crate::event::EventState {
    use crate::arch::timer;
    timer::mask_pic();
    // 50 ms of PIT ticks.
    let pit = (timer::PIT_HZ / 20) as u16;
    let (tsc_ticks, pit_ticks) = timer::calibrate_tsc(pit);
    let hz = crate::time::calibrate(tsc_ticks, pit_ticks, timer::PIT_HZ).unwrap_or(1_000_000_000);
    crate::arch::serial::set_tsc_hz(hz);
    let tsc0 = timer::rdtsc();
    let clock = crate::time::Clock::new(tsc0, hz);
    let rtc = timer::read_rtc();
    let wall = crate::time::rtc_to_unix(rtc).unwrap_or(0);
    let deadline = timer::init_lapic();
    log::info!(
        "time: TSC {} kHz (PIT, 50 ms), scale mul {:#x} shift {}; wall clock {} ({:04}-{:02}-{:02} {:02}:{:02}:{:02} RTC); local APIC timer {}; guest timers via {}",
        hz / 1000,
        clock.scale.mul,
        clock.scale.shift,
        wall,
        rtc.year,
        rtc.month,
        rtc.day,
        rtc.hour,
        rtc.min,
        rtc.sec,
        if deadline { "TSC-deadline" } else { "one-shot" },
        if cpu.caps.pin.can_set(super::controls::pin::PREEMPTION_TIMER) {
            "the VMX-preemption timer"
        } else {
            "the local APIC timer (no VMX-preemption timer)"
        }
    );
    let ev = crate::event::EventState::new(dom, mem, clock, wall);
    match ev.shared {
        Some(m) => log::info!("events: shared_info at machine {:#x}", m.addr().0),
        None => log::warn!(
            "events: domain {} has no free frame for shared_info: no events",
            dom.id.0
        ),
    }
    ev
}

/// VMCLEAR the VMCS (writes its state back to memory and makes it not current),
/// give its frames back, and report how the run ended.
fn finish(vf: VmcsFrames, frames: &mut impl FrameSource, end: DomainEnd) -> DomainEnd {
    // SAFETY: `vf.vmcs` is the VMCS we loaded.
    if let Err(e) = unsafe { vmclear(vf.vmcs.addr().0) } {
        // Do not reuse a frame the CPU may still cache.
        log::error!("vmx: VMCLEAR at domain end failed: {e}; leaking the VMCS frame");
        return end;
    }
    vf.free(frames);
    log::info!(
        "vmx: {} exits, {} VMREADs, {} VMWRITEs",
        STATS.total_exits(),
        STATS.vmreads.load(Relaxed),
        STATS.vmwrites.load(Relaxed)
    );
    // By reason, so a benchmark can be checked for the exits it should (not) cause,
    // e.g. that a pass-through WRMSR never exits.
    for (basic, c) in STATS.exits.iter().enumerate() {
        let n = c.load(Relaxed);
        if n != 0 {
            let basic = basic as u16;
            log::info!(
                "vmx:   {n} exits for reason {basic} ({}{})",
                super::names::exit_reason_name(basic),
                if usize::from(basic) == COUNTED_EXIT_REASONS - 1 {
                    " or higher"
                } else {
                    ""
                }
            );
        }
    }
    end
}

/// Print an exit reason for a VM-entry failure exit (bit 31 set).
pub(super) fn report_entry_failure(reason: ExitReason, qualification: u64) {
    log::error!(
        "vmx: VM entry failed: {reason}, exit qualification {qualification:#x}{}",
        match (reason.basic(), qualification) {
            (34, q) => match q {
                0 => "",
                _ => " (the failing MSR-load entry, counted from 1)",
            },
            (33, 2) => " (invalid guest state: PDPTE)",
            (33, 3) => " (invalid guest state: NMI injection)",
            (33, 4) => " (invalid guest state: VMCS link pointer)",
            _ => "",
        }
    );
}
