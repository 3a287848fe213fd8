//! Choosing what to run.

use super::*;

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
