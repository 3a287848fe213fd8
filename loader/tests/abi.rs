//! `cargo keel abi dump|check` through the real binary: the command-line wiring of
//! the ABI fixtures (the comparison rules themselves are tested in `keel-abi`).

use std::process::Command;

fn keel(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .output()
        .expect("running keel")
}

#[test]
fn abi_check_passes_against_every_released_fixture() {
    let o = keel(&["abi", "check"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("abi 0.1: ok"), "{text}");
}

#[test]
fn abi_dump_prints_the_fixture_format() {
    let o = keel(&["abi", "dump"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text, keel_abi::layout::dump());
    assert!(text.starts_with("# Keel ABI description"));
    assert!(text.lines().any(|l| l.starts_with("abi-version keel ")));
}

#[test]
fn abi_check_names_a_changed_item() {
    // A released fixture in which one constant differs from the crate: check must
    // fail and name it. Run against a scratch copy of the workspace's fixtures.
    let root = std::env::temp_dir().join(format!("keel-abi-check-{}", std::process::id()));
    let fixture = root.join("abi/fixtures/0.1");
    std::fs::create_dir_all(&fixture).unwrap();
    std::fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
    let dump = keel_abi::layout::dump();
    let changed = dump.replace(
        "const sched.SCHEDOP_SHUTDOWN = 2 ",
        "const sched.SCHEDOP_SHUTDOWN = 3 ",
    );
    assert_ne!(
        changed, dump,
        "the dump no longer has the line this test edits"
    );
    std::fs::write(fixture.join("layout.txt"), changed).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["abi", "check"])
        .env("KEEL_WORKSPACE", &root)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("const sched.SCHEDOP_SHUTDOWN changed"),
        "{text}"
    );
}
