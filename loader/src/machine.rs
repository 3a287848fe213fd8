//! One boot of one machine: the hypervisor plus one guest, on one backend, in its
//! own run directory, with the console tailed live and a hard timeout.
//!
//! Everything a run writes (ISO, bochsrc, serial file, emulator log) lives in a
//! fresh directory under the system temp dir, so any number of runs can go on at
//! once (the test runner's `--jobs`, parallel `cargo test` threads, other people's
//! runs on the same machine). The directory is removed afterwards unless asked to
//! keep it (`KEEL_KEEP_RUNS=1`), and its path is in the outcome for diagnostics.

use crate::backend::Backend;
use crate::bochs::{self, BochsConfig};
use crate::console;
use crate::error::{Context, Result};
use crate::qemu::escape_commas;
use crate::qemu::{self, QemuConfig};
use keel_abi::platform::ExitStatus;
use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The machine to boot on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The backend.
    pub backend: Backend,
    /// CPU model (Bochs model name, or QEMU `-cpu`).
    pub cpu_model: String,
    /// Machine memory in MiB.
    pub mem_mib: u32,
    /// Bochs instructions per emulated second.
    pub ips: u64,
    /// CPUs (Bochs `cpu: count=N`, QEMU `-smp N`).
    pub cpus: u32,
    /// Wall-clock limit of the run.
    pub timeout: Duration,
}

/// Bochs's `ips` when none is asked for. A lower rate shortens the BIOS's and
/// GRUB's waits (they count emulated time); 1,000,000 is Bochs's minimum.
pub const DEFAULT_IPS: u64 = 2_000_000;

/// Machine memory when none is asked for (MiB).
pub const DEFAULT_MEM_MIB: u32 = 128;

impl Machine {
    /// A machine of `backend` with its default CPU model, memory and the given timeout.
    pub fn new(backend: Backend, timeout: Duration) -> Self {
        Self {
            backend,
            cpu_model: backend.default_cpu_model().to_string(),
            mem_mib: DEFAULT_MEM_MIB,
            ips: DEFAULT_IPS,
            cpus: 1,
            timeout,
        }
    }
}

/// What to boot.
#[derive(Clone, Debug)]
pub struct Boot<'a> {
    /// The hypervisor image.
    pub hypervisor: &'a Path,
    /// The guest image.
    pub guest: &'a Path,
    /// The guest's name: its module's file name and the first word of its command line.
    pub guest_name: &'a str,
    /// The guest's arguments (after its name), e.g. `seed=42`.
    pub guest_args: &'a [String],
    /// The hypervisor's command line words (e.g. `console=com1`, `guest_mem=8`).
    pub hv_cmdline: &'a [String],
    /// More guests booted beside the first, each a domain of its own (ids 2,
    /// 3, ... in this order; the first guest is domain 1).
    pub companions: &'a [Companion],
}

/// A guest booted beside the first one (`cargo keel run --guest a --guest b`,
/// or a test's companion domains).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Companion {
    /// The guest image.
    pub path: std::path::PathBuf,
    /// Its name (its module's file name and the first word of its command line).
    pub name: String,
    /// The rest of its command line (guest words and the hypervisor's `keel.` words).
    pub args: Vec<String>,
}

/// How the emulator process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmulatorEnd {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it (not one of ours).
    Signalled,
    /// It printed the power-off line but did not exit; we stopped it.
    StoppedAfterPowerOff,
    /// The timeout passed; we stopped it.
    TimedOut,
}

impl fmt::Display for EmulatorEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(c) => write!(f, "exited with code {c}"),
            Self::Signalled => f.write_str("was killed by a signal"),
            Self::StoppedAfterPowerOff => {
                f.write_str("did not exit after the power-off line and was stopped")
            }
            Self::TimedOut => f.write_str("was stopped at the timeout"),
        }
    }
}

/// The result of one boot.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The backend that ran.
    pub backend: Backend,
    /// Everything the machine wrote to COM1 (lossily decoded).
    pub console: String,
    /// The hypervisor's status, from its power-off line (None: no such line).
    pub status: Option<ExitStatus>,
    /// How the emulator ended.
    pub emulator: EmulatorEnd,
    /// The emulator's own output (stdout/stderr), for diagnostics.
    pub emulator_output: String,
    /// Wall time from starting the emulator to its end.
    pub wall: Duration,
    /// The run directory, if it was kept.
    pub kept_dir: Option<PathBuf>,
}

/// The exit code the emulator should have when the hypervisor powers off with `s`.
pub fn expected_emulator_code(backend: Backend, s: ExitStatus) -> i32 {
    match backend {
        // The shutdown port for every status (Bochs can only say 0 or 1; the
        // console line carries the status). Exit code 0 would mean the debugger
        // stopped (a magic breakpoint, which is off because a guest can execute
        // it): never a clean power-off.
        Backend::Bochs => {
            let _ = s;
            1
        }
        // isa-debug-exit: (value << 1) | 1.
        // Nested: QEMU's exit status, as /init saw it.
        Backend::Kvm | Backend::Tcg | Backend::Nested | Backend::Native => {
            (i32::from(s as u8) << 1) | 1
        }
    }
}

impl Outcome {
    /// Did the machine power off cleanly, with the emulator's exit code agreeing
    /// with the hypervisor's power-off line? `Err` says how they disagree.
    pub fn cross_check(&self) -> Result<ExitStatus, String> {
        let Some(s) = self.status else {
            return Err(format!(
                "no power-off line on the console; the emulator {}",
                self.emulator
            ));
        };
        match self.emulator {
            EmulatorEnd::Exited(c) if c == expected_emulator_code(self.backend, s) => Ok(s),
            EmulatorEnd::Exited(c) => Err(format!(
                "the hypervisor powered off with status {} ({}) but {} exited with code {c} (expected {})",
                s as u8,
                s.describe(),
                self.backend,
                expected_emulator_code(self.backend, s)
            )),
            other => Err(format!(
                "the hypervisor powered off with status {} ({}) but the emulator {other}",
                s as u8,
                s.describe()
            )),
        }
    }

    /// The process exit code `cargo keel run` reports for this outcome: the
    /// hypervisor's status (0..=9) when it powered off, [`EXIT_TIMEOUT`] for a
    /// timeout, [`EXIT_NO_POWER_OFF`] when the machine ended without the line.
    pub fn exit_code(&self) -> i32 {
        match (self.status, self.emulator) {
            (Some(s), _) => i32::from(s as u8),
            (None, EmulatorEnd::TimedOut) => EXIT_TIMEOUT,
            (None, _) => EXIT_NO_POWER_OFF,
        }
    }
}

/// `cargo keel run`'s exit code when the run hit its timeout (as timeout(1)).
pub const EXIT_TIMEOUT: i32 = 124;
/// `cargo keel run`'s exit code when the machine stopped without a power-off line.
pub const EXIT_NO_POWER_OFF: i32 = 125;

/// How long an emulator may take to exit once the hypervisor printed its
/// power-off line (normally milliseconds; more means power-off did not work).
const POWER_OFF_GRACE: Duration = Duration::from_secs(5);
/// How often the serial file is polled.
const POLL: Duration = Duration::from_millis(20);

/// A run's private directory, removed on drop unless kept.
pub(crate) struct RunDir {
    pub(crate) path: PathBuf,
    pub(crate) keep: bool,
}

impl RunDir {
    pub(crate) fn new(tag: &str) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("keel-{tag}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let keep = std::env::var_os("KEEL_KEEP_RUNS").is_some_and(|v| v == "1");
                    return Ok(Self { path, keep });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Hard-link `from` to `to` (cheap; the images can be megabytes with debug info),
/// falling back to a copy across file systems.
/// Write `image` without its debug sections to `out` (`strip --strip-debug`:
/// the segments, notes and symbols are untouched).
pub(crate) fn strip_debug(image: &Path, out: &Path) -> Result<()> {
    let run = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(out)
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .context("running strip")?;
    if !run.status.success() {
        let _ = std::fs::remove_file(out);
        crate::bail!(
            "strip --strip-debug {} failed ({}):\n{}",
            image.display(),
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
    }
    Ok(())
}

/// [`place`] an image for the Bochs CD without its debug sections: most of
/// an image's file is debug information, which GRUB would read through the
/// emulated BIOS at every boot (about a quarter of a short test's emulated
/// instructions: `hello` 93.7 million to 68.5 million). The file in
/// `target/` keeps them, for the debugger and `addr2line`. Without `strip`
/// the image goes as it is (slower, the same run).
fn place_stripped(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        return Ok(());
    }
    if strip_debug(from, to).is_ok() {
        return Ok(());
    }
    place(from, to)
}

fn place(from: &Path, to: &Path) -> Result<()> {
    // Placed already (the same guest booted twice): copying onto a hard link
    // of the source would truncate the source.
    if to.exists() {
        return Ok(());
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// A guest name must be a plain file name (it names the module file).
pub(crate) fn check_guest_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        crate::bail!("bad guest name {name:?} (letters, digits, - and _ only)");
    }
    Ok(())
}

/// Boot `boot` on `machine`. Console bytes are copied to `echo` as they arrive (the
/// live console; pass `std::io::sink()` to stay quiet). Errors are the tool's own
/// (a missing file, an emulator that would not start); whatever the machine does,
/// it is an [`Outcome`].
pub fn run(machine: &Machine, boot: &Boot<'_>, echo: &mut dyn Write) -> Result<Outcome> {
    check_guest_name(boot.guest_name)?;
    // The same guest may be booted several times (one file, several modules).
    for c in boot.companions {
        check_guest_name(&c.name)?;
    }
    if machine.backend == Backend::Nested {
        return run_nested(machine, boot, echo);
    }
    let dir = RunDir::new(boot.guest_name)?;
    let serial = "serial.txt";
    let mut cmd = match machine.backend {
        Backend::Bochs => {
            let tree = dir.path.join("iso");
            std::fs::create_dir_all(tree.join("boot/grub"))?;
            place_stripped(boot.hypervisor, &tree.join("boot/keel-hypervisor"))?;
            place_stripped(boot.guest, &tree.join("boot").join(boot.guest_name))?;
            let mut guest_cmdline = vec![boot.guest_name.to_string()];
            guest_cmdline.extend_from_slice(boot.guest_args);
            let mut modules = vec![(boot.guest_name.to_string(), guest_cmdline)];
            for c in boot.companions {
                place_stripped(&c.path, &tree.join("boot").join(&c.name))?;
                let mut line = vec![c.name.clone()];
                line.extend_from_slice(&c.args);
                modules.push((c.name.clone(), line));
            }
            std::fs::write(
                tree.join("boot/grub/grub.cfg"),
                bochs::grub_cfg_modules(boot.hv_cmdline, &modules)?,
            )?;
            bochs::make_iso(&tree, &dir.path.join("keel.iso"))?;
            let rc = bochs::bochsrc(&BochsConfig {
                cpu_model: machine.cpu_model.clone(),
                megs: machine.mem_mib,
                ips: machine.ips,
                cpus: machine.cpus,
                iso: "keel.iso".into(),
                serial: serial.into(),
                log: "bochs.log".into(),
            });
            std::fs::write(dir.path.join("bochsrc"), rc)?;
            std::fs::write(dir.path.join("rc"), bochs::RC_SCRIPT)?;
            let mut c = Command::new("bochs-bin");
            // -q: no configuration menu (with stdin at EOF the menu exits 0 having
            // run nothing: a false pass).
            c.args(["-q", "-f", "bochsrc", "-rc", "rc"]);
            c
        }
        Backend::Nested => unreachable!("handled above"),
        Backend::Kvm | Backend::Tcg => {
            place(boot.guest, &dir.path.join(boot.guest_name))?;
            let mut module = escape_commas(boot.guest_name);
            for a in boot.guest_args {
                module.push(' ');
                module.push_str(&escape_commas(a));
            }
            // QEMU separates modules with commas (a comma in one is doubled).
            for c in boot.companions {
                place(&c.path, &dir.path.join(&c.name))?;
                module.push(',');
                module.push_str(&escape_commas(&c.name));
                for a in &c.args {
                    module.push(' ');
                    module.push_str(&escape_commas(a));
                }
            }
            let args = qemu::qemu_args(&QemuConfig {
                backend: machine.backend,
                cpu_model: machine.cpu_model.clone(),
                mem_mib: machine.mem_mib,
                cpus: machine.cpus,
                kernel: boot.hypervisor.display().to_string(),
                append: boot.hv_cmdline.join(" "),
                module,
                serial: serial.into(),
            });
            let mut c = Command::new("qemu-system-x86_64");
            c.args(args);
            c
        }
        Backend::Native => {
            // No hypervisor: the guest is the kernel, and its own start of day
            // prints the power-off line a hypervisor would.
            place(boot.guest, &dir.path.join(boot.guest_name))?;
            let args = qemu::native_args(&qemu::NativeConfig {
                cpu_model: machine.cpu_model.clone(),
                mem_mib: machine.mem_mib,
                kernel: boot.guest_name.to_string(),
                append: boot.guest_args.join(" "),
                serial: serial.into(),
            });
            let mut c = Command::new("qemu-system-x86_64");
            c.args(args);
            c
        }
    };
    let out_path = dir.path.join("emulator.out");
    let mut attempt = 1;
    let (console, emulator, emulator_output, wall) = loop {
        let out = std::fs::File::create(&out_path)?;
        cmd.current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // A leftover serial file from a failed start would read as this run's console.
        let _ = std::fs::remove_file(dir.path.join(serial));
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting the {} emulator", machine.backend))?;
        let (console, emulator) = watch(child, &dir.path.join(serial), machine.timeout, echo)?;
        let wall = started.elapsed();
        let emulator_output = std::fs::read(&out_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if attempt < START_ATTEMPTS
            && failed_to_start_for_host_reasons(machine.backend, &console, &emulator_output)
        {
            eprintln!(
                "[keel] {} could not start (no free display port); starting it again (attempt {} of {START_ATTEMPTS})",
                machine.backend,
                attempt + 1
            );
            attempt += 1;
            std::thread::sleep(Duration::from_millis(200 * attempt as u64));
            continue;
        }
        break (console, emulator, emulator_output, wall);
    };
    let status = console::power_off_status(&console);
    Ok(Outcome {
        backend: machine.backend,
        console,
        status,
        emulator,
        emulator_output,
        wall,
        kept_dir: dir.keep.then(|| dir.path.clone()),
    })
}

/// One guest in its own nested boot (`cargo keel run --backend nested`).
fn run_nested(machine: &Machine, boot: &Boot<'_>, echo: &mut dyn Write) -> Result<Outcome> {
    let ws = crate::cargo::Workspace::locate()?;
    let guests = [crate::nested::GuestRun {
        name: boot.guest_name.to_string(),
        image: boot.guest.to_path_buf(),
        args: boot.guest_args.to_vec(),
        trace_l0: false,
        companions: boot.companions.to_vec(),
        cpus: machine.cpus,
    }];
    let plan = crate::nested::Plan {
        hypervisor: boot.hypervisor,
        hv_cmdline: boot.hv_cmdline,
        qemu_cpu: &machine.cpu_model,
        qemu_mem_mib: machine.mem_mib,
        guests: &guests,
        per_guest_timeout: machine.timeout,
    };
    let mut log = std::io::stderr();
    let batch = crate::nested::run(ws.root(), &plan, echo, &mut log, &mut |_, _| {})?;
    match batch.outcomes.into_iter().next() {
        Some((_, Ok(o))) => Ok(o),
        Some((_, Err(why))) => Err(anyhow::Error::msg(why)),
        None => crate::bail!("the nested run reported nothing"),
    }
}

/// How many times a run is started before a host-side start failure is reported.
const START_ATTEMPTS: u32 = 3;

/// Whether the emulator died before the machine did anything, for a reason of the
/// host's rather than of the machine's. Bochs's RFB display (the only display
/// library Debian's build offers that needs no terminal or X server) looks for a
/// free TCP port from 5900 to 5949; under parallel runs it has been seen to give
/// up at start-up with all of them apparently taken. Nothing of the hypervisor has
/// run then (the console is empty), so starting the machine again is safe and
/// hides nothing: any other early death is reported as it is.
fn failed_to_start_for_host_reasons(
    backend: Backend,
    console: &str,
    emulator_output: &str,
) -> bool {
    backend == Backend::Bochs
        && console.is_empty()
        && emulator_output.contains("RFB could not bind any port")
}

/// Kills the emulator if we leave early (an error, a panic in a test thread):
/// no run outlives its caller.
pub(crate) struct Reaper(pub(crate) Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Tail the serial file while the emulator runs; stop it at the timeout, or a
/// little after the power-off line if it does not exit by itself.
fn watch(
    child: Child,
    serial: &Path,
    timeout: Duration,
    echo: &mut dyn Write,
) -> Result<(String, EmulatorEnd)> {
    let mut child = Reaper(child);
    let started = Instant::now();
    let mut bytes: Vec<u8> = Vec::new();
    let mut file: Option<std::fs::File> = None;
    let mut scanned = 0usize; // bytes[..scanned] hold complete lines already searched
    let mut powered_off_at: Option<Instant> = None;
    loop {
        // Exit status first, then the file: output written just before exit is
        // read below, never lost.
        let exited = child.0.try_wait().context("waiting for the emulator")?;
        if file.is_none() {
            file = std::fs::File::open(serial).ok();
        }
        if let Some(f) = file.as_mut() {
            let before = bytes.len();
            f.seek(SeekFrom::Start(before as u64))?;
            f.read_to_end(&mut bytes)?;
            if bytes.len() > before {
                let fresh: Vec<u8> = bytes[before..]
                    .iter()
                    .copied()
                    .filter(|&b| b != b'\r')
                    .collect();
                let _ = echo.write_all(&fresh);
                let _ = echo.flush();
            }
        }
        if powered_off_at.is_none() {
            if let Some(end) = bytes.iter().rposition(|&b| b == b'\n') {
                let text = String::from_utf8_lossy(&bytes[scanned..end]);
                if console::power_off_status(&text).is_some() {
                    powered_off_at = Some(Instant::now());
                }
                scanned = end;
            }
        }
        let text = || String::from_utf8_lossy(&bytes).into_owned();
        if let Some(st) = exited {
            let end = match st.code() {
                Some(c) => EmulatorEnd::Exited(c),
                None => EmulatorEnd::Signalled,
            };
            return Ok((text(), end));
        }
        if powered_off_at.is_some_and(|t| t.elapsed() > POWER_OFF_GRACE) {
            return Ok((text(), EmulatorEnd::StoppedAfterPowerOff));
        }
        if started.elapsed() > timeout {
            return Ok((text(), EmulatorEnd::TimedOut));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bochs_display_port_failure_before_any_output_is_retried() {
        let rfb = "Bochs is exiting with the following message:\n[RFB   ] RFB could not bind any port between 5900 and 5949\n";
        assert!(failed_to_start_for_host_reasons(Backend::Bochs, "", rfb));
        // Once the machine has printed anything, the run is what it is.
        assert!(!failed_to_start_for_host_reasons(
            Backend::Bochs,
            "keel: Keel hypervisor",
            rfb
        ));
        // Other deaths are reported, never retried.
        assert!(!failed_to_start_for_host_reasons(
            Backend::Bochs,
            "",
            "panic: something else"
        ));
        assert!(!failed_to_start_for_host_reasons(Backend::Tcg, "", rfb));
    }

    fn outcome(backend: Backend, status: Option<ExitStatus>, emulator: EmulatorEnd) -> Outcome {
        Outcome {
            backend,
            console: String::new(),
            status,
            emulator,
            emulator_output: String::new(),
            wall: Duration::ZERO,
            kept_dir: None,
        }
    }

    #[test]
    fn emulator_codes() {
        assert_eq!(
            expected_emulator_code(Backend::Bochs, ExitStatus::Success),
            1
        );
        assert_eq!(expected_emulator_code(Backend::Bochs, ExitStatus::NoVmx), 1);
        assert_eq!(expected_emulator_code(Backend::Tcg, ExitStatus::Success), 1);
        assert_eq!(expected_emulator_code(Backend::Tcg, ExitStatus::NoVmx), 9);
        assert_eq!(
            expected_emulator_code(Backend::Kvm, ExitStatus::OutOfMemory),
            19
        );
    }

    #[test]
    fn cross_check_and_exit_code() {
        let ok = outcome(
            Backend::Tcg,
            Some(ExitStatus::NoVmx),
            EmulatorEnd::Exited(9),
        );
        assert_eq!(ok.cross_check(), Ok(ExitStatus::NoVmx));
        assert_eq!(ok.exit_code(), 4);
        let wrong = outcome(
            Backend::Bochs,
            Some(ExitStatus::Success),
            EmulatorEnd::Exited(0),
        );
        assert!(wrong.cross_check().unwrap_err().contains("expected 1"));
        assert_eq!(wrong.exit_code(), 0);
        let hang = outcome(Backend::Bochs, None, EmulatorEnd::TimedOut);
        assert!(hang.cross_check().is_err());
        assert_eq!(hang.exit_code(), EXIT_TIMEOUT);
        let died = outcome(Backend::Bochs, None, EmulatorEnd::Exited(1));
        assert_eq!(died.exit_code(), EXIT_NO_POWER_OFF);
        let stuck = outcome(
            Backend::Bochs,
            Some(ExitStatus::HypervisorPanic),
            EmulatorEnd::StoppedAfterPowerOff,
        );
        assert!(stuck.cross_check().unwrap_err().contains("did not exit"));
    }

    #[test]
    fn guest_names() {
        assert!(check_guest_name("hello").is_ok());
        assert!(check_guest_name("mmu-pin_l1").is_ok());
        assert!(check_guest_name("../x").is_err());
        assert!(check_guest_name("").is_err());
    }
}
