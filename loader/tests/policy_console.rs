//! The trap-and-emulate policy as seen from the host console, end to
//! end under Bochs: what a guest test cannot see from inside.
//!
//! - `io_ports`: COM1 output appears as a second console, prefixed `(d1:com1) `
//!   (never as `(d1) `, so COM1 cannot forge a verdict); each empty port is logged
//!   exactly once however often the guest touches it.
//! - `bench_policy`: the pass-through WRMSR benchmark causes no WRMSR exit at all
//!   (the hypervisor's per-reason exit counts, printed at domain end).

use keel_loader::backend::Backend;
use keel_loader::{console, MachineOptions, RunReport};
use std::time::Duration;

fn run(guest: &str) -> RunReport {
    let opts = MachineOptions::new(Duration::from_secs(300))
        .on(Backend::Bochs)
        .cpu("corei7_skylake_x");
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let r = keel_loader::run(guest, &opts, &mut out, &mut log);
    eprintln!("{}", String::from_utf8_lossy(&log));
    let r = r.unwrap_or_else(|e| panic!("keel run {guest} failed: {e:#}"));
    eprintln!("--- console ---\n{}", r.outcome.console);
    assert_eq!(
        console::test_result(&r.outcome.console).map(|t| t.verdict),
        Some(console::Verdict::Success),
        "{guest}"
    );
    r
}

#[test]
fn com1_is_a_second_console_and_empty_ports_are_logged_once() {
    let r = run("io_ports");
    let c = &r.outcome.console;
    let com1: Vec<&str> = console::lines(c)
        .filter_map(|l| l.strip_prefix("(d1:com1) "))
        .collect();
    assert_eq!(
        com1,
        ["hello from COM1", "second line via rep outsb", "offs down"],
        "COM1 lines"
    );
    // The guest reads port 0x60 with IN of 1, 2 and 4 bytes: one log line.
    let logged = |port: &str| {
        console::lines(c)
            .filter(|l| l.starts_with("keel: ") && l.contains(&format!("port {port} ")))
            .count()
    };
    assert_eq!(logged("0x60"), 1, "port 0x60 logged once");
    assert_eq!(logged("0x2e8"), 1, "port 0x2e8 logged once");
    assert_eq!(logged("0x80"), 0, "port 0x80 is ignored silently");
}

#[test]
fn pass_through_wrmsr_never_exits() {
    let r = run("bench_policy");
    let c = &r.outcome.console;
    let exits = |reason: u16| {
        console::lines(c)
            .filter_map(|l| l.strip_prefix("keel: vmx:   "))
            .filter_map(|l| {
                let (n, rest) = l.split_once(" exits for reason ")?;
                let (r, _) = rest.split_once(' ')?;
                (r.parse::<u16>().ok()? == reason).then(|| n.parse::<u64>().ok())?
            })
            .sum::<u64>()
    };
    // The benchmark reads FEATURE_CONTROL 400 times (emulated: exits) and writes
    // LSTAR 400 times (passed through: must not exit).
    assert!(exits(31) >= 400, "RDMSR exits: {}", exits(31));
    assert_eq!(exits(32), 0, "WRMSR exits");
    assert!(exits(10) >= 400, "CPUID exits: {}", exits(10));
}
