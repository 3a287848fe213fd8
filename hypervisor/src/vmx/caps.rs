//! # What the CPU's VMX implementation offers
//!
//! Every VMX processor describes itself in a block of read-only MSRs starting at
//! `IA32_VMX_BASIC` (0x480); SDM vol. 3D, appendix A ("VMX Capability Reporting
//! Facility"). Keel builds its VMCS from these and from nothing else: a control bit
//! that "happens to work" on the CPU model a developer tried is exactly the bug that
//! turns into a VM-entry failure on the next one.
//!
//! [`VmxCaps::from_msrs`] takes the MSR read as a closure, so the decoding is pure and
//! host-tested (against values dumped from five Bochs CPU models, see the tests), and
//! the hardware module passes `rdmsr`. It reads only MSRs that the architecture says
//! exist given what it has already read: `IA32_VMX_PROCBASED_CTLS2` only when the
//! "activate secondary controls" bit may be 1, `IA32_VMX_EPT_VPID_CAP` only when EPT
//! or VPID may be enabled, the `TRUE_*` MSRs only when `IA32_VMX_BASIC[55]` says so.
//! Reading any other would raise #GP on real hardware.

use bitflags::Flags;

use super::control_bits::{
    EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};

/// The VMX capability MSR numbers (SDM vol. 4, table 2-2; vol. 3D, appendix A).
pub mod msr {
    /// `IA32_FEATURE_CONTROL`: lock bit and VMX enables (SDM 24.7).
    pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
    /// `IA32_VMX_BASIC` (A.1).
    pub const VMX_BASIC: u32 = 0x480;
    /// `IA32_VMX_PINBASED_CTLS` (A.3.1).
    pub const VMX_PINBASED_CTLS: u32 = 0x481;
    /// `IA32_VMX_PROCBASED_CTLS` (A.3.2).
    pub const VMX_PROCBASED_CTLS: u32 = 0x482;
    /// `IA32_VMX_EXIT_CTLS` (A.4).
    pub const VMX_EXIT_CTLS: u32 = 0x483;
    /// `IA32_VMX_ENTRY_CTLS` (A.5).
    pub const VMX_ENTRY_CTLS: u32 = 0x484;
    /// `IA32_VMX_MISC` (A.6).
    pub const VMX_MISC: u32 = 0x485;
    /// `IA32_VMX_CR0_FIXED0` (A.7).
    pub const VMX_CR0_FIXED0: u32 = 0x486;
    /// `IA32_VMX_CR0_FIXED1` (A.7).
    pub const VMX_CR0_FIXED1: u32 = 0x487;
    /// `IA32_VMX_CR4_FIXED0` (A.8).
    pub const VMX_CR4_FIXED0: u32 = 0x488;
    /// `IA32_VMX_CR4_FIXED1` (A.8).
    pub const VMX_CR4_FIXED1: u32 = 0x489;
    /// `IA32_VMX_VMCS_ENUM` (A.9).
    pub const VMX_VMCS_ENUM: u32 = 0x48a;
    /// `IA32_VMX_PROCBASED_CTLS2` (A.3.3).
    pub const VMX_PROCBASED_CTLS2: u32 = 0x48b;
    /// `IA32_VMX_EPT_VPID_CAP` (A.10).
    pub const VMX_EPT_VPID_CAP: u32 = 0x48c;
    /// `IA32_VMX_TRUE_PINBASED_CTLS` (A.3.1).
    pub const VMX_TRUE_PINBASED_CTLS: u32 = 0x48d;
    /// `IA32_VMX_TRUE_PROCBASED_CTLS` (A.3.2).
    pub const VMX_TRUE_PROCBASED_CTLS: u32 = 0x48e;
    /// `IA32_VMX_TRUE_EXIT_CTLS` (A.4).
    pub const VMX_TRUE_EXIT_CTLS: u32 = 0x48f;
    /// `IA32_VMX_TRUE_ENTRY_CTLS` (A.5).
    pub const VMX_TRUE_ENTRY_CTLS: u32 = 0x490;
}

/// The allowed settings of one 32-bit VMX control field (SDM A.3).
///
/// The MSR's low half is the "allowed 0-settings": a 1 there means the control
/// *must* be 1. Its high half is the "allowed 1-settings": a 0 there means the
/// control *must* be 0.
///
/// `F` is the field's flag type ([`super::control_bits`]); every bit is kept as
/// the MSR reports it, named or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowedBits<F> {
    /// Bits that must be 1 (the MSR's bits 31:0).
    pub must_be_one: F,
    /// Bits that may be 1 (the MSR's bits 63:32).
    pub may_be_one: F,
}

impl<F: Flags<Bits = u32> + Copy> AllowedBits<F> {
    /// Decode a capability MSR value.
    pub fn from_msr(v: u64) -> Self {
        AllowedBits {
            must_be_one: F::from_bits_retain(v as u32),
            may_be_one: F::from_bits_retain((v >> 32) as u32),
        }
    }
    /// No control may be 1 (a field the CPU does not have at all).
    pub fn none() -> Self {
        AllowedBits {
            must_be_one: F::empty(),
            may_be_one: F::empty(),
        }
    }
    /// Whether every bit in `bits` may be set to 1.
    pub fn can_set(&self, bits: F) -> bool {
        self.may_be_one.contains(bits)
    }
    /// Whether `value` is a legal setting of the whole field: every must-be-1 bit set,
    /// no must-be-0 bit set.
    pub fn allows(&self, value: F) -> bool {
        value.contains(self.must_be_one) && self.may_be_one.contains(value)
    }
    /// The bits of `value` that break the rules: must-be-1 bits that are clear, and
    /// must-be-0 bits that are set.
    pub fn violations(&self, value: F) -> F {
        self.must_be_one
            .difference(value)
            .union(value.difference(self.may_be_one))
    }
}

impl<F: Flags<Bits = u32> + Copy> Default for AllowedBits<F> {
    fn default() -> Self {
        Self::none()
    }
}

/// `IA32_VMX_MISC` decoded (SDM A.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmxMisc {
    /// The raw value.
    pub raw: u64,
}

/// The VMX-preemption timer's largest value (its field is 32 bits).
pub const PREEMPTION_TIMER_MAX: u64 = u32::MAX as u64;

/// The VMX-preemption timer's value, at `rate`
/// ([`VmxMisc::preemption_timer_rate`]), that makes it expire at TSC `at`
/// when armed at TSC `tsc`: rounded up (the exit must not come before
/// `at`), at most [`PREEMPTION_TIMER_MAX`].
#[inline(always)]
pub fn preemption_timer_value(at: u64, tsc: u64, rate: u32) -> u64 {
    let ticks = at.saturating_sub(tsc);
    let v = (ticks >> rate) + u64::from(ticks & ((1 << rate) - 1) != 0);
    v.min(PREEMPTION_TIMER_MAX)
}

impl VmxMisc {
    /// Bits 4:0: the VMX-preemption timer counts down by 1 every time bit X of the TSC
    /// changes, X being this value.
    pub const fn preemption_timer_rate(&self) -> u32 {
        (self.raw & 0x1f) as u32
    }
    /// Bit 5: VM exits store EFER.LMA into the "IA-32e mode guest" entry control.
    pub const fn stores_lma(&self) -> bool {
        self.raw & (1 << 5) != 0
    }
    /// Bit 6: activity state HLT (1) is supported.
    pub const fn activity_hlt(&self) -> bool {
        self.raw & (1 << 6) != 0
    }
    /// Bit 7: activity state shutdown (2) is supported.
    pub const fn activity_shutdown(&self) -> bool {
        self.raw & (1 << 7) != 0
    }
    /// Bit 8: activity state wait-for-SIPI (3) is supported.
    pub const fn activity_wait_for_sipi(&self) -> bool {
        self.raw & (1 << 8) != 0
    }
    /// Bits 24:16: how many CR3-target values the CPU supports.
    pub const fn cr3_target_count(&self) -> u32 {
        ((self.raw >> 16) & 0x1ff) as u32
    }
    /// Bits 27:25 (N): the recommended maximum number of MSRs in each MSR-load or
    /// MSR-store list is 512 * (N + 1).
    pub const fn max_msr_list_len(&self) -> u32 {
        512 * ((((self.raw >> 25) & 7) as u32) + 1)
    }
    /// Bit 29: VMWRITE may write the read-only VM-exit information fields.
    pub const fn vmwrite_any_field(&self) -> bool {
        self.raw & (1 << 29) != 0
    }
    /// Bit 30: VM entry may inject software interrupts/exceptions with instruction
    /// length 0.
    pub const fn zero_length_injection(&self) -> bool {
        self.raw & (1 << 30) != 0
    }
}

/// `IA32_VMX_EPT_VPID_CAP` decoded, as far as Keel uses it (SDM A.10). Zero when the
/// MSR does not exist (no secondary controls, or neither EPT nor VPID).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EptVpidCap {
    /// The raw value.
    pub raw: u64,
}

impl EptVpidCap {
    /// Bit 32: the INVVPID instruction is supported.
    pub const fn invvpid(&self) -> bool {
        self.raw & (1 << 32) != 0
    }
    /// Bit 40: INVVPID type 0, individual-address.
    pub const fn invvpid_individual_address(&self) -> bool {
        self.raw & (1 << 40) != 0
    }
    /// Bit 41: INVVPID type 1, single-context.
    pub const fn invvpid_single_context(&self) -> bool {
        self.raw & (1 << 41) != 0
    }
    /// Bit 42: INVVPID type 2, all-context.
    pub const fn invvpid_all_context(&self) -> bool {
        self.raw & (1 << 42) != 0
    }
    /// Bit 43: INVVPID type 3, single-context-retaining-globals.
    pub const fn invvpid_single_context_retaining_globals(&self) -> bool {
        self.raw & (1 << 43) != 0
    }
}

/// Everything the VMX capability MSRs say, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmxCaps {
    /// `IA32_VMX_BASIC` as read.
    pub basic: u64,
    /// Bits 30:0: the VMCS revision identifier, written into the first dword of the
    /// VMXON region and of every VMCS (SDM 25.2, 25.11.5).
    pub revision_id: u32,
    /// Bits 44:32: bytes to allocate for the VMXON region and a VMCS (at most 4096).
    pub vmcs_size: u32,
    /// Bit 48: physical addresses of the VMXON region, VMCS and the structures it
    /// references are limited to 32 bits.
    pub addr_32bit_only: bool,
    /// Bits 53:50: the memory type the CPU uses to access the VMCS and friends
    /// (6 = write-back; 0 = uncacheable).
    pub vmcs_memory_type: u8,
    /// Bit 54: VM exits from INS/OUTS report instruction information.
    pub ins_outs_info: bool,
    /// Bit 55: the `IA32_VMX_TRUE_*_CTLS` MSRs exist, and were used for the four
    /// primary control fields below.
    pub true_controls: bool,
    /// Bit 56: VM entry may deliver a hardware exception with or without an error
    /// code regardless of vector (relaxes a check of SDM 27.2.1.3).
    pub no_error_code_consistency: bool,
    /// Pin-based VM-execution controls (SDM 25.6.1).
    pub pin: AllowedBits<PinbasedControls>,
    /// Primary processor-based VM-execution controls (SDM 25.6.2).
    pub proc: AllowedBits<PrimaryControls>,
    /// Secondary processor-based VM-execution controls; [`AllowedBits::none`] when
    /// the CPU cannot activate them.
    pub proc2: AllowedBits<SecondaryControls>,
    /// VM-exit controls (SDM 25.7.1).
    pub exit: AllowedBits<ExitControls>,
    /// VM-entry controls (SDM 25.8.1).
    pub entry: AllowedBits<EntryControls>,
    /// Miscellaneous data.
    pub misc: VmxMisc,
    /// EPT and VPID capabilities.
    pub ept_vpid: EptVpidCap,
    /// CR0 bits that must be 1 in VMX operation (SDM A.7).
    pub cr0_fixed0: u64,
    /// CR0 bits that may be 1 in VMX operation: a 0 here means the bit must be 0.
    pub cr0_fixed1: u64,
    /// CR4 bits that must be 1 in VMX operation (SDM A.8).
    pub cr4_fixed0: u64,
    /// CR4 bits that may be 1 in VMX operation.
    pub cr4_fixed1: u64,
    /// `IA32_VMX_VMCS_ENUM` bits 9:1: the highest index value used in any VMCS
    /// field encoding (SDM A.9).
    pub vmcs_max_index: u32,
}

/// Secondary control bits whose presence makes `IA32_VMX_EPT_VPID_CAP` exist
/// (SDM A.10).
const PROC2_EPT_OR_VPID: SecondaryControls =
    SecondaryControls::ENABLE_EPT.union(SecondaryControls::ENABLE_VPID);

impl VmxCaps {
    /// Decode the capability MSRs, reading each through `read` (the hardware passes
    /// `rdmsr`). The caller must first have established that the CPU supports VMX
    /// (CPUID.1:ECX.VMX, bit 5, = 1), which is what makes `IA32_VMX_BASIC` and the fixed
    /// MSRs exist.
    pub fn from_msrs(read: impl Fn(u32) -> u64) -> VmxCaps {
        let basic = read(msr::VMX_BASIC);
        let true_controls = basic & (1 << 55) != 0;
        // SDM A.2: when BASIC[55] is set, the TRUE MSRs report the allowed settings
        // exactly; the older ones keep reporting the "default1" bits as must-be-1
        // (for software written before they were made optional). Using the TRUE
        // MSRs lets Keel clear, e.g., CR3-store exiting and INVLPG exiting.
        let (pin_msr, proc_msr, exit_msr, entry_msr) = if true_controls {
            (
                msr::VMX_TRUE_PINBASED_CTLS,
                msr::VMX_TRUE_PROCBASED_CTLS,
                msr::VMX_TRUE_EXIT_CTLS,
                msr::VMX_TRUE_ENTRY_CTLS,
            )
        } else {
            (
                msr::VMX_PINBASED_CTLS,
                msr::VMX_PROCBASED_CTLS,
                msr::VMX_EXIT_CTLS,
                msr::VMX_ENTRY_CTLS,
            )
        };
        let proc = AllowedBits::from_msr(read(proc_msr));
        // A.3.3: PROCBASED_CTLS2 exists only if the secondary controls can be activated.
        let proc2: AllowedBits<SecondaryControls> =
            if proc.can_set(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS) {
                AllowedBits::from_msr(read(msr::VMX_PROCBASED_CTLS2))
            } else {
                AllowedBits::none()
            };
        // A.10: EPT_VPID_CAP exists only if EPT or VPID can be enabled.
        let ept_vpid = if proc2.may_be_one.intersects(PROC2_EPT_OR_VPID) {
            EptVpidCap {
                raw: read(msr::VMX_EPT_VPID_CAP),
            }
        } else {
            EptVpidCap::default()
        };
        VmxCaps {
            basic,
            revision_id: (basic & 0x7fff_ffff) as u32,
            vmcs_size: ((basic >> 32) & 0x1fff) as u32,
            addr_32bit_only: basic & (1 << 48) != 0,
            vmcs_memory_type: ((basic >> 50) & 0xf) as u8,
            ins_outs_info: basic & (1 << 54) != 0,
            true_controls,
            no_error_code_consistency: basic & (1 << 56) != 0,
            pin: AllowedBits::from_msr(read(pin_msr)),
            proc,
            proc2,
            exit: AllowedBits::from_msr(read(exit_msr)),
            entry: AllowedBits::from_msr(read(entry_msr)),
            misc: VmxMisc {
                raw: read(msr::VMX_MISC),
            },
            ept_vpid,
            cr0_fixed0: read(msr::VMX_CR0_FIXED0),
            cr0_fixed1: read(msr::VMX_CR0_FIXED1),
            cr4_fixed0: read(msr::VMX_CR4_FIXED0),
            cr4_fixed1: read(msr::VMX_CR4_FIXED1),
            vmcs_max_index: ((read(msr::VMX_VMCS_ENUM) >> 1) & 0x1ff) as u32,
        }
    }

    /// Whether `cr0` respects the CR0 fixed bits (SDM A.7). Keel never uses
    /// "unrestricted guest", so PE and PG are not exempted.
    pub const fn cr0_ok(&self, cr0: u64) -> bool {
        cr0 & self.cr0_fixed0 == self.cr0_fixed0 && cr0 & !self.cr0_fixed1 == 0
    }
    /// Whether `cr4` respects the CR4 fixed bits (SDM A.8).
    pub const fn cr4_ok(&self, cr4: u64) -> bool {
        cr4 & self.cr4_fixed0 == self.cr4_fixed0 && cr4 & !self.cr4_fixed1 == 0
    }
}

/// Capability MSR values dumped from Bochs 2.7 CPU models by a boot-sector probe
/// (`rdmsr` of each MSR, printed through port 0xE9). Shared by the tests of the
/// other VMX policy modules.
#[cfg(test)]
pub(crate) mod fixtures {
    extern crate std;
    use super::*;
    use std::collections::BTreeMap;

    /// One dumped CPU model.
    pub struct Model {
        /// The Bochs `cpu: model=` name.
        pub name: &'static str,
        /// (MSR, value) pairs, exactly as the probe printed them.
        pub msrs: &'static [(u32, u64)],
    }

    /// The CPU models Keel is tested on, with their VMX MSRs.
    pub const MODELS: &[Model] = &[
        Model {
            name: "corei7_skylake_x",
            msrs: &[
                (0x3a, 0x5),
                (0x480, 0x00D8_1000_0000_002B),
                (0x481, 0x0000_007F_0000_0016),
                (0x482, 0xF7F9_FFFE_0401_E172),
                (0x483, 0x007F_FFFF_0003_6DFF),
                (0x484, 0x0000_FFFF_0000_11FF),
                (0x485, 0x0000_0000_6004_01E0),
                (0x486, 0x0000_0000_8000_0021),
                (0x487, 0x0000_0000_FFFF_FFFF),
                (0x488, 0x0000_0000_0000_2000),
                (0x489, 0x0000_0000_0037_27FF),
                (0x48A, 0x0000_0000_0000_0034),
                (0x48D, 0x0000_007F_0000_0016),
                (0x48E, 0xF7F9_FFFE_0400_6172),
                (0x48F, 0x007F_FFFF_0003_6DFB),
                (0x490, 0x0000_FFFF_0000_11FB),
                (0x48B, 0x0217_7FFF_0000_0000),
                (0x48C, 0x0000_0F01_0633_4141),
            ],
        },
        Model {
            name: "corei7_sandy_bridge_2600k",
            msrs: &[
                (0x3a, 0x5),
                (0x480, 0x00D8_1000_0000_002B),
                (0x481, 0x0000_007F_0000_0016),
                (0x482, 0xF7F9_FFFE_0401_E172),
                (0x483, 0x007F_FFFF_0003_6DFF),
                (0x484, 0x0000_FFFF_0000_11FF),
                (0x485, 0x0000_0000_0004_01E0),
                (0x486, 0x0000_0000_8000_0021),
                (0x487, 0x0000_0000_FFFF_FFFF),
                (0x488, 0x0000_0000_0000_2000),
                (0x489, 0x0000_0000_0006_27FF),
                (0x48A, 0x0000_0000_0000_0034),
                (0x48D, 0x0000_007F_0000_0016),
                (0x48E, 0xF7F9_FFFE_0400_6172),
                (0x48F, 0x007F_FFFF_0003_6DFB),
                (0x490, 0x0000_FFFF_0000_11FB),
                (0x48B, 0x0000_00FF_0000_0000),
                (0x48C, 0x0000_0F01_0611_4141),
            ],
        },
        Model {
            name: "tigerlake",
            msrs: &[
                (0x3a, 0x5),
                (0x480, 0x01D8_1000_0000_0004),
                (0x481, 0x0000_007F_0000_0016),
                (0x482, 0xFFF9_FFFE_0401_E172),
                (0x483, 0x107F_FFFF_0003_6DFF),
                (0x484, 0x0010_FFFF_0000_11FF),
                (0x485, 0x0000_0000_6004_01E0),
                (0x486, 0x0000_0000_8000_0021),
                (0x487, 0x0000_0000_FFFF_FFFF),
                (0x488, 0x0000_0000_0000_2000),
                (0x489, 0x0000_0000_00F7_2FFF),
                (0x48A, 0x0000_0000_0000_0034),
                (0x48D, 0x0000_007F_0000_0016),
                (0x48E, 0xFFF9_FFFE_0400_6172),
                (0x48F, 0x107F_FFFF_0003_6DFB),
                (0x490, 0x0010_FFFF_0000_11FB),
                (0x48B, 0x0297_7FFF_0000_0000),
                (0x48C, 0x0000_0F01_06B3_4141),
            ],
        },
        Model {
            name: "core2_penryn_t9600",
            msrs: &[
                (0x3a, 0x5),
                (0x480, 0x00D8_1000_0000_002B),
                (0x481, 0x0000_003F_0000_0016),
                (0x482, 0xF7F9_FFFE_0401_E172),
                (0x483, 0x0003_FFFF_0003_6DFF),
                (0x484, 0x0000_3FFF_0000_11FF),
                (0x485, 0x0000_0000_0004_01E0),
                (0x486, 0x0000_0000_8000_0021),
                (0x487, 0x0000_0000_FFFF_FFFF),
                (0x488, 0x0000_0000_0000_2000),
                (0x489, 0x0000_0000_0004_67FF),
                (0x48A, 0x0000_0000_0000_0034),
                (0x48D, 0x0000_003F_0000_0016),
                (0x48E, 0xF7F9_FFFE_0400_6172),
                (0x48F, 0x0003_FFFF_0003_6DFB),
                (0x490, 0x0000_3FFF_0000_11FB),
                (0x48B, 0x0000_0041_0000_0000),
            ],
        },
        Model {
            name: "corei5_lynnfield_750",
            msrs: &[
                (0x3a, 0x5),
                (0x480, 0x00D8_1000_0000_002B),
                (0x481, 0x0000_007F_0000_0016),
                (0x482, 0xF7F9_FFFE_0401_E172),
                (0x483, 0x007F_FFFF_0003_6DFF),
                (0x484, 0x0000_FFFF_0000_11FF),
                (0x485, 0x0000_0000_0004_01E0),
                (0x486, 0x0000_0000_8000_0021),
                (0x487, 0x0000_0000_FFFF_FFFF),
                (0x488, 0x0000_0000_0000_2000),
                (0x489, 0x0000_0000_0000_67FF),
                (0x48A, 0x0000_0000_0000_0034),
                (0x48D, 0x0000_007F_0000_0016),
                (0x48E, 0xF7F9_FFFE_0400_6172),
                (0x48F, 0x007F_FFFF_0003_6DFB),
                (0x490, 0x0000_FFFF_0000_11FB),
                (0x48B, 0x0000_007F_0000_0000),
                (0x48C, 0x0000_0F01_0611_4141),
            ],
        },
    ];

    impl Model {
        /// An MSR reader that panics on an MSR the model does not have: reading one
        /// would be a #GP on the real CPU.
        pub fn reader(&self) -> impl Fn(u32) -> u64 + '_ {
            let map: BTreeMap<u32, u64> = self.msrs.iter().copied().collect();
            move |m| match map.get(&m) {
                Some(v) => *v,
                None => panic!("{}: read of absent MSR {m:#x}", self.name),
            }
        }
        /// The decoded capabilities.
        pub fn caps(&self) -> VmxCaps {
            VmxCaps::from_msrs(self.reader())
        }
    }

    /// A model by name.
    pub fn model(name: &str) -> &'static Model {
        MODELS.iter().find(|m| m.name == name).expect("model")
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn preemption_timer_never_expires_before_its_deadline() {
        for rate in 0..8u32 {
            for (at, tsc) in [(1000, 0), (1000, 999), (1000, 1000), (5, 9), (1 << 40, 3)] {
                let v = preemption_timer_value(at, tsc, rate);
                assert!(v <= PREEMPTION_TIMER_MAX);
                if v < PREEMPTION_TIMER_MAX {
                    assert!(
                        tsc + (v << rate) >= at,
                        "early: at {at} tsc {tsc} rate {rate}"
                    );
                    assert!(v == 0 || tsc + ((v - 1) << rate) < at, "a tick late");
                }
            }
        }
        assert_eq!(preemption_timer_value(u64::MAX, 0, 0), PREEMPTION_TIMER_MAX);
        assert_eq!(preemption_timer_value(10, 20, 5), 0, "past: at once");
    }
    use proptest::prelude::*;

    #[test]
    fn skylake_decodes() {
        let c = model("corei7_skylake_x").caps();
        assert_eq!(c.revision_id, 0x2b);
        assert_eq!(c.vmcs_size, 0x1000);
        assert!(c.true_controls);
        assert!(c.ins_outs_info);
        assert!(!c.addr_32bit_only);
        assert_eq!(c.vmcs_memory_type, 6);
        // TRUE_PROCBASED: CR3-load/store exiting (15, 16) are no longer must-be-1.
        assert_eq!(c.proc.must_be_one.bits(), 0x0400_6172);
        assert!(c.proc.can_set(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS));
        assert!(c.proc2.can_set(SecondaryControls::ENABLE_VPID));
        assert!(c.ept_vpid.invvpid());
        assert!(c.ept_vpid.invvpid_single_context());
        assert!(c.ept_vpid.invvpid_all_context());
        assert!(c.ept_vpid.invvpid_single_context_retaining_globals());
        assert!(c.ept_vpid.invvpid_individual_address());
        assert_eq!(c.cr0_fixed0, 0x8000_0021);
        assert_eq!(c.cr4_fixed0, 0x2000);
        assert_eq!(c.misc.cr3_target_count(), 4);
        assert_eq!(c.misc.max_msr_list_len(), 512);
        assert!(c.misc.activity_hlt());
        assert!(c.misc.stores_lma());
        assert!(c.misc.vmwrite_any_field());
        assert_eq!(c.vmcs_max_index, 0x1a);
    }

    #[test]
    fn tigerlake_revision() {
        assert_eq!(model("tigerlake").caps().revision_id, 4);
    }

    #[test]
    fn penryn_has_secondary_but_no_ept_vpid() {
        // The probe shows Bochs's Penryn can activate secondary controls (virtualize
        // APIC accesses, WBINVD exiting) but has neither EPT nor VPID, so
        // EPT_VPID_CAP must not be read (the fixture reader panics if it is).
        let c = model("core2_penryn_t9600").caps();
        assert_eq!(c.proc2.may_be_one.bits(), 0x41);
        assert_eq!(c.ept_vpid, EptVpidCap::default());
        // No "load IA32_EFER"/"load IA32_PAT" on entry or exit.
        assert!(!c.entry.can_set(EntryControls::LOAD_EFER));
        assert!(!c.entry.can_set(EntryControls::LOAD_PAT));
        assert!(!c.exit.can_set(ExitControls::LOAD_EFER));
    }

    #[test]
    fn no_secondary_controls_reads_neither_ctls2_nor_cap() {
        let m = model("corei7_skylake_x");
        let r = m.reader();
        let c = VmxCaps::from_msrs(|msr| {
            assert!(msr != msr::VMX_PROCBASED_CTLS2 && msr != msr::VMX_EPT_VPID_CAP);
            let v = r(msr);
            if msr == msr::VMX_TRUE_PROCBASED_CTLS {
                v & !(1u64 << 63) // secondary controls not allowed
            } else {
                v
            }
        });
        assert_eq!(c.proc2, AllowedBits::none());
    }

    #[test]
    fn without_true_controls_uses_legacy_msrs() {
        let m = model("corei7_skylake_x");
        let r = m.reader();
        let c = VmxCaps::from_msrs(|msr| {
            assert!(!(0x48d..=0x490).contains(&msr), "read TRUE MSR {msr:#x}");
            let v = r(msr);
            if msr == msr::VMX_BASIC {
                v & !(1u64 << 55)
            } else {
                v
            }
        });
        assert!(!c.true_controls);
        // The legacy MSR keeps CR3-load/store exiting must-be-1.
        assert_eq!(c.proc.must_be_one.bits(), 0x0401_E172);
    }

    #[test]
    fn every_model_decodes_without_absent_reads() {
        for m in MODELS {
            let c = m.caps();
            assert!(c.true_controls, "{}", m.name);
            assert!(c.cr0_ok(0x8000_0031 | (1 << 16)), "{}", m.name);
            assert!(c.cr4_ok(0x2020), "{}", m.name);
        }
    }

    proptest! {
        /// `allows` is exactly "no violations", and violations name only offending bits.
        #[test]
        fn allowed_bits_consistent(msr in any::<u64>(), value in any::<u32>()) {
            let a = AllowedBits::<PrimaryControls>::from_msr(msr);
            let value = PrimaryControls::from_bits_retain(value);
            prop_assert_eq!(a.allows(value), a.violations(value).is_empty());
            let fixed = value.union(a.must_be_one).intersection(a.may_be_one);
            // Fixing up a value yields a legal one whenever the MSR is self-consistent.
            if a.may_be_one.contains(a.must_be_one) {
                prop_assert!(a.allows(fixed));
            }
        }

        /// Decoding never reads an MSR outside the architectural block, whatever the values.
        #[test]
        fn decode_reads_only_vmx_msrs(basic in any::<u64>(), proc in any::<u64>(), proc2 in any::<u64>()) {
            let c = VmxCaps::from_msrs(|m| {
                assert!((0x480..=0x490).contains(&m));
                match m { 0x480 => basic, 0x482 | 0x48e => proc, 0x48b => proc2, _ => 0 }
            });
            prop_assert_eq!(c.revision_id, (basic & 0x7fff_ffff) as u32);
            prop_assert_eq!(c.true_controls, basic & (1 << 55) != 0);
        }
    }
}
