//! The tool's machinery, tested on tiny stand-in kernels ([`keel_loader::fixture`])
//! so these tests say whether `keel` works, independently of the hypervisor:
//! the QEMU and Bochs command lines and boot images, console tailing, the
//! power-off cross-check, the timeout and the runner's CRASH verdict.

use keel_abi::platform::ExitStatus;
use keel_loader::backend::Backend;
use keel_loader::console::Verdict;
use keel_loader::fixture::{self, End};
use keel_loader::host;
use keel_loader::machine::{self, Boot, EmulatorEnd, Machine, Outcome};
use keel_loader::runner;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A stand-in kernel in a scratch file of this test's own, removed on drop.
struct KernelFile(PathBuf);

impl Drop for KernelFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn kernel_file(tag: &str, text: &str, end: End) -> KernelFile {
    let p = std::env::temp_dir().join(format!("keel-fixture-{}-{tag}", std::process::id()));
    std::fs::write(&p, fixture::kernel(text, end)).unwrap();
    KernelFile(p)
}

fn boot(backend: Backend, kernel: &KernelFile, timeout: Duration) -> Outcome {
    let kernel: &Path = &kernel.0;
    host::ensure_tools(backend.tools(), &mut std::io::stderr()).unwrap();
    let m = Machine::new(backend, timeout);
    let args = vec!["seed=7".to_string()];
    let hv = vec!["console=com1".to_string()];
    let b = Boot {
        hypervisor: kernel,
        // Any file will do as the module: the stand-in ignores it.
        guest: kernel,
        guest_name: "stand-in",
        guest_args: &args,
        hv_cmdline: &hv,
        companions: &[],
    };
    let mut echo = Vec::new();
    let o = machine::run(&m, &b, &mut echo).unwrap();
    // What was echoed live is the console, without carriage returns.
    assert_eq!(
        String::from_utf8(echo).unwrap(),
        o.console.replace('\r', "")
    );
    eprintln!(
        "{backend}: {:?} in {:.2}s; console: {:?}",
        o.emulator,
        o.wall.as_secs_f64(),
        o.console
    );
    o
}

const NO_VMX: &str = "keel: no VT-x here\r\nkeel: power off, status 4 (no VT-x)\r\n";
const PASS: &str = "(d1) Test result: SUCCESS\r\nkeel: power off, status 0 (guest powered off)\r\n";

#[test]
fn tcg_power_off_status_and_exit_code_agree() {
    let k = kernel_file("tcg-novmx", NO_VMX, End::PowerOff(4));
    let o = boot(Backend::Tcg, &k, Duration::from_secs(60));
    assert_eq!(o.console, NO_VMX);
    assert_eq!(o.status, Some(ExitStatus::NoVmx));
    assert_eq!(o.emulator, EmulatorEnd::Exited(9));
    assert_eq!(o.cross_check(), Ok(ExitStatus::NoVmx));
    assert_eq!(o.exit_code(), 4);
}

#[test]
fn bochs_success_via_shutdown_port() {
    let k = kernel_file("bochs-pass", PASS, End::PowerOff(0));
    let o = boot(Backend::Bochs, &k, Duration::from_secs(60));
    assert_eq!(o.console, PASS);
    assert_eq!(o.emulator, EmulatorEnd::Exited(1));
    assert_eq!(o.cross_check(), Ok(ExitStatus::Success));
    assert_eq!(runner::judge(&o), (Verdict::Success, String::new()));
}

#[test]
fn bochs_failure_status_via_shutdown_port() {
    let text = "keel: EXCEPTION #GP\r\nkeel: power off, status 3 (hypervisor panic)\r\n";
    let k = kernel_file("bochs-panic", text, End::PowerOff(3));
    let o = boot(Backend::Bochs, &k, Duration::from_secs(60));
    assert_eq!(o.emulator, EmulatorEnd::Exited(1));
    assert_eq!(o.cross_check(), Ok(ExitStatus::HypervisorPanic));
    let (v, why) = runner::judge(&o);
    assert_eq!(v, Verdict::Crash);
    assert!(why.contains("hypervisor panic"), "{why}");
}

#[test]
fn bochs_hang_ends_at_the_timeout_as_a_crash() {
    let k = kernel_file("bochs-hang", "(d1) looping forever\r\n", End::Hang);
    // Long enough for Bochs to reach the kernel's first line on a loaded host
    // (the BIOS and GRUB alone take seconds of wall time there).
    let o = boot(Backend::Bochs, &k, Duration::from_secs(15));
    assert_eq!(o.emulator, EmulatorEnd::TimedOut);
    assert_eq!(o.status, None);
    assert_eq!(o.exit_code(), machine::EXIT_TIMEOUT);
    assert_eq!(o.console, "(d1) looping forever\r\n");
    let (v, why) = runner::judge(&o);
    assert_eq!(v, Verdict::Crash);
    assert!(why.contains("timed out"), "{why}");
    assert!(runner::diagnostics(&o).contains("looping forever"));
}

/// Nothing the machine executes ends a Bochs run but power-off: the magic
/// breakpoint (which a guest can execute in VMX non-root mode) does not stop
/// Bochs, so a verdict printed before it is not followed by an exit the runner
/// could take for the end of the run.
#[test]
fn bochs_magic_breakpoint_does_not_end_the_run() {
    let k = kernel_file(
        "bochs-magic",
        "(d1) Test result: SUCCESS\r\n",
        End::MagicBreak,
    );
    let o = boot(Backend::Bochs, &k, Duration::from_secs(15));
    // It ran up to the breakpoint, and the breakpoint did not stop Bochs.
    assert_eq!(o.console, "(d1) Test result: SUCCESS\r\n");
    assert_eq!(o.emulator, EmulatorEnd::TimedOut);
    assert_eq!(o.status, None);
    assert_eq!(runner::judge(&o).0, Verdict::Crash);
}

#[test]
fn power_off_without_exit_is_stopped_and_reported() {
    // Prints the power-off line, then hangs instead of powering off: the tool
    // stops the emulator shortly after and says the exit did not happen.
    let k = kernel_file("tcg-stuck", NO_VMX, End::Hang);
    let o = boot(Backend::Tcg, &k, Duration::from_secs(60));
    assert_eq!(o.status, Some(ExitStatus::NoVmx));
    assert_eq!(o.emulator, EmulatorEnd::StoppedAfterPowerOff);
    assert!(o.cross_check().unwrap_err().contains("did not exit"));
}
