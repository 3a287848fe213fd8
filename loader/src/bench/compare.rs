//! The comparison with the baseline: the gate.

use super::*;

/// One number of one figure that moved beyond the tolerance.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The figure's key.
    pub key: String,
    /// Which number: `cost`, `exits/op`, `VMCS/op`.
    pub metric: &'static str,
    /// The baseline's value.
    pub baseline: f64,
    /// The value now.
    pub current: f64,
}

impl Change {
    /// The relative change, in percent (infinite from a zero baseline).
    pub fn percent(&self) -> f64 {
        if self.baseline == 0.0 {
            f64::INFINITY
        } else {
            (self.current - self.baseline) / self.baseline * 100.0
        }
    }
}

/// What `--check` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    /// Numbers worse by more than the tolerance: the check fails.
    pub regressions: Vec<Change>,
    /// Numbers better by more than the tolerance.
    pub improvements: Vec<Change>,
    /// Baseline figures that are gone or now missing, and why: the check fails.
    pub lost: Vec<String>,
    /// Figures the baseline does not have a measurement for.
    pub new: Vec<String>,
    /// The figures compared, with the cost's change: `key: base -> now (+x%)`.
    pub compared: Vec<String>,
}

impl Comparison {
    /// True when nothing got worse and nothing was lost.
    pub fn ok(&self) -> bool {
        self.regressions.is_empty() && self.lost.is_empty()
    }

    /// A readable account (regressions first).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let line = |s: &mut String, c: &Change| {
            let pct = c.percent();
            let _ = writeln!(
                s,
                "  {} {}: {} -> {} ({}{})",
                c.key,
                c.metric,
                num(c.baseline),
                num(c.current),
                if pct.is_finite() && pct > 0.0 {
                    "+"
                } else {
                    ""
                },
                if pct.is_finite() {
                    format!("{pct:.1}%")
                } else {
                    "from zero".into()
                }
            );
        };
        if !self.regressions.is_empty() {
            let _ = writeln!(
                s,
                "REGRESSIONS (worse than the baseline by more than {:.0}%):",
                TOLERANCE * 100.0
            );
            for c in &self.regressions {
                line(&mut s, c);
            }
        }
        for l in &self.lost {
            let _ = writeln!(s, "LOST: {l}");
        }
        if !self.improvements.is_empty() {
            let _ = writeln!(
                s,
                "improvements (better than the baseline by more than {:.0}%):",
                TOLERANCE * 100.0
            );
            for c in &self.improvements {
                line(&mut s, c);
            }
        }
        for n in &self.new {
            let _ = writeln!(s, "new (not in the baseline): {n}");
        }
        if !self.improvements.is_empty() || !self.new.is_empty() {
            let _ = writeln!(
                s,
                "to record these deliberately: cargo keel bench --update-baseline, and commit {BASELINE_PATH} on its own"
            );
        }
        let _ = writeln!(s, "compared with the baseline (cost per operation):");
        for k in &self.compared {
            let _ = writeln!(s, "  {k}");
        }
        let _ = writeln!(
            s,
            "{} figure(s) compared: {}",
            self.compared.len(),
            if self.ok() {
                "none worse than the baseline"
            } else {
                "CHECK FAILED"
            }
        );
        s
    }
}

/// The numbers `--check` holds a figure to.
pub(super) fn metrics(m: &Measured) -> [(&'static str, Option<f64>); 3] {
    [
        ("cost", Some(m.cost())),
        ("exits/op", m.exits_per_op()),
        ("VMCS/op", m.vmcs_per_op()),
    ]
}

/// Compare `current` with `baseline`. Only baseline figures for which
/// `in_scope(key)` holds are expected (the programs that ran); a number is worse
/// when it exceeds the baseline by more than `tolerance` (any increase from 0).
pub fn compare(
    baseline: &Report,
    current: &Report,
    in_scope: impl Fn(&Figure) -> bool,
    tolerance: f64,
) -> Comparison {
    let mut c = Comparison::default();
    for b in baseline.figures.iter().filter(|f| in_scope(f)) {
        let key = b.key();
        let Some(now) = current.get(&key) else {
            c.lost
                .push(format!("{key} is in the baseline but was not reported"));
            continue;
        };
        match (b.measured(), now.measured()) {
            (Some(bm), Some(nm)) => {
                c.compared.push(format!(
                    "{key}: {} -> {} ({})",
                    num(bm.cost()),
                    num(nm.cost()),
                    percent(bm.cost(), nm.cost())
                ));
                for ((metric, bv), (_, nv)) in metrics(bm).into_iter().zip(metrics(nm)) {
                    let (Some(bv), Some(nv)) = (bv, nv) else {
                        if bv.is_some() {
                            c.lost.push(format!(
                                "{key}: {metric} is in the baseline but not measured now (no counters?)"
                            ));
                        }
                        continue;
                    };
                    let change = Change {
                        key: key.clone(),
                        metric,
                        baseline: bv,
                        current: nv,
                    };
                    if nv > bv * (1.0 + tolerance) && nv > bv {
                        c.regressions.push(change);
                    } else if nv < bv * (1.0 - tolerance) {
                        c.improvements.push(change);
                    }
                }
            }
            (Some(_), None) => {
                let why = match &now.measure {
                    Measure::Missing(w) => w.as_str(),
                    Measure::Measured(_) => "",
                };
                c.lost.push(format!(
                    "{key} was measured in the baseline, now missing: {why}"
                ));
            }
            (None, Some(_)) => c.new.push(format!("{key} (now measured)")),
            (None, None) => {}
        }
    }
    for f in &current.figures {
        if baseline.get(&f.key()).is_none() {
            c.new.push(f.key());
        }
    }
    c
}

/// A warning when the baseline was measured with another compiler than this run
/// (both known): under Bochs the figures count generated instructions.
pub fn toolchain_note(baseline: &Report, current: &Report) -> Option<String> {
    match (&baseline.rustc, &current.rustc) {
        (Some(b), Some(c)) if b != c => Some(format!(
            "note: the baseline was measured with {b}, this run with {c}: code generation moves instruction counts; if only the compiler changed, record the new figures deliberately (--update-baseline, its own commit)"
        )),
        _ => None,
    }
}

/// The baseline after `--update-baseline`: the figures just measured replace
/// theirs; the others (programs not run this time) are kept.
pub fn merge_baseline(old: Option<&Report>, now: &Report) -> Report {
    let mut figures = now.figures.clone();
    if let Some(old) = old.filter(|o| o.machine == now.machine) {
        let ran: Vec<&str> = now.figures.iter().map(|f| f.program.as_str()).collect();
        for f in &old.figures {
            if !ran.contains(&f.program.as_str()) {
                figures.push(f.clone());
            }
        }
    }
    figures.sort_by(|a, b| a.program.cmp(&b.program));
    Report {
        machine: now.machine.clone(),
        runs: now.runs,
        rustc: now.rustc.clone(),
        figures,
    }
}
