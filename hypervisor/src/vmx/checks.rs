//! # The VM-entry checks, in software
//!
//! VMLAUNCH checks the VMCS before it enters the guest (SDM vol. 3C, chapter 27,
//! "VM Entries"): the VMX controls and the host-state area (27.2; a failure is
//! `VMfailValid` with error 7 or 8) and then the guest-state area (27.3.1; a failure
//! is a VM exit with reason 33, "VM-entry failure due to invalid guest state"). The
//! hardware says *that* a check failed, never *which*. This module states the checks
//! once more, as code, so that Keel can name the failing one before it ever runs
//! VMLAUNCH: on real hardware and under nested KVM, "invalid guest state" with no
//! further detail is the hardest bug there is to chase.
//!
//! The hardware module reads every field below back with VMREAD after setting up the
//! VMCS (so it checks what the CPU will see, not what Keel meant to write) and calls
//! [`check_vm_entry`]. The checks follow the SDM's order; the first failure is
//! reported, with the SDM section it comes from.
//!
//! Scope: the checks for the features Keel can enable are complete. Checks that
//! concern controls Keel never sets (EPT, unrestricted guest, posted interrupts,
//! PML, VM functions, CET, PKRS, IA32_PERF_GLOBAL_CTRL, BNDCFGS, RTIT, SMM, virtual-8086
//! mode, PAE PDPTEs) are reduced to "that control is 0", which turns any accidental
//! use into a named failure instead of an unchecked one.

use super::caps::VmxCaps;
use super::controls::{entry, exit, pin, proc, proc2};

/// One guest segment register, as the VMCS holds it (SDM 25.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Base address.
    pub base: u64,
    /// Limit, in bytes (already scaled by the granularity bit).
    pub limit: u32,
    /// Access rights, in the VMCS format (SDM table 25-2): type 3:0, S 4, DPL 6:5,
    /// P 7, AVL 12, L 13, D/B 14, G 15, unusable 16.
    pub access: u32,
}

/// Access-rights bits (SDM table 25-2).
pub mod ar {
    /// The segment is unusable (SDM 25.4.1).
    pub const UNUSABLE: u32 = 1 << 16;
    /// Granularity.
    pub const G: u32 = 1 << 15;
    /// Default operation size / big.
    pub const DB: u32 = 1 << 14;
    /// 64-bit code segment.
    pub const L: u32 = 1 << 13;
    /// Present.
    pub const P: u32 = 1 << 7;
    /// Descriptor type: 1 = code or data.
    pub const S: u32 = 1 << 4;
    /// Reserved bits 11:8 and 31:17.
    pub const RESERVED: u32 = 0xf00 | 0xfffe_0000;
    /// The DPL.
    pub const fn dpl(access: u32) -> u32 {
        (access >> 5) & 3
    }
    /// The type field.
    pub const fn ty(access: u32) -> u32 {
        access & 0xf
    }
}

impl Segment {
    /// Whether the unusable bit is clear.
    pub const fn usable(&self) -> bool {
        self.access & ar::UNUSABLE == 0
    }
}

/// Every VMCS field the VM-entry checks read, plus the one platform fact they need
/// (the physical-address width).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmcsState {
    /// CPUID.80000008H:EAX bits 7:0, MAXPHYADDR: the width of physical addresses.
    pub maxphyaddr: u8,

    // --- VM-execution, VM-exit and VM-entry controls (SDM 25.6 - 25.8).
    /// Pin-based VM-execution controls.
    pub pin: u32,
    /// Primary processor-based VM-execution controls.
    pub proc: u32,
    /// Secondary processor-based VM-execution controls.
    pub proc2: u32,
    /// VM-exit controls.
    pub exit: u32,
    /// VM-entry controls.
    pub entry: u32,
    /// CR3-target count.
    pub cr3_target_count: u32,
    /// I/O bitmap A address.
    pub io_bitmap_a: u64,
    /// I/O bitmap B address.
    pub io_bitmap_b: u64,
    /// MSR bitmaps address.
    pub msr_bitmap: u64,
    /// Virtual-APIC page address (used only with "use TPR shadow").
    pub virtual_apic: u64,
    /// Virtual-processor identifier.
    pub vpid: u16,
    /// VM-exit MSR-store count.
    pub exit_msr_store_count: u32,
    /// VM-exit MSR-store address.
    pub exit_msr_store_addr: u64,
    /// VM-exit MSR-load count.
    pub exit_msr_load_count: u32,
    /// VM-exit MSR-load address.
    pub exit_msr_load_addr: u64,
    /// VM-entry MSR-load count.
    pub entry_msr_load_count: u32,
    /// VM-entry MSR-load address.
    pub entry_msr_load_addr: u64,
    /// VM-entry interruption-information field.
    pub entry_intr_info: u32,
    /// VM-entry exception error code.
    pub entry_exception_error_code: u32,
    /// VM-entry instruction length.
    pub entry_instruction_len: u32,

    // --- Host-state area (SDM 25.5).
    /// Host CR0.
    pub host_cr0: u64,
    /// Host CR3.
    pub host_cr3: u64,
    /// Host CR4.
    pub host_cr4: u64,
    /// Host ES selector.
    pub host_es: u16,
    /// Host CS selector.
    pub host_cs: u16,
    /// Host SS selector.
    pub host_ss: u16,
    /// Host DS selector.
    pub host_ds: u16,
    /// Host FS selector.
    pub host_fs: u16,
    /// Host GS selector.
    pub host_gs: u16,
    /// Host TR selector.
    pub host_tr: u16,
    /// Host FS base.
    pub host_fs_base: u64,
    /// Host GS base.
    pub host_gs_base: u64,
    /// Host TR base.
    pub host_tr_base: u64,
    /// Host GDTR base.
    pub host_gdtr_base: u64,
    /// Host IDTR base.
    pub host_idtr_base: u64,
    /// Host IA32_SYSENTER_ESP.
    pub host_sysenter_esp: u64,
    /// Host IA32_SYSENTER_EIP.
    pub host_sysenter_eip: u64,
    /// Host IA32_PAT (checked only with exit "load IA32_PAT").
    pub host_pat: u64,
    /// Host IA32_EFER: the VMCS field with exit "load IA32_EFER", else the CPU's
    /// current IA32_EFER (its LMA says whether the host is in IA-32e mode).
    pub host_efer: u64,
    /// Host RIP.
    pub host_rip: u64,

    // --- Guest-state area (SDM 25.4).
    /// Guest CR0.
    pub guest_cr0: u64,
    /// Guest CR3.
    pub guest_cr3: u64,
    /// Guest CR4.
    pub guest_cr4: u64,
    /// Guest DR7.
    pub guest_dr7: u64,
    /// Guest IA32_DEBUGCTL.
    pub guest_debugctl: u64,
    /// Guest IA32_SYSENTER_ESP.
    pub guest_sysenter_esp: u64,
    /// Guest IA32_SYSENTER_EIP.
    pub guest_sysenter_eip: u64,
    /// Guest IA32_PAT (checked only with entry "load IA32_PAT").
    pub guest_pat: u64,
    /// Guest IA32_EFER (checked only with entry "load IA32_EFER").
    pub guest_efer: u64,
    /// Guest CS.
    pub guest_cs: Segment,
    /// Guest SS.
    pub guest_ss: Segment,
    /// Guest DS.
    pub guest_ds: Segment,
    /// Guest ES.
    pub guest_es: Segment,
    /// Guest FS.
    pub guest_fs: Segment,
    /// Guest GS.
    pub guest_gs: Segment,
    /// Guest LDTR.
    pub guest_ldtr: Segment,
    /// Guest TR.
    pub guest_tr: Segment,
    /// Guest GDTR base.
    pub guest_gdtr_base: u64,
    /// Guest GDTR limit.
    pub guest_gdtr_limit: u32,
    /// Guest IDTR base.
    pub guest_idtr_base: u64,
    /// Guest IDTR limit.
    pub guest_idtr_limit: u32,
    /// Guest RIP.
    pub guest_rip: u64,
    /// Guest RFLAGS.
    pub guest_rflags: u64,
    /// Guest activity state.
    pub activity_state: u32,
    /// Guest interruptibility state.
    pub interruptibility: u32,
    /// Guest pending debug exceptions.
    pub pending_dbg: u64,
    /// VMCS link pointer.
    pub link_pointer: u64,
}

/// A failed VM-entry check: what failed, in words, and where the SDM states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryCheckFailure {
    /// The rule that failed, e.g. "guest CR0: PG set but PE clear".
    pub what: &'static str,
    /// The SDM vol. 3C section, e.g. "27.3.1.1".
    pub section: &'static str,
    /// The offending value, for the diagnostic.
    pub value: u64,
}

impl core::fmt::Display for EntryCheckFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (value {:#x}; SDM {})",
            self.what, self.value, self.section
        )
    }
}

/// The sections, spelled once.
const S_EXEC: &str = "27.2.1.1";
const S_EXIT: &str = "27.2.1.2";
const S_ENTRY: &str = "27.2.1.3";
const S_HOST_CR: &str = "27.2.2";
const S_HOST_SEG: &str = "27.2.3";
const S_HOST_ADDR: &str = "27.2.4";
const S_GUEST_CR: &str = "27.3.1.1";
const S_GUEST_SEG: &str = "27.3.1.2";
const S_GUEST_DT: &str = "27.3.1.3";
const S_GUEST_RIP: &str = "27.3.1.4";
const S_GUEST_NONREG: &str = "27.3.1.5";

/// Fail with `what` (SDM `section`) when `cond` holds.
macro_rules! fail_if {
    ($cond:expr, $section:expr, $what:expr, $value:expr) => {
        if $cond {
            return Err(EntryCheckFailure {
                what: $what,
                section: $section,
                value: $value as u64,
            });
        }
    };
}

/// Whether a linear address is canonical for 4-level paging (bits 63:47 equal).
/// Keel never enables 5-level paging, so 48 bits is the linear-address width.
pub const fn is_canonical(a: u64) -> bool {
    let top = (a as i64) >> 47;
    top == 0 || top == -1
}

/// Whether `a` fits in the physical-address width.
const fn fits_phys(a: u64, maxphyaddr: u8) -> bool {
    maxphyaddr >= 64 || a >> maxphyaddr == 0
}

/// Whether every byte of a PAT value is a valid memory type: 0 (UC), 1 (WC),
/// 4 (WT), 5 (WP), 6 (WB) or 7 (UC-).
pub const fn pat_ok(pat: u64) -> bool {
    let mut i = 0;
    while i < 8 {
        let t = (pat >> (i * 8)) & 0xff;
        if !matches!(t, 0 | 1 | 4 | 5 | 6 | 7) {
            return false;
        }
        i += 1;
    }
    true
}

/// EFER bits that may be set: SCE (0), LME (8), LMA (10), NXE (11).
const EFER_DEFINED: u64 = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11);
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const CR0_PE: u64 = 1 << 0;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_PCIDE: u64 = 1 << 17;
const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_VM: u64 = 1 << 17;
/// RFLAGS reserved bits: 63:22, 15, 5, 3 must be 0; bit 1 must be 1.
const RFLAGS_RESERVED_ZERO: u64 = !0x3f_ffff | (1 << 15) | (1 << 5) | (1 << 3);
/// IA32_DEBUGCTL bits that may be set: 0, 1, 6..15 (SDM vol. 4, table 2-2).
const DEBUGCTL_DEFINED: u64 = 0b11 | (0x3ff << 6);

/// The checks on an MSR-load/store area: 16-byte aligned, and the last byte within
/// the physical-address width (and below 4 GiB if BASIC[48]).
fn msr_area(
    count: u32,
    addr: u64,
    caps: &VmxCaps,
    maxphyaddr: u8,
    section: &'static str,
    align_what: &'static str,
    width_what: &'static str,
) -> Result<(), EntryCheckFailure> {
    if count == 0 {
        return Ok(());
    }
    fail_if!(addr & 0xf != 0, section, align_what, addr);
    let last = addr.wrapping_add(u64::from(count) * 16 - 1);
    let width = if caps.addr_32bit_only { 32 } else { maxphyaddr };
    fail_if!(
        last < addr || !fits_phys(addr, width) || !fits_phys(last, width),
        section,
        width_what,
        addr
    );
    Ok(())
}

/// A 4-KiB-aligned structure address within the physical-address width.
fn page_addr_ok(addr: u64, caps: &VmxCaps, maxphyaddr: u8) -> bool {
    let width = if caps.addr_32bit_only { 32 } else { maxphyaddr };
    addr & 0xfff == 0 && fits_phys(addr, width)
}

/// SDM 27.2.1: checks on the VMX controls.
pub fn check_controls(s: &VmcsState, caps: &VmxCaps) -> Result<(), EntryCheckFailure> {
    // 27.2.1.1: each control field's reserved bits per the capability MSRs.
    fail_if!(
        !caps.pin.allows(s.pin),
        S_EXEC,
        "pin-based VM-execution controls: a bit violates IA32_VMX_(TRUE_)PINBASED_CTLS",
        caps.pin.violations(s.pin)
    );
    fail_if!(
        !caps.proc.allows(s.proc),
        S_EXEC,
        "primary processor-based VM-execution controls: a bit violates IA32_VMX_(TRUE_)PROCBASED_CTLS",
        caps.proc.violations(s.proc)
    );
    let proc2 = if s.proc & proc::ACTIVATE_SECONDARY_CONTROLS != 0 {
        fail_if!(
            !caps.proc2.allows(s.proc2),
            S_EXEC,
            "secondary processor-based VM-execution controls: a bit violates IA32_VMX_PROCBASED_CTLS2",
            caps.proc2.violations(s.proc2)
        );
        s.proc2
    } else {
        // With "activate secondary controls" clear the field is treated as 0.
        0
    };
    fail_if!(
        s.cr3_target_count > caps.misc.cr3_target_count(),
        S_EXEC,
        "CR3-target count exceeds IA32_VMX_MISC[24:16]",
        s.cr3_target_count
    );
    if s.proc & proc::USE_IO_BITMAPS != 0 {
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
    if s.proc & proc::USE_MSR_BITMAPS != 0 {
        fail_if!(
            !page_addr_ok(s.msr_bitmap, caps, s.maxphyaddr),
            S_EXEC,
            "MSR-bitmap address not 4-KiB aligned or beyond the physical-address width",
            s.msr_bitmap
        );
    }
    if s.proc & proc::USE_TPR_SHADOW != 0 {
        fail_if!(
            !page_addr_ok(s.virtual_apic, caps, s.maxphyaddr),
            S_EXEC,
            "virtual-APIC address not 4-KiB aligned or beyond the physical-address width",
            s.virtual_apic
        );
    } else {
        fail_if!(
            proc2
                & (proc2::VIRTUALIZE_X2APIC_MODE
                    | proc2::APIC_REGISTER_VIRTUALIZATION
                    | proc2::VIRTUAL_INTERRUPT_DELIVERY)
                != 0,
            S_EXEC,
            "x2APIC/APIC-register virtualization or virtual-interrupt delivery without \"use TPR shadow\"",
            proc2
        );
    }
    fail_if!(
        s.pin & pin::NMI_EXITING == 0 && s.pin & pin::VIRTUAL_NMIS != 0,
        S_EXEC,
        "\"virtual NMIs\" set without \"NMI exiting\"",
        s.pin
    );
    fail_if!(
        s.pin & pin::VIRTUAL_NMIS == 0 && s.proc & proc::NMI_WINDOW_EXITING != 0,
        S_EXEC,
        "\"NMI-window exiting\" set without \"virtual NMIs\"",
        s.proc
    );
    fail_if!(
        s.pin & pin::POSTED_INTERRUPTS != 0,
        S_EXEC,
        "\"process posted interrupts\" is set (Keel does not set up a posted-interrupt descriptor)",
        s.pin
    );
    fail_if!(
        proc2 & proc2::ENABLE_VPID != 0 && s.vpid == 0,
        S_EXEC,
        "\"enable VPID\" set but the VPID is 0",
        s.vpid
    );
    fail_if!(
        proc2 & (proc2::ENABLE_EPT | proc2::UNRESTRICTED_GUEST | proc2::ENABLE_PML | proc2::ENABLE_VM_FUNCTIONS | proc2::VMCS_SHADOWING | proc2::EPT_VIOLATION_VE | proc2::MODE_BASED_EPT_EXECUTE) != 0,
        S_EXEC,
        "an EPT-dependent or VMCS-shadowing control is set (Keel uses direct paging: no EPT pointer, no shadow VMCS)",
        proc2
    );

    // 27.2.1.2: VM-exit controls.
    fail_if!(
        !caps.exit.allows(s.exit),
        S_EXIT,
        "VM-exit controls: a bit violates IA32_VMX_(TRUE_)EXIT_CTLS",
        caps.exit.violations(s.exit)
    );
    fail_if!(
        s.pin & pin::PREEMPTION_TIMER == 0 && s.exit & exit::SAVE_PREEMPTION_TIMER != 0,
        S_EXIT,
        "\"save VMX-preemption timer value\" set without \"activate VMX-preemption timer\"",
        s.exit
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
        caps.entry.violations(s.entry)
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
        s.entry & (entry::ENTRY_TO_SMM | entry::DEACTIVATE_DUAL_MONITOR) != 0,
        S_ENTRY,
        "\"entry to SMM\" or \"deactivate dual-monitor treatment\" set outside SMM",
        s.entry
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
fn check_event_injection(s: &VmcsState, caps: &VmxCaps) -> Result<(), EntryCheckFailure> {
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
        ty == intr_type::OTHER && !caps.proc.can_set(proc::MONITOR_TRAP_FLAG),
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

/// SDM 27.2.2 - 27.2.4: checks on the host-state area.
pub fn check_host(s: &VmcsState, caps: &VmxCaps) -> Result<(), EntryCheckFailure> {
    // 27.2.2: host control registers and MSRs.
    fail_if!(
        s.host_cr0 & caps.cr0_fixed0 != caps.cr0_fixed0,
        S_HOST_CR,
        "host CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear",
        s.host_cr0
    );
    fail_if!(
        s.host_cr0 & !caps.cr0_fixed1 != 0,
        S_HOST_CR,
        "host CR0: a bit forbidden by IA32_VMX_CR0_FIXED1 is set",
        s.host_cr0
    );
    fail_if!(
        !caps.cr4_ok(s.host_cr4),
        S_HOST_CR,
        "host CR4: violates IA32_VMX_CR4_FIXED0/FIXED1",
        s.host_cr4
    );
    fail_if!(
        !fits_phys(s.host_cr3, s.maxphyaddr),
        S_HOST_CR,
        "host CR3: bits beyond the physical-address width are set",
        s.host_cr3
    );
    fail_if!(
        !is_canonical(s.host_sysenter_esp),
        S_HOST_CR,
        "host IA32_SYSENTER_ESP not canonical",
        s.host_sysenter_esp
    );
    fail_if!(
        !is_canonical(s.host_sysenter_eip),
        S_HOST_CR,
        "host IA32_SYSENTER_EIP not canonical",
        s.host_sysenter_eip
    );
    fail_if!(
        s.exit & exit::LOAD_PERF_GLOBAL_CTRL != 0,
        S_HOST_CR,
        "exit \"load IA32_PERF_GLOBAL_CTRL\" set (Keel provides no value)",
        s.exit
    );
    if s.exit & exit::LOAD_PAT != 0 {
        fail_if!(
            !pat_ok(s.host_pat),
            S_HOST_CR,
            "host IA32_PAT: an entry is not a valid memory type",
            s.host_pat
        );
    }
    let host64 = s.exit & exit::HOST_ADDRESS_SPACE_SIZE != 0;
    if s.exit & exit::LOAD_EFER != 0 {
        fail_if!(
            s.host_efer & !EFER_DEFINED != 0,
            S_HOST_CR,
            "host IA32_EFER: reserved bits set",
            s.host_efer
        );
        fail_if!(
            (s.host_efer & EFER_LMA != 0) != host64 || (s.host_efer & EFER_LME != 0) != host64,
            S_HOST_CR,
            "host IA32_EFER: LMA/LME differ from \"host address-space size\"",
            s.host_efer
        );
    }

    // 27.2.3: host segment and descriptor-table registers.
    for (sel, what) in [
        (s.host_es, "host ES selector: RPL or TI not 0"),
        (s.host_cs, "host CS selector: RPL or TI not 0"),
        (s.host_ss, "host SS selector: RPL or TI not 0"),
        (s.host_ds, "host DS selector: RPL or TI not 0"),
        (s.host_fs, "host FS selector: RPL or TI not 0"),
        (s.host_gs, "host GS selector: RPL or TI not 0"),
        (s.host_tr, "host TR selector: RPL or TI not 0"),
    ] {
        fail_if!(sel & 7 != 0, S_HOST_SEG, what, sel);
    }
    fail_if!(
        s.host_cs == 0,
        S_HOST_SEG,
        "host CS selector is 0",
        s.host_cs
    );
    fail_if!(
        s.host_tr == 0,
        S_HOST_SEG,
        "host TR selector is 0",
        s.host_tr
    );
    fail_if!(
        !host64 && s.host_ss == 0,
        S_HOST_SEG,
        "host SS selector is 0 with a 32-bit host",
        s.host_ss
    );
    for (base, what) in [
        (s.host_fs_base, "host FS base not canonical"),
        (s.host_gs_base, "host GS base not canonical"),
        (s.host_gdtr_base, "host GDTR base not canonical"),
        (s.host_idtr_base, "host IDTR base not canonical"),
        (s.host_tr_base, "host TR base not canonical"),
    ] {
        fail_if!(!is_canonical(base), S_HOST_SEG, what, base);
    }

    // 27.2.4: address-space size. Keel's host always runs in IA-32e mode.
    let host_in_ia32e = s.host_efer & EFER_LMA != 0;
    let guest64 = s.entry & entry::IA32E_MODE_GUEST != 0;
    if host_in_ia32e {
        fail_if!(
            !host64,
            S_HOST_ADDR,
            "\"host address-space size\" clear while the CPU is in IA-32e mode",
            s.exit
        );
    } else {
        fail_if!(
            guest64 || host64,
            S_HOST_ADDR,
            "\"IA-32e mode guest\" or \"host address-space size\" set outside IA-32e mode",
            s.entry
        );
    }
    if host64 {
        fail_if!(
            s.host_cr4 & CR4_PAE == 0,
            S_HOST_ADDR,
            "host CR4.PAE clear with a 64-bit host",
            s.host_cr4
        );
        fail_if!(
            !is_canonical(s.host_rip),
            S_HOST_ADDR,
            "host RIP not canonical",
            s.host_rip
        );
    } else {
        fail_if!(
            s.host_cr4 & CR4_PCIDE != 0,
            S_HOST_ADDR,
            "host CR4.PCIDE set with a 32-bit host",
            s.host_cr4
        );
        fail_if!(
            s.host_rip >> 32 != 0,
            S_HOST_ADDR,
            "host RIP bits 63:32 not 0 with a 32-bit host",
            s.host_rip
        );
    }
    Ok(())
}

/// The limit/granularity rule shared by every usable segment (SDM 27.3.1.2):
/// if any of limit[11:0] is 0, G must be 0; if any of limit[31:20] is 1, G must be 1.
const fn granularity_ok(seg: &Segment) -> bool {
    let g = seg.access & ar::G != 0;
    !((seg.limit & 0xfff != 0xfff && g) || (seg.limit & 0xfff0_0000 != 0 && !g))
}

/// SDM 27.3.1.1: guest control registers, debug registers and MSRs.
fn check_guest_regs(s: &VmcsState, caps: &VmxCaps) -> Result<(), EntryCheckFailure> {
    let guest64 = s.entry & entry::IA32E_MODE_GUEST != 0;
    // Keel never sets "unrestricted guest", so PE and PG are not exempt.
    fail_if!(
        s.guest_cr0 & caps.cr0_fixed0 != caps.cr0_fixed0,
        S_GUEST_CR,
        "guest CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear",
        s.guest_cr0
    );
    fail_if!(
        s.guest_cr0 & !caps.cr0_fixed1 != 0,
        S_GUEST_CR,
        "guest CR0: a bit forbidden by IA32_VMX_CR0_FIXED1 is set",
        s.guest_cr0
    );
    fail_if!(
        s.guest_cr0 & CR0_PG != 0 && s.guest_cr0 & CR0_PE == 0,
        S_GUEST_CR,
        "guest CR0: PG set but PE clear",
        s.guest_cr0
    );
    fail_if!(
        !caps.cr4_ok(s.guest_cr4),
        S_GUEST_CR,
        "guest CR4: violates IA32_VMX_CR4_FIXED0/FIXED1",
        s.guest_cr4
    );
    if s.entry & entry::LOAD_DEBUG_CONTROLS != 0 {
        fail_if!(
            s.guest_debugctl & !DEBUGCTL_DEFINED != 0,
            S_GUEST_CR,
            "guest IA32_DEBUGCTL: reserved bits set",
            s.guest_debugctl
        );
    }
    if guest64 {
        fail_if!(
            s.guest_cr0 & CR0_PG == 0,
            S_GUEST_CR,
            "\"IA-32e mode guest\" set but guest CR0.PG clear",
            s.guest_cr0
        );
        fail_if!(
            s.guest_cr4 & CR4_PAE == 0,
            S_GUEST_CR,
            "\"IA-32e mode guest\" set but guest CR4.PAE clear",
            s.guest_cr4
        );
    } else {
        fail_if!(
            s.guest_cr4 & CR4_PCIDE != 0,
            S_GUEST_CR,
            "guest CR4.PCIDE set without \"IA-32e mode guest\"",
            s.guest_cr4
        );
    }
    fail_if!(
        !fits_phys(s.guest_cr3, s.maxphyaddr),
        S_GUEST_CR,
        "guest CR3: bits beyond the physical-address width are set",
        s.guest_cr3
    );
    if s.entry & entry::LOAD_DEBUG_CONTROLS != 0 {
        fail_if!(
            s.guest_dr7 >> 32 != 0,
            S_GUEST_CR,
            "guest DR7: bits 63:32 not 0",
            s.guest_dr7
        );
    }
    fail_if!(
        !is_canonical(s.guest_sysenter_esp),
        S_GUEST_CR,
        "guest IA32_SYSENTER_ESP not canonical",
        s.guest_sysenter_esp
    );
    fail_if!(
        !is_canonical(s.guest_sysenter_eip),
        S_GUEST_CR,
        "guest IA32_SYSENTER_EIP not canonical",
        s.guest_sysenter_eip
    );
    fail_if!(
        s.entry & entry::LOAD_PERF_GLOBAL_CTRL != 0,
        S_GUEST_CR,
        "entry \"load IA32_PERF_GLOBAL_CTRL\" set (Keel provides no value)",
        s.entry
    );
    if s.entry & entry::LOAD_PAT != 0 {
        fail_if!(
            !pat_ok(s.guest_pat),
            S_GUEST_CR,
            "guest IA32_PAT: an entry is not a valid memory type",
            s.guest_pat
        );
    }
    if s.entry & entry::LOAD_EFER != 0 {
        fail_if!(
            s.guest_efer & !EFER_DEFINED != 0,
            S_GUEST_CR,
            "guest IA32_EFER: reserved bits set",
            s.guest_efer
        );
        fail_if!(
            (s.guest_efer & EFER_LMA != 0) != guest64,
            S_GUEST_CR,
            "guest IA32_EFER.LMA differs from \"IA-32e mode guest\"",
            s.guest_efer
        );
        fail_if!(
            s.guest_cr0 & CR0_PG != 0
                && (s.guest_efer & EFER_LMA != 0) != (s.guest_efer & EFER_LME != 0),
            S_GUEST_CR,
            "guest IA32_EFER: LMA differs from LME while CR0.PG is set",
            s.guest_efer
        );
    }
    Ok(())
}

/// SDM 27.3.1.2: guest segment registers (Keel's guests are never in virtual-8086
/// mode: RFLAGS.VM is checked to be 0 in 27.3.1.4, so the v8086 rules do not apply).
fn check_guest_segments(s: &VmcsState) -> Result<(), EntryCheckFailure> {
    let guest64 = s.entry & entry::IA32E_MODE_GUEST != 0;
    let (cs, ss, tr, ldtr) = (&s.guest_cs, &s.guest_ss, &s.guest_tr, &s.guest_ldtr);

    // Selectors.
    fail_if!(
        tr.selector & 4 != 0,
        S_GUEST_SEG,
        "guest TR selector: TI flag set",
        tr.selector
    );
    fail_if!(
        ldtr.usable() && ldtr.selector & 4 != 0,
        S_GUEST_SEG,
        "guest LDTR selector: TI flag set",
        ldtr.selector
    );
    fail_if!(
        ss.selector & 3 != cs.selector & 3,
        S_GUEST_SEG,
        "guest SS selector RPL differs from CS selector RPL",
        ss.selector
    );

    // Bases.
    fail_if!(
        !is_canonical(tr.base),
        S_GUEST_SEG,
        "guest TR base not canonical",
        tr.base
    );
    fail_if!(
        !is_canonical(s.guest_fs.base),
        S_GUEST_SEG,
        "guest FS base not canonical",
        s.guest_fs.base
    );
    fail_if!(
        !is_canonical(s.guest_gs.base),
        S_GUEST_SEG,
        "guest GS base not canonical",
        s.guest_gs.base
    );
    fail_if!(
        ldtr.usable() && !is_canonical(ldtr.base),
        S_GUEST_SEG,
        "guest LDTR base not canonical",
        ldtr.base
    );
    fail_if!(
        cs.base >> 32 != 0,
        S_GUEST_SEG,
        "guest CS base bits 63:32 not 0",
        cs.base
    );
    for (seg, what) in [
        (ss, "guest SS base bits 63:32 not 0"),
        (&s.guest_ds, "guest DS base bits 63:32 not 0"),
        (&s.guest_es, "guest ES base bits 63:32 not 0"),
    ] {
        fail_if!(
            seg.usable() && seg.base >> 32 != 0,
            S_GUEST_SEG,
            what,
            seg.base
        );
    }

    // Access rights: CS.
    let cs_ty = ar::ty(cs.access);
    fail_if!(
        !matches!(cs_ty, 9 | 11 | 13 | 15),
        S_GUEST_SEG,
        "guest CS access rights: type is not an accessed code segment (9, 11, 13, 15)",
        cs.access
    );
    fail_if!(
        cs.access & ar::S == 0,
        S_GUEST_SEG,
        "guest CS access rights: S (descriptor type) clear",
        cs.access
    );
    if matches!(cs_ty, 9 | 11) {
        fail_if!(
            ar::dpl(cs.access) != ar::dpl(ss.access),
            S_GUEST_SEG,
            "guest CS access rights: non-conforming code DPL differs from SS DPL",
            cs.access
        );
    } else {
        fail_if!(
            ar::dpl(cs.access) > ar::dpl(ss.access),
            S_GUEST_SEG,
            "guest CS access rights: conforming code DPL above SS DPL",
            cs.access
        );
    }
    fail_if!(
        cs.access & ar::P == 0,
        S_GUEST_SEG,
        "guest CS access rights: P (present) clear",
        cs.access
    );
    fail_if!(
        cs.access & ar::RESERVED != 0,
        S_GUEST_SEG,
        "guest CS access rights: reserved bits set",
        cs.access
    );
    fail_if!(
        guest64 && cs.access & ar::L != 0 && cs.access & ar::DB != 0,
        S_GUEST_SEG,
        "guest CS access rights: both L and D/B set in IA-32e mode",
        cs.access
    );
    fail_if!(
        !granularity_ok(cs),
        S_GUEST_SEG,
        "guest CS: limit and G (granularity) inconsistent",
        cs.access
    );
    fail_if!(
        cs.access & ar::UNUSABLE != 0,
        S_GUEST_SEG,
        "guest CS is marked unusable",
        cs.access
    );

    // SS.
    if ss.usable() {
        fail_if!(
            !matches!(ar::ty(ss.access), 3 | 7),
            S_GUEST_SEG,
            "guest SS access rights: type is not a read/write accessed data segment (3, 7)",
            ss.access
        );
        fail_if!(
            ss.access & ar::S == 0,
            S_GUEST_SEG,
            "guest SS access rights: S (descriptor type) clear",
            ss.access
        );
        fail_if!(
            ss.access & ar::P == 0,
            S_GUEST_SEG,
            "guest SS access rights: P (present) clear",
            ss.access
        );
        fail_if!(
            ss.access & ar::RESERVED != 0,
            S_GUEST_SEG,
            "guest SS access rights: reserved bits set",
            ss.access
        );
        fail_if!(
            !granularity_ok(ss),
            S_GUEST_SEG,
            "guest SS: limit and G (granularity) inconsistent",
            ss.access
        );
    }
    fail_if!(
        ar::dpl(ss.access) != u32::from(ss.selector & 3),
        S_GUEST_SEG,
        "guest SS access rights: DPL differs from the SS selector's RPL",
        ss.access
    );

    // DS, ES, FS, GS.
    for (seg, name) in [
        (&s.guest_ds, 0),
        (&s.guest_es, 1),
        (&s.guest_fs, 2),
        (&s.guest_gs, 3),
    ] {
        if !seg.usable() {
            continue;
        }
        const ACC: [&str; 4] = [
            "guest DS access rights: not accessed, or an unreadable code segment",
            "guest ES access rights: not accessed, or an unreadable code segment",
            "guest FS access rights: not accessed, or an unreadable code segment",
            "guest GS access rights: not accessed, or an unreadable code segment",
        ];
        const SBIT: [&str; 4] = [
            "guest DS access rights: S (descriptor type) clear",
            "guest ES access rights: S (descriptor type) clear",
            "guest FS access rights: S (descriptor type) clear",
            "guest GS access rights: S (descriptor type) clear",
        ];
        const DPL: [&str; 4] = [
            "guest DS access rights: DPL below the selector's RPL",
            "guest ES access rights: DPL below the selector's RPL",
            "guest FS access rights: DPL below the selector's RPL",
            "guest GS access rights: DPL below the selector's RPL",
        ];
        const PRES: [&str; 4] = [
            "guest DS access rights: P (present) clear",
            "guest ES access rights: P (present) clear",
            "guest FS access rights: P (present) clear",
            "guest GS access rights: P (present) clear",
        ];
        const RES: [&str; 4] = [
            "guest DS access rights: reserved bits set",
            "guest ES access rights: reserved bits set",
            "guest FS access rights: reserved bits set",
            "guest GS access rights: reserved bits set",
        ];
        const GRAN: [&str; 4] = [
            "guest DS: limit and G (granularity) inconsistent",
            "guest ES: limit and G (granularity) inconsistent",
            "guest FS: limit and G (granularity) inconsistent",
            "guest GS: limit and G (granularity) inconsistent",
        ];
        let ty = ar::ty(seg.access);
        fail_if!(
            ty & 1 == 0 || (ty & 8 != 0 && ty & 2 == 0),
            S_GUEST_SEG,
            ACC[name],
            seg.access
        );
        fail_if!(seg.access & ar::S == 0, S_GUEST_SEG, SBIT[name], seg.access);
        // Data and non-conforming code (types 0-11): DPL >= RPL.
        fail_if!(
            ty <= 11 && ar::dpl(seg.access) < u32::from(seg.selector & 3),
            S_GUEST_SEG,
            DPL[name],
            seg.access
        );
        fail_if!(seg.access & ar::P == 0, S_GUEST_SEG, PRES[name], seg.access);
        fail_if!(
            seg.access & ar::RESERVED != 0,
            S_GUEST_SEG,
            RES[name],
            seg.access
        );
        fail_if!(!granularity_ok(seg), S_GUEST_SEG, GRAN[name], seg.access);
    }

    // TR.
    let tr_ty = ar::ty(tr.access);
    if guest64 {
        fail_if!(
            tr_ty != 11,
            S_GUEST_SEG,
            "guest TR access rights: type is not a busy 64-bit TSS (11) in IA-32e mode",
            tr.access
        );
    } else {
        fail_if!(
            !matches!(tr_ty, 3 | 11),
            S_GUEST_SEG,
            "guest TR access rights: type is not a busy TSS (3, 11)",
            tr.access
        );
    }
    fail_if!(
        tr.access & ar::S != 0,
        S_GUEST_SEG,
        "guest TR access rights: S (descriptor type) set",
        tr.access
    );
    fail_if!(
        tr.access & ar::P == 0,
        S_GUEST_SEG,
        "guest TR access rights: P (present) clear",
        tr.access
    );
    fail_if!(
        tr.access & ar::RESERVED != 0,
        S_GUEST_SEG,
        "guest TR access rights: reserved bits set",
        tr.access
    );
    fail_if!(
        !granularity_ok(tr),
        S_GUEST_SEG,
        "guest TR: limit and G (granularity) inconsistent",
        tr.access
    );
    fail_if!(
        tr.access & ar::UNUSABLE != 0,
        S_GUEST_SEG,
        "guest TR is marked unusable",
        tr.access
    );

    // LDTR.
    if ldtr.usable() {
        fail_if!(
            ar::ty(ldtr.access) != 2,
            S_GUEST_SEG,
            "guest LDTR access rights: type is not LDT (2)",
            ldtr.access
        );
        fail_if!(
            ldtr.access & ar::S != 0,
            S_GUEST_SEG,
            "guest LDTR access rights: S (descriptor type) set",
            ldtr.access
        );
        fail_if!(
            ldtr.access & ar::P == 0,
            S_GUEST_SEG,
            "guest LDTR access rights: P (present) clear",
            ldtr.access
        );
        fail_if!(
            ldtr.access & ar::RESERVED != 0,
            S_GUEST_SEG,
            "guest LDTR access rights: reserved bits set",
            ldtr.access
        );
        fail_if!(
            !granularity_ok(ldtr),
            S_GUEST_SEG,
            "guest LDTR: limit and G (granularity) inconsistent",
            ldtr.access
        );
    }
    Ok(())
}

/// SDM 27.3.1.3 and 27.3.1.4: descriptor-table registers, RIP and RFLAGS.
fn check_guest_dt_rip_rflags(s: &VmcsState) -> Result<(), EntryCheckFailure> {
    fail_if!(
        !is_canonical(s.guest_gdtr_base),
        S_GUEST_DT,
        "guest GDTR base not canonical",
        s.guest_gdtr_base
    );
    fail_if!(
        !is_canonical(s.guest_idtr_base),
        S_GUEST_DT,
        "guest IDTR base not canonical",
        s.guest_idtr_base
    );
    fail_if!(
        s.guest_gdtr_limit >> 16 != 0,
        S_GUEST_DT,
        "guest GDTR limit bits 31:16 not 0",
        s.guest_gdtr_limit
    );
    fail_if!(
        s.guest_idtr_limit >> 16 != 0,
        S_GUEST_DT,
        "guest IDTR limit bits 31:16 not 0",
        s.guest_idtr_limit
    );

    let guest64 = s.entry & entry::IA32E_MODE_GUEST != 0;
    if guest64 && s.guest_cs.access & ar::L != 0 {
        fail_if!(
            !is_canonical(s.guest_rip),
            S_GUEST_RIP,
            "guest RIP not canonical (64-bit code)",
            s.guest_rip
        );
    } else {
        fail_if!(
            s.guest_rip >> 32 != 0,
            S_GUEST_RIP,
            "guest RIP bits 63:32 not 0 outside 64-bit code",
            s.guest_rip
        );
    }
    fail_if!(
        s.guest_rflags & RFLAGS_RESERVED_ZERO != 0,
        S_GUEST_RIP,
        "guest RFLAGS: reserved bits (63:22, 15, 5, 3) set",
        s.guest_rflags
    );
    fail_if!(
        s.guest_rflags & 2 == 0,
        S_GUEST_RIP,
        "guest RFLAGS: reserved bit 1 clear",
        s.guest_rflags
    );
    fail_if!(
        (guest64 || s.guest_cr0 & CR0_PE == 0) && s.guest_rflags & RFLAGS_VM != 0,
        S_GUEST_RIP,
        "guest RFLAGS.VM set in IA-32e mode or with CR0.PE clear",
        s.guest_rflags
    );
    let info = s.entry_intr_info;
    fail_if!(
        info & (1 << 31) != 0
            && (info >> 8) & 7 == intr_type::EXTERNAL
            && s.guest_rflags & RFLAGS_IF == 0,
        S_GUEST_RIP,
        "guest RFLAGS.IF clear while injecting an external interrupt",
        s.guest_rflags
    );
    Ok(())
}

/// Guest activity states (SDM 25.4.2).
pub mod activity {
    /// Active.
    pub const ACTIVE: u32 = 0;
    /// HLT.
    pub const HLT: u32 = 1;
    /// Shutdown.
    pub const SHUTDOWN: u32 = 2;
    /// Wait-for-SIPI.
    pub const WAIT_FOR_SIPI: u32 = 3;
}

/// SDM 27.3.1.5: checks on guest non-register state.
fn check_guest_nonreg(s: &VmcsState, caps: &VmxCaps) -> Result<(), EntryCheckFailure> {
    let act = s.activity_state;
    let supported = match act {
        activity::ACTIVE => true,
        activity::HLT => caps.misc.activity_hlt(),
        activity::SHUTDOWN => caps.misc.activity_shutdown(),
        activity::WAIT_FOR_SIPI => caps.misc.activity_wait_for_sipi(),
        _ => false,
    };
    fail_if!(
        !supported,
        S_GUEST_NONREG,
        "guest activity state not supported (IA32_VMX_MISC[8:6])",
        act
    );
    fail_if!(
        act == activity::HLT && ar::dpl(s.guest_ss.access) != 0,
        S_GUEST_NONREG,
        "guest activity state HLT with SS.DPL not 0",
        s.guest_ss.access
    );
    let intr = s.interruptibility;
    let sti = intr & 1 != 0;
    let movss = intr & 2 != 0;
    fail_if!(
        (sti || movss) && act != activity::ACTIVE,
        S_GUEST_NONREG,
        "guest activity state not active while blocking by STI or MOV SS",
        act
    );
    // Bit 4 ("enclave interruption") is defined only with SGX, which Keel does not expose.
    fail_if!(
        intr & !0xf != 0,
        S_GUEST_NONREG,
        "guest interruptibility state: reserved bits (31:4) set",
        intr
    );
    fail_if!(
        sti && movss,
        S_GUEST_NONREG,
        "guest interruptibility state: blocking by STI and by MOV SS both set",
        intr
    );
    fail_if!(
        sti && s.guest_rflags & RFLAGS_IF == 0,
        S_GUEST_NONREG,
        "guest interruptibility state: blocking by STI with RFLAGS.IF clear",
        intr
    );
    let info = s.entry_intr_info;
    let injecting = info & (1 << 31) != 0;
    let ty = (info >> 8) & 7;
    fail_if!(
        injecting && ty == intr_type::EXTERNAL && (sti || movss),
        S_GUEST_NONREG,
        "guest interruptibility state: STI/MOV SS blocking while injecting an external interrupt",
        intr
    );
    fail_if!(
        injecting && ty == intr_type::NMI && movss,
        S_GUEST_NONREG,
        "guest interruptibility state: MOV SS blocking while injecting an NMI",
        intr
    );
    fail_if!(
        intr & 4 != 0,
        S_GUEST_NONREG,
        "guest interruptibility state: blocking by SMI set outside SMM",
        intr
    );
    fail_if!(
        injecting && ty == intr_type::NMI && s.pin & pin::VIRTUAL_NMIS != 0 && intr & 8 != 0,
        S_GUEST_NONREG,
        "guest interruptibility state: NMI blocking while injecting a virtual NMI",
        intr
    );

    // Pending debug exceptions: bits 11:4, 13, 15 and 63:17 are reserved.
    let pd = s.pending_dbg;
    fail_if!(
        pd & !(0xf | (1 << 12) | (1 << 14) | (1 << 16)) != 0,
        S_GUEST_NONREG,
        "guest pending debug exceptions: reserved bits set",
        pd
    );
    if sti || movss || act == activity::HLT {
        let tf = s.guest_rflags & RFLAGS_TF != 0;
        let btf = s.guest_debugctl & 2 != 0;
        let bs = pd & (1 << 14) != 0;
        fail_if!(
            tf && !btf && !bs,
            S_GUEST_NONREG,
            "guest pending debug exceptions: BS clear with RFLAGS.TF set and DEBUGCTL.BTF clear while blocked/halted",
            pd
        );
        fail_if!(
            (!tf || btf) && bs,
            S_GUEST_NONREG,
            "guest pending debug exceptions: BS set with RFLAGS.TF clear or DEBUGCTL.BTF set while blocked/halted",
            pd
        );
    }

    // VMCS link pointer: Keel uses no shadow VMCS, so it must be all ones; any other
    // value would make the CPU check (and, with shadowing, use) the referenced VMCS.
    fail_if!(
        s.link_pointer != u64::MAX,
        S_GUEST_NONREG,
        "VMCS link pointer is not FFFFFFFF_FFFFFFFFH and Keel provides no linked VMCS",
        s.link_pointer
    );
    // 27.3.1.6 (PDPTEs) applies only to PAE paging outside IA-32e mode, which a
    // Keel guest never uses; require IA-32e mode so that stays true.
    fail_if!(
        s.entry & entry::IA32E_MODE_GUEST == 0,
        "27.3.1.6",
        "\"IA-32e mode guest\" clear: Keel provides no PAE PDPTEs",
        s.entry
    );
    Ok(())
}

/// Run every VM-entry check, in the SDM's order: controls (27.2.1), host state
/// (27.2.2 - 27.2.4), guest state (27.3.1). `Ok` means VMLAUNCH will not fail a
/// check that Keel knows about.
pub fn check_vm_entry(s: &VmcsState, caps: &VmxCaps) -> Result<(), EntryCheckFailure> {
    check_controls(s, caps)?;
    check_host(s, caps)?;
    check_guest_regs(s, caps)?;
    check_guest_segments(s)?;
    check_guest_dt_rip_rflags(s)?;
    check_guest_nonreg(s, caps)
}

/// The guest and host state Keel sets up for a 64-bit PV guest, before the
/// CPU-dependent parts (controls, fixed bits) are filled in. Shared by `vmx::hw` and
/// the tests so that the known-good state *is* the state Keel uses.
pub mod guest_layout {
    use super::Segment;
    /// CS: selector 0x08, 64-bit code, DPL 0, accessed, present, G, limit 4 GiB.
    pub const CS: Segment = Segment {
        selector: 0x08,
        base: 0,
        limit: 0xffff_ffff,
        // type 11 (execute/read, accessed), S, P, L, G.
        access: 0xb | (1 << 4) | (1 << 7) | (1 << 13) | (1 << 15),
    };
    /// SS/DS/ES/FS/GS: selector 0x10, read/write accessed data, DPL 0, present, D/B, G.
    pub const DATA: Segment = Segment {
        selector: 0x10,
        base: 0,
        limit: 0xffff_ffff,
        access: 0x3 | (1 << 4) | (1 << 7) | (1 << 14) | (1 << 15),
    };
    /// TR: selector 0x18, busy 64-bit TSS, base 0, limit 0x67.
    pub const TR: Segment = Segment {
        selector: 0x18,
        base: 0,
        limit: 0x67,
        access: 0xb | (1 << 7),
    };
    /// LDTR: unusable.
    pub const LDTR: Segment = Segment {
        selector: 0,
        base: 0,
        limit: 0,
        access: super::ar::UNUSABLE,
    };
}

#[cfg(test)]
mod tests {
    use super::super::caps::fixtures::{model, MODELS};
    use super::super::controls::derive;
    use super::*;
    use proptest::prelude::*;

    /// The state Keel sets up, for a given model.
    fn good(caps: &VmxCaps) -> VmcsState {
        let c = derive(caps).unwrap();
        VmcsState {
            maxphyaddr: 40,
            pin: c.pin,
            proc: c.proc,
            proc2: c.proc2,
            exit: c.exit,
            entry: c.entry,
            msr_bitmap: 0x1234_5000,
            io_bitmap_a: 0x1234_6000,
            io_bitmap_b: 0x1234_7000,
            vpid: if c.vpid { 1 } else { 0 },
            host_cr0: 0x8000_0033,
            host_cr3: 0x10_0000,
            host_cr4: 0x2020,
            host_cs: 0x08,
            host_ss: 0x10,
            host_ds: 0x10,
            host_es: 0x10,
            host_tr: 0x18,
            host_tr_base: 0x20_0000,
            host_gdtr_base: 0x20_1000,
            host_idtr_base: 0x20_2000,
            host_pat: 0x0007_0406_0007_0406,
            host_efer: 0xd01,
            host_rip: 0xffff_ffff_8010_0000,
            // Exactly what `vmx::hw` writes: the contract's values through the CR policy.
            guest_cr0: super::super::cr::CrPolicy::new(caps)
                .real_cr0(super::super::cr::GUEST_CR0_INITIAL)
                .unwrap(),
            guest_cr3: 0x40_0000,
            guest_cr4: super::super::cr::CrPolicy::new(caps)
                .real_cr4(super::super::cr::GUEST_CR4_INITIAL)
                .unwrap(),
            guest_dr7: 0x400,
            guest_pat: 0x0007_0406_0007_0406,
            guest_efer: 0xd01,
            guest_cs: guest_layout::CS,
            guest_ss: guest_layout::DATA,
            guest_ds: guest_layout::DATA,
            guest_es: guest_layout::DATA,
            guest_fs: guest_layout::DATA,
            guest_gs: guest_layout::DATA,
            guest_ldtr: guest_layout::LDTR,
            guest_tr: guest_layout::TR,
            guest_rip: 0x40_1000,
            guest_rflags: 2,
            link_pointer: u64::MAX,
            ..Default::default()
        }
    }

    #[test]
    fn known_good_state_passes_on_every_model() {
        for m in MODELS {
            let caps = m.caps();
            assert_eq!(check_vm_entry(&good(&caps), &caps), Ok(()), "{}", m.name);
        }
    }

    /// Each mutation must break exactly the named check (the first failure reported
    /// is the one the mutation targets).
    #[test]
    fn each_mutation_names_its_check() {
        type M = fn(&mut VmcsState);
        let cases: &[(M, &str, &str)] = &[
            // 27.2.1.1
            (|s| s.pin &= !(1 << 1), "pin-based VM-execution controls: a bit violates IA32_VMX_(TRUE_)PINBASED_CTLS", "27.2.1.1"),
            (|s| s.pin |= 1 << 20, "pin-based VM-execution controls: a bit violates IA32_VMX_(TRUE_)PINBASED_CTLS", "27.2.1.1"),
            (|s| s.proc &= !(1 << 1), "primary processor-based VM-execution controls: a bit violates IA32_VMX_(TRUE_)PROCBASED_CTLS", "27.2.1.1"),
            (|s| s.proc2 |= 1 << 30, "secondary processor-based VM-execution controls: a bit violates IA32_VMX_PROCBASED_CTLS2", "27.2.1.1"),
            (|s| s.cr3_target_count = 5, "CR3-target count exceeds IA32_VMX_MISC[24:16]", "27.2.1.1"),
            (|s| s.msr_bitmap |= 8, "MSR-bitmap address not 4-KiB aligned or beyond the physical-address width", "27.2.1.1"),
            (|s| s.msr_bitmap = 1 << 45, "MSR-bitmap address not 4-KiB aligned or beyond the physical-address width", "27.2.1.1"),
            (|s| { s.proc |= proc::USE_IO_BITMAPS; s.io_bitmap_a |= 1 }, "I/O bitmap A address not 4-KiB aligned or beyond the physical-address width", "27.2.1.1"),
            (|s| { s.proc |= proc::USE_IO_BITMAPS; s.io_bitmap_b = 1 << 50 }, "I/O bitmap B address not 4-KiB aligned or beyond the physical-address width", "27.2.1.1"),
            (|s| s.vpid = 0, "\"enable VPID\" set but the VPID is 0", "27.2.1.1"),
            (|s| { s.pin &= !pin::NMI_EXITING; s.pin |= pin::VIRTUAL_NMIS }, "\"virtual NMIs\" set without \"NMI exiting\"", "27.2.1.1"),
            (|s| s.proc |= proc::NMI_WINDOW_EXITING, "\"NMI-window exiting\" set without \"virtual NMIs\"", "27.2.1.1"),
            (|s| s.proc2 |= proc2::ENABLE_EPT, "an EPT-dependent or VMCS-shadowing control is set (Keel uses direct paging: no EPT pointer, no shadow VMCS)", "27.2.1.1"),
            (|s| s.proc2 |= proc2::VIRTUAL_INTERRUPT_DELIVERY, "x2APIC/APIC-register virtualization or virtual-interrupt delivery without \"use TPR shadow\"", "27.2.1.1"),
            (|s| { s.proc |= proc::USE_TPR_SHADOW; s.proc &= !(proc::CR8_LOAD_EXITING | proc::CR8_STORE_EXITING); s.virtual_apic = 0x1001 }, "virtual-APIC address not 4-KiB aligned or beyond the physical-address width", "27.2.1.1"),
            // 27.2.1.2
            (|s| s.exit &= !1, "VM-exit controls: a bit violates IA32_VMX_(TRUE_)EXIT_CTLS", "27.2.1.2"),
            (|s| s.exit |= exit::SAVE_PREEMPTION_TIMER, "\"save VMX-preemption timer value\" set without \"activate VMX-preemption timer\"", "27.2.1.2"),
            (|s| { s.exit_msr_store_count = 1; s.exit_msr_store_addr = 0x1008 }, "VM-exit MSR-store address not 16-byte aligned", "27.2.1.2"),
            (|s| { s.exit_msr_load_count = 2; s.exit_msr_load_addr = (1 << 40) - 16 }, "VM-exit MSR-load area extends beyond the physical-address width", "27.2.1.2"),
            // 27.2.1.3
            (|s| s.entry |= 1 << 31, "VM-entry controls: a bit violates IA32_VMX_(TRUE_)ENTRY_CTLS", "27.2.1.3"),
            (|s| s.entry_intr_info = (1 << 31) | (1 << 8) | 13, "VM-entry interruption information: reserved interruption type 1", "27.2.1.3"),
            (|s| s.entry_intr_info = (1 << 31) | (2 << 8) | 3, "VM-entry interruption information: NMI with a vector other than 2", "27.2.1.3"),
            (|s| s.entry_intr_info = (1 << 31) | (3 << 8) | 32, "VM-entry interruption information: hardware exception with a vector above 31", "27.2.1.3"),
            (|s| s.entry_intr_info = (1 << 31) | (3 << 8) | 13, "VM-entry interruption information: deliver-error-code clear for an exception that has an error code", "27.2.1.3"),
            (|s| s.entry_intr_info = (1 << 31) | (1 << 11) | (3 << 8) | 6, "VM-entry interruption information: deliver-error-code set for an event without an error code", "27.2.1.3"),
            (|s| { s.entry_intr_info = (1 << 31) | (1 << 11) | (3 << 8) | 13; s.entry_exception_error_code = 1 << 16 }, "VM-entry exception error code: bits 31:16 not 0", "27.2.1.3"),
            (|s| s.entry_intr_info = (1 << 31) | (1 << 12) | (3 << 8) | 6, "VM-entry interruption information: reserved bits 30:12 not 0", "27.2.1.3"),
            (|s| { s.entry_intr_info = (1 << 31) | (4 << 8) | 0x80; s.entry_instruction_len = 16 }, "VM-entry instruction length out of range for a software event", "27.2.1.3"),
            (|s| { s.entry_msr_load_count = 1; s.entry_msr_load_addr = 4 }, "VM-entry MSR-load address not 16-byte aligned", "27.2.1.3"),
            // 27.2.2
            (|s| s.host_cr0 &= !(1 << 5), "host CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear", "27.2.2"),
            (|s| s.host_cr4 &= !(1 << 13), "host CR4: violates IA32_VMX_CR4_FIXED0/FIXED1", "27.2.2"),
            (|s| s.host_cr3 = 1 << 41, "host CR3: bits beyond the physical-address width are set", "27.2.2"),
            (|s| s.host_sysenter_esp = 1 << 47, "host IA32_SYSENTER_ESP not canonical", "27.2.2"),
            (|s| s.host_sysenter_eip = 1 << 50, "host IA32_SYSENTER_EIP not canonical", "27.2.2"),
            (|s| s.host_efer &= !(1 << 10), "host IA32_EFER: LMA/LME differ from \"host address-space size\"", "27.2.2"),
            (|s| s.host_efer |= 1 << 2, "host IA32_EFER: reserved bits set", "27.2.2"),
            (|s| s.host_pat = 2, "host IA32_PAT: an entry is not a valid memory type", "27.2.2"),
            // 27.2.3
            (|s| s.host_cs |= 3, "host CS selector: RPL or TI not 0", "27.2.3"),
            (|s| s.host_ds |= 4, "host DS selector: RPL or TI not 0", "27.2.3"),
            (|s| s.host_tr |= 1, "host TR selector: RPL or TI not 0", "27.2.3"),
            (|s| s.host_cs = 0, "host CS selector is 0", "27.2.3"),
            (|s| s.host_tr = 0, "host TR selector is 0", "27.2.3"),
            (|s| s.host_gs_base = 1 << 48, "host GS base not canonical", "27.2.3"),
            (|s| s.host_idtr_base = 0x8000_0000_0000_0000, "host IDTR base not canonical", "27.2.3"),
            // 27.2.4
            (|s| s.host_cr4 &= !CR4_PAE, "host CR4.PAE clear with a 64-bit host", "27.2.4"),
            (|s| s.host_rip = 0x0000_8000_0000_0000, "host RIP not canonical", "27.2.4"),
            // 27.3.1.1
            (|s| s.guest_cr0 &= !(1 << 5), "guest CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear", "27.3.1.1"),
            (|s| s.guest_cr0 &= !CR0_PE, "guest CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear", "27.3.1.1"),
            (|s| s.guest_cr4 &= !(1 << 13), "guest CR4: violates IA32_VMX_CR4_FIXED0/FIXED1", "27.3.1.1"),
            (|s| s.guest_cr4 &= !CR4_PAE, "\"IA-32e mode guest\" set but guest CR4.PAE clear", "27.3.1.1"),
            (|s| s.guest_cr3 = 1 << 45, "guest CR3: bits beyond the physical-address width are set", "27.3.1.1"),
            (|s| s.guest_dr7 = 1 << 32, "guest DR7: bits 63:32 not 0", "27.3.1.1"),
            (|s| s.guest_debugctl = 1 << 2, "guest IA32_DEBUGCTL: reserved bits set", "27.3.1.1"),
            (|s| s.guest_sysenter_esp = 1 << 63, "guest IA32_SYSENTER_ESP not canonical", "27.3.1.1"),
            (|s| s.guest_pat = 0x08, "guest IA32_PAT: an entry is not a valid memory type", "27.3.1.1"),
            (|s| s.guest_efer &= !(1 << 10), "guest IA32_EFER.LMA differs from \"IA-32e mode guest\"", "27.3.1.1"),
            (|s| s.guest_efer &= !(1 << 8), "guest IA32_EFER: LMA differs from LME while CR0.PG is set", "27.3.1.1"),
            (|s| s.guest_efer |= 1 << 9, "guest IA32_EFER: reserved bits set", "27.3.1.1"),
            // 27.3.1.2
            (|s| s.guest_tr.selector |= 4, "guest TR selector: TI flag set", "27.3.1.2"),
            (|s| { s.guest_ldtr.access = 0x82; s.guest_ldtr.selector = 0x24 }, "guest LDTR selector: TI flag set", "27.3.1.2"),
            (|s| s.guest_ss.selector |= 3, "guest SS selector RPL differs from CS selector RPL", "27.3.1.2"),
            (|s| s.guest_tr.base = 1 << 47, "guest TR base not canonical", "27.3.1.2"),
            (|s| s.guest_fs.base = 1 << 47, "guest FS base not canonical", "27.3.1.2"),
            (|s| s.guest_gs.base = 1 << 47, "guest GS base not canonical", "27.3.1.2"),
            (|s| s.guest_cs.base = 1 << 32, "guest CS base bits 63:32 not 0", "27.3.1.2"),
            (|s| s.guest_ds.base = 1 << 32, "guest DS base bits 63:32 not 0", "27.3.1.2"),
            (|s| s.guest_cs.access &= !1, "guest CS access rights: type is not an accessed code segment (9, 11, 13, 15)", "27.3.1.2"),
            (|s| s.guest_cs.access &= !ar::S, "guest CS access rights: S (descriptor type) clear", "27.3.1.2"),
            (|s| s.guest_cs.access |= 3 << 5, "guest CS access rights: non-conforming code DPL differs from SS DPL", "27.3.1.2"),
            (|s| s.guest_cs.access &= !ar::P, "guest CS access rights: P (present) clear", "27.3.1.2"),
            (|s| s.guest_cs.access |= 1 << 8, "guest CS access rights: reserved bits set", "27.3.1.2"),
            (|s| s.guest_cs.access |= ar::DB, "guest CS access rights: both L and D/B set in IA-32e mode", "27.3.1.2"),
            (|s| s.guest_cs.limit = 0xfff0_0000, "guest CS: limit and G (granularity) inconsistent", "27.3.1.2"),
            (|s| s.guest_ss.access = (s.guest_ss.access & !0xf) | 1, "guest SS access rights: type is not a read/write accessed data segment (3, 7)", "27.3.1.2"),
            (|s| s.guest_ss.access &= !ar::P, "guest SS access rights: P (present) clear", "27.3.1.2"),
            (|s| { s.guest_ss.access |= 3 << 5; s.guest_cs.access = (s.guest_cs.access & !0xf) | 15 }, "guest SS access rights: DPL differs from the SS selector's RPL", "27.3.1.2"),
            (|s| s.guest_ds.access &= !1, "guest DS access rights: not accessed, or an unreadable code segment", "27.3.1.2"),
            (|s| s.guest_es.access = (s.guest_es.access & !0xf) | 9, "guest ES access rights: not accessed, or an unreadable code segment", "27.3.1.2"),
            (|s| s.guest_fs.access &= !ar::S, "guest FS access rights: S (descriptor type) clear", "27.3.1.2"),
            (|s| s.guest_gs.selector |= 3, "guest GS access rights: DPL below the selector's RPL", "27.3.1.2"),
            (|s| s.guest_gs.access &= !ar::P, "guest GS access rights: P (present) clear", "27.3.1.2"),
            (|s| s.guest_ds.access |= 1 << 20, "guest DS access rights: reserved bits set", "27.3.1.2"),
            (|s| s.guest_es.limit = 0xffff_f000, "guest ES: limit and G (granularity) inconsistent", "27.3.1.2"),
            (|s| s.guest_tr.access = (s.guest_tr.access & !0xf) | 9, "guest TR access rights: type is not a busy 64-bit TSS (11) in IA-32e mode", "27.3.1.2"),
            (|s| s.guest_tr.access |= ar::S, "guest TR access rights: S (descriptor type) set", "27.3.1.2"),
            (|s| s.guest_tr.access &= !ar::P, "guest TR access rights: P (present) clear", "27.3.1.2"),
            (|s| s.guest_tr.limit = 0x10_0000, "guest TR: limit and G (granularity) inconsistent", "27.3.1.2"),
            (|s| s.guest_tr.access |= ar::UNUSABLE, "guest TR is marked unusable", "27.3.1.2"),
            (|s| s.guest_ldtr.access = 0x83, "guest LDTR access rights: type is not LDT (2)", "27.3.1.2"),
            (|s| s.guest_ldtr.access = 0x02, "guest LDTR access rights: P (present) clear", "27.3.1.2"),
            // 27.3.1.3
            (|s| s.guest_gdtr_base = 1 << 47, "guest GDTR base not canonical", "27.3.1.3"),
            (|s| s.guest_idtr_base = 1 << 47, "guest IDTR base not canonical", "27.3.1.3"),
            (|s| s.guest_gdtr_limit = 0x10000, "guest GDTR limit bits 31:16 not 0", "27.3.1.3"),
            (|s| s.guest_idtr_limit = 0x10000, "guest IDTR limit bits 31:16 not 0", "27.3.1.3"),
            // 27.3.1.4
            (|s| s.guest_rip = 0x0000_8000_0000_0000, "guest RIP not canonical (64-bit code)", "27.3.1.4"),
            (|s| s.guest_rflags |= 1 << 3, "guest RFLAGS: reserved bits (63:22, 15, 5, 3) set", "27.3.1.4"),
            (|s| s.guest_rflags |= 1 << 22, "guest RFLAGS: reserved bits (63:22, 15, 5, 3) set", "27.3.1.4"),
            (|s| s.guest_rflags = 0, "guest RFLAGS: reserved bit 1 clear", "27.3.1.4"),
            (|s| s.guest_rflags |= RFLAGS_VM, "guest RFLAGS.VM set in IA-32e mode or with CR0.PE clear", "27.3.1.4"),
            (|s| s.entry_intr_info = (1 << 31) | 0x30, "guest RFLAGS.IF clear while injecting an external interrupt", "27.3.1.4"),
            // 27.3.1.5
            (|s| s.activity_state = 4, "guest activity state not supported (IA32_VMX_MISC[8:6])", "27.3.1.5"),
            (|s| { s.activity_state = activity::HLT; s.interruptibility = 2 }, "guest activity state not active while blocking by STI or MOV SS", "27.3.1.5"),
            (|s| s.interruptibility = 1 << 5, "guest interruptibility state: reserved bits (31:4) set", "27.3.1.5"),
            (|s| { s.interruptibility = 3; s.guest_rflags |= RFLAGS_IF }, "guest interruptibility state: blocking by STI and by MOV SS both set", "27.3.1.5"),
            (|s| s.interruptibility = 1, "guest interruptibility state: blocking by STI with RFLAGS.IF clear", "27.3.1.5"),
            (|s| { s.interruptibility = 1; s.guest_rflags |= RFLAGS_IF; s.entry_intr_info = (1 << 31) | 0x30 }, "guest interruptibility state: STI/MOV SS blocking while injecting an external interrupt", "27.3.1.5"),
            (|s| { s.interruptibility = 2; s.entry_intr_info = (1 << 31) | (2 << 8) | 2 }, "guest interruptibility state: MOV SS blocking while injecting an NMI", "27.3.1.5"),
            (|s| s.interruptibility = 4, "guest interruptibility state: blocking by SMI set outside SMM", "27.3.1.5"),
            (|s| s.pending_dbg = 1 << 4, "guest pending debug exceptions: reserved bits set", "27.3.1.5"),
            (|s| { s.interruptibility = 2; s.guest_rflags |= RFLAGS_TF }, "guest pending debug exceptions: BS clear with RFLAGS.TF set and DEBUGCTL.BTF clear while blocked/halted", "27.3.1.5"),
            (|s| { s.activity_state = activity::HLT; s.pending_dbg = 1 << 14 }, "guest pending debug exceptions: BS set with RFLAGS.TF clear or DEBUGCTL.BTF set while blocked/halted", "27.3.1.5"),
            (|s| s.link_pointer = 0x1000, "VMCS link pointer is not FFFFFFFF_FFFFFFFFH and Keel provides no linked VMCS", "27.3.1.5"),
        ];
        let caps = model("corei7_skylake_x").caps();
        for (mutate, what, section) in cases {
            let mut s = good(&caps);
            mutate(&mut s);
            let err = check_vm_entry(&s, &caps).expect_err(what);
            assert_eq!((err.what, err.section), (*what, *section));
            assert!(err.to_string().contains(&std::format!("SDM {section}")));
        }
    }

    #[test]
    fn guest_mode_mismatches() {
        let caps = model("corei7_skylake_x").caps();
        // IA-32e guest with paging off: the fixed-0 PG bit catches it first; with a
        // hypothetical CPU that frees PG, the IA-32e rule still does.
        let mut caps_free = caps;
        caps_free.cr0_fixed0 &= !CR0_PG;
        let mut s = good(&caps);
        s.guest_cr0 &= !CR0_PG;
        assert_eq!(
            check_vm_entry(&s, &caps).unwrap_err().what,
            "guest CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear"
        );
        assert_eq!(
            check_vm_entry(&s, &caps_free).unwrap_err().what,
            "\"IA-32e mode guest\" set but guest CR0.PG clear"
        );
        // PG without PE on that CPU.
        caps_free.cr0_fixed0 &= !CR0_PE;
        let mut s = good(&caps);
        s.guest_cr0 &= !CR0_PE;
        assert_eq!(
            check_vm_entry(&s, &caps_free).unwrap_err().what,
            "guest CR0: PG set but PE clear"
        );
    }

    #[test]
    fn penryn_without_efer_loading_passes_and_skips_efer_checks() {
        let caps = model("core2_penryn_t9600").caps();
        let mut s = good(&caps);
        s.guest_efer = 0xdead; // not loaded: not checked
        s.host_efer = 0xd01; // the CPU's current EFER
        assert_eq!(check_vm_entry(&s, &caps), Ok(()));
    }

    proptest! {
        /// Any random guest RFLAGS passes exactly when it satisfies the three rules.
        #[test]
        fn rflags_rule(rf in any::<u64>()) {
            let caps = model("corei7_skylake_x").caps();
            let mut s = good(&caps);
            s.guest_rflags = rf;
            let ok = rf & RFLAGS_RESERVED_ZERO == 0 && rf & 2 != 0 && rf & RFLAGS_VM == 0;
            let r = check_vm_entry(&s, &caps);
            if ok {
                // TF alone is harmless with no blocking; IF alone is harmless.
                prop_assert_eq!(r, Ok(()));
            } else {
                prop_assert_eq!(r.unwrap_err().section, "27.3.1.4");
            }
        }

        /// The checks never panic, whatever the state.
        #[test]
        fn never_panics(a in any::<u64>(), b in any::<u64>(), c in any::<u32>(), d in any::<u32>(), sel in any::<u16>()) {
            let caps = model("tigerlake").caps();
            let mut s = good(&caps);
            s.guest_cr0 = a; s.guest_cr4 = b; s.guest_cs.access = c; s.guest_tr.limit = d;
            s.guest_ss.selector = sel; s.entry_intr_info = c ^ d; s.exit_msr_load_count = d;
            s.exit_msr_load_addr = a; s.maxphyaddr = (b & 0x7f) as u8;
            let _ = check_vm_entry(&s, &caps);
        }

        /// Canonical iff sign-extension of bit 47.
        #[test]
        fn canonical(a in any::<u64>()) {
            prop_assert_eq!(is_canonical(a), ((a << 16) as i64 >> 16) as u64 == a);
        }
    }
}
