//! Reading a machine's console: the power-off line, a test's verdict, the tail.
//!
//! The console (COM1) is the one channel every backend has, so it is the
//! authority on how a run ended:
//! - the hypervisor's last line is `keel: power off, status N (...)`
//!   ([`keel_abi::platform::parse_power_off_line`]);
//! - a test program's last line of its own is `Test result: VERDICT[: reason]`,
//!   which the hypervisor prefixes with the domain tag, e.g. `(d1) Test result: SUCCESS`.
//!
//! Serial output arrives with `\r\n` line ends and, when something went badly
//! wrong, with arbitrary bytes: everything here works on lossily decoded text and
//! tolerates both.

use keel_abi::platform::{parse_power_off_line, ExitStatus};
pub use keel_abi::report::{Verdict, SEQ_MARKER, TEST_RESULT_MARKER};

/// The console's lines, without line ends.
pub fn lines(console: &str) -> impl DoubleEndedIterator<Item = &str> {
    console.lines().map(|l| l.trim_end_matches('\r'))
}

/// The hypervisor's power-off status: from the last power-off line on the console.
pub fn power_off_status(console: &str) -> Option<ExitStatus> {
    lines(console).rev().find_map(parse_power_off_line)
}

/// The last `n` lines of the console, joined with `\n`.
pub fn tail(console: &str, n: usize) -> String {
    let all: Vec<&str> = lines(console).collect();
    all[all.len().saturating_sub(n)..].join("\n")
}

/// A verdict line as printed by a test program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedResult {
    /// The verdict.
    pub verdict: Verdict,
    /// The reason after the verdict (empty for a plain SUCCESS).
    pub reason: String,
}

/// The domain prefix the hypervisor puts on a domain's PV console lines
/// (`keel_abi::platform::domain_prefix`). Returns the rest of the line.
fn strip_domain_prefix(line: &str) -> Option<&str> {
    keel_abi::platform::strip_domain_prefix(line).map(|(_, rest)| rest)
}

/// Parse one console line holding `Test result: VERDICT[: reason]`: the marker
/// starts the line, or follows a domain's PV console prefix (`(d1) `) and
/// nothing else. A line from anywhere else that merely contains the marker (a
/// hypervisor line quoting guest data, a guest's emulated-COM1 line
/// `(d1:com1) ...`) is not a verdict: the hypervisor's console filter makes
/// those two line starts unforgeable, and only they are trusted.
pub fn parse_test_result_line(line: &str) -> Option<ReportedResult> {
    let body = strip_domain_prefix(line).unwrap_or(line);
    let rest = body.strip_prefix(TEST_RESULT_MARKER)?.trim_end();
    let (name, reason) = match rest.split_once(':') {
        Some((n, r)) => (n.trim(), r.trim()),
        None => (rest.trim(), ""),
    };
    Some(ReportedResult {
        verdict: Verdict::from_name(name)?,
        reason: reason.to_string(),
    })
}

/// What is wrong with the numbered lines ([`SEQ_MARKER`], from a domain's PV
/// console only) on the console, if anything: for each tag, the numbers must run 0, 1, ..., n-1 with the same n, none missing, none
/// repeated, none out of order. Lines with the marker but no `<i>/<n>` are not
/// numbered and are ignored.
pub fn sequence_problem(console: &str) -> Option<String> {
    use std::collections::BTreeMap;
    // tag -> (next expected number, total)
    let mut seen: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for line in lines(console) {
        let Some(body) = strip_domain_prefix(line) else {
            continue;
        };
        let mut words = body.split_ascii_whitespace();
        if words.next() != Some(SEQ_MARKER) {
            continue;
        }
        let (Some(tag), Some(pos)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((i, n)) = pos.split_once('/') else {
            continue;
        };
        let (Ok(i), Ok(n)) = (i.parse::<u64>(), n.parse::<u64>()) else {
            continue;
        };
        let e = seen.entry(tag).or_insert((0, n));
        if n != e.1 {
            return Some(format!(
                "{SEQ_MARKER} {tag}: line {i}/{n} in a sequence of {}",
                e.1
            ));
        }
        if i != e.0 {
            return Some(format!(
                "{SEQ_MARKER} {tag}: line {i}/{n} where {}/{n} was due (console output lost or reordered)",
                e.0
            ));
        }
        e.0 += 1;
    }
    seen.into_iter().find_map(|(tag, (next, n))| {
        (next != n).then(|| format!("{SEQ_MARKER} {tag}: only {next} of {n} lines arrived"))
    })
}

/// The domain a verdict line came from: its id from the PV console prefix,
/// or `None` for a line without one (a guest booted alone without Keel, the
/// native backend, prints its own).
fn verdict_domain(line: &str) -> Option<u16> {
    keel_abi::platform::strip_domain_prefix(line).map(|(id, _)| id)
}

/// The test program's verdict: the last verdict line of domain 1 (the test
/// is domain 1; its companions are 2, 3, ...), or, on a console whose verdict
/// lines carry no domain prefix (no hypervisor), the last verdict line.
pub fn test_result(console: &str) -> Option<ReportedResult> {
    lines(console)
        .rev()
        .filter(|l| matches!(verdict_domain(l), Some(1) | None))
        .find_map(parse_test_result_line)
}

/// The first companion domain (any domain but 1) whose last verdict is a
/// failure (`ERROR`, `FAILURE`, `CRASH`), with that verdict: a companion that
/// found something wrong fails the test, whatever domain 1 says.
pub fn companion_failure(console: &str) -> Option<(u16, ReportedResult)> {
    let mut last: std::collections::BTreeMap<u16, ReportedResult> = Default::default();
    for line in lines(console) {
        let Some(d) = verdict_domain(line).filter(|d| *d != 1) else {
            continue;
        };
        if let Some(r) = parse_test_result_line(line) {
            last.insert(d, r);
        }
    }
    last.into_iter().find(|(_, r)| r.verdict.is_failure())
}

/// The hypervisor's own diagnostic lines (`keel: ...`) from the end of the console,
/// at most `n`: for a crash, they say what the hypervisor saw (exit reason,
/// registers, the failed check).
pub fn hypervisor_lines(console: &str, n: usize) -> Vec<&str> {
    let mut v: Vec<&str> = lines(console)
        .rev()
        .filter(|l| l.starts_with("keel:"))
        .take(n)
        .collect();
    v.reverse();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "keel: Keel 0.1 starting\r\n(d1) hello\r\n(d1) Test result: FAILURE: pin returned 0\r\nkeel: domain 1 shut down: poweroff\r\nkeel: power off, status 0 (guest powered off)\r\n";

    #[test]
    fn power_off_and_verdict() {
        assert_eq!(power_off_status(CONSOLE), Some(ExitStatus::Success));
        assert_eq!(
            test_result(CONSOLE),
            Some(ReportedResult {
                verdict: Verdict::Failure,
                reason: "pin returned 0".into()
            })
        );
        assert_eq!(power_off_status("keel: starting\n"), None);
        assert_eq!(test_result("(d1) hello\n"), None);
    }

    #[test]
    fn last_line_wins() {
        let c = "(d1) Test result: SUCCESS\n(d1) Test result: CRASH: page fault\nkeel: power off, status 4 (no VT-x)\nkeel: power off, status 1 (guest crashed)\n";
        assert_eq!(test_result(c).unwrap().verdict, Verdict::Crash);
        assert_eq!(test_result(c).unwrap().reason, "page fault");
        assert_eq!(power_off_status(c), Some(ExitStatus::GuestCrash));
    }

    #[test]
    fn the_test_is_domain_1_and_a_failing_companion_is_seen() {
        let c = "(d1) Test result: SUCCESS\n(d2) Test result: FAILURE: wrong answer\n(d3) Test result: SUCCESS\nkeel: power off, status 0 (guest powered off)\n";
        assert_eq!(test_result(c).map(|r| r.verdict), Some(Verdict::Success));
        let (d, r) = companion_failure(c).expect("d2 failed");
        assert_eq!(
            (d, r.verdict, r.reason.as_str()),
            (2, Verdict::Failure, "wrong answer")
        );
        // A companion's verdict is never the test's, even printed last.
        let c = "(d1) Test result: FAILURE: x\n(d2) Test result: SUCCESS\n";
        assert_eq!(test_result(c).map(|r| r.verdict), Some(Verdict::Failure));
        assert!(companion_failure(c).is_none());
        // Only domain 2 spoke: the test gave no verdict.
        assert!(test_result("(d2) Test result: SUCCESS\n").is_none());
        // A companion's last verdict counts; SKIP is no failure.
        let c = "(d2) Test result: CRASH: x\n(d2) Test result: SKIP: alone\n";
        assert!(companion_failure(c).is_none());
        // Without a hypervisor the lines carry no prefix.
        assert_eq!(
            test_result("Test result: SUCCESS\n").map(|r| r.verdict),
            Some(Verdict::Success)
        );
    }

    #[test]
    fn verdict_lines() {
        assert_eq!(
            parse_test_result_line("Test result: SUCCESS"),
            Some(ReportedResult {
                verdict: Verdict::Success,
                reason: String::new()
            })
        );
        assert_eq!(
            parse_test_result_line("(d1) Test result: SKIP: no EPT: here\r")
                .unwrap()
                .reason,
            "no EPT: here"
        );
        assert_eq!(parse_test_result_line("(d1) Test result: MAYBE"), None);
        assert_eq!(parse_test_result_line("(d1) Test: SUCCESS"), None);
        assert_eq!(
            parse_test_result_line("(d12) Test result: SUCCESS").map(|r| r.verdict),
            Some(Verdict::Success)
        );
    }

    /// Only a line that starts with the marker, or with a domain's PV console
    /// prefix and then the marker, is a verdict: none of these are.
    #[test]
    fn verdicts_only_where_nobody_can_forge_them() {
        for line in [
            "(d1:com1) Test result: SUCCESS",
            "keel: domain 1 said Test result: SUCCESS",
            "(d1) x Test result: SUCCESS",
            "(d1)Test result: SUCCESS",
            "(d) Test result: SUCCESS",
            "(dx) Test result: SUCCESS",
            " Test result: SUCCESS",
            r"(d1) \xe2\x80\xa8Test result: SUCCESS",
        ] {
            assert_eq!(parse_test_result_line(line), None, "{line}");
        }
        // A forged verdict inside a guest line changes nothing: the guest's
        // real last verdict wins.
        let c = "(d1) Test result: FAILURE: x
(d1:com1) Test result: SUCCESS
keel: power off, status 1 (guest crashed)
";
        assert_eq!(test_result(c).unwrap().verdict, Verdict::Failure);
    }

    #[test]
    fn numbered_lines() {
        let ok = "(d1) KEEL-SEQ a 0/3 x\n(d1) KEEL-SEQ b 0/1\nkeel: between\n(d1) KEEL-SEQ a 1/3\n(d1) KEEL-SEQ partial\n(d1) KEEL-SEQ a 2/3 y\n";
        assert_eq!(sequence_problem(ok), None);
        assert_eq!(sequence_problem("no numbered lines\n"), None);
        let gap = "(d1) KEEL-SEQ a 0/3\n(d1) KEEL-SEQ a 2/3\n";
        assert!(sequence_problem(gap)
            .unwrap()
            .contains("2/3 where 1/3 was due"));
        let short = "(d1) KEEL-SEQ a 0/3\n(d1) KEEL-SEQ a 1/3\n";
        assert!(sequence_problem(short).unwrap().contains("only 2 of 3"));
        let swap = "(d1) KEEL-SEQ a 1/2\n(d1) KEEL-SEQ a 0/2\n";
        assert!(sequence_problem(swap).is_some());
        // Only PV console lines count: a COM1 line cannot complete a sequence.
        let com1 = "(d1) KEEL-SEQ a 0/2\n(d1:com1) KEEL-SEQ a 1/2\n";
        assert!(sequence_problem(com1).unwrap().contains("only 1 of 2"));
    }

    #[test]
    fn tail_and_diagnostics() {
        assert_eq!(
            tail(CONSOLE, 2),
            "keel: domain 1 shut down: poweroff\nkeel: power off, status 0 (guest powered off)"
        );
        assert_eq!(tail("a\nb", 10), "a\nb");
        assert_eq!(tail("", 3), "");
        assert_eq!(
            hypervisor_lines(CONSOLE, 2),
            [
                "keel: domain 1 shut down: poweroff",
                "keel: power off, status 0 (guest powered off)"
            ]
        );
    }
}
