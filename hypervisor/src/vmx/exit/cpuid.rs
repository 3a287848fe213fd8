//! # CPUID: the host's answer, edited by `policy::cpuid`'s tables

use super::*;

/// The host's CPUID (always available in 64-bit mode).
pub(crate) fn host_cpuid(leaf: u32, sub: u32) -> CpuidResult {
    let h = core::arch::x86_64::__cpuid_count(leaf, sub);
    CpuidResult {
        eax: h.eax,
        ebx: h.ebx,
        ecx: h.ecx,
        edx: h.edx,
    }
}

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// CPUID: the host's answer, edited by `crate::policy::cpuid`'s tables.
    pub(super) fn cpuid(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let r = self
            .cpuid
            .guest_cpuid(g.rax as u32, g.rcx as u32, &host_cpuid);
        // CPUID writes 32-bit registers: the upper halves become 0.
        g.rax = r.eax.into();
        g.rbx = r.ebx.into();
        g.rcx = r.ecx.into();
        g.rdx = r.edx.into();
        self.complete_instruction();
        None
    }
}
