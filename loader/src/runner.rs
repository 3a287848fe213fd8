//! `cargo keel test`: find the guest test programs, boot each in a fresh
//! hypervisor, judge them, and report.
//!
//! A test is a guest image with a Keel test note ([`crate::elfnote`]); the runner
//! builds `keel-guest`'s bins and keeps those that have one, so adding a file under
//! `guest/src/bin/` adds a test. Each test boots alone (its own hypervisor, its own
//! run directory), up to `jobs` at once. Its verdict is the last
//! `Test result: VERDICT[: reason]` line on the console, cross-checked with the
//! hypervisor's power-off status; a console without a verdict line (a hang, a
//! triple fault, a hypervisor panic, a timeout) is CRASH.

use crate::backend::Backend;
use crate::cargo::Artifact;
use crate::console::{self, Verdict};
use crate::elfnote;
use crate::error::{Context, Result};
use crate::junit;
use crate::machine::{self, Boot, Companion, EmulatorEnd, Machine, Outcome};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keel_abi::note::TestCategory;
use keel_abi::platform::ExitStatus;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

mod report;

use self::report::Progress;
pub use self::report::{
    diagnostics, judge, judge_expecting, progress_message, result_line, Summary,
};

/// A test program: a guest image with a test note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestProgram {
    /// The bin name (`guest/src/bin/<name>.rs`).
    pub name: String,
    /// The built image.
    pub path: PathBuf,
    /// Its category.
    pub category: TestCategory,
    /// Its title.
    pub title: String,
    /// The domains it runs with ([`COMPANION_DOMAINS`]), booted after it.
    pub companions: Vec<Companion>,
}

/// A companion that yields for as long as the test runs.
const YIELDER: &str = "yielder yields=100000000 keel.service";
/// The same in 2 MiB, so that 31 of them fit beside the test.
const SMALL_YIELDER: &str = "yielder yields=100000000 keel.service keel.mem=2";

/// The tests that run with other domains: the test's name, then the command
/// line of each companion domain (a guest's name, then its words: the guest's
/// own and the hypervisor's `keel.` ones, `docs/abi/domains.md`). The test is
/// domain 1 and gives the verdict; the companions are domains 2, 3, ... A
/// crash in a companion fails the test (the power-off status says it), unless
/// the test expects it, and so does a companion's own failing verdict (its last
/// `Test result:` line is ERROR, FAILURE or CRASH: `console::companion_failure`).
pub const COMPANION_DOMAINS: &[(&str, &[&str])] = &[
    ("sched_spin", &["spinner spin_ms=60000 keel.service"]),
    ("sched_idle", &["sleeper sleep_ms=60000 keel.service"]),
    (
        "cross_domain_frames",
        &["sleeper sleep_ms=60000 keel.service"],
    ),
    (
        "evtchn_interdomain",
        &[
            "evtchn_peer role=echo peer=1 keel.service",
            "evtchn_peer role=offer_exit peer=1",
        ],
    ),
    (
        "bench_interdomain",
        &["evtchn_peer role=pong peer=1 keel.service"],
    ),
    ("grant_cross", &["grant_peer peer=1"]),
    (
        "domctl",
        &[
            "domctl_peer role=spin keel.mem=4 keel.service",
            "domctl_peer role=refused after=1",
            "domctl_peer role=crash",
        ],
    ),
    (
        "bench_grant_cross",
        &["grant_peer peer=1 mode=bench keel.service"],
    ),
    (
        "bench_grant_cross_2cpu",
        &["grant_peer peer=1 mode=bench keel.service keel.cpu=1"],
    ),
    ("ring_front", &["ring_back peer=1"]),
    ("bench_ring", &["ring_back peer=1 keel.service"]),
    ("bench_switch_2", &[YIELDER]),
    ("bench_switch_8", &[YIELDER; 7]),
    ("bench_switch_32", &[SMALL_YIELDER; 31]),
    ("bench_cpus_2", &CPUS_2),
    ("bench_cpus_4", &CPUS_4),
    (
        "bench_interdomain_2cpu",
        &["evtchn_peer role=pong peer=1 keel.service keel.cpu=1"],
    ),
    (
        "bench_ring_2cpu",
        &["ring_back peer=1 keel.service keel.cpu=1"],
    ),
    ("bench_upcall", &["upcall_peer peer=1 keel.service"]),
    ("bench_spread_4cpu", &BYSTANDERS_2_3),
    ("grant_race_2cpu", &["grant_peer peer=1 keel.cpu=1"]),
    (
        "evtchn_close_race_2cpu",
        &["evtchn_peer role=flood peer=1 keel.service keel.cpu=1"],
    ),
    // CPU 0 parks 16 vCPUs: 7 for this test, 7 for the first companion, 2
    // for the second, which checks that its other 5 are refused.
    (
        "vcpus_full",
        &[
            "vcpus_full keel.vcpus=8",
            "vcpus_full places=2 keel.vcpus=8",
        ],
    ),
    (
        "bench_upcall_2cpu",
        &["upcall_peer peer=1 keel.service keel.cpu=1"],
    ),
];

/// The companions of the `bench_cpus_N` programs: the same image on CPUs 1,
/// 2 and 3 (the test itself runs on CPU 0), each reporting its own figure.
/// The same image on every CPU, so that every CPU runs the same instructions:
/// under Bochs the clock of several CPUs advances by the longest of one trace
/// of each (docs/performance.md), which is each one's own count only when
/// they run the same code in step. Not service domains: the machine stays on
/// until each has reported.
const CPUS_2: [&str; 1] = ["bench_cpus_2 cpu=1 keel.cpu=1"];
/// [`CPUS_2`] for 4 CPUs.
const CPUS_4: [&str; 3] = [
    "bench_cpus_4 cpu=1 keel.cpu=1",
    "bench_cpus_4 cpu=2 keel.cpu=2",
    "bench_cpus_4 cpu=3 keel.cpu=3",
];

/// The companions of `bench_spread_4cpu`: a domain spinning in guest mode
/// (RFLAGS.IF set, so that an IPI takes it out under Bochs too) on each of
/// CPUs 2 and 3, beside the test's domain on CPUs 0 and 1.
const BYSTANDERS_2_3: [&str; 2] = [
    "spinner spin_ms=3600000 irq=on keel.service keel.cpu=2",
    "spinner spin_ms=3600000 irq=on keel.service keel.cpu=3",
];

/// The tests that need a machine with more than one CPU, and how many: their
/// domains are placed on CPUs 1, 2, ... (`keel.cpu=`), or their own domain's
/// vCPUs (`keel.vcpu_cpus=` in [`TEST_DOMAIN_WORDS`]). Such a test boots on
/// that many CPUs (or on more, when the run asks for more: `--cpus`); a
/// backend that boots one CPU reports it SKIP ([`cpus_skip`]).
pub const TEST_CPUS: &[(&str, u32)] = &[
    ("bench_cpus_2", 2),
    ("bench_cpus_4", 4),
    ("bench_grant_cross_2cpu", 2),
    ("bench_interdomain_2cpu", 2),
    ("bench_ring_2cpu", 2),
    ("bench_upcall_2cpu", 2),
    ("bench_spread", 2),
    ("bench_spread_4cpu", 4),
    ("bench_vcpus_2", 2),
    ("bench_vcpus_4", 4),
    ("grant_race_2cpu", 2),
    ("evtchn_close_race_2cpu", 2),
    ("mmu_race_spread", 2),
    ("mmu_tlb_spread", 2),
    ("mmu_tlb_spread_3", 4),
    ("vcpus_spread_rax", 2),
    ("vcpus_4_spread", 4),
    ("vcpus_spread", 2),
];

/// The CPUs test `name` needs ([`TEST_CPUS`]; 1 if not listed).
pub fn test_cpus(name: &str) -> u32 {
    TEST_CPUS
        .iter()
        .find(|(t, _)| *t == name)
        .map_or(1, |(_, n)| *n)
}

/// The machine test `name` boots on: `machine` with at least the CPUs the test
/// needs ([`test_cpus`]).
pub fn machine_for(machine: &Machine, name: &str) -> Machine {
    let mut m = machine.clone();
    m.cpus = m.cpus.max(test_cpus(name));
    m
}

/// The power-off status a test's passing run ends with, where it is not 0: a
/// test with a companion that crashes on purpose (docs/abi/domains.md: a
/// domain's crash makes the machine's status 1). Any other status fails it,
/// 0 included (the crash did not happen).
pub const EXPECTED_STATUS: &[(&str, ExitStatus)] = &[("domctl", ExitStatus::GuestCrash)];

/// The status test `name`'s passing run ends with ([`EXPECTED_STATUS`]).
pub fn expected_status(name: &str) -> ExitStatus {
    EXPECTED_STATUS
        .iter()
        .find(|(t, _)| *t == name)
        .map_or(ExitStatus::Success, |(_, s)| *s)
}

/// The hypervisor's `keel.` words for the test's own domain (domain 1), by
/// test name: `keel.control` makes the test the control domain
/// (`docs/abi/domains.md`); `keel.vcpus=N` gives it N vCPUs
/// (`docs/abi/vcpu.md`: all on the domain's CPU, so one CPU is enough), and
/// `keel.vcpu_cpus=C0,C1,...` puts vCPU `v` on CPU `Cv` (`C0` the domain's
/// CPU, 0 for the test; the test is in [`TEST_CPUS`]). Put after its other
/// arguments.
pub const TEST_DOMAIN_WORDS: &[(&str, &[&str])] = &[
    ("bench_spread", &["keel.vcpus=2", "keel.vcpu_cpus=0,1"]),
    ("bench_spread_4cpu", &["keel.vcpus=2", "keel.vcpu_cpus=0,1"]),
    ("bench_vcpus_2", &["keel.vcpus=2", "keel.vcpu_cpus=0,1"]),
    ("bench_vcpus_4", &["keel.vcpus=4", "keel.vcpu_cpus=0,1,2,3"]),
    ("domctl", &["keel.control"]),
    ("mmu_race", &["keel.vcpus=2"]),
    ("mmu_race_spread", &["keel.vcpus=2", "keel.vcpu_cpus=0,1"]),
    ("mmu_tlb_spread", &["keel.vcpus=2", "keel.vcpu_cpus=0,1"]),
    (
        "mmu_tlb_spread_3",
        &["keel.vcpus=3", "keel.vcpu_cpus=0,1,2"],
    ),
    ("vcpus_spread_rax", &["keel.vcpus=2", "keel.vcpu_cpus=0,1"]),
    ("vcpus", &["keel.vcpus=2"]),
    ("vcpus_4", &["keel.vcpus=4"]),
    (
        "vcpus_4_spread",
        &["keel.vcpus=4", "keel.vcpu_cpus=0,1,2,3"],
    ),
    ("vcpus_full", &["keel.vcpus=8"]),
    ("vcpus_spread", &["keel.vcpus=2", "keel.vcpu_cpus=0,1"]),
];

/// The words [`TEST_DOMAIN_WORDS`] gives test `name`'s own domain.
pub fn test_domain_words(name: &str) -> Vec<String> {
    TEST_DOMAIN_WORDS
        .iter()
        .filter(|(t, _)| *t == name)
        .flat_map(|(_, w)| w.iter().map(|w| (*w).to_string()))
        .collect()
}

/// The test programs among the built guests (those with a test note), by name.
pub fn discover(guests: &[Artifact]) -> Result<Vec<TestProgram>> {
    let mut tests = Vec::new();
    for g in guests {
        let bytes =
            std::fs::read(&g.path).with_context(|| format!("reading {}", g.path.display()))?;
        let notes = elfnote::read_keel_notes(&bytes)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("guest image {}", g.name))?;
        if let Some(t) = notes.test {
            tests.push(TestProgram {
                name: g.name.clone(),
                path: g.path.clone(),
                category: t.category,
                title: t.title,
                companions: companions_of(&g.name, guests)?,
            });
        }
    }
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tests)
}

/// The companion domains of test `name`, from [`COMPANION_DOMAINS`].
fn companions_of(name: &str, guests: &[Artifact]) -> Result<Vec<Companion>> {
    let Some((_, lines)) = COMPANION_DOMAINS.iter().find(|(t, _)| *t == name) else {
        return Ok(Vec::new());
    };
    lines
        .iter()
        .map(|line| {
            let mut words = line.split_whitespace();
            let guest = words.next().unwrap_or_default();
            let Some(a) = guests.iter().find(|g| g.name == guest) else {
                crate::bail!("test {name}: companion guest {guest:?} was not built");
            };
            Ok(Companion {
                path: a.path.clone(),
                name: guest.to_string(),
                args: words.map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Shell-style matching: `*` any run of characters, `?` any one character,
/// everything else itself. A pattern without wildcards is an exact name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matcher with backtracking to the last `*` (linear in practice).
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The tests that match any of `patterns` (all when there are none) and the
/// category. A pattern that matches no test at all is an error (a typo should not
/// quietly run nothing).
pub fn select(
    tests: &[TestProgram],
    patterns: &[String],
    category: Option<TestCategory>,
) -> Result<Vec<TestProgram>> {
    for p in patterns {
        if !tests.iter().any(|t| glob_match(p, &t.name)) {
            let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
            crate::usage_bail!("no test matches {p:?}; the tests are: {}", names.join(", "));
        }
    }
    Ok(tests
        .iter()
        .filter(|t| patterns.is_empty() || patterns.iter().any(|p| glob_match(p, &t.name)))
        .filter(|t| category.is_none_or(|c| c == t.category))
        .cloned()
        .collect())
}

/// How to run the suite.
#[derive(Clone, Debug)]
pub struct Options {
    /// The machine each test boots on.
    pub machine: Machine,
    /// At most this many machines at once.
    pub jobs: usize,
    /// Passed to every guest as `seed=N`.
    pub seed: Option<u64>,
    /// Extra guest arguments.
    pub guest_args: Vec<String>,
    /// The hypervisor's command line.
    pub hv_cmdline: Vec<String>,
    /// Boot a test that a known platform defect breaks on this machine
    /// ([`crate::defects`]) instead of reporting it SKIP.
    pub attempt_defects: bool,
}

/// One test's result.
#[derive(Clone, Debug)]
pub struct TestResult {
    /// The test.
    pub test: TestProgram,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
    /// Wall time of its boot.
    pub wall: Duration,
    /// For failures: the console tail and the hypervisor's and emulator's diagnostics.
    pub details: String,
    /// The whole console.
    pub console: String,
}

fn result_of(t: &TestProgram, o: Outcome, seed: Option<u64>) -> TestResult {
    let (verdict, reason) = judge_expecting(&o, expected_status(&t.name));
    let details = if verdict.is_failure() {
        let mut d = diagnostics(&o);
        if let Some(s) = seed {
            d += &format!(
                "seed: {s} (replay: cargo keel test {} --seed {s})\n",
                t.name
            );
        }
        d
    } else {
        String::new()
    };
    TestResult {
        test: t.clone(),
        verdict,
        reason,
        wall: o.wall,
        details,
        console: o.console,
    }
}

/// The SKIP result of a test a known platform defect breaks on this machine
/// (`crate::defects`), unless the run attempts those.
fn defect_skip(t: &TestProgram, opts: &Options) -> Option<TestResult> {
    let d = crate::defects::breaking(&opts.machine, &t.name).filter(|_| !opts.attempt_defects)?;
    Some(TestResult {
        test: t.clone(),
        verdict: Verdict::Skip,
        reason: format!(
            "platform defect {} on {} (docs/platforms.md): {}",
            d.name,
            crate::defects::emulated_model(&opts.machine),
            d.what
        ),
        wall: Duration::ZERO,
        details: String::new(),
        console: String::new(),
    })
}

/// Why test `t` cannot run on this machine's backend: it needs more CPUs
/// running at once ([`TEST_CPUS`]) than the backend gives (native: the guest
/// alone on QEMU, one CPU; nested: QEMU's vCPU threads on the nested
/// machine's CPUs, `nested::L0_MAX_CPUS`: more would share them, and
/// the domains that spin for their common start would keep the others from
/// starting). A SKIP, not a failure: the run did not measure what the test is
/// about.
pub fn cpus_skip(t: &TestProgram, machine: &Machine) -> Option<TestResult> {
    let need = test_cpus(&t.name);
    let most = match machine.backend {
        Backend::Native => 1,
        Backend::Nested => crate::nested::L0_MAX_CPUS,
        _ => return None,
    };
    if need <= most {
        return None;
    }
    Some(TestResult {
        test: t.clone(),
        verdict: Verdict::Skip,
        reason: format!(
            "it needs {need} CPUs at once; the {} backend runs {most}",
            machine.backend
        ),
        wall: Duration::ZERO,
        details: String::new(),
        console: String::new(),
    })
}

fn run_one(hv: &Path, t: &TestProgram, opts: &Options) -> TestResult {
    if let Some(skip) = defect_skip(t, opts).or_else(|| cpus_skip(t, &opts.machine)) {
        return skip;
    }
    let mut args = opts.guest_args.clone();
    if let Some(s) = opts.seed {
        args.push(format!("seed={s}"));
    }
    args.extend(test_domain_words(&t.name));
    let boot = Boot {
        hypervisor: hv,
        guest: &t.path,
        guest_name: &t.name,
        guest_args: &args,
        hv_cmdline: &opts.hv_cmdline,
        companions: &t.companions,
    };
    let started = Instant::now();
    let machine = machine_for(&opts.machine, &t.name);
    match machine::run(&machine, &boot, &mut std::io::sink()) {
        Ok(o) => result_of(t, o, opts.seed),
        // The tool could not boot the test at all (an ISO that would not build,
        // an emulator that would not start): the test did not run, an ERROR.
        Err(e) => TestResult {
            test: t.clone(),
            verdict: Verdict::Error,
            reason: format!("keel could not boot it: {e:#}"),
            wall: started.elapsed(),
            details: String::new(),
            console: String::new(),
        },
    }
}

/// Run `tests` with the hypervisor image `hv`, printing one line per test as it
/// finishes (plus diagnostics for failures) and the closing summary line to `out`.
/// While they run, a live progress line is drawn on standard error when that is
/// a terminal.
pub fn run_suite(hv: &Path, tests: &[TestProgram], opts: &Options, out: &mut dyn Write) -> Summary {
    if opts.machine.backend == crate::backend::Backend::Nested {
        return run_suite_nested(hv, tests, opts, out, false).0;
    }
    let started = Instant::now();
    let width = tests.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let next = AtomicUsize::new(0);
    let jobs = opts.jobs.clamp(1, tests.len().max(1));
    let mut results = Vec::with_capacity(tests.len());
    let progress = Progress::new(tests.len(), std::io::stderr().is_terminal());
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            let progress = &progress;
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(t) = tests.get(i) else { break };
                progress.started(&t.name);
                let r = run_one(hv, t, opts);
                progress.ended(&t.name);
                if tx.send(r).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Results arrive in completion order; print each as it comes.
        for r in rx {
            progress.print(|| {
                let _ = writeln!(out, "{}", result_line(&r, width));
                if !r.details.is_empty() {
                    for l in r.details.lines() {
                        let _ = writeln!(out, "        {l}");
                    }
                }
                let _ = out.flush();
            });
            results.push(r);
        }
    });
    progress.finish();
    results.sort_by(|a, b| a.test.name.cmp(&b.test.name));
    let summary = Summary {
        results,
        wall: started.elapsed(),
    };
    let _ = writeln!(out, "{}", summary.line());
    summary
}

/// L0's view of one bench program, from a traced run ([`run_suite_nested`]).
#[derive(Clone, Debug, Default)]
pub struct L0Trace {
    /// The program.
    pub name: String,
    /// L0 exits between consecutive marks: (kvm_exit, kvm_nested_vmexit) per mark.
    pub marks: Vec<(u64, u64)>,
    /// The traced run's console (its `marks=` lines number the marks).
    pub console: String,
}

/// The suite in one nested boot ([`crate::nested`]): every test is a QEMU run
/// inside the same Linux. Results are printed as each run ends. With `trace_l0`,
/// each test runs a second time with L0's exits traced between Keel's bench
/// marks (tracing costs L0 time, so the figures come from the first run); those
/// runs' traces come back beside the summary.
pub fn run_suite_nested(
    hv: &Path,
    tests: &[TestProgram],
    opts: &Options,
    out: &mut dyn Write,
    trace_l0: bool,
) -> (Summary, Vec<L0Trace>) {
    let started = Instant::now();
    let width = tests.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut args = opts.guest_args.clone();
    if let Some(s) = opts.seed {
        args.push(format!("seed={s}"));
    }
    let mut results = Vec::with_capacity(tests.len());
    let print = |r: &TestResult, out: &mut dyn Write| {
        let _ = writeln!(out, "{}", result_line(r, width));
        for l in r.details.lines() {
            let _ = writeln!(out, "        {l}");
        }
        let _ = out.flush();
    };
    // Tests a platform defect breaks are not booted at all (one Linux boot
    // serves the rest).
    let mut booted = Vec::with_capacity(tests.len());
    for t in tests {
        match defect_skip(t, opts).or_else(|| cpus_skip(t, &opts.machine)) {
            Some(skip) => {
                print(&skip, out);
                results.push(skip);
            }
            None => booted.push(t.clone()),
        }
    }
    let tests = &booted[..];
    if tests.is_empty() {
        results.sort_by(|a, b| a.test.name.cmp(&b.test.name));
        let summary = Summary {
            results,
            wall: started.elapsed(),
        };
        let _ = writeln!(out, "{}", summary.line());
        return (summary, Vec::new());
    }
    // The tests of one CPU in one boot, those of several in another: the
    // nested machine gets as many CPUs as its most demanding run
    // (`nested::conf::l0_cpus`), and a Linux of more CPUs costs every run
    // Bochs time.
    let (several, one): (Vec<TestProgram>, Vec<TestProgram>) = tests
        .iter()
        .cloned()
        .partition(|t| machine_for(&opts.machine, &t.name).cpus > 1);
    let mut traces = Vec::new();
    for tests in [&one[..], &several[..]] {
        if tests.is_empty() {
            continue;
        }
        let mut guests: Vec<crate::nested::GuestRun> = tests
            .iter()
            .map(|t| crate::nested::GuestRun {
                name: t.name.clone(),
                image: t.path.clone(),
                args: [args.clone(), test_domain_words(&t.name)].concat(),
                trace_l0: false,
                companions: t.companions.clone(),
                cpus: machine_for(&opts.machine, &t.name).cpus,
            })
            .collect();
        if trace_l0 {
            let traced: Vec<_> = guests
                .iter()
                .map(|g| crate::nested::GuestRun {
                    trace_l0: true,
                    ..g.clone()
                })
                .collect();
            guests.extend(traced);
        }
        let plan = crate::nested::Plan {
            hypervisor: hv,
            hv_cmdline: &opts.hv_cmdline,
            qemu_cpu: &opts.machine.cpu_model,
            qemu_mem_mib: opts.machine.mem_mib,
            guests: &guests,
            per_guest_timeout: opts.machine.timeout,
        };
        let judged = |t: &TestProgram, r: &std::result::Result<Outcome, String>| -> TestResult {
            match r {
                Ok(o) => result_of(t, o.clone(), opts.seed),
                Err(why) => TestResult {
                    test: t.clone(),
                    verdict: Verdict::Error,
                    reason: "the nested machine did not run it".into(),
                    wall: Duration::ZERO,
                    details: why.clone(),
                    console: String::new(),
                },
            }
        };
        let batch = crate::cargo::Workspace::locate().and_then(|ws| {
            crate::nested::run(
                ws.root(),
                &plan,
                &mut std::io::sink(),
                &mut std::io::stderr(),
                &mut |i, r| {
                    // The traced second runs are not results of their own.
                    if let Some(t) = tests.get(i) {
                        let tr = judged(t, r);
                        print(&tr, out);
                        results.push(tr);
                    }
                },
            )
        });
        match batch {
            Ok(b) => {
                for ((name, rec), g) in b.transcript.runs.into_iter().zip(&guests) {
                    if g.trace_l0 && name == g.name {
                        traces.push(L0Trace {
                            name,
                            marks: rec.l0_marks,
                            console: rec.console,
                        });
                    }
                }
            }
            Err(e) => {
                for t in tests {
                    let tr = TestResult {
                        test: t.clone(),
                        verdict: Verdict::Error,
                        reason: format!("keel could not boot it: {e}"),
                        wall: Duration::ZERO,
                        details: String::new(),
                        console: String::new(),
                    };
                    print(&tr, out);
                    results.push(tr);
                }
            }
        }
    }
    results.sort_by(|a, b| a.test.name.cmp(&b.test.name));
    let summary = Summary {
        results,
        wall: started.elapsed(),
    };
    let _ = writeln!(out, "{}", summary.line());
    (summary, traces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(name: &str, category: TestCategory) -> TestProgram {
        TestProgram {
            companions: Vec::new(),
            name: name.into(),
            path: PathBuf::from(format!("/t/{name}")),
            category,
            title: format!("{name} title"),
        }
    }

    #[test]
    fn a_test_on_several_cpus_gets_them_and_its_domains_fit() {
        let one = Machine::new(Backend::Bochs, Duration::from_secs(1));
        assert_eq!(machine_for(&one, "bench_cpus_4").cpus, 4);
        assert_eq!(machine_for(&one, "bench_ring_2cpu").cpus, 2);
        assert_eq!(machine_for(&one, "hello").cpus, 1);
        // More CPUs asked for the whole run (`--cpus 8`) are kept.
        let eight = Machine { cpus: 8, ..one };
        assert_eq!(machine_for(&eight, "bench_cpus_2").cpus, 8);
        // Every domain of such a test has a CPU of its own that the machine
        // has (the test is domain 1, on CPU 0): a `keel.cpu=` beyond the
        // machine would quietly run it on CPU 0 and measure something else.
        // A test that places its own vCPUs instead is checked by
        // `a_test_asks_for_its_vcpus_with_its_own_words`.
        for &(name, cpus) in TEST_CPUS {
            assert!(cpus > 1, "{name}: one CPU is the default");
            if vcpu_cpus(name).is_some() {
                continue;
            }
            let (_, lines) = COMPANION_DOMAINS
                .iter()
                .find(|(t, _)| *t == name)
                .unwrap_or_else(|| panic!("{name}: no companions to place"));
            let mut used = vec![0u32];
            for line in lines.iter() {
                let cpu = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("keel.cpu="))
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or_else(|| panic!("{name}: {line:?} has no keel.cpu="));
                assert!(cpu < cpus, "{name}: {line:?} on a {cpus}-CPU machine");
                assert!(!used.contains(&cpu), "{name}: two domains on CPU {cpu}");
                used.push(cpu);
            }
        }
    }

    /// The CPUs test `name`'s `keel.vcpu_cpus=` places its vCPUs on.
    fn vcpu_cpus(name: &str) -> Option<Vec<u32>> {
        test_domain_words(name).iter().find_map(|w| {
            let list = w.strip_prefix("keel.vcpu_cpus=")?;
            Some(
                list.split(',')
                    .map(|c| c.parse().expect("keel.vcpu_cpus= numbers"))
                    .collect(),
            )
        })
    }

    #[test]
    fn a_test_asks_for_its_vcpus_with_its_own_words() {
        assert_eq!(test_domain_words("vcpus"), ["keel.vcpus=2"]);
        assert_eq!(test_domain_words("vcpus_4"), ["keel.vcpus=4"]);
        assert_eq!(test_domain_words("domctl"), ["keel.control"]);
        assert!(test_domain_words("hello").is_empty());
        assert_eq!(
            test_domain_words("vcpus_spread"),
            ["keel.vcpus=2", "keel.vcpu_cpus=0,1"]
        );
        // Every vCPU of a domain runs on the domain's CPU unless
        // `keel.vcpu_cpus=` places it: a test of several vCPUs needs one CPU,
        // or those its vCPUs are placed on (each below the machine's, vCPU 0
        // on the test's CPU 0, one CPU named per vCPU, more than one CPU
        // used); each word names a program.
        let bins = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest/src/bin");
        for &(name, words) in TEST_DOMAIN_WORDS {
            assert!(
                std::path::Path::new(bins)
                    .join(format!("{name}.rs"))
                    .exists(),
                "{name}: no such test program"
            );
            let vcpus = words
                .iter()
                .find_map(|w| w.strip_prefix("keel.vcpus="))
                .map(|n| n.parse::<usize>().expect("keel.vcpus= a number"));
            match (vcpus, vcpu_cpus(name)) {
                (Some(_), None) => assert_eq!(test_cpus(name), 1, "{name}"),
                (Some(n), Some(cpus)) => {
                    assert_eq!(cpus.len(), n, "{name}: a CPU for each vCPU");
                    assert_eq!(cpus[0], 0, "{name}: vCPU 0 on the test's CPU");
                    assert!(
                        cpus.iter().all(|&c| c < test_cpus(name)),
                        "{name}: {cpus:?} on a machine of {} CPU(s)",
                        test_cpus(name)
                    );
                    assert!(cpus.iter().any(|&c| c != 0), "{name}: all on CPU 0");
                }
                (None, Some(_)) => panic!("{name}: keel.vcpu_cpus= without keel.vcpus="),
                (None, None) => {}
            }
        }
    }

    #[test]
    fn a_backend_of_one_cpu_skips_a_test_that_needs_more() {
        let t = program("bench_cpus_2", TestCategory::Bench);
        let m = Machine::new(Backend::Native, Duration::from_secs(1));
        let r = cpus_skip(&t, &m).expect("skipped");
        assert_eq!(r.verdict, Verdict::Skip);
        assert!(r.reason.contains("needs 2 CPUs"), "{}", r.reason);
        // The nested machine runs two at once (QEMU -smp on two L0 CPUs).
        let m = Machine::new(Backend::Nested, Duration::from_secs(1));
        let r = cpus_skip(&program("bench_cpus_4", TestCategory::Bench), &m).expect("skipped");
        assert!(r.reason.contains("needs 4 CPUs at once"), "{}", r.reason);
        for backend in [Backend::Bochs, Backend::Kvm, Backend::Nested] {
            let m = Machine::new(backend, Duration::from_secs(1));
            assert!(cpus_skip(&t, &m).is_none());
        }
        let m = Machine::new(Backend::Nested, Duration::from_secs(1));
        assert!(cpus_skip(&program("hello", TestCategory::Special), &m).is_none());
    }

    #[test]
    fn globs() {
        assert!(glob_match("mmu_*", "mmu_pin_l1"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*pin*", "mmu_pin_l1"));
        assert!(glob_match("h?llo", "hello"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("hello", "hello"));
        assert!(!glob_match("hello", "hello2"));
        assert!(!glob_match("mmu_*", "xmmu_pin"));
        assert!(glob_match("**x", "x"));
    }

    #[test]
    fn selection() {
        let all = [
            program("mmu_pin", TestCategory::Security),
            program("mmu_update", TestCategory::Functional),
            program("version", TestCategory::Abi),
        ];
        let names = |v: Vec<TestProgram>| v.into_iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(names(select(&all, &[], None).unwrap()).len(), 3);
        assert_eq!(
            names(select(&all, &["mmu_*".into()], None).unwrap()),
            ["mmu_pin", "mmu_update"]
        );
        assert_eq!(
            names(select(&all, &["mmu_*".into()], Some(TestCategory::Security)).unwrap()),
            ["mmu_pin"]
        );
        assert_eq!(
            names(select(&all, &["version".into(), "mmu_pin".into()], None).unwrap()),
            ["mmu_pin", "version"]
        );
        let err = select(&all, &["nope".into()], None).unwrap_err();
        assert!(crate::error::is_usage(&err));
        assert!(err.to_string().contains("mmu_pin, mmu_update, version"));
    }

    #[test]
    fn discovery_keeps_only_programs_with_a_test_note() {
        let dir = std::env::temp_dir().join(format!("keel-discover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let test_elf = crate::elfnote::tests::test_program(1, "refuses writable L1");
        let demo_elf = crate::elfnote::tests::elf_with_notes(&[]);
        std::fs::write(dir.join("pin"), test_elf).unwrap();
        std::fs::write(dir.join("hello"), demo_elf).unwrap();
        let arts = [
            Artifact {
                name: "hello".into(),
                path: dir.join("hello"),
            },
            Artifact {
                name: "pin".into(),
                path: dir.join("pin"),
            },
        ];
        let found = discover(&arts).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "pin");
        assert_eq!(found[0].category, TestCategory::Security);
        assert_eq!(found[0].title, "refuses writable L1");
    }

    fn outcome(console: &str, status: Option<ExitStatus>, emulator: EmulatorEnd) -> Outcome {
        Outcome {
            backend: Backend::Bochs,
            console: console.into(),
            status,
            emulator,
            emulator_output: "bochs says hi".into(),
            wall: Duration::from_secs(3),
            kept_dir: None,
        }
    }

    #[test]
    fn a_test_may_expect_the_status_of_a_crash() {
        let c = "(d1) Test result: SUCCESS\nkeel: power off, status 1 (guest crashed)\n";
        let mut o = outcome(c, Some(ExitStatus::GuestCrash), EmulatorEnd::Exited(1));
        o.emulator = EmulatorEnd::Exited(machine::expected_emulator_code(
            o.backend,
            ExitStatus::GuestCrash,
        ));
        assert_eq!(judge(&o).0, Verdict::Crash, "not expected: a crash");
        assert_eq!(
            judge_expecting(&o, ExitStatus::GuestCrash),
            (Verdict::Success, String::new())
        );
        // Expected and absent: the run that powers off cleanly fails.
        let c = "(d1) Test result: SUCCESS\nkeel: power off, status 0 (guest powered off)\n";
        let o = outcome(c, Some(ExitStatus::Success), EmulatorEnd::Exited(1));
        let (v, why) = judge_expecting(&o, ExitStatus::GuestCrash);
        assert_eq!(v, Verdict::Crash);
        assert!(why.contains("end with status 1"), "{why}");
        // A SKIP (no hypervisor, no companions) may end cleanly.
        let c = "Test result: SKIP: needs Keel\nkeel: power off, status 0 (guest powered off)\n";
        let o = outcome(c, Some(ExitStatus::Success), EmulatorEnd::Exited(1));
        assert_eq!(judge_expecting(&o, ExitStatus::GuestCrash).0, Verdict::Skip);
        assert_eq!(expected_status("domctl"), ExitStatus::GuestCrash);
        assert_eq!(expected_status("hello"), ExitStatus::Success);
    }

    #[test]
    fn judging() {
        let ok = "(d1) Test result: SUCCESS\nkeel: power off, status 0 (guest powered off)\n";
        let o = outcome(ok, Some(ExitStatus::Success), EmulatorEnd::Exited(1));
        assert_eq!(judge(&o), (Verdict::Success, String::new()));
        // The same console with an exit code power-off cannot give (Bochs's
        // debugger quit after a magic breakpoint): not a pass.
        let o = outcome(ok, Some(ExitStatus::Success), EmulatorEnd::Exited(0));
        let (v, why) = judge(&o);
        assert_eq!(v, Verdict::Crash);
        assert!(why.contains("exited with code 0"), "{why}");

        let fail = "(d1) Test result: FAILURE: pin returned 0\nkeel: power off, status 1 (guest crashed)\n";
        let o = outcome(fail, Some(ExitStatus::GuestCrash), EmulatorEnd::Exited(1));
        assert_eq!(judge(&o), (Verdict::Failure, "pin returned 0".into()));

        // No verdict: CRASH, saying what the hypervisor did.
        let o = outcome(
            "keel: EXCEPTION #PF\nkeel: power off, status 3 (hypervisor panic)\n",
            Some(ExitStatus::HypervisorPanic),
            EmulatorEnd::Exited(1),
        );
        let (v, why) = judge(&o);
        assert_eq!(v, Verdict::Crash);
        assert!(why.contains("status 3 (hypervisor panic)"), "{why}");

        let o = outcome("(d1) working...\n", None, EmulatorEnd::TimedOut);
        let (v, why) = judge(&o);
        assert_eq!(v, Verdict::Crash);
        assert!(why.contains("timed out"), "{why}");

        // A SUCCESS that does not end in a clean power-off is not a pass.
        let o = outcome(
            "(d1) Test result: SUCCESS\nkeel: power off, status 7 (VM entry failed)\n",
            Some(ExitStatus::VmEntryFailed),
            EmulatorEnd::Exited(1),
        );
        assert_eq!(judge(&o).0, Verdict::Crash);
        let o = outcome("(d1) Test result: SUCCESS\n", None, EmulatorEnd::TimedOut);
        assert_eq!(judge(&o).0, Verdict::Crash);
        let o = outcome(
            "(d1) Test result: SKIP: no EPT\nkeel: power off, status 0 (guest powered off)\n",
            Some(ExitStatus::Success),
            EmulatorEnd::Exited(1),
        );
        assert_eq!(judge(&o), (Verdict::Skip, "no EPT".into()));
        // A guest's numbered lines that did not all arrive: FAILURE.
        let o = outcome(
            "(d1) KEEL-SEQ t 0/2\n(d1) Test result: SUCCESS\nkeel: power off, status 0 (guest powered off)\n",
            Some(ExitStatus::Success),
            EmulatorEnd::Exited(1),
        );
        let (v, why) = judge(&o);
        assert_eq!(v, Verdict::Failure);
        assert!(why.contains("only 1 of 2"), "{why}");
    }

    #[test]
    fn the_nested_suite_skips_what_a_defect_breaks_without_booting() {
        let opts = |attempt_defects| Options {
            machine: Machine::new(crate::backend::Backend::Nested, Duration::from_secs(1)),
            jobs: 1,
            seed: None,
            guest_args: Vec::new(),
            hv_cmdline: Vec::new(),
            attempt_defects,
        };
        // No image exists at this path: a boot would be an Error, not a Skip.
        let hv = Path::new("/nonexistent/keel-hypervisor");
        let tests = [program("sched_spin", TestCategory::Functional)];
        let mut out = Vec::new();
        let (summary, traces) = run_suite_nested(hv, &tests, &opts(false), &mut out, false);
        assert!(traces.is_empty());
        assert_eq!(summary.results.len(), 1);
        let r = &summary.results[0];
        assert_eq!(r.verdict, Verdict::Skip, "{}", r.reason);
        assert!(
            r.reason
                .contains("bochs-extint-masked-by-guest-if-under-l0")
                && r.reason.contains(crate::nested::L0_CPU_MODEL),
            "{}",
            r.reason
        );
        assert!(String::from_utf8(out).unwrap().contains("sched_spin"));
    }

    #[test]
    fn progress_line() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            progress_message(3, &names(&["mmu_pin", "timers"]), 10),
            "3 done, 2 running, 5 left: mmu_pin, timers"
        );
        assert_eq!(progress_message(10, &[], 10), "10 done, 0 running, 0 left");
        // Without a terminal there is no bar: the printing is all that happens.
        let p = Progress::new(2, false);
        assert!(p.bar.is_none());
        p.started("a");
        p.ended("a");
        let mut printed = false;
        p.print(|| printed = true);
        assert!(printed);
        p.finish();
        // With one (hidden here), the workers keep what is running and done.
        let p = Progress::new(3, true);
        p.started("a");
        p.started("b");
        p.ended("a");
        p.print(|| {});
        let st = p.state.lock().unwrap().clone();
        assert_eq!(
            progress_message(st.1, &st.0, 3),
            "1 done, 1 running, 1 left: b"
        );
        assert_eq!(p.bar.as_ref().unwrap().position(), 1);
        p.finish();
    }

    #[test]
    fn summary_line_and_diagnostics() {
        let r = |name: &str, v: Verdict| TestResult {
            test: program(name, TestCategory::Functional),
            verdict: v,
            reason: String::new(),
            wall: Duration::from_millis(1500),
            details: String::new(),
            console: String::new(),
        };
        let s = Summary {
            results: vec![
                r("a", Verdict::Success),
                r("b", Verdict::Failure),
                r("c", Verdict::Crash),
                r("d", Verdict::Error),
                r("e", Verdict::Skip),
                r("f", Verdict::Success),
            ],
            wall: Duration::ZERO,
        };
        assert_eq!(s.line(), "2 passed, 3 failed, 1 skipped");
        assert!(!s.ok());
        assert!(Summary::default().ok());
        assert_eq!(result_line(&s.results[0], 3), "SUCCESS a      1.50s");

        let o = outcome("", None, EmulatorEnd::Exited(1));
        let d = diagnostics(&o);
        assert!(d.contains("console: (empty)"));
        assert!(d.contains("no power-off line"));
        assert!(d.contains("bochs says hi"));
    }
}
