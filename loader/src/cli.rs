//! The command line of `cargo keel`.
//!
//! Parsed by hand: a few subcommands with `--flag VALUE` options need no argument
//! parsing library, and the usage text below is the one reference.

use crate::backend::BackendChoice;
use crate::{BenchOptions, MachineOptions, TestOptions, DEFAULT_GUEST};
use keel_abi::note::TestCategory;
use std::path::PathBuf;
use std::time::Duration;

/// The usage text.
pub const USAGE: &str = "\
usage: cargo keel <command> [options]

commands:
  run   [--guest NAME] [machine options] [--cmdline ARGS]
        build the hypervisor and guests, boot one guest (default: hello) and
        stream the console; exits with the hypervisor's power-off status
        (124: timeout, 125: the machine stopped without a power-off line)
  test  [NAME|PATTERN ...] [--category C] [--jobs N] [--junit FILE] [--seed N]
        [--list] [machine options]
        boot every test program (or those matching; * and ? are wildcards) in
        a fresh hypervisor; exits 0 only when none failed, else 1 (--list:
        only list them: name, category, title)
  bench [NAME|PATTERN ...] [--json FILE] [--check] [--update-baseline]
        [--baseline FILE] [--runs N] [--jobs N] [machine options]
        boot every benchmark program (category bench; or those whose program,
        figure or program/figure matches) and print its figures: cost per
        operation (Bochs: instructions; KVM: TSC cycles, median of --runs boots,
        default 5), exits and VMCS accesses per operation, ratio to the floor.
        --check compares with bench/baseline.json and exits 1 if any figure got
        worse by more than 2%; --update-baseline records this run there (a
        deliberate commit of its own)
  abi   dump|check
        print the ABI layout in the fixture format / check it against the
        released fixtures

machine options:
  --backend auto|kvm|bochs|tcg|native
                                 auto: KVM with nested VMX if the host has it, else Bochs;
                                 native: the guest alone on QEMU TCG (no hypervisor)
  --cpu-model MODEL              Bochs model (corei7_skylake_x, tigerlake, ...) or QEMU -cpu
  --mem SIZE                     machine memory (128, 256M, 1G; default 128M)
  --guest-mem MIB                guest memory (the hypervisor's guest_mem=)
  --ips N                        Bochs instructions per emulated second
  --timeout SECONDS              per boot (default: run 60, test 120)
  --cmdline ARGS                 extra guest command-line words
  --hv-cmdline ARGS              extra hypervisor command-line words

exit status of the tool itself: 64 bad arguments, 70 the tool failed (a build
error, a missing host tool it could not install).

environment: KEEL_KEEP_RUNS=1 keeps each run's directory (ISO, bochsrc, logs).
";

/// A parsed command.
#[derive(Clone, Debug)]
pub enum Command {
    /// `run`
    Run {
        /// The guest to boot.
        guest: String,
        /// The machine.
        machine: MachineOptions,
    },
    /// `test`
    Test(TestOptions),
    /// `bench`
    Bench(BenchOptions),
    /// `abi dump`
    AbiDump,
    /// `abi check`
    AbiCheck,
    /// `help`
    Help,
}

/// Exit code for bad arguments (sysexits' EX_USAGE): distinct from every
/// power-off status.
pub const EXIT_USAGE: u8 = 64;
/// Exit code when the tool itself failed (sysexits' EX_SOFTWARE).
pub const EXIT_TOOL_FAILED: u8 = 70;

/// Default timeout of `run`.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Default timeout of one test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

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

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

/// Parse the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    match cmd.as_str() {
        "help" | "-h" | "--help" => Ok(Command::Help),
        "abi" => match rest {
            [s] if s == "dump" => Ok(Command::AbiDump),
            [s] if s == "check" => Ok(Command::AbiCheck),
            _ => Err("usage: cargo keel abi dump|check".into()),
        },
        "bench" => parse_bench(rest),
        "run" | "test" => {
            let is_run = cmd == "run";
            let timeout = if is_run { RUN_TIMEOUT } else { TEST_TIMEOUT };
            let mut machine = MachineOptions::new(timeout);
            let mut guest = DEFAULT_GUEST.to_string();
            let mut t = TestOptions {
                patterns: Vec::new(),
                category: None,
                machine: MachineOptions::new(timeout),
                jobs: None,
                junit: None,
                seed: None,
                list: false,
            };
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                let (flag, inline) = split_flag(a);
                let mut value = || flag_value(flag, &inline, &mut it);
                match flag {
                    "--backend" => machine.backend = value()?.parse::<BackendChoice>()?,
                    "--cpu-model" => machine.cpu_model = Some(value()?),
                    "--mem" => machine.mem_mib = Some(parse_size_mib(&value()?)?),
                    "--guest-mem" => machine.guest_mem_mib = Some(num(flag, &value()?)?),
                    "--ips" => machine.ips = Some(num(flag, &value()?)?),
                    "--timeout" => {
                        let secs: f64 = num(flag, &value()?)?;
                        if !(secs > 0.0 && secs.is_finite()) {
                            return Err("--timeout must be positive".into());
                        }
                        machine.timeout = Duration::from_secs_f64(secs);
                    }
                    "--cmdline" => machine
                        .guest_args
                        .extend(value()?.split_whitespace().map(String::from)),
                    "--hv-cmdline" => machine
                        .hv_args
                        .extend(value()?.split_whitespace().map(String::from)),
                    "--guest" if is_run => guest = value()?,
                    "--category" if !is_run => {
                        let c = value()?;
                        t.category = Some(TestCategory::from_name(&c).ok_or_else(|| {
                            let names: Vec<&str> =
                                TestCategory::ALL.iter().map(|c| c.name()).collect();
                            format!("unknown category {c:?} ({})", names.join(", "))
                        })?);
                    }
                    "--jobs" | "-j" if !is_run => {
                        let j: usize = num(flag, &value()?)?;
                        t.jobs = Some(j.max(1));
                    }
                    "--junit" if !is_run => t.junit = Some(PathBuf::from(value()?)),
                    "--seed" if !is_run => t.seed = Some(num(flag, &value()?)?),
                    "--list" if !is_run => t.list = true,
                    f if f.starts_with('-') => {
                        return Err(format!("unknown option {f} for `{cmd}`\n\n{USAGE}"))
                    }
                    _ if !is_run => t.patterns.push(a.clone()),
                    _ => return Err(format!("unexpected argument {a:?}\n\n{USAGE}")),
                }
            }
            if is_run {
                Ok(Command::Run { guest, machine })
            } else {
                t.machine = machine;
                Ok(Command::Test(t))
            }
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    }
}

/// `bench` options: its own flags, then the machine options `run`/`test` share.
fn parse_bench(rest: &[String]) -> Result<Command, String> {
    let mut b = BenchOptions {
        patterns: Vec::new(),
        machine: MachineOptions::new(TEST_TIMEOUT),
        json: None,
        check: false,
        update_baseline: false,
        baseline: None,
        runs: None,
        jobs: None,
    };
    // Machine options are parsed by the `test` parser: hand them over.
    let mut machine_args = vec!["test".to_string()];
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = split_flag(a);
        let mut value = || flag_value(flag, &inline, &mut it);
        match flag {
            "--json" => b.json = Some(PathBuf::from(value()?)),
            "--baseline" => b.baseline = Some(PathBuf::from(value()?)),
            "--check" => b.check = true,
            "--update-baseline" => b.update_baseline = true,
            "--runs" => {
                let n: usize = num(flag, &value()?)?;
                if n == 0 {
                    return Err("--runs must be at least 1".into());
                }
                b.runs = Some(n);
            }
            "--jobs" | "-j" => b.jobs = Some(num::<usize>(flag, &value()?)?.max(1)),
            "--backend" | "--cpu-model" | "--mem" | "--guest-mem" | "--ips" | "--timeout"
            | "--cmdline" | "--hv-cmdline" => {
                machine_args.push(flag.to_string());
                machine_args.push(value()?);
            }
            f if f.starts_with('-') => {
                return Err(format!("unknown option {f} for `bench`\n\n{USAGE}"))
            }
            _ => b.patterns.push(a.clone()),
        }
    }
    if b.check && b.update_baseline {
        return Err(
            "--check and --update-baseline together: check first, then update deliberately".into(),
        );
    }
    match parse(&machine_args)? {
        Command::Test(t) => b.machine = t.machine,
        _ => return Err("internal: machine options did not parse as test".into()),
    }
    Ok(Command::Bench(b))
}

/// `--flag=value` and `--flag value` both work: split the first form.
fn split_flag(a: &str) -> (&str, Option<String>) {
    match a.split_once('=') {
        Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
        _ => (a, None),
    }
}

/// The value of `flag`: the inline one, else the next argument.
fn flag_value<'a>(
    flag: &str,
    inline: &Option<String>,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<String, String> {
    inline
        .clone()
        .or_else(|| rest.next().cloned())
        .ok_or_else(|| format!("{flag} needs a value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
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
    fn run_command() {
        let Ok(Command::Run { guest, machine }) = parse(&args(
            "run --guest demo --backend=tcg --cpu-model qemu64 --mem 256M --timeout 5 --cmdline a=1 --guest-mem 16",
        )) else {
            panic!("not parsed as run")
        };
        assert_eq!(guest, "demo");
        assert_eq!(machine.backend, BackendChoice::Fixed(Backend::Tcg));
        assert_eq!(machine.cpu_model.as_deref(), Some("qemu64"));
        assert_eq!(machine.mem_mib, Some(256));
        assert_eq!(machine.timeout, Duration::from_secs(5));
        assert_eq!(machine.guest_args, ["a=1"]);
        assert_eq!(machine.hv_cmdline(), ["console=com1", "guest_mem=16"]);
        let Ok(Command::Run { guest, machine }) = parse(&args("run")) else {
            panic!()
        };
        assert_eq!(guest, DEFAULT_GUEST);
        assert_eq!(machine.timeout, RUN_TIMEOUT);
    }

    #[test]
    fn test_command() {
        let Ok(Command::Test(t)) = parse(&args(
            "test mmu_* version --category security --jobs 3 --junit out.xml --seed 42 --backend bochs",
        )) else {
            panic!("not parsed as test")
        };
        assert_eq!(t.patterns, ["mmu_*", "version"]);
        assert_eq!(t.category, Some(TestCategory::Security));
        assert_eq!(t.jobs, Some(3));
        assert_eq!(t.junit, Some(PathBuf::from("out.xml")));
        assert_eq!(t.seed, Some(42));
        assert_eq!(t.machine.backend, BackendChoice::Fixed(Backend::Bochs));
        assert_eq!(t.machine.timeout, TEST_TIMEOUT);
        assert!(!t.list);
        let Ok(Command::Test(t)) = parse(&args("test --list")) else {
            panic!()
        };
        assert!(t.list);
    }

    #[test]
    fn bench_command() {
        let Ok(Command::Bench(b)) = parse(&args(
            "bench bench_hyper* floor --json out.json --check --backend bochs --cpu-model tigerlake --runs 3 -j 2",
        )) else {
            panic!("not parsed as bench")
        };
        assert_eq!(b.patterns, ["bench_hyper*", "floor"]);
        assert_eq!(b.json, Some(PathBuf::from("out.json")));
        assert!(b.check && !b.update_baseline);
        assert_eq!(b.machine.backend, BackendChoice::Fixed(Backend::Bochs));
        assert_eq!(b.machine.cpu_model.as_deref(), Some("tigerlake"));
        assert_eq!((b.runs, b.jobs), (Some(3), Some(2)));
        let Ok(Command::Bench(b)) = parse(&args("bench --update-baseline --baseline=b.json"))
        else {
            panic!()
        };
        assert!(b.update_baseline);
        assert_eq!(b.baseline, Some(PathBuf::from("b.json")));
        assert_eq!(b.runs, None);
        assert!(parse(&args("bench --check --update-baseline")).is_err());
        assert!(parse(&args("bench --runs 0")).is_err());
        assert!(parse(&args("bench --json")).is_err());
        assert!(parse(&args("bench --frob")).is_err());
        assert!(parse(&args("bench --backend vmware")).is_err());
    }

    #[test]
    fn errors() {
        assert!(parse(&args("run --guest")).is_err());
        assert!(parse(&args("run --jobs 2")).is_err());
        assert!(parse(&args("run extra")).is_err());
        assert!(parse(&args("test --category nope")).is_err());
        assert!(parse(&args("test --backend vmware")).is_err());
        assert!(parse(&args("test --timeout 0")).is_err());
        assert!(parse(&args("frobnicate")).is_err());
        assert!(parse(&args("abi")).is_err());
        assert!(matches!(parse(&args("abi check")), Ok(Command::AbiCheck)));
        assert!(matches!(parse(&[]), Ok(Command::Help)));
    }
}
