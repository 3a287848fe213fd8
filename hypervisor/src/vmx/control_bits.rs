//! # The 32-bit VMX control words, as flag types
//!
//! One `bitflags` type per control field (SDM 25.6 - 25.8): the five control
//! words, named as the `x86` crate names them, and the exception bitmap. The `x86` crate's own types do not fit: they are `bitflags`
//! 1.x types that drop every bit they do not name unless built through an
//! `unsafe` constructor, and a CPU's must-be-1 bits (SDM A.3: e.g. bits 1, 4-6, 8,
//! 13-16 and 26 of the primary processor-based controls) are such bits. These
//! types keep every bit as read (`const _ = !0`), so a capability MSR's settings
//! and a VMCS field read back round-trip exactly.

use bitflags::bitflags;

bitflags! {
    /// Pin-based VM-execution controls (SDM 25.6.1, table 25-5).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct PinbasedControls: u32 {
        /// External interrupts cause VM exits (instead of going through the guest IDT).
        const EXTERNAL_INTERRUPT_EXITING = 1 << 0;
        /// NMIs cause VM exits.
        const NMI_EXITING = 1 << 3;
        /// Virtual NMIs.
        const VIRTUAL_NMIS = 1 << 5;
        /// VMX-preemption timer.
        const PREEMPTION_TIMER = 1 << 6;
        /// Process posted interrupts.
        const POSTED_INTERRUPTS = 1 << 7;
        // Every other bit may be reserved-must-be-1 on some CPU (SDM A.3): kept as read.
        const _ = !0;
    }
}

bitflags! {
    /// Primary processor-based VM-execution controls (SDM 25.6.2, table 25-6).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct PrimaryControls: u32 {
        /// Interrupt-window exiting.
        const INTERRUPT_WINDOW_EXITING = 1 << 2;
        /// Use TSC offsetting.
        const USE_TSC_OFFSETTING = 1 << 3;
        /// HLT exiting.
        const HLT_EXITING = 1 << 7;
        /// INVLPG exiting.
        const INVLPG_EXITING = 1 << 9;
        /// MWAIT exiting.
        const MWAIT_EXITING = 1 << 10;
        /// RDPMC exiting.
        const RDPMC_EXITING = 1 << 11;
        /// RDTSC exiting.
        const RDTSC_EXITING = 1 << 12;
        /// CR3-load exiting.
        const CR3_LOAD_EXITING = 1 << 15;
        /// CR3-store exiting.
        const CR3_STORE_EXITING = 1 << 16;
        /// CR8-load exiting.
        const CR8_LOAD_EXITING = 1 << 19;
        /// CR8-store exiting.
        const CR8_STORE_EXITING = 1 << 20;
        /// Use TPR shadow.
        const USE_TPR_SHADOW = 1 << 21;
        /// NMI-window exiting.
        const NMI_WINDOW_EXITING = 1 << 22;
        /// MOV-DR exiting.
        const MOV_DR_EXITING = 1 << 23;
        /// Unconditional I/O exiting.
        const UNCONDITIONAL_IO_EXITING = 1 << 24;
        /// Use I/O bitmaps.
        const USE_IO_BITMAPS = 1 << 25;
        /// Monitor trap flag.
        const MONITOR_TRAP_FLAG = 1 << 27;
        /// Use MSR bitmaps.
        const USE_MSR_BITMAPS = 1 << 28;
        /// MONITOR exiting.
        const MONITOR_EXITING = 1 << 29;
        /// PAUSE exiting.
        const PAUSE_EXITING = 1 << 30;
        /// Activate secondary controls.
        const ACTIVATE_SECONDARY_CONTROLS = 1 << 31;
        // Every other bit may be reserved-must-be-1 on some CPU (SDM A.3): kept as read.
        const _ = !0;
    }
}

bitflags! {
    /// Secondary processor-based VM-execution controls (SDM 25.6.2, table 25-7).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct SecondaryControls: u32 {
        /// Virtualize APIC accesses.
        const VIRTUALIZE_APIC_ACCESSES = 1 << 0;
        /// Enable EPT.
        const ENABLE_EPT = 1 << 1;
        /// Descriptor-table exiting.
        const DESCRIPTOR_TABLE_EXITING = 1 << 2;
        /// Enable RDTSCP.
        const ENABLE_RDTSCP = 1 << 3;
        /// Virtualize x2APIC mode.
        const VIRTUALIZE_X2APIC_MODE = 1 << 4;
        /// Enable VPID.
        const ENABLE_VPID = 1 << 5;
        /// WBINVD exiting.
        const WBINVD_EXITING = 1 << 6;
        /// Unrestricted guest.
        const UNRESTRICTED_GUEST = 1 << 7;
        /// APIC-register virtualization.
        const APIC_REGISTER_VIRTUALIZATION = 1 << 8;
        /// Virtual-interrupt delivery.
        const VIRTUAL_INTERRUPT_DELIVERY = 1 << 9;
        /// PAUSE-loop exiting.
        const PAUSE_LOOP_EXITING = 1 << 10;
        /// RDRAND exiting.
        const RDRAND_EXITING = 1 << 11;
        /// Enable INVPCID.
        const ENABLE_INVPCID = 1 << 12;
        /// Enable VM functions.
        const ENABLE_VM_FUNCTIONS = 1 << 13;
        /// VMCS shadowing.
        const VMCS_SHADOWING = 1 << 14;
        /// RDSEED exiting.
        const RDSEED_EXITING = 1 << 16;
        /// Enable PML.
        const ENABLE_PML = 1 << 17;
        /// EPT-violation #VE.
        const EPT_VIOLATION_VE = 1 << 18;
        /// Enable XSAVES/XRSTORS.
        const ENABLE_XSAVES = 1 << 20;
        /// Mode-based execute control for EPT.
        const MODE_BASED_EPT_EXECUTE = 1 << 22;
        /// Use TSC scaling.
        const USE_TSC_SCALING = 1 << 25;
        // Every other bit may be reserved-must-be-1 on some CPU (SDM A.3): kept as read.
        const _ = !0;
    }
}

bitflags! {
    /// VM-exit controls (SDM 25.7.1, table 25-13).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct ExitControls: u32 {
        /// Save debug controls.
        const SAVE_DEBUG_CONTROLS = 1 << 2;
        /// Host address-space size (the host runs in 64-bit mode after the exit).
        const HOST_ADDRESS_SPACE_SIZE = 1 << 9;
        /// Load IA32_PERF_GLOBAL_CTRL.
        const LOAD_PERF_GLOBAL_CTRL = 1 << 12;
        /// Acknowledge interrupt on exit.
        const ACK_INTERRUPT_ON_EXIT = 1 << 15;
        /// Save IA32_PAT.
        const SAVE_PAT = 1 << 18;
        /// Load IA32_PAT.
        const LOAD_PAT = 1 << 19;
        /// Save IA32_EFER.
        const SAVE_EFER = 1 << 20;
        /// Load IA32_EFER.
        const LOAD_EFER = 1 << 21;
        /// Save VMX-preemption timer value.
        const SAVE_PREEMPTION_TIMER = 1 << 22;
        // Every other bit may be reserved-must-be-1 on some CPU (SDM A.3): kept as read.
        const _ = !0;
    }
}

bitflags! {
    /// VM-entry controls (SDM 25.8.1, table 25-15).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct EntryControls: u32 {
        /// Load debug controls.
        const LOAD_DEBUG_CONTROLS = 1 << 2;
        /// IA-32e mode guest.
        const IA32E_MODE_GUEST = 1 << 9;
        /// Entry to SMM.
        const ENTRY_TO_SMM = 1 << 10;
        /// Deactivate dual-monitor treatment.
        const DEACTIVATE_DUAL_MONITOR = 1 << 11;
        /// Load IA32_PERF_GLOBAL_CTRL.
        const LOAD_PERF_GLOBAL_CTRL = 1 << 13;
        /// Load IA32_PAT.
        const LOAD_PAT = 1 << 14;
        /// Load IA32_EFER.
        const LOAD_EFER = 1 << 15;
        // Every other bit may be reserved-must-be-1 on some CPU (SDM A.3): kept as read.
        const _ = !0;
    }
}

bitflags! {
    /// The exception bitmap (SDM 25.6.3): bit `v` set makes a guest exception
    /// of vector `v` a VM exit (a #PF only when its error code passes the
    /// page-fault error-code mask and match). Every bit is architectural (no
    /// reserved bits), and vectors 22..31 are named by their numbers only.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct ExceptionBitmap: u32 {
        /// #DE, divide error (vector 0).
        const DIVIDE_ERROR = 1 << 0;
        /// #DB, debug (vector 1).
        const DEBUG = 1 << 1;
        /// NMI (vector 2).
        const NMI = 1 << 2;
        /// #BP, breakpoint (vector 3).
        const BREAKPOINT = 1 << 3;
        /// #OF, overflow (vector 4).
        const OVERFLOW = 1 << 4;
        /// #BR, BOUND range exceeded (vector 5).
        const BOUND_RANGE = 1 << 5;
        /// #UD, invalid opcode (vector 6).
        const INVALID_OPCODE = 1 << 6;
        /// #NM, device not available (vector 7).
        const DEVICE_NOT_AVAILABLE = 1 << 7;
        /// #DF, double fault (vector 8).
        const DOUBLE_FAULT = 1 << 8;
        /// #TS, invalid TSS (vector 10).
        const INVALID_TSS = 1 << 10;
        /// #NP, segment not present (vector 11).
        const SEGMENT_NOT_PRESENT = 1 << 11;
        /// #SS, stack-segment fault (vector 12).
        const STACK_SEGMENT = 1 << 12;
        /// #GP, general protection (vector 13).
        const GENERAL_PROTECTION = 1 << 13;
        /// #PF, page fault (vector 14).
        const PAGE_FAULT = 1 << 14;
        /// #MF, x87 floating-point error (vector 16).
        const X87_FLOATING_POINT = 1 << 16;
        /// #AC, alignment check (vector 17).
        const ALIGNMENT_CHECK = 1 << 17;
        /// #MC, machine check (vector 18).
        const MACHINE_CHECK = 1 << 18;
        /// #XM, SIMD floating-point (vector 19).
        const SIMD_FLOATING_POINT = 1 << 19;
        /// #VE, virtualization exception (vector 20).
        const VIRTUALIZATION = 1 << 20;
        /// #CP, control protection (vector 21).
        const CONTROL_PROTECTION = 1 << 21;
        // Vectors 9, 15 and 22..31: no named exception, still a bit each.
        const _ = !0;
    }
}

impl ExceptionBitmap {
    /// The bit of exception vector `vector` (0..31; `None` above).
    pub const fn vector(vector: u8) -> Option<ExceptionBitmap> {
        if vector < 32 {
            Some(ExceptionBitmap::from_bits_retain(1 << vector))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExceptionBitmap;

    #[test]
    fn exception_bits_are_their_vectors() {
        for (flag, vector) in [
            (ExceptionBitmap::DIVIDE_ERROR, 0),
            (ExceptionBitmap::DEBUG, 1),
            (ExceptionBitmap::BREAKPOINT, 3),
            (ExceptionBitmap::INVALID_OPCODE, 6),
            (ExceptionBitmap::DOUBLE_FAULT, 8),
            (ExceptionBitmap::GENERAL_PROTECTION, 13),
            (ExceptionBitmap::PAGE_FAULT, 14),
            (ExceptionBitmap::MACHINE_CHECK, 18),
            (ExceptionBitmap::CONTROL_PROTECTION, 21),
        ] {
            assert_eq!(ExceptionBitmap::vector(vector), Some(flag));
        }
        assert_eq!(ExceptionBitmap::PAGE_FAULT.bits(), 0x4000);
        assert_eq!(ExceptionBitmap::vector(31).map(|b| b.bits()), Some(1 << 31));
        assert_eq!(ExceptionBitmap::vector(32), None);
    }
}
