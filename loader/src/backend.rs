//! The machines Keel boots on, and how `auto` chooses one.

use crate::host::{KvmProbe, Tool, BOCHS_TOOLS, QEMU_TOOLS};
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
    /// QEMU's TCG without any hypervisor: the guest image itself is the
    /// multiboot kernel and runs on (emulated) bare hardware with its native
    /// operations table.
    Native,
}

impl Backend {
    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Bochs => "bochs",
            Self::Tcg => "tcg",
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
        }
    }
}

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
            "native" => Self::Fixed(Backend::Native),
            _ => {
                return Err(format!(
                    "unknown backend {s:?} (auto, kvm, bochs, tcg, native)"
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
        assert_eq!("native".parse(), Ok(BackendChoice::Fixed(Backend::Native)));
        assert!(!Backend::Native.runs_keel() && Backend::Tcg.runs_keel());

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
