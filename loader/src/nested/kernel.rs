//! The kernel L0 runs: Debian's stock package, fetched with `apt-get download`
//! and unpacked (the bzImage and the KVM modules only), never installed.

use super::{Fnv, KERNEL_META_PACKAGE};
use crate::error::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The files taken from Debian's kernel package.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The kernel release (`6.1.0-57-amd64`).
    pub release: String,
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// irqbypass, kvm, kvm-intel (uncompressed .ko), in load order.
    pub modules: Vec<PathBuf>,
}

/// The modules /init loads, in order (paths under `lib/modules/<release>/kernel/`).
pub const MODULES: [&str; 3] = [
    "virt/lib/irqbypass.ko",
    "arch/x86/kvm/kvm.ko",
    "arch/x86/kvm/kvm-intel.ko",
];

pub(super) fn run_checked(cmd: &mut Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        crate::bail!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// The kernel package `linux-image-amd64` depends on (`apt-cache depends`).
pub fn kernel_package_name(apt_cache_depends: &str) -> Option<String> {
    apt_cache_depends.lines().find_map(|l| {
        let w = l.trim().strip_prefix("Depends:")?.trim();
        w.starts_with("linux-image-").then(|| w.to_string())
    })
}

/// The content hash of a package, remembered beside it (by size and time) so
/// that 70 MB are hashed once, not on every run.
fn deb_key(deb: &Path) -> Result<String> {
    let m = std::fs::metadata(deb).with_context(|| format!("reading {}", deb.display()))?;
    let stamp = format!("{} {:?}", m.len(), m.modified().ok());
    let memo = deb.with_extension("fnv");
    if let Ok(t) = std::fs::read_to_string(&memo) {
        if let Some((st, key)) = t.trim_end().rsplit_once(' ') {
            if st == stamp {
                return Ok(key.to_string());
            }
        }
    }
    let key = Fnv::default().file(deb)?.hex();
    let _ = std::fs::write(&memo, format!("{stamp} {key}\n"));
    Ok(key)
}

/// Fetch (once) and unpack (once per package content) the stock kernel.
pub fn kernel(cache: &Path, log: &mut dyn Write) -> Result<Kernel> {
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    let depends = run_checked(
        Command::new("apt-cache").args(["depends", KERNEL_META_PACKAGE]),
        "apt-cache depends",
    )?;
    let pkg = kernel_package_name(&String::from_utf8_lossy(&depends)).ok_or_else(|| {
        anyhow::Error::msg(format!(
            "apt-cache depends {KERNEL_META_PACKAGE} names no linux-image package"
        ))
    })?;
    let find_deb = || -> Option<PathBuf> {
        std::fs::read_dir(&debs).ok()?.flatten().find_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb")).then(|| e.path())
        })
    };
    let deb = match find_deb() {
        Some(d) => d,
        None => {
            let _ = writeln!(log, "[keel] nested: apt-get download {pkg}");
            run_checked(
                Command::new("apt-get")
                    .args(["download", "-q", &pkg])
                    .current_dir(&debs),
                &format!("apt-get download {pkg}"),
            )?;
            find_deb()
                .ok_or_else(|| anyhow::Error::msg(format!("apt-get download {pkg} left no .deb")))?
        }
    };
    let release = pkg.trim_start_matches("linux-image-").to_string();
    let key = deb_key(&deb)?;
    let dir = cache.join(format!("kernel-{release}-{key}"));
    let vmlinuz = dir.join(format!("boot/vmlinuz-{release}"));
    let mdir = dir.join(format!("lib/modules/{release}/kernel"));
    let modules: Vec<PathBuf> = MODULES.iter().map(|m| mdir.join(m)).collect();
    if vmlinuz.is_file() && modules.iter().all(|m| m.is_file()) {
        return Ok(Kernel {
            release,
            vmlinuz,
            modules,
        });
    }
    let _ = writeln!(
        log,
        "[keel] nested: unpacking {} (kernel and KVM modules only)",
        deb.display()
    );
    let tmp = cache.join(format!("kernel-{release}-{key}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    // dpkg-deb --fsys-tarfile | tar -x of only the files we need.
    let mut tarball = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb --fsys-tarfile")?;
    let mut tar = Command::new("tar");
    tar.arg("-x")
        .arg("-C")
        .arg(&tmp)
        .arg("--wildcards")
        .arg(format!("./boot/vmlinuz-{release}"));
    for m in MODULES {
        tar.arg(format!("./lib/modules/{release}/kernel/{m}*"));
    }
    let status = tar
        .stdin(tarball.stdout.take().expect("piped"))
        .status()
        .context("running tar")?;
    let _ = tarball.wait();
    if !status.success() {
        crate::bail!("unpacking {} with tar failed ({status})", deb.display());
    }
    let tmdir = tmp.join(format!("lib/modules/{release}/kernel"));
    for m in MODULES {
        let plain = tmdir.join(m);
        if plain.is_file() {
            continue;
        }
        for (ext, tool) in [("xz", "xz"), ("zst", "zstd")] {
            let packed = tmdir.join(format!("{m}.{ext}"));
            if packed.is_file() {
                run_checked(
                    Command::new(tool).arg("-d").arg("-q").arg(&packed),
                    &format!("{tool} -d {}", packed.display()),
                )?;
            }
        }
        if !plain.is_file() {
            crate::bail!("{} has no {m}", deb.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir)?;
    Ok(Kernel {
        release,
        vmlinuz,
        modules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_package_from_apt_cache() {
        let t = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n";
        assert_eq!(
            kernel_package_name(t).as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        assert_eq!(kernel_package_name("x\n  Depends: foo\n"), None);
    }
}
