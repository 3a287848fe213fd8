//! The command line of `cargo keel`, on clap (derive).
//!
//! The argument structs here only parse and convert: every command's settings end
//! up in the library's option structs ([`MachineOptions`], [`TestOptions`],
//! [`BenchOptions`]) and the work is done by the library. Checks that depend on
//! the backend (CPU models, memory sizes, Bochs's `ips`) are the library's too
//! ([`MachineOptions::validate`]), because `--backend auto` is only resolved there.
//!
//! Adding a subcommand is one variant of [`Command`] (with its help and examples)
//! and one arm in `main.rs`; adding a backend is one variant of
//! [`crate::backend::Backend`] (its name, tools, CPU models, memory range).

use crate::backend::BackendChoice;
use crate::{BenchOptions, MachineOptions, TestOptions, DEFAULT_GUEST};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, Parser, Subcommand};
use keel_abi::note::TestCategory;
use std::path::PathBuf;
use std::time::Duration;

/// Exit code for every usage error (sysexits' EX_USAGE): a bad option or value,
/// an unknown guest or test name, a pattern that selects nothing. Distinct from
/// every power-off status.
pub const EXIT_USAGE: u8 = 64;
/// Exit code when the tool itself failed (sysexits' EX_SOFTWARE): a build error,
/// a host tool it could not install, a file it could not write.
pub const EXIT_TOOL_FAILED: u8 = 70;

/// Default timeout of `run`.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Default timeout of one test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest `--timeout` accepted: one day (a longer one is a typo, and
/// `Duration` cannot hold every number a person can type).
pub const MAX_TIMEOUT_SECS: f64 = 86_400.0;

const EXIT_STATUS_HELP: &str = "\
Exit status of the tool itself:
  64  a usage error: a bad option or value, an unknown guest or test, a pattern
      that selects nothing (one line on standard error says which)
  70  the tool failed: a build error, a host tool it could not install, a file
      it could not read or write (standard error says what and why)
`run` otherwise exits with the hypervisor's power-off status (0..9), 124 on a
timeout, 125 when the machine stopped without a power-off line; `test` and
`bench` exit 0 when everything passed, else 1.

Environment: KEEL_KEEP_RUNS=1 keeps each run's directory (ISO, bochsrc, logs).";

const TOP_EXAMPLES: &str = "\
Examples:
  cargo keel run                          boot the demo guest (hello)
  cargo keel test mmu_* --backend bochs   run the MMU tests under Bochs
  cargo keel bench --check                compare every figure with the baseline
  cargo keel run --help                   the options of one command";

/// `cargo keel`: build, boot, test and benchmark the Keel hypervisor.
#[derive(Debug, Parser)]
#[command(
    name = "keel",
    bin_name = "cargo keel",
    version,
    about = "Build, boot, test and benchmark the Keel hypervisor and its guests.",
    after_help = TOP_EXAMPLES,
    after_long_help = format!("{TOP_EXAMPLES}\n\n{EXIT_STATUS_HELP}"),
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// A command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot one guest and stream its console.
    #[command(
        long_about = "Build the hypervisor and the guests, boot one guest (default: hello) and \
                      stream the console. Exits with the hypervisor's power-off status (124: \
                      timeout, 125: the machine stopped without a power-off line).",
        after_help = "\
Examples:
  cargo keel run
  cargo keel run --guest template --backend bochs --cpu-model tigerlake
  cargo keel run --backend tcg --timeout 10        the \"no VT-x\" path under QEMU
  cargo keel run --backend nested --timeout 600    under real KVM, nested in Linux under Bochs
  cargo keel run --cmdline 'seed=42' --hv-cmdline 'guest_mem=16'"
    )]
    Run(RunArgs),
    /// Boot every guest test program (or those named) and judge each.
    #[command(
        long_about = "Boot every test program (or those matching; * and ? are wildcards) in a \
                      fresh hypervisor, up to --jobs at once, and judge each from its `Test \
                      result:` line. Exits 0 only when none failed, else 1. --list only lists \
                      them (name, category, title).",
        after_help = "\
Examples:
  cargo keel test
  cargo keel test --list --category security
  cargo keel test mmu_* version --jobs 1 --junit results.xml
  cargo keel test --backend bochs --cpu-model corei7_sandy_bridge_2600k --seed 7
  cargo keel test ops_table --backend native     the guest alone on QEMU TCG, no hypervisor
  cargo keel test ops_table --cmdline pv=mmu     on Keel, only the MMU group paravirtual"
    )]
    Test(TestArgs),
    /// Boot the benchmark programs and print (and check) their figures.
    #[command(
        long_about = "Boot every benchmark program (category bench), or those whose program, \
                      figure or program/figure matches a pattern, and print its figures: cost \
                      per operation (Bochs: instructions; KVM: TSC cycles, median of --runs \
                      boots), exits and VMCS accesses per operation, ratio to the floor. A \
                      pattern that selects nothing is a usage error. --check compares with \
                      bench/baseline.json and exits 1 if any figure got worse by more than \
                      2%; --update-baseline records this run there (a deliberate commit of \
                      its own).",
        after_help = "\
Examples:
  cargo keel bench
  cargo keel bench --check
  cargo keel bench bench_hypercalls/floor xen_version --json out.json
  cargo keel bench bench_mmu --update-baseline
  cargo keel bench --backend kvm --runs 9
  cargo keel bench bench_hypercalls bench_policy --svg peers.svg"
    )]
    Bench(BenchArgs),
    /// Print or check the ABI layout fixtures.
    #[command(
        subcommand,
        after_help = "\
Examples:
  cargo keel abi dump > /tmp/layout.txt
  cargo keel abi check"
    )]
    Abi(AbiCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        long_about = "Print a completion script for the command `keel` on standard output. \
                      `cargo keel` is a cargo alias, which shells do not complete through: \
                      define `alias keel='cargo keel'` (or put target/release/keel on PATH) \
                      and load the script.",
        after_help = "\
Examples:
  cargo keel completions bash > ~/.local/share/bash-completion/completions/keel
  cargo keel completions zsh > ~/.zfunc/_keel
  cargo keel completions fish > ~/.config/fish/completions/keel.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `cargo keel abi ...`
#[derive(Debug, Subcommand)]
pub enum AbiCommand {
    /// Print the ABI layout in the fixture format.
    #[command(after_help = "Example:\n  cargo keel abi dump | diff - abi/fixtures/1.0/layout.txt")]
    Dump,
    /// Check the ABI layout against every released fixture.
    #[command(after_help = "Example:\n  cargo keel abi check")]
    Check,
}

/// The machine options `run`, `test` and `bench` share.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Machine options")]
pub struct MachineArgs {
    /// Backend: auto is KVM with nested VMX if the host has it, else Bochs;
    /// native boots the guest alone on QEMU TCG (no hypervisor).
    /// nested is QEMU/KVM inside Linux under Bochs, all guests in one Linux boot.
    #[arg(long, value_name = "BACKEND", default_value = "auto", value_parser = backend_parser())]
    pub backend: BackendChoice,
    /// CPU model: a Bochs 2.7 model (corei7_skylake_x, tigerlake, ...) or a QEMU
    /// `-cpu` model (host, max, qemu64, Skylake-Server, ...); checked against the
    /// backend's list. Default: the backend's.
    #[arg(long, value_name = "MODEL")]
    pub cpu_model: Option<String>,
    /// Machine memory: 128, 256M, 1G (default 128M; Bochs takes at most 2G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size_mib)]
    pub mem: Option<u32>,
    /// Guest memory in MiB (the hypervisor's guest_mem=), less than --mem.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..))]
    pub guest_mem: Option<u32>,
    /// Bochs instructions per emulated second (1000000 to 4294967295).
    #[arg(long, value_name = "N")]
    pub ips: Option<u64>,
    /// CPUs in the machine, 1 to 16 (default 1): Bochs `cpu: count=N`, QEMU
    /// `-smp N`. The hypervisor starts them all and runs the domain on CPU 0.
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,
    /// Wall-clock limit of one boot, in seconds (more than 0, at most 86400;
    /// default: run 60, test and bench 120).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Extra guest command-line words (may be repeated).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub cmdline: Vec<String>,
    /// Extra hypervisor command-line words (may be repeated).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub hv_cmdline: Vec<String>,
}

impl MachineArgs {
    /// The library's machine options, with `default_timeout` when none was given.
    pub fn options(&self, default_timeout: Duration) -> MachineOptions {
        let words = |v: &[String]| -> Vec<String> {
            v.iter()
                .flat_map(|s| s.split_whitespace())
                .map(String::from)
                .collect()
        };
        MachineOptions {
            backend: self.backend,
            cpu_model: self.cpu_model.clone(),
            mem_mib: self.mem,
            guest_mem_mib: self.guest_mem,
            ips: self.ips,
            cpus: self.cpus,
            timeout: self.timeout.unwrap_or(default_timeout),
            guest_args: words(&self.cmdline),
            hv_args: words(&self.hv_cmdline),
        }
    }
}

/// `cargo keel run`
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// The guest to boot (a bin of keel-guest). Repeat it to boot several,
    /// each a domain (ids 1, 2, ... in order); a guest may carry the
    /// hypervisor's domain words after its name: `--guest 'spinner keel.service'`.
    #[arg(long, value_name = "NAME", default_values_t = [DEFAULT_GUEST.to_string()])]
    pub guest: Vec<String>,
    /// The machine.
    #[command(flatten)]
    pub machine: MachineArgs,
}

/// `cargo keel test`
#[derive(Clone, Debug, Args)]
pub struct TestArgs {
    /// Test names or patterns (* and ? are wildcards); none: every test.
    #[arg(value_name = "NAME|PATTERN")]
    pub patterns: Vec<String>,
    /// Only tests of this category.
    #[arg(long, value_name = "CATEGORY", value_parser = category_parser())]
    pub category: Option<TestCategory>,
    /// Machines at once (default: the number of CPUs).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Pass seed=N to every guest.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Only list the selected tests (name, category, title); boot nothing.
    #[arg(long)]
    pub list: bool,
    /// Boot the tests a known platform defect breaks on this machine too
    /// (docs/platforms.md), instead of reporting them SKIP.
    #[arg(long)]
    pub attempt_defects: bool,
    /// The machine.
    #[command(flatten)]
    pub machine: MachineArgs,
}

impl TestArgs {
    /// The library's test options.
    pub fn options(&self) -> TestOptions {
        TestOptions {
            patterns: self.patterns.clone(),
            category: self.category,
            machine: self.machine.options(TEST_TIMEOUT),
            jobs: self.jobs.map(usize::from),
            junit: self.junit.clone(),
            seed: self.seed,
            list: self.list,
            attempt_defects: self.attempt_defects,
        }
    }
}

/// `cargo keel bench`
#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    /// Program names, figure names or program/figure keys (* and ? are
    /// wildcards); none: every benchmark program.
    #[arg(value_name = "NAME|PATTERN")]
    pub patterns: Vec<String>,
    /// Write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Compare with the baseline; exit 1 if any figure got worse by more than 2%.
    #[arg(long, conflicts_with = "update_baseline")]
    pub check: bool,
    /// Record this run in the baseline (then commit it on its own).
    #[arg(long)]
    pub update_baseline: bool,
    /// The baseline file (default: bench/baseline.json in the workspace).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Boots per program, combined by median (default: 1 on Bochs, 5 on KVM).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub runs: Option<u16>,
    /// Machines at once (default: the number of CPUs).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Draw Keel's figures beside the peer hypervisors' (KVM, Xen) as SVG here
    /// (Bochs corei7_skylake_x only, the peers' machine).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// The peer figures for --svg (default: ../shared/peers/figures.json beside
    /// the clone or a directory above it).
    #[arg(long, value_name = "FILE", requires = "svg")]
    pub peers: Option<PathBuf>,
    /// The machine.
    #[command(flatten)]
    pub machine: MachineArgs,
}

impl BenchArgs {
    /// The library's bench options.
    pub fn options(&self) -> BenchOptions {
        BenchOptions {
            patterns: self.patterns.clone(),
            machine: self.machine.options(TEST_TIMEOUT),
            json: self.json.clone(),
            check: self.check,
            update_baseline: self.update_baseline,
            baseline: self.baseline.clone(),
            runs: self.runs.map(usize::from),
            jobs: self.jobs.map(usize::from),
            svg: self.svg.clone(),
            peers: self.peers.clone(),
        }
    }
}

fn backend_parser() -> impl TypedValueParser<Value = BackendChoice> {
    PossibleValuesParser::new(BackendChoice::NAMES).map(|s| {
        s.parse::<BackendChoice>()
            .expect("the possible values are the names BackendChoice parses")
    })
}

fn category_parser() -> impl TypedValueParser<Value = TestCategory> {
    let names: Vec<&'static str> = TestCategory::ALL.iter().map(|c| c.name()).collect();
    PossibleValuesParser::new(names)
        .map(|s| TestCategory::from_name(&s).expect("the possible values are the category names"))
}

/// Parse a memory size in MiB: `128`, `128M`, `128MiB`, `1G`, `1GiB`.
pub fn parse_size_mib(s: &str) -> Result<u32, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("gib").or(lower.strip_suffix('g')) {
        (n, 1024)
    } else if let Some(n) = lower.strip_suffix("mib").or(lower.strip_suffix('m')) {
        (n, 1)
    } else {
        (lower.as_str(), 1)
    };
    num.trim()
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("bad memory size {s:?} (e.g. 128, 256M, 1G)"))
}

/// Parse a timeout in seconds: a number more than 0 and at most [`MAX_TIMEOUT_SECS`].
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= MAX_TIMEOUT_SECS) {
        return Err(format!(
            "{s} seconds is out of range (more than 0, at most {MAX_TIMEOUT_SECS})"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse the arguments after the program name.
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(std::iter::once("keel".into()).chain(args.into_iter().map(Into::into)))
}

/// The help page of the whole tool (what `cargo keel` alone prints).
pub fn help() -> String {
    Cli::command().render_help().to_string()
}

/// Write the completion script for `shell` (for the command `keel`).
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "keel", out);
}

/// A clap error as one line: its message, then the possible values or a tip when
/// clap has them, then where the help is. Help and version requests are not
/// errors; they are printed as they are.
pub fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // The command the error is about, from clap's usage line
    // (`Usage: cargo keel run [OPTIONS]` -> `cargo keel run`).
    let command = lines
        .iter()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(|u| {
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "cargo keel".into());
    let see = format!("see `{command} --help`");
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // clap rendered the help page; say in one line what is missing.
        let subs: Vec<&str> = lines
            .iter()
            .skip_while(|l| **l != "Commands:")
            .skip(1)
            .take_while(|l| !l.ends_with(':'))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| *w != "help")
            .collect();
        return format!("`{command}` needs a command ({}); {see}", subs.join(", "));
    }
    let mut parts = vec![lines
        .first()
        .copied()
        .unwrap_or("bad arguments")
        .trim_start_matches("error: ")
        .to_string()];
    for l in &lines[1.min(lines.len())..] {
        if l.starts_with("[possible values:") {
            parts.push(l.trim_matches(['[', ']']).to_string());
        } else if let Some(tip) = l.strip_prefix("tip: ") {
            parts.push(tip.to_string());
        }
    }
    parts.push(see);
    parts.join("; ")
}

/// Is this clap "error" a request for help or the version (exit 0)?
pub fn is_help_request(e: &clap::Error) -> bool {
    matches!(
        e.kind(),
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn ok(s: &str) -> Command {
        parse(args(s))
            .unwrap_or_else(|e| panic!("{s}: {}", one_line(&e)))
            .command
    }

    fn err(s: &str) -> String {
        match parse(args(s)) {
            Ok(c) => panic!("{s} parsed: {c:?}"),
            Err(e) => {
                assert!(!is_help_request(&e), "{s}");
                one_line(&e)
            }
        }
    }

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mib("128"), Ok(128));
        assert_eq!(parse_size_mib("256M"), Ok(256));
        assert_eq!(parse_size_mib("64MiB"), Ok(64));
        assert_eq!(parse_size_mib("1G"), Ok(1024));
        assert!(parse_size_mib("0").is_err());
        assert!(parse_size_mib("lots").is_err());
        assert!(parse_size_mib("9999999G").is_err());
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout("0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_timeout("86400"), Ok(Duration::from_secs(86_400)));
        for bad in ["0", "-1", "1e20", "inf", "NaN", "86400.5", "soon"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn run_command() {
        let Command::Run(r) = ok(
            "run --guest demo --backend=tcg --cpu-model qemu64 --mem 256M --timeout 5 --cmdline a=1 --cmdline 'b=2' --guest-mem 16",
        ) else {
            panic!("not parsed as run")
        };
        let machine = r.machine.options(RUN_TIMEOUT);
        assert_eq!(r.guest, ["demo"]);
        assert_eq!(machine.backend, BackendChoice::Fixed(Backend::Tcg));
        assert_eq!(machine.cpu_model.as_deref(), Some("qemu64"));
        assert_eq!(machine.mem_mib, Some(256));
        assert_eq!(machine.timeout, Duration::from_secs(5));
        assert_eq!(machine.guest_args, ["a=1", "'b=2'"]);
        assert_eq!(machine.hv_cmdline(), ["console=com1", "guest_mem=16"]);
        let Command::Run(r) = ok("run") else { panic!() };
        assert_eq!(r.guest, [DEFAULT_GUEST]);
        let Command::Run(r) = ok("run --guest a --guest b --guest=c") else {
            panic!()
        };
        assert_eq!(r.guest, ["a", "b", "c"]);
        assert_eq!(r.machine.options(RUN_TIMEOUT).timeout, RUN_TIMEOUT);
        assert_eq!(r.machine.backend, BackendChoice::Auto);
        // Several words in one value are split, as the shell would not.
        let Command::Run(r) = parse(["run", "--hv-cmdline", "a=1 b=2"]).unwrap().command else {
            panic!()
        };
        assert_eq!(r.machine.options(RUN_TIMEOUT).hv_args, ["a=1", "b=2"]);
    }

    #[test]
    fn test_command() {
        let Command::Test(t) = ok(
            "test mmu_* version --category security --jobs 3 --junit out.xml --seed 42 --backend bochs",
        ) else {
            panic!("not parsed as test")
        };
        let t = t.options();
        assert_eq!(t.patterns, ["mmu_*", "version"]);
        assert_eq!(t.category, Some(TestCategory::Security));
        assert_eq!(t.jobs, Some(3));
        assert_eq!(t.junit, Some(PathBuf::from("out.xml")));
        assert_eq!(t.seed, Some(42));
        assert_eq!(t.machine.backend, BackendChoice::Fixed(Backend::Bochs));
        assert_eq!(t.machine.timeout, TEST_TIMEOUT);
        assert!(!t.list);
        let Command::Test(t) = ok("test --list -j 1") else {
            panic!()
        };
        assert!(t.list);
        assert_eq!(t.jobs, Some(1));
    }

    #[test]
    fn bench_command() {
        let Command::Bench(b) = ok(
            "bench bench_hyper* floor --json out.json --check --backend bochs --cpu-model tigerlake --runs 3 -j 2",
        ) else {
            panic!("not parsed as bench")
        };
        let b = b.options();
        assert_eq!(b.patterns, ["bench_hyper*", "floor"]);
        assert_eq!(b.json, Some(PathBuf::from("out.json")));
        assert!(b.check && !b.update_baseline);
        assert_eq!(b.machine.backend, BackendChoice::Fixed(Backend::Bochs));
        assert_eq!(b.machine.cpu_model.as_deref(), Some("tigerlake"));
        assert_eq!((b.runs, b.jobs), (Some(3), Some(2)));
        let Command::Bench(b) = ok("bench --update-baseline --baseline=b.json") else {
            panic!()
        };
        assert!(b.update_baseline);
        assert_eq!(b.baseline, Some(PathBuf::from("b.json")));
        assert_eq!(b.runs, None);
        let Command::Bench(b) = ok("bench --svg c.svg --peers p.json") else {
            panic!()
        };
        let b = b.options();
        assert_eq!(b.svg, Some(PathBuf::from("c.svg")));
        assert_eq!(b.peers, Some(PathBuf::from("p.json")));
        err("bench --peers p.json");
        assert!(err("bench --check --update-baseline").contains("cannot be used with"));
        err("bench --runs 0");
        err("bench --json");
        err("bench --frob");
    }

    #[test]
    fn values_are_checked_with_one_line_messages() {
        let e = err("run --backend vmware");
        assert!(
            e.contains("possible values: auto, kvm, bochs, tcg, nested"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = err("test --category nope");
        assert!(e.contains("security"), "{e}");
        assert!(err("run --timeout 1e20").contains("out of range"));
        err("run --timeout 0");
        err("run --timeout -3");
        err("run --mem 0");
        err("run --guest-mem 0");
        err("test --jobs 0");
        err("test --jobs many");
        err("run --guest");
        err("run --jobs 2");
        err("run extra");
        err("frobnicate");
        assert_eq!(
            err("abi"),
            "`cargo keel abi` needs a command (dump, check); see `cargo keel abi --help`"
        );
        assert!(err("run --frob").ends_with("see `cargo keel run --help`"));
        err("abi frob");
        err("completions tcsh");
        assert!(matches!(ok("abi check"), Command::Abi(AbiCommand::Check)));
        assert!(matches!(
            ok("completions zsh"),
            Command::Completions {
                shell: clap_complete::Shell::Zsh
            }
        ));
    }

    #[test]
    fn every_command_has_help_with_examples() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut pages = vec![(String::new(), cmd.clone())];
        while let Some((path, c)) = pages.pop() {
            for sub in c.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                let path = format!("{path} {}", sub.get_name());
                let help = sub.clone().render_long_help().to_string();
                assert!(help.contains("Example"), "`{path} --help` has no example");
                pages.push((path, sub.clone()));
            }
        }
        let help = help();
        assert!(help.contains("Examples:"), "{help}");
        for c in ["run", "test", "bench", "abi", "completions"] {
            assert!(help.contains(c), "{help}");
        }
    }
}
