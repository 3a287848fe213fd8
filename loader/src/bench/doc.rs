//! The figures tables of `docs/performance.md`, generated from a report (the
//! committed baseline), so the page cannot drift from the numbers the gate
//! holds. A page marks each generated table with
//! `<!-- BEGIN GENERATED bench:NAME -->` and `<!-- END GENERATED bench:NAME -->`;
//! [`regenerate_page`] replaces what lies between and leaves the prose alone.

use super::*;

/// The generated blocks a page may hold, by name.
pub const DOC_BLOCKS: [&str; 2] = ["bench:figures", "bench:pv-vs-trap"];

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
