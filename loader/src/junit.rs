//! JUnit XML, the format CI systems read test results from, written by
//! [`quick_junit`].
//!
//! One `<testsuite name="keel">` with a `<testcase>` per test program
//! (`classname` = `keel.<category>`). FAILURE maps to `<failure>`, ERROR and CRASH
//! to `<error>`, SKIP to `<skipped>`; the verdict's reason is the message, the
//! failure's diagnostics its text, and the console goes to `<system-out>`
//! (quick-junit drops what XML cannot carry: ANSI escapes, C0 controls).

use crate::console::Verdict;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// One test's entry.
#[derive(Clone, Debug)]
pub struct Case<'a> {
    /// Test name.
    pub name: &'a str,
    /// Test category name.
    pub category: &'a str,
    /// Verdict.
    pub verdict: Verdict,
    /// Reason for the verdict.
    pub reason: &'a str,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Details for a failure (console tail, diagnostics).
    pub details: &'a str,
    /// The whole console.
    pub console: &'a str,
}

/// The JUnit XML document for `cases`.
pub fn render(cases: &[Case<'_>]) -> String {
    let mut suite = TestSuite::new("keel");
    let mut total = Duration::ZERO;
    for c in cases {
        let message = format!("{}: {}", c.verdict, c.reason);
        let mut status = match c.verdict {
            Verdict::Success => TestCaseStatus::success(),
            Verdict::Skip => TestCaseStatus::skipped(),
            Verdict::Failure => TestCaseStatus::non_success(NonSuccessKind::Failure),
            Verdict::Error | Verdict::Crash => TestCaseStatus::non_success(NonSuccessKind::Error),
        };
        if c.verdict != Verdict::Success {
            status.set_message(message);
        }
        if c.verdict.is_failure() {
            status.set_type(c.verdict.to_string());
            if !c.details.is_empty() {
                status.set_description(c.details);
            }
        }
        let time = Duration::try_from_secs_f64(c.seconds).unwrap_or_default();
        total += time;
        let mut case = TestCase::new(c.name, status);
        case.set_classname(format!("keel.{}", c.category))
            .set_time(time)
            .set_system_out(c.console);
        suite.add_test_case(case);
    }
    suite.set_time(total);
    let mut report = Report::new("keel");
    report.set_time(total).add_test_suite(suite);
    report
        .to_string()
        .expect("writing XML to a string cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document() {
        let cases = [
            Case {
                name: "ok",
                category: "functional",
                verdict: Verdict::Success,
                reason: "",
                seconds: 1.5,
                details: "",
                console: "(d1) Test result: SUCCESS",
            },
            Case {
                name: "pin<l1>",
                category: "security",
                verdict: Verdict::Failure,
                reason: "pin returned 0 & more",
                seconds: 2.0,
                details: "tail",
                console: "\u{7}bell \u{1b}[0mplain",
            },
            Case {
                name: "hang",
                category: "special",
                verdict: Verdict::Crash,
                reason: "timed out",
                seconds: 60.0,
                details: "",
                console: "",
            },
            Case {
                name: "noept",
                category: "functional",
                verdict: Verdict::Skip,
                reason: "no EPT",
                seconds: 0.5,
                details: "",
                console: "",
            },
        ];
        let x = render(&cases);
        let has = |s: &str| assert!(x.contains(s), "{s}\n{x}");
        has("<testsuites name=\"keel\" tests=\"4\" skipped=\"1\" failures=\"1\" errors=\"1\" time=\"64.000\">");
        has("<testsuite name=\"keel\" tests=\"4\" skipped=\"1\" errors=\"1\" failures=\"1\" time=\"64.000\">");
        has("name=\"pin&lt;l1&gt;\"");
        has("classname=\"keel.security\"");
        has("<failure message=\"FAILURE: pin returned 0 &amp; more\" type=\"FAILURE\">tail</failure>");
        has("<error message=\"CRASH: timed out\" type=\"CRASH\"/>");
        has("<skipped message=\"SKIP: no EPT\"/>");
        // What XML cannot carry is dropped, the rest kept.
        has("<system-out>bell plain</system-out>");
        assert_eq!(x.matches("<testcase ").count(), 4);
        assert_eq!(x.matches("</testcase>").count(), 4);
    }
}
