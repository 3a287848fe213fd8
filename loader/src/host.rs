//! The host machine: which emulators and image tools it has, installing the
//! missing ones, and whether KVM can run a hypervisor (nested VMX).

use crate::error::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A host program or file a backend needs, and the Debian package that has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tool {
    /// An absolute path, or a command name looked up in `PATH`.
    pub path: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
}

/// What booting under Bochs needs: the emulator and its ROMs, and GRUB's ISO tooling.
pub const BOCHS_TOOLS: &[Tool] = &[
    Tool {
        path: "bochs-bin",
        package: "bochs",
    },
    Tool {
        path: "/usr/share/bochs/BIOS-bochs-latest",
        package: "bochsbios",
    },
    Tool {
        path: "/usr/share/bochs/VGABIOS-lgpl-latest",
        package: "vgabios",
    },
    Tool {
        path: "grub-mkrescue",
        package: "grub-common",
    },
    Tool {
        path: "/usr/lib/grub/i386-pc/multiboot2.mod",
        package: "grub-pc-bin",
    },
    Tool {
        path: "xorriso",
        package: "xorriso",
    },
    Tool {
        path: "mformat",
        package: "mtools",
    },
];

/// What booting under QEMU (TCG or KVM) needs.
pub const QEMU_TOOLS: &[Tool] = &[Tool {
    path: "qemu-system-x86_64",
    package: "qemu-system-x86",
}];

/// Find a command in `PATH` (or check an absolute path).
pub fn locate(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(path))
        .find(|c| c.is_file())
}

/// The tools of `tools` that are not on this machine.
pub fn missing(tools: &[Tool]) -> Vec<Tool> {
    tools
        .iter()
        .copied()
        .filter(|t| locate(t.path).is_none())
        .collect()
}

/// The command a person would run to install `packages`.
pub fn install_command(packages: &[&str]) -> String {
    format!(
        "sudo apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    )
}

/// One installer at a time: parallel test runs would otherwise race for apt's lock.
static INSTALL: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn passwordless_sudo() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Make sure `tools` are present: install what is missing with apt-get when we are
/// root or have passwordless sudo (non-interactively); otherwise fail with the
/// exact command to run. Progress goes to `log`.
pub fn ensure_tools(tools: &[Tool], log: &mut dyn Write) -> Result<()> {
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let missing = missing(tools);
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    packages.dedup();
    let what: Vec<&str> = missing.iter().map(|t| t.path).collect();
    let sudo: &[&str] = if is_root() {
        &[]
    } else if passwordless_sudo() {
        &["sudo", "-n"]
    } else {
        crate::bail!(
            "missing host tools ({}); install them with:\n    {}",
            what.join(", "),
            install_command(&packages)
        );
    };
    let _ = writeln!(
        log,
        "keel: installing missing host tools ({}): apt-get install {}",
        what.join(", "),
        packages.join(" ")
    );
    let apt = |args: &[&str]| -> Result<()> {
        let mut argv: Vec<&str> = sudo.to_vec();
        argv.push("apt-get");
        argv.extend_from_slice(args);
        let status = Command::new(argv[0])
            .args(&argv[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running {}", argv.join(" ")))?;
        if !status.success() {
            crate::bail!("{} failed ({status})", argv.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend_from_slice(&packages);
    apt(&install).with_context(|| {
        format!(
            "installing host tools; to do it by hand:\n    {}",
            install_command(&packages)
        )
    })?;
    let still: Vec<&str> = self::missing(tools).iter().map(|t| t.path).collect();
    if !still.is_empty() {
        crate::bail!("still missing after apt-get install: {}", still.join(", "));
    }
    Ok(())
}

/// What the host says about running a hypervisor under KVM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmProbe {
    /// `/dev/kvm` opened read-write, or why not.
    pub dev_kvm: Result<(), String>,
    /// Contents of `/sys/module/kvm_intel/parameters/nested` (None: kvm_intel not loaded).
    pub nested: Option<String>,
    /// `/proc/cpuinfo` lists the `vmx` flag.
    pub cpu_vmx: bool,
}

impl KvmProbe {
    /// Look at this machine.
    pub fn probe() -> Self {
        let dev_kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(drop)
            .map_err(|e| e.to_string());
        let nested = std::fs::read_to_string("/sys/module/kvm_intel/parameters/nested")
            .ok()
            .map(|s| s.trim().to_string());
        let cpu_vmx = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| cpuinfo_has_vmx(&s));
        Self {
            dev_kvm,
            nested,
            cpu_vmx,
        }
    }

    /// Can KVM run Keel (which needs VMX inside the KVM guest)? `Err` says why not.
    pub fn nested_vmx(&self) -> Result<(), String> {
        if let Err(e) = &self.dev_kvm {
            return Err(format!("/dev/kvm is not usable ({e})"));
        }
        if !self.cpu_vmx {
            return Err(
                "/dev/kvm is usable but the host CPU has no vmx flag in /proc/cpuinfo \
                 (KVM could not offer VT-x to the hypervisor)"
                    .into(),
            );
        }
        match self.nested.as_deref() {
            None => {
                Err("kvm_intel is not loaded (no /sys/module/kvm_intel/parameters/nested)".into())
            }
            Some("Y" | "y" | "1") => Ok(()),
            Some(other) => Err(format!(
                "kvm_intel nested virtualization is off (nested={other})"
            )),
        }
    }
}

/// Does a `/proc/cpuinfo` text list the `vmx` flag?
pub fn cpuinfo_has_vmx(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmx_flag() {
        assert!(cpuinfo_has_vmx(
            "processor\t: 0\nflags\t\t: fpu vme vmx sse\n"
        ));
        assert!(!cpuinfo_has_vmx(
            "flags\t\t: fpu svm sse\nvmx flags\t: ept\n"
        ));
        assert!(!cpuinfo_has_vmx("flags\t\t: fpu vmxx\n"));
    }

    #[test]
    fn nested_vmx_needs_all_three() {
        let good = KvmProbe {
            dev_kvm: Ok(()),
            nested: Some("Y".into()),
            cpu_vmx: true,
        };
        assert!(good.nested_vmx().is_ok());
        let one = KvmProbe {
            nested: Some("1".into()),
            ..good.clone()
        };
        assert!(one.nested_vmx().is_ok());
        let off = KvmProbe {
            nested: Some("N".into()),
            ..good.clone()
        };
        assert!(off.nested_vmx().unwrap_err().contains("nested=N"));
        let amd = KvmProbe {
            nested: None,
            cpu_vmx: false,
            ..good.clone()
        };
        assert!(amd.nested_vmx().unwrap_err().contains("vmx"));
        let nodev = KvmProbe {
            dev_kvm: Err("Permission denied".into()),
            ..good
        };
        assert!(nodev.nested_vmx().unwrap_err().contains("/dev/kvm"));
    }

    #[test]
    fn locate_and_missing() {
        assert!(locate("sh").is_some());
        assert!(locate("/").is_some());
        assert!(locate("/nonexistent/keel-tool").is_none());
        let fake = Tool {
            path: "keel-no-such-command",
            package: "keel-no-such-package",
        };
        assert_eq!(missing(&[fake]), [fake]);
        assert_eq!(
            install_command(&["bochs", "xorriso"]),
            "sudo apt-get install -y --no-install-recommends bochs xorriso"
        );
    }
}
