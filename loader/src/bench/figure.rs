//! A figure: what a guest measured, and how the tool derives per-operation numbers.

use super::*;

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
    /// A timing without the hypervisor's counters (an older-style line, a
    /// report made by hand): `n` samples of `per` operations, distributed as
    /// `[min, p10, median, p90, max]` TSC ticks per sample.
    pub fn timing(n: u64, per: u64, [min, p10, median, p90, max]: [f64; 5]) -> Self {
        Self {
            n,
            per,
            min,
            p10,
            median,
            p90,
            max,
            exits: None,
            vmreads: None,
            vmwrites: None,
            reasons: BTreeMap::new(),
            marks: None,
            l0_exits: None,
            l0_reflected: None,
        }
    }

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
