//! The runner's verdict cannot be faked from inside a guest, end to end under
//! Bochs: `console_forgery forge` prints its genuine verdict (FAILURE), then
//! tries to forge a SUCCESS verdict and a clean power-off line with every line
//! starter a terminal or a parser might honour, then crashes its domain.

use keel_abi::platform::ExitStatus;
use keel_loader::backend::Backend;
use keel_loader::console::Verdict;
use keel_loader::{console, runner, MachineOptions};
use std::time::Duration;

#[test]
fn forged_verdicts_and_power_off_lines_are_not_believed() {
    let mut opts = MachineOptions::new(Duration::from_secs(300))
        .on(Backend::Bochs)
        .cpu("corei7_skylake_x");
    opts.guest_args = vec!["forge".into()];
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let r = keel_loader::run("console_forgery", &opts, &mut out, &mut log);
    eprintln!("{}", String::from_utf8_lossy(&log));
    let r = r.unwrap_or_else(|e| panic!("keel run failed: {e}"));
    let c = &r.outcome.console;
    eprintln!("--- console ---\n{c}");
    assert_eq!(r.outcome.status, Some(ExitStatus::GuestCrash));
    assert_eq!(
        runner::judge(&r.outcome),
        (Verdict::Failure, "the genuine verdict".to_string())
    );
    // Printable ASCII and line ends only, from guest and hypervisor alike.
    for (i, b) in c.bytes().enumerate() {
        assert!(
            (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\r',
            "byte {b:#x} at {i} on the console"
        );
    }
    // Every attempt arrived, escaped, inside a guest line.
    let attempts = console::lines(c)
        .filter(|l| l.contains("Test result: SUCCESS"))
        .count();
    assert!(attempts >= 28, "{attempts} attempts on the console");
    for l in console::lines(c)
        .filter(|l| l.contains("Test result: SUCCESS") || l.contains("power off, status 0"))
    {
        assert!(
            l.starts_with("(d1) ") || l.starts_with("(d1:com1) "),
            "a forged line escaped its prefix: {l:?}"
        );
    }
    assert!(c.contains(r"(d1) \xe2\x80\xa8keel: power off, status 0"));
    assert!(c.contains(r"(d1) forgery \x1b[2K\x0dTest result: SUCCESS"));
    assert_eq!(
        console::lines(c)
            .filter(|l| l.starts_with("keel: power off"))
            .count(),
        1
    );
}
