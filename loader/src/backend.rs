//! The machines Keel boots on, and how `auto` chooses one.

use crate::host::{KvmProbe, Tool, BOCHS_TOOLS, QEMU_TOOLS};
use crate::nested::NESTED_TOOLS;
use std::fmt;
use std::str::FromStr;

/// A backend as asked for on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// KVM where it can run a hypervisor (nested VMX), else Bochs.
    #[default]
    Auto,
    /// A concrete backend.
    Fixed(Backend),
}

/// A concrete backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// QEMU with KVM (`-enable-kvm -cpu host`): real VT-x, needs nested VMX.
    Kvm,
    /// Bochs 2.7: emulated VT-x, deterministic (the TSC counts instructions).
    Bochs,
    /// QEMU's TCG: no VT-x at all; exercises the hypervisor's "no VT-x" path.
    Tcg,
    /// QEMU with KVM inside Linux inside Bochs: real KVM (L0) beneath Keel on a
    /// host without VT-x ([`crate::nested`]). Many guests share one Linux boot.
    Nested,
    /// QEMU's TCG without any hypervisor: the guest image itself is the
    /// multiboot kernel and runs on (emulated) bare hardware with its native
    /// operations table.
    Native,
}

/// The CPU models Bochs 2.7 offers (`bochs-bin --help cpu`, Debian's build).
pub const BOCHS_CPU_MODELS: &[&str] = &[
    "bx_generic",
    "pentium",
    "pentium_mmx",
    "amd_k6_2_chomper",
    "p2_klamath",
    "p3_katmai",
    "p4_willamette",
    "core_duo_t2400_yonah",
    "atom_n270",
    "p4_prescott_celeron_336",
    "athlon64_clawhammer",
    "athlon64_venice",
    "turion64_tyler",
    "phenom_8650_toliman",
    "core2_penryn_t9600",
    "corei5_lynnfield_750",
    "corei5_arrandale_m520",
    "corei7_sandy_bridge_2600k",
    "zambezi",
    "trinity_apu",
    "ryzen",
    "corei7_ivy_bridge_3770k",
    "corei7_haswell_4770",
    "broadwell_ult",
    "corei7_skylake_x",
    "corei3_cnl",
    "corei7_icelake_u",
    "tigerlake",
];

/// The x86 CPU models QEMU offers (`qemu-system-x86_64 -cpu help`, QEMU 7.2 as
/// Debian 12 ships it). A model may be followed by `,feature` options; only the
/// name before the first comma is checked.
pub const QEMU_CPU_MODELS: &[&str] = &[
    "486",
    "486-v1",
    "Broadwell",
    "Broadwell-IBRS",
    "Broadwell-noTSX",
    "Broadwell-noTSX-IBRS",
    "Broadwell-v1",
    "Broadwell-v2",
    "Broadwell-v3",
    "Broadwell-v4",
    "Cascadelake-Server",
    "Cascadelake-Server-noTSX",
    "Cascadelake-Server-v1",
    "Cascadelake-Server-v2",
    "Cascadelake-Server-v3",
    "Cascadelake-Server-v4",
    "Cascadelake-Server-v5",
    "Conroe",
    "Conroe-v1",
    "Cooperlake",
    "Cooperlake-v1",
    "Cooperlake-v2",
    "Denverton",
    "Denverton-v1",
    "Denverton-v2",
    "Denverton-v3",
    "Dhyana",
    "Dhyana-v1",
    "Dhyana-v2",
    "EPYC",
    "EPYC-IBPB",
    "EPYC-Milan",
    "EPYC-Milan-v1",
    "EPYC-Rome",
    "EPYC-Rome-v1",
    "EPYC-Rome-v2",
    "EPYC-v1",
    "EPYC-v2",
    "EPYC-v3",
    "Haswell",
    "Haswell-IBRS",
    "Haswell-noTSX",
    "Haswell-noTSX-IBRS",
    "Haswell-v1",
    "Haswell-v2",
    "Haswell-v3",
    "Haswell-v4",
    "Icelake-Server",
    "Icelake-Server-noTSX",
    "Icelake-Server-v1",
    "Icelake-Server-v2",
    "Icelake-Server-v3",
    "Icelake-Server-v4",
    "Icelake-Server-v5",
    "Icelake-Server-v6",
    "IvyBridge",
    "IvyBridge-IBRS",
    "IvyBridge-v1",
    "IvyBridge-v2",
    "KnightsMill",
    "KnightsMill-v1",
    "Nehalem",
    "Nehalem-IBRS",
    "Nehalem-v1",
    "Nehalem-v2",
    "Opteron_G1",
    "Opteron_G1-v1",
    "Opteron_G2",
    "Opteron_G2-v1",
    "Opteron_G3",
    "Opteron_G3-v1",
    "Opteron_G4",
    "Opteron_G4-v1",
    "Opteron_G5",
    "Opteron_G5-v1",
    "Penryn",
    "Penryn-v1",
    "SandyBridge",
    "SandyBridge-IBRS",
    "SandyBridge-v1",
    "SandyBridge-v2",
    "Skylake-Client",
    "Skylake-Client-IBRS",
    "Skylake-Client-noTSX-IBRS",
    "Skylake-Client-v1",
    "Skylake-Client-v2",
    "Skylake-Client-v3",
    "Skylake-Client-v4",
    "Skylake-Server",
    "Skylake-Server-IBRS",
    "Skylake-Server-noTSX-IBRS",
    "Skylake-Server-v1",
    "Skylake-Server-v2",
    "Skylake-Server-v3",
    "Skylake-Server-v4",
    "Skylake-Server-v5",
    "Snowridge",
    "Snowridge-v1",
    "Snowridge-v2",
    "Snowridge-v3",
    "Snowridge-v4",
    "Westmere",
    "Westmere-IBRS",
    "Westmere-v1",
    "Westmere-v2",
    "athlon",
    "athlon-v1",
    "core2duo",
    "core2duo-v1",
    "coreduo",
    "coreduo-v1",
    "kvm32",
    "kvm32-v1",
    "kvm64",
    "kvm64-v1",
    "n270",
    "n270-v1",
    "pentium",
    "pentium-v1",
    "pentium2",
    "pentium2-v1",
    "pentium3",
    "pentium3-v1",
    "phenom",
    "phenom-v1",
    "qemu32",
    "qemu32-v1",
    "qemu64",
    "qemu64-v1",
    "base",
    "host",
    "max",
];

/// The memory Bochs 2.7 accepts (`megs:`; its `host_size` range is 1 to 2048 MiB).
pub const BOCHS_MEM_MIB: std::ops::RangeInclusive<u32> = 1..=2048;
/// The memory the tool gives QEMU: at least 1 MiB, at most 1 TiB (QEMU's own
/// limit is higher; the host's memory is the real one).
pub const QEMU_MEM_MIB: std::ops::RangeInclusive<u32> = 1..=1 << 20;
/// Bochs 2.7's `ips` range.
pub const BOCHS_IPS: std::ops::RangeInclusive<u64> = 1_000_000..=4_294_967_295;

impl Backend {
    /// Every backend, in the order the command line lists them.
    pub const ALL: &'static [Backend] = &[
        Self::Kvm,
        Self::Bochs,
        Self::Tcg,
        Self::Nested,
        Self::Native,
    ];

    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Bochs => "bochs",
            Self::Tcg => "tcg",
            Self::Nested => "nested",
            Self::Native => "native",
        }
    }

    /// Whether Keel runs on this backend (every one but `native`).
    pub const fn runs_keel(self) -> bool {
        !matches!(self, Self::Native)
    }

    /// The host tools this backend needs.
    pub const fn tools(self) -> &'static [Tool] {
        match self {
            Self::Bochs => BOCHS_TOOLS,
            Self::Kvm | Self::Tcg | Self::Native => QEMU_TOOLS,
            Self::Nested => NESTED_ALL_TOOLS,
        }
    }

    /// The CPU models this backend offers.
    pub const fn cpu_models(self) -> &'static [&'static str] {
        match self {
            Self::Bochs => BOCHS_CPU_MODELS,
            // QEMU's -cpu inside the nested machine.
            Self::Kvm | Self::Tcg | Self::Nested | Self::Native => QEMU_CPU_MODELS,
        }
    }

    /// Is `model` one of this backend's CPU models? (QEMU's `model,+feature`
    /// form is checked by its model name.)
    pub fn has_cpu_model(self, model: &str) -> bool {
        let name = match self {
            Self::Bochs => model,
            Self::Kvm | Self::Tcg | Self::Nested | Self::Native => {
                model.split(',').next().unwrap_or(model)
            }
        };
        self.cpu_models().contains(&name)
    }

    /// The machine memory sizes (MiB) this backend accepts.
    pub const fn mem_range_mib(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Self::Bochs => BOCHS_MEM_MIB,
            Self::Kvm | Self::Tcg | Self::Native => QEMU_MEM_MIB,
            // QEMU's memory inside L0, which has `nested::L0_MEGS` in all.
            Self::Nested => 1..=1024,
        }
    }

    /// The CPU model used when none is asked for.
    pub const fn default_cpu_model(self) -> &'static str {
        match self {
            // Every VMX feature Bochs has (EPT, VPID, unrestricted guest, VMCS shadowing).
            Self::Bochs => "corei7_skylake_x",
            Self::Kvm => "host",
            // QEMU's TCG cannot emulate VMX whatever the model; qemu64 is the plainest.
            Self::Tcg | Self::Native => "qemu64",
            // QEMU's -cpu inside the nested machine (L0's Bochs model is fixed:
            // `nested::L0_CPU_MODEL`).
            Self::Nested => "host",
        }
    }
}

/// Everything the nested backend needs: Bochs, QEMU, and the image tools.
const NESTED_ALL_TOOLS: &[Tool] = &{
    const B: usize = BOCHS_TOOLS.len();
    const Q: usize = QEMU_TOOLS.len();
    const N: usize = NESTED_TOOLS.len();
    let mut all = [BOCHS_TOOLS[0]; B + Q + N];
    let mut i = 0;
    while i < B {
        all[i] = BOCHS_TOOLS[i];
        i += 1;
    }
    while i < B + Q {
        all[i] = QEMU_TOOLS[i - B];
        i += 1;
    }
    while i < B + Q + N {
        all[i] = NESTED_TOOLS[i - B - Q];
        i += 1;
    }
    all
};

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Self::Auto);
        }
        Backend::ALL
            .iter()
            .find(|b| b.name() == s)
            .map(|&b| Self::Fixed(b))
            .ok_or_else(|| format!("unknown backend {s:?} ({})", Self::NAMES.join(", ")))
    }
}

impl BackendChoice {
    /// Every name the command line accepts: `auto`, then every backend's.
    pub const NAMES: &'static [&'static str] = &["auto", "kvm", "bochs", "tcg", "nested", "native"];

    /// The concrete backend, and a sentence saying why it was chosen.
    pub fn resolve(self, probe: &KvmProbe) -> (Backend, String) {
        match self {
            Self::Fixed(b) => (b, format!("backend {b} (asked for)")),
            Self::Auto => match probe.nested_vmx() {
                Ok(()) => (
                    Backend::Kvm,
                    "backend kvm (auto: /dev/kvm is usable and the host offers nested VMX)".into(),
                ),
                Err(why) => (
                    Backend::Bochs,
                    format!("backend bochs (auto: not KVM because {why})"),
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_models_and_memory() {
        for b in Backend::ALL {
            assert!(b.has_cpu_model(b.default_cpu_model()), "{b}");
        }
        assert!(Backend::Bochs.has_cpu_model("tigerlake"));
        assert!(!Backend::Bochs.has_cpu_model("nosuch"));
        assert!(!Backend::Bochs.has_cpu_model("qemu64"));
        assert!(Backend::Tcg.has_cpu_model("Skylake-Server,+vmx"));
        assert!(!Backend::Tcg.has_cpu_model("tigerlake"));
        assert!(Backend::Bochs.mem_range_mib().contains(&2048));
        assert!(!Backend::Bochs.mem_range_mib().contains(&4096));
        assert!(Backend::Tcg.mem_range_mib().contains(&4096));
    }

    #[test]
    fn parse_and_resolve() {
        assert_eq!("auto".parse(), Ok(BackendChoice::Auto));
        assert_eq!("tcg".parse(), Ok(BackendChoice::Fixed(Backend::Tcg)));
        assert!("vmware".parse::<BackendChoice>().is_err());
        assert_eq!("native".parse(), Ok(BackendChoice::Fixed(Backend::Native)));
        assert!(!Backend::Native.runs_keel() && Backend::Tcg.runs_keel());
        assert_eq!("nested".parse(), Ok(BackendChoice::Fixed(Backend::Nested)));
        let tools = Backend::Nested.tools();
        for t in BOCHS_TOOLS.iter().chain(QEMU_TOOLS).chain(NESTED_TOOLS) {
            assert!(tools.contains(t), "{t:?}");
        }
        // The command line's list is every backend's name, after `auto`.
        let names: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(BackendChoice::NAMES[0], "auto");
        assert_eq!(BackendChoice::NAMES[1..], names[..]);
        for n in BackendChoice::NAMES {
            assert!(n.parse::<BackendChoice>().is_ok(), "{n}");
        }

        let nested = KvmProbe {
            dev_kvm: Ok(()),
            nested: Some("Y".into()),
            cpu_vmx: true,
        };
        assert_eq!(BackendChoice::Auto.resolve(&nested).0, Backend::Kvm);
        let amd = KvmProbe {
            nested: None,
            cpu_vmx: false,
            ..nested.clone()
        };
        let (b, why) = BackendChoice::Auto.resolve(&amd);
        assert_eq!(b, Backend::Bochs);
        assert!(why.contains("vmx"), "{why}");
        assert_eq!(
            BackendChoice::Fixed(Backend::Tcg).resolve(&nested).0,
            Backend::Tcg
        );
    }
}
