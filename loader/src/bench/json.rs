//! The JSON report and baseline file.

use super::*;

/// A number as the JSON files hold it: an integral value without a fraction
/// (`174`, not `174.0`, as the files have always had it), others in Rust's
/// shortest round-trip form; not finite is `null`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Num(f64);

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
pub(super) struct ReportFile {
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
pub(super) struct FigureFile {
    key: String,
    program: String,
    name: String,
    #[serde(flatten)]
    measure: MeasureFile,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum MeasureFile {
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
pub(super) struct ReportIn {
    backend: String,
    cpu_model: String,
    ips: u64,
    runs: usize,
    #[serde(default)]
    rustc: Option<String>,
    figures: Vec<FigureIn>,
}

#[derive(Deserialize)]
pub(super) struct FigureIn {
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
