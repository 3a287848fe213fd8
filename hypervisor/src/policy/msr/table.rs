//! The MSR policy as data: every MSR a guest's CPU has ([`MSRS`]), what kind it
//! is, the values Keel makes up and the bit fields it checks.

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
    /// IA32_PLATFORM_INFO, from the host's base frequency ([`MsrEnv::platform_info`](super::MsrEnv::platform_info)).
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

bitflags::bitflags! {
    /// The IA32_EFER bits a guest may hold (SDM vol. 3A, 2.2.1). Every other bit
    /// is reserved: a WRMSR setting one raises #GP(0).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Efer: u64 {
        /// SYSCALL enable.
        const SCE = 1 << 0;
        /// Long mode enable.
        const LME = 1 << 8;
        /// Long mode active (read-only: the CPU sets it).
        const LMA = 1 << 10;
        /// No-execute enable.
        const NXE = 1 << 11;
    }
}

bitflags::bitflags! {
    /// IA32_APIC_BASE's flag bits (SDM vol. 3A, 11.4.4); bits 12 and up hold the
    /// base address.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ApicBase: u64 {
        /// This is the bootstrap processor.
        const BSP = 1 << 8;
        /// x2APIC mode.
        const EXTD = 1 << 10;
        /// The APIC is globally enabled.
        const ENABLE = 1 << 11;
        const _ = !0;
    }
}

bitflags::bitflags! {
    /// The IA32_MISC_ENABLE bits Keel reports (SDM vol. 4, table 2-2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MiscEnable: u64 {
        /// Fast-strings enable.
        const FAST_STRINGS = 1 << 0;
        /// Branch trace storage unavailable.
        const BTS_UNAVAILABLE = 1 << 11;
        /// Processor event-based sampling unavailable.
        const PEBS_UNAVAILABLE = 1 << 12;
        const _ = !0;
    }
}

bitflags::bitflags! {
    /// IA32_MTRR_DEF_TYPE's enable bits (SDM vol. 3A, 12.11.2.1); bits 7:0 hold
    /// the default memory type.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MtrrDefType: u64 {
        /// Fixed-range MTRRs enabled.
        const FE = 1 << 10;
        /// MTRRs enabled.
        const E = 1 << 11;
        const _ = !0;
    }
}

bitflags::bitflags! {
    /// The IA32_DEBUGCTL bits a guest may set (SDM vol. 3B, 18.4.1): only BTF.
    /// Every other bit would reach the host's LBR, BTS or performance-monitoring
    /// hardware, so a WRMSR setting one raises #GP(0).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DebugCtl: u64 {
        /// Single-step on branches.
        const BTF = 1 << 1;
    }
}

/// Memory type write-back (SDM vol. 3A, table 12-8).
const MEMORY_TYPE_WB: u64 = 6;

/// The virtual APIC base: the default address 0xFEE0_0000, BSP, and the APIC
/// globally disabled (ENABLE clear): the guest has no APIC it could reach
/// (CPUID.1:EDX.APIC is 0), and a kernel that probes anyway learns it is off.
pub const APIC_BASE_VALUE: u64 = 0xfee0_0000 | ApicBase::BSP.bits();
/// FEATURE_CONTROL: locked (bit 0), VMX off inside and outside SMX: exactly what
/// a guest of a CPU without VMX sees from firmware that locked it.
pub const FEATURE_CONTROL_VALUE: u64 = 1;
/// MISC_ENABLE: fast strings, BTS unavailable, PEBS unavailable. No Enhanced
/// SpeedStep, no MONITOR FSM, no CPUID limit, XD not disabled.
pub const MISC_ENABLE_VALUE: u64 = MiscEnable::FAST_STRINGS
    .union(MiscEnable::BTS_UNAVAILABLE)
    .union(MiscEnable::PEBS_UNAVAILABLE)
    .bits();
/// The microcode revision Keel reports (BIOS_SIGN_ID bits 63:32): the virtual CPU
/// has no microcode of its own to update.
pub const MICROCODE_REVISION: u32 = 1;
/// MTRRCAP: fixed-range MTRRs (bit 8), no variable ranges, no write-combining, no
/// SMRR: the smallest MTRR set a kernel accepts.
pub const MTRRCAP_VALUE: u64 = 1 << 8;
/// MTRR_DEF_TYPE: MTRRs and fixed ranges enabled, default type WB.
pub const MTRR_DEF_TYPE_VALUE: u64 = MtrrDefType::E.union(MtrrDefType::FE).bits() | MEMORY_TYPE_WB;
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
