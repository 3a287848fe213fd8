//! # What CPUID tells a guest
//!
//! A guest must see one consistent virtual CPU: every feature CPUID reports must
//! work, and everything that would not work (or would reach the host's hardware)
//! must be absent. Keel builds that CPU from the host's CPUID with two tables:
//!
//! - [`LEAVES`] says, for every basic and extended leaf, what the guest gets: the
//!   host's value, the host's value through an allow-list, a value Keel computes
//!   (topology, XSAVE), or zeroes ("not virtualised"). A leaf the table does not
//!   list reads as zeroes.
//! - [`FEATURES`] is the allow-list: the feature bits a guest may see, each with the
//!   condition under which it is real (e.g. AVX only when the guest may enable the
//!   AVX state in XCR0). Every other bit of a masked register is cleared, so a
//!   feature a newer CPU adds stays hidden until someone decides it is virtualised.
//!
//! Hidden on purpose: VMX and SMX (no nested virtualisation, `vmx::cr` keeps
//! CR4.VMXE invisible), MONITOR/MWAIT (they exit and raise #UD), the PMU and
//! debug-store features (the counters are the host's), the local APIC, x2APIC and
//! TSC-deadline (the guest cannot reach an APIC: events come through the PV
//! interface), features needing a CR4 bit the CR policy refuses (PCID, FSGSBASE,
//! SMEP, SMAP, UMIP, PKU, LA57, CET), controls Keel does not enable (INVPCID,
//! WAITPKG, XSAVES), speculation-control MSRs Keel does not virtualise, thermal and
//! power management, TSX, SGX, PT, and 1-GiB pages (direct paging validates 4-KiB
//! mappings only).
//!
//! Topology is that of one vCPU: one logical processor per core and per package,
//! APIC id 0 (leaves 1, 4, 0xB, 0x1F). Leaf 0xD describes exactly the XCR0 values
//! the guest may set ([`GuestCpuFeatures::xcr0_allowed`], which XSETBV is validated
//! against). A leaf above the highest basic or extended leaf answers as Intel
//! hardware does: with the data of the highest basic leaf (SDM vol. 2A, CPUID,
//! "INPUT EAX = 0" note).
//!
//! Keel's own leaves, `0x4000_0000..=0x4000_00ff`, come from the ABI crate:
//! `0x4000_0000` gives the highest hypervisor leaf and the signature
//! "KeelKeelKeel"; `0x4000_0001` the ABI version and feature submap 0; the rest of
//! the range reads as zeroes.
//!
//! The exit path must be cheap (issue 8: a CPUID exit in at most 200
//! instructions), so the tables are folded once per vCPU into a [`CpuidPolicy`]
//! (per-leaf kinds in arrays, one AND/OR mask per masked register), and an exit
//! costs one host CPUID, an array index and a few bit operations. `docs/abi/cpuid.md`
//! is generated from the same tables (the test-only `markdown` module).

use keel_abi::version::{
    features, AbiVersion, CPUID_LEAF_BASE, CPUID_LEAF_VERSION, CPUID_SIGNATURE,
};

/// The four output registers of CPUID.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// One output register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// EAX.
    Eax,
    /// EBX.
    Ebx,
    /// ECX.
    Ecx,
    /// EDX.
    Edx,
}

impl Reg {
    /// The register's name.
    pub const fn name(self) -> &'static str {
        match self {
            Reg::Eax => "EAX",
            Reg::Ebx => "EBX",
            Reg::Ecx => "ECX",
            Reg::Edx => "EDX",
        }
    }
}

/// What the guest's CPU can do beyond the fixed policy: facts derived from the
/// VMX controls, the CR policy and the guest's own state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestCpuFeatures {
    /// "Enable RDTSCP" is set (else RDTSCP and RDPID raise #UD).
    pub rdtscp: bool,
    /// The XCR0 bits the guest may set with XSETBV; 0 when XSAVE is hidden (the
    /// CR policy refuses CR4.OSXSAVE, so XSETBV cannot even be executed).
    pub xcr0_allowed: u64,
    /// The guest's CR4.OSXSAVE as it sees it (CPUID.1:ECX bit 27 mirrors it).
    pub osxsave: bool,
}

/// When an allow-listed feature bit is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Whenever the host has it.
    Host,
    /// When the host has it and the guest may use XSAVE (`xcr0_allowed != 0`).
    Xsave,
    /// When the host has it and the guest may enable the AVX state (XCR0 bit 2).
    Avx,
    /// When XSAVE is shown and the guest has set CR4.OSXSAVE (not the host's bit).
    OsXsave,
    /// When the host has it and "enable RDTSCP" is set.
    Rdtscp,
    /// Always set, whatever the host says.
    Set,
}

impl When {
    /// A short description for the documentation.
    pub const fn describe(self) -> &'static str {
        match self {
            When::Host => "host",
            When::Xsave => "host, if XSAVE is offered",
            When::Avx => "host, if XCR0.AVX may be set",
            When::OsXsave => "guest CR4.OSXSAVE",
            When::Rdtscp => "host, if RDTSCP is enabled",
            When::Set => "always 1",
        }
    }
}

/// One feature bit a guest may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feature {
    /// Leaf.
    pub leaf: u32,
    /// Subleaf.
    pub subleaf: u32,
    /// Register.
    pub reg: Reg,
    /// Bit number.
    pub bit: u8,
    /// The SDM's name.
    pub name: &'static str,
    /// When it is shown.
    pub when: When,
}

/// What a leaf returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKind {
    /// All zeroes: not virtualised.
    Zero,
    /// The host's value.
    Host,
    /// The host's value; the registers listed in [`MASKED`] through [`FEATURES`].
    Masked,
    /// Leaf 0 / 0x8000_0000: the guest's highest leaf and the vendor.
    Max,
    /// Leaf 1: signature, one logical processor, APIC id 0, masked features.
    Leaf1,
    /// Leaf 4: the host's caches, each shared by one logical processor of one core.
    Caches,
    /// Leaf 7: subleaf 0 masked and reporting no further subleaves; others zero.
    Leaf7,
    /// Leaves 0xB and 0x1F: the topology of one vCPU.
    Topology,
    /// Leaf 0xD: the XSAVE state components the guest may enable.
    Xsave,
}

impl LeafKind {
    /// A short description for the documentation.
    pub const fn describe(self) -> &'static str {
        match self {
            LeafKind::Zero => "zeroes",
            LeafKind::Host => "host",
            LeafKind::Masked => "host, allow-listed bits only",
            LeafKind::Max => "highest leaf (the smaller of the host's and Keel's); leaf 0: the host's vendor, leaf 0x8000_0000: EBX-EDX 0",
            LeafKind::Leaf1 => {
                "host signature; EBX: 1 logical processor, APIC id 0; features allow-listed"
            }
            LeafKind::Caches => "host caches; EAX[31:14] = 0 (one core, one thread per cache)",
            LeafKind::Leaf7 => {
                "subleaf 0 allow-listed with EAX = 0 (no more subleaves); others zeroes"
            }
            LeafKind::Topology => {
                "one vCPU: SMT and core level each 1 logical processor, x2APIC id 0"
            }
            LeafKind::Xsave => {
                "the XCR0 components the guest may set (zeroes when XSAVE is hidden)"
            }
        }
    }
}

/// One leaf's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The leaf (EAX input).
    pub leaf: u32,
    /// The SDM's name for it.
    pub name: &'static str,
    /// What it returns.
    pub kind: LeafKind,
}

const fn leaf(leaf: u32, name: &'static str, kind: LeafKind) -> Leaf {
    Leaf { leaf, name, kind }
}

/// The highest basic leaf Keel knows; the guest's is the smaller of this and the host's.
pub const MAX_BASIC: u32 = 0x1f;
/// The highest extended leaf Keel knows.
pub const MAX_EXTENDED: u32 = 0x8000_0008;

/// Every basic and extended leaf up to [`MAX_BASIC`] / [`MAX_EXTENDED`]. A leaf not
/// listed is [`LeafKind::Zero`].
pub const LEAVES: &[Leaf] = &[
    leaf(0, "highest basic leaf, vendor", LeafKind::Max),
    leaf(1, "version, features", LeafKind::Leaf1),
    leaf(2, "TLB/cache descriptors", LeafKind::Host),
    leaf(3, "processor serial number", LeafKind::Zero),
    leaf(4, "deterministic cache parameters", LeafKind::Caches),
    leaf(5, "MONITOR/MWAIT", LeafKind::Zero),
    leaf(6, "thermal and power management", LeafKind::Zero),
    leaf(7, "structured extended features", LeafKind::Leaf7),
    leaf(9, "direct cache access", LeafKind::Zero),
    leaf(0xa, "architectural performance monitoring", LeafKind::Zero),
    leaf(0xb, "extended topology", LeafKind::Topology),
    leaf(0xd, "XSAVE state components", LeafKind::Xsave),
    leaf(0xf, "RDT monitoring", LeafKind::Zero),
    leaf(0x10, "RDT allocation", LeafKind::Zero),
    leaf(0x12, "SGX", LeafKind::Zero),
    leaf(0x14, "processor trace", LeafKind::Zero),
    leaf(0x15, "TSC / crystal clock ratio", LeafKind::Host),
    leaf(0x16, "processor frequency", LeafKind::Host),
    leaf(0x1f, "V2 extended topology", LeafKind::Topology),
    leaf(0x8000_0000, "highest extended leaf", LeafKind::Max),
    leaf(0x8000_0001, "extended features", LeafKind::Masked),
    leaf(0x8000_0002, "brand string 1", LeafKind::Host),
    leaf(0x8000_0003, "brand string 2", LeafKind::Host),
    leaf(0x8000_0004, "brand string 3", LeafKind::Host),
    leaf(0x8000_0005, "reserved (Intel)", LeafKind::Zero),
    leaf(0x8000_0006, "L2 cache", LeafKind::Host),
    leaf(0x8000_0007, "invariant TSC", LeafKind::Masked),
    leaf(0x8000_0008, "address sizes", LeafKind::Masked),
];

/// The registers filtered through [`FEATURES`]: `(leaf, subleaf, register)`. Each
/// keeps only its allow-listed bits.
pub const MASKED: &[(u32, u32, Reg)] = &[
    (1, 0, Reg::Ecx),
    (1, 0, Reg::Edx),
    (7, 0, Reg::Ebx),
    (7, 0, Reg::Ecx),
    (7, 0, Reg::Edx),
    (0x8000_0001, 0, Reg::Ecx),
    (0x8000_0001, 0, Reg::Edx),
    (0x8000_0007, 0, Reg::Edx),
    (0x8000_0008, 0, Reg::Ebx),
];

const fn f(leaf: u32, reg: Reg, bit: u8, name: &'static str, when: When) -> Feature {
    Feature {
        leaf,
        subleaf: 0,
        reg,
        bit,
        name,
        when,
    }
}

/// The allow-list: every feature bit a guest may see.
pub const FEATURES: &[Feature] = &[
    // Leaf 1 ECX.
    f(1, Reg::Ecx, 0, "SSE3", When::Host),
    f(1, Reg::Ecx, 1, "PCLMULQDQ", When::Host),
    f(1, Reg::Ecx, 9, "SSSE3", When::Host),
    f(1, Reg::Ecx, 12, "FMA", When::Avx),
    f(1, Reg::Ecx, 13, "CMPXCHG16B", When::Host),
    f(1, Reg::Ecx, 19, "SSE4.1", When::Host),
    f(1, Reg::Ecx, 20, "SSE4.2", When::Host),
    f(1, Reg::Ecx, 22, "MOVBE", When::Host),
    f(1, Reg::Ecx, 23, "POPCNT", When::Host),
    f(1, Reg::Ecx, 25, "AES", When::Host),
    f(1, Reg::Ecx, 26, "XSAVE", When::Xsave),
    f(1, Reg::Ecx, 27, "OSXSAVE", When::OsXsave),
    f(1, Reg::Ecx, 28, "AVX", When::Avx),
    f(1, Reg::Ecx, 29, "F16C", When::Avx),
    f(1, Reg::Ecx, 30, "RDRAND", When::Host),
    f(1, Reg::Ecx, 31, "hypervisor present", When::Set),
    // Leaf 1 EDX.
    f(1, Reg::Edx, 0, "FPU", When::Host),
    f(1, Reg::Edx, 2, "DE", When::Host),
    f(1, Reg::Edx, 3, "PSE", When::Host),
    f(1, Reg::Edx, 4, "TSC", When::Host),
    f(1, Reg::Edx, 5, "MSR", When::Host),
    f(1, Reg::Edx, 6, "PAE", When::Host),
    f(1, Reg::Edx, 7, "MCE", When::Host),
    f(1, Reg::Edx, 8, "CX8", When::Host),
    f(1, Reg::Edx, 11, "SEP", When::Host),
    f(1, Reg::Edx, 12, "MTRR", When::Host),
    f(1, Reg::Edx, 13, "PGE", When::Host),
    f(1, Reg::Edx, 15, "CMOV", When::Host),
    f(1, Reg::Edx, 16, "PAT", When::Host),
    f(1, Reg::Edx, 17, "PSE-36", When::Host),
    f(1, Reg::Edx, 19, "CLFSH", When::Host),
    f(1, Reg::Edx, 23, "MMX", When::Host),
    f(1, Reg::Edx, 24, "FXSR", When::Host),
    f(1, Reg::Edx, 25, "SSE", When::Host),
    f(1, Reg::Edx, 26, "SSE2", When::Host),
    f(1, Reg::Edx, 27, "SS", When::Host),
    // Leaf 7 subleaf 0.
    f(7, Reg::Ebx, 3, "BMI1", When::Host),
    f(7, Reg::Ebx, 5, "AVX2", When::Avx),
    f(7, Reg::Ebx, 6, "FDP_EXCPTN_ONLY", When::Host),
    f(7, Reg::Ebx, 8, "BMI2", When::Host),
    f(7, Reg::Ebx, 9, "ERMS", When::Host),
    f(7, Reg::Ebx, 13, "FPU CS/DS deprecated", When::Host),
    f(7, Reg::Ebx, 18, "RDSEED", When::Host),
    f(7, Reg::Ebx, 19, "ADX", When::Host),
    f(7, Reg::Ebx, 23, "CLFLUSHOPT", When::Host),
    f(7, Reg::Ebx, 24, "CLWB", When::Host),
    f(7, Reg::Ebx, 29, "SHA", When::Host),
    f(7, Reg::Ecx, 22, "RDPID", When::Rdtscp),
    f(7, Reg::Edx, 4, "FSRM", When::Host),
    f(7, Reg::Edx, 14, "SERIALIZE", When::Host),
    // Extended.
    f(0x8000_0001, Reg::Ecx, 0, "LAHF/SAHF", When::Host),
    f(0x8000_0001, Reg::Ecx, 5, "LZCNT", When::Host),
    f(0x8000_0001, Reg::Ecx, 8, "PREFETCHW", When::Host),
    f(0x8000_0001, Reg::Edx, 11, "SYSCALL", When::Host),
    f(0x8000_0001, Reg::Edx, 20, "NX", When::Host),
    f(0x8000_0001, Reg::Edx, 27, "RDTSCP", When::Rdtscp),
    f(0x8000_0001, Reg::Edx, 29, "LM", When::Host),
    f(0x8000_0007, Reg::Edx, 8, "invariant TSC", When::Host),
];

/// XCR0 bits (SDM 13.3).
pub mod xcr0 {
    /// x87 state (must always be 1).
    pub const X87: u64 = 1 << 0;
    /// SSE state.
    pub const SSE: u64 = 1 << 1;
    /// AVX state (upper halves of YMM).
    pub const AVX: u64 = 1 << 2;
}

/// The XSAVE state components Keel lets a guest enable (when the host has them):
/// x87, SSE and AVX. MPX, AVX-512, PKRU and AMX stay off: their CPUID features are
/// hidden too.
pub const XCR0_POLICY: u64 = xcr0::X87 | xcr0::SSE | xcr0::AVX;

/// Leaf 0xD subleaf 1 EAX bits shown: XSAVEOPT, XSAVEC, XGETBV with ECX = 1.
/// XSAVES (bit 3) and XFD (bit 4) stay hidden: Keel does not enable XSAVES/XRSTORS
/// and does not virtualise IA32_XSS or IA32_XFD.
pub const XSAVE_SUBLEAF1_EAX: u32 = 0b111;

/// Whether `leaf` is in the hypervisor range, which Keel answers entirely itself.
pub const fn is_hypervisor_leaf(leaf: u32) -> bool {
    leaf >= CPUID_LEAF_BASE && leaf <= CPUID_LEAF_BASE + 0xff
}

fn sig_word(i: usize) -> u32 {
    let s = CPUID_SIGNATURE;
    u32::from_le_bytes([s[i * 4], s[i * 4 + 1], s[i * 4 + 2], s[i * 4 + 3]])
}

/// Keel's own leaves.
fn hypervisor_leaf(leaf: u32, abi: AbiVersion) -> CpuidResult {
    match leaf {
        CPUID_LEAF_BASE => CpuidResult {
            eax: CPUID_LEAF_VERSION,
            ebx: sig_word(0),
            ecx: sig_word(1),
            edx: sig_word(2),
        },
        CPUID_LEAF_VERSION => CpuidResult {
            eax: abi.encode(),
            ebx: features::SUBMAP0,
            ecx: 0,
            edx: 0,
        },
        _ => CpuidResult::default(),
    }
}

/// The XCR0 bits a guest may set on this host: [`XCR0_POLICY`] intersected with
/// what the host's leaf 0xD reports, or 0 if the host has no XSAVE. `host` is the
/// host's CPUID.
pub fn xcr0_supported(host: &impl Fn(u32, u32) -> CpuidResult) -> u64 {
    if host(0, 0).eax < 0xd || host(1, 0).ecx & (1 << 26) == 0 {
        return 0;
    }
    let d = host(0xd, 0);
    let sup = u64::from(d.eax) | (u64::from(d.edx) << 32);
    let v = sup & XCR0_POLICY;
    // x87 and SSE are architecturally required for XSAVE; AVX needs SSE.
    if v & (xcr0::X87 | xcr0::SSE) != (xcr0::X87 | xcr0::SSE) {
        return 0;
    }
    v
}

/// How many masked registers there are ([`MASKED`]).
const NMASKED: usize = MASKED.len();

/// The tables, folded for one vCPU. Build it once ([`CpuidPolicy::new`]); answer
/// exits with [`CpuidPolicy::guest_cpuid`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidPolicy {
    feat: GuestCpuFeatures,
    /// The guest's highest basic and extended leaf.
    max_basic: u32,
    max_ext: u32,
    basic: [LeafKind; MAX_BASIC as usize + 1],
    ext: [LeafKind; (MAX_EXTENDED - 0x8000_0000) as usize + 1],
    /// Per masked register: bits kept from the host, bits forced on. The OSXSAVE
    /// bit is left out of both and decided per exit (it follows the guest's CR4).
    keep: [u32; NMASKED],
    set: [u32; NMASKED],
    /// Leaf 0xD subleaf 0 ECX: the XSAVE area size for every allowed component.
    xsave_max_size: u32,
    /// The ABI version leaf `0x4000_0001` reports ([`Self::presenting`]).
    abi: AbiVersion,
}

/// Leaf 1 ECX bit 27.
const OSXSAVE_BIT: u32 = 1 << 27;

impl CpuidPolicy {
    /// The same policy, reporting ABI version `v` in leaf `0x4000_0001` (the
    /// domain's `Domain::abi_version`: 0.2 to a guest built before 1.0, as
    /// `XENVER_version` does).
    pub const fn presenting(mut self, v: AbiVersion) -> Self {
        self.abi = v;
        self
    }

    /// Fold the tables for a vCPU with `feat` on a host whose CPUID is `host`.
    pub fn new(host: &impl Fn(u32, u32) -> CpuidResult, feat: GuestCpuFeatures) -> Self {
        let mut basic = [LeafKind::Zero; MAX_BASIC as usize + 1];
        let mut ext = [LeafKind::Zero; (MAX_EXTENDED - 0x8000_0000) as usize + 1];
        for l in LEAVES {
            let slot = if l.leaf >= 0x8000_0000 {
                ext.get_mut((l.leaf - 0x8000_0000) as usize)
            } else {
                basic.get_mut(l.leaf as usize)
            };
            if let Some(s) = slot {
                *s = l.kind;
            }
        }
        let mut keep = [0u32; NMASKED];
        let mut set = [0u32; NMASKED];
        let avx = feat.xcr0_allowed & xcr0::AVX != 0;
        let xsave = feat.xcr0_allowed != 0;
        for ft in FEATURES {
            let Some(i) = MASKED
                .iter()
                .position(|&(l, s, r)| l == ft.leaf && s == ft.subleaf && r == ft.reg)
            else {
                continue;
            };
            let b = 1u32 << ft.bit;
            match ft.when {
                When::Host => keep[i] |= b,
                When::Xsave if xsave => keep[i] |= b,
                When::Avx if avx => keep[i] |= b,
                When::Rdtscp if feat.rdtscp => keep[i] |= b,
                When::Set => set[i] |= b,
                // OSXSAVE is decided per exit; the others are off.
                _ => {}
            }
        }
        // The XSAVE area for every allowed component: the legacy area and header
        // (576 bytes) or the end of the furthest allowed component.
        let mut xsave_max_size = 0;
        if xsave {
            xsave_max_size = 576;
            for c in 2..64u32 {
                if feat.xcr0_allowed & (1 << c) != 0 {
                    let r = host(0xd, c);
                    xsave_max_size = xsave_max_size.max(r.eax.saturating_add(r.ebx));
                }
            }
        }
        CpuidPolicy {
            feat,
            max_basic: host(0, 0).eax.min(MAX_BASIC),
            max_ext: host(0x8000_0000, 0).eax.clamp(0x8000_0000, MAX_EXTENDED),
            basic,
            ext,
            keep,
            set,
            xsave_max_size,
            abi: AbiVersion::CURRENT,
        }
    }

    /// The features this policy was built for.
    pub fn features(&self) -> GuestCpuFeatures {
        self.feat
    }

    /// Record the guest's CR4.OSXSAVE (CPUID.1:ECX.OSXSAVE follows it).
    pub fn set_osxsave(&mut self, on: bool) {
        self.feat.osxsave = on;
    }

    /// The guest's highest basic leaf.
    pub fn max_basic(&self) -> u32 {
        self.max_basic
    }

    fn mask(&self, i: usize, v: u32) -> u32 {
        match (self.keep.get(i), self.set.get(i)) {
            (Some(k), Some(s)) => (v & k) | s,
            _ => 0,
        }
    }

    /// Apply the allow-list to the masked registers of `(leaf, sub)`.
    fn masked(&self, leaf: u32, sub: u32, mut r: CpuidResult) -> CpuidResult {
        for (i, &(l, s, reg)) in MASKED.iter().enumerate() {
            if l != leaf || s != sub {
                continue;
            }
            let v = match reg {
                Reg::Eax => &mut r.eax,
                Reg::Ebx => &mut r.ebx,
                Reg::Ecx => &mut r.ecx,
                Reg::Edx => &mut r.edx,
            };
            *v = self.mask(i, *v);
        }
        r
    }

    /// The guest's CPUID for `(leaf, subleaf)`. `host` executes CPUID on the host;
    /// it is called once for most leaves. Pure apart from `host`.
    pub fn guest_cpuid(
        &self,
        leaf: u32,
        subleaf: u32,
        host: &impl Fn(u32, u32) -> CpuidResult,
    ) -> CpuidResult {
        if is_hypervisor_leaf(leaf) {
            return hypervisor_leaf(leaf, self.abi);
        }
        let kind = if leaf <= self.max_basic {
            self.basic.get(leaf as usize).copied()
        } else if leaf >= 0x8000_0000 && leaf <= self.max_ext {
            self.ext.get((leaf - 0x8000_0000) as usize).copied()
        } else {
            None
        };
        let Some(kind) = kind else {
            // Beyond the highest leaf: Intel returns the highest basic leaf's data.
            // `max_basic` is always in the table's range, so this recursion ends.
            return self.guest_cpuid(self.max_basic, subleaf, host);
        };
        let r = match kind {
            LeafKind::Zero => return CpuidResult::default(),
            _ => host(leaf, subleaf),
        };
        match kind {
            LeafKind::Zero | LeafKind::Host => r,
            LeafKind::Masked => self.masked(leaf, 0, r),
            LeafKind::Max => CpuidResult {
                eax: if leaf == 0 {
                    self.max_basic
                } else {
                    self.max_ext
                },
                // Intel reports EBX/ECX/EDX of 0x8000_0000 as reserved (0).
                ..if leaf == 0 { r } else { CpuidResult::default() }
            },
            LeafKind::Leaf1 => {
                let mut r = self.masked(1, 0, r);
                // EBX: keep brand index and CLFLUSH line size; one logical
                // processor (bits 23:16), initial APIC id 0 (bits 31:24).
                r.ebx = (r.ebx & 0xffff) | (1 << 16);
                if self.feat.osxsave && self.feat.xcr0_allowed != 0 {
                    r.ecx |= OSXSAVE_BIT;
                }
                r
            }
            LeafKind::Caches => {
                // EAX[31:26]: cores per package - 1; EAX[25:14]: logical processors
                // sharing this cache - 1. One vCPU: both 0. A null cache type (no
                // more caches) stays as the host says (all zeroes).
                CpuidResult {
                    eax: r.eax & 0x3fff,
                    ..r
                }
            }
            LeafKind::Leaf7 => {
                if subleaf != 0 {
                    return CpuidResult::default();
                }
                CpuidResult {
                    eax: 0,
                    ..self.masked(7, 0, r)
                }
            }
            LeafKind::Topology => topology(subleaf),
            LeafKind::Xsave => self.xsave(subleaf, r),
        }
    }

    /// Leaf 0xD (SDM 13.2) for the XCR0 values the guest may set.
    fn xsave(&self, subleaf: u32, host: CpuidResult) -> CpuidResult {
        let allowed = self.feat.xcr0_allowed;
        if allowed == 0 {
            return CpuidResult::default();
        }
        match subleaf {
            // EAX/EDX: the components XCR0 may hold. EBX: the size for the
            // components enabled now; XCR0 is not switched on VM exit, so the
            // host's answer already describes the guest's XCR0. ECX: the size for
            // every allowed component.
            0 => CpuidResult {
                eax: host.eax & allowed as u32,
                ebx: host.ebx,
                ecx: self.xsave_max_size,
                edx: host.edx & (allowed >> 32) as u32,
            },
            // EBX: size of XCR0 | IA32_XSS state; IA32_XSS is never set (XSAVES
            // hidden), so the host's value holds. ECX/EDX: no IA32_XSS components.
            1 => CpuidResult {
                eax: host.eax & XSAVE_SUBLEAF1_EAX,
                ebx: host.ebx,
                ecx: 0,
                edx: 0,
            },
            c if c < 64 && allowed & (1 << c) != 0 => host,
            _ => CpuidResult::default(),
        }
    }
}

/// Leaves 0xB/0x1F (SDM vol. 2A, CPUID): level 0 is SMT, level 1 is core, each
/// with one logical processor and a shift of 0; the x2APIC id is 0; levels beyond
/// are invalid (type 0, ECX bits 7:0 echoes the level).
pub fn topology(subleaf: u32) -> CpuidResult {
    match subleaf {
        0 => CpuidResult {
            eax: 0,
            ebx: 1,
            ecx: 1 << 8,
            edx: 0,
        },
        1 => CpuidResult {
            eax: 0,
            ebx: 1,
            ecx: (2 << 8) | 1,
            edx: 0,
        },
        n => CpuidResult {
            eax: 0,
            ebx: 0,
            ecx: n & 0xff,
            edx: 0,
        },
    }
}

/// The documentation page generated from the tables: `docs/abi/cpuid.md`.
#[cfg(test)]
pub mod markdown {
    extern crate std;
    use super::*;
    use std::fmt::Write;
    use std::string::String;

    fn hex(v: u32) -> String {
        if v >= 0x1_0000 {
            std::format!("`{:#06x}_{:04x}`", v >> 16, v & 0xffff)
        } else {
            std::format!("`{v:#x}`")
        }
    }

    /// The whole page.
    pub fn page() -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# CPUID: the virtual CPU a guest sees\n\n\
<!-- GENERATED by `hypervisor/src/policy/cpuid.rs` (the tables `LEAVES`, `MASKED`, `FEATURES`).\n\
     Do not edit: change the tables, then run\n\
     `KEEL_POLICY_BLESS=1 cargo test -p keel-hypervisor policy_docs`. -->\n\n\
CPUID always exits to Keel (SDM 26.1.2). Keel executes it on the host and edits the\n\
answer by two tables: the leaf table below, and an allow-list of feature bits. A\n\
leaf the table does not list reads as zeroes, and so does a feature bit the\n\
allow-list does not name: a feature is shown only once it is known to work in a\n\
Keel guest.\n\n\
- Highest basic leaf: the smaller of the host's and {}; highest extended leaf:\n  \
the smaller of the host's and {}.\n\
- A leaf above the highest basic or extended leaf returns the data of the highest\n  \
basic leaf, as Intel hardware does.\n\
- The hypervisor range `0x4000_0000..=0x4000_00ff` is Keel's own: see\n  \
[version.md](version.md) (signature `KeelKeelKeel`, ABI version, features); leaves\n  \
above `0x4000_0001` read as zeroes.\n\
- Topology is that of one vCPU with APIC id 0.\n\
- XSAVE: the guest may set XCR0 to a combination of x87 (required), SSE and AVX\n  \
(`{:#x}`, intersected with the host's); leaf 0xD describes exactly those, and\n  \
XSETBV refuses anything else with #GP(0) (see [insns.md](insns.md)). When XSAVE is\n  \
not offered, leaf 0xD is zeroes and CPUID.1:ECX.XSAVE is 0.\n\
- Which rule wins: the highest basic leaf first. A leaf above it does not exist for\n  \
the guest, whatever the table says about it: on a model whose highest basic leaf is\n  \
below 0xD (`corei5_arrandale_m520`, `corei5_lynnfield_750`: 0xB; `bx_generic`: 0x5)\n  \
leaf 0xD returns the highest basic leaf's data, not zeroes, and XSAVE is not offered (Keel offers it\n  \
only when the host has leaf 0xD); leaf 4 likewise on a model whose highest basic\n  \
leaf is below 4. A model with no cache leaf (leaf 4 subleaf 0 of type 0,\n  \
`bx_generic`) shows no cache: Keel passes the host's list on and invents none. The\n  \
models and what each lacks: [../platforms.md](../platforms.md).\n",
            hex(MAX_BASIC),
            hex(MAX_EXTENDED),
            XCR0_POLICY
        );
        s.push_str("## Leaves\n\n| Leaf | Name | Guest sees |\n|---|---|---|\n");
        for l in LEAVES {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                hex(l.leaf),
                l.name,
                l.kind.describe()
            );
        }
        s.push_str(
            "\n## Feature bits shown (the allow-list)\n\n\
Registers filtered: ",
        );
        let regs: std::vec::Vec<String> = MASKED
            .iter()
            .map(|&(l, sub, r)| std::format!("{}.{}:{}", hex(l), sub, r.name()))
            .collect();
        s.push_str(&regs.join(", "));
        s.push_str(
            ". Every bit of these registers not listed here is 0.\n\n\
| Leaf | Register | Bit | Feature | Shown when |\n|---|---|---:|---|---|\n",
        );
        for ft in FEATURES {
            let _ = writeln!(
                s,
                "| {}.{} | {} | {} | {} | {} |",
                hex(ft.leaf),
                ft.subleaf,
                ft.reg.name(),
                ft.bit,
                ft.name,
                ft.when.describe()
            );
        }
        s.push_str(
            "\nLeaf 0xD subleaf 1 EAX shows XSAVEOPT, XSAVEC and XGETBV(ECX=1) only (bits 0-2);\n\
XSAVES/XRSTORS and XFD stay hidden.\n\n\
## Differences from Xen\n\n\
- Xen's hypervisor leaves (`0x4000_0000` to `0x4000_0005`, signature\n  \
`XenVMMXenVMM`, Xen's version, the hypercall-page MSR, time and HVM/PV feature\n  \
leaves) are not Keel's: Keel answers signature `KeelKeelKeel`, its ABI version and\n  \
feature submap in `0x4000_0001`, and zeroes above (see [version.md](version.md)).\n  \
A guest must not mistake Keel for Xen.\n\
- Xen builds a policy per domain from a featureset the toolstack may edit, and\n  \
levels or faults CPUID for PV guests; Keel has one fixed policy (the tables above),\n  \
applied on every CPUID exit, with no toolstack.\n\
- Xen hides the same kind of features from PV guests (VMX, MONITOR, x2APIC, PCID,\n  \
the APIC), but the two allow-lists are not the same list: compare the table above,\n  \
not Xen's `cpufeatureset.h` annotations.\n\n\
## Differences from bare metal\n\n\
Every CPUID executes in the hypervisor (an exit), so it costs far more than on\n\
bare metal (`cargo keel bench`, docs/performance.md); the topology is always one\n\
logical processor, whatever the machine has.\n",
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: CpuidResult = CpuidResult {
        eax: !0,
        ebx: !0,
        ecx: !0,
        edx: !0,
    };

    fn bit(n: u32) -> u32 {
        1 << n
    }

    /// A host whose every leaf is all ones, except the max leaves and leaf 0xD,
    /// which say something plausible.
    fn ones_host(leaf: u32, sub: u32) -> CpuidResult {
        match (leaf, sub) {
            (0, _) => CpuidResult { eax: 0x16, ..ALL },
            (0x8000_0000, _) => CpuidResult {
                eax: 0x8000_0008,
                ..ALL
            },
            (0xd, 0) => CpuidResult {
                eax: 0x2ff,
                ebx: 0x340,
                ecx: 0xa80,
                edx: 0,
            },
            (0xd, 1) => CpuidResult {
                eax: 0x1f,
                ebx: 0x340,
                ecx: 0x1_0000,
                edx: 0,
            },
            (0xd, 2) => CpuidResult {
                eax: 256,
                ebx: 576,
                ecx: 0,
                edx: 0,
            },
            (0xd, _) => CpuidResult {
                eax: 64,
                ebx: 1024,
                ecx: 0,
                edx: 0,
            },
            _ => ALL,
        }
    }

    fn policy(feat: GuestCpuFeatures) -> CpuidPolicy {
        CpuidPolicy::new(&ones_host, feat)
    }

    fn q(p: &CpuidPolicy, leaf: u32, sub: u32) -> CpuidResult {
        p.guest_cpuid(leaf, sub, &ones_host)
    }

    #[test]
    fn leaf1() {
        let p = policy(GuestCpuFeatures::default());
        let r = q(&p, 1, 0);
        assert_eq!(r.ecx & bit(5), 0, "VMX");
        assert_eq!(r.ecx & bit(6), 0, "SMX");
        assert_eq!(r.ecx & bit(3), 0, "MONITOR");
        assert_eq!(r.ecx & bit(15), 0, "PDCM");
        assert_eq!(r.ecx & bit(21), 0, "x2APIC");
        assert_eq!(r.ecx & (bit(26) | bit(27) | bit(28)), 0, "XSAVE off");
        assert_ne!(r.ecx & bit(31), 0, "hypervisor bit");
        assert_eq!(r.edx & bit(9), 0, "APIC");
        assert_eq!(r.edx & bit(28), 0, "HTT");
        assert_ne!(r.edx & bit(0), 0, "FPU");
        assert_eq!(r.eax, !0, "signature passes");
        assert_eq!(r.ebx, 0x0001_ffff, "one logical processor, APIC id 0");
        let zero = |_: u32, _: u32| CpuidResult {
            eax: 0x16,
            ..CpuidResult::default()
        };
        let p0 = CpuidPolicy::new(&zero, GuestCpuFeatures::default());
        assert_eq!(p0.guest_cpuid(1, 0, &zero).ecx, bit(31));
    }

    #[test]
    fn hidden_leaves_are_zero() {
        let p = policy(GuestCpuFeatures::default());
        for leaf in [
            3,
            5,
            6,
            8,
            9,
            0xa,
            0xc,
            0xd,
            0xe,
            0xf,
            0x10,
            0x12,
            0x14,
            0x8000_0005,
        ] {
            assert_eq!(q(&p, leaf, 0), CpuidResult::default(), "leaf {leaf:#x}");
            assert_eq!(q(&p, leaf, 3), CpuidResult::default(), "leaf {leaf:#x}");
        }
    }

    #[test]
    fn hypervisor_leaves() {
        let p = policy(GuestCpuFeatures::default());
        let r = q(&p, 0x4000_0000, 0);
        assert_eq!(r.eax, 0x4000_0001);
        let mut sig = [0u8; 12];
        sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
        assert_eq!(&sig, b"KeelKeelKeel");
        let r = q(&p, 0x4000_0001, 0);
        assert_eq!(r.eax, AbiVersion::CURRENT.encode());
        assert_eq!(r.ebx, features::SUBMAP0);
        // What a guest built before 1.0 is told (as XENVER_version tells it).
        let old = policy(GuestCpuFeatures::default()).presenting(AbiVersion::PRE_1_0_PRESENTED);
        let r = q(&old, 0x4000_0001, 0);
        assert_eq!(r.eax, 0x0000_0002);
        assert_eq!(r.ebx, features::SUBMAP0);
        assert_eq!(q(&p, 0x4000_0002, 0), CpuidResult::default());
        assert_eq!(q(&p, 0x4000_00ff, 0), CpuidResult::default());
        // Just outside the range: beyond every maximum, so the highest basic leaf.
        assert_eq!(q(&p, 0x4000_0100, 0), q(&p, 0x16, 0));
    }

    #[test]
    fn beyond_max_is_highest_basic() {
        let p = policy(GuestCpuFeatures::default());
        let top = q(&p, 0x16, 0);
        assert_eq!(top, ALL, "leaf 0x16 is host");
        for leaf in [0x17, 0x1f, 0x20, 0x3fff_ffff, 0x8000_0009, 0xffff_ffff] {
            assert_eq!(q(&p, leaf, 0), top, "leaf {leaf:#x}");
        }
        assert_eq!(q(&p, 0, 0).eax, 0x16);
        assert_eq!(q(&p, 0x8000_0000, 0).eax, 0x8000_0008);
        // A host with more leaves than Keel knows: capped.
        let big = |l: u32, s: u32| match l {
            0 => CpuidResult { eax: 0x23, ..ALL },
            0x8000_0000 => CpuidResult {
                eax: 0x8000_0021,
                ..ALL
            },
            _ => ones_host(l, s),
        };
        let p = CpuidPolicy::new(&big, GuestCpuFeatures::default());
        assert_eq!(p.guest_cpuid(0, 0, &big).eax, MAX_BASIC);
        assert_eq!(p.guest_cpuid(0x8000_0000, 0, &big).eax, MAX_EXTENDED);
        assert_eq!(p.guest_cpuid(0x20, 0, &big), topology(0));
        assert_eq!(p.guest_cpuid(0x8000_0021, 2, &big), topology(2));
    }

    #[test]
    fn topology_is_one_vcpu() {
        let p = policy(GuestCpuFeatures::default());
        let (s0, s1, s2) = (q(&p, 0xb, 0), q(&p, 0xb, 1), q(&p, 0xb, 2));
        assert_eq!((s0.ebx, (s0.ecx >> 8) & 0xff, s0.edx), (1, 1, 0));
        assert_eq!((s1.ebx, (s1.ecx >> 8) & 0xff, s1.ecx & 0xff), (1, 2, 1));
        assert_eq!(((s2.ecx >> 8) & 0xff, s2.ecx & 0xff, s2.ebx), (0, 2, 0));
        let c = q(&p, 4, 1);
        assert_eq!(c.eax >> 14, 0, "leaf 4: one core, one thread per cache");
        assert_eq!(c.eax & 0x3fff, 0x3fff);
    }

    #[test]
    fn leaf7() {
        let p = policy(GuestCpuFeatures::default());
        let r0 = q(&p, 7, 0);
        assert_eq!(r0.eax, 0, "no further subleaves");
        assert_eq!(r0.ebx & bit(10), 0, "INVPCID");
        assert_eq!(
            r0.ebx & (bit(0) | bit(7) | bit(20)),
            0,
            "FSGSBASE SMEP SMAP"
        );
        assert_eq!(r0.ebx & bit(5), 0, "AVX2 without XSAVE");
        assert_ne!(r0.ebx & bit(3), 0, "BMI1");
        assert_eq!(r0.ecx & bit(16), 0, "LA57");
        assert_eq!(r0.ecx & bit(22), 0, "RDPID without RDTSCP");
        assert_eq!(r0.edx & (bit(26) | bit(29)), 0, "speculation MSRs");
        assert_eq!(q(&p, 7, 1), CpuidResult::default());
    }

    #[test]
    fn rdtscp_follows_the_control() {
        let off = policy(GuestCpuFeatures::default());
        assert_eq!(q(&off, 0x8000_0001, 0).edx & bit(27), 0);
        let on = policy(GuestCpuFeatures {
            rdtscp: true,
            ..Default::default()
        });
        assert_ne!(q(&on, 0x8000_0001, 0).edx & bit(27), 0);
        assert_ne!(q(&on, 7, 0).ecx & bit(22), 0, "RDPID");
    }

    #[test]
    fn xsave_consistent_with_xcr0() {
        let allowed = xcr0_supported(&ones_host);
        assert_eq!(allowed, XCR0_POLICY);
        let mut p = policy(GuestCpuFeatures {
            xcr0_allowed: allowed,
            ..Default::default()
        });
        let l1 = q(&p, 1, 0);
        assert_ne!(l1.ecx & bit(26), 0, "XSAVE");
        assert_ne!(l1.ecx & bit(28), 0, "AVX");
        assert_eq!(l1.ecx & bit(27), 0, "OSXSAVE follows CR4, clear");
        p.set_osxsave(true);
        assert_ne!(q(&p, 1, 0).ecx & bit(27), 0, "OSXSAVE");
        let d0 = q(&p, 0xd, 0);
        assert_eq!(u64::from(d0.eax) | u64::from(d0.edx) << 32, allowed);
        assert_eq!(d0.ecx, 832, "576 + AVX's 256");
        let d1 = q(&p, 0xd, 1);
        assert_eq!(
            (d1.eax, d1.ecx),
            (XSAVE_SUBLEAF1_EAX, 0),
            "XSAVES/XFD hidden"
        );
        assert_eq!(q(&p, 0xd, 2).eax, 256, "AVX component");
        for c in [3, 5, 9, 63, 64, 0xffff_ffff] {
            assert_eq!(q(&p, 0xd, c), CpuidResult::default(), "component {c}");
        }
        // Only x87|SSE on the host: no AVX anywhere.
        let no_avx = |l: u32, s: u32| match (l, s) {
            (0xd, 0) => CpuidResult {
                eax: 3,
                ..ones_host(l, s)
            },
            _ => ones_host(l, s),
        };
        let a = xcr0_supported(&no_avx);
        assert_eq!(a, 3);
        let p = CpuidPolicy::new(
            &no_avx,
            GuestCpuFeatures {
                xcr0_allowed: a,
                ..Default::default()
            },
        );
        assert_eq!(p.guest_cpuid(1, 0, &no_avx).ecx & (bit(28) | bit(12)), 0);
        assert_eq!(p.guest_cpuid(7, 0, &no_avx).ebx & bit(5), 0);
        assert_eq!(p.guest_cpuid(0xd, 0, &no_avx).ecx, 576);
        // No XSAVE on the host.
        let none = |l: u32, s: u32| match l {
            1 => CpuidResult {
                ecx: !bit(26),
                ..ALL
            },
            _ => ones_host(l, s),
        };
        assert_eq!(xcr0_supported(&none), 0);
    }

    /// A host whose highest basic leaf is below 0xD (Nehalem/Westmere: 0xB):
    /// the beyond-max rule wins over the XSAVE rule, because for this guest leaf
    /// 0xD does not exist; XSAVE is hidden, so no XCR0 value can disagree with it.
    #[test]
    fn below_leaf_0xd_the_beyond_max_rule_wins() {
        let westmere = |l: u32, s: u32| match l {
            0 => CpuidResult { eax: 0xb, ..ALL },
            _ => ones_host(l, s),
        };
        assert_eq!(xcr0_supported(&westmere), 0, "no leaf 0xD: no XSAVE");
        let p = CpuidPolicy::new(&westmere, GuestCpuFeatures::default());
        let top = p.guest_cpuid(0xb, 0, &westmere);
        assert_eq!(top, topology(0));
        assert_eq!(
            p.guest_cpuid(0xd, 0, &westmere),
            top,
            "leaf 0xD is beyond max"
        );
        assert_ne!(p.guest_cpuid(0xd, 0, &westmere), CpuidResult::default());
        assert_eq!(p.guest_cpuid(1, 0, &westmere).ecx & (bit(26) | bit(27)), 0);
        assert_eq!(p.guest_cpuid(0x16, 0, &westmere), top);
    }

    /// A host that lists no cache in leaf 4 (its first subleaf has type 0):
    /// the guest sees none either; Keel does not invent caches.
    #[test]
    fn no_host_cache_leaf_means_no_guest_cache() {
        let no_caches = |l: u32, s: u32| match l {
            4 => CpuidResult::default(),
            _ => ones_host(l, s),
        };
        let p = CpuidPolicy::new(&no_caches, GuestCpuFeatures::default());
        for sub in [0, 1, 7] {
            assert_eq!(p.guest_cpuid(4, sub, &no_caches), CpuidResult::default());
        }
        // Highest basic leaf below 4 (leaf 4 beyond max): leaf 4 answers like the
        // highest basic leaf.
        let tiny = |l: u32, s: u32| match l {
            0 => CpuidResult { eax: 2, ..ALL },
            _ => ones_host(l, s),
        };
        let p = CpuidPolicy::new(&tiny, GuestCpuFeatures::default());
        assert_eq!(p.guest_cpuid(4, 0, &tiny), p.guest_cpuid(2, 0, &tiny));
    }

    #[test]
    fn tables_are_consistent() {
        // Every allow-listed bit belongs to a masked register, once.
        for (i, a) in FEATURES.iter().enumerate() {
            assert!(
                MASKED.contains(&(a.leaf, a.subleaf, a.reg)),
                "{} is not in a masked register",
                a.name
            );
            assert!(a.bit < 32);
            for b in &FEATURES[i + 1..] {
                assert!(
                    !(a.leaf == b.leaf && a.reg == b.reg && a.bit == b.bit),
                    "{} twice",
                    a.name
                );
            }
        }
        // Leaves are sorted, unique and within Keel's maxima; masked registers
        // belong to masked leaves.
        for w in LEAVES.windows(2) {
            assert!(w[0].leaf < w[1].leaf);
        }
        for l in LEAVES {
            assert!(l.leaf <= MAX_BASIC || (0x8000_0000..=MAX_EXTENDED).contains(&l.leaf));
        }
        for &(l, _, _) in MASKED {
            let k = LEAVES.iter().find(|x| x.leaf == l).map(|x| x.kind);
            assert!(matches!(
                k,
                Some(LeafKind::Masked | LeafKind::Leaf1 | LeafKind::Leaf7)
            ));
        }
    }

    #[test]
    fn docs_page_mentions_every_row() {
        let page = markdown::page();
        for ft in FEATURES {
            assert!(page.contains(ft.name), "{}", ft.name);
        }
        for l in LEAVES {
            assert!(page.contains(l.name), "{}", l.name);
        }
    }

    proptest! {
        /// Whatever the host says: VMX/SMX/MONITOR/PDCM/x2APIC hidden, the
        /// hypervisor bit set, PMU and MONITOR leaves zero, each masked register a
        /// subset of its allow-list, and no input panics.
        #[test]
        fn invariants(eax in any::<u32>(), ebx in any::<u32>(), ecx in any::<u32>(), edx in any::<u32>(),
                      leaf in any::<u32>(), sub in any::<u32>(), rdtscp in any::<bool>(), xcr0 in any::<u64>(), osx in any::<bool>()) {
            let host = move |l: u32, _s: u32| match l {
                0 => CpuidResult { eax: eax % 0x40, ebx, ecx, edx },
                0x8000_0000 => CpuidResult { eax: 0x8000_0000 | (eax % 0x40), ebx, ecx, edx },
                _ => CpuidResult { eax, ebx, ecx, edx },
            };
            let feat = GuestCpuFeatures { rdtscp, xcr0_allowed: xcr0 & XCR0_POLICY, osxsave: osx };
            let p = CpuidPolicy::new(&host, feat);
            let r1 = p.guest_cpuid(1, sub, &host);
            if p.max_basic() >= 1 {
                prop_assert_eq!(r1.ecx & (bit(3) | bit(5) | bit(6) | bit(15) | bit(21)), 0);
                prop_assert_ne!(r1.ecx & bit(31), 0);
            }
            if p.max_basic() >= 0xa {
                prop_assert_eq!(p.guest_cpuid(0xa, sub, &host), CpuidResult::default());
                prop_assert_eq!(p.guest_cpuid(5, sub, &host), CpuidResult::default());
            }
            // Every masked register shows only allow-listed bits.
            for &(l, s, reg) in MASKED {
                let allowed = FEATURES
                    .iter()
                    .filter(|f| f.leaf == l && f.subleaf == s && f.reg == reg)
                    .fold(0u32, |m, f| m | 1 << f.bit);
                let in_range = if l >= 0x8000_0000 {
                    l <= p.guest_cpuid(0x8000_0000, 0, &host).eax
                } else {
                    l <= p.max_basic()
                };
                if in_range {
                    let r = p.guest_cpuid(l, s, &host);
                    let v = match reg { Reg::Eax => r.eax, Reg::Ebx => r.ebx, Reg::Ecx => r.ecx, Reg::Edx => r.edx };
                    prop_assert_eq!(v & !allowed, 0, "leaf {:#x} {}", l, reg.name());
                }
            }
            let r = p.guest_cpuid(leaf, sub, &host);
            if leaf == 0x8000_0001 && p.guest_cpuid(0x8000_0000, 0, &host).eax >= leaf {
                prop_assert_eq!(r.edx & !(bit(11) | bit(20) | bit(27) | bit(29)), 0);
            }
        }
    }
}
