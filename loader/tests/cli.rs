//! The `keel` binary's own behaviour: exit codes and messages of the command line
//! (bad arguments, an unknown test, listing, a run that hits its timeout).

use std::process::{Command, Output};

fn keel(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .output()
        .expect("running keel");
    eprintln!(
        "keel {}: {}\n{}{}",
        args.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn bad_arguments_exit_64_with_usage() {
    let o = keel(&["run", "--frobnicate"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("usage: cargo keel"));
    assert_eq!(keel(&["test", "--jobs", "many"]).status.code(), Some(64));
}

#[test]
fn unknown_test_is_an_error_naming_the_tests() {
    let o = keel(&["test", "--backend", "tcg", "no_such_test_*"]);
    assert_eq!(o.status.code(), Some(70));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no test matches \"no_such_test_*\""), "{err}");
    assert!(err.contains("template"), "{err}");
}

#[test]
fn list_shows_tests_with_category_and_title() {
    let o = keel(&[
        "test",
        "--list",
        "--backend",
        "tcg",
        "--category",
        "functional",
    ]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let template = out
        .lines()
        .find(|l| l.starts_with("template "))
        .expect("the template test is not listed");
    assert!(template.contains(" functional "), "{template}");
    assert!(
        out.lines().all(|l| !l.starts_with("hello ")),
        "hello is not functional"
    );
    assert!(out.lines().last().unwrap().ends_with(" test(s)"));
}

/// A run stopped by its timeout says so, shows the console tail and exits 124.
/// (A 0.2 s limit cannot be met: Bochs's BIOS and GRUB alone take about a second
/// of wall time before the hypervisor starts.)
#[test]
fn run_timeout_exits_124_with_a_message() {
    let o = keel(&["run", "--backend", "bochs", "--timeout", "0.2"]);
    assert_eq!(o.status.code(), Some(124));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("[keel] TIMEOUT: no power-off after"), "{err}");
    assert!(err.contains("Last console lines:"), "{err}");
}
