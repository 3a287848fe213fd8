//! Boot tests: the real hypervisor and the demo guest, end to end, through the
//! same library calls as `cargo keel run`.
//!
//! - the demo under Bochs on three CPU models with different VMX capabilities
//!   (Skylake-X: everything; Sandy Bridge: no VMCS shadowing, no 1 GiB EPT pages;
//!   Tiger Lake: a different VMCS revision id), asserting the guest's output and a
//!   teardown that brings every page count back to zero, and a clean power-off
//!   with status 0 that Bochs's exit code agrees with;
//! - the no-VT-x path under QEMU TCG (which cannot emulate VMX), asserting the
//!   hypervisor's message and status 4.
//!
//! These boot real machines and take seconds each; wall times are printed, never
//! asserted.

use keel_abi::platform::ExitStatus;
use keel_loader::backend::Backend;
use keel_loader::{console, MachineOptions, RunReport};
use std::time::Duration;

/// Boot the demo guest; return the report and print the console (shown on failure).
fn run_demo(opts: &MachineOptions) -> RunReport {
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let r = keel_loader::run(keel_loader::DEFAULT_GUEST, opts, &mut out, &mut log);
    eprintln!("{}", String::from_utf8_lossy(&log));
    let r = r.unwrap_or_else(|e| panic!("keel run failed: {e:#}"));
    eprintln!("--- console ---\n{}", r.outcome.console);
    eprintln!("wall time {:.2}s", r.outcome.wall.as_secs_f64());
    // The live echo is the console, minus carriage returns.
    assert_eq!(
        String::from_utf8_lossy(&out),
        r.outcome.console.replace('\r', "")
    );
    r
}

fn demo_on_bochs(model: &str) {
    let opts = MachineOptions::new(Duration::from_secs(300))
        .on(Backend::Bochs)
        .cpu(model);
    let r = run_demo(&opts);
    let c = &r.outcome.console;
    assert_eq!(r.outcome.cross_check(), Ok(ExitStatus::Success), "{model}");
    assert_eq!(r.exit_code, 0);
    // The guest's own output, relayed by the hypervisor with its domain tag.
    assert!(
        console::lines(c).any(|l| l.starts_with("(d1) Hello from a Keel PV guest")),
        "{model}: no greeting from the guest"
    );
    assert!(
        console::lines(c).any(|l| l.starts_with(&format!(
            "(d1) xen_version: Keel ABI {}",
            keel_abi::version::AbiVersion::CURRENT
        ))),
        "{model}: no version line"
    );
    assert_eq!(
        console::test_result(c).map(|r| r.verdict),
        Some(keel_loader::console::Verdict::Success),
        "{model}"
    );
    assert!(
        console::lines(c).any(|l| l.starts_with("keel: domain 1 shut down: poweroff")),
        "{model}: no shutdown line"
    );
    // The domain was torn down and its page accounting came back to zero.
    assert!(
        console::lines(c).any(|l| l.starts_with("keel: domain 1: torn down")
            && l.ends_with("every count back to zero")),
        "{model}: no teardown line"
    );
    // The power-off line is the last line.
    assert_eq!(
        console::lines(c)
            .last()
            .and_then(keel_abi::platform::parse_power_off_line),
        Some(ExitStatus::Success)
    );
}

#[test]
fn demo_boots_on_bochs_skylake_x() {
    demo_on_bochs("corei7_skylake_x");
}

#[test]
fn demo_boots_on_bochs_sandy_bridge() {
    demo_on_bochs("corei7_sandy_bridge_2600k");
}

#[test]
fn demo_boots_on_bochs_tigerlake() {
    demo_on_bochs("tigerlake");
}

#[test]
fn no_vtx_under_qemu_tcg() {
    let opts = MachineOptions::new(Duration::from_secs(120)).on(Backend::Tcg);
    let r = run_demo(&opts);
    let c = &r.outcome.console;
    assert_eq!(r.outcome.cross_check(), Ok(ExitStatus::NoVmx));
    assert_eq!(r.exit_code, 4);
    // One clear line saying VT-x is missing, before the power-off line.
    let lines: Vec<&str> = console::lines(c).collect();
    let n = lines.len();
    assert!(
        lines[..n.saturating_sub(1)]
            .iter()
            .any(|l| l.starts_with("keel:")
                && l.contains("VT-x")
                && l.to_lowercase().contains("no")),
        "no 'no VT-x' message"
    );
    // The guest never ran.
    assert!(!lines.iter().any(|l| l.starts_with("(d1)")));
}

/// A hypervisor that dies under a test (here: its own `keel_selftest=ud2`, an
/// invalid opcode after boot) never lets the guest print a verdict: the runner
/// calls it CRASH and shows the hypervisor's report and power-off status.
#[test]
fn hypervisor_panic_under_a_test_is_a_crash_with_its_report() {
    let mut machine = MachineOptions::new(Duration::from_secs(120)).on(Backend::Tcg);
    machine.hv_args.push("keel_selftest=ud2".into());
    let opts = keel_loader::TestOptions::new(["template"], machine);
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let summary = keel_loader::test(&opts, &mut out, &mut log).unwrap();
    let text = String::from_utf8_lossy(&out);
    eprintln!("{}{text}", String::from_utf8_lossy(&log));
    assert_eq!(summary.results.len(), 1);
    let r = &summary.results[0];
    assert_eq!(r.verdict, keel_loader::console::Verdict::Crash);
    assert!(
        r.reason.contains("status 3 (hypervisor panic)"),
        "{}",
        r.reason
    );
    assert!(r.details.contains("FATAL: exception 6"), "{}", r.details);
    assert!(r.details.contains("power-off status: 3"), "{}", r.details);
    assert!(text.lines().next().unwrap().starts_with("CRASH   template"));
    assert_eq!(text.lines().last(), Some("0 passed, 1 failed, 0 skipped"));
    assert!(!summary.ok());
}

/// `--seed N` reaches the guest's command line as `seed=N` (the fuzzer replays
/// with it), after the guest's name.
#[test]
fn seed_reaches_the_guest_command_line() {
    let opts = keel_loader::TestOptions {
        seed: Some(4242),
        ..keel_loader::TestOptions::new(
            ["template"],
            MachineOptions::new(Duration::from_secs(300)).on(Backend::Bochs),
        )
    };
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let summary = keel_loader::test(&opts, &mut out, &mut log).unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&log),
        String::from_utf8_lossy(&out)
    );
    let r = &summary.results[0];
    assert_eq!(
        r.verdict,
        keel_loader::console::Verdict::Success,
        "{}",
        r.reason
    );
    assert!(
        r.console.contains("command line \"template seed=4242\""),
        "{}",
        r.console
    );
}
