//! Runs and reports: combining runs, the machine they ran on, the report.

use super::*;

/// The median of `v` (the mean of the middle two for an even count); `None` if empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Combine the figures of repeated runs: per figure, the median over the runs of
/// every number. A figure measured in some runs and missing in others is
/// combined from the runs that measured it.
pub fn combine_runs(runs: &[Vec<Figure>]) -> Vec<Figure> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for f in runs.iter().flatten() {
        if !keys.iter().any(|(p, n)| *p == f.program && *n == f.name) {
            keys.push((f.program.clone(), f.name.clone()));
        }
    }
    keys.into_iter()
        .map(|(program, name)| {
            let all: Vec<&Figure> = runs
                .iter()
                .flatten()
                .filter(|f| f.program == program && f.name == name)
                .collect();
            let ms: Vec<&Measured> = all.iter().filter_map(|f| f.measured()).collect();
            let measure = if ms.is_empty() {
                all[0].measure.clone()
            } else {
                let med = |g: &dyn Fn(&Measured) -> f64| {
                    median(&mut ms.iter().map(|m| g(m)).collect::<Vec<_>>()).unwrap_or(0.0)
                };
                let med_opt = |g: &dyn Fn(&Measured) -> Option<f64>| {
                    let mut v: Vec<f64> = ms.iter().filter_map(|m| g(m)).collect();
                    median(&mut v)
                };
                let mut reasons = BTreeMap::new();
                for r in ms.iter().flat_map(|m| m.reasons.keys()) {
                    reasons.insert(
                        *r,
                        med(&|m: &Measured| m.reasons.get(r).copied().unwrap_or(0.0)),
                    );
                }
                Measure::Measured(Measured {
                    n: ms[0].n,
                    per: ms[0].per,
                    min: med(&|m| m.min),
                    p10: med(&|m| m.p10),
                    median: med(&|m| m.median),
                    p90: med(&|m| m.p90),
                    max: med(&|m| m.max),
                    exits: med_opt(&|m| m.exits),
                    vmreads: med_opt(&|m| m.vmreads),
                    vmwrites: med_opt(&|m| m.vmwrites),
                    reasons,
                    marks: None,
                    l0_exits: med_opt(&|m| m.l0_exits),
                    l0_reflected: med_opt(&|m| m.l0_reflected),
                })
            };
            Figure {
                program,
                name,
                measure,
            }
        })
        .collect()
}

/// Where and how the figures were measured: decides their unit and whether a
/// baseline applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineId {
    /// The backend (`bochs`, `kvm`).
    pub backend: String,
    /// The CPU model.
    pub cpu_model: String,
    /// Bochs instructions per emulated second (changes what waits on emulated
    /// time cost, e.g. the UART); 0 when it does not apply.
    pub ips: u64,
}

impl MachineId {
    /// Is the TSC an instruction counter here (Bochs), or a clock?
    pub fn counts_instructions(&self) -> bool {
        self.backend == Backend::Bochs.name()
    }
    /// The unit of the figures, for the table and the JSON.
    pub fn unit(&self) -> &'static str {
        if self.counts_instructions() {
            "instructions"
        } else {
            "cycles"
        }
    }
    /// One sentence saying what the numbers are.
    pub fn unit_sentence(&self, runs: usize) -> String {
        if self.counts_instructions() {
            format!(
                "figures are Bochs instruction counts (cpu {}, ips {}): the guest's TSC advances one tick per emulated instruction (a VM exit and entry count 4), so they are exact and repeatable",
                self.cpu_model, self.ips
            )
        } else {
            format!(
                "figures are hardware TSC cycles ({}, cpu {}): medians over {runs} run(s) of each program, each figure itself a median of its samples",
                self.backend, self.cpu_model
            )
        }
    }
}

/// A complete result: the machine, how many runs, the figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Where it was measured.
    pub machine: MachineId,
    /// Runs per program whose medians were combined.
    pub runs: usize,
    /// The compiler that built the images (`rustc --version`), when known. Under
    /// Bochs a figure counts the instructions the compiler generated, so a new
    /// compiler can move figures with no change to Keel: `--check` says so.
    pub rustc: Option<String>,
    /// Every figure, by program then in the order reported.
    pub figures: Vec<Figure>,
}

impl Report {
    /// The figure with key `program/name`.
    pub fn get(&self, key: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.key() == key)
    }

    /// The floor's cost, if measured.
    pub fn floor(&self) -> Option<f64> {
        self.get(FLOOR)?.measured().map(Measured::cost)
    }
}
