//! # Names for VM-exit reasons and VM-instruction errors
//!
//! Every diagnostic that mentions an exit reason or a VMX instruction error says
//! what it is in words: "exit reason 33" sends a reader to the manual, "VM-entry
//! failure due to invalid guest state" does not. Both tables are data, indexed by
//! number (SDM vol. 3D appendix C; vol. 3C section 31.4).

/// Basic exit reasons, indexed by number (SDM appendix C, table C-1). `None` marks
/// numbers the SDM leaves unused.
pub const EXIT_REASONS: &[Option<&str>] = &[
    Some("exception or NMI"),                            // 0
    Some("external interrupt"),                          // 1
    Some("triple fault"),                                // 2
    Some("INIT signal"),                                 // 3
    Some("start-up IPI (SIPI)"),                         // 4
    Some("I/O system-management interrupt (SMI)"),       // 5
    Some("other SMI"),                                   // 6
    Some("interrupt window"),                            // 7
    Some("NMI window"),                                  // 8
    Some("task switch"),                                 // 9
    Some("CPUID"),                                       // 10
    Some("GETSEC"),                                      // 11
    Some("HLT"),                                         // 12
    Some("INVD"),                                        // 13
    Some("INVLPG"),                                      // 14
    Some("RDPMC"),                                       // 15
    Some("RDTSC"),                                       // 16
    Some("RSM"),                                         // 17
    Some("VMCALL"),                                      // 18
    Some("VMCLEAR"),                                     // 19
    Some("VMLAUNCH"),                                    // 20
    Some("VMPTRLD"),                                     // 21
    Some("VMPTRST"),                                     // 22
    Some("VMREAD"),                                      // 23
    Some("VMRESUME"),                                    // 24
    Some("VMWRITE"),                                     // 25
    Some("VMXOFF"),                                      // 26
    Some("VMXON"),                                       // 27
    Some("control-register access"),                     // 28
    Some("MOV DR"),                                      // 29
    Some("I/O instruction"),                             // 30
    Some("RDMSR"),                                       // 31
    Some("WRMSR"),                                       // 32
    Some("VM-entry failure due to invalid guest state"), // 33
    Some("VM-entry failure due to MSR loading"),         // 34
    None,                                                // 35
    Some("MWAIT"),                                       // 36
    Some("monitor trap flag"),                           // 37
    None,                                                // 38
    Some("MONITOR"),                                     // 39
    Some("PAUSE"),                                       // 40
    Some("VM-entry failure due to machine-check event"), // 41
    None,                                                // 42
    Some("TPR below threshold"),                         // 43
    Some("APIC access"),                                 // 44
    Some("virtualized EOI"),                             // 45
    Some("access to GDTR or IDTR"),                      // 46
    Some("access to LDTR or TR"),                        // 47
    Some("EPT violation"),                               // 48
    Some("EPT misconfiguration"),                        // 49
    Some("INVEPT"),                                      // 50
    Some("RDTSCP"),                                      // 51
    Some("VMX-preemption timer expired"),                // 52
    Some("INVVPID"),                                     // 53
    Some("WBINVD or WBNOINVD"),                          // 54
    Some("XSETBV"),                                      // 55
    Some("APIC write"),                                  // 56
    Some("RDRAND"),                                      // 57
    Some("INVPCID"),                                     // 58
    Some("VMFUNC"),                                      // 59
    Some("ENCLS"),                                       // 60
    Some("RDSEED"),                                      // 61
    Some("page-modification log full"),                  // 62
    Some("XSAVES"),                                      // 63
    Some("XRSTORS"),                                     // 64
    Some("PCONFIG"),                                     // 65
    Some("SPP-related event"),                           // 66
    Some("UMWAIT"),                                      // 67
    Some("TPAUSE"),                                      // 68
    Some("LOADIWKEY"),                                   // 69
    Some("ENCLV"),                                       // 70
    None,                                                // 71
    Some("ENQCMD PASID translation failure"),            // 72
    Some("ENQCMDS PASID translation failure"),           // 73
    Some("bus lock"),                                    // 74
    Some("instruction timeout"),                         // 75
    Some("SEAMCALL"),                                    // 76
    Some("TDCALL"),                                      // 77
    Some("RDMSRLIST"),                                   // 78
    Some("WRMSRLIST"),                                   // 79
];

/// The name of basic exit reason `basic` (bits 15:0 of the exit-reason field).
pub fn exit_reason_name(basic: u16) -> &'static str {
    match EXIT_REASONS.get(usize::from(basic)) {
        Some(Some(n)) => n,
        Some(None) => "unused exit reason",
        None => "unknown exit reason",
    }
}

/// VM-instruction error numbers (SDM 31.4, table 31-1), indexed by number; 0 and
/// the reserved numbers are `None`.
pub const VM_INSTRUCTION_ERRORS: &[Option<&str>] = &[
    None,                                                                        // 0
    Some("VMCALL executed in VMX root operation"),                               // 1
    Some("VMCLEAR with invalid physical address"),                               // 2
    Some("VMCLEAR with VMXON pointer"),                                          // 3
    Some("VMLAUNCH with non-clear VMCS"),                                        // 4
    Some("VMRESUME with non-launched VMCS"),                                     // 5
    Some("VMRESUME after VMXOFF"),                                               // 6
    Some("VM entry with invalid control field(s)"),                              // 7
    Some("VM entry with invalid host-state field(s)"),                           // 8
    Some("VMPTRLD with invalid physical address"),                               // 9
    Some("VMPTRLD with VMXON pointer"),                                          // 10
    Some("VMPTRLD with incorrect VMCS revision identifier"),                     // 11
    Some("VMREAD/VMWRITE from/to unsupported VMCS component"),                   // 12
    Some("VMWRITE to read-only VMCS component"),                                 // 13
    None,                                                                        // 14
    Some("VMXON executed in VMX root operation"),                                // 15
    Some("VM entry with invalid executive-VMCS pointer"),                        // 16
    Some("VM entry with non-launched executive VMCS"),                           // 17
    Some("VM entry with executive-VMCS pointer not VMXON pointer"),              // 18
    Some("VMCALL with non-clear VMCS"),                                          // 19
    Some("VMCALL with invalid VM-exit control fields"),                          // 20
    None,                                                                        // 21
    Some("VMCALL with incorrect MSEG revision identifier"),                      // 22
    Some("VMXOFF under dual-monitor treatment of SMIs and SMM"),                 // 23
    Some("VMCALL with invalid SMM-monitor features"),                            // 24
    Some("VM entry with invalid VM-execution control fields in executive VMCS"), // 25
    Some("VM entry with events blocked by MOV SS"),                              // 26
    None,                                                                        // 27
    Some("invalid operand to INVEPT/INVVPID"),                                   // 28
];

/// The name of VM-instruction error `n` (the VMCS's VM-instruction error field).
pub fn vm_instruction_error_name(n: u32) -> &'static str {
    match VM_INSTRUCTION_ERRORS.get(n as usize) {
        Some(Some(s)) => s,
        _ => "reserved or unknown VM-instruction error",
    }
}

/// The exit-reason field (SDM 25.9.1, table 25-17): the basic reason in bits
/// 15:0, flags above (bit 31: the VM entry failed). The constants are basic
/// reasons with no flag bit set, as the field reads for an ordinary exit; the
/// names for every number are [`EXIT_REASONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitReason {
    /// The raw field.
    pub raw: u32,
}

impl ExitReason {
    /// 0: an exception or NMI.
    pub const EXCEPTION_OR_NMI: Self = Self::from_raw(0);
    /// 1: an external interrupt.
    pub const EXTERNAL_INTERRUPT: Self = Self::from_raw(1);
    /// 2: a triple fault.
    pub const TRIPLE_FAULT: Self = Self::from_raw(2);
    /// 7: the interrupt window opened.
    pub const INTERRUPT_WINDOW: Self = Self::from_raw(7);
    /// 10: CPUID.
    pub const CPUID: Self = Self::from_raw(10);
    /// 11: GETSEC
    pub const GETSEC: Self = Self::from_raw(11);
    /// 12: HLT.
    pub const HLT: Self = Self::from_raw(12);
    /// 13: INVD
    pub const INVD: Self = Self::from_raw(13);
    /// 14: INVLPG.
    pub const INVLPG: Self = Self::from_raw(14);
    /// 15: RDPMC
    pub const RDPMC: Self = Self::from_raw(15);
    /// 18: VMCALL.
    pub const VMCALL: Self = Self::from_raw(18);
    /// 19: VMCLEAR
    pub const VMCLEAR: Self = Self::from_raw(19);
    /// 20: VMLAUNCH
    pub const VMLAUNCH: Self = Self::from_raw(20);
    /// 21: VMPTRLD
    pub const VMPTRLD: Self = Self::from_raw(21);
    /// 22: VMPTRST
    pub const VMPTRST: Self = Self::from_raw(22);
    /// 23: VMREAD
    pub const VMREAD: Self = Self::from_raw(23);
    /// 24: VMRESUME
    pub const VMRESUME: Self = Self::from_raw(24);
    /// 25: VMWRITE
    pub const VMWRITE: Self = Self::from_raw(25);
    /// 26: VMXOFF
    pub const VMXOFF: Self = Self::from_raw(26);
    /// 27: VMXON
    pub const VMXON: Self = Self::from_raw(27);
    /// 28: a control-register access.
    pub const CR_ACCESS: Self = Self::from_raw(28);
    /// 30: an I/O instruction.
    pub const IO: Self = Self::from_raw(30);
    /// 31: RDMSR.
    pub const RDMSR: Self = Self::from_raw(31);
    /// 32: WRMSR.
    pub const WRMSR: Self = Self::from_raw(32);
    /// 33: VM-entry failure due to invalid guest state.
    pub const INVALID_GUEST_STATE: Self = Self::from_raw(33);
    /// 34: VM-entry failure due to MSR loading.
    pub const MSR_LOADING: Self = Self::from_raw(34);
    /// 36: MWAIT
    pub const MWAIT: Self = Self::from_raw(36);
    /// 39: MONITOR
    pub const MONITOR: Self = Self::from_raw(39);
    /// 50: INVEPT
    pub const INVEPT: Self = Self::from_raw(50);
    /// 52: the VMX-preemption timer expired.
    pub const PREEMPTION_TIMER: Self = Self::from_raw(52);
    /// 53: INVVPID
    pub const INVVPID: Self = Self::from_raw(53);
    /// 54: WBINVD / WBNOINVD
    pub const WBINVD: Self = Self::from_raw(54);
    /// 55: XSETBV
    pub const XSETBV: Self = Self::from_raw(55);
    /// 59: VMFUNC
    pub const VMFUNC: Self = Self::from_raw(59);

    /// Bit 31 of the field.
    const ENTRY_FAILURE: u32 = 1 << 31;

    /// The exit-reason field as read from the VMCS.
    pub const fn from_raw(raw: u32) -> Self {
        ExitReason { raw }
    }
    /// The basic reason alone, every flag bit clear (to compare with the
    /// constants).
    pub const fn without_flags(self) -> Self {
        Self::from_raw(self.basic() as u32)
    }
    /// Bits 15:0, the basic exit reason.
    pub const fn basic(self) -> u16 {
        self.raw as u16
    }
    /// Bit 31: the VM exit is really a failed VM entry.
    pub const fn entry_failure(self) -> bool {
        self.raw & Self::ENTRY_FAILURE != 0
    }
    /// The basic reason's name.
    pub fn name(self) -> &'static str {
        exit_reason_name(self.basic())
    }
}

impl core::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "exit reason {} ({})", self.basic(), self.name())?;
        if self.entry_failure() {
            write!(f, ", VM-entry failure")?;
        }
        Ok(())
    }
}

/// Names for the exception vectors, for diagnostics about injected or intercepted
/// exceptions.
pub fn exception_name(vector: u8) -> &'static str {
    const NAMES: [&str; 22] = [
        "#DE",
        "#DB",
        "NMI",
        "#BP",
        "#OF",
        "#BR",
        "#UD",
        "#NM",
        "#DF",
        "coprocessor overrun",
        "#TS",
        "#NP",
        "#SS",
        "#GP",
        "#PF",
        "reserved",
        "#MF",
        "#AC",
        "#MC",
        "#XM",
        "#VE",
        "#CP",
    ];
    NAMES.get(usize::from(vector)).copied().unwrap_or("vector")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reason_constants_name_their_numbers() {
        for (r, name) in [
            (ExitReason::EXCEPTION_OR_NMI, "exception or NMI"),
            (ExitReason::EXTERNAL_INTERRUPT, "external interrupt"),
            (ExitReason::TRIPLE_FAULT, "triple fault"),
            (ExitReason::INTERRUPT_WINDOW, "interrupt window"),
            (ExitReason::CPUID, "CPUID"),
            (ExitReason::HLT, "HLT"),
            (ExitReason::INVLPG, "INVLPG"),
            (ExitReason::VMCALL, "VMCALL"),
            (ExitReason::CR_ACCESS, "control-register access"),
            (ExitReason::IO, "I/O instruction"),
            (ExitReason::RDMSR, "RDMSR"),
            (ExitReason::WRMSR, "WRMSR"),
            (
                ExitReason::INVALID_GUEST_STATE,
                "VM-entry failure due to invalid guest state",
            ),
            (
                ExitReason::MSR_LOADING,
                "VM-entry failure due to MSR loading",
            ),
            (ExitReason::PREEMPTION_TIMER, "VMX-preemption timer expired"),
        ] {
            assert_eq!(r.name(), name);
            assert_eq!(r.without_flags(), r);
            assert!(!r.entry_failure());
        }
        let failed = ExitReason::from_raw((1 << 31) | 33);
        assert!(failed.entry_failure());
        assert_eq!(failed.without_flags(), ExitReason::INVALID_GUEST_STATE);
        assert_ne!(failed, ExitReason::INVALID_GUEST_STATE);
    }
    use proptest::prelude::*;

    #[test]
    fn known_names() {
        assert_eq!(exit_reason_name(0), "exception or NMI");
        assert_eq!(exit_reason_name(2), "triple fault");
        assert_eq!(exit_reason_name(10), "CPUID");
        assert_eq!(exit_reason_name(12), "HLT");
        assert_eq!(exit_reason_name(18), "VMCALL");
        assert_eq!(exit_reason_name(28), "control-register access");
        assert_eq!(exit_reason_name(30), "I/O instruction");
        assert_eq!(
            exit_reason_name(33),
            "VM-entry failure due to invalid guest state"
        );
        assert_eq!(exit_reason_name(48), "EPT violation");
        assert_eq!(exit_reason_name(52), "VMX-preemption timer expired");
        assert_eq!(exit_reason_name(55), "XSETBV");
        assert_eq!(exit_reason_name(74), "bus lock");
        assert_eq!(exit_reason_name(35), "unused exit reason");
        assert_eq!(exit_reason_name(500), "unknown exit reason");
        assert_eq!(
            vm_instruction_error_name(7),
            "VM entry with invalid control field(s)"
        );
        assert_eq!(
            vm_instruction_error_name(8),
            "VM entry with invalid host-state field(s)"
        );
        assert_eq!(
            vm_instruction_error_name(28),
            "invalid operand to INVEPT/INVVPID"
        );
        assert_eq!(
            vm_instruction_error_name(14),
            "reserved or unknown VM-instruction error"
        );
        assert_eq!(
            vm_instruction_error_name(0),
            "reserved or unknown VM-instruction error"
        );
        assert_eq!(EXIT_REASONS.len(), 80);
        assert_eq!(VM_INSTRUCTION_ERRORS.len(), 29);
        let r = ExitReason {
            raw: (1 << 31) | 33,
        };
        assert_eq!(
            r.to_string(),
            "exit reason 33 (VM-entry failure due to invalid guest state), VM-entry failure"
        );
        assert_eq!(exception_name(13), "#GP");
    }

    proptest! {
        #[test]
        fn never_panics(a in any::<u16>(), b in any::<u32>(), v in any::<u8>()) {
            prop_assert!(!exit_reason_name(a).is_empty());
            prop_assert!(!vm_instruction_error_name(b).is_empty());
            prop_assert!(!exception_name(v).is_empty());
        }
    }
}
