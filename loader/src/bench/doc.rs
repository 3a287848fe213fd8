//! The figures tables of `docs/performance.md`, generated from a report (the
//! committed baseline), so the page cannot drift from the numbers the gate
//! holds. A page marks each generated table with
//! `<!-- BEGIN GENERATED bench:NAME -->` and `<!-- END GENERATED bench:NAME -->`;
//! [`regenerate_page`] replaces what lies between and leaves the prose alone.

use super::*;

/// The generated blocks a page may hold, by name.
pub const DOC_BLOCKS: [&str; 4] = [
    "bench:figures",
    "bench:pv-vs-trap",
    "bench:cpus",
    "bench:cross-cpu",
];

/// The suffix of a program that runs another's body with its companions on
/// another CPU (`bench_ring_2cpu` beside `bench_ring`).
pub const CROSS_CPU_SUFFIX: &str = "_2cpu";

/// Is the figure one side of a PV/trap pair (its own table)?
fn is_pv_or_trap(f: &Figure) -> bool {
    f.name.ends_with(".pv") || f.name.ends_with(".trap")
}

/// Every figure that is not one side of a PV/trap pair, one row each: the cost
/// per operation, the operations a sample holds (a batch's figure is per
/// entry), exits and VMCS accesses per operation and per exit, and the ratio
/// to the floor; a missing figure says why.
pub fn markdown_figures(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured on {} `{}`{}{}.\n",
        r.machine.backend,
        r.machine.cpu_model,
        if r.machine.ips > 0 {
            format!(", ips {}", grouped(&r.machine.ips.to_string()))
        } else {
            String::new()
        },
        r.rustc
            .as_deref()
            .map_or(String::new(), |c| format!(", built by {c}")),
    );
    let unit = r.machine.unit();
    let _ = writeln!(
        s,
        "| figure | {unit}/op | ops/sample | exits/op | VMCS/op | VMCS/exit | x floor |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    let floor = r.floor().filter(|f| *f > 0.0);
    for f in r.figures.iter().filter(|f| !is_pv_or_trap(f)) {
        match &f.measure {
            Measure::Measured(m) => {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} | {} | {} | {} | {} |",
                    f.key(),
                    grouped(&num(m.cost())),
                    m.per,
                    opt(m.exits_per_op()),
                    opt(m.vmcs_per_op()),
                    opt(m.vmcs_per_exit()),
                    floor.map_or("-".into(), |fl| format!("{:.2}", m.cost() / fl)),
                );
            }
            Measure::Missing(why) => {
                let _ = writeln!(s, "| `{}` | missing: {why} | | | | | |", f.key());
            }
        }
    }
    s
}

/// The operations measured both ways (`<op>.pv` and `<op>.trap`), side by side
/// with the ratio trap / PV, as [`pv_vs_trap`] prints them.
pub fn markdown_pv_vs_trap(r: &Report) -> String {
    let mut ops: Vec<(String, String)> = Vec::new();
    for f in r.figures.iter().filter(|f| is_pv_or_trap(f)) {
        let op = f
            .name
            .trim_end_matches(".pv")
            .trim_end_matches(".trap")
            .to_string();
        if !ops.iter().any(|(p, o)| *p == f.program && *o == op) {
            ops.push((f.program.clone(), op));
        }
    }
    let unit = r.machine.unit();
    let mut s = format!(
        "| operation | PV ({unit}/op) | trap ({unit}/op) | trap / PV | exits PV / trap |\n|---|---:|---:|---:|---|\n"
    );
    let side = |p: &str, op: &str, suffix: &str| r.get(&format!("{p}/{op}{suffix}"));
    for (p, op) in &ops {
        let (pv, trap) = (side(p, op, ".pv"), side(p, op, ".trap"));
        let cost = |f: Option<&Figure>| f.and_then(Figure::measured).map(Measured::cost);
        let cell = |f: Option<&Figure>| match f.map(|f| &f.measure) {
            Some(Measure::Measured(m)) => grouped(&num(m.cost())),
            Some(Measure::Missing(why)) => format!("- ({why})"),
            None => "-".into(),
        };
        let exits = |f: Option<&Figure>| {
            opt(f
                .and_then(Figure::measured)
                .and_then(Measured::exits_per_op))
        };
        let ratio = match (cost(pv), cost(trap)) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "| `{op}` | {} | {} | {ratio} | {} / {} |",
            cell(pv),
            cell(trap),
            exits(pv),
            exits(trap)
        );
    }
    s
}

/// The figures measured on several CPUs at once ([`per_cpu`] names), one row
/// per program and operation: each CPU's cost, the worst, its exits and VMCS
/// accesses per operation, and the worst over the worst of the program that
/// ran the operation on one CPU.
pub fn markdown_cpus(r: &Report) -> String {
    let unit = r.machine.unit();
    // (program, operation, (CPU, cost) per CPU).
    type Row = (String, String, Vec<(u32, String)>);
    let mut rows: Vec<Row> = Vec::new();
    for f in &r.figures {
        let Some((base, k)) = per_cpu(&f.name) else {
            continue;
        };
        let cost = f
            .measured()
            .map_or("-".to_string(), |m| grouped(&num(m.cost())));
        match rows
            .iter_mut()
            .find(|(p, b, _)| *p == f.program && b == base)
        {
            Some((_, _, cells)) => cells.push((k, cost)),
            None => rows.push((f.program.clone(), base.to_string(), vec![(k, cost)])),
        }
    }
    let worst = |p: &str, b: &str| r.get(&format!("{p}/{b}{WORST_SUFFIX}"));
    let one_cpu = |b: &str| {
        rows.iter()
            .find(|(_, rb, cells)| rb == b && cells.len() == 1)
            .and_then(|(p, b, _)| worst(p, b)?.measured().map(Measured::cost))
            .filter(|c| *c > 0.0)
    };
    let mut s = format!(
        "| program | operation | CPUs | {unit}/op on each CPU (CPU 0, 1, ...) | worst | exits/op | VMCS/op | worst / one CPU |\n|---|---|---:|---|---:|---:|---:|---:|\n"
    );
    for (p, b, cells) in &rows {
        let mut cells = cells.clone();
        cells.sort_by_key(|(k, _)| *k);
        let each: Vec<&str> = cells.iter().map(|(_, c)| c.as_str()).collect();
        let w = worst(p, b).map(|f| &f.measure);
        let (wc, exits, vmcs, ratio) = match w {
            Some(Measure::Measured(m)) => (
                grouped(&num(m.cost())),
                opt(m.exits_per_op()),
                opt(m.vmcs_per_op()),
                one_cpu(b).map_or("-".into(), |o| format!("{:.2}", m.cost() / o)),
            ),
            Some(Measure::Missing(why)) => (
                format!("missing: {why}"),
                "-".into(),
                "-".into(),
                "-".into(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            s,
            "| `{p}` | `{b}` | {} | {} | {wc} | {exits} | {vmcs} | {ratio} |",
            cells.len(),
            each.join(", ")
        );
    }
    s
}

/// Every figure of a program whose companions ran on another CPU
/// (`<program>_2cpu`, [`CROSS_CPU_SUFFIX`]) beside the same figure with them
/// on its own CPU: both costs, the ratio, and the exits per operation of each
/// (those of the measuring CPU: the counters are per CPU).
pub fn markdown_cross_cpu(r: &Report) -> String {
    let unit = r.machine.unit();
    let mut s = format!(
        "| figure | same CPU ({unit}/op) | other CPU ({unit}/op) | other / same | exits/op same / other |\n|---|---:|---:|---:|---|\n"
    );
    for f in &r.figures {
        let Some(program) = f.program.strip_suffix(CROSS_CPU_SUFFIX) else {
            continue;
        };
        let same = r.get(&format!("{program}/{}", f.name));
        let cost = |f: Option<&Figure>| f.and_then(Figure::measured).map(Measured::cost);
        let cell = |f: Option<&Figure>| match f.map(|f| &f.measure) {
            Some(Measure::Measured(m)) => grouped(&num(m.cost())),
            Some(Measure::Missing(why)) => format!("- ({why})"),
            None => "-".into(),
        };
        let exits = |f: Option<&Figure>| {
            opt(f
                .and_then(Figure::measured)
                .and_then(Measured::exits_per_op))
        };
        let ratio = match (cost(same), cost(Some(f))) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "| `{program}/{}` | {} | {} | {ratio} | {} / {} |",
            f.name,
            cell(same),
            cell(Some(f)),
            exits(same),
            exits(Some(f))
        );
    }
    s
}

/// `1234.5` as `1,234.5`: the page's style for large numbers.
fn grouped(n: &str) -> String {
    let (int, frac) = n.split_once('.').map_or((n, None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

/// The page with every generated block replaced by its table from `r`. Errors
/// name a block that is unknown, unclosed or absent.
pub fn regenerate_page(page: &str, r: &Report) -> Result<String, String> {
    const OPEN: &str = "<!-- BEGIN GENERATED ";
    let mut out = String::new();
    let mut rest = page;
    let mut seen = Vec::new();
    while let Some(at) = rest.find(OPEN) {
        let line_end = rest[at..]
            .find('\n')
            .map(|n| at + n + 1)
            .ok_or("a BEGIN GENERATED line without its end")?;
        let name = rest[at + OPEN.len()..line_end]
            .trim_end()
            .strip_suffix("-->")
            .map(str::trim)
            .ok_or("a BEGIN GENERATED line without -->")?;
        let body = match name {
            "bench:figures" => markdown_figures(r),
            "bench:pv-vs-trap" => markdown_pv_vs_trap(r),
            "bench:cpus" => markdown_cpus(r),
            "bench:cross-cpu" => markdown_cross_cpu(r),
            other => return Err(format!("unknown generated block {other:?}")),
        };
        let close = format!("<!-- END GENERATED {name} -->");
        let end = rest[line_end..]
            .find(&close)
            .map(|n| line_end + n)
            .ok_or_else(|| format!("{name}: no {close}"))?;
        out.push_str(&rest[..line_end]);
        out.push_str(&body);
        out.push_str(&close);
        rest = &rest[end + close.len()..];
        seen.push(name.to_string());
    }
    out.push_str(rest);
    for b in DOC_BLOCKS {
        if !seen.iter().any(|s| s == b) {
            return Err(format!("the page has no {b} block"));
        }
    }
    Ok(out)
}
