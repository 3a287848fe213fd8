//! # CPUID: the host's answer, edited by `policy::cpuid`'s tables

use super::*;

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// CPUID: the host's answer, edited by `crate::policy::cpuid`'s tables.
    pub(super) fn cpuid(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        answer_cpuid(&self.cpuid, g);
        self.complete_instruction();
        None
    }
}

/// Answer the CPUID in `g` (leaf in EAX, subleaf in ECX) by `policy`, into
/// `g`'s four registers: the instruction is not retired here.
#[inline(always)]
pub(super) fn answer_cpuid(policy: &CpuidPolicy, g: &mut GuestGprs) {
    let r = policy.guest_cpuid(g.rax as u32, g.rcx as u32, &host_cpuid);
    // CPUID writes 32-bit registers: the upper halves become 0.
    g.rax = r.eax.into();
    g.rbx = r.ebx.into();
    g.rcx = r.ecx.into();
    g.rdx = r.edx.into();
}
