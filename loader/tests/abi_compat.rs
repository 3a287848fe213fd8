//! ABI compatibility in both directions, with the frozen images of every released
//! version (`abi/fixtures/<version>/`, see `docs/abi-versioning.md`):
//!
//! 1. old guest, new hypervisor: the frozen `compat-guest.elf` of each released
//!    version on the hypervisor built from this tree must pass;
//! 2. new guest, old hypervisor: the `abi_compat` guest built from this tree on
//!    the frozen `keel-hypervisor.elf` of each released version must pass, by
//!    detecting what that hypervisor lacks rather than failing.
//!
//! 3. the other half of the ELF note contract: a guest declaring a *newer* ABI
//!    than the hypervisor's (the version after it: 1.1 for 1.0) is refused before
//!    it runs, with a message naming both versions and status 8 (bad guest
//!    image), by the current hypervisor and by the frozen one of every release.
//!
//! Each boot must end with the hypervisor's `keel: power off, status 0` (which
//! Bochs's exit code must confirm) and the guest's `Test result: SUCCESS`. A
//! released version whose images are still pending (its `RELEASE.txt` says so)
//! is reported, not silently passed; at least one version must have images.
//! The machines are Bochs (the only backend here with VT-x).

use keel_abi::platform::ExitStatus;
use keel_abi::version::AbiVersion;
use keel_loader::backend::Backend;
use keel_loader::cargo::Workspace;
use keel_loader::console::{self, Verdict};
use keel_loader::machine::{self, Boot};
use keel_loader::MachineOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The released versions whose frozen images exist: `(version, directory)`.
fn frozen_versions(root: &Path) -> (Vec<(String, PathBuf)>, Vec<String>) {
    let (mut frozen, mut pending) = (Vec::new(), Vec::new());
    let dir = root.join("abi/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        let record = std::fs::read_to_string(d.join("RELEASE.txt"))
            .unwrap_or_else(|e| panic!("abi/fixtures/{name}/RELEASE.txt: {e}"));
        if record.lines().any(|l| l == "binaries: frozen") {
            frozen.push((name, d));
        } else {
            pending.push(name);
        }
    }
    (frozen, pending)
}

/// Boot `guest` on `hypervisor` under Bochs; print the console's tail.
fn boot(what: &str, hypervisor: &Path, guest: &Path) -> machine::Outcome {
    let opts = MachineOptions::new(Duration::from_secs(300)).on(Backend::Bochs);
    let mut log = Vec::new();
    let m = opts
        .prepare(&mut log)
        .unwrap_or_else(|e| panic!("{what}: no machine: {e:#}"));
    let hv_cmdline = opts.hv_cmdline();
    let boot = Boot {
        hypervisor,
        guest,
        guest_name: "abi_compat",
        guest_args: &[],
        hv_cmdline: &hv_cmdline,
        companions: &[],
    };
    let mut echo = Vec::new();
    let o = machine::run(&m, &boot, &mut echo).unwrap_or_else(|e| panic!("{what}: {e:#}"));
    eprintln!(
        "--- {what} ({:.2}s) ---\n{}",
        o.wall.as_secs_f64(),
        console::tail(&o.console, 40)
    );
    o
}

/// Boot `guest` on `hypervisor` and require a clean pass.
fn must_pass(what: &str, hypervisor: &Path, guest: &Path) {
    let o = boot(what, hypervisor, guest);
    assert_eq!(o.cross_check(), Ok(ExitStatus::Success), "{what}");
    let result = console::test_result(&o.console);
    assert_eq!(
        result.as_ref().map(|r| r.verdict),
        Some(Verdict::Success),
        "{what}: the compatibility guest did not pass"
    );
}

#[test]
fn compatibility_both_ways_with_every_frozen_release() {
    let ws = Workspace::locate().expect("the Keel workspace");
    let (frozen, pending) = frozen_versions(ws.root());
    if !pending.is_empty() {
        eprintln!(
            "NOTE: frozen images pending for ABI {} (see their RELEASE.txt): not booted",
            pending.join(", ")
        );
    }
    assert!(
        !frozen.is_empty(),
        "no released ABI version has frozen images: nothing to boot"
    );
    let hv = ws.build_hypervisor(true).expect("building the hypervisor");
    let guests = ws.build_guests(true).expect("building the guests");
    let compat = guests
        .iter()
        .find(|g| g.name == "abi_compat")
        .expect("the abi_compat guest");
    for (version, dir) in &frozen {
        let what = format!("frozen {version} guest on the current hypervisor");
        let guest = dir.join("compat-guest.elf");
        // The frozen 0.1 guest knows only the 0.x rule that another major
        // version is another interface: the hypervisor tells it 0.2
        // (`AbiVersion::presented_to`), and it must pass like any other.
        must_pass(&what, &hv, &guest);
        must_pass(
            &format!("current abi_compat guest on the frozen {version} hypervisor"),
            &dir.join("keel-hypervisor.elf"),
            &compat.path,
        );
    }
}

/// The version after `v`: what a hypervisor of version `v` must refuse.
fn next_minor(v: AbiVersion) -> AbiVersion {
    AbiVersion {
        minor: v.minor + 1,
        ..v
    }
}

#[test]
fn a_guest_needing_a_newer_abi_is_refused() {
    use keel_abi::note::abi_version_note;
    let ws = Workspace::locate().expect("the Keel workspace");
    let hv = ws.build_hypervisor(true).expect("building the hypervisor");
    let guests = ws.build_guests(true).expect("building the guests");
    let compat = guests
        .iter()
        .find(|g| g.name == "abi_compat")
        .expect("the abi_compat guest");
    let image = std::fs::read(&compat.path).unwrap();
    let declared = keel_abi::layout::oldest_release_runnable_by(AbiVersion::CURRENT)
        .expect("a released version");
    // The current hypervisor, and the frozen one of every released version: each
    // must refuse a guest declaring the version after its own.
    let (frozen, _) = frozen_versions(ws.root());
    let mut hypervisors = vec![(
        AbiVersion::CURRENT,
        "the current hypervisor".to_string(),
        hv,
    )];
    for (version, dir) in &frozen {
        let v = keel_abi::layout::RELEASED
            .iter()
            .copied()
            .find(|r| r.to_string() == *version)
            .unwrap_or_else(|| panic!("abi/fixtures/{version} is not in layout::RELEASED"));
        hypervisors.push((
            v,
            format!("the frozen {version} hypervisor"),
            dir.join("keel-hypervisor.elf"),
        ));
    }
    for (version, what, hypervisor) in &hypervisors {
        // Rewrite the image's ABI note (found by its exact bytes) to declare the
        // version after the hypervisor's. While a version is in progress the
        // current hypervisor also runs a guest declaring it (it previews the
        // calls staged for it: docs/abi-versioning.md), so its refusal starts
        // after that one.
        let newer = match keel_abi::layout::IN_PROGRESS {
            Some(next) if *version == AbiVersion::CURRENT => next_minor(next),
            _ => next_minor(*version),
        };
        let (old, new) = (abi_version_note(declared), abi_version_note(newer));
        let at: Vec<usize> = image
            .windows(old.len())
            .enumerate()
            .filter(|(_, w)| *w == old)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at.len(), 1, "the ABI note must occur exactly once");
        let mut patched = image.clone();
        patched[at[0]..at[0] + new.len()].copy_from_slice(&new);
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("abi_compat_needs_{newer}.elf"));
        std::fs::write(&path, &patched).unwrap();

        let o = boot(
            &format!("a guest declaring ABI {newer} on {what}"),
            hypervisor,
            &path,
        );
        assert_eq!(
            o.cross_check(),
            Ok(ExitStatus::BadGuestImage),
            "{what}, a guest declaring {newer}"
        );
        let want = format!("guest needs ABI {newer}, this hypervisor implements {version}");
        assert!(
            console::lines(&o.console).any(|l| l.contains(&want)),
            "{what}: no refusal naming both versions ({want:?})"
        );
        assert!(
            !o.console.contains("(d1)"),
            "{what}: the refused guest must not have run"
        );
    }
}
