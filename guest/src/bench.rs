//! Benchmark reporting: measure an operation on the TSC and on the hypervisor's
//! counters, and print one machine-readable line per figure for `cargo keel bench`.
//!
//! A benchmark program (category `Bench`) makes a [`Bench`] and calls
//! [`Bench::measure`] once per figure:
//!
//! ```ignore
//! let mut b = Bench::new();
//! b.measure("xen_version", 1, &mut samples, || { let _ = guest::xen_version(); });
//! ```
//!
//! For each figure the operation runs `samples.len()` times, each timed on its own
//! with `LFENCE; RDTSC` (the cost of an empty measurement subtracted, see
//! [`crate::tsc::measure`]). Under Bochs one TSC tick is one emulated instruction,
//! so the figures are exact and repeatable; on hardware they are reference cycles.
//!
//! Around the whole loop the program reads the hypervisor's VMX counters
//! (`keel_debug_op(DEBUGOP_read_counters)`, `docs/abi/debug.md`) and reports how
//! many VM exits, VMREADs and VMWRITEs the loop caused. Reading the counters is a
//! hypercall itself, so [`Bench::new`] first reads them twice back to back: the
//! difference is what one reading adds, and it is subtracted from every
//! measurement. The loop between the readings does nothing else that exits (RDTSC
//! and LFENCE do not), so what remains is the operation's own work. On a
//! hypervisor without the interface (older than ABI 1.0: `-ENOSYS`) the counters
//! are reported as absent and the TSC figures still are.
//!
//! ## The lines
//! Up to three lines per figure, on the console (so `(d1) ` precedes them there),
//! each naming the figure; the hypervisor cuts console lines at 160 bytes
//! (`CONSOLE_LINE_MAX`), so the fields are spread over short lines:
//!
//! ```text
//! KEEL-BENCH v1 name=xen_version n=1000 per=1 min=170 p10=170 median=174 p90=174 max=300
//! KEEL-BENCH v1 name=xen_version exits=1000 vmreads=3000 vmwrites=1000
//! KEEL-BENCH v1 name=xen_version reasons=18:1000
//! KEEL-BENCH v1 name=multicall_16 missing=multicall returned -ENOSYS
//! ```
//!
//! - `n`: samples; `per`: operations per sample (a batch of 512 updates is one
//!   sample with `per=512`), so the cost of one operation is `median / per`;
//! - `min p10 median p90 max`: the distribution of the samples, in TSC ticks;
//! - `exits vmreads vmwrites`: totals over all `n` samples (`-` without counters);
//! - `reasons`: the exits by basic exit reason, `reason:count` pairs, on as many
//!   lines as it takes (none without counters or exits);
//! - `marks=B,P,C`: which of the hypervisor-counter reads bracket the figure,
//!   numbered from 0 in the order this program made them: the figure is the
//!   sum over P pairs of reads (B + 2i, B + 2i + 1), and reads (C, C + 1) are
//!   the back-to-back calibration pair (the cheapest of a few such pairs). Under a hypervisor beneath Keel, each
//!   read is a mark in that hypervisor's trace (docs/abi/debug.md), so the
//!   nested backend attributes its exits to the figure from these numbers;
//! - `missing=`: the figure could not be measured here; the rest of the line says why.
//!
//! `loader/src/bench/parse.rs` parses exactly this; change both together.

pub mod cpus;
pub mod vcpus;

use crate::abi::debug::{self, PerfCounters, PERF_EXIT_SLOTS};
use crate::abi::event::DOMID_SELF;
use crate::abi::grant_table::{GnttabCopy, GnttabCopyPtr};
use crate::abi::Errno;
use crate::tsc;
use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How many times this program has read the hypervisor's counters: the number
/// of the next read (see `marks=` above).
static READS: AtomicU64 = AtomicU64::new(0);

/// The marker that starts a benchmark line.
pub const MARKER: &str = "KEEL-BENCH";
/// The version of the line format.
pub const FORMAT: &str = "v1";

/// Back-to-back counter reads [`Bench::new`] makes to learn their cost.
const CALIBRATION_PAIRS: usize = 4;

/// The counters' cost of one measurement, learned by reading them twice.
#[derive(Clone, Copy)]
struct Calibration {
    overhead: PerfCounters,
}

/// Measures figures and prints their lines.
pub struct Bench {
    counters: Option<Calibration>,
    figures: usize,
    /// The number of the first calibration read.
    calibration_mark: u64,
    /// The number of the read [`Self::start`] made.
    started_mark: Cell<u64>,
}

/// One measured figure (also printed as a line).
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    /// The TSC distribution.
    pub stats: tsc::Stats,
    /// 10th percentile.
    pub p10: u64,
    /// 90th percentile.
    pub p90: u64,
    /// What the loop cost in exits and VMCS accesses (`None` without counters).
    pub counters: Option<PerfCounters>,
    /// The counter reads around the figure: (first read, pairs).
    pub marks: Option<(u64, u64)>,
}

impl Figure {
    /// Total exits over the loop, if counted.
    pub fn exits(&self) -> Option<u64> {
        self.counters.map(|c| c.total_exits())
    }
}

/// The value at fraction `num/den` of sorted `samples` (nearest rank).
pub fn percentile(sorted: &[u64], num: usize, den: usize) -> u64 {
    if sorted.is_empty() || den == 0 {
        return 0;
    }
    let i = (sorted.len() * num / den).min(sorted.len() - 1);
    sorted[i]
}

/// Is `name` usable as a figure name (non-empty, `[a-z0-9_.-]`)?
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// The cost of two back-to-back ordered TSC reads (the smallest of 16), as
/// [`tsc::measure`] subtracts it.
fn empty_measurement() -> u64 {
    let mut overhead = u64::MAX;
    for _ in 0..16 {
        let t0 = tsc::rdtsc_ordered();
        let t1 = tsc::rdtsc_ordered();
        overhead = overhead.min(t1.wrapping_sub(t0));
    }
    overhead
}

/// Counter-wise sum (wrapping), for accumulating per-sample deltas.
trait Plus {
    fn plus(&self, other: &Self) -> Self;
}

impl Plus for PerfCounters {
    fn plus(&self, o: &PerfCounters) -> PerfCounters {
        let mut d = *self;
        d.vmreads = d.vmreads.wrapping_add(o.vmreads);
        d.vmwrites = d.vmwrites.wrapping_add(o.vmwrites);
        for (a, b) in d.exits.iter_mut().zip(o.exits.iter()) {
            *a = a.wrapping_add(*b);
        }
        d
    }
}

fn read_counters() -> Result<PerfCounters, Errno> {
    READS.fetch_add(1, Relaxed);
    debug::guest::read_counters()
}

impl Bench {
    /// Probe the counter interface and calibrate it. Prints one line saying
    /// whether the counters are there.
    pub fn new() -> Self {
        // The counters are the CPU's, not this domain's: a pair that another
        // domain's run fell between would teach an overhead holding that
        // domain's exits, subtracted from every figure after. The pair with
        // the fewest exits of a few is the read's own cost.
        let mut calibration_mark = READS.load(Relaxed);
        let mut counters = None;
        for _ in 0..CALIBRATION_PAIRS {
            let mark = READS.load(Relaxed);
            match (read_counters(), read_counters()) {
                (Ok(a), Ok(b)) => {
                    let overhead = b.since(&a);
                    let better = counters.is_none_or(|c: Calibration| {
                        (overhead.total_exits(), overhead.vmreads + overhead.vmwrites)
                            < (
                                c.overhead.total_exits(),
                                c.overhead.vmreads + c.overhead.vmwrites,
                            )
                    });
                    if better {
                        counters = Some(Calibration { overhead });
                        calibration_mark = mark;
                    }
                }
                (Err(Errno::ENOSYS), _) => {
                    crate::println!(
                        "bench: the hypervisor has no keel_debug_op counters (-ENOSYS): TSC figures only"
                    );
                    break;
                }
                (Err(e), _) | (_, Err(e)) => {
                    crate::error!("bench: reading the hypervisor's counters failed: {e}");
                    counters = None;
                    break;
                }
            }
        }
        Bench {
            counters,
            figures: 0,
            calibration_mark,
            started_mark: Cell::new(0),
        }
    }

    /// Whether the hypervisor's counters are available.
    pub fn has_counters(&self) -> bool {
        self.counters.is_some()
    }

    /// How many figures were reported (measured or missing).
    pub fn figures(&self) -> usize {
        self.figures
    }

    fn snapshot(&self) -> Option<PerfCounters> {
        self.counters.and_then(|_| read_counters().ok())
    }

    /// Measure `op` `samples.len()` times (each sample doing `per` operations),
    /// print the figure's line and return it. `None` (after reporting ERROR) for
    /// a bad name or no samples.
    pub fn measure(
        &mut self,
        name: &str,
        per: u64,
        samples: &mut [u64],
        op: impl FnMut(),
    ) -> Option<Figure> {
        let fig = self.run(name, per, samples, op)?;
        self.report(name, per, &fig);
        Some(fig)
    }

    /// Measure like [`Self::measure`] but print nothing yet: for an operation that
    /// leaves the console mid-line (print the figure with [`Self::report`] once the
    /// line is finished).
    pub fn run(
        &mut self,
        name: &str,
        per: u64,
        samples: &mut [u64],
        op: impl FnMut(),
    ) -> Option<Figure> {
        if !valid_name(name) || samples.is_empty() || per == 0 {
            crate::error!("bench: bad figure {name:?} (name, samples or per)");
            return None;
        }
        let mark = READS.load(Relaxed);
        let before = self.snapshot();
        let stats = tsc::measure(samples, op)?;
        let after = self.snapshot();
        let marks = (READS.load(Relaxed) == mark + 2).then_some((mark, 1));
        // `tsc::measure` leaves the samples sorted.
        let (p10, p90) = (percentile(samples, 1, 10), percentile(samples, 9, 10));
        let counters = match (before, after, self.counters) {
            (Some(b), Some(a), Some(cal)) => Some(a.since(&b).saturating_sub(&cal.overhead)),
            _ => None,
        };
        Some(Figure {
            stats,
            p10,
            p90,
            counters,
            marks,
        })
    }

    /// Measure an operation that needs the state `setup` leaves (installing
    /// entries needs them removed first): before every sample `setup` runs,
    /// untimed and uncounted, then `op` is timed. The counters are read around
    /// each sample (not around the loop), so `setup`'s own exits are not charged
    /// to `op`. Prints the line like [`Self::measure`].
    pub fn measure_with_setup(
        &mut self,
        name: &str,
        per: u64,
        samples: &mut [u64],
        mut setup: impl FnMut(),
        mut op: impl FnMut(),
    ) -> Option<Figure> {
        if !valid_name(name) || samples.is_empty() || per == 0 {
            crate::error!("bench: bad figure {name:?} (name, samples or per)");
            return None;
        }
        let overhead = empty_measurement();
        let mut total = self.counters.map(|_| PerfCounters::zero());
        let first = READS.load(Relaxed);
        let mut marks_ok = true;
        for (i, s) in samples.iter_mut().enumerate() {
            setup();
            marks_ok &= READS.load(Relaxed) == first + 2 * i as u64;
            let before = self.snapshot();
            let t0 = tsc::rdtsc_ordered();
            op();
            let t1 = tsc::rdtsc_ordered();
            let after = self.snapshot();
            *s = t1.wrapping_sub(t0).saturating_sub(overhead);
            total = match (total, before, after, self.counters) {
                (Some(t), Some(b), Some(a), Some(cal)) => {
                    let d = a.since(&b).saturating_sub(&cal.overhead);
                    Some(d.plus(&t))
                }
                _ => None,
            };
        }
        let stats = tsc::Stats::of(samples)?;
        let (p10, p90) = (percentile(samples, 1, 10), percentile(samples, 9, 10));
        marks_ok &= READS.load(Relaxed) == first + 2 * samples.len() as u64;
        let fig = Figure {
            stats,
            p10,
            p90,
            counters: total,
            marks: marks_ok.then_some((first, samples.len() as u64)),
        };
        self.report(name, per, &fig);
        Some(fig)
    }

    /// Start a figure whose samples the program takes itself (a latency from a
    /// deadline to an interrupt handler, say): reads the counters. Pass the
    /// result to [`Self::finish`] with the samples.
    pub fn start(&self) -> Option<PerfCounters> {
        self.started_mark.set(READS.load(Relaxed));
        self.snapshot()
    }

    /// Finish a figure begun with [`Self::start`]: summarise `samples` (sorted
    /// here), charge it the counters since `started` (everything the loop caused:
    /// the operation and whatever the program did to set each sample up), print
    /// its lines.
    pub fn finish(
        &mut self,
        name: &str,
        per: u64,
        samples: &mut [u64],
        started: Option<PerfCounters>,
    ) -> Option<Figure> {
        let after = self.snapshot();
        let begin = self.started_mark.get();
        let marks = (READS.load(Relaxed) == begin + 2).then_some((begin, 1));
        if !valid_name(name) || samples.is_empty() || per == 0 {
            crate::error!("bench: bad figure {name:?} (name, samples or per)");
            return None;
        }
        let stats = tsc::Stats::of(samples)?;
        let (p10, p90) = (percentile(samples, 1, 10), percentile(samples, 9, 10));
        let counters = match (started, after, self.counters) {
            (Some(b), Some(a), Some(cal)) => Some(a.since(&b).saturating_sub(&cal.overhead)),
            _ => None,
        };
        let fig = Figure {
            stats,
            p10,
            p90,
            counters,
            marks,
        };
        self.report(name, per, &fig);
        Some(fig)
    }

    /// Print a measured figure's line.
    pub fn report(&mut self, name: &str, per: u64, fig: &Figure) {
        self.print(name, per, fig);
        self.figures += 1;
    }

    /// Report a figure that cannot be measured here, and why (one line of text).
    pub fn missing(&mut self, name: &str, why: core::fmt::Arguments<'_>) {
        crate::console::start_line();
        crate::println!("{MARKER} {FORMAT} name={name} missing={why}");
        self.figures += 1;
    }

    fn print(&self, name: &str, per: u64, f: &Figure) {
        let s = &f.stats;
        crate::console::start_line();
        crate::println!(
            "{MARKER} {FORMAT} name={name} n={} per={per} min={} p10={} median={} p90={} max={}",
            s.count,
            s.min,
            f.p10,
            s.median,
            f.p90,
            s.max
        );
        let Some(c) = &f.counters else {
            crate::println!("{MARKER} {FORMAT} name={name} exits=- vmreads=- vmwrites=-");
            return;
        };
        crate::println!(
            "{MARKER} {FORMAT} name={name} exits={} vmreads={} vmwrites={}",
            c.total_exits(),
            c.vmreads,
            c.vmwrites
        );
        if let Some((first, pairs)) = f.marks {
            crate::println!(
                "{MARKER} {FORMAT} name={name} marks={first},{pairs},{}",
                self.calibration_mark
            );
        }
        // Four `reason:count` pairs per line keep every line far below 160 bytes.
        let mut on_line = 0;
        for (reason, &n) in c.exits.iter().enumerate().take(PERF_EXIT_SLOTS) {
            if n == 0 {
                continue;
            }
            if on_line == 0 {
                crate::print!("{MARKER} {FORMAT} name={name} reasons={reason}:{n}");
            } else {
                crate::print!(",{reason}:{n}");
            }
            on_line += 1;
            if on_line == 4 {
                crate::println!();
                on_line = 0;
            }
        }
        if on_line != 0 {
            crate::println!();
        }
    }
}

impl Default for Bench {
    fn default() -> Self {
        Self::new()
    }
}

/// The `GNTTABOP_copy` the grant benchmarks time: a whole 4 KiB page from
/// `source` (a frame, or a grant reference with [`GNTCOPY_SOURCE_GREF`] in
/// `flags`, and the domain it belongs to) into our own frame `dest`.
///
/// [`GNTCOPY_SOURCE_GREF`]: crate::abi::grant_table::GNTCOPY_SOURCE_GREF
pub fn copy_4k(source: (u64, u16), dest: u64, flags: u16) -> GnttabCopy {
    GnttabCopy::new(
        GnttabCopyPtr::new(source.0, source.1, 0),
        GnttabCopyPtr::new(dest, DOMID_SELF, 0),
        4096,
        flags,
    )
}

/// The body of the `bench_switch_N` programs: `domains` domains share the CPU
/// (this one and `domains - 1` `yielder`s, which call `SCHEDOP_yield` in a
/// loop), so one `SCHEDOP_yield` here is a round of `domains` switches, each a
/// yield hypercall, the run loop's scheduling, VMPTRLD, the unswitched state
/// saved and loaded, and VMRESUME. The figure `name` is per switch.
pub fn domain_switch(name: &str, domains: u64) {
    let mut b = Bench::new();
    let mut samples = [0u64; 200];
    let mut errors = 0u32;
    let f = b.measure(name, domains, &mut samples, || {
        if crate::abi::guest::sched_yield().is_err() {
            errors += 1;
        }
    });
    crate::check_eq!(errors, 0, "SCHEDOP_yield calls that failed");
    if let Some(f) = f {
        // Alone, a yield would be one exit: with the yielders it is one per switch.
        if let Some(e) = f.exits() {
            crate::check!(
                e >= domains,
                "{e} exits per round of {domains} switches: the others did not run"
            );
        }
    }
    crate::report::success();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_names() {
        let s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(percentile(&s, 1, 10), 2);
        assert_eq!(percentile(&s, 9, 10), 10);
        assert_eq!(percentile(&[5], 9, 10), 5);
        assert_eq!(percentile(&[], 1, 2), 0);
        assert!(valid_name("mmu_update.512"));
        assert!(!valid_name("has space"));
        assert!(!valid_name(""));
        assert!(!valid_name("x=y"));
    }
}
