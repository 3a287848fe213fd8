//! Reading the nested console: each QEMU run's bracket lines, its console, how
//! it ended, and what /init measured about it.

use crate::backend::Backend;
use crate::console;
use crate::machine::{EmulatorEnd, Outcome};
use std::time::Duration;

/// One QEMU run as the console shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunRecord {
    /// Keel's console (everything QEMU's serial port printed).
    pub console: String,
    /// How QEMU ended: `Some(Exited(rc))`, `Signalled`, `TimedOut`; None: the
    /// machine stopped during this run.
    pub end: Option<EmulatorEnd>,
    /// QEMU's standard error and L0's kernel log of the run.
    pub diagnostics: String,
    /// Emulated seconds (L0's CLOCK_MONOTONIC) from start to exit.
    pub emulated_s: Option<f64>,
    /// L0 exit counts between markers: (kvm_exit, kvm_nested_vmexit) per mark.
    pub l0_marks: Vec<(u64, u64)>,
    /// L0's non-idle CPU seconds during the run: what it cost Bochs.
    pub busy_s: Option<f64>,
    /// Emulated seconds after the start at which Keel's console first and last
    /// grew (QEMU and its firmware before the first; QEMU's exit after the last).
    pub console_s: Option<(f64, f64)>,
}

impl RunRecord {
    /// Where the run's time went, for the log.
    pub fn timing(&self) -> String {
        let mut t = String::new();
        if let Some(e) = self.emulated_s {
            t += &format!("emulated {e:.2}s");
        }
        if let Some((a, b)) = self.console_s {
            t += &format!(" (Keel's console from {a:.2}s to {b:.2}s)");
        }
        if let Some(b) = self.busy_s {
            t += &format!(", L0 busy {b:.2}s");
        }
        t
    }
}

/// What the console says about the whole nested boot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transcript {
    /// Each guest's run, by name, in order of start.
    pub runs: Vec<(String, RunRecord)>,
    /// Milestones: (name, emulated seconds).
    pub phases: Vec<(String, f64)>,
    /// kvm-intel parameters as L0 reports them.
    pub kvm_intel: Vec<String>,
    /// /init's error lines.
    pub errors: Vec<String>,
    /// /init finished all runs.
    pub done: bool,
}

fn field<'a>(rest: &'a str, key: &str) -> Option<&'a str> {
    rest.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Split a nested console into its runs: the lines between `NK-<nonce>: start
/// NAME` and `NK-<nonce>: exit NAME ...` are that guest's console. Lines outside
/// any run, and bracket lines with another nonce, are not any guest's.
pub fn split_runs(console: &str, nonce: &str) -> Transcript {
    let tag = format!("NK-{nonce}: ");
    let mut t = Transcript::default();
    let mut current: Option<(String, RunRecord, f64)> = None;
    for line in console::lines(console) {
        let Some(rest) = line.strip_prefix(&tag) else {
            if let Some((_, r, _)) = current.as_mut() {
                r.console.push_str(line);
                r.console.push('\n');
            }
            continue;
        };
        let mut words = rest.splitn(2, ' ');
        let kind = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("");
        let t_of = |s: &str| field(s, "t").and_then(|v| v.parse::<f64>().ok());
        match kind {
            "phase" => {
                let name = rest.split_whitespace().next().unwrap_or("").to_string();
                if let Some(s) = t_of(rest) {
                    t.phases.push((name, s));
                }
            }
            "kvm_intel" => t.kvm_intel.push(rest.to_string()),
            "error" => t.errors.push(rest.to_string()),
            "done" => {
                t.done = true;
                if let Some(s) = t_of(rest) {
                    t.phases.push(("done".into(), s));
                }
            }
            "start" => {
                if let Some((n, r, _)) = current.take() {
                    t.runs.push((n, r));
                }
                let name = rest.split_whitespace().next().unwrap_or("").to_string();
                current = Some((name, RunRecord::default(), t_of(rest).unwrap_or(0.0)));
            }
            "exit" => {
                let name = rest.split_whitespace().next().unwrap_or("");
                if let Some((n, mut r, t0)) = current.take() {
                    if n == name {
                        r.end = Some(if let Some(rc) = field(rest, "rc") {
                            EmulatorEnd::Exited(rc.parse().unwrap_or(-1))
                        } else if rest.split_whitespace().any(|w| w == "timeout") {
                            EmulatorEnd::TimedOut
                        } else {
                            EmulatorEnd::Signalled
                        });
                        r.emulated_s = t_of(rest).map(|t1| t1 - t0);
                        let num = |k| field(rest, k).and_then(|v| v.parse::<f64>().ok());
                        r.busy_s = num("busy");
                        r.console_s = num("first")
                            .zip(num("last"))
                            .filter(|&(a, b)| a >= 0.0 && b >= a);
                        // /init's line break after QEMU's output.
                        if r.console.ends_with("\n\n") {
                            r.console.pop();
                        }
                    }
                    t.runs.push((n, r));
                }
            }
            "stderr" | "dmesg" | "l0" | "stall" => {
                let name = rest.split_whitespace().next().unwrap_or("");
                let Some((_, r)) = t.runs.last_mut() else {
                    continue;
                };
                match kind {
                    "l0" => {
                        let e = field(rest, "exits").and_then(|v| v.parse().ok());
                        let n = field(rest, "nested").and_then(|v| v.parse().ok());
                        if let (Some(e), Some(n)) = (e, n) {
                            r.l0_marks.push((e, n));
                        }
                    }
                    "dmesg" => {
                        r.diagnostics += &format!("L0 {rest}\n");
                    }
                    "stall" => {
                        r.diagnostics += &format!("L0 stall {rest}\n");
                    }
                    _ => {
                        let text = rest
                            .strip_prefix(name)
                            .unwrap_or(rest)
                            .trim_start()
                            .trim_start_matches('|')
                            .trim_start();
                        r.diagnostics += &format!("qemu: {text}\n");
                    }
                }
            }
            _ => {}
        }
    }
    if let Some((n, r, _)) = current.take() {
        t.runs.push((n, r));
    }
    t
}

/// The outcome of one guest's run, as the other backends give it.
pub fn outcome(rec: &RunRecord, bochs_end: EmulatorEnd, wall: Duration) -> Outcome {
    let emulator = rec.end.unwrap_or(match bochs_end {
        // The whole machine stopped during the run: that is how it ended.
        EmulatorEnd::TimedOut => EmulatorEnd::TimedOut,
        _ => EmulatorEnd::Signalled,
    });
    Outcome {
        backend: Backend::Nested,
        status: console::power_off_status(&rec.console),
        console: rec.console.clone(),
        emulator,
        emulator_output: rec.diagnostics.clone(),
        wall,
        kept_dir: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "5eed";

    #[test]
    fn runs_are_split_at_the_brackets() {
        let console = "\
Linux boot noise
NK-5eed: phase init t=20.5
NK-5eed: kvm_intel nested=Y
NK-5eed: phase modules t=26.0
NK-5eed: start hello t=26.1
keel: Keel hypervisor
(d1) Test result: SUCCESS
keel: power off, status 0 (guest powered off)

NK-5eed: exit hello rc=1 t=30.3 busy=3.50 first=1.250 last=3.900
NK-5eed: stderr hello | qemu-system-x86_64: warning: something
NK-5eed: dmesg | kvm [207]: vcpu0, guest rIP: 0x4037a0 Unhandled WRMSR(0x1d9) = 0x2
NK-5eed: stall hello | off 24.000 ms: the vCPU thread off the CPU
NK-5eed: start timers t=30.4
(d1) NK-5eed: exit timers rc=1 t=0
NK-beef: exit timers rc=1 t=0
keel: power off, status 1 (guest crashed)
NK-5eed: exit timers timeout t=330.4
NK-5eed: l0 timers mark=0 exits=7 nested=3
NK-5eed: start mmu t=331
keel: Keel hyp
";
        let t = split_runs(console, N);
        assert!(!t.done);
        assert_eq!(t.phases, [("init".into(), 20.5), ("modules".into(), 26.0)]);
        assert_eq!(t.kvm_intel, ["nested=Y"]);
        assert_eq!(t.runs.len(), 3);
        let (n, hello) = &t.runs[0];
        assert_eq!(n, "hello");
        assert_eq!(hello.end, Some(EmulatorEnd::Exited(1)));
        assert_eq!(
            hello.console,
            "keel: Keel hypervisor\n(d1) Test result: SUCCESS\nkeel: power off, status 0 (guest powered off)\n"
        );
        assert!((hello.emulated_s.unwrap() - 4.2).abs() < 1e-9);
        assert_eq!(hello.busy_s, Some(3.5));
        assert_eq!(hello.console_s, Some((1.25, 3.9)));
        assert_eq!(
            hello.timing(),
            "emulated 4.20s (Keel's console from 1.25s to 3.90s), L0 busy 3.50s"
        );
        assert!(hello
            .diagnostics
            .contains("qemu: qemu-system-x86_64: warning"));
        assert!(hello.diagnostics.contains("L0 | kvm [207]"));
        assert!(hello
            .diagnostics
            .contains("L0 stall hello | off 24.000 ms: the vCPU thread"));
        let o = outcome(hello, EmulatorEnd::Exited(1), Duration::ZERO);
        assert_eq!(o.cross_check(), Ok(keel_abi::platform::ExitStatus::Success));

        // A forged bracket (guest output, or another nonce) is console text.
        let (_, timers) = &t.runs[1];
        assert!(timers.console.contains("(d1) NK-5eed: exit timers"));
        assert!(timers.console.contains("NK-beef: exit timers"));
        assert_eq!(timers.end, Some(EmulatorEnd::TimedOut));
        assert_eq!(timers.l0_marks, [(7, 3)]);

        // A run the machine never finished has no end.
        let (n, mmu) = &t.runs[2];
        assert_eq!(n, "mmu");
        assert_eq!(mmu.end, None);
        let o = outcome(mmu, EmulatorEnd::TimedOut, Duration::ZERO);
        assert_eq!(o.emulator, EmulatorEnd::TimedOut);
        assert_eq!(o.status, None);
    }

    #[test]
    fn done_and_signals() {
        let t = split_runs(
            "NK-5eed: start a t=1\nNK-5eed: exit a signal=11 t=2\nNK-5eed: done t=3\n",
            N,
        );
        assert!(t.done);
        assert_eq!(t.runs[0].1.end, Some(EmulatorEnd::Signalled));
        assert_eq!(t.phases.last(), Some(&("done".into(), 3.0)));
    }
}
