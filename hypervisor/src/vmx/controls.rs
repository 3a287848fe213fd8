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

use bitflags::Flags;

use super::caps::{AllowedBits, VmxCaps};
pub use super::control_bits::{
    EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};

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
    pub pin: PinbasedControls,
    /// Primary processor-based VM-execution controls.
    pub proc: PrimaryControls,
    /// Secondary processor-based VM-execution controls (0 and not activated if
    /// the CPU has none).
    pub proc2: SecondaryControls,
    /// VM-exit controls.
    pub exit: ExitControls,
    /// VM-entry controls.
    pub entry: EntryControls,
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
    /// Whether a primary processor-based control is set.
    pub const fn has_proc(&self, bit: PrimaryControls) -> bool {
        self.proc.contains(bit)
    }
    /// Whether a secondary processor-based control is set (and the secondary
    /// controls are active).
    pub const fn has_proc2(&self, bit: SecondaryControls) -> bool {
        self.proc
            .contains(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS)
            && self.proc2.contains(bit)
    }
}

/// A control Keel asks for, with its name for diagnostics.
struct Want<F> {
    bit: F,
    name: &'static str,
}

/// Required primary processor-based controls.
const PROC_REQUIRED: &[Want<PrimaryControls>] = &[
    // The guest has no event source in 0.1; a HLT must come to Keel, not stop the CPU.
    Want {
        bit: PrimaryControls::HLT_EXITING,
        name: "HLT exiting",
    },
    // Direct paging: every CR3 the guest loads must be validated against its
    // page-table frames (no EPT stands behind it).
    Want {
        bit: PrimaryControls::CR3_LOAD_EXITING,
        name: "CR3-load exiting",
    },
];

/// Primary processor-based controls used when available.
const PROC_WANTED: &[Want<PrimaryControls>] = &[
    // TPR accesses (MOV CR8) would otherwise reach the real local APIC.
    Want {
        bit: PrimaryControls::CR8_LOAD_EXITING,
        name: "CR8-load exiting",
    },
    Want {
        bit: PrimaryControls::CR8_STORE_EXITING,
        name: "CR8-store exiting",
    },
    // MONITOR/MWAIT are hidden from the guest's CPUID; executing MWAIT would
    // otherwise park the physical CPU.
    Want {
        bit: PrimaryControls::MWAIT_EXITING,
        name: "MWAIT exiting",
    },
    Want {
        bit: PrimaryControls::MONITOR_EXITING,
        name: "MONITOR exiting",
    },
    // The PMU is hidden (CPUID leaf 0xA): counters are the host's.
    Want {
        bit: PrimaryControls::RDPMC_EXITING,
        name: "RDPMC exiting",
    },
];

/// Controls Keel must keep 0: direct paging forbids EPT, and the guest must not run
/// in real mode or unpaged.
const PROC2_FORBIDDEN: &[Want<SecondaryControls>] = &[
    Want {
        bit: SecondaryControls::ENABLE_EPT,
        name: "enable EPT",
    },
    Want {
        bit: SecondaryControls::UNRESTRICTED_GUEST,
        name: "unrestricted guest",
    },
];

fn require<F: Flags<Bits = u32> + Copy>(
    field: ControlField,
    caps: &AllowedBits<F>,
    list: &[Want<F>],
) -> Result<F, ControlError> {
    let mut v = F::empty();
    for w in list {
        if !caps.can_set(w.bit) {
            return Err(ControlError::Required {
                field,
                bit: w.bit.bits().trailing_zeros(),
                name: w.name,
            });
        }
        v = v.union(w.bit);
    }
    Ok(v)
}

fn wanted<F: Flags<Bits = u32> + Copy>(caps: &AllowedBits<F>, list: &[Want<F>]) -> F {
    list.iter()
        .filter(|w| caps.can_set(w.bit))
        .fold(F::empty(), |v, w| v.union(w.bit))
}

fn forbid<F: Flags<Bits = u32> + Copy>(
    field: ControlField,
    caps: &AllowedBits<F>,
    list: &[Want<F>],
) -> Result<(), ControlError> {
    for w in list {
        if caps.must_be_one.intersects(w.bit) {
            return Err(ControlError::MustBeZero {
                field,
                bit: w.bit.bits().trailing_zeros(),
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
                bit: PinbasedControls::EXTERNAL_INTERRUPT_EXITING,
                name: "external-interrupt exiting",
            }],
        )?
        | wanted(
            &caps.pin,
            &[Want {
                bit: PinbasedControls::NMI_EXITING,
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
    let io_bitmaps = if caps.proc.can_set(PrimaryControls::UNCONDITIONAL_IO_EXITING) {
        proc |= PrimaryControls::UNCONDITIONAL_IO_EXITING;
        caps.proc
            .must_be_one
            .contains(PrimaryControls::USE_IO_BITMAPS)
    } else if caps.proc.can_set(PrimaryControls::USE_IO_BITMAPS) {
        true
    } else {
        return Err(ControlError::Required {
            field: ControlField::Proc,
            bit: PrimaryControls::UNCONDITIONAL_IO_EXITING
                .bits()
                .trailing_zeros(),
            name: "unconditional I/O exiting (or use I/O bitmaps)",
        });
    };
    if io_bitmaps {
        proc |= PrimaryControls::USE_IO_BITMAPS;
    }
    // MSR bitmaps let FS/GS base accesses run at native speed; without them every
    // RDMSR/WRMSR exits, which the exit handler handles the same way.
    let msr_bitmaps = caps.proc.can_set(PrimaryControls::USE_MSR_BITMAPS);
    if msr_bitmaps {
        proc |= PrimaryControls::USE_MSR_BITMAPS;
    }

    // --- Secondary controls, only if the CPU can activate them (a CPU that cannot
    // reports no IA32_VMX_PROCBASED_CTLS2 at all; `caps` says NONE then, but do not
    // rely on it).
    let caps2 = if caps
        .proc
        .can_set(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS)
    {
        caps.proc2
    } else {
        AllowedBits::none()
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
        Some(k) if caps2.can_set(SecondaryControls::ENABLE_VPID) => {
            proc2 |= SecondaryControls::ENABLE_VPID;
            (true, k)
        }
        _ => (
            proc2.contains(SecondaryControls::ENABLE_VPID),
            TlbFlush::VmTransition,
        ),
    };
    if vpid && tlb_flush == TlbFlush::VmTransition {
        // VPID forced on without INVVPID: Keel could not honour CR3 loads.
        return Err(ControlError::MustBeZero {
            field: ControlField::Proc2,
            bit: SecondaryControls::ENABLE_VPID.bits().trailing_zeros(),
            name: "enable VPID (without INVVPID)",
        });
    }
    // RDTSCP: without this control the guest's RDTSCP raises #UD, so CPUID hides it.
    let rdtscp = caps2.can_set(SecondaryControls::ENABLE_RDTSCP);
    if rdtscp {
        proc2 |= SecondaryControls::ENABLE_RDTSCP;
    }
    if !proc2.is_empty() {
        // Only set "activate secondary controls" when there is something in them:
        // with it clear the CPU treats the secondary field as all zeroes (SDM 25.6.2).
        proc |= PrimaryControls::ACTIVATE_SECONDARY_CONTROLS;
    }
    // Secondary controls that cannot be activated are not in effect (and a VPID
    // that is not in effect needs no INVVPID).
    let active2 = proc.contains(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS);
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
                bit: ExitControls::HOST_ADDRESS_SPACE_SIZE,
                name: "host address-space size",
            }],
        )?
        | wanted(
            &caps.exit,
            &[Want {
                bit: ExitControls::ACK_INTERRUPT_ON_EXIT,
                name: "acknowledge interrupt on exit",
            }],
        );
    // Debug controls: the guest gets a defined DR7 (0x400) and IA32_DEBUGCTL (0)
    // from the VMCS instead of whatever the host left, and keeps its own across
    // exits. Both directions or neither.
    let debug_controls = caps.exit.can_set(ExitControls::SAVE_DEBUG_CONTROLS)
        && caps.entry.can_set(EntryControls::LOAD_DEBUG_CONTROLS);
    // --- VM-entry controls. The guest is 64-bit: "IA-32e mode guest" is required.
    let mut entry = caps.entry.must_be_one
        | require(
            ControlField::Entry,
            &caps.entry,
            &[Want {
                bit: EntryControls::IA32E_MODE_GUEST,
                name: "IA-32e mode guest",
            }],
        )?;
    // EFER and PAT switching: only when both directions are available, otherwise
    // the guest's value would leak into the host or the other way round. Saving on
    // exit keeps the guest's value in the VMCS for the next entry.
    if debug_controls {
        exit |= ExitControls::SAVE_DEBUG_CONTROLS;
        entry |= EntryControls::LOAD_DEBUG_CONTROLS;
    }
    let load_efer = caps
        .exit
        .can_set(ExitControls::LOAD_EFER | ExitControls::SAVE_EFER)
        && caps.entry.can_set(EntryControls::LOAD_EFER);
    if load_efer {
        exit |= ExitControls::LOAD_EFER | ExitControls::SAVE_EFER;
        entry |= EntryControls::LOAD_EFER;
    }
    let load_pat = caps
        .exit
        .can_set(ExitControls::LOAD_PAT | ExitControls::SAVE_PAT)
        && caps.entry.can_set(EntryControls::LOAD_PAT);
    if load_pat {
        exit |= ExitControls::LOAD_PAT | ExitControls::SAVE_PAT;
        entry |= EntryControls::LOAD_PAT;
    }
    // Entry to SMM and dual-monitor deactivation are for SMM transfer monitors only
    // (SDM 27.2.1.3: must be 0 outside SMM).
    forbid(
        ControlField::Entry,
        &caps.entry,
        &[
            Want {
                bit: EntryControls::ENTRY_TO_SMM,
                name: "entry to SMM",
            },
            Want {
                bit: EntryControls::DEACTIVATE_DUAL_MONITOR,
                name: "deactivate dual-monitor treatment",
            },
        ],
    )?;

    let c = Controls {
        pin,
        proc,
        proc2: if active2 {
            proc2
        } else {
            SecondaryControls::empty()
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
