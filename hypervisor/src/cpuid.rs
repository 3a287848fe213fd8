//! # What CPUID tells a guest
//!
//! A guest's CPUID is the host's, edited by a table of rules, plus Keel's own leaves
//! in the hypervisor range `0x4000_0000..=0x4000_00ff`. The edits hide what a Keel
//! guest cannot use:
//!
//! - VMX and SMX: no nested virtualization; CR4.VMXE is invisible (see `vmx::cr`).
//! - MONITOR/MWAIT: exits to Keel (the physical CPU must not park in a guest).
//! - The PMU (leaf 0xA, PDCM): the counters belong to the host.
//! - Features that need a CR4 bit the 0.1 CR policy refuses (PCID, XSAVE and its
//!   leaf 0xD, FSGSBASE, SMEP, SMAP, UMIP, PKU, LA57, CET), or a VM-execution control
//!   Keel does not enable (INVPCID, WAITPKG; RDTSCP when the CPU cannot enable it),
//!   or an APIC the guest cannot reach (x2APIC, TSC-deadline).
//!
//! and the hypervisor bit (leaf 1 ECX bit 31) says "you are virtualized". The table is
//! data: a later issue (the CPUID/MSR policy) extends it, and tests check every row.
//! Keel's leaves come from the ABI crate: `0x4000_0000` gives the highest hypervisor
//! leaf and the signature "KeelKeelKeel"; `0x4000_0001` the ABI version and feature
//! submap 0.

use keel_abi::version::{
    features, AbiVersion, CPUID_LEAF_BASE, CPUID_LEAF_VERSION, CPUID_SIGNATURE,
};

/// The four output registers of CPUID.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// One output register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// EAX.
    Eax,
    /// EBX.
    Ebx,
    /// ECX.
    Ecx,
    /// EDX.
    Edx,
}

/// When a rule applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Always.
    Always,
    /// When the VMCS does not enable RDTSCP (the instruction would raise #UD).
    NoRdtscp,
}

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Clear these bits of one register, then set those.
    Bits {
        /// Register.
        reg: Reg,
        /// Bits cleared.
        clear: u32,
        /// Bits set.
        set: u32,
    },
    /// Report the whole leaf as zeroes.
    Zero,
}

/// One edit of the host's CPUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The leaf (EAX input).
    pub leaf: u32,
    /// The subleaf (ECX input), or `None` for every subleaf.
    pub subleaf: Option<u32>,
    /// When it applies.
    pub when: When,
    /// The edit.
    pub action: Action,
    /// Why, for the documentation and diagnostics.
    pub why: &'static str,
}

/// What the guest's CPU can do beyond the fixed policy (derived from the VMX controls).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestCpuFeatures {
    /// "Enable RDTSCP" is set.
    pub rdtscp: bool,
}

const fn bit(n: u32) -> u32 {
    1 << n
}

/// The rules, applied in order.
pub const RULES: &[Rule] = &[
    Rule {
        leaf: 1,
        subleaf: None,
        when: When::Always,
        action: Action::Bits {
            reg: Reg::Ecx,
            // MONITOR 3, VMX 5, SMX 6, PDCM 15, PCID 17, x2APIC 21, TSC-deadline 24,
            // XSAVE 26, OSXSAVE 27.
            clear: bit(3)
                | bit(5)
                | bit(6)
                | bit(15)
                | bit(17)
                | bit(21)
                | bit(24)
                | bit(26)
                | bit(27),
            // The hypervisor-present bit.
            set: bit(31),
        },
        why: "hide MONITOR, VMX, SMX, PDCM, PCID, x2APIC, TSC-deadline, XSAVE/OSXSAVE; set the hypervisor bit",
    },
    Rule {
        leaf: 5,
        subleaf: None,
        when: When::Always,
        action: Action::Zero,
        why: "MONITOR/MWAIT leaf: hidden",
    },
    Rule {
        leaf: 7,
        subleaf: Some(0),
        when: When::Always,
        action: Action::Bits {
            reg: Reg::Ebx,
            // FSGSBASE 0, SMEP 7, INVPCID 10, SMAP 20.
            clear: bit(0) | bit(7) | bit(10) | bit(20),
            set: 0,
        },
        why: "hide FSGSBASE, SMEP, SMAP (CR4 bits refused) and INVPCID (not enabled: #UD)",
    },
    Rule {
        leaf: 7,
        subleaf: Some(0),
        when: When::Always,
        action: Action::Bits {
            reg: Reg::Ecx,
            // UMIP 2, PKU 3, OSPKE 4, WAITPKG 5, CET_SS 7, LA57 16.
            clear: bit(2) | bit(3) | bit(4) | bit(5) | bit(7) | bit(16),
            set: 0,
        },
        why: "hide UMIP, PKU/OSPKE, LA57, CET (CR4 bits refused) and WAITPKG (not enabled: #UD)",
    },
    Rule {
        leaf: 7,
        subleaf: Some(0),
        when: When::Always,
        action: Action::Bits {
            reg: Reg::Edx,
            // CET_IBT 20.
            clear: bit(20),
            set: 0,
        },
        why: "hide CET indirect-branch tracking (CR4.CET refused)",
    },
    Rule {
        leaf: 0xa,
        subleaf: None,
        when: When::Always,
        action: Action::Zero,
        why: "architectural performance monitoring: the PMU is the host's",
    },
    Rule {
        leaf: 0xd,
        subleaf: None,
        when: When::Always,
        action: Action::Zero,
        why: "XSAVE state enumeration: XSAVE is hidden",
    },
    Rule {
        leaf: 0x8000_0001,
        subleaf: None,
        when: When::NoRdtscp,
        action: Action::Bits {
            reg: Reg::Edx,
            clear: bit(27),
            set: 0,
        },
        why: "RDTSCP would raise #UD without the \"enable RDTSCP\" control",
    },
];

/// Whether `leaf` is in the hypervisor range, which Keel answers entirely itself.
pub const fn is_hypervisor_leaf(leaf: u32) -> bool {
    leaf >= CPUID_LEAF_BASE && leaf <= CPUID_LEAF_BASE + 0xff
}

fn sig_word(i: usize) -> u32 {
    let s = CPUID_SIGNATURE;
    u32::from_le_bytes([s[i * 4], s[i * 4 + 1], s[i * 4 + 2], s[i * 4 + 3]])
}

/// Keel's own leaves.
fn hypervisor_leaf(leaf: u32) -> CpuidResult {
    match leaf {
        CPUID_LEAF_BASE => CpuidResult {
            eax: CPUID_LEAF_VERSION,
            ebx: sig_word(0),
            ecx: sig_word(1),
            edx: sig_word(2),
        },
        CPUID_LEAF_VERSION => CpuidResult {
            eax: AbiVersion::CURRENT.encode(),
            ebx: features::SUBMAP0,
            ecx: 0,
            edx: 0,
        },
        _ => CpuidResult::default(),
    }
}

/// The guest's CPUID for `(leaf, subleaf)`, given what the host CPU returned for the
/// same input. Pure: the exit handler executes CPUID and passes the result in.
pub fn guest_cpuid(
    leaf: u32,
    subleaf: u32,
    host: CpuidResult,
    feat: &GuestCpuFeatures,
) -> CpuidResult {
    if is_hypervisor_leaf(leaf) {
        return hypervisor_leaf(leaf);
    }
    let mut r = host;
    for rule in RULES {
        if rule.leaf != leaf || rule.subleaf.is_some_and(|s| s != subleaf) {
            continue;
        }
        let applies = match rule.when {
            When::Always => true,
            When::NoRdtscp => !feat.rdtscp,
        };
        if !applies {
            continue;
        }
        match rule.action {
            Action::Zero => r = CpuidResult::default(),
            Action::Bits { reg, clear, set } => {
                let v = match reg {
                    Reg::Eax => &mut r.eax,
                    Reg::Ebx => &mut r.ebx,
                    Reg::Ecx => &mut r.ecx,
                    Reg::Edx => &mut r.edx,
                };
                *v = (*v & !clear) | set;
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: CpuidResult = CpuidResult {
        eax: !0,
        ebx: !0,
        ecx: !0,
        edx: !0,
    };

    #[test]
    fn leaf1() {
        let r = guest_cpuid(1, 0, ALL, &GuestCpuFeatures::default());
        assert_eq!(r.ecx & bit(5), 0, "VMX");
        assert_eq!(r.ecx & bit(6), 0, "SMX");
        assert_eq!(r.ecx & bit(3), 0, "MONITOR");
        assert_ne!(r.ecx & bit(31), 0, "hypervisor bit");
        assert_eq!(r.edx, !0);
        let r = guest_cpuid(1, 0, CpuidResult::default(), &GuestCpuFeatures::default());
        assert_eq!(r.ecx, bit(31));
    }

    #[test]
    fn pmu_and_monitor_leaves_are_zero() {
        for leaf in [5, 0xa, 0xd] {
            assert_eq!(
                guest_cpuid(leaf, 3, ALL, &GuestCpuFeatures::default()),
                CpuidResult::default()
            );
        }
    }

    #[test]
    fn hypervisor_leaves() {
        let r = guest_cpuid(0x4000_0000, 0, ALL, &GuestCpuFeatures::default());
        assert_eq!(r.eax, 0x4000_0001);
        let mut sig = [0u8; 12];
        sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
        assert_eq!(&sig, b"KeelKeelKeel");
        let r = guest_cpuid(0x4000_0001, 0, ALL, &GuestCpuFeatures::default());
        assert_eq!(r.eax, AbiVersion::CURRENT.encode());
        assert_eq!(r.ebx, features::SUBMAP0);
        assert_eq!(
            guest_cpuid(0x4000_0002, 0, ALL, &GuestCpuFeatures::default()),
            CpuidResult::default()
        );
        assert_eq!(
            guest_cpuid(0x4000_00ff, 0, ALL, &GuestCpuFeatures::default()),
            CpuidResult::default()
        );
        // Just outside the range: the host's value.
        assert_eq!(
            guest_cpuid(0x4000_0100, 0, ALL, &GuestCpuFeatures::default()),
            ALL
        );
    }

    #[test]
    fn rdtscp_follows_the_control() {
        let off = guest_cpuid(0x8000_0001, 0, ALL, &GuestCpuFeatures { rdtscp: false });
        assert_eq!(off.edx & bit(27), 0);
        let on = guest_cpuid(0x8000_0001, 0, ALL, &GuestCpuFeatures { rdtscp: true });
        assert_ne!(on.edx & bit(27), 0);
    }

    #[test]
    fn leaf7_subleaf_specific() {
        let r0 = guest_cpuid(7, 0, ALL, &GuestCpuFeatures::default());
        assert_eq!(r0.ebx & bit(10), 0, "INVPCID");
        assert_eq!(r0.ecx & bit(16), 0, "LA57");
        assert_eq!(guest_cpuid(7, 1, ALL, &GuestCpuFeatures::default()), ALL);
    }

    #[test]
    fn every_rule_changes_something() {
        // A rule that edits nothing is a bug in the table.
        for rule in RULES {
            let sub = rule.subleaf.unwrap_or(0);
            let r = guest_cpuid(rule.leaf, sub, ALL, &GuestCpuFeatures::default());
            assert_ne!(r, ALL, "{}", rule.why);
        }
    }

    proptest! {
        /// Whatever the host says, VMX/SMX/MONITOR are hidden and the hypervisor bit set.
        #[test]
        fn invariants(eax in any::<u32>(), ebx in any::<u32>(), ecx in any::<u32>(), edx in any::<u32>(), leaf in any::<u32>(), sub in any::<u32>()) {
            let host = CpuidResult { eax, ebx, ecx, edx };
            let f = GuestCpuFeatures::default();
            let r = guest_cpuid(1, sub, host, &f);
            prop_assert_eq!(r.ecx & (bit(3) | bit(5) | bit(6)), 0);
            prop_assert_ne!(r.ecx & bit(31), 0);
            prop_assert_eq!(guest_cpuid(0xa, sub, host, &f), CpuidResult::default());
            let _ = guest_cpuid(leaf, sub, host, &f);
        }
    }
}
