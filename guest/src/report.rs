//! The test framework: verdicts, reasons, and how a test ends.
//!
//! As in XTF, a test reports any number of verdicts while it runs and the most
//! severe one wins:
//!
//! | verdict | meaning |
//! | --- | --- |
//! | SUCCESS | everything checked behaved |
//! | SKIP | the test cannot run here (a real detection: `-ENOSYS`, a feature bit) |
//! | ERROR | the test itself, or its environment, is broken |
//! | FAILURE | the hypervisor did something wrong |
//! | CRASH | the guest died: an unexpected exception or a panic |
//!
//! Every reported verdict is printed when it happens (`Failure: <reason>`), and the
//! first reason given at the winning severity becomes the final reason. When the
//! test's main returns, the last console line is exactly
//! `Test result: <VERDICT>` or `Test result: <VERDICT>: <reason>`, and the guest
//! shuts down (`SHUTDOWN_poweroff`; `SHUTDOWN_crash` for CRASH). The runner reads
//! the line; the shutdown reason is only a cross-check.
//!
//! A test that returns without reporting anything ends as ERROR: success is always
//! something a test says, never a default.

use core::fmt::{self, Write};
use spin::Mutex;

use crate::abi::note::TestCategory;
use crate::abi::report::TEST_RESULT_MARKER;
pub use crate::abi::report::{Verdict, SEQ_MARKER};
use crate::abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};

/// Longest reason kept for the result line (longer ones are cut, marked `...`).
pub const REASON_MAX: usize = 200;

/// A reason: one line of text, at most [`REASON_MAX`] bytes.
#[derive(Clone)]
pub struct Reason {
    buf: [u8; REASON_MAX],
    len: usize,
    truncated: bool,
}

impl Reason {
    /// The empty reason.
    pub const fn new() -> Self {
        Reason {
            buf: [0; REASON_MAX],
            len: 0,
            truncated: false,
        }
    }
    /// Format `args` into a reason: newlines and control characters become spaces
    /// (the result line must stay one line), and the tail is cut when too long.
    pub fn format(args: fmt::Arguments<'_>) -> Self {
        let mut r = Reason::new();
        let _ = r.write_fmt(args);
        r
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever appended (see `write_str`).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<reason not UTF-8>")
    }
    /// Whether the reason is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Reason {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Reason {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let c = if c.is_control() { ' ' } else { c };
            let mut tmp = [0u8; 4];
            let e = c.encode_utf8(&mut tmp).as_bytes();
            // Keep room for the "..." marker.
            if self.len + e.len() > REASON_MAX - 3 {
                if !self.truncated {
                    self.truncated = true;
                    self.buf[self.len..self.len + 3].copy_from_slice(b"...");
                    self.len += 3;
                }
                return Ok(());
            }
            self.buf[self.len..self.len + e.len()].copy_from_slice(e);
            self.len += e.len();
        }
        Ok(())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict so far: the most severe one reported, and its first reason.
#[derive(Clone, Default)]
pub struct Outcome {
    verdict: Option<Verdict>,
    reason: Reason,
}

impl Outcome {
    /// Nothing reported yet.
    pub const fn new() -> Self {
        Outcome {
            verdict: None,
            reason: Reason::new(),
        }
    }

    /// Record `v`: it replaces the current verdict only when strictly more severe,
    /// so the first reason at the winning severity is the one kept.
    pub fn record(&mut self, v: Verdict, reason: Reason) {
        if self.verdict.is_none_or(|cur| v > cur) {
            self.verdict = Some(v);
            self.reason = reason;
        }
    }

    /// The verdict so far (`None` before anything was reported).
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }

    /// The final verdict and reason: nothing reported is an ERROR.
    pub fn final_verdict(&self) -> (Verdict, Reason) {
        match self.verdict {
            Some(v) => (v, self.reason.clone()),
            None => (
                Verdict::Error,
                Reason::format(format_args!(
                    "the test returned without reporting a verdict"
                )),
            ),
        }
    }
}

/// Format the result line (without its newline).
pub fn result_line(v: Verdict, reason: &Reason, out: &mut impl Write) -> fmt::Result {
    if reason.is_empty() {
        write!(out, "{TEST_RESULT_MARKER}{}", v.name())
    } else {
        write!(out, "{TEST_RESULT_MARKER}{}: {}", v.name(), reason)
    }
}

static OUTCOME: Mutex<Outcome> = Mutex::new(Outcome::new());

/// Report a verdict with a reason; prints `<Label>: <reason>` and records it.
pub fn report(v: Verdict, args: fmt::Arguments<'_>) {
    let reason = Reason::format(args);
    crate::console::start_line();
    crate::println!("{}: {}", v.label(), reason);
    OUTCOME.lock().record(v, reason);
}

/// Report SUCCESS: everything this test checked behaved. Any more severe verdict
/// reported before or after still wins.
pub fn success() {
    OUTCOME.lock().record(Verdict::Success, Reason::new());
}

/// The verdict so far (for tests that decide what to do next based on it).
pub fn current() -> Option<Verdict> {
    OUTCOME.lock().verdict()
}

/// Report FAILURE: the hypervisor did something wrong. Continues the test.
#[macro_export]
macro_rules! failure {
    ($($arg:tt)*) => { $crate::report::report($crate::report::Verdict::Failure, format_args!($($arg)*)) };
}

/// Report ERROR: the test or its environment is broken. Continues the test.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::report::report($crate::report::Verdict::Error, format_args!($($arg)*)) };
}

/// Report SKIP: the test cannot run here. Continues the test (usually followed by `return`).
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => { $crate::report::report($crate::report::Verdict::Skip, format_args!($($arg)*)) };
}

/// `check!(cond, "what went wrong {}", x)`: report FAILURE when `cond` is false.
/// Evaluates to `cond`.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {{
        let ok: bool = $cond;
        if !ok {
            $crate::failure!($($arg)*);
        }
        ok
    }};
}

/// `check_eq!(got, want, "what")`: report FAILURE `what: got X, want Y` on mismatch.
/// Evaluates to whether they were equal.
#[macro_export]
macro_rules! check_eq {
    ($got:expr, $want:expr, $($arg:tt)*) => {{
        let got = $got;
        let want = $want;
        let ok = got == want;
        if !ok {
            $crate::failure!("{}: got {:?}, want {:?}", format_args!($($arg)*), got, want);
        }
        ok
    }};
}

/// What [`crate::test!`] knows about the running test.
#[derive(Clone, Copy, Debug)]
pub struct TestInfo {
    /// The program's name (its file name in `src/bin/`).
    pub name: &'static str,
    /// The title from the test declaration.
    pub title: &'static str,
    /// The category from the test declaration.
    pub category: TestCategory,
    /// What the test needs beneath it.
    pub needs: Needs,
}

/// What a test needs beneath it (the `needs:` of [`crate::test!`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Keel's interface (hypercalls, shared_info, Keel's policies): on bare
    /// hardware the test reports SKIP without running (`VMCALL` is `#UD` there).
    Keel,
    /// Nothing: the test reaches the machine through the operations table and runs
    /// on Keel and on bare hardware alike.
    Nothing,
}

/// Why a test does not run on `platform`, or None if it does.
pub fn cannot_run(needs: Needs, platform: crate::pvops::Platform) -> Option<&'static str> {
    match (needs, platform) {
        (Needs::Keel, crate::pvops::Platform::BareMetal) => {
            Some("needs Keel (its hypercalls and shared memory); this is bare hardware")
        }
        _ => None,
    }
}

/// Run a test: print the banner, call `main`, print the result line and shut down.
/// Called by the entry the [`crate::test!`] macro emits.
pub fn run(info: TestInfo, main: fn()) -> ! {
    let choice = crate::pvops::choice();
    let keel = choice.platform == crate::pvops::Platform::Keel;
    let hv = keel.then(crate::abi::guest::xen_version);
    crate::println!("--- Keel guest test framework ---");
    crate::println!(
        "Test {} ({}): {}",
        info.name,
        info.category.name(),
        info.title
    );
    if let Some(hv) = hv {
        crate::println!(
            "Built against ABI {}; the hypervisor reports {}; command line \"{}\"",
            crate::abi::version::AbiVersion::CURRENT,
            hv,
            crate::start::cmdline()
        );
    } else {
        crate::println!(
            "Built against ABI {}; no hypervisor; command line \"{}\"",
            crate::abi::version::AbiVersion::CURRENT,
            crate::start::cmdline()
        );
    }
    crate::println!("{}", Described(&choice));
    if let Some(why) = cannot_run(info.needs, choice.platform) {
        report(Verdict::Skip, format_args!("{why}"));
        finish()
    }
    main();
    finish()
}

/// Print the result line and shut down. Does not return.
pub fn finish() -> ! {
    let (v, reason) = OUTCOME.lock().final_verdict();
    end(v, &reason)
}

/// Print `Test result: ...` as the last line and shut the domain down.
fn end(v: Verdict, reason: &Reason) -> ! {
    crate::console::flush();
    // The emergency path: the result line goes out even if a crash interrupted a
    // `println!` that holds the console lock.
    crate::console::emergency_print(format_args!("{}\n", ResultLine(v, reason)));
    shutdown(if v == Verdict::Crash {
        SHUTDOWN_CRASH
    } else {
        SHUTDOWN_POWEROFF
    })
}

struct Described<'a>(&'a crate::pvops::Choice);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::pvops::describe(self.0, f)
    }
}

struct ResultLine<'a>(Verdict, &'a Reason);

impl fmt::Display for ResultLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        result_line(self.0, self.1, f)
    }
}

/// End the test as CRASH now (panic, unexpected exception). Whatever was reported
/// before, CRASH is the most severe verdict, so it wins.
pub fn crash(args: fmt::Arguments<'_>) -> ! {
    // A fault or panic while reporting a crash: report nothing more (that is what
    // failed), just end the domain.
    if CRASHING.swap(true, core::sync::atomic::Ordering::Relaxed) {
        let _ = crate::pvops::platform_shutdown(SHUTDOWN_CRASH);
        crate::arch::halt_forever();
    }
    let reason = Reason::format(args);
    crate::console::emergency_print(format_args!("Crash: {}\n", reason));
    end(Verdict::Crash, &reason)
}

static CRASHING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// `sched_op(SCHEDOP_shutdown, reason)`. If the hypervisor refuses, say so and spin:
/// the runner's timeout then ends the run.
pub fn shutdown(reason: u32) -> ! {
    let e = crate::pvops::platform_shutdown(reason);
    crate::console::emergency_print(format_args!(
        "keel-guest: sched_op(SCHEDOP_shutdown, {reason}) returned {e}; spinning\n"
    ));
    crate::arch::halt_forever()
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::String;

    fn line(o: &Outcome) -> String {
        let (v, r) = o.final_verdict();
        let mut s = String::new();
        result_line(v, &r, &mut s).unwrap();
        s
    }

    #[test]
    fn nothing_reported_is_an_error() {
        assert_eq!(
            line(&Outcome::new()),
            "Test result: ERROR: the test returned without reporting a verdict"
        );
    }

    #[test]
    fn most_severe_wins_and_keeps_its_first_reason() {
        let mut o = Outcome::new();
        o.record(Verdict::Success, Reason::new());
        assert_eq!(line(&o), "Test result: SUCCESS");
        o.record(
            Verdict::Failure,
            Reason::format(format_args!("first {}", 1)),
        );
        o.record(Verdict::Skip, Reason::format(format_args!("skip")));
        o.record(Verdict::Failure, Reason::format(format_args!("second")));
        o.record(Verdict::Success, Reason::new());
        assert_eq!(line(&o), "Test result: FAILURE: first 1");
        o.record(Verdict::Crash, Reason::format(format_args!("boom")));
        assert_eq!(line(&o), "Test result: CRASH: boom");
        assert!(Verdict::Success < Verdict::Skip);
        assert!(Verdict::Skip < Verdict::Error);
        assert!(Verdict::Error < Verdict::Failure);
        assert!(Verdict::Failure < Verdict::Crash);
    }

    #[test]
    fn reasons_stay_on_one_line_and_are_bounded() {
        let r = Reason::format(format_args!("a\nb\tc"));
        assert_eq!(r.as_str(), "a b c");
        let long = "é".repeat(500);
        let r = Reason::format(format_args!("{long}"));
        assert!(r.as_str().len() <= REASON_MAX);
        assert!(r.as_str().ends_with("..."));
    }

    #[test]
    fn a_keel_test_skips_on_bare_hardware_only() {
        use crate::pvops::Platform;
        assert!(cannot_run(Needs::Keel, Platform::BareMetal)
            .is_some_and(|w| w.starts_with("needs Keel")));
        assert_eq!(cannot_run(Needs::Keel, Platform::Keel), None);
        assert_eq!(cannot_run(Needs::Nothing, Platform::BareMetal), None);
        assert_eq!(cannot_run(Needs::Nothing, Platform::Keel), None);
    }
}
