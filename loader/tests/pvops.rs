//! Differential tests of the guest library's operations table (paravirt_ops):
//! the guest tests that make sense on bare hardware run three ways and must reach
//! the same verdict:
//!
//! - **native**: the guest image alone on QEMU TCG (`--backend native`: its
//!   multiboot1 header, its own page tables, the native table);
//! - **PV on Keel**: every group through hypercalls and shared memory (`pv=all`);
//! - **native with trap-and-emulate on Keel**: `pv=none` (the groups Keel can
//!   emulate run their raw instructions; time and irq stay PV, Keel has no APIC).
//!
//! `ops_table` also runs two mixed tables on Keel (a la carte). The Bochs part is
//! kept small: each boot costs about 25 s there.

use keel_loader::backend::Backend;
use keel_loader::console::Verdict;
use keel_loader::{MachineOptions, TestOptions};
use std::time::Duration;

/// The tests that make sense natively. The others are about Keel's interface
/// (hypercalls: `#UD` on bare hardware) or about where Keel differs from bare
/// metal on purpose (read-only page tables, the MSR and CPUID policies).
/// `exceptions` and `cr_writes` meet QEMU TCG's own differences from hardware
/// (`keel_guest::tcg`): they name each and expect what TCG does.
const DIFFERENTIAL: &[&str] = &[
    "cr_writes",
    "exceptions",
    "io_string_segments",
    "ops_table",
    "selftest",
    "vmx_insns",
];

fn run(backend: Backend, patterns: &[&str], args: &[&str]) -> Vec<(String, Verdict, String)> {
    run_for(Duration::from_secs(300), backend, patterns, args)
}

fn run_for(
    timeout: Duration,
    backend: Backend,
    patterns: &[&str],
    args: &[&str],
) -> Vec<(String, Verdict, String)> {
    let mut machine = MachineOptions::new(timeout).on(backend);
    machine.guest_args = args.iter().map(|s| s.to_string()).collect();
    let opts = TestOptions::new(patterns.iter().copied(), machine);
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let summary = keel_loader::test(&opts, &mut out, &mut log);
    eprintln!("{}", String::from_utf8_lossy(&log));
    eprintln!("{}", String::from_utf8_lossy(&out));
    let summary = summary.unwrap_or_else(|e| panic!("keel test failed to run: {e}"));
    let mut v: Vec<_> = summary
        .results
        .iter()
        // The runner's reason first (a test it did not boot has no console).
        .map(|r| {
            (
                r.test.name.clone(),
                r.verdict,
                format!("{}\n{}", r.reason, r.console),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn verdicts(r: &[(String, Verdict, String)]) -> Vec<(String, Verdict)> {
    r.iter().map(|(n, v, _)| (n.clone(), *v)).collect()
}

#[test]
fn same_verdicts_native_pv_and_trap() {
    let native = run(Backend::Native, DIFFERENTIAL, &[]);
    let pv = run(Backend::Bochs, DIFFERENTIAL, &["pv=all"]);
    let trap = run(
        Backend::Bochs,
        &[
            "cr_writes",
            "exceptions",
            "io_string_segments",
            "ops_table",
            "vmx_insns",
        ],
        &["pv=none"],
    );
    // Every differential test passes natively (not merely "agrees").
    for (name, v, console) in &native {
        assert_eq!(*v, Verdict::Success, "{name} natively:\n{console}");
        assert!(
            console.contains("platform bare metal; ops cpu=native mmu=native"),
            "{name} did not run on the native table:\n{console}"
        );
    }
    assert_eq!(verdicts(&native), verdicts(&pv), "native vs PV on Keel");
    for (name, v, console) in &trap {
        let want = native.iter().find(|n| &n.0 == name).map(|n| n.1);
        assert_eq!(Some(*v), want, "{name} with pv=none on Keel:\n{console}");
        assert!(
            console.contains("platform keel; ops cpu=trap mmu=trap time=pv irq=pv console=trap"),
            "{name} did not run on the trap table:\n{console}"
        );
    }
    for (_, _, console) in &pv {
        assert!(console.contains("platform keel; ops cpu=pv mmu=pv time=pv irq=pv console=pv"));
    }
}

#[test]
fn a_la_carte_tables_on_keel() {
    // Every mix of the groups `pv=` can choose on Keel (time and irq stay PV:
    // Keel has no APIC), beside pv=all and pv=none above: each must pass.
    const CHOOSABLE: [&str; 3] = ["cpu", "mmu", "console"];
    for bits in 1..(1u32 << CHOOSABLE.len()) - 1 {
        let pv: Vec<&str> = CHOOSABLE
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, g)| *g)
            .collect();
        let how = |g: &str| if pv.contains(&g) { "pv" } else { "trap" };
        let arg = format!("pv={}", pv.join(","));
        let line = format!(
            "ops cpu={} mmu={} time=pv irq=pv console={}",
            how("cpu"),
            how("mmu"),
            how("console")
        );
        let r = run(Backend::Bochs, &["ops_table"], &[&arg]);
        let (_, v, console) = &r[0];
        assert_eq!(*v, Verdict::Success, "ops_table with {arg}:\n{console}");
        assert!(
            console.contains(&line),
            "ops_table with {arg}: no {line:?}:\n{console}"
        );
    }
}

/// The tests that declare `needs: Nothing` (they run on bare hardware too).
const PORTABLE: &[&str] = &[
    "cr_writes",
    "exceptions",
    "io_string_segments",
    "ops_table",
    "selftest",
    "vmx_insns",
];

#[test]
fn natively_every_test_passes_or_says_it_needs_keel() {
    // The whole suite on bare hardware (QEMU TCG, fast): a test that needs Keel
    // reports SKIP before touching Keel's interface (VMCALL is #UD there); the
    // portable ones pass.
    let native = run(Backend::Native, &[], &[]);
    assert!(native.len() > PORTABLE.len(), "the suite is missing");
    for (name, v, console) in &native {
        if PORTABLE.contains(&name.as_str()) {
            assert_eq!(*v, Verdict::Success, "{name} natively:\n{console}");
        } else {
            assert_eq!(*v, Verdict::Skip, "{name} natively:\n{console}");
            // A test that needs several CPUs is not booted on the native
            // backend's one (the runner says so); every other needs Keel.
            let cpus = keel_loader::runner::test_cpus(name);
            let why = if cpus > 1 {
                format!("it needs {cpus} CPUs")
            } else {
                "Test result: SKIP: needs Keel".to_string()
            };
            assert!(
                console.contains(&why),
                "{name} skipped for another reason than {why:?}:\n{console}"
            );
        }
    }
}

#[test]
fn tcg_still_differs_where_the_guest_library_says() {
    // Each difference a test cannot survive on TCG is attempted on purpose: the
    // machine must not come back from it (it hangs or resets). A QEMU that does
    // what hardware does would print the survival mark and fail the test, and
    // `keel_guest::tcg` and docs/platforms.md would need updating.
    // 20 s: the boot reaches the attempt in under a second; the rest is the
    // hang's wait, with room for a loaded machine.
    use keel_guest::tcg;
    for d in tcg::DIFFERENCES.iter().filter(|d| !d.survivable) {
        let arg = format!("tcg_attempt={}", d.name);
        let r = run_for(Duration::from_secs(20), Backend::Native, &[d.test], &[&arg]);
        let (_, v, console) = &r[0];
        assert!(
            console.contains(&format!("{}: {}", tcg::ATTEMPT_MARK, d.name)),
            "{}: the attempt did not start:\n{console}",
            d.name
        );
        assert!(
            !console.contains(tcg::SURVIVED_MARK),
            "{}: TCG survived it:\n{console}",
            d.name
        );
        assert_eq!(*v, Verdict::Crash, "{}:\n{console}", d.name);
    }
    // The survivable ones are checked inline: the tests that meet them pass
    // natively (above) and print the difference.
    let mut tests: Vec<&str> = tcg::DIFFERENCES
        .iter()
        .filter(|d| d.survivable)
        .map(|d| d.test)
        .collect();
    tests.dedup();
    let native = run(Backend::Native, &tests, &[]);
    for d in tcg::DIFFERENCES.iter().filter(|d| d.survivable) {
        let (_, v, console) = native.iter().find(|r| r.0 == d.test).expect("the test ran");
        assert_eq!(*v, Verdict::Success, "{}:\n{console}", d.test);
        assert!(
            console.contains(&format!("TCG difference {}:", d.name)),
            "{} not named:\n{console}",
            d.name
        );
    }
}
