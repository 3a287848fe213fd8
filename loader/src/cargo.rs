//! Building the bare-metal images with cargo, and finding what was built.
//!
//! The tool runs cargo itself (the hypervisor and the guests are built for
//! `x86_64-unknown-none`, in release mode, with the flags `.cargo/config.toml`
//! gives that target) and learns where the images are from cargo's own
//! `--message-format=json` artifact messages, never by guessing paths: the target
//! directory is whatever cargo uses here (`CARGO_TARGET_DIR` when set, else the
//! workspace's `target/`), the same one `cargo build` by hand would use.
//!
//! The hypervisor and the guests are built by two cargo invocations on purpose:
//! with one, cargo's feature unification would turn on `keel-abi/guest` (the
//! guest-side hypercall wrappers) in the hypervisor's build too.

use crate::error::{Context, Result};
use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The bare-metal target every image is built for.
pub const BARE_METAL_TARGET: &str = "x86_64-unknown-none";

/// The Keel workspace (its root directory, where `.cargo/config.toml` lives).
#[derive(Clone, Debug)]
pub struct Workspace {
    root: PathBuf,
}

/// One binary cargo built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The bin target's name (`keel-hypervisor`, `hello`, ...).
    pub name: String,
    /// The path of the built executable.
    pub path: PathBuf,
}

impl Workspace {
    /// The workspace this tool belongs to: `KEEL_WORKSPACE` if set, else the parent
    /// of the loader crate (the tool always runs from its own checkout).
    pub fn locate() -> Result<Self> {
        let root = match std::env::var_os("KEEL_WORKSPACE") {
            Some(p) => PathBuf::from(p),
            None => Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        if !root.join("Cargo.toml").is_file() {
            crate::bail!("no Keel workspace at {}", root.display());
        }
        Ok(Self { root })
    }

    /// The workspace's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Build the hypervisor image; returns its path.
    pub fn build_hypervisor(&self, quiet: bool) -> Result<PathBuf> {
        let arts = self.build(
            &["-p", "keel-hypervisor", "--bin", "keel-hypervisor"],
            quiet,
        )?;
        arts.into_iter()
            .find(|a| a.name == "keel-hypervisor")
            .map(|a| a.path)
            .ok_or_else(|| anyhow::anyhow!("cargo built no keel-hypervisor executable"))
    }

    /// Build every guest program (`keel-guest`'s bins); returns them sorted by name.
    pub fn build_guests(&self, quiet: bool) -> Result<Vec<Artifact>> {
        let mut arts = self.build(&["-p", "keel-guest", "--bins"], quiet)?;
        arts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(arts)
    }

    /// `cargo build --release --target x86_64-unknown-none <args>`, returning the
    /// executables cargo reports. With `quiet`, cargo's diagnostics are shown only
    /// if the build fails; otherwise they stream to our standard error. The first
    /// build of a run makes sure the toolchain has the target ([`ensure_target`]).
    pub fn build(&self, args: &[&str], quiet: bool) -> Result<Vec<Artifact>> {
        static TARGET_CHECKED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
        {
            let mut checked = TARGET_CHECKED.lock().unwrap_or_else(|e| e.into_inner());
            if !*checked {
                ensure_target(
                    std::ffi::OsStr::new("rustup"),
                    &self.root,
                    &mut std::io::stderr(),
                )?;
                *checked = true;
            }
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&self.root)
            .args(["build", "--release", "--target", BARE_METAL_TARGET])
            .arg("--message-format=json-render-diagnostics")
            .args(args)
            // The images take their compiler flags from .cargo/config.toml's
            // `[target.x86_64-unknown-none]` only: a RUSTFLAGS meant for host
            // builds (coverage, -D warnings) would replace them, and a kernel
            // built without `relocation-model=static` does not boot.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if quiet {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        let what = format!(
            "cargo build --release --target {BARE_METAL_TARGET} {}",
            args.join(" ")
        );
        let mut child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        // Drain stderr on a thread so neither pipe can fill and stall cargo.
        let stderr = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                s
            })
        });
        let mut stdout = String::new();
        if let Some(mut o) = child.stdout.take() {
            o.read_to_string(&mut stdout)
                .context("reading cargo's output")?;
        }
        let status = child
            .wait()
            .with_context(|| format!("waiting for {what}"))?;
        let diagnostics = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
        if !status.success() {
            crate::bail!("{what} failed ({status})\n{diagnostics}");
        }
        Ok(parse_artifacts(&stdout))
    }
}

/// What [`ensure_target`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetCheck {
    /// The toolchain has the target.
    Present,
    /// It had not; `rustup target add` added it.
    Added,
    /// There is no rustup to ask (a toolchain installed otherwise): the build
    /// says whether the target is there.
    NoRustup,
}

/// Make sure the toolchain `dir` builds with (its `rust-toolchain.toml`) has the
/// bare-metal target, adding it with `rustup target add` if not, and saying so on
/// `log`. rustup installs a toolchain file's targets only when it installs the
/// toolchain itself, so a machine that had the pinned toolchain already (from
/// another project) lacks the target, and the first build would fail deep inside
/// with "can't find crate for `core`".
pub fn ensure_target(
    rustup: &std::ffi::OsStr,
    dir: &Path,
    log: &mut dyn std::io::Write,
) -> Result<TargetCheck> {
    let listed = match Command::new(rustup)
        .args(["target", "list", "--installed"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TargetCheck::NoRustup),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "running {} target list --installed",
                    rustup.to_string_lossy()
                )
            })
        }
    };
    if !listed.status.success() {
        crate::bail!(
            "{} target list --installed failed ({}) in {}",
            rustup.to_string_lossy(),
            listed.status,
            dir.display()
        );
    }
    if String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|l| l.trim() == BARE_METAL_TARGET)
    {
        return Ok(TargetCheck::Present);
    }
    let _ = writeln!(
        log,
        "keel: the toolchain has no {BARE_METAL_TARGET} target (the images are built for it); adding it: rustup target add {BARE_METAL_TARGET}"
    );
    let status = Command::new(rustup)
        .args(["target", "add", BARE_METAL_TARGET])
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running rustup target add {BARE_METAL_TARGET}"))?;
    if !status.success() {
        crate::bail!(
            "rustup target add {BARE_METAL_TARGET} failed ({status}); run it by hand in {}",
            dir.display()
        );
    }
    let _ = writeln!(log, "keel: added the {BARE_METAL_TARGET} target");
    Ok(TargetCheck::Added)
}

/// The executables in cargo's JSON messages (`compiler-artifact` with an
/// `executable`), by bin target name.
pub fn parse_artifacts(messages: &str) -> Vec<Artifact> {
    #[derive(Deserialize)]
    struct Message {
        reason: String,
        target: Option<Target>,
        executable: Option<PathBuf>,
    }
    #[derive(Deserialize)]
    struct Target {
        name: String,
    }
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<Message>(l).ok())
        .filter(|m| m.reason == "compiler-artifact")
        .filter_map(|m| {
            Some(Artifact {
                name: m.target?.name,
                path: m.executable?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_from_messages() {
        let msgs = concat!(
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"keel_abi"},"executable":null,"filenames":["/t/libkeel_abi.rlib"]}"#,
            "\n",
            r#"{"reason":"build-script-executed","package_id":"x"}"#,
            "\n",
            "not json at all\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"hello"},"executable":"/t/x86_64-unknown-none/release/hello"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n"
        );
        assert_eq!(
            parse_artifacts(msgs),
            [Artifact {
                name: "hello".into(),
                path: "/t/x86_64-unknown-none/release/hello".into()
            }]
        );
    }

    #[test]
    fn finds_this_workspace() {
        let ws = Workspace::locate().unwrap();
        assert!(ws.root().join("loader/Cargo.toml").is_file());
    }
}
