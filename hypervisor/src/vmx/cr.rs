//! # Control registers: who owns which bit, and what a guest may write
//!
//! A Keel guest runs at CPL0 and may execute `MOV CR`. VMX lets the hypervisor own
//! any subset of CR0/CR4 bits through the *guest/host masks* (SDM 25.6.6): for an
//! owned bit, the guest reads the *read shadow* instead of the real register, and a
//! write that would change an owned bit against its shadow causes a VM exit
//! (SDM 26.1.3). Keel owns every bit of both registers except CR0.TS (which the
//! guest flips for lazy FPU switching, and which the hypervisor never uses), so the
//! policy below sees every other change.
//!
//! The policy, as pure functions:
//! - CR0.PE, CR0.PG and CR0.WP can never be cleared: direct paging depends on the
//!   guest running paged, in long mode, and honouring read-only mappings of its page
//!   tables at CPL0. CR4.PAE likewise (long mode requires it).
//! - CR4.VMXE is invisible: real 1 (VMX requires it, SDM 24.8), shadow 0, and a
//!   guest write of 1 is refused with #GP, as on a CPU without VMX (CPUID hides it).
//! - Other bits: a short list the guest may change (CR0.MP/EM/TS/AM; CR4.TSD/DE/PSE/
//!   MCE/PGE/OSFXSR/OSXMMEXCPT), each also subject to the VMX fixed-bit MSRs. Any
//!   other change (caching modes, SMEP/SMAP, PCIDE, OSXSAVE, LA57, ...) is refused
//!   with #GP(0) in ABI 0.1; later ABI versions may open more.
//! - A violation never kills the hypervisor: the exit handler injects #GP(0).

use super::caps::VmxCaps;
use crate::addr::Mfn;

pub use crate::arch::bits::{cr0, cr4};

/// The guest-visible CR0 at entry (contract: PE|MP|ET|NE|WP|PG).
pub const GUEST_CR0_INITIAL: u64 = cr0::PE | cr0::MP | cr0::ET | cr0::NE | cr0::WP | cr0::PG;
/// The guest-visible CR4 at entry (contract: PAE; OSFXSR/OSXMMEXCPT so SSE works
/// from the first instruction, as the x86-64 ABI expects).
pub const GUEST_CR4_INITIAL: u64 = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;

/// CR0 bits the guest owns outright (no exit, no shadow): only TS.
pub const CR0_GUEST_OWNED: u64 = cr0::TS;
/// CR0 bits the guest may change through an intercepted write.
pub const CR0_GUEST_WRITABLE: u64 = cr0::MP | cr0::EM | cr0::TS | cr0::AM;
/// CR0 bits that must stay 1.
pub const CR0_PINNED: u64 = cr0::PE | cr0::PG | cr0::WP;
/// CR4 bits the guest may change.
pub const CR4_GUEST_WRITABLE: u64 =
    cr4::TSD | cr4::DE | cr4::PSE | cr4::MCE | cr4::PGE | cr4::OSFXSR | cr4::OSXMMEXCPT;
/// CR4 bits that must stay 1.
pub const CR4_PINNED: u64 = cr4::PAE;

/// The CR0 guest/host mask: Keel owns every bit except [`CR0_GUEST_OWNED`].
pub const CR0_GUEST_HOST_MASK: u64 = !CR0_GUEST_OWNED;
/// The CR4 guest/host mask: Keel owns every bit.
pub const CR4_GUEST_HOST_MASK: u64 = !0;

/// The fault a refused control-register access raises in the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrFault {
    /// #GP(0).
    GeneralProtection,
}

/// The result of an accepted CR0/CR4 write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrWrite {
    /// What the guest now reads (the read shadow, for owned bits).
    pub visible: u64,
    /// What goes into the real register (the VMCS guest CR0/CR4 field).
    pub real: u64,
    /// The guest's TLB must be flushed, globals included (CR4.PGE or PSE changed).
    pub flush_tlb: bool,
}

/// The control-register policy for one CPU: the fixed bits it imposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrPolicy {
    cr0_fixed0: u64,
    cr0_fixed1: u64,
    cr4_fixed0: u64,
    cr4_fixed1: u64,
    /// CR4.OSXSAVE is guest-writable (Keel offers XSAVE: `crate::policy::cpuid`).
    osxsave: bool,
}

impl CrPolicy {
    /// The policy under the CPU's VMX fixed-bit MSRs.
    pub const fn new(caps: &VmxCaps) -> Self {
        CrPolicy {
            cr0_fixed0: caps.cr0_fixed0,
            cr0_fixed1: caps.cr0_fixed1,
            cr4_fixed0: caps.cr4_fixed0,
            cr4_fixed1: caps.cr4_fixed1,
            osxsave: false,
        }
    }

    /// Let the guest set CR4.OSXSAVE: only when Keel offers XSAVE (CPUID leaf 1
    /// ECX.XSAVE and leaf 0xD, see `crate::policy::cpuid`) and validates XSETBV
    /// (`crate::policy::insns::xsetbv`). The fixed-bit MSRs still apply.
    pub const fn with_osxsave(mut self, on: bool) -> Self {
        self.osxsave = on;
        self
    }

    /// Whether the guest may set CR4.OSXSAVE.
    pub const fn osxsave(&self) -> bool {
        self.osxsave
    }

    /// The real CR0 for a guest-visible value: fixed-1 bits forced on. `None` if the
    /// CPU forbids one of the visible bits.
    pub const fn real_cr0(&self, visible: u64) -> Option<u64> {
        let real = visible | self.cr0_fixed0;
        if real & !self.cr0_fixed1 != 0 {
            None
        } else {
            Some(real)
        }
    }

    /// The real CR4 for a guest-visible value: VMXE and other fixed-1 bits forced on.
    pub const fn real_cr4(&self, visible: u64) -> Option<u64> {
        let real = visible | self.cr4_fixed0;
        if real & !self.cr4_fixed1 != 0 {
            None
        } else {
            Some(real)
        }
    }

    /// `MOV CR0, value` (or the effect of LMSW/CLTS) from guest-visible `current`.
    pub fn write_cr0(&self, current: u64, value: u64) -> Result<CrWrite, CrFault> {
        // Architectural #GP: bits 63:32 set, or NW without CD (SDM vol. 2, MOV CR).
        if value >> 32 != 0 || (value & cr0::NW != 0 && value & cr0::CD == 0) {
            return Err(CrFault::GeneralProtection);
        }
        // ET is hardwired to 1 on every CPU since the 486: writes do not change it.
        let value = value | cr0::ET;
        if value & CR0_PINNED != CR0_PINNED {
            return Err(CrFault::GeneralProtection);
        }
        if (value ^ current) & !CR0_GUEST_WRITABLE != 0 {
            return Err(CrFault::GeneralProtection);
        }
        let real = self.real_cr0(value).ok_or(CrFault::GeneralProtection)?;
        Ok(CrWrite {
            visible: value,
            real,
            flush_tlb: false,
        })
    }

    /// `LMSW source`: loads CR0 bits 3:0, but can set PE and never clear it.
    pub fn lmsw(&self, current: u64, source: u16) -> Result<CrWrite, CrFault> {
        let src = u64::from(source) & 0xf;
        let value = (current & !0xe) | src | (current & cr0::PE);
        self.write_cr0(current, value)
    }

    /// `CLTS`: clears CR0.TS.
    pub fn clts(&self, current: u64) -> Result<CrWrite, CrFault> {
        self.write_cr0(current, current & !cr0::TS)
    }

    /// `MOV CR4, value` from guest-visible `current`.
    pub fn write_cr4(&self, current: u64, value: u64) -> Result<CrWrite, CrFault> {
        // VMXE: the guest sees a CPU without VMX; setting it is a #GP there.
        if value & cr4::VMXE != 0 {
            return Err(CrFault::GeneralProtection);
        }
        if value & CR4_PINNED != CR4_PINNED {
            return Err(CrFault::GeneralProtection);
        }
        let writable = CR4_GUEST_WRITABLE | if self.osxsave { cr4::OSXSAVE } else { 0 };
        if (value ^ current) & !writable != 0 {
            return Err(CrFault::GeneralProtection);
        }
        let real = self.real_cr4(value).ok_or(CrFault::GeneralProtection)?;
        Ok(CrWrite {
            visible: value,
            real,
            // SDM 4.10.4.1: changing PGE (or PSE/PAE) invalidates all TLB entries,
            // globals included. With VPID the VM exit does not do it for us.
            flush_tlb: (value ^ current) & (cr4::PGE | cr4::PSE) != 0,
        })
    }
}

/// An accepted CR3 load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cr3Load {
    /// The top-level page-table frame (L4); the caller checks the domain owns it
    /// as a page table.
    pub l4: Mfn,
    /// The value for the real CR3 (frame plus PWT/PCD).
    pub real: u64,
}

/// `MOV CR3, value` with CR4.PCIDE = 0 (Keel guests cannot set PCIDE): bits 3 and 4
/// are PWT/PCD, bits 2:0 and 11:5 are ignored, and bits 63:MAXPHYADDR are reserved
/// (#GP; SDM vol. 3A 4.5.2 and vol. 2, MOV CR).
pub fn mov_to_cr3(value: u64, maxphyaddr: u8) -> Result<Cr3Load, CrFault> {
    if maxphyaddr < 64 && value >> maxphyaddr != 0 {
        return Err(CrFault::GeneralProtection);
    }
    let frame = value & !0xfff;
    Ok(Cr3Load {
        l4: Mfn::new(frame >> 12),
        real: frame | (value & 0x18),
    })
}

/// `MOV CR8, value`: the task-priority class, bits 3:0; bits 63:4 reserved (#GP).
pub fn mov_to_cr8(value: u64) -> Result<u8, CrFault> {
    if value >> 4 != 0 {
        return Err(CrFault::GeneralProtection);
    }
    Ok(value as u8)
}

/// What a control-register-access VM exit was (exit qualification, SDM 28.2.1,
/// table 28-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrAccess {
    /// `MOV CRn, reg`.
    MovTo {
        /// Control register number.
        cr: u8,
        /// General-purpose register index (0 = RAX ... 15 = R15; 4 = RSP).
        gpr: u8,
    },
    /// `MOV reg, CRn`.
    MovFrom {
        /// Control register number.
        cr: u8,
        /// General-purpose register index.
        gpr: u8,
    },
    /// `CLTS`.
    Clts,
    /// `LMSW`, with its 16-bit source operand.
    Lmsw {
        /// The source operand.
        source: u16,
    },
}

impl CrAccess {
    /// Decode the exit qualification.
    pub const fn decode(q: u64) -> CrAccess {
        let cr = (q & 0xf) as u8;
        let gpr = ((q >> 8) & 0xf) as u8;
        match (q >> 4) & 3 {
            0 => CrAccess::MovTo { cr, gpr },
            1 => CrAccess::MovFrom { cr, gpr },
            2 => CrAccess::Clts,
            _ => CrAccess::Lmsw {
                source: (q >> 16) as u16,
            },
        }
    }
}

#[cfg(test)]
mod tests;
