//! # Reading the VMCS back
//!
//! The software VM-entry checks (`checks`) run on what the CPU actually holds, not
//! on what Keel meant to write: every field they need is read back here.

use x86::vmx::vmcs::{control, guest, host};

use super::checks::{Segment, VmcsState};
use super::control_bits::{
    EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use super::insn::vmread;
use super::percpu::VmxCpu;
use crate::arch::cpu::IA32_EFER;

/// Read back every field the VM-entry checks need, exactly as the CPU holds them.
pub fn read_state(cpu: &VmxCpu) -> VmcsState {
    let r = vmread;
    let seg = |sel: u32, base: u32, limit: u32, ar: u32| Segment {
        selector: r(sel) as u16,
        base: r(base),
        limit: r(limit) as u32,
        access: r(ar) as u32,
    };
    let c = &cpu.controls;
    let proc =
        PrimaryControls::from_bits_retain(r(control::PRIMARY_PROCBASED_EXEC_CONTROLS) as u32);
    VmcsState {
        maxphyaddr: cpu.maxphyaddr,
        pin: PinbasedControls::from_bits_retain(r(control::PINBASED_EXEC_CONTROLS) as u32),
        proc,
        proc2: if proc.contains(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS) {
            SecondaryControls::from_bits_retain(r(control::SECONDARY_PROCBASED_EXEC_CONTROLS) as u32)
        } else {
            SecondaryControls::empty()
        },
        exit: ExitControls::from_bits_retain(r(control::VMEXIT_CONTROLS) as u32),
        entry: EntryControls::from_bits_retain(r(control::VMENTRY_CONTROLS) as u32),
        cr3_target_count: r(control::CR3_TARGET_COUNT) as u32,
        io_bitmap_a: r(control::IO_BITMAP_A_ADDR_FULL),
        io_bitmap_b: r(control::IO_BITMAP_B_ADDR_FULL),
        msr_bitmap: r(control::MSR_BITMAPS_ADDR_FULL),
        // The field exists only on CPUs with "use TPR shadow"; Keel never sets it.
        virtual_apic: if proc.contains(PrimaryControls::USE_TPR_SHADOW) {
            r(control::VIRT_APIC_ADDR_FULL)
        } else {
            0
        },
        vpid: if c.vpid { r(control::VPID) as u16 } else { 0 },
        exit_msr_store_count: r(control::VMEXIT_MSR_STORE_COUNT) as u32,
        exit_msr_store_addr: r(control::VMEXIT_MSR_STORE_ADDR_FULL),
        exit_msr_load_count: r(control::VMEXIT_MSR_LOAD_COUNT) as u32,
        exit_msr_load_addr: r(control::VMEXIT_MSR_LOAD_ADDR_FULL),
        entry_msr_load_count: r(control::VMENTRY_MSR_LOAD_COUNT) as u32,
        entry_msr_load_addr: r(control::VMENTRY_MSR_LOAD_ADDR_FULL),
        entry_intr_info: r(control::VMENTRY_INTERRUPTION_INFO_FIELD) as u32,
        entry_exception_error_code: r(control::VMENTRY_EXCEPTION_ERR_CODE) as u32,
        entry_instruction_len: r(control::VMENTRY_INSTRUCTION_LEN) as u32,
        host_cr0: r(host::CR0),
        host_cr3: r(host::CR3),
        host_cr4: r(host::CR4),
        host_es: r(host::ES_SELECTOR) as u16,
        host_cs: r(host::CS_SELECTOR) as u16,
        host_ss: r(host::SS_SELECTOR) as u16,
        host_ds: r(host::DS_SELECTOR) as u16,
        host_fs: r(host::FS_SELECTOR) as u16,
        host_gs: r(host::GS_SELECTOR) as u16,
        host_tr: r(host::TR_SELECTOR) as u16,
        host_fs_base: r(host::FS_BASE),
        host_gs_base: r(host::GS_BASE),
        host_tr_base: r(host::TR_BASE),
        host_gdtr_base: r(host::GDTR_BASE),
        host_idtr_base: r(host::IDTR_BASE),
        host_sysenter_esp: r(host::IA32_SYSENTER_ESP),
        host_sysenter_eip: r(host::IA32_SYSENTER_EIP),
        host_pat: if c.load_pat {
            r(host::IA32_PAT_FULL)
        } else {
            0
        },
        // Without "load IA32_EFER" on exit the check needs the CPU's own EFER.
        host_efer: if c.load_efer {
            r(host::IA32_EFER_FULL)
        } else {
            crate::arch::cpu::rdmsr(IA32_EFER)
        },
        host_rip: r(host::RIP),
        guest_cr0: r(guest::CR0),
        guest_cr3: r(guest::CR3),
        guest_cr4: r(guest::CR4),
        guest_dr7: r(guest::DR7),
        guest_debugctl: r(guest::IA32_DEBUGCTL_FULL),
        guest_sysenter_esp: r(guest::IA32_SYSENTER_ESP),
        guest_sysenter_eip: r(guest::IA32_SYSENTER_EIP),
        guest_pat: if c.load_pat {
            r(guest::IA32_PAT_FULL)
        } else {
            0
        },
        guest_efer: if c.load_efer {
            r(guest::IA32_EFER_FULL)
        } else {
            0
        },
        guest_cs: seg(
            guest::CS_SELECTOR,
            guest::CS_BASE,
            guest::CS_LIMIT,
            guest::CS_ACCESS_RIGHTS,
        ),
        guest_ss: seg(
            guest::SS_SELECTOR,
            guest::SS_BASE,
            guest::SS_LIMIT,
            guest::SS_ACCESS_RIGHTS,
        ),
        guest_ds: seg(
            guest::DS_SELECTOR,
            guest::DS_BASE,
            guest::DS_LIMIT,
            guest::DS_ACCESS_RIGHTS,
        ),
        guest_es: seg(
            guest::ES_SELECTOR,
            guest::ES_BASE,
            guest::ES_LIMIT,
            guest::ES_ACCESS_RIGHTS,
        ),
        guest_fs: seg(
            guest::FS_SELECTOR,
            guest::FS_BASE,
            guest::FS_LIMIT,
            guest::FS_ACCESS_RIGHTS,
        ),
        guest_gs: seg(
            guest::GS_SELECTOR,
            guest::GS_BASE,
            guest::GS_LIMIT,
            guest::GS_ACCESS_RIGHTS,
        ),
        guest_ldtr: seg(
            guest::LDTR_SELECTOR,
            guest::LDTR_BASE,
            guest::LDTR_LIMIT,
            guest::LDTR_ACCESS_RIGHTS,
        ),
        guest_tr: seg(
            guest::TR_SELECTOR,
            guest::TR_BASE,
            guest::TR_LIMIT,
            guest::TR_ACCESS_RIGHTS,
        ),
        guest_gdtr_base: r(guest::GDTR_BASE),
        guest_gdtr_limit: r(guest::GDTR_LIMIT) as u32,
        guest_idtr_base: r(guest::IDTR_BASE),
        guest_idtr_limit: r(guest::IDTR_LIMIT) as u32,
        guest_rip: r(guest::RIP),
        guest_rflags: r(guest::RFLAGS),
        activity_state: r(guest::ACTIVITY_STATE) as u32,
        interruptibility: r(guest::INTERRUPTIBILITY_STATE) as u32,
        pending_dbg: r(guest::PENDING_DBG_EXCEPTIONS),
        link_pointer: r(guest::LINK_PTR_FULL),
    }
}
