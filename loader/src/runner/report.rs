//! What `cargo keel test` says about a run: the verdict of each boot, the
//! diagnostics of a failure, the result lines, the live progress line and the
//! summary (with its JUnit XML).

use super::*;

/// The verdict for a test's boot, and its reason.
pub fn judge(o: &Outcome) -> (Verdict, String) {
    judge_expecting(o, ExitStatus::Success)
}

/// [`judge`] for a test whose passing run powers off with `expected` (a test
/// with a companion that crashes on purpose: [`super::EXPECTED_STATUS`]).
pub fn judge_expecting(o: &Outcome, expected: ExitStatus) -> (Verdict, String) {
    let status = |s: ExitStatus| format!("status {} ({})", s as u8, s.describe());
    let Some(reported) = console::test_result(&o.console) else {
        let why = match (o.status, o.emulator) {
            (Some(s), _) => format!("no verdict; the hypervisor powered off with {}", status(s)),
            (None, EmulatorEnd::TimedOut) => {
                format!("no verdict; timed out after {:.0}s", o.wall.as_secs_f64())
            }
            (None, e) => format!("no verdict and no power-off line; the emulator {e}"),
        };
        return (Verdict::Crash, why);
    };
    let v = reported.verdict;
    match o.status {
        None => (
            Verdict::Crash,
            format!(
                "the guest reported {v} but the machine never powered off (the emulator {})",
                o.emulator
            ),
        ),
        // A passing guest must leave through a clean power-off.
        // A test that expects a crash's status and reports SKIP may not have
        // run its companions at all (no hypervisor: `--backend native`).
        Some(s)
            if matches!(v, Verdict::Success | Verdict::Skip)
                && s != expected
                && !(v == Verdict::Skip && s == ExitStatus::Success) =>
        (
            Verdict::Crash,
            if expected == ExitStatus::Success {
                format!(
                    "the guest reported {v} but the hypervisor powered off with {}",
                    status(s)
                )
            } else {
                format!(
                    "the guest reported {v} and the hypervisor powered off with {}, where this test's domains end with {}",
                    status(s),
                    status(expected)
                )
            },
        ),
        // After a verdict, the guest shuts down (poweroff or crash); anything else
        // (hypervisor panic, failed VM entry, ...) means the hypervisor broke.
        Some(s)
            if !matches!(
                s,
                ExitStatus::Success | ExitStatus::GuestCrash | ExitStatus::GuestOtherShutdown
            ) =>
        {
            (
                Verdict::Crash,
                format!(
                    "the guest reported {v} but the hypervisor powered off with {}",
                    status(s)
                ),
            )
        }
        // The emulator must have ended the way the hypervisor's power-off ends
        // it: an exit code that power-off cannot give means something else
        // stopped the machine (under Bochs, exit code 0 is the debugger's
        // `quit`, reachable only through the magic breakpoint, which a guest
        // can execute), and the console before it proves nothing.
        Some(s) if matches!(o.emulator, EmulatorEnd::Exited(c) if c != machine::expected_emulator_code(o.backend, s)) => (
            Verdict::Crash,
            format!(
                "the guest reported {v} and the hypervisor powered off with {}, but {} (expected code {}): the run did not end through the hypervisor's power-off",
                status(s),
                o.emulator,
                machine::expected_emulator_code(o.backend, s)
            ),
        ),
        Some(_) => match console::sequence_problem(&o.console) {
            // The console lost or reordered numbered lines the guest printed.
            Some(p) if v < Verdict::Failure => (Verdict::Failure, p),
            _ => match console::companion_failure(&o.console) {
                // A companion domain found something wrong: the test fails.
                Some((d, r)) if r.verdict > v => (
                    r.verdict,
                    format!("companion domain {d} reported {}: {}", r.verdict, r.reason),
                ),
                _ => (v, reported.reason),
            },
        },
    }
}

/// The results of a suite run, by test name.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Every result.
    pub results: Vec<TestResult>,
    /// Wall time of the whole run.
    pub wall: Duration,
}

impl Summary {
    /// (passed, failed, skipped): failed counts ERROR, FAILURE and CRASH.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |f: &dyn Fn(Verdict) -> bool| self.results.iter().filter(|r| f(r.verdict)).count();
        (
            n(&|v| v == Verdict::Success),
            n(&|v| v.is_failure()),
            n(&|v| v == Verdict::Skip),
        )
    }
    /// The closing line: `N passed, N failed, N skipped`.
    pub fn line(&self) -> String {
        let (p, f, s) = self.counts();
        format!("{p} passed, {f} failed, {s} skipped")
    }
    /// True when nothing failed, errored or crashed.
    pub fn ok(&self) -> bool {
        self.counts().1 == 0
    }
    /// The JUnit XML for this run.
    pub fn junit(&self) -> String {
        let cases: Vec<junit::Case<'_>> = self
            .results
            .iter()
            .map(|r| junit::Case {
                name: &r.test.name,
                category: r.test.category.name(),
                verdict: r.verdict,
                reason: &r.reason,
                seconds: r.wall.as_secs_f64(),
                details: &r.details,
                console: &r.console,
            })
            .collect();
        junit::render(&cases)
    }
}

/// Lines of console shown for a failed test.
const TAIL_LINES: usize = 20;

/// The diagnostic block for a failed test: console tail, the hypervisor's last
/// words and power-off status, the emulator's end (and its own output when the
/// console is silent).
pub fn diagnostics(o: &Outcome) -> String {
    let mut d = String::new();
    let tail = console::tail(&o.console, TAIL_LINES);
    if tail.is_empty() {
        d += "console: (empty)\n";
    } else {
        d += &format!("console (last {TAIL_LINES} lines):\n");
        for l in tail.lines() {
            d += &format!("  | {l}\n");
        }
    }
    // The hypervisor's last words, unless the tail above already shows them.
    let diag = console::hypervisor_lines(&o.console, 3);
    if !diag.is_empty() && !diag.iter().all(|l| tail.lines().any(|t| t == *l)) {
        d += "hypervisor diagnostic:\n";
        for l in diag {
            d += &format!("  | {l}\n");
        }
    }
    d += &match o.status {
        Some(s) => format!("power-off status: {} ({})\n", s as u8, s.describe()),
        None => "power-off status: none (no power-off line)\n".to_string(),
    };
    d += &format!("emulator: {} {}\n", o.backend, o.emulator);
    if o.console.trim().is_empty() && !o.emulator_output.trim().is_empty() {
        d += "emulator output (last lines):\n";
        for l in console::tail(&o.emulator_output, 10).lines() {
            d += &format!("  | {l}\n");
        }
    }
    if let Some(p) = &o.kept_dir {
        d += &format!("run directory: {}\n", p.display());
    }
    d
}

/// The result of a boot, judged.
/// One result line: verdict, name, wall time, reason.
pub fn result_line(r: &TestResult, name_width: usize) -> String {
    let mut l = format!(
        "{:<7} {:<w$} {:>7.2}s",
        r.verdict.name(),
        r.test.name,
        r.wall.as_secs_f64(),
        w = name_width
    );
    if !r.reason.is_empty() {
        l += "  ";
        l += &r.reason;
    }
    l
}

/// The live progress line of a suite run, on standard error when it is a
/// terminal: done / running / left, elapsed, and the tests in flight. Without a
/// terminal (CI, a pipe) there is none, and the result lines are all there is.
pub(super) struct Progress {
    pub(super) bar: Option<ProgressBar>,
    total: usize,
    /// The tests running, and how many have ended; kept by the workers
    /// themselves so the line never counts a test twice.
    pub(super) state: Mutex<(Vec<String>, usize)>,
}

impl Progress {
    pub(super) fn new(total: usize, live: bool) -> Self {
        let bar = live.then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:24}] {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Self {
            bar,
            total,
            state: Mutex::new((Vec::new(), 0)),
        }
    }

    /// A worker starts `name`.
    pub(super) fn started(&self, name: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0.push(name.to_string());
        self.redraw(&st);
    }

    /// A worker has finished `name` (its result is on its way to be printed).
    pub(super) fn ended(&self, name: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0.retain(|n| n != name);
        st.1 += 1;
        self.redraw(&st);
    }

    /// Print a result's lines above the progress line.
    pub(super) fn print(&self, print: impl FnOnce()) {
        match &self.bar {
            Some(bar) => {
                bar.suspend(print);
                bar.inc(1);
            }
            None => print(),
        }
    }

    fn redraw(&self, st: &(Vec<String>, usize)) {
        if let Some(bar) = &self.bar {
            bar.set_message(progress_message(st.1, &st.0, self.total));
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The progress line's text: `3 done, 2 running, 5 left: name, name`.
pub fn progress_message(done: usize, in_flight: &[String], total: usize) -> String {
    let running = in_flight.len();
    let left = total.saturating_sub(done + running);
    let mut m = format!("{done} done, {running} running, {left} left");
    if !in_flight.is_empty() {
        m += ": ";
        m += &in_flight.join(", ");
    }
    m
}
