//! The tables `cargo keel bench` prints.

use super::*;

pub(super) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() < 0.1 {
        // One exit per 512-entry batch is 0.00195 per entry: keep it visible.
        format!("{v:.4}")
    } else {
        format!("{v:.2}")
    }
}

pub(super) fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), num)
}

/// The change from `base` to `now` in percent, as the table shows it.
pub(super) fn percent(base: f64, now: f64) -> String {
    if base == 0.0 {
        if now == 0.0 {
            "0.0%".into()
        } else {
            "from 0".into()
        }
    } else {
        let p = (now - base) / base * 100.0;
        if p.abs() < 0.05 {
            "0.0%".into()
        } else {
            format!("{p:+.1}%")
        }
    }
}

/// The table, one line per figure, with a header saying what the numbers are.
/// With a `baseline` (measured on the same machine), each figure's cost is shown
/// beside the baseline's and the change in percent.
pub fn table(r: &Report, baseline: Option<&Report>) -> String {
    let mut s = String::new();
    let unit = r.machine.unit();
    let _ = writeln!(s, "{}", r.machine.unit_sentence(r.runs));
    let w = r
        .figures
        .iter()
        .map(|f| f.key().len())
        .max()
        .unwrap_or(6)
        .max(6);
    // Under the nested backend: exits to the KVM beneath Keel (L0) per operation.
    let l0 = r
        .figures
        .iter()
        .any(|f| f.measured().is_some_and(|m| m.l0_exits.is_some()));
    let baseline = baseline.filter(|b| b.machine == r.machine);
    let (bw, cw) = if baseline.is_some() { (10, 8) } else { (0, 0) };
    let sep = if baseline.is_some() { "  " } else { "" };
    let _ = write!(
        s,
        "{:<w$}  {:>15}{sep}{:>bw$}{sep}{:>cw$}  {:>10}  {:>10}  {:>8}  {:>8}  {:>9}  {:>7}",
        "figure",
        format!("{unit}/op"),
        if baseline.is_some() { "baseline" } else { "" },
        if baseline.is_some() { "change" } else { "" },
        "min/op",
        "max/op",
        "exits/op",
        "VMCS/op",
        "VMCS/exit",
        "x floor"
    );
    let _ = writeln!(
        s,
        "{}",
        if l0 {
            format!("  {:>8}", "L0/op")
        } else {
            String::new()
        }
    );
    let floor = r.floor();
    for f in &r.figures {
        match &f.measure {
            Measure::Measured(m) => {
                let per = m.per as f64;
                let base = baseline.map(|b| b.get(&f.key()).and_then(Figure::measured));
                let (bcol, ccol) = match base {
                    None => (String::new(), String::new()),
                    Some(None) => ("-".into(), "new".into()),
                    Some(Some(b)) => (num(b.cost()), percent(b.cost(), m.cost())),
                };
                let _ = write!(
                    s,
                    "{:<w$}  {:>15}{sep}{bcol:>bw$}{sep}{ccol:>cw$}  {:>10}  {:>10}  {:>8}  {:>8}  {:>9}  {:>7}",
                    f.key(),
                    num(m.cost()),
                    num(m.min / per),
                    num(m.max / per),
                    opt(m.exits_per_op()),
                    opt(m.vmcs_per_op()),
                    opt(m.vmcs_per_exit()),
                    floor
                        .filter(|fl| *fl > 0.0)
                        .map_or("-".into(), |fl| format!("{:.2}", m.cost() / fl)),
                );
                let _ = writeln!(
                    s,
                    "{}",
                    if l0 {
                        format!("  {:>8}", opt(m.l0_exits_per_op()))
                    } else {
                        String::new()
                    }
                );
            }
            Measure::Missing(why) => {
                let _ = writeln!(s, "{:<w$}  missing: {why}", f.key());
            }
        }
    }
    s += &pv_vs_trap(r);
    s
}

/// The operations a program measured both ways, `<op>.pv` (Keel's PV entry) and
/// `<op>.trap` (the raw instruction, trapped and emulated), side by side with
/// the ratio trap / pv; an operation with one side shows the other's `missing`
/// reason. Empty when no figure is named that way.
pub fn pv_vs_trap(r: &Report) -> String {
    let side = |f: &Figure, suffix: &str| -> Option<(String, String)> {
        let op = f.name.strip_suffix(suffix)?;
        Some((format!("{}/{op}", f.program), f.name.clone()))
    };
    let mut ops: Vec<String> = Vec::new();
    for f in &r.figures {
        if let Some((op, _)) = side(f, ".pv").or_else(|| side(f, ".trap")) {
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
    }
    if ops.is_empty() {
        return String::new();
    }
    let find = |op: &str, suffix: &str| {
        r.figures
            .iter()
            .find(|f| format!("{}/{}", f.program, f.name) == format!("{op}{suffix}"))
    };
    let cell = |f: Option<&Figure>| match f.map(|f| &f.measure) {
        Some(Measure::Measured(m)) => (num(m.cost()), Some(m.cost())),
        Some(Measure::Missing(_)) => ("missing".into(), None),
        None => ("-".into(), None),
    };
    let unit = r.machine.unit();
    let w = ops.iter().map(|o| o.len()).max().unwrap_or(2).max(9);
    let mut s = String::new();
    let _ = writeln!(s, "\nPV beside native with trap-and-emulate ({unit}/op):");
    let _ = writeln!(
        s,
        "{:<w$}  {:>12}  {:>12}  {:>9}",
        "operation", "pv", "trap", "trap/pv"
    );
    for op in &ops {
        let (pv, pv_cost) = cell(find(op, ".pv"));
        let (trap, trap_cost) = cell(find(op, ".trap"));
        let ratio = match (pv_cost, trap_cost) {
            (Some(p), Some(t)) if p > 0.0 => format!("{:.2}", t / p),
            _ => "-".into(),
        };
        let _ = writeln!(s, "{op:<w$}  {pv:>12}  {trap:>12}  {ratio:>9}");
    }
    s
}
