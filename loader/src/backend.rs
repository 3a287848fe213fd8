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
}

impl Backend {
    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Bochs => "bochs",
            Self::Tcg => "tcg",
            Self::Nested => "nested",
        }
    }

    /// The host tools this backend needs.
    pub const fn tools(self) -> &'static [Tool] {
        match self {
            Self::Bochs => BOCHS_TOOLS,
            Self::Kvm | Self::Tcg => QEMU_TOOLS,
            Self::Nested => NESTED_ALL_TOOLS,
        }
    }

    /// The CPU model used when none is asked for.
    pub const fn default_cpu_model(self) -> &'static str {
        match self {
            // Every VMX feature Bochs has (EPT, VPID, unrestricted guest, VMCS shadowing).
            Self::Bochs => "corei7_skylake_x",
            Self::Kvm => "host",
            // QEMU's TCG cannot emulate VMX whatever the model; qemu64 is the plainest.
            Self::Tcg => "qemu64",
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
        Ok(match s {
            "auto" => Self::Auto,
            "kvm" => Self::Fixed(Backend::Kvm),
            "bochs" => Self::Fixed(Backend::Bochs),
            "tcg" => Self::Fixed(Backend::Tcg),
            "nested" => Self::Fixed(Backend::Nested),
            _ => {
                return Err(format!(
                    "unknown backend {s:?} (auto, kvm, bochs, tcg, nested)"
                ))
            }
        })
    }
}

impl BackendChoice {
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
    fn parse_and_resolve() {
        assert_eq!("auto".parse(), Ok(BackendChoice::Auto));
        assert_eq!("tcg".parse(), Ok(BackendChoice::Fixed(Backend::Tcg)));
        assert!("vmware".parse::<BackendChoice>().is_err());
        assert_eq!("nested".parse(), Ok(BackendChoice::Fixed(Backend::Nested)));
        let tools = Backend::Nested.tools();
        for t in BOCHS_TOOLS.iter().chain(QEMU_TOOLS).chain(NESTED_TOOLS) {
            assert!(tools.contains(t), "{t:?}");
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
