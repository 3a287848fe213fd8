//! # Sensitive instructions: what each one does in a Keel guest
//!
//! A Keel guest runs at CPL0, so every privileged instruction is available to it,
//! and VMX decides which of them exit. [`INSNS`] states the policy for each
//! sensitive instruction in one place: which exit reason (if any) brings it to
//! Keel, and what happens then. Instructions that do not exit are listed too, with
//! why running them natively is safe: the table is the whole story, and
//! `docs/abi/insns.md` is generated from it.
//!
//! The exit handler asks [`on_exit`] for the simple actions (#UD, #GP(0), "complete
//! as a no-op") and [`xsetbv`] for the one validated emulation; CPUID, RDMSR/WRMSR
//! and I/O have their own tables (`cpuid`, `msr`, `io`).

use crate::policy::cpuid::Xcr0;
use crate::vmx::names::ExitReason;

/// What Keel does when the instruction exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Inject #UD (the instruction does not exist on the guest's CPU).
    Ud,
    /// Inject #GP(0).
    Gp0,
    /// Complete it with no effect (move past it).
    Skip,
    /// Validate and emulate (XSETBV: [`xsetbv`]).
    Xsetbv,
    /// Emulated by its own policy table (CPUID, MSRs, I/O).
    Table(&'static str),
    /// It does not exit; the CPU executes it for the guest.
    Native,
}

/// One instruction's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Mnemonic(s).
    pub name: &'static str,
    /// The basic exit reasons it causes (SDM appendix C); empty if it never exits.
    pub exits: &'static [ExitReason],
    /// What happens.
    pub action: Action,
    /// Why.
    pub why: &'static str,
}

/// Whether a guest may read the performance counters with RDPMC. The PMU is the
/// host's and CPUID hides it (leaf 0xA): no.
pub const RDPMC_ALLOWED: bool = false;

/// The sensitive instructions.
pub const INSNS: &[Insn] = &[
    Insn {
        name: "VMXON, VMXOFF, VMCLEAR, VMPTRLD, VMPTRST, VMREAD, VMWRITE, VMLAUNCH, VMRESUME, INVEPT, INVVPID, VMFUNC",
        exits: &[
            ExitReason::VMCLEAR,
            ExitReason::VMLAUNCH,
            ExitReason::VMPTRLD,
            ExitReason::VMPTRST,
            ExitReason::VMREAD,
            ExitReason::VMRESUME,
            ExitReason::VMWRITE,
            ExitReason::VMXOFF,
            ExitReason::VMXON,
            ExitReason::INVEPT,
            ExitReason::INVVPID,
            ExitReason::VMFUNC,
        ],
        action: Action::Ud,
        why: "VMX is hidden (CPUID.1:ECX.VMX = 0, CR4.VMXE refused): as on a CPU without VMX",
    },
    Insn {
        name: "GETSEC",
        exits: &[ExitReason::GETSEC],
        action: Action::Ud,
        why: "SMX is hidden; with CR4.SMXE = 0 (which the guest cannot set) the CPU raises #UD before any exit",
    },
    Insn {
        name: "MONITOR, MWAIT",
        exits: &[ExitReason::MONITOR, ExitReason::MWAIT],
        action: Action::Ud,
        why: "hidden in CPUID (leaf 1 ECX[3], leaf 5): the physical CPU must not park in a guest",
    },
    Insn {
        name: "RDPMC",
        exits: &[ExitReason::RDPMC],
        action: Action::Gp0,
        why: "the PMU is the host's and hidden (leaf 0xA is zero): every counter index is invalid",
    },
    Insn {
        name: "INVD",
        exits: &[ExitReason::INVD],
        action: Action::Skip,
        why: "always exits; discarding caches without write-back would destroy the host's data, and with no non-coherent device a no-op is what the guest can observe",
    },
    Insn {
        name: "WBINVD, WBNOINVD",
        exits: &[ExitReason::WBINVD],
        action: Action::Skip,
        why: "executed natively (WBINVD exiting off): writing back the caches is harmless; if a CPU forces the exit, a no-op",
    },
    Insn {
        name: "XSETBV",
        exits: &[ExitReason::XSETBV],
        action: Action::Xsetbv,
        why: "always exits; validated against the XCR0 values CPUID leaf 0xD offers (ECX = 0, x87 set, AVX only with SSE, no other bit), else #GP(0); #UD while CR4.OSXSAVE is 0",
    },
    Insn {
        name: "CPUID",
        exits: &[ExitReason::CPUID],
        action: Action::Table("cpuid.md"),
        why: "always exits",
    },
    Insn {
        name: "RDMSR, WRMSR",
        exits: &[ExitReason::RDMSR, ExitReason::WRMSR],
        action: Action::Table("msr.md"),
        why: "exit unless the MSR bitmap passes the MSR through",
    },
    Insn {
        name: "IN, OUT, INS, OUTS",
        exits: &[ExitReason::IO],
        action: Action::Table("io.md"),
        why: "every port exits",
    },
    Insn {
        name: "RDTSC",
        exits: &[],
        action: Action::Native,
        why: "no RDTSC exiting, no TSC offsetting: the guest reads the host's TSC (CR4.TSD is the guest's, and only affects CPL3)",
    },
    Insn {
        name: "RDTSCP, RDPID",
        exits: &[],
        action: Action::Native,
        why: "native with \"enable RDTSCP\" (the guest's IA32_TSC_AUX is passed through); without it #UD and CPUID hides both",
    },
    Insn {
        name: "MOV to/from DR0-DR7",
        exits: &[],
        action: Action::Native,
        why: "no MOV-DR exiting: every VM exit loads DR7 with 0x400 and clears IA32_DEBUGCTL (SDM 28.5.1), so a guest breakpoint never fires in the host, and the VMCS gives the guest its own DR7/DEBUGCTL back (save/load debug controls); DR0-DR3 and DR6 stay the guest's because Keel never uses them",
    },
    Insn {
        name: "RDRAND, RDSEED, PAUSE",
        exits: &[],
        action: Action::Native,
        why: "harmless; no exiting control set",
    },
    Insn {
        name: "INVPCID, XSAVES, XRSTORS",
        exits: &[],
        action: Action::Native,
        why: "their enable controls are off, so the CPU raises #UD; CPUID hides them",
    },
];

/// The action for an exit with basic reason `reason`, if the table has one (and
/// it is not a table-driven instruction, which has its own handler).
pub fn on_exit(reason: ExitReason) -> Option<Action> {
    let reason = reason.without_flags();
    INSNS
        .iter()
        .find(|i| i.exits.contains(&reason))
        .map(|i| i.action)
        .filter(|a| !matches!(a, Action::Table(_) | Action::Native))
}

/// How XSETBV fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsetbvFault {
    /// #UD: CR4.OSXSAVE is 0 (the CPU checks this before the exit; defensive).
    Ud,
    /// #GP(0).
    Gp,
}

/// Validate `XSETBV` (SDM vol. 2C, XSETBV): ECX selects the XCR (only XCR0 is
/// writable), EDX:EAX the value. `allowed` is the XCR0 bits the guest may set
/// (`cpuid::GuestCpuFeatures::xcr0_allowed`). Returns the value to load.
pub fn xsetbv(osxsave: bool, ecx: u32, value: u64, allowed: Xcr0) -> Result<Xcr0, XsetbvFault> {
    if !osxsave || allowed.is_empty() {
        return Err(XsetbvFault::Ud);
    }
    let v = Xcr0::from_bits_retain(value);
    if ecx != 0 || !allowed.contains(v) || !v.contains(Xcr0::X87) {
        return Err(XsetbvFault::Gp);
    }
    if v.contains(Xcr0::AVX) && !v.contains(Xcr0::SSE) {
        return Err(XsetbvFault::Gp);
    }
    Ok(v)
}

/// `docs/abi/insns.md`, generated from [`INSNS`].
#[cfg(test)]
pub mod markdown {
    extern crate std;
    use super::*;
    use std::fmt::Write as _;
    use std::string::String;

    /// The whole page.
    pub fn page() -> String {
        let mut s = String::from("# Sensitive instructions in a Keel guest\n\n");
        s.push_str(&crate::policy::generated::generated_note(
            "insns.rs",
            "the table `INSNS`",
        ));
        s.push_str(
            "\
A Keel guest runs at CPL0 in VMX non-root operation. The instructions below are\n\
the ones that could reach the host's hardware; each either exits to Keel (with the\n\
exit reasons listed) or runs natively for the reason given. Control-register\n\
accesses, INVLPG, HLT and VMCALL are described with paging, events and hypercalls.\n\n\
| Instruction | Exit reasons | In the guest | Why |\n|---|---|---|---|\n",
        );
        for i in INSNS {
            let exits: std::vec::Vec<String> =
                i.exits.iter().map(|e| e.basic().to_string()).collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                i.name,
                if exits.is_empty() {
                    String::from("none")
                } else {
                    exits.join(", ")
                },
                match i.action {
                    Action::Ud => String::from("#UD"),
                    Action::Gp0 => String::from("#GP(0)"),
                    Action::Skip => String::from("completes, no effect"),
                    Action::Xsetbv => String::from("validated, then loads XCR0"),
                    Action::Table(p) => std::format!("see [{p}]({p})"),
                    Action::Native => String::from("native"),
                },
                i.why
            );
        }
        let _ = writeln!(
            s,
            "\nRDPMC allowed: {}. The XCR0 bits a guest may set are x87, SSE and AVX where the\n\
host has them (see [cpuid.md](cpuid.md), leaf 0xD); the guest starts with XCR0 = 1.",
            if RDPMC_ALLOWED { "yes" } else { "no" }
        );
        s.push_str(
            "\n## Differences from Xen\n\n\
A Xen PV kernel runs in ring 3 (x86_64), so its privileged instructions fault into\n\
Xen, which emulates a few (I/O, CR and MSR access, CPUID with the forced-emulation\n\
prefix or CPUID faulting) and refuses the rest. A Keel guest runs at CPL0 in VMX\n\
non-root operation, so the table above is VT-x's exits, as for a Xen HVM or PVH\n\
guest; Keel's answers are its own (this page), not Xen's device model.\n",
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exit_reasons_unique() {
        let mut seen = std::vec::Vec::new();
        for i in INSNS {
            for &e in i.exits {
                assert!(!seen.contains(&e), "exit reason {e} twice");
                seen.push(e);
            }
            assert_eq!(i.exits.is_empty(), i.action == Action::Native, "{}", i.name);
        }
    }

    #[test]
    fn actions() {
        assert_eq!(on_exit(ExitReason::VMXON), Some(Action::Ud));
        assert_eq!(on_exit(ExitReason::VMFUNC), Some(Action::Ud));
        assert_eq!(on_exit(ExitReason::MWAIT), Some(Action::Ud));
        assert_eq!(on_exit(ExitReason::RDPMC), Some(Action::Gp0));
        assert_eq!(on_exit(ExitReason::INVD), Some(Action::Skip));
        assert_eq!(on_exit(ExitReason::XSETBV), Some(Action::Xsetbv));
        assert_eq!(on_exit(ExitReason::CPUID), None, "own handler");
        assert_eq!(on_exit(ExitReason::VMCALL), None, "hypercalls");
        assert_eq!(on_exit(ExitReason::HLT), None, "HLT is not here");
        // Flag bits above the basic reason do not hide it.
        assert_eq!(
            on_exit(ExitReason::from_raw(ExitReason::VMXON.raw | 1 << 27)),
            Some(Action::Ud)
        );
    }

    #[test]
    fn xsetbv_rules() {
        let a = Xcr0::X87 | Xcr0::SSE | Xcr0::AVX;
        let ok = |v| Ok(Xcr0::from_bits_retain(v));
        assert_eq!(xsetbv(true, 0, 1, a), ok(1));
        assert_eq!(xsetbv(true, 0, 7, a), ok(7));
        assert_eq!(xsetbv(true, 0, 3, a), ok(3));
        assert_eq!(xsetbv(true, 0, 0, a), Err(XsetbvFault::Gp), "x87 clear");
        assert_eq!(
            xsetbv(true, 0, 5, a),
            Err(XsetbvFault::Gp),
            "AVX without SSE"
        );
        assert_eq!(xsetbv(true, 1, 1, a), Err(XsetbvFault::Gp), "XCR1");
        assert_eq!(xsetbv(true, 0, 0xe7, a), Err(XsetbvFault::Gp), "AVX-512");
        assert_eq!(
            xsetbv(true, 0, 7, Xcr0::X87 | Xcr0::SSE),
            Err(XsetbvFault::Gp),
            "AVX not allowed"
        );
        assert_eq!(xsetbv(false, 0, 1, a), Err(XsetbvFault::Ud));
        assert_eq!(xsetbv(true, 0, 1, Xcr0::empty()), Err(XsetbvFault::Ud));
    }

    proptest! {
        /// An accepted XCR0 is always a subset of the allowed bits with x87 set.
        #[test]
        fn xsetbv_total(ecx in any::<u32>(), v in any::<u64>(), allowed in any::<u64>()) {
            if let Ok(x) = xsetbv(true, ecx, v, Xcr0::from_bits_retain(allowed)) {
                prop_assert_eq!(x.bits() & !allowed, 0);
                prop_assert!(x.contains(Xcr0::X87));
                prop_assert_eq!(ecx, 0);
            }
        }
    }
}
