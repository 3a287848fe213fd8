//! # Turning VMX on
//!
//! Detect VT-x, make sure the firmware allows it, apply the CR0/CR4 fixed bits,
//! derive the controls Keel uses from the capability MSRs, and execute VMXON
//! (SDM 24.7, "Enabling and entering VMX operation"). Writing CR0/CR4, the
//! feature-control MSR and VMXON are `unsafe`: this file is allowed it.
#![allow(unsafe_code)]

use core::fmt;

use super::caps::{msr, VmxCaps};
use super::controls::{derive, ControlError};
use super::cr;
use super::insn::{vmxon, VmFail};
use super::percpu::{self, VmxCpu};
use crate::addr::PAGE_SIZE;
use crate::mem::{FrameSource, PhysMem};

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
    /// The CPU number has no per-CPU state (`percpu::MAX_CPUS`).
    NoSuchCpu(usize),
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
            | VmxError::NoSuchCpu(_)
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
            VmxError::NoSuchCpu(n) => write!(
                f,
                "VMXON impossible: CPU {n} has no per-CPU state (MAX_CPUS {})",
                percpu::MAX_CPUS
            ),
        }
    }
}

/// IA32_FEATURE_CONTROL bits (SDM 24.7).
const FC_LOCK: u64 = 1 << 0;
const FC_VMX_OUTSIDE_SMX: u64 = 1 << 2;

/// Turn VMX on for CPU number `cpu` (the one executing this): make
/// `percpu::PERCPU[cpu]` its state, detect VMX, make sure firmware allows it,
/// apply the CR0/CR4 fixed bits, derive the controls, and execute VMXON. What
/// it learnt is kept in that CPU's `PerCpu` ([`PerCpu::vmx`]) and returned.
pub fn enable(cpu: usize, frames: &mut impl FrameSource) -> Result<&'static VmxCpu, VmxError> {
    if percpu::init(cpu).is_none() {
        return Err(VmxError::NoSuchCpu(cpu));
    }
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
    if let Err(e) = unsafe { vmxon(region.addr()) } {
        frames.free_frame(region);
        return Err(VmxError::VmxonFailed(e));
    }
    // The boot CPU's line describes every CPU: the others must agree with it
    // (`smp::caps_mismatch`), so theirs is only a debug line.
    let level = if cpu == 0 {
        log::Level::Info
    } else {
        log::Level::Debug
    };
    log::log!(
        level,
        "vmx: VMXON ok on CPU {cpu} (VMCS revision {:#x}, {} true controls, MAXPHYADDR {}); VPID {}, EFER/PAT switching {}/{}, MSR bitmaps {}",
        caps.revision_id,
        if caps.true_controls { "with" } else { "without" },
        maxphyaddr,
        if controls.vpid { "on" } else { "off (not offered)" },
        if controls.load_efer { "on" } else { "off" },
        if controls.load_pat { "on" } else { "off" },
        if controls.msr_bitmaps { "on" } else { "off" },
    );
    // A second VMXON on this CPU fails above (SDM 31.3), so this sets it once.
    Ok(percpu::this().vmx.call_once(|| VmxCpu {
        caps,
        controls,
        maxphyaddr,
        vmxon_region: region,
    }))
}
