//! # Control-register, EFER, RFLAGS and debug bits, in one place
//!
//! The architectural bit sets come from the `x86_64` crate (`Cr0Flags`,
//! `Cr4Flags`, `EferFlags`, `RFlags`); the modules below name the bits Keel uses
//! as `u64` constants taken from those types, for the policies and checks that
//! compute with raw register values (VMCS fields are words). The VMX-specific
//! words (interruptibility, pending debug exceptions) are `bitflags` here.
//! Pure data: built and tested on the host too.

use bitflags::bitflags;

pub use x86_64::registers::control::{Cr0Flags, Cr4Flags};
pub use x86_64::registers::model_specific::EferFlags;
pub use x86_64::registers::rflags::RFlags;

/// CR0 bits.
pub mod cr0 {
    use super::Cr0Flags as F;
    /// Protection enable.
    pub const PE: u64 = F::PROTECTED_MODE_ENABLE.bits();
    /// Monitor coprocessor.
    pub const MP: u64 = F::MONITOR_COPROCESSOR.bits();
    /// Emulation.
    pub const EM: u64 = F::EMULATE_COPROCESSOR.bits();
    /// Task switched.
    pub const TS: u64 = F::TASK_SWITCHED.bits();
    /// Extension type (hardwired to 1).
    pub const ET: u64 = F::EXTENSION_TYPE.bits();
    /// Numeric error.
    pub const NE: u64 = F::NUMERIC_ERROR.bits();
    /// Write protect.
    pub const WP: u64 = F::WRITE_PROTECT.bits();
    /// Alignment mask.
    pub const AM: u64 = F::ALIGNMENT_MASK.bits();
    /// Not write-through.
    pub const NW: u64 = F::NOT_WRITE_THROUGH.bits();
    /// Cache disable.
    pub const CD: u64 = F::CACHE_DISABLE.bits();
    /// Paging.
    pub const PG: u64 = F::PAGING.bits();
}

/// CR4 bits.
pub mod cr4 {
    use super::Cr4Flags as F;
    /// Time stamp disable.
    pub const TSD: u64 = F::TIMESTAMP_DISABLE.bits();
    /// Debugging extensions.
    pub const DE: u64 = F::DEBUGGING_EXTENSIONS.bits();
    /// Page size extensions.
    pub const PSE: u64 = F::PAGE_SIZE_EXTENSION.bits();
    /// Physical address extension.
    pub const PAE: u64 = F::PHYSICAL_ADDRESS_EXTENSION.bits();
    /// Machine-check enable.
    pub const MCE: u64 = F::MACHINE_CHECK_EXCEPTION.bits();
    /// Page global enable.
    pub const PGE: u64 = F::PAGE_GLOBAL.bits();
    /// OS FXSAVE/FXRSTOR support.
    pub const OSFXSR: u64 = F::OSFXSR.bits();
    /// OS unmasked SIMD exception support.
    pub const OSXMMEXCPT: u64 = F::OSXMMEXCPT_ENABLE.bits();
    /// VMX enable.
    pub const VMXE: u64 = F::VIRTUAL_MACHINE_EXTENSIONS.bits();
    /// Process-context identifiers.
    pub const PCIDE: u64 = F::PCID.bits();
    /// XSAVE and processor extended states enable.
    pub const OSXSAVE: u64 = F::OSXSAVE.bits();
}

/// IA32_EFER bits.
pub mod efer {
    use super::EferFlags as F;
    /// SYSCALL enable.
    pub const SCE: u64 = F::SYSTEM_CALL_EXTENSIONS.bits();
    /// Long mode enable.
    pub const LME: u64 = F::LONG_MODE_ENABLE.bits();
    /// Long mode active.
    pub const LMA: u64 = F::LONG_MODE_ACTIVE.bits();
    /// No-execute enable.
    pub const NXE: u64 = F::NO_EXECUTE_ENABLE.bits();
}

/// RFLAGS bits.
pub mod rflags {
    use super::RFlags as F;
    /// Carry (a VMX instruction's VMfailInvalid).
    pub const CF: u64 = F::CARRY_FLAG.bits();
    /// Zero (a VMX instruction's VMfailValid).
    pub const ZF: u64 = F::ZERO_FLAG.bits();
    /// Trap (single-step).
    pub const TF: u64 = F::TRAP_FLAG.bits();
    /// Interrupt enable.
    pub const IF: u64 = F::INTERRUPT_FLAG.bits();
    /// Direction.
    pub const DF: u64 = F::DIRECTION_FLAG.bits();
    /// Virtual-8086 mode.
    pub const VM: u64 = F::VIRTUAL_8086_MODE.bits();
}

/// IA32_DEBUGCTL bits.
pub mod debugctl {
    /// Single-step on branches (BTF).
    pub const BTF: u64 = 1 << 1;
}

bitflags! {
    /// The VMCS guest interruptibility state (SDM 25.4.2, table 25-3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Interruptibility: u64 {
        /// Blocking by STI.
        const STI = 1 << 0;
        /// Blocking by MOV SS.
        const MOV_SS = 1 << 1;
        /// Blocking by SMI.
        const SMI = 1 << 2;
        /// Blocking by NMI.
        const NMI = 1 << 3;
    }
}

bitflags! {
    /// The VMCS pending-debug-exceptions field (SDM 25.4.2, table 25-4).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PendingDebug: u64 {
        /// B0-B3: breakpoint conditions met.
        const B0_B3 = 0xf;
        /// An enabled breakpoint.
        const ENABLED_BP = 1 << 12;
        /// BS: a single-step trap is pending.
        const BS = 1 << 14;
        /// RTM: a #DB in an RTM region.
        const RTM = 1 << 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDM's bit numbers, against the constants taken from `x86_64`.
    #[test]
    fn bit_numbers() {
        assert_eq!(cr0::PE, 1);
        assert_eq!(cr0::PG, 1 << 31);
        assert_eq!(cr0::WP, 1 << 16);
        assert_eq!(cr4::PAE, 1 << 5);
        assert_eq!(cr4::VMXE, 1 << 13);
        assert_eq!(cr4::OSXSAVE, 1 << 18);
        assert_eq!(efer::LME | efer::LMA | efer::NXE | efer::SCE, 0xd01);
        assert_eq!(rflags::TF | rflags::IF | rflags::DF, 0x700);
        assert_eq!(rflags::VM, 1 << 17);
        assert_eq!((Interruptibility::STI | Interruptibility::MOV_SS).bits(), 3);
        assert_eq!(PendingDebug::BS.bits(), 0x4000);
    }
}
