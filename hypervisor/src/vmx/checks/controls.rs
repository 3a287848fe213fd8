//! SDM 27.2.1: checks on the VMX controls, and on event injection.

use super::*;

/// SDM 27.2.1: checks on the VMX controls.
pub fn check_controls(s: &VmcsState, caps: &VmxCaps) -> Result<(), EntryCheckFailure> {
    // 27.2.1.1: each control field's reserved bits per the capability MSRs.
    fail_if!(
        !caps.pin.allows(s.pin),
        S_EXEC,
        "pin-based VM-execution controls: a bit violates IA32_VMX_(TRUE_)PINBASED_CTLS",
        caps.pin.violations(s.pin).bits()
    );
    fail_if!(
        !caps.proc.allows(s.proc),
        S_EXEC,
        "primary processor-based VM-execution controls: a bit violates IA32_VMX_(TRUE_)PROCBASED_CTLS",
        caps.proc.violations(s.proc).bits()
    );
    let proc2 = if s
        .proc
        .contains(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS)
    {
        fail_if!(
            !caps.proc2.allows(s.proc2),
            S_EXEC,
            "secondary processor-based VM-execution controls: a bit violates IA32_VMX_PROCBASED_CTLS2",
            caps.proc2.violations(s.proc2).bits()
        );
        s.proc2
    } else {
        // With "activate secondary controls" clear the field is treated as 0.
        SecondaryControls::empty()
    };
    fail_if!(
        s.cr3_target_count > caps.misc.cr3_target_count(),
        S_EXEC,
        "CR3-target count exceeds IA32_VMX_MISC[24:16]",
        s.cr3_target_count
    );
    if s.proc.contains(PrimaryControls::USE_IO_BITMAPS) {
        fail_if!(
            !page_addr_ok(s.io_bitmap_a, caps, s.maxphyaddr),
            S_EXEC,
            "I/O bitmap A address not 4-KiB aligned or beyond the physical-address width",
            s.io_bitmap_a
        );
        fail_if!(
            !page_addr_ok(s.io_bitmap_b, caps, s.maxphyaddr),
            S_EXEC,
            "I/O bitmap B address not 4-KiB aligned or beyond the physical-address width",
            s.io_bitmap_b
        );
    }
    if s.proc.contains(PrimaryControls::USE_MSR_BITMAPS) {
        fail_if!(
            !page_addr_ok(s.msr_bitmap, caps, s.maxphyaddr),
            S_EXEC,
            "MSR-bitmap address not 4-KiB aligned or beyond the physical-address width",
            s.msr_bitmap
        );
    }
    if s.proc.contains(PrimaryControls::USE_TPR_SHADOW) {
        fail_if!(
            !page_addr_ok(s.virtual_apic, caps, s.maxphyaddr),
            S_EXEC,
            "virtual-APIC address not 4-KiB aligned or beyond the physical-address width",
            s.virtual_apic
        );
    } else {
        fail_if!(
            proc2.intersects(SecondaryControls::VIRTUALIZE_X2APIC_MODE
                    | SecondaryControls::APIC_REGISTER_VIRTUALIZATION
                    | SecondaryControls::VIRTUAL_INTERRUPT_DELIVERY),
            S_EXEC,
            "x2APIC/APIC-register virtualization or virtual-interrupt delivery without \"use TPR shadow\"",
            proc2.bits()
        );
    }
    fail_if!(
        !s.pin.contains(PinbasedControls::NMI_EXITING)
            && s.pin.contains(PinbasedControls::VIRTUAL_NMIS),
        S_EXEC,
        "\"virtual NMIs\" set without \"NMI exiting\"",
        s.pin.bits()
    );
    fail_if!(
        !s.pin.contains(PinbasedControls::VIRTUAL_NMIS)
            && s.proc.contains(PrimaryControls::NMI_WINDOW_EXITING),
        S_EXEC,
        "\"NMI-window exiting\" set without \"virtual NMIs\"",
        s.proc.bits()
    );
    fail_if!(
        s.pin.contains(PinbasedControls::POSTED_INTERRUPTS),
        S_EXEC,
        "\"process posted interrupts\" is set (Keel does not set up a posted-interrupt descriptor)",
        s.pin.bits()
    );
    fail_if!(
        proc2.contains(SecondaryControls::ENABLE_VPID) && s.vpid == 0,
        S_EXEC,
        "\"enable VPID\" set but the VPID is 0",
        s.vpid
    );
    fail_if!(
        proc2.intersects(SecondaryControls::ENABLE_EPT | SecondaryControls::UNRESTRICTED_GUEST | SecondaryControls::ENABLE_PML | SecondaryControls::ENABLE_VM_FUNCTIONS | SecondaryControls::VMCS_SHADOWING | SecondaryControls::EPT_VIOLATION_VE | SecondaryControls::MODE_BASED_EPT_EXECUTE),
        S_EXEC,
        "an EPT-dependent or VMCS-shadowing control is set (Keel uses direct paging: no EPT pointer, no shadow VMCS)",
        proc2.bits()
    );

    // 27.2.1.2: VM-exit controls.
    fail_if!(
        !caps.exit.allows(s.exit),
        S_EXIT,
        "VM-exit controls: a bit violates IA32_VMX_(TRUE_)EXIT_CTLS",
        caps.exit.violations(s.exit).bits()
    );
    fail_if!(
        !s.pin.contains(PinbasedControls::PREEMPTION_TIMER)
            && s.exit.contains(ExitControls::SAVE_PREEMPTION_TIMER),
        S_EXIT,
        "\"save VMX-preemption timer value\" set without \"activate VMX-preemption timer\"",
        s.exit.bits()
    );
    msr_area(
        s.exit_msr_store_count,
        s.exit_msr_store_addr,
        caps,
        s.maxphyaddr,
        S_EXIT,
        "VM-exit MSR-store address not 16-byte aligned",
        "VM-exit MSR-store area extends beyond the physical-address width",
    )?;
    msr_area(
        s.exit_msr_load_count,
        s.exit_msr_load_addr,
        caps,
        s.maxphyaddr,
        S_EXIT,
        "VM-exit MSR-load address not 16-byte aligned",
        "VM-exit MSR-load area extends beyond the physical-address width",
    )?;

    // 27.2.1.3: VM-entry controls.
    fail_if!(
        !caps.entry.allows(s.entry),
        S_ENTRY,
        "VM-entry controls: a bit violates IA32_VMX_(TRUE_)ENTRY_CTLS",
        caps.entry.violations(s.entry).bits()
    );
    check_event_injection(s, caps)?;
    msr_area(
        s.entry_msr_load_count,
        s.entry_msr_load_addr,
        caps,
        s.maxphyaddr,
        S_ENTRY,
        "VM-entry MSR-load address not 16-byte aligned",
        "VM-entry MSR-load area extends beyond the physical-address width",
    )?;
    fail_if!(
        s.entry
            .intersects(EntryControls::ENTRY_TO_SMM | EntryControls::DEACTIVATE_DUAL_MONITOR),
        S_ENTRY,
        "\"entry to SMM\" or \"deactivate dual-monitor treatment\" set outside SMM",
        s.entry.bits()
    );
    Ok(())
}

/// Interruption types in the VM-entry interruption-information field (SDM 25.8.3).
pub mod intr_type {
    /// External interrupt.
    pub const EXTERNAL: u32 = 0;
    /// Reserved.
    pub const RESERVED: u32 = 1;
    /// NMI.
    pub const NMI: u32 = 2;
    /// Hardware exception.
    pub const HARDWARE_EXCEPTION: u32 = 3;
    /// Software interrupt (INT n).
    pub const SOFTWARE_INTERRUPT: u32 = 4;
    /// Privileged software exception (INT1).
    pub const PRIV_SOFTWARE_EXCEPTION: u32 = 5;
    /// Software exception (INT3, INTO).
    pub const SOFTWARE_EXCEPTION: u32 = 6;
    /// Other event (MTF).
    pub const OTHER: u32 = 7;
}

/// Exception vectors that push an error code in protected mode: #DF, #TS, #NP, #SS,
/// #GP, #PF, #AC (and #CP, 21).
pub const fn exception_has_error_code(vector: u32) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21)
}

/// SDM 27.2.1.3, the event-injection part.
pub(super) fn check_event_injection(
    s: &VmcsState,
    caps: &VmxCaps,
) -> Result<(), EntryCheckFailure> {
    let info = s.entry_intr_info;
    if info & (1 << 31) == 0 {
        return Ok(());
    }
    let vector = info & 0xff;
    let ty = (info >> 8) & 7;
    let deliver_ec = info & (1 << 11) != 0;
    fail_if!(
        ty == intr_type::RESERVED,
        S_ENTRY,
        "VM-entry interruption information: reserved interruption type 1",
        info
    );
    fail_if!(
        ty == intr_type::OTHER && !caps.proc.can_set(PrimaryControls::MONITOR_TRAP_FLAG),
        S_ENTRY,
        "VM-entry interruption information: type 7 (other event) without monitor-trap-flag support",
        info
    );
    fail_if!(
        ty == intr_type::NMI && vector != 2,
        S_ENTRY,
        "VM-entry interruption information: NMI with a vector other than 2",
        info
    );
    fail_if!(
        ty == intr_type::HARDWARE_EXCEPTION && vector > 31,
        S_ENTRY,
        "VM-entry interruption information: hardware exception with a vector above 31",
        info
    );
    fail_if!(
        ty == intr_type::OTHER && vector != 0,
        S_ENTRY,
        "VM-entry interruption information: other event with a vector other than 0",
        info
    );
    let pe = s.guest_cr0 & CR0_PE != 0;
    let needs_ec = ty == intr_type::HARDWARE_EXCEPTION && exception_has_error_code(vector);
    if deliver_ec {
        fail_if!(
            !pe,
            S_ENTRY,
            "VM-entry interruption information: deliver-error-code set while guest CR0.PE = 0",
            info
        );
        fail_if!(
            !caps.no_error_code_consistency && !needs_ec,
            S_ENTRY,
            "VM-entry interruption information: deliver-error-code set for an event without an error code",
            info
        );
        fail_if!(
            s.entry_exception_error_code & 0xffff_0000 != 0,
            S_ENTRY,
            "VM-entry exception error code: bits 31:16 not 0",
            s.entry_exception_error_code
        );
    } else {
        fail_if!(
            !caps.no_error_code_consistency && pe && needs_ec,
            S_ENTRY,
            "VM-entry interruption information: deliver-error-code clear for an exception that has an error code",
            info
        );
    }
    fail_if!(
        info & 0x7fff_f000 != 0,
        S_ENTRY,
        "VM-entry interruption information: reserved bits 30:12 not 0",
        info
    );
    if matches!(
        ty,
        intr_type::SOFTWARE_INTERRUPT
            | intr_type::PRIV_SOFTWARE_EXCEPTION
            | intr_type::SOFTWARE_EXCEPTION
    ) {
        let min = if caps.misc.zero_length_injection() {
            0
        } else {
            1
        };
        fail_if!(
            s.entry_instruction_len < min || s.entry_instruction_len > 15,
            S_ENTRY,
            "VM-entry instruction length out of range for a software event",
            s.entry_instruction_len
        );
    }
    Ok(())
}
