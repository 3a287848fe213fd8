//! A triple fault in a guest ends that domain, with its diagnostic: the guest
//! test `exception_classes` with `case=triple` raises a `#PF` whose delivery
//! raises `#DF` whose delivery faults again (both stacks read-only). The SDM says
//! the processor shuts down; Keel crashes the domain (power-off status 1, "guest
//! crashed") and says why. A hypervisor that reflected the fault instead would
//! loop for ever: the bounded timeout turns that into a failure here.

use keel_abi::platform::ExitStatus;
use keel_loader::backend::Backend;
use keel_loader::console::Verdict;
use keel_loader::MachineOptions;
use std::time::Duration;

#[test]
fn a_fault_while_delivering_double_fault_crashes_the_domain() {
    let mut machine = MachineOptions::new(Duration::from_secs(120)).on(Backend::Bochs);
    machine.guest_args.push("case=triple".into());
    let opts = keel_loader::TestOptions::new(["exception_classes"], machine);
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let summary = keel_loader::test(&opts, &mut out, &mut log).unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&log),
        String::from_utf8_lossy(&out)
    );
    let r = &summary.results[0];
    eprintln!("{}", r.console);
    assert_eq!(r.verdict, Verdict::Crash, "{}", r.reason);
    assert!(
        r.reason
            .contains(&format!("status {} ", ExitStatus::GuestCrash as u8)),
        "{}",
        r.reason
    );
    assert!(
        r.console.contains("provoking a #PF while #DF is delivered"),
        "the guest got to the case"
    );
    assert!(
        r.console.contains("#PF while delivering #DF: triple fault"),
        "the diagnostic names the faults"
    );
    assert!(
        r.console.contains("crashed: triple fault"),
        "the domain is reported crashed"
    );
    assert!(
        !r.console.contains("triple fault returned"),
        "the guest never continued"
    );
}
