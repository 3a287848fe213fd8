//! Several CPUs under Bochs (`cpu: count=N`): the hypervisor starts every CPU
//! the MADT lists, checks it and parks it, and the one-CPU ABI a guest sees
//! does not change.
//!
//! - a smoke set of the guest suite (the demo, CPUID, start_info, the clock,
//!   timers and idle, TLB flushes) passes on 2 and on 4 CPUs, and every boot
//!   says that all of them came online with their TSC in sync;
//! - `abi_behaviour`'s transcript (every hypercall's answer to every class of
//!   argument) is the same on 4 CPUs as on 1;
//! - CPUs beyond the hypervisor's limit (8) are reported and left out, and the
//!   domain still runs;
//! - every test with several domains passes with its domains spread over 2
//!   and over 4 CPUs (`place=spread`: cross-CPU event channels, grants,
//!   `domctl`, teardown, the split-driver ring), and each boot says where
//!   each domain ran.
//!
//! Bochs boots one at a time; wall times are printed, never asserted.

use keel_loader::backend::Backend;
use keel_loader::behaviour;
use keel_loader::cargo::Workspace;
use keel_loader::console::{self, Verdict};
use keel_loader::machine::{self, Boot};
use keel_loader::{MachineOptions, TestOptions};
use std::time::Duration;

/// Guest programs whose one-CPU behaviour more CPUs must not change.
const SMOKE: [&str; 6] = [
    "hello",
    "cpuid",
    "start_info",
    "pvclock",
    "timers",
    "mmu_tlb",
];

fn bochs(cpus: u32) -> MachineOptions {
    let mut m = MachineOptions::new(Duration::from_secs(300)).on(Backend::Bochs);
    m.cpus = Some(cpus);
    m
}

fn smoke_on(cpus: u32) {
    let opts = TestOptions::new(SMOKE.iter().copied(), bochs(cpus));
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let summary = keel_loader::test(&opts, &mut out, &mut log);
    eprintln!("{}", String::from_utf8_lossy(&log));
    eprintln!("{}", String::from_utf8_lossy(&out));
    let summary = summary.unwrap_or_else(|e| panic!("keel test failed to run: {e:#}"));
    assert_eq!(
        summary.results.len(),
        SMOKE.len(),
        "not every smoke test ran"
    );
    for r in &summary.results {
        let name = &r.test.name;
        assert_eq!(
            r.verdict,
            Verdict::Success,
            "{name} on {cpus} CPUs: {}\n{}",
            r.reason,
            console::tail(&r.console, 40)
        );
        let online = format!("keel: smp: {cpus} of {cpus} CPUs online");
        assert!(
            console::lines(&r.console).any(|l| l.starts_with(&online)),
            "{name}: no {online:?} line\n{}",
            console::tail(&r.console, 40)
        );
        let in_sync = console::lines(&r.console)
            .filter(|l| {
                l.starts_with("keel: smp: CPU ")
                    && l.contains(" online: ")
                    && l.contains("TSC in sync")
            })
            .count();
        assert_eq!(
            in_sync,
            cpus as usize - 1,
            "{name}: application processors online with a synchronised TSC"
        );
    }
}

#[test]
fn smoke_set_passes_on_two_cpus() {
    smoke_on(2);
}

#[test]
fn smoke_set_passes_on_four_cpus() {
    smoke_on(4);
}

/// Every test with companion domains but the benchmarks
/// (`runner::COMPANION_DOMAINS`) and [`ONE_CPU_SUBJECT`]: with
/// `place=spread` its domains run on different CPUs.
fn several() -> Vec<&'static str> {
    keel_loader::runner::COMPANION_DOMAINS
        .iter()
        .map(|&(name, _)| name)
        .filter(|n| !n.starts_with("bench_") && !ONE_CPU_SUBJECT.contains(n))
        .collect()
}

/// Tests whose subject is two domains sharing one CPU: `sched_spin` checks
/// that a spinning domain and the test preempt each other in turn (time
/// slices both ways). Spread over two CPUs they share none, and the test
/// alone on its CPU is rightly never preempted (a domain's CPU is taken
/// from it only by another domain of that CPU, or by a cross-CPU operation
/// of a domain it is connected to, `vmx/lend.rs`). It passed spread while
/// its event-channel operations were cross-CPU operations: its CPU then
/// ended the test's run 7 times in the 20 ms spin (VMX-preemption timer
/// exits, no other domain on that CPU; not traced further), which the test
/// took for the spinner's slices. Since `peers/links.rs` keeps them on its
/// CPU, it sees none.
const ONE_CPU_SUBJECT: [&str; 1] = ["sched_spin"];

fn spread_on(cpus: u32) {
    let mut m = bochs(cpus);
    m.hv_args.push("place=spread".to_string());
    let several = several();
    assert!(several.len() >= 7, "the multi-domain tests: {several:?}");
    let opts = TestOptions::new(several.iter().copied(), m);
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let summary = keel_loader::test(&opts, &mut out, &mut log);
    eprintln!("{}", String::from_utf8_lossy(&log));
    eprintln!("{}", String::from_utf8_lossy(&out));
    let summary = summary.unwrap_or_else(|e| panic!("keel test failed to run: {e:#}"));
    assert_eq!(summary.results.len(), several.len(), "not every test ran");
    for r in &summary.results {
        let name = &r.test.name;
        assert!(
            matches!(r.verdict, Verdict::Success | Verdict::Skip),
            "{name} spread over {cpus} CPUs: {}\n{}",
            r.reason,
            console::tail(&r.console, 40)
        );
        // Domain 2 runs on CPU 1 (domain 1 on CPU 0).
        assert!(
            console::lines(&r.console).any(|l| l == "keel: domain 2: runs on CPU 1"),
            "{name}: domain 2 not placed on CPU 1\n{}",
            console::tail(&r.console, 40)
        );
    }
}

#[test]
fn several_domains_pass_spread_over_two_cpus() {
    spread_on(2);
}

#[test]
fn several_domains_pass_spread_over_four_cpus() {
    spread_on(4);
}

/// Boot `guest` with the hypervisor of this tree on `cpus` CPUs; the console.
fn boot(guest: &str, cpus: u32) -> String {
    let ws = Workspace::locate().expect("the Keel workspace");
    let hv = ws.build_hypervisor(false).expect("build the hypervisor");
    let guests = ws.build_guests(false).expect("build the guests");
    let g = guests
        .iter()
        .find(|g| g.name == guest)
        .unwrap_or_else(|| panic!("no guest {guest}"));
    let opts = bochs(cpus);
    let mut log = Vec::new();
    let m = opts.prepare(&mut log).expect("a Bochs machine");
    let hv_cmdline = opts.hv_cmdline();
    let b = Boot {
        hypervisor: &hv,
        guest: &g.path,
        guest_name: guest,
        guest_args: &[],
        hv_cmdline: &hv_cmdline,
        companions: &[],
    };
    let mut echo = Vec::new();
    let o = machine::run(&m, &b, &mut echo).unwrap_or_else(|e| panic!("{guest}: {e}"));
    eprintln!("--- {guest} on {cpus} CPUs: {:.2}s", o.wall.as_secs_f64());
    o.console
}

#[test]
fn abi_behaviour_is_the_same_on_four_cpus_as_on_one() {
    let one = boot("abi_behaviour", 1);
    let four = boot("abi_behaviour", 4);
    assert!(
        console::lines(&four).any(|l| l.starts_with("keel: smp: 4 of 4 CPUs online")),
        "{}",
        console::tail(&four, 40)
    );
    assert!(
        console::lines(&one).any(|l| l.starts_with("keel: smp: 1 CPU in the MADT")),
        "{}",
        console::tail(&one, 40)
    );
    let (t1, t4) = (
        behaviour::from_console(&one, Some(0)),
        behaviour::from_console(&four, Some(0)),
    );
    assert!(
        t1.len() > 100,
        "only {} transcript lines on 1 CPU",
        t1.len()
    );
    for (a, b) in t1.iter().zip(&t4) {
        assert_eq!(a, b, "the answer changed with 4 CPUs");
    }
    assert_eq!(t1.len(), t4.len(), "transcript lengths differ");
}

#[test]
fn cpus_beyond_the_limit_are_left_out_and_the_domain_runs() {
    let c = boot("hello", 10);
    let lines: Vec<&str> = console::lines(&c).collect();
    for cpu in [8, 9] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!(
                "keel: warning: smp: CPU {cpu} (APIC ID {cpu}) left out: no per-CPU state"
            ))),
            "CPU {cpu} not reported as left out\n{}",
            console::tail(&c, 40)
        );
    }
    assert!(lines
        .iter()
        .any(|l| l.starts_with("keel: smp: 8 of 10 CPUs online")));
    assert_eq!(
        console::test_result(&c).map(|r| r.verdict),
        Some(Verdict::Success)
    );
}
