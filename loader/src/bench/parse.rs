//! Reading figures from a console: `KEEL-BENCH` lines, legacy lines and trace marks.

use super::*;

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

pub(super) fn parse_fields(rest: &str) -> Result<(String, LineBody), String> {
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
pub(super) struct Collected {
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
        Ok(Measured::timing(count, 1, [min, min, median, max, max]))
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
