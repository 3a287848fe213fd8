//! # keel, the host tool
//!
//! `cargo keel <command>` builds the hypervisor and its guests for bare metal,
//! boots them on an emulator (or on KVM), and reports what happened:
//!
//! - `run`: boot one guest and stream the console live; the tool's exit status is
//!   the hypervisor's power-off status;
//! - `test`: boot every guest test program, each in a fresh hypervisor, and judge
//!   it from its `Test result:` line;
//! - `bench`: boot every benchmark program, report their figures as a table
//!   (and JSON), and compare them with the committed baseline ([`mod@bench`]);
//! - `abi`: dump or check the ABI layout fixtures.
//!
//! Everything is in this library so the repository's boot tests
//! (`loader/tests/`) drive exactly the code the command line does; `main.rs` only
//! parses arguments.
//!
//! ## How a run ends
//! The hypervisor's last console line is `keel: power off, status N (...)`
//! ([`keel_abi::platform`]); that line is the authority on the result, and the
//! emulator's exit code is checked against it ([`machine::Outcome::cross_check`]).

#![deny(missing_docs)]

pub mod abi;
pub mod backend;
pub mod behaviour;
pub mod bench;
pub mod bochs;
pub mod cargo;
pub mod chart;
pub mod cli;
pub mod console;
pub mod defects;
pub mod elfnote;
pub mod error;
pub mod fixture;
pub mod host;
pub mod junit;
pub mod machine;
pub mod nested;
pub mod qemu;
pub mod runner;

use backend::{Backend, BackendChoice};
use error::{Context, Result};
use keel_abi::note::TestCategory;
use machine::{Boot, Machine};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The guest `cargo keel run` boots when none is named.
pub const DEFAULT_GUEST: &str = "hello";

/// The CPU counts `--cpus` accepts (more than the hypervisor's 8 so that the
/// "left out" path can be seen).
pub const MACHINE_CPUS: std::ops::RangeInclusive<u32> = 1..=16;

/// Settings shared by `run` and `test`: which machine, and the command lines.
#[derive(Clone, Debug)]
pub struct MachineOptions {
    /// Backend (default: auto).
    pub backend: BackendChoice,
    /// CPU model (default: the backend's).
    pub cpu_model: Option<String>,
    /// Machine memory in MiB (default [`machine::DEFAULT_MEM_MIB`]).
    pub mem_mib: Option<u32>,
    /// Guest memory in MiB (the hypervisor's `guest_mem=`; default: the hypervisor's).
    pub guest_mem_mib: Option<u32>,
    /// Bochs instructions per emulated second.
    pub ips: Option<u64>,
    /// CPUs in the machine (default 1).
    pub cpus: Option<u32>,
    /// Wall-clock limit of one boot.
    pub timeout: Duration,
    /// Extra guest command-line words.
    pub guest_args: Vec<String>,
    /// Extra hypervisor command-line words.
    pub hv_args: Vec<String>,
}

impl MachineOptions {
    /// Defaults: auto backend, the given timeout.
    pub fn new(timeout: Duration) -> Self {
        Self {
            backend: BackendChoice::Auto,
            cpu_model: None,
            mem_mib: None,
            guest_mem_mib: None,
            ips: None,
            cpus: None,
            timeout,
            guest_args: Vec::new(),
            hv_args: Vec::new(),
        }
    }

    /// With a fixed backend.
    pub fn on(mut self, backend: Backend) -> Self {
        self.backend = BackendChoice::Fixed(backend);
        self
    }

    /// With a CPU model.
    pub fn cpu(mut self, model: &str) -> Self {
        self.cpu_model = Some(model.to_string());
        self
    }

    /// The hypervisor's command line: the console, guest memory, then extras.
    pub fn hv_cmdline(&self) -> Vec<String> {
        let mut v = vec!["console=com1".to_string()];
        if let Some(m) = self.guest_mem_mib {
            v.push(format!("guest_mem={m}"));
        }
        v.extend(self.hv_args.iter().cloned());
        v
    }

    /// Check the settings against what `backend` accepts: its CPU models, its
    /// memory range, Bochs's `ips` range, guest memory less than the machine's.
    /// The error is a usage error naming the value and what would do.
    pub fn validate(&self, backend: Backend) -> Result<()> {
        if let Some(model) = &self.cpu_model {
            if !backend.has_cpu_model(model) {
                let models = backend.cpu_models();
                let list = if models.len() > 40 {
                    "see `qemu-system-x86_64 -cpu help`".to_string()
                } else {
                    models.join(", ")
                };
                crate::usage_bail!(
                    "--cpu-model {model:?} is not a CPU model of {backend} ({list})"
                );
            }
        }
        let mem = self.mem_mib.unwrap_or(machine::DEFAULT_MEM_MIB);
        let range = backend.mem_range_mib();
        if !range.contains(&mem) {
            crate::usage_bail!(
                "--mem {mem} MiB is more than {backend} accepts ({} to {} MiB)",
                range.start(),
                range.end()
            );
        }
        if let Some(g) = self.guest_mem_mib {
            if g >= mem {
                crate::usage_bail!(
                    "--guest-mem {g} MiB does not fit in the machine's {mem} MiB (--mem); the hypervisor needs some too"
                );
            }
        }
        if let Some(n) = self.cpus {
            if !MACHINE_CPUS.contains(&n) {
                crate::usage_bail!(
                    "--cpus {n} is out of range ({} to {}; the hypervisor runs on at most 8 and reports the rest as left out)",
                    MACHINE_CPUS.start(),
                    MACHINE_CPUS.end()
                );
            }
            if n > 1 && backend == Backend::Native {
                crate::usage_bail!(
                    "--cpus {n}: the {backend} backend boots one CPU (bochs, kvm, tcg and nested take --cpus)"
                );
            }
        }
        if let Some(ips) = self.ips {
            if backend != Backend::Bochs {
                crate::usage_bail!("--ips is a Bochs setting; {backend} has no instruction rate");
            }
            if !backend::BOCHS_IPS.contains(&ips) {
                crate::usage_bail!(
                    "--ips {ips} is out of Bochs's range ({} to {})",
                    backend::BOCHS_IPS.start(),
                    backend::BOCHS_IPS.end()
                );
            }
        }
        Ok(())
    }

    /// Resolve the backend (saying which and why on `log`), check the settings
    /// against it ([`MachineOptions::validate`]), make sure its host tools are
    /// installed, and give the machine.
    pub fn prepare(&self, log: &mut dyn Write) -> Result<Machine> {
        let (backend, why) = self.backend.resolve(&host::KvmProbe::probe());
        let _ = writeln!(log, "[keel] {why}");
        self.validate(backend)?;
        host::ensure_tools(backend.tools(), log)?;
        let mut m = Machine::new(backend, self.timeout);
        if let Some(c) = &self.cpu_model {
            m.cpu_model = c.clone();
        }
        if let Some(mem) = self.mem_mib {
            m.mem_mib = mem;
        }
        if let Some(ips) = self.ips {
            m.ips = ips;
        }
        if let Some(n) = self.cpus {
            m.cpus = n;
        }
        Ok(m)
    }
}

/// The result of `cargo keel run`.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The boot's outcome.
    pub outcome: machine::Outcome,
    /// The exit code for the tool ([`machine::Outcome::exit_code`]).
    pub exit_code: i32,
}

/// `cargo keel run`: build, boot `guest`, stream its console to `out`, and
/// report on `log`.
pub fn run(
    guest: &str,
    opts: &MachineOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<RunReport> {
    run_guests(&[guest.to_string()], opts, out, log)
}

/// `cargo keel run --guest a --guest b ...`: build, boot every guest named
/// (each a domain, ids 1, 2, ... in order; a name may be followed by that
/// domain's words), stream the console to `out`, and report on `log`.
pub fn run_guests(
    guests_named: &[String],
    opts: &MachineOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<RunReport> {
    let machine = opts.prepare(log)?;
    let ws = cargo::Workspace::locate()?;
    let t0 = Instant::now();
    let hv = ws
        .build_hypervisor(false)
        .context("building the hypervisor")?;
    let guests = ws.build_guests(false).context("building the guests")?;
    let _ = writeln!(log, "[keel] built in {:.1}s", t0.elapsed().as_secs_f64());
    let find = |guest: &str| -> Result<&cargo::Artifact> {
        match guests.iter().find(|g| g.name == guest) {
            Some(g) => Ok(g),
            None => {
                let names: Vec<&str> = guests.iter().map(|g| g.name.as_str()).collect();
                crate::usage_bail!(
                    "no guest named {guest:?}; the guests are: {}",
                    names.join(", ")
                )
            }
        }
    };
    // `--guest 'name words...'`: the name, then that domain's own words.
    let split = |s: &str| -> (String, Vec<String>) {
        let mut w = s.split_whitespace().map(str::to_string);
        (w.next().unwrap_or_default(), w.collect())
    };
    let (guest, first_words) = split(guests_named.first().map_or(DEFAULT_GUEST, |s| s.as_str()));
    let guest = guest.as_str();
    let g = find(guest)?;
    let mut companions = Vec::new();
    for named in guests_named.iter().skip(1) {
        let (name, args) = split(named);
        let a = find(&name)?;
        companions.push(machine::Companion {
            path: a.path.clone(),
            name,
            args,
        });
    }
    let mut guest_args = first_words;
    guest_args.extend_from_slice(&opts.guest_args);
    let _ = writeln!(
        log,
        "[keel] booting {} with guest {guest} on {} (cpu {}, {} MiB, timeout {}s)",
        hv.display(),
        machine.backend,
        machine.cpu_model,
        machine.mem_mib,
        machine.timeout.as_secs_f64()
    );
    let hv_cmdline = opts.hv_cmdline();
    let boot = Boot {
        hypervisor: &hv,
        guest: &g.path,
        guest_name: &g.name,
        guest_args: &guest_args,
        hv_cmdline: &hv_cmdline,
        companions: &companions,
    };
    let outcome = machine::run(&machine, &boot, out)?;
    let _ = out.flush();
    match (&outcome.emulator, outcome.cross_check()) {
        (machine::EmulatorEnd::TimedOut, _) => {
            let _ = writeln!(
                log,
                "[keel] TIMEOUT: no power-off after {}s; the machine was stopped. Last console lines:\n{}",
                machine.timeout.as_secs_f64(),
                console::tail(&outcome.console, 20)
            );
        }
        (_, Ok(s)) => {
            let _ = writeln!(
                log,
                "[keel] the hypervisor powered off with status {} ({}); {} agrees; {:.2}s",
                s as u8,
                s.describe(),
                machine.backend,
                outcome.wall.as_secs_f64()
            );
        }
        (_, Err(why)) => {
            let _ = writeln!(log, "[keel] WARNING: {why}");
            if outcome.status.is_none() {
                let _ = writeln!(
                    log,
                    "[keel] last console lines:\n{}\n[keel] emulator output:\n{}",
                    console::tail(&outcome.console, 20),
                    console::tail(&outcome.emulator_output, 10)
                );
            }
        }
    }
    let exit_code = outcome.exit_code();
    Ok(RunReport { outcome, exit_code })
}

/// What `cargo keel test` runs.
#[derive(Clone, Debug)]
pub struct TestOptions {
    /// Names or glob patterns (none: every test).
    pub patterns: Vec<String>,
    /// Only this category.
    pub category: Option<TestCategory>,
    /// The machine.
    pub machine: MachineOptions,
    /// Parallel machines (default: the number of CPUs).
    pub jobs: Option<usize>,
    /// Write JUnit XML here.
    pub junit: Option<PathBuf>,
    /// `seed=N` for every guest; `None`: a fresh one ([`fresh_seed`]).
    pub seed: Option<u64>,
    /// Only list the selected tests (name, category, title); boot nothing.
    pub list: bool,
    /// Boot the tests a known platform defect breaks there too
    /// ([`defects`]), instead of reporting them SKIP.
    pub attempt_defects: bool,
}

impl TestOptions {
    /// The tests matching `patterns` on `machine`, one machine at a time, a
    /// fresh seed, no JUnit file: what a boot test of this crate wants (change a
    /// field with struct update syntax).
    pub fn new<S: Into<String>>(
        patterns: impl IntoIterator<Item = S>,
        machine: MachineOptions,
    ) -> Self {
        Self {
            patterns: patterns.into_iter().map(Into::into).collect(),
            category: None,
            machine,
            jobs: Some(1),
            junit: None,
            seed: None,
            list: false,
            attempt_defects: false,
        }
    }
}

/// `cargo keel test`: build, discover, run, report (results on `out`, the tool's
/// own messages on `log`). The summary says whether everything passed.
pub fn test(
    opts: &TestOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<runner::Summary> {
    let machine = opts.machine.prepare(log)?;
    let ws = cargo::Workspace::locate()?;
    let hv = ws
        .build_hypervisor(true)
        .context("building the hypervisor")?;
    let guests = ws.build_guests(true).context("building the guests")?;
    let all = runner::discover(&guests)?;
    let tests = runner::select(&all, &opts.patterns, opts.category)?;
    if opts.list {
        let width = tests.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &tests {
            let _ = writeln!(
                out,
                "{:<width$}  {:<10}  {}",
                t.name,
                t.category.name(),
                t.title
            );
        }
        let _ = writeln!(out, "{} test(s)", tests.len());
        return Ok(runner::Summary::default());
    }
    let jobs = opts
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Every run explores: without --seed the guests get a fresh seed from the
    // host (the emulator's TSC is the same on every run, so a guest's own
    // default would replay one case for ever). A failure report shows it.
    let (seed, how) = match opts.seed {
        Some(s) => (s, "given"),
        None => (fresh_seed(), "fresh"),
    };
    let _ = writeln!(
        log,
        "[keel] {} test(s) of {} on {} (cpu {}), {jobs} at a time, seed={seed} ({how}; replay with --seed {seed})",
        tests.len(),
        all.len(),
        machine.backend,
        machine.cpu_model,
    );
    let ropts = runner::Options {
        machine,
        jobs,
        seed: Some(seed),
        guest_args: opts.machine.guest_args.clone(),
        hv_cmdline: opts.machine.hv_cmdline(),
        attempt_defects: opts.attempt_defects,
    };
    let summary = runner::run_suite(&hv, &tests, &ropts, out);
    let _ = writeln!(
        log,
        "[keel] suite wall time {:.2}s",
        summary.wall.as_secs_f64()
    );
    if let Some(path) = &opts.junit {
        std::fs::write(path, summary.junit())
            .with_context(|| format!("writing JUnit XML to {}", path.display()))?;
    }
    Ok(summary)
}

/// A seed no earlier run used: 8 bytes of the host's randomness, or the
/// clock and the process id where /dev/urandom cannot be read.
pub fn fresh_seed() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

/// What `cargo keel bench` runs and what it does with the figures.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Program names, figure names or `program/figure` keys, with wildcards
    /// (none: every bench program).
    pub patterns: Vec<String>,
    /// The machine.
    pub machine: MachineOptions,
    /// Write the report as JSON here.
    pub json: Option<PathBuf>,
    /// Compare with the baseline; fail on a regression.
    pub check: bool,
    /// Record this run as the baseline (merged with the figures of programs not run).
    pub update_baseline: bool,
    /// The baseline file (default: [`bench::BASELINE_PATH`] in the workspace).
    pub baseline: Option<PathBuf>,
    /// Boots per program whose figures are combined by median (default: 1 on
    /// Bochs, whose figures are exact; [`bench::DEFAULT_KVM_RUNS`] on KVM).
    pub runs: Option<usize>,
    /// Parallel machines (default: the number of CPUs).
    pub jobs: Option<usize>,
    /// Draw Keel's figures beside the peer hypervisors' here ([`chart`]).
    pub svg: Option<PathBuf>,
    /// The peer figures (default: [`chart::PEERS_PATH`] above the workspace,
    /// found by [`chart::find_peers`]).
    pub peers: Option<PathBuf>,
}

/// `cargo keel bench`: build, boot every selected bench program (`runs` times),
/// print the table on `out`, write JSON / the baseline, compare with the
/// baseline. Returns whether everything passed (every program succeeded and, with
/// `--check`, nothing got worse).
pub fn bench(opts: &BenchOptions, out: &mut dyn Write, log: &mut dyn Write) -> Result<bool> {
    let machine = opts.machine.prepare(log)?;
    let ws = cargo::Workspace::locate()?;
    // The chart's inputs are checked before anything boots.
    let peers = match &opts.svg {
        None => None,
        Some(_) => {
            if machine.backend.name() != chart::PEERS_BACKEND
                || machine.cpu_model != chart::PEERS_CPU_MODEL
            {
                crate::usage_bail!(
                    "--svg: the peer figures were measured on {} cpu {}; run with --backend {} --cpu-model {}",
                    chart::PEERS_BACKEND,
                    chart::PEERS_CPU_MODEL,
                    chart::PEERS_BACKEND,
                    chart::PEERS_CPU_MODEL
                );
            }
            let path = match &opts.peers {
                Some(p) => p.clone(),
                None => chart::find_peers(ws.root()).ok_or_else(|| {
                    error::UsageError(format!(
                        "--svg: no peer figures at ../{} (beside the clone or above it); name them with --peers FILE",
                        chart::PEERS_PATH
                    ))
                })?,
            };
            Some(chart::load_peers(&path)?)
        }
    };
    let hv = ws
        .build_hypervisor(true)
        .context("building the hypervisor")?;
    let guests = ws.build_guests(true).context("building the guests")?;
    let all = runner::discover(&guests)?;
    let baseline_path = opts
        .baseline
        .clone()
        .unwrap_or_else(|| ws.root().join(bench::BASELINE_PATH));
    // Figure names are known before a run only from the baseline: a pattern that
    // names neither a program nor one of those is a typo, refused before booting.
    let baseline = std::fs::read_to_string(&baseline_path)
        .ok()
        .and_then(|t| bench::from_json(&t).ok());
    let known = baseline
        .as_ref()
        .map(|b| b.figures.clone())
        .unwrap_or_default();
    let programs = bench::select_programs(&all, &opts.patterns);
    let unmatched = bench::unmatched(&all, &known, &opts.patterns);
    if programs.is_empty() || !unmatched.is_empty() {
        let names: Vec<&str> = all
            .iter()
            .filter(|t| t.category == keel_abi::note::TestCategory::Bench)
            .map(|t| t.name.as_str())
            .collect();
        crate::usage_bail!(
            "no benchmark program or figure matches {}; the programs are: {} (figures: `cargo keel bench` lists them)",
            unmatched
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            names.join(", ")
        );
    }
    let runs = opts
        .runs
        .unwrap_or(if machine.backend == backend::Backend::Kvm {
            bench::DEFAULT_KVM_RUNS
        } else {
            1
        });
    // Under the nested backend every figure comes from one Linux boot.
    let runs = if machine.backend == backend::Backend::Nested {
        1
    } else {
        runs
    };
    let jobs = opts
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let id = bench::MachineId {
        backend: machine.backend.name().to_string(),
        cpu_model: machine.cpu_model.clone(),
        ips: if machine.backend == backend::Backend::Bochs {
            machine.ips
        } else {
            0
        },
    };
    let _ = writeln!(
        log,
        "[keel] bench: {} program(s) on {} (cpu {}), {runs} run(s) each, {jobs} at a time",
        programs.len(),
        machine.backend,
        machine.cpu_model
    );
    let ropts = runner::Options {
        machine,
        jobs,
        seed: None,
        guest_args: opts.machine.guest_args.clone(),
        hv_cmdline: opts.machine.hv_cmdline(),
        // A benchmark breaks no test's rule; none is listed.
        attempt_defects: true,
    };
    let mut ok = true;
    let mut per_run = Vec::new();
    if ropts.machine.backend == backend::Backend::Nested {
        // One Linux boot: each program runs once for its figures, then once more
        // with L0's exits traced (the tracing costs L0 time, so it does not touch
        // the figures).
        let (summary, traces) = runner::run_suite_nested(&hv, &programs, &ropts, log, true);
        let mut figures = Vec::new();
        for r in &summary.results {
            if r.verdict.is_failure() {
                ok = false;
                continue;
            }
            match bench::parse_console(&r.test.name, &r.console) {
                Ok(mut f) => {
                    let trace = traces.iter().find(|t| t.name == r.test.name);
                    let traced = trace
                        .and_then(|t| bench::parse_console(&t.name, &t.console).ok())
                        .unwrap_or_default();
                    for fig in &mut f {
                        let marks = traced
                            .iter()
                            .find(|t| t.name == fig.name)
                            .and_then(|t| t.measured()?.marks);
                        if let (bench::Measure::Measured(m), Some(t), Some(mk)) =
                            (&mut fig.measure, trace, marks)
                        {
                            if let Some((e, n)) = bench::l0_for_marks(&t.marks, mk) {
                                m.l0_exits = Some(e);
                                m.l0_reflected = Some(n);
                            }
                        }
                    }
                    figures.extend(f);
                }
                Err(e) => {
                    let _ = writeln!(log, "[keel] bench: {e}");
                    ok = false;
                }
            }
        }
        per_run.push(figures);
    }
    for run in 0..runs {
        if ropts.machine.backend == backend::Backend::Nested {
            break;
        }
        if runs > 1 {
            let _ = writeln!(log, "[keel] bench: run {} of {runs}", run + 1);
        }
        let summary = runner::run_suite(&hv, &programs, &ropts, log);
        let mut figures = Vec::new();
        for r in &summary.results {
            if r.verdict.is_failure() {
                ok = false;
                continue;
            }
            match bench::parse_console(&r.test.name, &r.console) {
                Ok(f) if f.is_empty() && r.verdict == console::Verdict::Success => {
                    let _ = writeln!(
                        log,
                        "[keel] bench: {} passed but reported no figure (no KEEL-BENCH line)",
                        r.test.name
                    );
                    ok = false;
                }
                Ok(f) => figures.extend(f),
                Err(e) => {
                    let _ = writeln!(log, "[keel] bench: {e}");
                    ok = false;
                }
            }
        }
        per_run.push(figures);
    }
    let mut figures = bench::combine_runs(&per_run);
    bench::add_worst(&mut figures);
    figures.retain(|f| bench::keep_figure(f, &opts.patterns));
    if figures.is_empty() && ok {
        crate::usage_bail!(
            "the programs ran but reported no figure matching {}",
            opts.patterns.join(" ")
        );
    }
    figures.sort_by(|a, b| a.program.cmp(&b.program));
    // The compiler that built the images (cargo runs this workspace's toolchain).
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .current_dir(ws.root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let report = bench::Report {
        machine: id,
        runs,
        rustc,
        figures,
    };
    let _ = write!(out, "{}", bench::table(&report, baseline.as_ref()));
    if let (Some(path), Some(peers)) = (&opts.svg, &peers) {
        let svg = chart::svg(&report, peers)?;
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        let _ = writeln!(log, "[keel] bench: chart written to {}", path.display());
    }
    if let Some(path) = &opts.json {
        std::fs::write(path, bench::to_json(&report))
            .with_context(|| format!("writing {}", path.display()))?;
        let _ = writeln!(log, "[keel] bench: JSON written to {}", path.display());
    }
    if opts.update_baseline {
        if !ok {
            crate::bail!("not updating the baseline: a benchmark program failed");
        }
        let old = std::fs::read_to_string(&baseline_path)
            .ok()
            .and_then(|t| bench::from_json(&t).ok());
        let merged = bench::merge_baseline(old.as_ref(), &report);
        if let Some(dir) = baseline_path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&baseline_path, bench::to_json(&merged))
            .with_context(|| format!("writing {}", baseline_path.display()))?;
        let _ = writeln!(
            out,
            "baseline updated: {} ({} figures); review the diff and commit it on its own",
            baseline_path.display(),
            merged.figures.len()
        );
    }
    if opts.check {
        let text = std::fs::read_to_string(&baseline_path).with_context(|| {
            format!(
                "reading the baseline {} (make one with --update-baseline)",
                baseline_path.display()
            )
        })?;
        let base = bench::from_json(&text)
            .map_err(anyhow::Error::msg)
            .with_context(|| baseline_path.display().to_string())?;
        if base.machine != report.machine {
            crate::bail!(
                "the baseline was measured on {} cpu {} (ips {}), this run on {} cpu {} (ips {}): figures are only comparable on the same machine; run with --backend {} --cpu-model {}",
                base.machine.backend,
                base.machine.cpu_model,
                base.machine.ips,
                report.machine.backend,
                report.machine.cpu_model,
                report.machine.ips,
                base.machine.backend,
                base.machine.cpu_model
            );
        }
        let ran: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
        let cmp = bench::compare(
            &base,
            &report,
            |f| ran.contains(&f.program.as_str()) && bench::keep_figure(f, &opts.patterns),
            bench::TOLERANCE,
        );
        let _ = write!(out, "{}", cmp.render());
        if let Some(note) = bench::toolchain_note(&base, &report) {
            let _ = writeln!(out, "{note}");
        }
        ok &= cmp.ok();
    }
    if !ok {
        let _ = writeln!(out, "bench: FAILED");
    }
    Ok(ok)
}
