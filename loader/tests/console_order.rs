//! The console under a domain crash, end to end under Bochs: the guest
//! `console_order` prints 300 numbered lines far faster than the serial line
//! drains them, with hypervisor lines between them, then a partial line, and
//! gets itself killed. Every byte must arrive, in order, before the crash
//! report and the power-off line. (Run without `crash`, the same guest is a
//! suite test whose numbered lines the runner checks after a clean power-off.)

use keel_abi::platform::ExitStatus;
use keel_loader::backend::Backend;
use keel_loader::{console, MachineOptions};
use std::time::Duration;

#[test]
fn no_console_byte_lost_or_reordered_across_a_domain_crash() {
    let mut opts = MachineOptions::new(Duration::from_secs(300))
        .on(Backend::Bochs)
        .cpu("corei7_skylake_x");
    opts.guest_args = vec!["crash".into()];
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let r = keel_loader::run("console_order", &opts, &mut out, &mut log);
    eprintln!("{}", String::from_utf8_lossy(&log));
    let r = r.unwrap_or_else(|e| panic!("keel run failed: {e}"));
    let c = &r.outcome.console;
    eprintln!("--- console ---\n{c}");
    assert_eq!(r.outcome.status, Some(ExitStatus::GuestCrash));
    assert_eq!(console::sequence_problem(c), None);
    let all: Vec<&str> = console::lines(c).collect();
    let at = |want: &str| {
        all.iter()
            .position(|l| *l == want || l.starts_with(want))
            .unwrap_or_else(|| panic!("{want:?} not on the console"))
    };
    // Each empty-port line of the hypervisor's comes right where the guest
    // touched the port: after numbered line 25k, before 25k + 1.
    for k in 0..12u32 {
        let port = format!("port {:#x} ", 0x300 + k);
        let p = all
            .iter()
            .position(|l| l.starts_with("keel: ") && l.contains(&port))
            .unwrap_or_else(|| panic!("no hypervisor line for {port}"));
        let i = 25 * k;
        assert!(at(&format!("(d1) KEEL-SEQ order {i}/300 ")) < p, "{port}");
        assert!(
            p < at(&format!("(d1) KEEL-SEQ order {}/300 ", i + 1)),
            "{port}"
        );
    }
    // The partial line, then the crash report, then the power-off line last.
    let partial = at("(d1) KEEL-SEQ partial line before the crash");
    assert!(at("(d1) KEEL-SEQ order 299/300 ") < partial);
    let crashed = at("keel: error: vmx: domain 1 crashed: blocked with no event source");
    assert!(partial < crashed);
    assert!(!c.contains("still running after a block"));
    assert_eq!(
        all.last().copied(),
        Some("keel: power off, status 1 (guest crashed)")
    );
}
