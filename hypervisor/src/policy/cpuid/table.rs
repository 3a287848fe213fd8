//! The CPUID policy as data: every leaf's kind, the registers filtered by the
//! allow-list, the allow-list itself and the XSAVE components a guest may enable.
//! `fold.rs` applies them; `markdown.rs` documents them.

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

bitflags::bitflags! {
    /// XCR0: the state components XSAVE manages (SDM 13.3). The components Keel
    /// may offer are named; a host's other bits are kept as they are.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Xcr0: u64 {
        /// x87 state (must always be 1).
        const X87 = 1 << 0;
        /// SSE state.
        const SSE = 1 << 1;
        /// AVX state (upper halves of YMM).
        const AVX = 1 << 2;
        const _ = !0;
    }
}

/// The XSAVE state components Keel lets a guest enable (when the host has them):
/// x87, SSE and AVX. MPX, AVX-512, PKRU and AMX stay off: their CPUID features are
/// hidden too.
pub const XCR0_POLICY: Xcr0 = Xcr0::X87.union(Xcr0::SSE).union(Xcr0::AVX);

/// Leaf 0xD subleaf 1 EAX bits shown: XSAVEOPT, XSAVEC, XGETBV with ECX = 1.
/// XSAVES (bit 3) and XFD (bit 4) stay hidden: Keel does not enable XSAVES/XRSTORS
/// and does not virtualise IA32_XSS or IA32_XFD.
pub const XSAVE_SUBLEAF1_EAX: u32 = 0b111;
