//! The whole guest test suite under Bochs, through the runner's library API (what
//! `cargo keel test --backend bochs` does): every test program must pass or skip.

use keel_loader::backend::Backend;
use keel_loader::console::Verdict;
use keel_loader::{MachineOptions, TestOptions};
use std::time::Duration;

#[test]
fn guest_suite_passes_under_bochs() {
    let opts = TestOptions {
        jobs: None,
        ..TestOptions::new(
            Vec::<String>::new(),
            MachineOptions::new(Duration::from_secs(300)).on(Backend::Bochs),
        )
    };
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let summary = keel_loader::test(&opts, &mut out, &mut log);
    eprintln!("{}", String::from_utf8_lossy(&log));
    eprintln!("{}", String::from_utf8_lossy(&out));
    let summary = summary.unwrap_or_else(|e| panic!("keel test failed to run: {e:#}"));
    // The suite is not empty, and the template (which docs/writing-tests.md starts
    // from) is in it.
    assert!(
        summary.results.iter().any(|r| r.test.name == "template"),
        "the template test was not discovered"
    );
    let bad: Vec<String> = summary
        .results
        .iter()
        .filter(|r| r.verdict.is_failure())
        .map(|r| format!("{} {}: {}", r.verdict, r.test.name, r.reason))
        .collect();
    assert!(bad.is_empty(), "failed tests:\n{}", bad.join("\n"));
    assert!(summary.ok());
    let (passed, failed, skipped) = summary.counts();
    assert_eq!(passed + skipped, summary.results.len());
    assert_eq!(failed, 0);
    // The printed closing line is the summary's.
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.lines().last(), Some(summary.line().as_str()));
    assert!(summary.results.iter().all(|r| r.verdict != Verdict::Crash));
}
