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
use super::control_bits::{
    EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use crate::arch::bits::{cr0, cr4, efer, rflags};

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
    pub pin: PinbasedControls,
    /// Primary processor-based VM-execution controls.
    pub proc: PrimaryControls,
    /// Secondary processor-based VM-execution controls.
    pub proc2: SecondaryControls,
    /// VM-exit controls.
    pub exit: ExitControls,
    /// VM-entry controls.
    pub entry: EntryControls,
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

/// The MSR fields the host-state (27.2.2) and guest-state (27.3.1.1) checks
/// share, in the same order for both: IA32_SYSENTER_ESP/EIP canonical; "load
/// IA32_PERF_GLOBAL_CTRL" clear (Keel provides no value); with "load IA32_PAT",
/// a valid PAT; with "load IA32_EFER", no reserved EFER bit. `$side` ("host" or
/// "guest") and `$control` ("exit" or "entry") name them in the failure.
macro_rules! check_shared_msrs {
    ($side:literal, $control:literal, $section:expr, $controls:expr, $ctl:ident,
     sysenter: ($esp:expr, $eip:expr), pat: $pat:expr, efer: $efer:expr) => {
        fail_if!(
            !is_canonical($esp),
            $section,
            concat!($side, " IA32_SYSENTER_ESP not canonical"),
            $esp
        );
        fail_if!(
            !is_canonical($eip),
            $section,
            concat!($side, " IA32_SYSENTER_EIP not canonical"),
            $eip
        );
        fail_if!(
            $controls.contains($ctl::LOAD_PERF_GLOBAL_CTRL),
            $section,
            concat!(
                $control,
                " \"load IA32_PERF_GLOBAL_CTRL\" set (Keel provides no value)"
            ),
            $controls.bits()
        );
        if $controls.contains($ctl::LOAD_PAT) {
            fail_if!(
                !pat_ok($pat),
                $section,
                concat!($side, " IA32_PAT: an entry is not a valid memory type"),
                $pat
            );
        }
        if $controls.contains($ctl::LOAD_EFER) {
            fail_if!(
                $efer & !EFER_DEFINED != 0,
                $section,
                concat!($side, " IA32_EFER: reserved bits set"),
                $efer
            );
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
const EFER_DEFINED: u64 = efer::SCE | efer::LME | efer::LMA | efer::NXE;
const EFER_LME: u64 = efer::LME;
const EFER_LMA: u64 = efer::LMA;
const CR0_PE: u64 = cr0::PE;
const CR0_PG: u64 = cr0::PG;
const CR4_PAE: u64 = cr4::PAE;
const CR4_PCIDE: u64 = cr4::PCIDE;
const RFLAGS_TF: u64 = rflags::TF;
const RFLAGS_IF: u64 = rflags::IF;
const RFLAGS_VM: u64 = rflags::VM;
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

/// The limit/granularity rule shared by every usable segment (SDM 27.3.1.2):
/// if any of limit[11:0] is 0, G must be 0; if any of limit[31:20] is 1, G must be 1.
const fn granularity_ok(seg: &Segment) -> bool {
    let g = seg.access & ar::G != 0;
    !((seg.limit & 0xfff != 0xfff && g) || (seg.limit & 0xfff0_0000 != 0 && !g))
}

// The checks by area (after `fail_if!`, which they use).
mod controls;
mod guest;
mod host;

pub use controls::{check_controls, exception_has_error_code, intr_type};
pub use guest::activity;
use guest::{
    check_guest_dt_rip_rflags, check_guest_nonreg, check_guest_regs, check_guest_segments,
};
pub use host::check_host;

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
/// CPU-dependent parts (controls, fixed bits) are filled in. Shared by `vmx::setup` and
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
mod tests;
