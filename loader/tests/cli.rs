//! The `keel` binary's own behaviour: exit codes and messages of the command line
//! (help pages, completions, bad arguments and values, an unknown guest or test,
//! listing, a run that hits its timeout).

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

/// A usage error: exit 64, one line on standard error that says `what`, nothing
/// on standard output, no panic, nothing from Bochs.
fn usage_error(args: &[&str], what: &str) {
    let o = keel(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{args:?}");
    // Before it, the tool may say which backend it chose (`[keel] ...`) and
    // cargo may report a build; the message is one line of the tool's.
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("keel")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {err}");
    assert!(lines[0].starts_with("keel: "), "{err}");
    assert!(lines[0].contains(what), "{args:?}: {err}");
    assert!(
        err.trim_end().ends_with(lines[0]),
        "{args:?}: not last: {err}"
    );
    for bad in ["panicked", "bochsrc", "PANIC", "error: "] {
        assert!(!err.contains(bad), "{args:?}: {err}");
    }
}

#[test]
fn bad_arguments_and_values_exit_64_with_one_line() {
    usage_error(&["run", "--frobnicate"], "cargo keel run --help");
    usage_error(&["test", "--jobs", "many"], "--jobs");
    usage_error(&["frobnicate"], "frobnicate");
    usage_error(&["abi"], "dump, check");
    usage_error(&["run", "--backend", "vmware"], "auto, kvm, bochs, tcg");
    usage_error(&["run", "--timeout", "1e20"], "out of range");
    usage_error(&["run", "--timeout", "0"], "out of range");
    usage_error(&["test", "--category", "nope"], "security");
    usage_error(&["bench", "--check", "--update-baseline"], "cannot be used");
    usage_error(&["completions", "tcsh"], "bash");
    // Checked against the backend before anything is built or booted.
    usage_error(
        &["run", "--backend", "bochs", "--cpu-model", "nosuch"],
        "tigerlake",
    );
    usage_error(
        &["run", "--backend", "tcg", "--cpu-model", "corei7_skylake_x"],
        "not a CPU model of tcg",
    );
    usage_error(
        &["run", "--backend", "bochs", "--mem", "4G"],
        "1 to 2048 MiB",
    );
    usage_error(
        &["run", "--backend", "bochs", "--ips", "999999"],
        "1000000 to 4294967295",
    );
    usage_error(
        &["run", "--backend", "bochs", "--guest-mem", "128"],
        "--guest-mem",
    );
    usage_error(&["run", "--backend", "bochs", "--cpus", "0"], "1 to 16");
    usage_error(&["test", "--backend", "bochs", "--cpus", "17"], "1 to 16");
    usage_error(
        &["run", "--backend", "native", "--cpus", "2"],
        "boots one CPU",
    );
}

#[test]
fn every_command_has_a_help_page_with_examples() {
    for cmd in [
        &[][..],
        &["run"],
        &["test"],
        &["bench"],
        &["abi"],
        &["abi", "dump"],
        &["abi", "check"],
        &["completions"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let o = keel(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("Usage: cargo keel"), "{args:?}: {out}");
        assert!(out.contains("Example"), "{args:?}: {out}");
    }
    // `cargo keel` alone prints the help too, and `help run` is `run --help`.
    let o = keel(&[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Commands:"));
    let o = keel(&["help", "run"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--cpu-model"));
    // The exit codes are documented where a person looks.
    let o = keel(&["--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("64  a usage error") && out.contains("70  the tool failed"),
        "{out}"
    );
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _keel"),
        ("zsh", "#compdef keel"),
        ("fish", "complete -c keel"),
    ] {
        let o = keel(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(marker), "{shell}: {out}");
        for word in ["cpu-model", "update-baseline", "bochs"] {
            assert!(out.contains(word), "{shell} completes no {word}");
        }
    }
}

#[test]
fn unknown_guest_test_or_bench_pattern_is_a_usage_error_naming_the_choices() {
    usage_error(
        &["test", "--backend", "tcg", "no_such_test_*"],
        "no test matches \"no_such_test_*\"",
    );
    let o = keel(&["test", "--backend", "tcg", "no_such_test_*"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("template"));
    usage_error(
        &["run", "--backend", "tcg", "--guest", "no_such_guest"],
        "no guest named \"no_such_guest\"",
    );
    // A gate that a typo opens is no gate.
    usage_error(
        &["bench", "--backend", "bochs", "no_such_figure", "--check"],
        "matches",
    );
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
