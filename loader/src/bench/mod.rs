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
//! With several CPUs (a program in `runner::TEST_CPUS`), Bochs runs one trace
//! (a straight run of up to a few dozen instructions) of each CPU in turn and
//! then advances the clock by the largest number any of them executed (a
//! halted CPU executes none). The figures stay repeatable, but a CPU's TSC
//! delta is its own instruction count only while the others are halted or
//! run the same code in step (the `bench_cpus_N` programs run one image on
//! each CPU); otherwise it is emulated time, as on hardware, which is what a
//! latency across CPUs is.
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
//! A program whose domains measure one operation on several CPUs reports a
//! figure per CPU (`<op>.cpu<K>`); the tool adds the worst of them
//! (`<op>.worst`, [`add_worst`]).
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

mod compare;
mod derive;
mod doc;
mod figure;
mod json;
mod parse;
mod report;
mod select;
mod table;

pub use self::compare::*;
pub use self::derive::*;
pub use self::doc::*;
pub use self::figure::*;
pub use self::json::*;
pub use self::parse::*;
pub use self::report::*;
pub use self::select::*;
pub use self::table::*;

#[cfg(test)]
mod tests;
