//! # The VMX controls Keel asks for, derived from what the CPU offers
//!
//! Each control Keel cares about is either *required* (Keel cannot run a guest
//! safely without it: [`derive()`] fails and names it) or *wanted* (used when the CPU
//! offers it, with a fallback when it does not). On top of that, every bit the CPU
//! reports as must-be-1 ("allowed 0-setting" = 1, SDM A.3) is set, whatever it is:
//! the exit handler copes with the exits such bits cause (e.g. CR3-store exiting on
//! CPUs without the TRUE control MSRs).
//!
//! Keel does direct paging: no EPT, no unrestricted guest. The guest runs in IA-32e
//! mode with paging on, on page tables that hold machine frames, and the hypervisor
//! sees every CR3 load.

use super::caps::{AllowedBits, VmxCaps};

/// Pin-based VM-execution control bits (SDM 25.6.1, table 25-5).
pub mod pin {
    /// External interrupts cause VM exits (instead of going through the guest IDT).
    pub const EXTERNAL_INTERRUPT_EXITING: u32 = 1 << 0;
    /// NMIs cause VM exits.
    pub const NMI_EXITING: u32 = 1 << 3;
    /// Virtual NMIs.
    pub const VIRTUAL_NMIS: u32 = 1 << 5;
    /// VMX-preemption timer.
    pub const PREEMPTION_TIMER: u32 = 1 << 6;
    /// Process posted interrupts.
    pub const POSTED_INTERRUPTS: u32 = 1 << 7;
}

/// Primary processor-based VM-execution control bits (SDM 25.6.2, table 25-6).
pub mod proc {
    /// Interrupt-window exiting.
    pub const INTERRUPT_WINDOW_EXITING: u32 = 1 << 2;
    /// Use TSC offsetting.
    pub const USE_TSC_OFFSETTING: u32 = 1 << 3;
    /// HLT exiting.
    pub const HLT_EXITING: u32 = 1 << 7;
    /// INVLPG exiting.
    pub const INVLPG_EXITING: u32 = 1 << 9;
    /// MWAIT exiting.
    pub const MWAIT_EXITING: u32 = 1 << 10;
    /// RDPMC exiting.
    pub const RDPMC_EXITING: u32 = 1 << 11;
    /// RDTSC exiting.
    pub const RDTSC_EXITING: u32 = 1 << 12;
    /// CR3-load exiting.
    pub const CR3_LOAD_EXITING: u32 = 1 << 15;
    /// CR3-store exiting.
    pub const CR3_STORE_EXITING: u32 = 1 << 16;
    /// CR8-load exiting.
    pub const CR8_LOAD_EXITING: u32 = 1 << 19;
    /// CR8-store exiting.
    pub const CR8_STORE_EXITING: u32 = 1 << 20;
    /// Use TPR shadow.
    pub const USE_TPR_SHADOW: u32 = 1 << 21;
    /// NMI-window exiting.
    pub const NMI_WINDOW_EXITING: u32 = 1 << 22;
    /// MOV-DR exiting.
    pub const MOV_DR_EXITING: u32 = 1 << 23;
    /// Unconditional I/O exiting.
    pub const UNCONDITIONAL_IO_EXITING: u32 = 1 << 24;
    /// Use I/O bitmaps.
    pub const USE_IO_BITMAPS: u32 = 1 << 25;
    /// Monitor trap flag.
    pub const MONITOR_TRAP_FLAG: u32 = 1 << 27;
    /// Use MSR bitmaps.
    pub const USE_MSR_BITMAPS: u32 = 1 << 28;
    /// MONITOR exiting.
    pub const MONITOR_EXITING: u32 = 1 << 29;
    /// PAUSE exiting.
    pub const PAUSE_EXITING: u32 = 1 << 30;
    /// Activate secondary controls.
    pub const ACTIVATE_SECONDARY_CONTROLS: u32 = 1 << 31;
}

/// Secondary processor-based VM-execution control bits (SDM 25.6.2, table 25-7).
pub mod proc2 {
    /// Virtualize APIC accesses.
    pub const VIRTUALIZE_APIC_ACCESSES: u32 = 1 << 0;
    /// Enable EPT.
    pub const ENABLE_EPT: u32 = 1 << 1;
    /// Descriptor-table exiting.
    pub const DESCRIPTOR_TABLE_EXITING: u32 = 1 << 2;
    /// Enable RDTSCP.
    pub const ENABLE_RDTSCP: u32 = 1 << 3;
    /// Virtualize x2APIC mode.
    pub const VIRTUALIZE_X2APIC_MODE: u32 = 1 << 4;
    /// Enable VPID.
    pub const ENABLE_VPID: u32 = 1 << 5;
    /// WBINVD exiting.
    pub const WBINVD_EXITING: u32 = 1 << 6;
    /// Unrestricted guest.
    pub const UNRESTRICTED_GUEST: u32 = 1 << 7;
    /// APIC-register virtualization.
    pub const APIC_REGISTER_VIRTUALIZATION: u32 = 1 << 8;
    /// Virtual-interrupt delivery.
    pub const VIRTUAL_INTERRUPT_DELIVERY: u32 = 1 << 9;
    /// PAUSE-loop exiting.
    pub const PAUSE_LOOP_EXITING: u32 = 1 << 10;
    /// RDRAND exiting.
    pub const RDRAND_EXITING: u32 = 1 << 11;
    /// Enable INVPCID.
    pub const ENABLE_INVPCID: u32 = 1 << 12;
    /// Enable VM functions.
    pub const ENABLE_VM_FUNCTIONS: u32 = 1 << 13;
    /// VMCS shadowing.
    pub const VMCS_SHADOWING: u32 = 1 << 14;
    /// RDSEED exiting.
    pub const RDSEED_EXITING: u32 = 1 << 16;
    /// Enable PML.
    pub const ENABLE_PML: u32 = 1 << 17;
    /// EPT-violation #VE.
    pub const EPT_VIOLATION_VE: u32 = 1 << 18;
    /// Enable XSAVES/XRSTORS.
    pub const ENABLE_XSAVES: u32 = 1 << 20;
    /// Mode-based execute control for EPT.
    pub const MODE_BASED_EPT_EXECUTE: u32 = 1 << 22;
    /// Use TSC scaling.
    pub const USE_TSC_SCALING: u32 = 1 << 25;
}

/// VM-exit control bits (SDM 25.7.1, table 25-13).
pub mod exit {
    /// Save debug controls.
    pub const SAVE_DEBUG_CONTROLS: u32 = 1 << 2;
    /// Host address-space size (the host runs in 64-bit mode after the exit).
    pub const HOST_ADDRESS_SPACE_SIZE: u32 = 1 << 9;
    /// Load IA32_PERF_GLOBAL_CTRL.
    pub const LOAD_PERF_GLOBAL_CTRL: u32 = 1 << 12;
    /// Acknowledge interrupt on exit.
    pub const ACK_INTERRUPT_ON_EXIT: u32 = 1 << 15;
    /// Save IA32_PAT.
    pub const SAVE_PAT: u32 = 1 << 18;
    /// Load IA32_PAT.
    pub const LOAD_PAT: u32 = 1 << 19;
    /// Save IA32_EFER.
    pub const SAVE_EFER: u32 = 1 << 20;
    /// Load IA32_EFER.
    pub const LOAD_EFER: u32 = 1 << 21;
    /// Save VMX-preemption timer value.
    pub const SAVE_PREEMPTION_TIMER: u32 = 1 << 22;
}

/// VM-entry control bits (SDM 25.8.1, table 25-15).
pub mod entry {
    /// Load debug controls.
    pub const LOAD_DEBUG_CONTROLS: u32 = 1 << 2;
    /// IA-32e mode guest.
    pub const IA32E_MODE_GUEST: u32 = 1 << 9;
    /// Entry to SMM.
    pub const ENTRY_TO_SMM: u32 = 1 << 10;
    /// Deactivate dual-monitor treatment.
    pub const DEACTIVATE_DUAL_MONITOR: u32 = 1 << 11;
    /// Load IA32_PERF_GLOBAL_CTRL.
    pub const LOAD_PERF_GLOBAL_CTRL: u32 = 1 << 13;
    /// Load IA32_PAT.
    pub const LOAD_PAT: u32 = 1 << 14;
    /// Load IA32_EFER.
    pub const LOAD_EFER: u32 = 1 << 15;
}

/// One of the five 32-bit control fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlField {
    /// Pin-based VM-execution controls.
    Pin,
    /// Primary processor-based VM-execution controls.
    Proc,
    /// Secondary processor-based VM-execution controls.
    Proc2,
    /// VM-exit controls.
    Exit,
    /// VM-entry controls.
    Entry,
}

impl ControlField {
    /// The field's name as the SDM spells it.
    pub const fn name(self) -> &'static str {
        match self {
            ControlField::Pin => "pin-based VM-execution controls",
            ControlField::Proc => "primary processor-based VM-execution controls",
            ControlField::Proc2 => "secondary processor-based VM-execution controls",
            ControlField::Exit => "VM-exit controls",
            ControlField::Entry => "VM-entry controls",
        }
    }
}

/// Why Keel cannot run guests on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// A required control may not be set to 1.
    Required {
        /// Which control field.
        field: ControlField,
        /// The bit.
        bit: u32,
        /// The control's name (SDM spelling).
        name: &'static str,
    },
    /// A control Keel must keep 0 is reported as must-be-1 (e.g. a CPU that forced
    /// "enable EPT"; no real CPU does, but Keel does not assume it).
    MustBeZero {
        /// Which control field.
        field: ControlField,
        /// The bit.
        bit: u32,
        /// The control's name.
        name: &'static str,
    },
}

impl core::fmt::Display for ControlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ControlError::Required { field, bit, name } => write!(
                f,
                "required VMX control \"{name}\" ({} bit {bit}) is not supported by this CPU",
                field.name()
            ),
            ControlError::MustBeZero { field, bit, name } => write!(
                f,
                "VMX control \"{name}\" ({} bit {bit}) is forced to 1 by this CPU, and Keel cannot use it",
                field.name()
            ),
        }
    }
}

/// How Keel invalidates a guest's TLB entries when it emulates a CR3 load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbFlush {
    /// No VPID: every VM entry and VM exit invalidates the mappings tagged with
    /// VPID 0 (SDM 29.1), so an emulated CR3 load needs no extra flush.
    VmTransition,
    /// INVVPID single-context-retaining-globals (type 3): a CR3 load's semantics.
    InvvpidSingleContextRetainingGlobals,
    /// INVVPID single-context (type 1): flushes globals too (more than needed).
    InvvpidSingleContext,
    /// INVVPID all-context (type 2): flushes every VPID (still correct).
    InvvpidAllContext,
}

/// The control values Keel writes into the VMCS, and what they imply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controls {
    /// Pin-based VM-execution controls.
    pub pin: u32,
    /// Primary processor-based VM-execution controls.
    pub proc: u32,
    /// Secondary processor-based VM-execution controls (0 and not activated if
    /// the CPU has none).
    pub proc2: u32,
    /// VM-exit controls.
    pub exit: u32,
    /// VM-entry controls.
    pub entry: u32,
    /// VPID is enabled: the VMCS needs a nonzero VPID and CR3 loads need `tlb_flush`.
    pub vpid: bool,
    /// How an emulated CR3 load invalidates the guest's TLB.
    pub tlb_flush: TlbFlush,
    /// MSR bitmaps are in use (else every RDMSR/WRMSR exits).
    pub msr_bitmaps: bool,
    /// I/O bitmaps are in use (all ones: every port exits) instead of
    /// unconditional I/O exiting.
    pub io_bitmaps: bool,
    /// Guest and host EFER are switched by the VMCS (entry and exit "load
    /// IA32_EFER"). Otherwise the guest shares the host's EFER except LMA/LME,
    /// which VM entry takes from "IA-32e mode guest" (SDM 27.3.2.1).
    pub load_efer: bool,
    /// Guest and host PAT are switched by the VMCS.
    pub load_pat: bool,
    /// The guest may execute RDTSCP (else it raises #UD; CPUID must hide it).
    pub rdtscp: bool,
}

impl Controls {
    /// Whether a primary processor-based control bit is set.
    pub const fn has_proc(&self, bit: u32) -> bool {
        self.proc & bit != 0
    }
    /// Whether a secondary processor-based control bit is set (and the secondary
    /// controls are active).
    pub const fn has_proc2(&self, bit: u32) -> bool {
        self.proc & proc::ACTIVATE_SECONDARY_CONTROLS != 0 && self.proc2 & bit != 0
    }
}

/// A control Keel asks for, with its name for diagnostics.
struct Want {
    bit: u32,
    name: &'static str,
}

/// Required primary processor-based controls.
const PROC_REQUIRED: &[Want] = &[
    // The guest has no event source in 0.1; a HLT must come to Keel, not stop the CPU.
    Want {
        bit: proc::HLT_EXITING,
        name: "HLT exiting",
    },
    // Direct paging: every CR3 the guest loads must be validated against its
    // page-table frames (no EPT stands behind it).
    Want {
        bit: proc::CR3_LOAD_EXITING,
        name: "CR3-load exiting",
    },
];

/// Primary processor-based controls used when available.
const PROC_WANTED: &[Want] = &[
    // TPR accesses (MOV CR8) would otherwise reach the real local APIC.
    Want {
        bit: proc::CR8_LOAD_EXITING,
        name: "CR8-load exiting",
    },
    Want {
        bit: proc::CR8_STORE_EXITING,
        name: "CR8-store exiting",
    },
    // MONITOR/MWAIT are hidden from the guest's CPUID; executing MWAIT would
    // otherwise park the physical CPU.
    Want {
        bit: proc::MWAIT_EXITING,
        name: "MWAIT exiting",
    },
    Want {
        bit: proc::MONITOR_EXITING,
        name: "MONITOR exiting",
    },
    // The PMU is hidden (CPUID leaf 0xA): counters are the host's.
    Want {
        bit: proc::RDPMC_EXITING,
        name: "RDPMC exiting",
    },
];

/// Controls Keel must keep 0: direct paging forbids EPT, and the guest must not run
/// in real mode or unpaged.
const PROC2_FORBIDDEN: &[Want] = &[
    Want {
        bit: proc2::ENABLE_EPT,
        name: "enable EPT",
    },
    Want {
        bit: proc2::UNRESTRICTED_GUEST,
        name: "unrestricted guest",
    },
];

fn require(field: ControlField, caps: &AllowedBits, list: &[Want]) -> Result<u32, ControlError> {
    let mut v = 0;
    for w in list {
        if !caps.can_set(w.bit) {
            return Err(ControlError::Required {
                field,
                bit: w.bit.trailing_zeros(),
                name: w.name,
            });
        }
        v |= w.bit;
    }
    Ok(v)
}

fn wanted(caps: &AllowedBits, list: &[Want]) -> u32 {
    list.iter()
        .filter(|w| caps.can_set(w.bit))
        .fold(0, |v, w| v | w.bit)
}

fn forbid(field: ControlField, caps: &AllowedBits, list: &[Want]) -> Result<(), ControlError> {
    for w in list {
        if caps.must_be_one & w.bit != 0 {
            return Err(ControlError::MustBeZero {
                field,
                bit: w.bit.trailing_zeros(),
                name: w.name,
            });
        }
    }
    Ok(())
}

/// Derive the VMCS control fields from the CPU's capabilities.
pub fn derive(caps: &VmxCaps) -> Result<Controls, ControlError> {
    // --- Pin-based: the hypervisor owns external interrupts and NMIs. Without
    // external-interrupt exiting, a host device interrupt would be delivered
    // through the *guest's* IDT.
    let pin = caps.pin.must_be_one
        | require(
            ControlField::Pin,
            &caps.pin,
            &[Want {
                bit: pin::EXTERNAL_INTERRUPT_EXITING,
                name: "external-interrupt exiting",
            }],
        )?
        | wanted(
            &caps.pin,
            &[Want {
                bit: pin::NMI_EXITING,
                name: "NMI exiting",
            }],
        );

    // --- Primary processor-based.
    let mut proc = caps.proc.must_be_one
        | require(ControlField::Proc, &caps.proc, PROC_REQUIRED)?
        | wanted(&caps.proc, PROC_WANTED);
    // I/O: every port access must exit. Unconditional I/O exiting does that with no
    // memory; failing that, I/O bitmaps of all ones do the same. (When "use I/O
    // bitmaps" is 1, unconditional I/O exiting is ignored, SDM 26.1.3.)
    let io_bitmaps = if caps.proc.can_set(proc::UNCONDITIONAL_IO_EXITING) {
        proc |= proc::UNCONDITIONAL_IO_EXITING;
        caps.proc.must_be_one & proc::USE_IO_BITMAPS != 0
    } else if caps.proc.can_set(proc::USE_IO_BITMAPS) {
        true
    } else {
        return Err(ControlError::Required {
            field: ControlField::Proc,
            bit: proc::UNCONDITIONAL_IO_EXITING.trailing_zeros(),
            name: "unconditional I/O exiting (or use I/O bitmaps)",
        });
    };
    if io_bitmaps {
        proc |= proc::USE_IO_BITMAPS;
    }
    // MSR bitmaps let FS/GS base accesses run at native speed; without them every
    // RDMSR/WRMSR exits, which the exit handler handles the same way.
    let msr_bitmaps = caps.proc.can_set(proc::USE_MSR_BITMAPS);
    if msr_bitmaps {
        proc |= proc::USE_MSR_BITMAPS;
    }

    // --- Secondary controls, only if the CPU can activate them (a CPU that cannot
    // reports no IA32_VMX_PROCBASED_CTLS2 at all; `caps` says NONE then, but do not
    // rely on it).
    let caps2 = if caps.proc.can_set(proc::ACTIVATE_SECONDARY_CONTROLS) {
        caps.proc2
    } else {
        AllowedBits::NONE
    };
    forbid(ControlField::Proc2, &caps2, PROC2_FORBIDDEN)?;
    let mut proc2 = caps2.must_be_one;
    // VPID tags the guest's TLB entries so VM transitions need not flush them. Keel
    // uses it only if it can also *invalidate* them (INVVPID), which an emulated
    // CR3 load requires.
    let invvpid_kind = if caps.ept_vpid.invvpid() {
        if caps.ept_vpid.invvpid_single_context_retaining_globals() {
            Some(TlbFlush::InvvpidSingleContextRetainingGlobals)
        } else if caps.ept_vpid.invvpid_single_context() {
            Some(TlbFlush::InvvpidSingleContext)
        } else if caps.ept_vpid.invvpid_all_context() {
            Some(TlbFlush::InvvpidAllContext)
        } else {
            None
        }
    } else {
        None
    };
    let (vpid, tlb_flush) = match invvpid_kind {
        Some(k) if caps2.can_set(proc2::ENABLE_VPID) => {
            proc2 |= proc2::ENABLE_VPID;
            (true, k)
        }
        _ => (proc2 & proc2::ENABLE_VPID != 0, TlbFlush::VmTransition),
    };
    if vpid && tlb_flush == TlbFlush::VmTransition {
        // VPID forced on without INVVPID: Keel could not honour CR3 loads.
        return Err(ControlError::MustBeZero {
            field: ControlField::Proc2,
            bit: proc2::ENABLE_VPID.trailing_zeros(),
            name: "enable VPID (without INVVPID)",
        });
    }
    // RDTSCP: without this control the guest's RDTSCP raises #UD, so CPUID hides it.
    let rdtscp = caps2.can_set(proc2::ENABLE_RDTSCP);
    if rdtscp {
        proc2 |= proc2::ENABLE_RDTSCP;
    }
    if proc2 != 0 {
        // Only set "activate secondary controls" when there is something in them:
        // with it clear the CPU treats the secondary field as all zeroes (SDM 25.6.2).
        proc |= proc::ACTIVATE_SECONDARY_CONTROLS;
    }
    // Secondary controls that cannot be activated are not in effect (and a VPID
    // that is not in effect needs no INVVPID).
    let active2 = proc & proc::ACTIVATE_SECONDARY_CONTROLS != 0;
    let rdtscp = rdtscp && active2;
    let (vpid, tlb_flush) = if active2 {
        (vpid, tlb_flush)
    } else {
        (false, TlbFlush::VmTransition)
    };

    // --- VM-exit controls. The host is 64-bit: "host address-space size" is required.
    let mut exit = caps.exit.must_be_one
        | require(
            ControlField::Exit,
            &caps.exit,
            &[Want {
                bit: exit::HOST_ADDRESS_SPACE_SIZE,
                name: "host address-space size",
            }],
        )?
        | wanted(
            &caps.exit,
            &[Want {
                bit: exit::ACK_INTERRUPT_ON_EXIT,
                name: "acknowledge interrupt on exit",
            }],
        );
    // Debug controls: the guest gets a defined DR7 (0x400) and IA32_DEBUGCTL (0)
    // from the VMCS instead of whatever the host left, and keeps its own across
    // exits. Both directions or neither.
    let debug_controls = caps.exit.can_set(exit::SAVE_DEBUG_CONTROLS)
        && caps.entry.can_set(entry::LOAD_DEBUG_CONTROLS);
    // --- VM-entry controls. The guest is 64-bit: "IA-32e mode guest" is required.
    let mut entry = caps.entry.must_be_one
        | require(
            ControlField::Entry,
            &caps.entry,
            &[Want {
                bit: entry::IA32E_MODE_GUEST,
                name: "IA-32e mode guest",
            }],
        )?;
    // EFER and PAT switching: only when both directions are available, otherwise
    // the guest's value would leak into the host or the other way round. Saving on
    // exit keeps the guest's value in the VMCS for the next entry.
    if debug_controls {
        exit |= exit::SAVE_DEBUG_CONTROLS;
        entry |= entry::LOAD_DEBUG_CONTROLS;
    }
    let load_efer = caps.exit.can_set(exit::LOAD_EFER | exit::SAVE_EFER)
        && caps.entry.can_set(entry::LOAD_EFER);
    if load_efer {
        exit |= exit::LOAD_EFER | exit::SAVE_EFER;
        entry |= entry::LOAD_EFER;
    }
    let load_pat =
        caps.exit.can_set(exit::LOAD_PAT | exit::SAVE_PAT) && caps.entry.can_set(entry::LOAD_PAT);
    if load_pat {
        exit |= exit::LOAD_PAT | exit::SAVE_PAT;
        entry |= entry::LOAD_PAT;
    }
    // Entry to SMM and dual-monitor deactivation are for SMM transfer monitors only
    // (SDM 27.2.1.3: must be 0 outside SMM).
    forbid(
        ControlField::Entry,
        &caps.entry,
        &[
            Want {
                bit: entry::ENTRY_TO_SMM,
                name: "entry to SMM",
            },
            Want {
                bit: entry::DEACTIVATE_DUAL_MONITOR,
                name: "deactivate dual-monitor treatment",
            },
        ],
    )?;

    let c = Controls {
        pin,
        proc,
        proc2: if proc & proc::ACTIVATE_SECONDARY_CONTROLS != 0 {
            proc2
        } else {
            0
        },
        exit,
        entry,
        vpid,
        tlb_flush,
        msr_bitmaps,
        io_bitmaps,
        load_efer,
        load_pat,
        rdtscp,
    };
    Ok(c)
}

#[cfg(test)]
mod tests;
