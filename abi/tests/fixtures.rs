//! The current crate against every released ABI fixture (`abi/fixtures/<version>/`).
//!
//! This is the mechanical half of Keel's compatibility promise: a released
//! version's structures, constants, hypercall numbers and golden encodings never
//! change, and everything added since belongs to a later version. See
//! `docs/abi-versioning.md`.

use std::path::{Path, PathBuf};

use keel_abi::layout::{self, RELEASED};
use keel_abi::version::AbiVersion;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every fixture directory, by name.
fn fixture_dirs() -> Vec<(String, PathBuf)> {
    let dir = fixtures_dir();
    let mut dirs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable fixtures directory").path())
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_released_version_has_a_fixture_directory_and_vice_versa() {
    let names: Vec<String> = fixture_dirs().into_iter().map(|(n, _)| n).collect();
    let released: Vec<String> = RELEASED.iter().map(|v| v.to_string()).collect();
    let mut sorted = released.clone();
    sorted.sort();
    assert_eq!(
        names, sorted,
        "abi/fixtures/ must hold exactly one directory per version in layout::RELEASED"
    );
}

#[test]
fn the_current_crate_keeps_every_released_fixture() {
    let dirs = fixture_dirs();
    assert!(
        !dirs.is_empty(),
        "no released fixture found: nothing was checked"
    );
    let mut failures = Vec::new();
    for (name, dir) in &dirs {
        let path = dir.join("layout.txt");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let declared = text
            .lines()
            .find_map(|l| l.strip_prefix("abi-version keel "))
            .unwrap_or("<none>");
        assert_eq!(
            declared,
            name.as_str(),
            "{}: its abi-version line must name its directory",
            path.display()
        );
        if let Err(violations) = layout::check(&text) {
            for v in violations {
                failures.push(format!("{}:{v}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the ABI changed incompatibly:\n{}",
        failures.join("\n")
    );
}

/// While the current version is itself released, nothing at all may be added: an
/// addition needs a new (unreleased) version first. Kinds without a `since=`
/// (error codes, exit statuses) are covered by this rule only.
#[test]
fn a_released_current_version_is_frozen_exactly() {
    if !RELEASED.contains(&AbiVersion::CURRENT) {
        return; // the current version is still open for additions
    }
    let path = fixtures_dir()
        .join(AbiVersion::CURRENT.to_string())
        .join("layout.txt");
    let frozen = std::fs::read_to_string(&path).unwrap();
    let now = layout::dump();
    if frozen != now {
        let frozen_lines: std::collections::HashSet<&str> = frozen.lines().collect();
        let added: Vec<&str> = now.lines().filter(|l| !frozen_lines.contains(l)).collect();
        panic!(
            "{} is released (frozen) but the crate's description differs from its \
             fixture; additions belong to the next version: bump \
             AbiVersion::CURRENT and give new items that `since` \
             (docs/abi-versioning.md). New or changed lines:\n{}",
            AbiVersion::CURRENT,
            added.join("\n")
        );
    }
}

#[test]
fn mutating_a_released_fixture_line_is_detected() {
    // Take the real released fixture, change one value, and check that the
    // checker names exactly that item: the test above can fail.
    let path = fixtures_dir().join("0.1").join("layout.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let target = "const console.CONSOLEIO_WRITE_MAX = 4096 since=0.1";
    assert!(text.contains(target));
    let mutated = text.replace(target, "const console.CONSOLEIO_WRITE_MAX = 8192 since=0.1");
    let v = layout::check(&mutated).expect_err("a changed released value must be reported");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].item, "const console.CONSOLEIO_WRITE_MAX");
    assert!(v[0].to_string().contains("4096") || v[0].to_string().contains("8192"));
}

/// Every released version keeps its frozen images (`keel-hypervisor.elf`,
/// `compat-guest.elf`) with their `SHA256SUMS`, or says explicitly in
/// `RELEASE.txt` that they are pending (and why). Frozen images must match their
/// hashes: a released binary is never rebuilt in place.
#[test]
fn every_released_version_keeps_its_frozen_images_or_says_why_not() {
    let mut pending = Vec::new();
    for (name, dir) in fixture_dirs() {
        let record = std::fs::read_to_string(dir.join("RELEASE.txt"))
            .unwrap_or_else(|e| panic!("abi/fixtures/{name}/RELEASE.txt: {e}"));
        assert!(
            record.starts_with(&format!("Keel ABI {name}\n")),
            "abi/fixtures/{name}/RELEASE.txt must start with `Keel ABI {name}`"
        );
        let status = record
            .lines()
            .find_map(|l| l.strip_prefix("binaries: "))
            .unwrap_or_else(|| panic!("abi/fixtures/{name}/RELEASE.txt has no `binaries:` line"));
        if let Some(why) = status.strip_prefix("pending: ") {
            assert!(
                why.len() > 20,
                "abi/fixtures/{name}: say why the images are pending"
            );
            for f in ["keel-hypervisor.elf", "compat-guest.elf", "SHA256SUMS"] {
                assert!(
                    !dir.join(f).exists(),
                    "abi/fixtures/{name}/{f} exists but RELEASE.txt says the images are pending"
                );
            }
            pending.push(name);
            continue;
        }
        assert_eq!(
            status, "frozen",
            "abi/fixtures/{name}: binaries: pending: <why> | frozen"
        );
        let sums = std::fs::read_to_string(dir.join("SHA256SUMS"))
            .unwrap_or_else(|e| panic!("abi/fixtures/{name}/SHA256SUMS: {e}"));
        for f in ["keel-hypervisor.elf", "compat-guest.elf"] {
            assert!(
                sums.lines().any(|l| l.ends_with(&format!("  {f}"))),
                "abi/fixtures/{name}/SHA256SUMS does not list {f}"
            );
        }
        let out = std::process::Command::new("sha256sum")
            .arg("--check")
            .arg("--strict")
            .arg("SHA256SUMS")
            .current_dir(&dir)
            .output()
            .expect("sha256sum (coreutils) is needed to check the frozen images");
        assert!(
            out.status.success(),
            "abi/fixtures/{name}: the frozen images do not match SHA256SUMS:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    if !pending.is_empty() {
        // Not silent: the state is committed in RELEASE.txt and printed here.
        eprintln!(
            "NOTE: frozen images pending for ABI {} (see abi/fixtures/<v>/RELEASE.txt); \
             the boot-both-ways compatibility check cannot run for them yet",
            pending.join(", ")
        );
    }
}
