//! JUnit XML, the format CI systems read test results from.
//!
//! One `<testsuite name="keel">` with a `<testcase>` per test program
//! (`classname` = `keel.<category>`). FAILURE maps to `<failure>`, ERROR and CRASH
//! to `<error>`, SKIP to `<skipped>`; the console goes to `<system-out>`.

use crate::console::Verdict;

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

/// Escape text for XML content or a double-quoted attribute. Characters XML 1.0
/// cannot carry at all (most C0 controls; a console can hold anything) become
/// U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The JUnit XML document for `cases`.
pub fn render(cases: &[Case<'_>]) -> String {
    let count = |f: fn(Verdict) -> bool| cases.iter().filter(|c| f(c.verdict)).count();
    let failures = count(|v| v == Verdict::Failure);
    let errors = count(|v| matches!(v, Verdict::Error | Verdict::Crash));
    let skipped = count(|v| v == Verdict::Skip);
    let time: f64 = cases.iter().map(|c| c.seconds).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let totals = format!(
        "tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\"",
        cases.len()
    );
    x += &format!("<testsuites {totals}>\n  <testsuite name=\"keel\" {totals}>\n");
    for c in cases {
        x += &format!(
            "    <testcase classname=\"keel.{}\" name=\"{}\" time=\"{:.3}\">\n",
            escape(c.category),
            escape(c.name),
            c.seconds
        );
        let msg = escape(&format!("{}: {}", c.verdict, c.reason));
        match c.verdict {
            Verdict::Success => {}
            Verdict::Skip => x += &format!("      <skipped message=\"{msg}\"/>\n"),
            Verdict::Failure => {
                x += &format!(
                    "      <failure message=\"{msg}\" type=\"FAILURE\">{}</failure>\n",
                    escape(c.details)
                )
            }
            Verdict::Error | Verdict::Crash => {
                x += &format!(
                    "      <error message=\"{msg}\" type=\"{}\">{}</error>\n",
                    c.verdict,
                    escape(c.details)
                )
            }
        }
        x += &format!(
            "      <system-out>{}</system-out>\n    </testcase>\n",
            escape(c.console)
        );
    }
    x += "  </testsuite>\n</testsuites>\n";
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape("a<b>&\"c\" 'd'"),
            "a&lt;b&gt;&amp;&quot;c&quot; &apos;d&apos;"
        );
        assert_eq!(escape("x\u{1}\u{1b}[0m\ty\n"), "x\u{fffd}\u{fffd}[0m\ty\n");
        assert_eq!(escape("é😀"), "é😀");
    }

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
                console: "\u{7}bell",
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
        assert!(x.contains(
            "<testsuites tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\" time=\"64.000\">"
        ));
        assert!(x.contains("name=\"pin&lt;l1&gt;\""));
        assert!(x.contains("<failure message=\"FAILURE: pin returned 0 &amp; more\" type=\"FAILURE\">tail</failure>"));
        assert!(x.contains("<error message=\"CRASH: timed out\" type=\"CRASH\">"));
        assert!(x.contains("<skipped message=\"SKIP: no EPT\"/>"));
        assert!(x.contains("<system-out>\u{fffd}bell</system-out>"));
        assert_eq!(x.matches("<testcase ").count(), 4);
        assert_eq!(x.matches("</testcase>").count(), 4);
    }
}
