//! The first run on a machine whose pinned toolchain came without the bare-metal
//! target: `keel` adds it with `rustup target add`, says so, and goes on. rustup's
//! answers are stubbed by a fake `rustup` (a shell script that records what it
//! was asked).

use keel_loader::cargo::{ensure_target, TargetCheck, BARE_METAL_TARGET};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A scratch directory with a fake rustup whose `target list --installed` prints
/// `installed` and whose `target add` exits with `add_status`.
struct FakeRustup {
    dir: PathBuf,
}

impl FakeRustup {
    fn new(tag: &str, installed: &str, add_status: i32) -> Self {
        let dir = std::env::temp_dir().join(format!("keel-rustup-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = format!(
            "#!/bin/sh\n\
             echo \"$@\" >> '{log}'\n\
             case \"$1 $2\" in\n\
             'target list') printf '{installed}' ;;\n\
             'target add') exit {add_status} ;;\n\
             *) exit 99 ;;\n\
             esac\n",
            log = dir.join("calls").display(),
        );
        let path = dir.join("rustup");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }
    fn program(&self) -> PathBuf {
        self.dir.join("rustup")
    }
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for FakeRustup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn check(fake: &FakeRustup) -> (Result<TargetCheck, String>, String) {
    // A script just written can be "busy" (ETXTBSY) for a moment when another
    // test thread forks while its file descriptor is open: the harness's race,
    // not the tool's, so that one error is tried again on a fresh log.
    for _ in 0..20 {
        let mut log = Vec::new();
        let r = ensure_target(fake.program().as_os_str(), Path::new("/"), &mut log)
            .map_err(|e| format!("{e:#}"));
        match &r {
            Err(e) if e.contains("Text file busy") => {
                let _ = std::fs::remove_file(fake.dir.join("calls"));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => return (r, String::from_utf8(log).unwrap()),
        }
    }
    panic!("the fake rustup stayed busy");
}

#[test]
fn a_missing_target_is_added_and_said() {
    let fake = FakeRustup::new("missing", "x86_64-unknown-linux-gnu\\n", 0);
    let (r, log) = check(&fake);
    assert_eq!(r, Ok(TargetCheck::Added));
    assert_eq!(
        fake.calls(),
        [
            "target list --installed".to_string(),
            format!("target add {BARE_METAL_TARGET}")
        ]
    );
    assert!(
        log.contains(&format!("adding it: rustup target add {BARE_METAL_TARGET}")),
        "{log}"
    );
    assert!(log.contains("added the"), "{log}");
}

#[test]
fn a_present_target_is_left_alone_quietly() {
    let fake = FakeRustup::new(
        "present",
        "x86_64-unknown-linux-gnu\\nx86_64-unknown-none\\n",
        0,
    );
    let (r, log) = check(&fake);
    assert_eq!(r, Ok(TargetCheck::Present));
    assert_eq!(fake.calls(), ["target list --installed"]);
    assert!(log.is_empty(), "{log}");
}

#[test]
fn a_failed_add_is_an_error_naming_the_command() {
    let fake = FakeRustup::new("fails", "x86_64-unknown-linux-gnu\\n", 1);
    let (r, _) = check(&fake);
    let e = r.unwrap_err();
    assert!(
        e.contains(&format!("rustup target add {BARE_METAL_TARGET} failed")),
        "{e}"
    );
}

#[test]
fn without_rustup_the_build_goes_on() {
    let mut log = Vec::new();
    let r = ensure_target(
        std::ffi::OsStr::new("/nonexistent/keel-no-rustup"),
        Path::new("/"),
        &mut log,
    )
    .unwrap();
    assert_eq!(r, TargetCheck::NoRustup);
    assert!(log.is_empty());
}

/// The real rustup of this machine, in the workspace: the pinned toolchain has
/// the target (ci/install-deps.sh adds it, and so would this check).
#[test]
fn this_workspace_has_the_target() {
    let ws = keel_loader::cargo::Workspace::locate().unwrap();
    if keel_loader::host::locate("rustup").is_none() {
        eprintln!("NOTE: no rustup on PATH; not checked");
        return;
    }
    let mut log = Vec::new();
    let r = ensure_target(std::ffi::OsStr::new("rustup"), ws.root(), &mut log).unwrap();
    assert!(
        matches!(r, TargetCheck::Present | TargetCheck::Added),
        "{r:?}"
    );
}
