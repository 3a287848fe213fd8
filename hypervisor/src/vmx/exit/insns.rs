//! # The other sensitive instructions (`policy::insns`): XSETBV

use super::*;

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// XSETBV (always exits): validated by `insns_policy::xsetbv` against the XCR0 values
    /// CPUID offers, then executed on the host (XCR0 is not switched by VMX and the
    /// soft-float host never uses XSAVE state, so the guest's XCR0 stays loaded).
    pub(super) fn xsetbv(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let value = (g.rdx << 32) | (g.rax & 0xffff_ffff);
        let feat = self.cpuid.features();
        let osxsave = self.cr4_visible & CR4_OSXSAVE != 0;
        match insns_policy::xsetbv(osxsave, g.rcx as u32, value, feat.xcr0_allowed) {
            Ok(v) => {
                if !super::super::insn::xsetbv_checked(v, feat.xcr0_allowed) {
                    return self.inject_gp(g);
                }
                self.complete_instruction();
            }
            Err(XsetbvFault::Ud) => return self.inject_ud(g),
            Err(XsetbvFault::Gp) => return self.inject_gp(g),
        }
        None
    }
}
