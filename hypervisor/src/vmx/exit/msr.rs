//! # RDMSR and WRMSR, by the table of `policy::msr`

use super::*;

/// The facts the MSR policy needs for `dom` on `cpu` (also used to build the MSR
/// bitmap, so the bitmap and the exit handler agree).
pub fn msr_env(cpu: &VmxCpu) -> MsrEnv {
    let c = &cpu.controls;
    let base_mhz = if host_cpuid(0, 0).eax >= 0x16 {
        host_cpuid(0x16, 0).eax & 0xffff
    } else {
        0
    };
    MsrEnv {
        rdtscp: c.rdtscp,
        load_efer: c.load_efer,
        load_pat: c.load_pat,
        debug_controls: c.exit.contains(ExitControls::SAVE_DEBUG_CONTROLS),
        platform_info: MsrEnv::platform_info_from_base_mhz(base_mhz),
    }
}

/// The VMCS guest field holding a VMCS-managed MSR.
fn vmcs_field(m: VmcsMsr) -> u32 {
    match m {
        VmcsMsr::Efer => guest::IA32_EFER_FULL,
        VmcsMsr::Pat => guest::IA32_PAT_FULL,
        VmcsMsr::SysenterCs => guest::IA32_SYSENTER_CS,
        VmcsMsr::SysenterEsp => guest::IA32_SYSENTER_ESP,
        VmcsMsr::SysenterEip => guest::IA32_SYSENTER_EIP,
        VmcsMsr::DebugCtl => guest::IA32_DEBUGCTL_FULL,
        VmcsMsr::FsBase => guest::FS_BASE,
        VmcsMsr::GsBase => guest::GS_BASE,
    }
}

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// RDMSR/WRMSR, by the table of `crate::policy::msr`: the policy says what to do, this
    /// does it. Accesses to pass-through MSRs only get here on a CPU without MSR
    /// bitmaps.
    pub(super) fn msr(&mut self, g: &mut GuestGprs, is_write: bool) -> Option<DomainEnd> {
        let index = g.rcx as u32;
        let read_op = |op: ReadOp| match op {
            ReadOp::Value(v) => v,
            ReadOp::Vmcs(f) => vmread(vmcs_field(f)),
            // The table only names MSRs that exist on the host for `Host`.
            ReadOp::Host => crate::arch::cpu::rdmsr(index),
        };
        let ok = if is_write {
            let value = (g.rdx << 32) | (g.rax & 0xffff_ffff);
            let env = self.msr_env;
            let current = || msr_policy::read(index, &env).map_or(0, read_op);
            // The policy's answer, with a host write already carried out.
            match super::super::setup::guest_wrmsr(index, value, current, &env) {
                Ok(Some((f, v))) => {
                    write(vmcs_field(f), v);
                    true
                }
                Ok(None) => true,
                Err(msr_policy::GpFault) => false,
            }
        } else {
            match msr_policy::read(index, &self.msr_env) {
                Ok(op) => {
                    let v = read_op(op);
                    g.rax = v & 0xffff_ffff;
                    g.rdx = v >> 32;
                    true
                }
                Err(msr_policy::GpFault) => false,
            }
        };
        if ok {
            self.complete_instruction();
        } else {
            log::debug!(
                "vmx: domain {} {} MSR {index:#x}: #GP(0) (msr policy)",
                self.dom.id.0,
                if is_write { "wrote" } else { "read" }
            );
            return self.inject_gp(g);
        }
        None
    }
}
