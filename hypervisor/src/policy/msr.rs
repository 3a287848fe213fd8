//! # MSRs: one table decides every RDMSR and WRMSR a guest executes
//!
//! On hardware an MSR either exists (and then checks its reserved bits) or raises
//! #GP(0). A Keel guest sees the same, with [`MSRS`] as its CPU's list of MSRs. Each
//! row is one of four kinds:
//!
//! - **Pass-through** ([`Kind::PassThrough`]): neither RDMSR nor WRMSR exits (the
//!   row's bits in the MSR bitmap are 0), so the CPU itself reads, writes and
//!   checks the MSR. That is only correct where the guest's value survives every
//!   exit. It does for MSRs VMX does not switch *and* the host never uses: Keel has
//!   no user mode, never executes SYSCALL, SWAPGS, RDTSCP or RDPID, so STAR, LSTAR,
//!   CSTAR, SFMASK, KERNEL_GS_BASE and TSC_AUX stay the guest's while Keel runs, and
//!   have no effect on the host. Keel gives each a defined value (0) before the
//!   domain's first instruction. FS_BASE and GS_BASE are also passed through: they
//!   are the VMCS's guest segment bases, saved on exit and loaded on entry
//!   (SDM 28.3.2, 27.3.2.2), so the host never runs on the guest's values.
//! - **Write-checked** ([`Kind::WriteChecked`]): reads do not exit; writes exit so
//!   that Keel checks the reserved bits itself (#GP(0)) and then writes the
//!   register. IA32_FMASK: its reserved bits 63:32 are checked by the CPU's WRMSR,
//!   but a hypervisor beneath Keel may intercept a pass-through write and not
//!   check them (KVM keeps the value in its user-return MSR cache and writes the
//!   register with `wrmsrl_safe`, so the result is whatever the CPU under KVM
//!   does). Checking in Keel makes the rule the same on every platform.
//! - **Read-through** ([`Kind::ReadThrough`]): reads do not exit, writes do and are
//!   refused. IA32_TSC: the guest reads the host's TSC (no offsetting), and may not
//!   move it.
//! - **VMCS-managed** ([`Kind::Vmcs`]): the MSR lives in the VMCS guest-state area
//!   and is switched on entry and exit (EFER, PAT, SYSENTER_*, DEBUGCTL). Accesses
//!   exit; reads return the field, writes are validated ([`Check`]) and stored in
//!   the field.
//! - **Emulated** ([`Kind::Emulated`]): a value Keel makes up for a virtual CPU that
//!   has one logical processor, no VMX, no APIC reachable, no microcode loading and
//!   write-back memory everywhere. Writes are refused (#GP(0)), accepted only if they
//!   leave the value unchanged, or ignored, per [`Write`].
//!
//! Every other index raises #GP(0) on read and write, as hardware does for an MSR
//! that does not exist (the VMX capability MSRs included: VMX is hidden).
//!
//! The table is also the source of the MSR bitmap ([`bitmap_passes`]) and of
//! `docs/abi/msr.md` (the test-only `markdown` module). Everything here is pure; the exit handler
//! performs the [`ReadOp`]/[`WriteOp`] the policy returns.

use crate::vmx::checks::is_canonical;

/// An MSR the VMCS holds in its guest-state area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmcsMsr {
    /// IA32_EFER (with "load/save IA32_EFER").
    Efer,
    /// IA32_PAT (with "load/save IA32_PAT").
    Pat,
    /// IA32_SYSENTER_CS (32-bit field).
    SysenterCs,
    /// IA32_SYSENTER_ESP.
    SysenterEsp,
    /// IA32_SYSENTER_EIP.
    SysenterEip,
    /// IA32_DEBUGCTL (with "save/load debug controls").
    DebugCtl,
    /// IA32_FS_BASE (the FS segment base).
    FsBase,
    /// IA32_GS_BASE (the GS segment base).
    GsBase,
}

/// How a written value is validated (reserved bits raise #GP(0)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Any 64-bit value.
    Any,
    /// A canonical address.
    Canonical,
    /// Bits 63:32 reserved.
    Low32,
    /// IA32_EFER: SCE may change; LME must stay 1 (paging is always on); LMA is
    /// read-only (a written LMA is ignored, as on hardware); NXE must stay as the
    /// domain was built (Keel's own page walks depend on it); every other bit is
    /// reserved.
    Efer,
    /// IA32_PAT: each byte a valid memory type (0, 1, 4, 5, 6, 7).
    Pat,
    /// IA32_DEBUGCTL: only BTF (bit 1); LBR, BTS and the PMU freeze bits belong to
    /// the host.
    DebugCtl,
}

/// How a write to an emulated MSR is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Always #GP(0) (read-only on hardware, or locked).
    Refuse,
    /// Accepted if it writes the current value (an idempotent boot-time write);
    /// any change is #GP(0).
    SameValue,
    /// Accepted and ignored.
    Ignore,
}

/// Where an emulated MSR's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// A constant.
    Const(u64),
    /// IA32_PLATFORM_INFO, from the host's base frequency ([`MsrEnv::platform_info`]).
    PlatformInfo,
}

/// When a row exists at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Always.
    Always,
    /// Only when the guest may execute RDTSCP (TSC_AUX exists with RDTSCP/RDPID).
    Rdtscp,
}

/// What kind of MSR a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Reads and writes do not exit; `initial` is its value at the guest's first
    /// instruction. `check` is what the CPU checks (applied by Keel only on a CPU
    /// without MSR bitmaps, where every access exits).
    PassThrough {
        /// Value at domain start.
        initial: u64,
        /// Validation of writes.
        check: Check,
    },
    /// Reads and writes do not exit; the MSR is a VMCS guest field switched on
    /// entry/exit (FS/GS base).
    VmcsPassThrough(VmcsMsr, Check),
    /// Reads do not exit; writes exit, are validated by Keel and written to
    /// the register (not switched by VMX, unused by Keel, like `PassThrough`).
    WriteChecked {
        /// Value at domain start.
        initial: u64,
        /// Validation of writes.
        check: Check,
    },
    /// Reads do not exit (the host's value); writes exit and raise #GP(0).
    ReadThrough,
    /// Accesses exit; the value is a VMCS guest field.
    Vmcs(VmcsMsr, Check),
    /// Accesses exit; Keel's value.
    Emulated(Value, Write),
}

/// One MSR of the guest's CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msr {
    /// Its index (ECX).
    pub index: u32,
    /// The SDM's name.
    pub name: &'static str,
    /// What it is.
    pub kind: Kind,
    /// When it exists.
    pub needs: Needs,
    /// Why, for the documentation.
    pub why: &'static str,
}

/// MSR indices used by the policy and the exit handler.
pub mod index {
    /// IA32_TSC.
    pub const TSC: u32 = 0x10;
    /// IA32_APIC_BASE.
    pub const APIC_BASE: u32 = 0x1b;
    /// IA32_FEATURE_CONTROL.
    pub const FEATURE_CONTROL: u32 = 0x3a;
    /// IA32_BIOS_SIGN_ID (microcode revision).
    pub const BIOS_SIGN_ID: u32 = 0x8b;
    /// MSR_PLATFORM_INFO.
    pub const PLATFORM_INFO: u32 = 0xce;
    /// IA32_MTRRCAP.
    pub const MTRRCAP: u32 = 0xfe;
    /// IA32_SYSENTER_CS.
    pub const SYSENTER_CS: u32 = 0x174;
    /// IA32_SYSENTER_ESP.
    pub const SYSENTER_ESP: u32 = 0x175;
    /// IA32_SYSENTER_EIP.
    pub const SYSENTER_EIP: u32 = 0x176;
    /// IA32_MISC_ENABLE.
    pub const MISC_ENABLE: u32 = 0x1a0;
    /// IA32_DEBUGCTL.
    pub const DEBUGCTL: u32 = 0x1d9;
    /// IA32_PAT.
    pub const PAT: u32 = 0x277;
    /// IA32_MTRR_DEF_TYPE.
    pub const MTRR_DEF_TYPE: u32 = 0x2ff;
    /// IA32_EFER.
    pub const EFER: u32 = 0xc000_0080;
    /// IA32_STAR.
    pub const STAR: u32 = 0xc000_0081;
    /// IA32_LSTAR.
    pub const LSTAR: u32 = 0xc000_0082;
    /// IA32_CSTAR.
    pub const CSTAR: u32 = 0xc000_0083;
    /// IA32_FMASK (SFMASK).
    pub const SFMASK: u32 = 0xc000_0084;
    /// IA32_FS_BASE.
    pub const FS_BASE: u32 = 0xc000_0100;
    /// IA32_GS_BASE.
    pub const GS_BASE: u32 = 0xc000_0101;
    /// IA32_KERNEL_GS_BASE.
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    /// IA32_TSC_AUX.
    pub const TSC_AUX: u32 = 0xc000_0103;
}

/// EFER bits.
pub mod efer {
    /// SYSCALL enable.
    pub const SCE: u64 = 1 << 0;
    /// Long mode enable.
    pub const LME: u64 = 1 << 8;
    /// Long mode active.
    pub const LMA: u64 = 1 << 10;
    /// No-execute enable.
    pub const NXE: u64 = 1 << 11;
}

/// The virtual APIC base: the default address 0xFEE0_0000, BSP (bit 8), and the
/// APIC globally disabled (bit 11 clear): the guest has no APIC it could reach
/// (CPUID.1:EDX.APIC is 0), and a kernel that probes anyway learns it is off.
pub const APIC_BASE_VALUE: u64 = 0xfee0_0000 | (1 << 8);
/// FEATURE_CONTROL: locked (bit 0), VMX off inside and outside SMX: exactly what
/// a guest of a CPU without VMX sees from firmware that locked it.
pub const FEATURE_CONTROL_VALUE: u64 = 1;
/// MISC_ENABLE: fast strings (bit 0), BTS unavailable (11), PEBS unavailable (12).
/// No Enhanced SpeedStep, no MONITOR FSM, no CPUID limit, XD not disabled.
pub const MISC_ENABLE_VALUE: u64 = (1 << 0) | (1 << 11) | (1 << 12);
/// The microcode revision Keel reports (BIOS_SIGN_ID bits 63:32): the virtual CPU
/// has no microcode of its own to update.
pub const MICROCODE_REVISION: u32 = 1;
/// MTRRCAP: fixed-range MTRRs (bit 8), no variable ranges, no write-combining, no
/// SMRR: the smallest MTRR set a kernel accepts.
pub const MTRRCAP_VALUE: u64 = 1 << 8;
/// MTRR_DEF_TYPE: MTRRs and fixed ranges enabled (bits 11, 10), default type WB.
pub const MTRR_DEF_TYPE_VALUE: u64 = (1 << 11) | (1 << 10) | 6;
/// Every fixed-range MTRR: eight write-back ranges.
pub const MTRR_FIXED_WB: u64 = 0x0606_0606_0606_0606;

const fn row(index: u32, name: &'static str, kind: Kind, why: &'static str) -> Msr {
    Msr {
        index,
        name,
        kind,
        needs: Needs::Always,
        why,
    }
}

const fn mtrr_fixed(index: u32, name: &'static str) -> Msr {
    row(
        index,
        name,
        Kind::Emulated(Value::Const(MTRR_FIXED_WB), Write::SameValue),
        "fixed-range MTRR: write-back (read-only set)",
    )
}

/// The guest CPU's MSRs, sorted by index. Everything else raises #GP(0).
pub const MSRS: &[Msr] = &[
    row(index::TSC, "IA32_TSC", Kind::ReadThrough,
        "the host's TSC, no offsetting (RDTSC does not exit either); the guest may not move it"),
    row(index::APIC_BASE, "IA32_APIC_BASE", Kind::Emulated(Value::Const(APIC_BASE_VALUE), Write::SameValue),
        "default base, BSP, APIC disabled: the guest has no APIC (CPUID hides it)"),
    row(index::FEATURE_CONTROL, "IA32_FEATURE_CONTROL", Kind::Emulated(Value::Const(FEATURE_CONTROL_VALUE), Write::Refuse),
        "locked with VMX off (VMX is hidden); locked, so every write faults"),
    row(index::BIOS_SIGN_ID, "IA32_BIOS_SIGN_ID", Kind::Emulated(Value::Const((MICROCODE_REVISION as u64) << 32), Write::Ignore),
        "microcode revision 1 in bits 63:32; the write of 0 that precedes CPUID(1) in the revision protocol is accepted"),
    row(index::PLATFORM_INFO, "MSR_PLATFORM_INFO", Kind::Emulated(Value::PlatformInfo, Write::Refuse),
        "maximum non-turbo ratio (bits 15:8) from the host's CPUID base frequency (leaf 0x16, 100 MHz bus), 0 if unknown; read-only"),
    row(index::MTRRCAP, "IA32_MTRRCAP", Kind::Emulated(Value::Const(MTRRCAP_VALUE), Write::Refuse),
        "fixed-range MTRRs only, no variable ranges, no WC, no SMRR; read-only"),
    row(index::SYSENTER_CS, "IA32_SYSENTER_CS", Kind::Vmcs(VmcsMsr::SysenterCs, Check::Low32),
        "VMCS guest field, switched on entry/exit"),
    row(index::SYSENTER_ESP, "IA32_SYSENTER_ESP", Kind::Vmcs(VmcsMsr::SysenterEsp, Check::Canonical),
        "VMCS guest field, switched on entry/exit"),
    row(index::SYSENTER_EIP, "IA32_SYSENTER_EIP", Kind::Vmcs(VmcsMsr::SysenterEip, Check::Canonical),
        "VMCS guest field, switched on entry/exit"),
    row(index::MISC_ENABLE, "IA32_MISC_ENABLE", Kind::Emulated(Value::Const(MISC_ENABLE_VALUE), Write::SameValue),
        "fast strings on, BTS/PEBS unavailable, no SpeedStep, no MONITOR FSM"),
    row(index::DEBUGCTL, "IA32_DEBUGCTL", Kind::Vmcs(VmcsMsr::DebugCtl, Check::DebugCtl),
        "VMCS guest field (save/load debug controls); only BTF may be set"),
    mtrr_fixed(0x250, "IA32_MTRR_FIX64K_00000"),
    mtrr_fixed(0x258, "IA32_MTRR_FIX16K_80000"),
    mtrr_fixed(0x259, "IA32_MTRR_FIX16K_A0000"),
    mtrr_fixed(0x268, "IA32_MTRR_FIX4K_C0000"),
    mtrr_fixed(0x269, "IA32_MTRR_FIX4K_C8000"),
    mtrr_fixed(0x26a, "IA32_MTRR_FIX4K_D0000"),
    mtrr_fixed(0x26b, "IA32_MTRR_FIX4K_D8000"),
    mtrr_fixed(0x26c, "IA32_MTRR_FIX4K_E0000"),
    mtrr_fixed(0x26d, "IA32_MTRR_FIX4K_E8000"),
    mtrr_fixed(0x26e, "IA32_MTRR_FIX4K_F0000"),
    mtrr_fixed(0x26f, "IA32_MTRR_FIX4K_F8000"),
    row(index::PAT, "IA32_PAT", Kind::Vmcs(VmcsMsr::Pat, Check::Pat),
        "VMCS guest field (load/save IA32_PAT); each entry a valid memory type"),
    row(index::MTRR_DEF_TYPE, "IA32_MTRR_DEF_TYPE", Kind::Emulated(Value::Const(MTRR_DEF_TYPE_VALUE), Write::SameValue),
        "MTRRs enabled, fixed ranges enabled, default type write-back (read-only set)"),
    row(index::EFER, "IA32_EFER", Kind::Vmcs(VmcsMsr::Efer, Check::Efer),
        "VMCS guest field (load/save IA32_EFER); SCE writable, LME fixed (paging is on), LMA read-only, NXE fixed"),
    row(index::STAR, "IA32_STAR", Kind::PassThrough { initial: 0, check: Check::Any },
        "not switched by VMX, unused by Keel (no SYSCALL in the host)"),
    row(index::LSTAR, "IA32_LSTAR", Kind::PassThrough { initial: 0, check: Check::Canonical },
        "not switched by VMX, unused by Keel"),
    row(index::CSTAR, "IA32_CSTAR", Kind::PassThrough { initial: 0, check: Check::Canonical },
        "not switched by VMX, unused by Keel"),
    row(index::SFMASK, "IA32_FMASK", Kind::WriteChecked { initial: 0, check: Check::Low32 },
        "not switched by VMX, unused by Keel; writes are checked by Keel, not left to the CPU (a hypervisor beneath Keel may intercept them and skip the check)"),
    row(index::FS_BASE, "IA32_FS_BASE", Kind::VmcsPassThrough(VmcsMsr::FsBase, Check::Canonical),
        "the VMCS guest FS base, switched on entry/exit"),
    row(index::GS_BASE, "IA32_GS_BASE", Kind::VmcsPassThrough(VmcsMsr::GsBase, Check::Canonical),
        "the VMCS guest GS base, switched on entry/exit"),
    row(index::KERNEL_GS_BASE, "IA32_KERNEL_GS_BASE", Kind::PassThrough { initial: 0, check: Check::Canonical },
        "not switched by VMX; Keel never executes SWAPGS"),
    Msr {
        index: index::TSC_AUX,
        name: "IA32_TSC_AUX",
        kind: Kind::WriteChecked { initial: 0, check: Check::Low32 },
        needs: Needs::Rdtscp,
        why: "not switched by VMX; Keel never executes RDTSCP/RDPID; exists only when RDTSCP is enabled; writes are checked by Keel (an emulated CPU beneath Keel may drop bits 63:32 instead of raising #GP(0))",
    },
];

/// Facts about this vCPU the policy depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsrEnv {
    /// "Enable RDTSCP" is set (TSC_AUX exists).
    pub rdtscp: bool,
    /// EFER is switched by the VMCS; otherwise the guest runs on the host's EFER
    /// and a write may change only SCE, in the host's register.
    pub load_efer: bool,
    /// PAT is switched by the VMCS; otherwise no write may change it.
    pub load_pat: bool,
    /// DEBUGCTL is switched by the VMCS ("save/load debug controls"); otherwise
    /// only 0 may be written.
    pub debug_controls: bool,
    /// What MSR_PLATFORM_INFO reads.
    pub platform_info: u64,
}

impl MsrEnv {
    /// MSR_PLATFORM_INFO from the host's CPUID leaf 0x16 EAX (base frequency in
    /// MHz; 0 if the leaf does not exist): ratio = MHz / 100 in bits 15:8.
    pub fn platform_info_from_base_mhz(mhz: u32) -> u64 {
        u64::from((mhz / 100).min(0xff)) << 8
    }
}

/// The refusal: #GP(0) in the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpFault;

/// What the exit handler does for an RDMSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOp {
    /// Return this value.
    Value(u64),
    /// Return this VMCS guest field.
    Vmcs(VmcsMsr),
    /// Return the host MSR of the same index (a pass-through MSR, on a CPU where
    /// the access exited anyway, or EFER/PAT without VMCS switching).
    Host,
}

/// What the exit handler does for a WRMSR the policy accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Store into this VMCS guest field.
    Vmcs(VmcsMsr, u64),
    /// Write the host MSR of the same index (pass-through MSR whose access exited).
    Host(u64),
    /// Nothing to do.
    Ignore,
}

/// The row for `index`, if the guest's CPU has that MSR.
pub fn lookup(index: u32, env: &MsrEnv) -> Option<&'static Msr> {
    let i = MSRS.binary_search_by_key(&index, |m| m.index).ok()?;
    let m = MSRS.get(i)?;
    match m.needs {
        Needs::Always => Some(m),
        Needs::Rdtscp if env.rdtscp => Some(m),
        Needs::Rdtscp => None,
    }
}

/// The RDMSR policy.
pub fn read(index: u32, env: &MsrEnv) -> Result<ReadOp, GpFault> {
    let m = lookup(index, env).ok_or(GpFault)?;
    Ok(match m.kind {
        Kind::PassThrough { .. } | Kind::WriteChecked { .. } | Kind::ReadThrough => ReadOp::Host,
        Kind::VmcsPassThrough(f, _) => ReadOp::Vmcs(f),
        Kind::Vmcs(VmcsMsr::Efer, _) if !env.load_efer => ReadOp::Host,
        Kind::Vmcs(VmcsMsr::Pat, _) if !env.load_pat => ReadOp::Host,
        Kind::Vmcs(VmcsMsr::DebugCtl, _) if !env.debug_controls => ReadOp::Value(0),
        Kind::Vmcs(f, _) => ReadOp::Vmcs(f),
        Kind::Emulated(Value::Const(v), _) => ReadOp::Value(v),
        Kind::Emulated(Value::PlatformInfo, _) => ReadOp::Value(env.platform_info),
    })
}

/// Whether `value` passes `check` for a write over `current`.
fn valid(check: Check, value: u64, current: u64) -> bool {
    match check {
        Check::Any => true,
        Check::Canonical => is_canonical(value),
        Check::Low32 => value >> 32 == 0,
        Check::Efer => {
            let writable = efer::SCE | efer::LME | efer::LMA | efer::NXE;
            value & !writable == 0
                && value & efer::LME == current & efer::LME
                && value & efer::NXE == current & efer::NXE
        }
        Check::Pat => value
            .to_le_bytes()
            .iter()
            .all(|&t| matches!(t, 0 | 1 | 4 | 5 | 6 | 7)),
        Check::DebugCtl => value & !(1 << 1) == 0,
    }
}

/// The WRMSR policy. `current` gives the value the guest would read now (called
/// only when the decision depends on it).
pub fn write(
    index: u32,
    value: u64,
    current: impl FnOnce() -> u64,
    env: &MsrEnv,
) -> Result<WriteOp, GpFault> {
    let m = lookup(index, env).ok_or(GpFault)?;
    match m.kind {
        Kind::PassThrough { check, .. } | Kind::WriteChecked { check, .. } => {
            if valid(check, value, 0) {
                Ok(WriteOp::Host(value))
            } else {
                Err(GpFault)
            }
        }
        Kind::ReadThrough => Err(GpFault),
        Kind::VmcsPassThrough(f, check) | Kind::Vmcs(f, check) => {
            let cur = current();
            if !valid(check, value, cur) {
                return Err(GpFault);
            }
            // LMA is read-only: keep the current one.
            let value = match f {
                VmcsMsr::Efer => (value & !efer::LMA) | (cur & efer::LMA),
                _ => value,
            };
            let switched = match f {
                VmcsMsr::Efer => env.load_efer,
                VmcsMsr::Pat => env.load_pat,
                VmcsMsr::DebugCtl => env.debug_controls,
                _ => true,
            };
            if switched {
                Ok(WriteOp::Vmcs(f, value))
            } else if f == VmcsMsr::Efer {
                // The guest runs on the host's EFER. The check above leaves only
                // SCE free to change, and the host never executes SYSCALL, so the
                // guest may flip it in the shared register.
                Ok(WriteOp::Host(value))
            } else if value == cur {
                // The guest shares the host's register: only a no-op write is safe.
                Ok(WriteOp::Ignore)
            } else {
                Err(GpFault)
            }
        }
        Kind::Emulated(v, w) => match w {
            Write::Refuse => Err(GpFault),
            Write::Ignore => Ok(WriteOp::Ignore),
            Write::SameValue => {
                let cur = match v {
                    Value::Const(c) => c,
                    Value::PlatformInfo => env.platform_info,
                };
                if value == cur {
                    Ok(WriteOp::Ignore)
                } else {
                    Err(GpFault)
                }
            }
        },
    }
}

/// For the MSR bitmap: every `(index, read passes, write passes)` whose access
/// does not exit. Every other bit of the bitmap is 1.
pub fn bitmap_passes(env: &MsrEnv) -> impl Iterator<Item = (u32, bool, bool)> + '_ {
    MSRS.iter().filter_map(move |m| {
        lookup(m.index, env)?;
        match m.kind {
            Kind::PassThrough { .. } | Kind::VmcsPassThrough(..) => Some((m.index, true, true)),
            Kind::ReadThrough | Kind::WriteChecked { .. } => Some((m.index, true, false)),
            _ => None,
        }
    })
}

/// Where `index`'s bit is in the 4-KiB MSR bitmap (SDM 25.6.9): `(byte, bit)`, or
/// `None` for an index outside the two ranges the bitmap covers (such accesses
/// always exit).
pub fn bitmap_position(index: u32, write: bool) -> Option<(usize, u8)> {
    let (base, off) = match index {
        0..=0x1fff => (0, index),
        0xc000_0000..=0xc000_1fff => (1024, index - 0xc000_0000),
        _ => return None,
    };
    let base = base + if write { 2048 } else { 0 };
    Some((base + (off / 8) as usize, (off % 8) as u8))
}

/// The pass-through MSRs to reset before a domain's first instruction, with their
/// initial values (they keep whatever was last written otherwise).
pub fn initial_values(env: &MsrEnv) -> impl Iterator<Item = (u32, u64)> + '_ {
    MSRS.iter().filter_map(move |m| match m.kind {
        Kind::PassThrough { initial, .. } | Kind::WriteChecked { initial, .. } => {
            lookup(m.index, env).map(|_| (m.index, initial))
        }
        _ => None,
    })
}

/// `docs/abi/msr.md`, generated from [`MSRS`].
#[cfg(test)]
pub mod markdown {
    extern crate std;
    use super::*;
    use std::fmt::Write as _;
    use std::string::String;

    fn kind(k: &Kind) -> String {
        match k {
            Kind::PassThrough { initial, check } => {
                std::format!(
                    "pass-through (no exit); starts at {initial:#x}; {}",
                    check_name(*check)
                )
            }
            Kind::VmcsPassThrough(_, c) => {
                std::format!("pass-through (no exit), VMCS-switched; {}", check_name(*c))
            }
            Kind::WriteChecked { initial, check } => std::format!(
                "read: no exit; write: exits, checked by Keel ({}), then written; starts at {initial:#x}",
                check_name(*check)
            ),
            Kind::ReadThrough => String::from("read: host value, no exit; write: #GP(0)"),
            Kind::Vmcs(_, c) => std::format!("VMCS-managed (exits); {}", check_name(*c)),
            Kind::Emulated(v, w) => std::format!(
                "emulated: reads {}; writes {}",
                match v {
                    Value::Const(c) => std::format!("`{c:#x}`"),
                    Value::PlatformInfo => String::from("the host's base ratio << 8"),
                },
                match w {
                    Write::Refuse => "#GP(0)",
                    Write::SameValue => "of the same value accepted, else #GP(0)",
                    Write::Ignore => "ignored",
                }
            ),
        }
    }

    fn check_name(c: Check) -> &'static str {
        match c {
            Check::Any => "any value",
            Check::Canonical => "non-canonical: #GP(0)",
            Check::Low32 => "bits 63:32 reserved: #GP(0)",
            Check::Efer => "reserved bits, LME or NXE change: #GP(0); LMA ignored; without EFER switching the write (SCE only) goes to the shared host register",
            Check::Pat => "invalid memory type: #GP(0)",
            Check::DebugCtl => "any bit but BTF: #GP(0)",
        }
    }

    /// The whole page.
    pub fn page() -> String {
        let mut s = String::from(
            "# MSRs: what RDMSR and WRMSR do in a Keel guest\n\n\
<!-- GENERATED by `hypervisor/src/policy/msr.rs` (the table `MSRS`). Do not edit: change the\n\
     table, then run `KEEL_POLICY_BLESS=1 cargo test -p keel-hypervisor policy_docs`. -->\n\n\
The guest's CPU has exactly the MSRs below. **Every other MSR raises #GP(0)** on\n\
RDMSR and WRMSR, as hardware does for an MSR that does not exist (the VMX\n\
capability MSRs included); a write with a reserved bit set raises #GP(0) too.\n\n\
- *Pass-through*: the access does not exit (its bits in the MSR bitmap are 0).\n  \
Only MSRs whose guest value survives every exit: VMX does not switch them and Keel\n  \
never uses them (no SYSCALL, SWAPGS, RDTSCP or RDPID in the host), or the VMCS\n  \
switches them (FS/GS base). They start at 0.\n\
- *Write-checked*: reads do not exit; a write exits and Keel applies the\n  \
reserved-bit rule itself before writing the register, so the rule holds even where\n  \
a hypervisor beneath Keel intercepts the write and would not check it.\n\
- *VMCS-managed*: the access exits; the value lives in the VMCS guest-state area\n  \
and is switched on every entry and exit. Without the VMCS controls that switch\n  \
EFER, PAT or DEBUGCTL, only a write of the current value is accepted.\n\
- *Emulated*: the access exits; Keel answers for a virtual CPU with one logical\n  \
processor, no VMX, no reachable APIC, and write-back memory.\n\n\
| MSR | Name | Policy | Why |\n|---|---|---|---|\n",
        );
        for m in MSRS {
            let _ = writeln!(
                s,
                "| `{:#x}` | {} | {}{} | {} |",
                m.index,
                m.name,
                kind(&m.kind),
                if m.needs == Needs::Rdtscp {
                    " (only with RDTSCP; else #GP(0))"
                } else {
                    ""
                },
                m.why
            );
        }
        s.push_str(
            "\n## Differences from Xen\n\n\
Xen builds an MSR policy per domain and, by default since Xen 4.15, raises #GP for\n\
an MSR outside it, as Keel does for every MSR not in the table above. The two\n\
lists are not the same: compare the table above, not Xen's `msr.c`. Xen PV\n\
kernels reach MSRs only through Xen's emulation of their faulting RDMSR/WRMSR;\n\
a Keel guest executes them at CPL0 and each one exits.\n",
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ENV: MsrEnv = MsrEnv {
        rdtscp: true,
        load_efer: true,
        load_pat: true,
        debug_controls: true,
        platform_info: 0x1a00,
    };
    const LONG: u64 = efer::SCE | efer::LME | efer::LMA | efer::NXE;

    #[test]
    fn table_sorted_unique() {
        for w in MSRS.windows(2) {
            assert!(w[0].index < w[1].index, "{} / {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn unknown_msrs_fault() {
        for i in [
            0,
            0x3b,
            0x480,
            0x48b,
            0x1a2,
            0x200,
            0x2fe,
            0xc000_0104,
            0xffff_ffff,
        ] {
            assert_eq!(read(i, &ENV), Err(GpFault), "{i:#x}");
            assert_eq!(write(i, 0, || 0, &ENV), Err(GpFault), "{i:#x}");
        }
    }

    #[test]
    fn emulated() {
        assert_eq!(read(index::FEATURE_CONTROL, &ENV), Ok(ReadOp::Value(1)));
        assert_eq!(write(index::FEATURE_CONTROL, 1, || 0, &ENV), Err(GpFault));
        assert_eq!(write(index::FEATURE_CONTROL, 5, || 0, &ENV), Err(GpFault));
        assert_eq!(read(index::APIC_BASE, &ENV), Ok(ReadOp::Value(0xfee0_0100)));
        assert_eq!(
            write(index::APIC_BASE, 0xfee0_0100, || 0, &ENV),
            Ok(WriteOp::Ignore)
        );
        assert_eq!(
            write(index::APIC_BASE, 0xfee0_0900, || 0, &ENV),
            Err(GpFault)
        );
        assert_eq!(read(index::PLATFORM_INFO, &ENV), Ok(ReadOp::Value(0x1a00)));
        assert_eq!(
            write(index::PLATFORM_INFO, 0x1a00, || 0, &ENV),
            Err(GpFault)
        );
        assert_eq!(
            write(index::BIOS_SIGN_ID, 0, || 0, &ENV),
            Ok(WriteOp::Ignore)
        );
        assert_eq!(read(index::BIOS_SIGN_ID, &ENV), Ok(ReadOp::Value(1 << 32)));
        assert_eq!(read(0x26f, &ENV), Ok(ReadOp::Value(MTRR_FIXED_WB)));
        assert_eq!(write(0x26f, 0, || 0, &ENV), Err(GpFault));
        assert_eq!(
            write(index::MTRRCAP, MTRRCAP_VALUE, || 0, &ENV),
            Err(GpFault)
        );
        assert_eq!(MsrEnv::platform_info_from_base_mhz(2600), 0x1a00);
        assert_eq!(MsrEnv::platform_info_from_base_mhz(0), 0);
    }

    #[test]
    fn efer_rules() {
        let w = |v| write(index::EFER, v, || LONG, &ENV);
        assert_eq!(w(LONG), Ok(WriteOp::Vmcs(VmcsMsr::Efer, LONG)));
        assert_eq!(
            w(LONG & !efer::SCE),
            Ok(WriteOp::Vmcs(VmcsMsr::Efer, LONG & !efer::SCE))
        );
        // LMA is read-only: a write without it keeps it.
        assert_eq!(w(LONG & !efer::LMA), Ok(WriteOp::Vmcs(VmcsMsr::Efer, LONG)));
        assert_eq!(w(LONG & !efer::LME), Err(GpFault), "LME with paging on");
        assert_eq!(w(LONG & !efer::NXE), Err(GpFault), "NXE is fixed");
        assert_eq!(w(LONG | 1 << 1), Err(GpFault), "reserved bit 1");
        assert_eq!(w(LONG | 1 << 63), Err(GpFault), "reserved bit 63");
        // Without EFER switching: SCE only, into the shared host register.
        let no = MsrEnv {
            load_efer: false,
            ..ENV
        };
        assert_eq!(read(index::EFER, &no), Ok(ReadOp::Host));
        assert_eq!(
            write(index::EFER, LONG, || LONG, &no),
            Ok(WriteOp::Host(LONG))
        );
        assert_eq!(
            write(index::EFER, LONG & !efer::SCE, || LONG, &no),
            Ok(WriteOp::Host(LONG & !efer::SCE))
        );
        assert_eq!(
            write(index::EFER, LONG & !efer::NXE, || LONG, &no),
            Err(GpFault)
        );
        // A domain without NX: NXE stays clear.
        let old = LONG & !efer::NXE;
        assert_eq!(write(index::EFER, LONG, || old, &ENV), Err(GpFault));
        assert_eq!(
            write(index::EFER, old, || old, &ENV),
            Ok(WriteOp::Vmcs(VmcsMsr::Efer, old))
        );
    }

    #[test]
    fn vmcs_checks() {
        let pat = 0x0007_0406_0007_0406;
        assert_eq!(
            write(index::PAT, pat, || 0, &ENV),
            Ok(WriteOp::Vmcs(VmcsMsr::Pat, pat))
        );
        assert_eq!(
            write(index::PAT, (pat & !0xff) | 2, || 0, &ENV),
            Err(GpFault),
            "type 2"
        );
        assert_eq!(write(index::PAT, pat | 8 << 56, || 0, &ENV), Err(GpFault));
        assert_eq!(
            write(index::SYSENTER_EIP, 1 << 47, || 0, &ENV),
            Err(GpFault)
        );
        assert_eq!(
            write(index::SYSENTER_EIP, 0xffff_8000_0000_0000, || 0, &ENV),
            Ok(WriteOp::Vmcs(VmcsMsr::SysenterEip, 0xffff_8000_0000_0000))
        );
        assert_eq!(write(index::SYSENTER_CS, 1 << 32, || 0, &ENV), Err(GpFault));
        assert_eq!(
            write(index::DEBUGCTL, 2, || 0, &ENV),
            Ok(WriteOp::Vmcs(VmcsMsr::DebugCtl, 2))
        );
        assert_eq!(write(index::DEBUGCTL, 1, || 0, &ENV), Err(GpFault), "LBR");
        assert_eq!(
            read(index::FS_BASE, &ENV),
            Ok(ReadOp::Vmcs(VmcsMsr::FsBase))
        );
    }

    #[test]
    fn pass_through() {
        assert_eq!(read(index::LSTAR, &ENV), Ok(ReadOp::Host));
        assert_eq!(write(index::LSTAR, 1 << 47, || 0, &ENV), Err(GpFault));
        assert_eq!(write(index::SFMASK, 1 << 32, || 0, &ENV), Err(GpFault));
        assert_eq!(write(index::STAR, !0, || 0, &ENV), Ok(WriteOp::Host(!0)));
        assert_eq!(write(index::TSC, 0, || 0, &ENV), Err(GpFault));
        let no = MsrEnv {
            rdtscp: false,
            ..ENV
        };
        assert_eq!(read(index::TSC_AUX, &no), Err(GpFault));
        assert!(bitmap_passes(&no).all(|(i, _, _)| i != index::TSC_AUX));
        assert!(initial_values(&no).all(|(i, _)| i != index::TSC_AUX));
        let passes: std::vec::Vec<_> = bitmap_passes(&ENV).collect();
        assert!(passes.contains(&(index::TSC, true, false)));
        assert!(passes.contains(&(index::KERNEL_GS_BASE, true, true)));
        assert!(passes.contains(&(index::TSC_AUX, true, false)));
        // FMASK's writes exit so that Keel, not whatever is beneath it, checks them.
        assert!(passes.contains(&(index::SFMASK, true, false)));
        assert_eq!(
            write(index::SFMASK, 0x4700, || 0, &ENV),
            Ok(WriteOp::Host(0x4700))
        );
        assert!(initial_values(&ENV).any(|(i, v)| i == index::SFMASK && v == 0));
        assert!(!passes.iter().any(|&(i, _, _)| i == index::EFER));
        assert_eq!(initial_values(&ENV).count(), 6);
    }

    #[test]
    fn bitmap_agrees_with_the_handler() {
        // What the bitmap lets through without an exit is exactly what the exit
        // handler would have done natively anyway (so a CPU without MSR bitmaps
        // behaves the same), and nothing else passes.
        for env in [
            ENV,
            MsrEnv {
                rdtscp: false,
                ..ENV
            },
        ] {
            for (i, r, w) in bitmap_passes(&env) {
                assert!(r, "{i:#x}: a write-only pass-through makes no sense");
                assert!(matches!(
                    read(i, &env),
                    Ok(ReadOp::Host | ReadOp::Vmcs(VmcsMsr::FsBase | VmcsMsr::GsBase))
                ));
                if w {
                    assert!(matches!(
                        write(i, 0, || 0, &env),
                        Ok(WriteOp::Host(0) | WriteOp::Vmcs(VmcsMsr::FsBase | VmcsMsr::GsBase, 0))
                    ));
                } else if matches!(
                    lookup(i, &env).map(|m| m.kind),
                    Some(Kind::WriteChecked { .. })
                ) {
                    // The write exits only to be checked, then goes to the register.
                    assert_eq!(write(i, 0, || 0, &env), Ok(WriteOp::Host(0)), "{i:#x}");
                } else {
                    assert_eq!(write(i, 0, || 0, &env), Err(GpFault), "{i:#x}");
                }
                assert!(
                    bitmap_position(i, false).is_some(),
                    "{i:#x} outside the bitmap"
                );
            }
            for m in MSRS {
                let passes = bitmap_passes(&env).any(|(i, _, _)| i == m.index);
                let exits = matches!(m.kind, Kind::Vmcs(..) | Kind::Emulated(..));
                assert!(!(passes && exits), "{} both passes and is emulated", m.name);
            }
        }
    }

    #[test]
    fn bitmap_positions() {
        assert_eq!(bitmap_position(0, false), Some((0, 0)));
        assert_eq!(bitmap_position(0x1fff, true), Some((2048 + 1023, 7)));
        assert_eq!(bitmap_position(0xc000_0102, false), Some((1024 + 32, 2)));
        assert_eq!(bitmap_position(0xc000_0102, true), Some((3072 + 32, 2)));
        assert_eq!(bitmap_position(0x2000, false), None);
        assert_eq!(bitmap_position(0xc000_2000, false), None);
    }

    proptest! {
        /// No index and value panic; an index outside the table always faults; an
        /// accepted EFER write never clears LME or changes NXE.
        #[test]
        fn total(i in any::<u32>(), v in any::<u64>(), cur in any::<u64>()) {
            let r = read(i, &ENV);
            let w = write(i, v, || cur, &ENV);
            if MSRS.iter().all(|m| m.index != i) {
                prop_assert_eq!(r, Err(GpFault));
                prop_assert_eq!(w, Err(GpFault));
            }
            if let Ok(WriteOp::Vmcs(VmcsMsr::Efer, nv)) = write(index::EFER, v, || LONG, &ENV) {
                prop_assert_eq!(nv & (efer::LME | efer::LMA | efer::NXE), LONG & (efer::LME | efer::LMA | efer::NXE));
            }
            if let Some((b, bit)) = bitmap_position(i, v & 1 == 1) {
                prop_assert!(b < 4096 && bit < 8);
            }
        }
    }
}
