//! `cargo keel bench`: Keel's performance picture, and the gate that keeps it.
//!
//! Every guest program of category `bench` measures something with the guest's TSC
//! and prints its figures as `KEEL-BENCH` lines, a figure's fields spread over up
//! to three short lines (the hypervisor cuts console lines at 160 bytes; the guest
//! side is `keel_guest::bench`, which describes the format; [`parse_line`] and
//! [`parse_console`] read it). Older-style lines (`bench NAME median M min A max B
//! ticks (n=N)`) are read too ([`parse_legacy_line`]), without counters, so a
//! bench program that does not use the library is still picked up. This module
//! runs those programs, turns their lines into figures, prints a table, writes
//! JSON, and compares with a committed baseline.
//!
//! ## Why the numbers can be trusted to 2%
//! Under Bochs the TSC advances exactly one tick per emulated instruction, and a
//! run is byte-for-byte repeatable: a guest's RDTSC delta is an exact instruction
//! count, the same on every machine and every run. So a baseline produced once
//! (with the same Bochs CPU model, which decides what the guest and the hypervisor
//! execute) is an exact expectation, and a 2% tolerance only absorbs deliberate
//! small changes, never noise. On KVM (`--backend kvm`) the TSC counts real cycles;
//! the tool then boots each program several times (`--runs`, default 5) and
//! reports, for every figure, the median of the runs' medians.
//!
//! ## What a figure is
//! A program reports, per figure, the distribution of `n` samples of `per`
//! operations each, and the VM exits, VMREADs and VMWRITEs the hypervisor counted
//! over all samples (`keel_debug_op`, `docs/abi/debug.md`). The tool derives the
//! per-operation numbers: cost (median / per), exits per operation, VMCS accesses
//! per operation and per exit, and the ratio to the floor (the figure named
//! [`FLOOR`]). A figure may also be reported as missing (the hypervisor lacks
//! what it measures), which the table shows and the gate tracks.
//!
//! ## The gate
//! `--check` compares three numbers of every figure with the baseline: the cost,
//! the exits per operation and the VMCS accesses per operation. Any of them worse
//! by more than [`TOLERANCE`] fails the check; any better by more than that is
//! listed as an improvement, with the suggestion to record it deliberately
//! (`--update-baseline`, a reviewed commit of `bench/baseline.json`). A figure in
//! the baseline that no longer appears (or is now missing) fails too: a benchmark
//! that stopped measuring is not a pass. A new figure is reported, not failed.

use crate::backend::Backend;
use crate::runner::{self, TestProgram};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The marker at the start of a figure line.
pub const MARKER: &str = "KEEL-BENCH";
/// The line format this parser reads.
pub const LINE_FORMAT: &str = "v1";
/// The JSON format this tool writes and reads (reports and the baseline).
pub const JSON_FORMAT: &str = "keel-bench/1";
/// The figure every other is compared with: the hypervisor's shortest path.
pub const FLOOR: &str = "bench_hypercalls/floor";
/// How much worse a figure may get before `--check` fails: 2%.
pub const TOLERANCE: f64 = 0.02;
/// Where the committed baseline lives, relative to the workspace root.
pub const BASELINE_PATH: &str = "bench/baseline.json";
/// Runs per program on a backend whose figures vary (KVM).
pub const DEFAULT_KVM_RUNS: usize = 5;

/// One measured figure, as a guest reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// Samples.
    pub n: u64,
    /// Operations per sample.
    pub per: u64,
    /// Sample distribution (TSC ticks per sample).
    pub min: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest sample.
    pub max: f64,
    /// Exits over all samples (`None`: the hypervisor has no counters).
    pub exits: Option<f64>,
    /// VMREADs over all samples.
    pub vmreads: Option<f64>,
    /// VMWRITEs over all samples.
    pub vmwrites: Option<f64>,
    /// Exits by basic exit reason over all samples.
    pub reasons: BTreeMap<u32, f64>,
    /// The guest's counter reads around the figure (`marks=first,pairs,calibration`):
    /// under the nested backend, which of L0's marks bracket it.
    pub marks: Option<(u64, u64, u64)>,
    /// Under the nested backend: exits to L0 (the KVM beneath Keel) over all
    /// samples, whichever level was running.
    pub l0_exits: Option<f64>,
    /// Under the nested backend: the exits L0 reflected to Keel over all samples.
    pub l0_reflected: Option<f64>,
}

impl Measured {
    /// Operations over all samples.
    fn ops(&self) -> f64 {
        (self.n as f64) * (self.per as f64)
    }
    /// TSC ticks per operation (median sample / per).
    pub fn cost(&self) -> f64 {
        self.median / self.per as f64
    }
    /// VM exits per operation.
    pub fn exits_per_op(&self) -> Option<f64> {
        self.exits.map(|e| e / self.ops())
    }
    /// VMREADs + VMWRITEs per operation.
    pub fn vmcs_per_op(&self) -> Option<f64> {
        Some((self.vmreads? + self.vmwrites?) / self.ops())
    }
    /// Exits to L0 per operation (nested backend).
    pub fn l0_exits_per_op(&self) -> Option<f64> {
        self.l0_exits.map(|e| e / self.ops())
    }
    /// VMREADs + VMWRITEs per exit.
    pub fn vmcs_per_exit(&self) -> Option<f64> {
        let e = self.exits?;
        (e > 0.0).then(|| (self.vmreads.unwrap_or(0.0) + self.vmwrites.unwrap_or(0.0)) / e)
    }
}

/// What a guest said about a figure.
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    /// Measured.
    Measured(Measured),
    /// Not measurable here, and why.
    Missing(String),
}

/// A figure: which program, which name, what was measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// The program that reported it.
    pub program: String,
    /// Its name within the program.
    pub name: String,
    /// The measurement.
    pub measure: Measure,
}

impl Figure {
    /// `program/name`: unique across the suite, the key in the baseline.
    pub fn key(&self) -> String {
        format!("{}/{}", self.program, self.name)
    }
    /// The measurement, if measured.
    pub fn measured(&self) -> Option<&Measured> {
        match &self.measure {
            Measure::Measured(m) => Some(m),
            Measure::Missing(_) => None,
        }
    }
}

/// What one `KEEL-BENCH` line says about its figure.
#[derive(Clone, Debug, PartialEq)]
pub enum LineBody {
    /// `missing=<why>`.
    Missing(String),
    /// `key=value` fields (a figure's fields may be spread over several lines).
    Fields(Vec<(String, String)>),
}

/// Parse one console line. `None` when it is not a figure line; `Some(Err)` when
/// it is one but malformed (a guest bug the tool reports, not skips).
pub fn parse_line(line: &str) -> Option<Result<(String, LineBody), String>> {
    let at = line.find(MARKER)?;
    let rest = line[at + MARKER.len()..].trim();
    Some(parse_fields(rest))
}

fn parse_fields(rest: &str) -> Result<(String, LineBody), String> {
    let (version, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if version != LINE_FORMAT {
        return Err(format!(
            "line format {version:?}, this tool reads {LINE_FORMAT}"
        ));
    }
    let rest = rest.trim();
    let name_part = rest.strip_prefix("name=").ok_or("no name=")?;
    let (name, rest) = name_part.split_once(' ').unwrap_or((name_part, ""));
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
    {
        return Err(format!("bad figure name {name:?}"));
    }
    let rest = rest.trim();
    // `missing=` takes the rest of the line, spaces and all.
    if let Some(why) = rest.strip_prefix("missing=") {
        return Ok((name.to_string(), LineBody::Missing(why.trim().to_string())));
    }
    let mut fields = Vec::new();
    for word in rest.split_whitespace() {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("{word:?} is not key=value"))?;
        fields.push((k.to_string(), v.to_string()));
    }
    if fields.is_empty() {
        return Err("no fields".into());
    }
    Ok((name.to_string(), LineBody::Fields(fields)))
}

/// A figure's fields, collected from its lines.
#[derive(Default)]
struct Collected {
    missing: Option<String>,
    fields: BTreeMap<String, String>,
    reasons: BTreeMap<u32, f64>,
}

impl Collected {
    fn add(&mut self, body: LineBody) -> Result<(), String> {
        match body {
            LineBody::Missing(why) => {
                if self.missing.is_some() || !self.fields.is_empty() {
                    return Err("reported twice".into());
                }
                self.missing = Some(why);
            }
            LineBody::Fields(fs) => {
                if self.missing.is_some() {
                    return Err("both measured and missing".into());
                }
                for (k, v) in fs {
                    if k == "reasons" {
                        for pair in v.split(',') {
                            let (r, c) = pair
                                .split_once(':')
                                .and_then(|(r, c)| {
                                    Some((r.parse::<u32>().ok()?, c.parse::<u64>().ok()?))
                                })
                                .ok_or_else(|| format!("bad reasons entry {pair:?}"))?;
                            if self.reasons.insert(r, c as f64).is_some() {
                                return Err(format!("exit reason {r} reported twice"));
                            }
                        }
                    } else if self.fields.insert(k.clone(), v).is_some() {
                        return Err(format!("{k}= reported twice"));
                    }
                }
            }
        }
        Ok(())
    }

    fn int(&self, k: &str) -> Result<u64, String> {
        let v = self.fields.get(k).ok_or_else(|| format!("no {k}="))?;
        v.parse::<u64>()
            .map_err(|_| format!("{k}={v:?} is not a number"))
    }

    /// A counter: absent or `-` is "no counters".
    fn counter(&self, k: &str) -> Result<Option<f64>, String> {
        match self.fields.get(k).map(String::as_str) {
            None | Some("-") => Ok(None),
            Some(_) => Ok(Some(self.int(k)? as f64)),
        }
    }

    /// `marks=first,pairs,calibration`, if reported.
    fn marks(&self) -> Result<Option<(u64, u64, u64)>, String> {
        let Some(v) = self.fields.get("marks") else {
            return Ok(None);
        };
        let n: Vec<u64> = v
            .split(',')
            .map(|x| x.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("bad marks={v:?}"))?;
        match n.as_slice() {
            [a, b, c] => Ok(Some((*a, *b, *c))),
            _ => Err(format!("bad marks={v:?}")),
        }
    }

    fn finish(self) -> Result<Measure, String> {
        if let Some(why) = self.missing {
            return Ok(Measure::Missing(why));
        }
        for k in self.fields.keys() {
            if ![
                "n", "per", "min", "p10", "median", "p90", "max", "exits", "vmreads", "vmwrites",
                "marks",
            ]
            .contains(&k.as_str())
            {
                return Err(format!("unknown field {k}="));
            }
        }
        let m = Measured {
            n: self.int("n")?,
            per: self.int("per")?,
            min: self.int("min")? as f64,
            p10: self.int("p10")? as f64,
            median: self.int("median")? as f64,
            p90: self.int("p90")? as f64,
            max: self.int("max")? as f64,
            exits: self.counter("exits")?,
            vmreads: self.counter("vmreads")?,
            vmwrites: self.counter("vmwrites")?,
            reasons: self.reasons.clone(),
            marks: self.marks()?,
            l0_exits: None,
            l0_reflected: None,
        };
        if m.n == 0 || m.per == 0 {
            return Err("n and per must be positive".into());
        }
        if !(m.min <= m.p10 && m.p10 <= m.median && m.median <= m.p90 && m.p90 <= m.max) {
            return Err("min <= p10 <= median <= p90 <= max does not hold".into());
        }
        Ok(Measure::Measured(m))
    }
}

/// Parse the figure lines of one figure (for tests and simple callers).
pub fn parse_figure(lines: &[&str]) -> Result<(String, Measure), String> {
    let figs = parse_console("-", &lines.join("\n"))?;
    match figs.as_slice() {
        [f] => Ok((f.name.clone(), f.measure.clone())),
        _ => Err(format!("{} figures, not one", figs.len())),
    }
}

/// The marker of the older, human-oriented figure line some bench programs print
/// (`bench NAME median M min A max B ticks (n=N)`, as `bench_exits` once did).
pub const LEGACY_MARKER: &str = "bench ";

/// Parse an older-style line (`[(dN) ]bench NAME median M min A max B ticks
/// (n=N)`), so that a bench program that does not use `keel_guest::bench` is
/// still picked up: without counters, with p10/p90 unknown (reported as min and
/// max), its name lower-cased with every other character made `_`.
pub fn parse_legacy_line(line: &str) -> Option<Result<(String, Measure), String>> {
    let text = match line.strip_prefix("(d") {
        Some(rest) => rest.split_once(") ")?.1,
        None => line,
    };
    let rest = text.strip_prefix(LEGACY_MARKER)?;
    let (name, nums) = rest.split_once(" median ")?;
    let mut clean = String::new();
    for c in name.trim().chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' {
            c
        } else {
            '_'
        };
        if !(c == '_' && (clean.is_empty() || clean.ends_with('_'))) {
            clean.push(c);
        }
    }
    let name = clean.trim_end_matches('_').to_string();
    let words: Vec<&str> = nums.split_whitespace().collect();
    let parsed = (|| -> Result<Measured, String> {
        let n = |i: usize| -> Result<f64, String> {
            words
                .get(i)
                .and_then(|w| w.parse::<u64>().ok())
                .map(|v| v as f64)
                .ok_or_else(|| format!("bad number at word {i} of {nums:?}"))
        };
        if words.get(1) != Some(&"min") || words.get(3) != Some(&"max") {
            return Err(format!("not `median M min A max B`: {nums:?}"));
        }
        let count = words
            .iter()
            .find_map(|w| {
                w.strip_prefix("(n=")?
                    .strip_suffix(')')?
                    .parse::<u64>()
                    .ok()
            })
            .ok_or("no (n=N)")?;
        let (median, min, max) = (n(0)?, n(2)?, n(4)?);
        Ok(Measured {
            n: count,
            per: 1,
            min,
            p10: min,
            median,
            p90: max,
            max,
            exits: None,
            vmreads: None,
            vmwrites: None,
            reasons: BTreeMap::new(),
            marks: None,
            l0_exits: None,
            l0_reflected: None,
        })
    })();
    Some(match parsed {
        _ if name.is_empty() => Err("empty figure name".into()),
        Ok(m) if m.n > 0 && m.min <= m.median && m.median <= m.max => {
            Ok((name, Measure::Measured(m)))
        }
        Ok(_) => Err("min <= median <= max does not hold".into()),
        Err(e) => Err(e),
    })
}

/// L0's exits charged to a figure, from the marks of a traced run: L0's exits
/// between marks (`l0[m]` = exits from mark m-1 to mark m), and the figure's
/// `marks=first,pairs,calibration`. Each pair (first + 2i, first + 2i + 1) is a
/// counter read before and after (part of) the measured loop; the back-to-back
/// calibration pair costs what a pair adds by itself, so it is subtracted once
/// per pair. `None` when the trace does not reach the marks.
pub fn l0_for_marks(l0: &[(u64, u64)], marks: (u64, u64, u64)) -> Option<(f64, f64)> {
    let (first, pairs, cal) = marks;
    let at = |m: u64| l0.get(usize::try_from(m).ok()?).copied();
    let (ce, cn) = at(cal + 1)?;
    let (mut e, mut n) = (0f64, 0f64);
    for i in 0..pairs {
        let (pe, pn) = at(first + 2 * i + 1)?;
        e += pe as f64 - ce as f64;
        n += pn as f64 - cn as f64;
    }
    Some((e.max(0.0), n.max(0.0)))
}

/// Every figure a program printed on `console`, in the order first reported. A
/// malformed line, a field reported twice or an incomplete figure is an error
/// naming the program.
pub fn parse_console(program: &str, console: &str) -> Result<Vec<Figure>, String> {
    let mut order: Vec<String> = Vec::new();
    let mut collected: BTreeMap<String, Collected> = BTreeMap::new();
    let mut legacy: Vec<(String, Measure)> = Vec::new();
    for line in crate::console::lines(console) {
        if let Some(parsed) = parse_line(line) {
            let (name, body) = parsed.map_err(|e| format!("{program}: {e} in {line:?}"))?;
            if !collected.contains_key(&name) {
                order.push(name.clone());
            }
            collected
                .entry(name.clone())
                .or_default()
                .add(body)
                .map_err(|e| format!("{program}: figure {name}: {e}"))?;
        } else if let Some(parsed) = parse_legacy_line(line) {
            let (name, m) = parsed.map_err(|e| format!("{program}: {e} in {line:?}"))?;
            order.push(name.clone());
            legacy.push((name, m));
        }
    }
    let mut figures: Vec<Figure> = Vec::new();
    for name in order {
        if figures.iter().any(|f| f.name == name) {
            return Err(format!("{program}: figure {name} reported twice"));
        }
        let measure = match collected.remove(&name) {
            Some(c) => c
                .finish()
                .map_err(|e| format!("{program}: figure {name}: {e}"))?,
            None => match legacy.iter().position(|(n, _)| *n == name) {
                Some(i) => legacy.remove(i).1,
                None => return Err(format!("{program}: figure {name} reported twice")),
            },
        };
        figures.push(Figure {
            program: program.to_string(),
            name,
            measure,
        });
    }
    Ok(figures)
}

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

// ---------------------------------------------------------------------------
// The table

fn num(v: f64) -> String {
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

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), num)
}

/// The change from `base` to `now` in percent, as the table shows it.
fn percent(base: f64, now: f64) -> String {
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

// ---------------------------------------------------------------------------
// JSON

/// A number as the JSON files hold it: an integral value without a fraction
/// (`174`, not `174.0`, as the files have always had it), others in Rust's
/// shortest round-trip form; not finite is `null`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Num(f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if !v.is_finite() {
            s.serialize_none()
        } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
            s.serialize_i64(v as i64)
        } else {
            s.serialize_f64(v)
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        f64::deserialize(d).map(Num)
    }
}

/// The file form of a report (also the baseline's), as written: stable key
/// order, so a baseline update reads well in a diff; the derived numbers (cost,
/// per-operation ratios, the floor ratio) are written for readers and not read
/// back.
#[derive(Serialize)]
struct ReportFile {
    format: &'static str,
    backend: String,
    cpu_model: String,
    ips: u64,
    unit: &'static str,
    runs: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    rustc: Option<String>,
    figures: Vec<FigureFile>,
}

#[derive(Serialize)]
struct FigureFile {
    key: String,
    program: String,
    name: String,
    #[serde(flatten)]
    measure: MeasureFile,
}

#[derive(Serialize)]
#[serde(untagged)]
enum MeasureFile {
    Missing {
        missing: String,
    },
    Measured {
        n: u64,
        per: u64,
        cost: Num,
        min: Num,
        p10: Num,
        median: Num,
        p90: Num,
        max: Num,
        exits: Option<Num>,
        vmreads: Option<Num>,
        vmwrites: Option<Num>,
        exits_per_op: Option<Num>,
        vmcs_per_op: Option<Num>,
        vmcs_per_exit: Option<Num>,
        vs_floor: Option<Num>,
        reasons: BTreeMap<u32, Num>,
        /// Nested backend only: exits to L0 per operation.
        #[serde(skip_serializing_if = "Option::is_none")]
        l0_exits_per_op: Option<Num>,
    },
}

/// The file form as read: what [`to_json`] writes less the derived numbers.
#[derive(Deserialize)]
struct ReportIn {
    backend: String,
    cpu_model: String,
    ips: u64,
    runs: usize,
    #[serde(default)]
    rustc: Option<String>,
    figures: Vec<FigureIn>,
}

#[derive(Deserialize)]
struct FigureIn {
    program: String,
    name: String,
    missing: Option<String>,
    n: Option<u64>,
    per: Option<u64>,
    min: Option<f64>,
    p10: Option<f64>,
    median: Option<f64>,
    p90: Option<f64>,
    max: Option<f64>,
    exits: Option<f64>,
    vmreads: Option<f64>,
    vmwrites: Option<f64>,
    #[serde(default)]
    reasons: BTreeMap<u32, f64>,
}

impl FigureIn {
    fn figure(self) -> Result<Figure, String> {
        let key = format!("{}/{}", self.program, self.name);
        let need = |v: Option<f64>, k: &str| v.ok_or_else(|| format!("figure {key}: no {k:?}"));
        let measure = match self.missing {
            Some(why) => Measure::Missing(why),
            None => Measure::Measured(Measured {
                n: self.n.ok_or_else(|| format!("figure {key}: no \"n\""))?,
                per: self
                    .per
                    .ok_or_else(|| format!("figure {key}: no \"per\""))?,
                min: need(self.min, "min")?,
                p10: need(self.p10, "p10")?,
                median: need(self.median, "median")?,
                p90: need(self.p90, "p90")?,
                max: need(self.max, "max")?,
                exits: self.exits,
                vmreads: self.vmreads,
                vmwrites: self.vmwrites,
                reasons: self.reasons,
                marks: None,
                l0_exits: None,
                l0_reflected: None,
            }),
        };
        Ok(Figure {
            program: self.program,
            name: self.name,
            measure,
        })
    }
}

/// The report as JSON (also the baseline's format).
pub fn to_json(r: &Report) -> String {
    let floor = r.floor().filter(|fl| *fl > 0.0);
    let file = ReportFile {
        format: JSON_FORMAT,
        backend: r.machine.backend.clone(),
        cpu_model: r.machine.cpu_model.clone(),
        ips: r.machine.ips,
        unit: r.machine.unit(),
        runs: r.runs,
        rustc: r.rustc.clone(),
        figures: r
            .figures
            .iter()
            .map(|f| FigureFile {
                key: f.key(),
                program: f.program.clone(),
                name: f.name.clone(),
                measure: match &f.measure {
                    Measure::Missing(why) => MeasureFile::Missing {
                        missing: why.clone(),
                    },
                    Measure::Measured(x) => MeasureFile::Measured {
                        n: x.n,
                        per: x.per,
                        cost: Num(x.cost()),
                        min: Num(x.min),
                        p10: Num(x.p10),
                        median: Num(x.median),
                        p90: Num(x.p90),
                        max: Num(x.max),
                        exits: x.exits.map(Num),
                        vmreads: x.vmreads.map(Num),
                        vmwrites: x.vmwrites.map(Num),
                        exits_per_op: x.exits_per_op().map(Num),
                        vmcs_per_op: x.vmcs_per_op().map(Num),
                        vmcs_per_exit: x.vmcs_per_exit().map(Num),
                        vs_floor: floor.map(|fl| Num(x.cost() / fl)),
                        reasons: x.reasons.iter().map(|(k, v)| (*k, Num(*v))).collect(),
                        l0_exits_per_op: x.l0_exits_per_op().map(Num),
                    },
                },
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&file).expect("a report always serializes");
    s.push('\n');
    s
}

/// Read a report (or the baseline) written by [`to_json`].
pub fn from_json(text: &str) -> Result<Report, String> {
    #[derive(Deserialize)]
    struct Format {
        format: String,
    }
    // The format first, so another format is named as such, not as a missing field.
    let Format { format } = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if format != JSON_FORMAT {
        return Err(format!(
            "format {format:?}, this tool reads {JSON_FORMAT:?}"
        ));
    }
    let file: ReportIn = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(Report {
        machine: MachineId {
            backend: file.backend,
            cpu_model: file.cpu_model,
            ips: file.ips,
        },
        runs: file.runs,
        rustc: file.rustc,
        figures: file
            .figures
            .into_iter()
            .map(FigureIn::figure)
            .collect::<Result<_, _>>()?,
    })
}

// ---------------------------------------------------------------------------
// The comparison

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
fn metrics(m: &Measured) -> [(&'static str, Option<f64>); 3] {
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

// ---------------------------------------------------------------------------
// Choosing what to run

/// The bench programs to boot for `patterns` (none: all). A pattern names a
/// program (`bench_hypercalls`), a figure (`floor`) or a key
/// (`bench_hypercalls/floor`), with `*`/`?` wildcards. A pattern that matches no
/// program name may match a figure name: then every program runs and the
/// figures are filtered afterwards ([`keep_figure`]).
pub fn select_programs(all: &[TestProgram], patterns: &[String]) -> Vec<TestProgram> {
    let bench: Vec<TestProgram> = all
        .iter()
        .filter(|t| t.category == keel_abi::note::TestCategory::Bench)
        .cloned()
        .collect();
    if patterns.is_empty() {
        return bench;
    }
    let prog_of = |p: &str| p.split_once('/').map_or(p, |(a, _)| a).to_string();
    let by_program = |p: &String| {
        bench
            .iter()
            .any(|t| runner::glob_match(&prog_of(p), &t.name))
    };
    if !patterns.iter().all(by_program) {
        return bench;
    }
    bench
        .into_iter()
        .filter(|t| {
            patterns
                .iter()
                .any(|p| runner::glob_match(&prog_of(p), &t.name))
        })
        .collect()
}

/// The patterns that select nothing: no bench program, and no figure among
/// `known` (the figures of the baseline, or of a run). A pattern with a `/`
/// must match a `program/figure` key.
pub fn unmatched<'p>(
    all: &[TestProgram],
    known: &[Figure],
    patterns: &'p [String],
) -> Vec<&'p str> {
    let bench = || {
        all.iter()
            .filter(|t| t.category == keel_abi::note::TestCategory::Bench)
    };
    patterns
        .iter()
        .filter(|p| {
            let program_matches =
                !p.contains('/') && bench().any(|t| runner::glob_match(p, &t.name));
            !program_matches
                && !known
                    .iter()
                    .any(|f| keep_figure(f, std::slice::from_ref(*p)))
        })
        .map(String::as_str)
        .collect()
}

/// Does figure `f` match any of `patterns` (none: all)?
pub fn keep_figure(f: &Figure, patterns: &[String]) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| {
            if p.contains('/') {
                runner::glob_match(p, &f.key())
            } else {
                runner::glob_match(p, &f.program) || runner::glob_match(p, &f.name)
            }
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn l0_exits_from_marks() {
        // Mark 0: the run's start to the first calibration read; 0 -> 1: the
        // calibration pair (3 exits: the tail of one read, the head of the next,
        // the mark itself); then a figure over pairs (2, 3) and (4, 5).
        let l0 = [(50, 9), (3, 1), (8, 2), (2003, 1001), (9, 3), (2003, 1001)];
        assert_eq!(super::l0_for_marks(&l0, (2, 2, 0)), Some((4000.0, 2000.0)));
        // A single pair.
        assert_eq!(super::l0_for_marks(&l0, (2, 1, 0)), Some((2000.0, 1000.0)));
        // Marks the trace does not reach: no count rather than a wrong one.
        assert_eq!(super::l0_for_marks(&l0, (4, 2, 0)), None);
        assert_eq!(super::l0_for_marks(&[], (0, 1, 0)), None);
    }

    #[test]
    fn marks_field_parses() {
        let (_, m) = super::parse_figure(&[
            "KEEL-BENCH v1 name=x n=2 per=1 min=1 p10=1 median=1 p90=1 max=1",
            "KEEL-BENCH v1 name=x exits=2 vmreads=6 vmwrites=2",
            "KEEL-BENCH v1 name=x marks=2,1,0",
        ])
        .unwrap();
        let super::Measure::Measured(m) = m else {
            panic!("not measured")
        };
        assert_eq!(m.marks, Some((2, 1, 0)));
        assert!(super::parse_figure(&[
            "KEEL-BENCH v1 name=x n=2 per=1 min=1 p10=1 median=1 p90=1 max=1",
            "KEEL-BENCH v1 name=x marks=2,1",
        ])
        .is_err());
    }

    use super::*;

    const LINE: &str = "(d1) KEEL-BENCH v1 name=xen_version n=1000 per=1 min=170 p10=171 median=174 p90=180 max=300\r\n(d1) KEEL-BENCH v1 name=xen_version exits=1000 vmreads=3000 vmwrites=1000\r\n(d1) KEEL-BENCH v1 name=xen_version reasons=18:990,0:5\n(d1) KEEL-BENCH v1 name=xen_version reasons=30:5\n";

    fn measured(median: f64, exits: f64, vmcs: f64) -> Measure {
        Measure::Measured(Measured {
            n: 10,
            per: 1,
            min: median,
            p10: median,
            median,
            p90: median,
            max: median,
            exits: Some(exits * 10.0),
            vmreads: Some(vmcs * 10.0),
            vmwrites: Some(0.0),
            reasons: BTreeMap::from([(18, exits * 10.0)]),
            marks: None,
            l0_exits: None,
            l0_reflected: None,
        })
    }

    fn fig(program: &str, name: &str, m: Measure) -> Figure {
        Figure {
            program: program.into(),
            name: name.into(),
            measure: m,
        }
    }

    fn machine() -> MachineId {
        MachineId {
            backend: "bochs".into(),
            cpu_model: "corei7_skylake_x".into(),
            ips: 2_000_000,
        }
    }

    fn report(figures: Vec<Figure>) -> Report {
        Report {
            machine: machine(),
            runs: 1,
            rustc: Some("rustc 1.95.0 (59807616e 2026-04-14)".into()),
            figures,
        }
    }

    #[test]
    fn parses_a_figure_from_its_lines() {
        let figs = parse_console("bench_hypercalls", LINE).unwrap();
        assert_eq!(figs.len(), 1);
        assert_eq!(figs[0].key(), "bench_hypercalls/xen_version");
        let m = figs[0].measured().unwrap();
        assert_eq!((m.n, m.per, m.median, m.max), (1000, 1, 174.0, 300.0));
        assert_eq!(m.exits_per_op(), Some(1.0));
        assert_eq!(m.vmcs_per_op(), Some(4.0));
        assert_eq!(m.vmcs_per_exit(), Some(4.0));
        assert_eq!(
            m.reasons,
            BTreeMap::from([(0, 5.0), (18, 990.0), (30, 5.0)])
        );
        assert_eq!(m.cost(), 174.0);
        // Lines of other figures may come in between.
        let (name, _) = parse_figure(&[
            "KEEL-BENCH v1 name=a n=1 per=1 min=1 p10=1 median=1 p90=1 max=1",
            "KEEL-BENCH v1 name=a exits=- vmreads=- vmwrites=-",
        ])
        .unwrap();
        assert_eq!(name, "a");
    }

    #[test]
    fn parses_missing_and_counterless_figures() {
        let (name, m) = parse_figure(&[
            "(d1) KEEL-BENCH v1 name=multicall_16 missing=multicall returned -38 (ENOSYS)",
        ])
        .unwrap();
        assert_eq!(name, "multicall_16");
        assert_eq!(
            m,
            Measure::Missing("multicall returned -38 (ENOSYS)".into())
        );
        let (_, m) = parse_figure(&[
            "KEEL-BENCH v1 name=mmu_update_512 n=10 per=512 min=51200 p10=51200 median=51200 p90=51200 max=51200",
            "KEEL-BENCH v1 name=mmu_update_512 exits=- vmreads=- vmwrites=-",
        ])
        .unwrap();
        let Measure::Measured(m) = m else { panic!() };
        assert_eq!(m.cost(), 100.0);
        assert_eq!(m.exits_per_op(), None);
        assert_eq!(m.vmcs_per_exit(), None);
    }

    #[test]
    fn rejects_malformed_figures_and_ignores_other_lines() {
        assert!(parse_line("(d1) hello").is_none());
        for bad in [
            "KEEL-BENCH v2 name=x n=1",
            "KEEL-BENCH v1 n=1",
            "KEEL-BENCH v1 name=x",
            "KEEL-BENCH v1 name=Bad n=1 per=1 min=1 p10=1 median=1 p90=1 max=1",
            "KEEL-BENCH v1 name=x n=1 per=1 min=1 p10=1 median=1 p90=1 max=1 junk",
        ] {
            assert!(parse_line(bad).unwrap().is_err(), "{bad}");
        }
        let full = "KEEL-BENCH v1 name=x n=1 per=1 min=1 p10=1 median=1 p90=1 max=1";
        for bad in [
            // max missing
            vec!["KEEL-BENCH v1 name=x n=1 per=1 min=1 p10=1 median=1 p90=1"],
            vec!["KEEL-BENCH v1 name=x n=1 per=0 min=1 p10=1 median=1 p90=1 max=1"],
            vec!["KEEL-BENCH v1 name=x n=1 per=1 min=5 p10=1 median=1 p90=1 max=1"],
            vec!["KEEL-BENCH v1 name=x n=1 per=1 min=1 p10=1 median=x p90=1 max=1"],
            vec![full, "KEEL-BENCH v1 name=x reasons=18"],
            vec![
                full,
                "KEEL-BENCH v1 name=x reasons=18:1",
                "KEEL-BENCH v1 name=x reasons=18:1",
            ],
            vec![full, "KEEL-BENCH v1 name=x median=2"],
            vec![full, "KEEL-BENCH v1 name=x colour=blue"],
            vec![full, "KEEL-BENCH v1 name=x missing=no"],
        ] {
            assert!(parse_figure(&bad).is_err(), "{bad:?}");
        }
        let twice = format!("{LINE}\n{LINE}\n");
        assert!(parse_console("p", &twice).unwrap_err().contains("twice"));
        let figs = parse_console("p", &format!("(d1) boot\r\n{LINE}\r\n")).unwrap();
        assert_eq!(figs.len(), 1);
    }

    #[test]
    fn reads_older_style_lines_too() {
        let c = "(d1) bench rdmsr FEATURE_CONTROL (emul)   median    210 min    209 max    400 ticks (n=400)\n(d1) bench console ......\n(d1) bench: no counters\n";
        let figs = parse_console("bench_policy", c).unwrap();
        assert_eq!(figs.len(), 1);
        assert_eq!(figs[0].key(), "bench_policy/rdmsr_feature_control_emul");
        let m = figs[0].measured().unwrap();
        assert_eq!((m.median, m.min, m.max, m.n), (210.0, 209.0, 400.0, 400));
        assert_eq!(m.exits, None);
        assert!(
            parse_legacy_line("bench x median 5 min 9 max 1 ticks (n=1)")
                .unwrap()
                .is_err()
        );
        assert!(parse_legacy_line("bench x median 5 min 1 max 9 ticks")
            .unwrap()
            .is_err());
    }

    #[test]
    fn json_round_trip() {
        let r = report(vec![
            fig("bench_hypercalls", "floor", measured(131.0, 1.0, 4.0)),
            fig("bench_hypercalls", "xen_version", measured(177.0, 1.0, 4.0)),
            fig(
                "bench_hypercalls",
                "multicall_16",
                Measure::Missing("not \"there\"\n".into()),
            ),
            fig(
                "bench_mmu",
                "update_512",
                Measure::Measured(Measured {
                    n: 3,
                    per: 512,
                    min: 1.0,
                    p10: 2.0,
                    median: 76801.0,
                    p90: 76802.0,
                    max: 1e9,
                    exits: None,
                    vmreads: None,
                    vmwrites: None,
                    reasons: BTreeMap::new(),
                    marks: None,
                    l0_exits: None,
                    l0_reflected: None,
                }),
            ),
        ]);
        let text = to_json(&r);
        assert!(text.contains("\"vs_floor\": 1.3511"), "{text}");
        let back = from_json(&text).unwrap();
        assert_eq!(back, r);
        assert!(from_json("{}").is_err());
        assert!(from_json("not json").is_err());
        let no_median = text.replacen("\"median\": 131,", "", 1);
        assert!(from_json(&no_median).is_err(), "{no_median}");
        // Integral numbers are written without a fraction, as they always were.
        assert!(text.contains("\"median\": 131,"), "{text}");
        assert!(text.contains("\"exits\": null"), "{text}");
        assert!(from_json(&text.replace(JSON_FORMAT, "other/9")).is_err());
    }

    /// The committed baseline (written by the hand-made writer this replaced, and
    /// by this one since) reads, and writing it back loses nothing.
    #[test]
    fn the_committed_baseline_reads() {
        let ws = crate::cargo::Workspace::locate().unwrap();
        let text = std::fs::read_to_string(ws.root().join(BASELINE_PATH)).unwrap();
        let base = from_json(&text).unwrap();
        assert!(base.figures.len() > 10);
        assert!(base.floor().is_some());
        assert_eq!(from_json(&to_json(&base)).unwrap(), base);
    }

    #[test]
    fn check_fails_on_a_regression_of_more_than_two_percent() {
        let base = report(vec![
            fig("b", "floor", measured(100.0, 1.0, 4.0)),
            fig("b", "null", measured(200.0, 1.0, 4.0)),
        ]);
        // +2% exactly: within the tolerance.
        let same = report(vec![
            fig("b", "floor", measured(102.0, 1.0, 4.0)),
            fig("b", "null", measured(200.0, 1.0, 4.0)),
        ]);
        let c = compare(&base, &same, |_| true, TOLERANCE);
        assert!(c.ok(), "{}", c.render());
        assert_eq!(
            c.compared,
            ["b/floor: 100 -> 102 (+2.0%)", "b/null: 200 -> 200 (0.0%)"]
        );
        assert!(
            c.render().contains("\n  b/null: 200 -> 200 (0.0%)\n"),
            "{}",
            c.render()
        );
        assert!(c.render().contains("2 figure(s) compared"));
        // +2.5%: fails, and says which figure and number.
        let worse = report(vec![
            fig("b", "floor", measured(100.0, 1.0, 4.0)),
            fig("b", "null", measured(205.0, 1.0, 4.0)),
        ]);
        let c = compare(&base, &worse, |_| true, TOLERANCE);
        assert!(!c.ok());
        assert_eq!(c.regressions.len(), 1);
        assert_eq!(c.regressions[0].key, "b/null");
        assert_eq!(c.regressions[0].metric, "cost");
        let text = c.render();
        assert!(text.contains("REGRESSIONS"), "{text}");
        assert!(text.contains("b/null cost: 200 -> 205 (+2.5%)"), "{text}");
        assert!(text.contains("CHECK FAILED"), "{text}");
        // More VMCS accesses at the same cost also fail; an exit where there was
        // none fails whatever the tolerance.
        let vmcs = report(vec![
            fig("b", "floor", measured(100.0, 1.0, 5.0)),
            fig("b", "null", measured(200.0, 1.0, 4.0)),
        ]);
        let c = compare(&base, &vmcs, |_| true, TOLERANCE);
        assert_eq!(c.regressions[0].metric, "VMCS/op");
        let zero = report(vec![fig("b", "pvclock", measured(50.0, 0.0, 0.0))]);
        let one = report(vec![fig("b", "pvclock", measured(50.0, 0.01, 0.0))]);
        let c = compare(&zero, &one, |_| true, TOLERANCE);
        assert_eq!(c.regressions.len(), 1);
        assert!(c.render().contains("from zero"));
    }

    #[test]
    fn check_reports_improvements_new_and_lost_figures() {
        let base = report(vec![
            fig("b", "floor", measured(100.0, 1.0, 4.0)),
            fig("b", "gone", measured(100.0, 1.0, 4.0)),
            fig("b", "multi", Measure::Missing("ENOSYS".into())),
            fig("c", "other", measured(100.0, 1.0, 4.0)),
        ]);
        let now = report(vec![
            fig("b", "floor", measured(90.0, 1.0, 4.0)),
            fig("b", "multi", measured(500.0, 1.0, 4.0)),
            fig("b", "fresh", measured(10.0, 0.0, 0.0)),
        ]);
        // Program `c` did not run: its figures are out of scope.
        let c = compare(&base, &now, |f| f.program == "b", TOLERANCE);
        assert!(c.regressions.is_empty());
        assert_eq!(c.improvements.len(), 1);
        assert_eq!(c.lost.len(), 1, "{:?}", c.lost);
        assert!(c.lost[0].contains("b/gone"));
        assert_eq!(c.new, ["b/multi (now measured)", "b/fresh"]);
        assert!(!c.ok());
        let text = c.render();
        assert!(text.contains("--update-baseline"), "{text}");
        // A figure that became missing is lost too.
        let missing = report(vec![fig("b", "floor", Measure::Missing("ENOSYS".into()))]);
        let c = compare(&base, &missing, |f| f.name == "floor", TOLERANCE);
        assert!(!c.ok());
        assert!(c.lost[0].contains("now missing: ENOSYS"));
    }

    #[test]
    fn a_compiler_change_is_named() {
        let base = report(vec![]);
        let mut now = report(vec![]);
        assert_eq!(toolchain_note(&base, &now), None);
        now.rustc = Some("rustc 1.96.0".into());
        let n = toolchain_note(&base, &now).unwrap();
        assert!(
            n.contains("rustc 1.95.0") && n.contains("rustc 1.96.0"),
            "{n}"
        );
        now.rustc = None;
        assert_eq!(toolchain_note(&base, &now), None);
        // The version survives the JSON.
        assert_eq!(
            from_json(&to_json(&base)).unwrap().rustc.as_deref(),
            Some("rustc 1.95.0 (59807616e 2026-04-14)")
        );
    }

    #[test]
    fn repeated_runs_combine_by_median() {
        let run = |m: f64| vec![fig("b", "x", measured(m, 1.0, 4.0))];
        let combined = combine_runs(&[run(100.0), run(300.0), run(110.0)]);
        assert_eq!(combined.len(), 1);
        assert_eq!(combined[0].measured().unwrap().median, 110.0);
        let mut even = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(median(&mut even), Some(2.5));
        assert_eq!(median(&mut []), None);
        let missing = combine_runs(&[vec![fig("b", "y", Measure::Missing("no".into()))]]);
        assert_eq!(missing[0].measure, Measure::Missing("no".into()));
    }

    #[test]
    fn one_nested_run_keeps_its_l0_counts() {
        // The nested backend's figures go through the combination too (one run).
        let mut m = measured(20_000.0, 1.0, 4.0);
        if let Measure::Measured(x) = &mut m {
            x.l0_exits = Some(583.0);
            x.l0_reflected = Some(301.0);
        }
        let combined = combine_runs(&[vec![fig("bench_events", "send_to_upcall", m)]]);
        let c = combined[0].measured().unwrap();
        assert_eq!((c.l0_exits, c.l0_reflected), (Some(583.0), Some(301.0)));
        let r = report(combined);
        assert!(table(&r, None).contains("L0/op"), "{}", table(&r, None));
    }

    #[test]
    fn pv_and_trap_figures_are_paired() {
        let r = report(vec![
            fig("bench_pvops", "cpuid.pv", measured(20.0, 0.0, 0.0)),
            fig("bench_pvops", "cpuid.trap", measured(200.0, 1.0, 4.0)),
            fig(
                "bench_pvops",
                "rdmsr.pv",
                Measure::Missing("no hypercall".into()),
            ),
            fig("bench_pvops", "rdmsr.trap", measured(300.0, 1.0, 4.0)),
            fig("bench_hypercalls", "floor", measured(100.0, 1.0, 4.0)),
        ]);
        let t = pv_vs_trap(&r);
        let line = |op: &str| {
            t.lines()
                .find(|l| l.starts_with(op))
                .unwrap_or("")
                .to_string()
        };
        let cpuid: Vec<String> = line("bench_pvops/cpuid ")
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(cpuid, ["bench_pvops/cpuid", "20", "200", "10.00"], "{t}");
        let rdmsr: Vec<String> = line("bench_pvops/rdmsr ")
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(rdmsr, ["bench_pvops/rdmsr", "missing", "300", "-"], "{t}");
        assert!(!t.contains("floor"), "{t}");
        assert!(table(&r, None).contains("PV beside native"));
        assert_eq!(
            pv_vs_trap(&report(vec![fig("p", "floor", measured(1.0, 0.0, 0.0))])),
            ""
        );
    }

    #[test]
    fn table_states_the_unit_and_the_floor_ratio() {
        let r = report(vec![
            fig("bench_hypercalls", "floor", measured(100.0, 1.0, 4.0)),
            fig("bench_hypercalls", "xen_version", measured(150.0, 1.0, 4.0)),
            fig(
                "bench_hypercalls",
                "multicall_16",
                Measure::Missing("ENOSYS".into()),
            ),
        ]);
        let t = table(&r, None);
        assert!(!t.contains("baseline"), "{t}");
        assert!(t.contains("Bochs instruction counts"), "{t}");
        assert!(t.contains("instructions/op"), "{t}");
        assert!(t.contains("1.50"), "{t}");
        assert!(t.contains("missing: ENOSYS"), "{t}");
        let mut kvm = r.clone();
        kvm.machine.backend = "kvm".into();
        kvm.runs = 5;
        let t = table(&kvm, None);
        assert!(t.contains("hardware TSC cycles"), "{t}");
        assert!(t.contains("medians over 5 run(s)"), "{t}");
        assert!(t.contains("cycles/op"), "{t}");
        // Beside a baseline of the same machine: its cost and the change.
        let base = report(vec![
            fig("bench_hypercalls", "floor", measured(110.0, 1.0, 4.0)),
            fig("bench_hypercalls", "xen_version", measured(150.0, 1.0, 4.0)),
        ]);
        let mut now = r.clone();
        now.figures
            .push(fig("bench_new", "x", measured(7.0, 1.0, 4.0)));
        let t = table(&now, Some(&base));
        let line = |k: &str| -> Vec<String> {
            t.lines()
                .find(|l| l.starts_with(k))
                .unwrap()
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        assert!(
            t.lines().nth(1).unwrap().contains("baseline    change"),
            "{t}"
        );
        let floor = line("bench_hypercalls/floor ");
        assert_eq!(floor[1..4], ["100", "110", "-9.1%"], "{t}");
        let xv = line("bench_hypercalls/xen_version");
        assert_eq!(xv[1..4], ["150", "150", "0.0%"], "{t}");
        let new = line("bench_new/x");
        assert_eq!(new[1..4], ["7", "-", "new"], "{t}");
        // Another machine's baseline is not beside it.
        let mut other = base.clone();
        other.machine.cpu_model = "tigerlake".into();
        assert!(!table(&now, Some(&other)).contains("baseline"));
    }

    #[test]
    fn baseline_merge_keeps_programs_not_run() {
        let old = report(vec![
            fig("a", "x", measured(1.0, 1.0, 1.0)),
            fig("b", "y", measured(2.0, 1.0, 1.0)),
        ]);
        let now = report(vec![fig("a", "x", measured(5.0, 1.0, 1.0))]);
        let m = merge_baseline(Some(&old), &now);
        assert_eq!(m.figures.len(), 2);
        assert_eq!(m.get("a/x").unwrap().measured().unwrap().median, 5.0);
        assert!(m.get("b/y").is_some());
        // Another machine's baseline is replaced, not merged.
        let mut other = old.clone();
        other.machine.cpu_model = "tigerlake".into();
        assert_eq!(merge_baseline(Some(&other), &now).figures.len(), 1);
    }

    #[test]
    fn selection_by_program_figure_or_key() {
        use keel_abi::note::TestCategory;
        let p = |name: &str, cat| TestProgram {
            name: name.into(),
            path: "/x".into(),
            category: cat,
            title: String::new(),
        };
        let all = [
            p("bench_hypercalls", TestCategory::Bench),
            p("bench_mmu", TestCategory::Bench),
            p("hello", TestCategory::Functional),
        ];
        let names = |v: Vec<TestProgram>| v.into_iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(
            names(select_programs(&all, &[])),
            ["bench_hypercalls", "bench_mmu"]
        );
        assert_eq!(
            names(select_programs(&all, &["bench_m*".into()])),
            ["bench_mmu"]
        );
        assert_eq!(
            names(select_programs(&all, &["bench_hypercalls/floor".into()])),
            ["bench_hypercalls"]
        );
        // A figure name: every program runs, the figures are filtered.
        assert_eq!(select_programs(&all, &["floor".into()]).len(), 2);
        let f = fig("bench_hypercalls", "floor", Measure::Missing(String::new()));
        assert!(keep_figure(&f, &["floor".into()]));
        assert!(keep_figure(&f, &["bench_hyper*".into()]));
        assert!(keep_figure(&f, &["*/floor".into()]));
        assert!(!keep_figure(&f, &["xen_*".into()]));
        assert!(keep_figure(&f, &[]));
        // A pattern that selects nothing is named; one that names a known figure
        // or a program is not.
        let known = [f.clone()];
        let pats: Vec<String> = ["floor", "bench_mmu", "nosuch", "hello", "bench_mmu/x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            unmatched(&all, &known, &pats),
            ["nosuch", "hello", "bench_mmu/x"]
        );
        assert!(unmatched(&all, &known, &[]).is_empty());
    }
}
