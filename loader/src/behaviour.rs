//! Behaviour fixtures: what each released hypervisor *did*, frozen, and the
//! comparison that names every line today's hypervisor changes
//! (docs/abi-versioning.md, "Behaviour fixtures").
//!
//! The guest program `abi_behaviour` prints one line per call,
//! `behaviour: <since> <call> [<class>] = <result>[; <effect>]`; the host adds the
//! power-off status as `- exit-status [end] = <n>`. A release's transcript, made
//! on its frozen hypervisor, is `abi/fixtures/<version>/behaviour.txt`. Today's
//! hypervisor must give the same answer on every line whose sub-command that
//! release implemented (`since` at or below it), unless the line is amended
//! (`abi/fixtures/behaviour-amendments.txt`: a deliberate, reviewed change, with
//! its reason); a line the release answered `-ENOSYS` may change (an addition).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use keel_abi::version::AbiVersion;

/// The marker of a transcript line on the guest's console.
pub const MARKER: &str = "behaviour: ";
/// The name of a release's transcript in its fixture directory.
pub const FIXTURE: &str = "behaviour.txt";
/// The amendments file, next to the release directories.
pub const AMENDMENTS: &str = "behaviour-amendments.txt";

/// One transcript line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The version that introduced the sub-command (`0.1`, `1.0`), or `-`.
    pub since: String,
    /// `<call> [<class>]`: what was called, with which class of arguments.
    pub key: String,
    /// `<result>[; <effect>]`.
    pub value: String,
}

impl Line {
    /// Parse `<since> <call> [<class>] = <value>`.
    pub fn parse(s: &str) -> Option<Line> {
        let (since, rest) = s.split_once(' ')?;
        let (key, value) = rest.split_once("] = ")?;
        Some(Line {
            since: since.to_string(),
            key: format!("{key}]"),
            value: value.to_string(),
        })
    }

    /// The version that introduced it, if it is one.
    fn since_version(&self) -> Option<AbiVersion> {
        let (ma, mi) = self.since.split_once('.')?;
        Some(AbiVersion {
            major: ma.parse().ok()?,
            minor: mi.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} = {}", self.since, self.key, self.value)
    }
}

/// The transcript in a console: every line after [`MARKER`] (behind the
/// hypervisor's `(dN) ` prefix), then the power-off status.
pub fn from_console(console: &str, status: Option<u8>) -> Vec<Line> {
    let mut v: Vec<Line> = console
        .lines()
        .filter_map(|l| l.split_once(MARKER).map(|(_, t)| t.trim_end()))
        .filter_map(Line::parse)
        .collect();
    v.push(Line {
        since: "-".into(),
        key: "exit-status [end]".into(),
        value: status.map_or("none".into(), |s| s.to_string()),
    });
    v
}

/// The fixture file's text for a transcript.
pub fn render(version: &str, lines: &[Line]) -> String {
    let mut s = format!(
        "# Keel behaviour transcript of ABI {version}: the guest program abi_behaviour on the \
         frozen {version} hypervisor\n# (loader/tests/abi_behaviour.rs; docs/abi-versioning.md). \
         Regenerated only from that hypervisor.\n"
    );
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    s
}

/// Parse a fixture file (comments and blank lines skipped).
pub fn parse_fixture(text: &str) -> Result<Vec<Line>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| Line::parse(l).ok_or_else(|| format!("not a transcript line: {l:?}")))
        .collect()
}

/// A deliberate change to a released answer: `<version> | <key> | <new value> | <reason>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Amendment {
    /// The release whose answer changes.
    pub version: String,
    /// The line's key.
    pub key: String,
    /// What the hypervisor answers from now on.
    pub value: String,
    /// Why (reviewed like a fixture change).
    pub reason: String,
}

/// Parse the amendments file.
pub fn parse_amendments(text: &str) -> Result<Vec<Amendment>, String> {
    let mut v = Vec::new();
    for l in text.lines() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.split(" | ").collect();
        let [version, key, value, reason] = f.as_slice() else {
            return Err(format!(
                "not `<version> | <key> | <new value> | <reason>`: {l:?}"
            ));
        };
        if reason.trim().is_empty() {
            return Err(format!("an amendment without a reason: {l:?}"));
        }
        v.push(Amendment {
            version: version.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        });
    }
    Ok(v)
}

/// Compare today's transcript with release `version`'s: one message per line
/// that changed, vanished or appeared, and per amendment that no longer applies.
pub fn compare(
    version: &str,
    released: &[Line],
    today: &[Line],
    amendments: &[Amendment],
) -> Vec<String> {
    let v: Option<AbiVersion> = Line {
        since: version.into(),
        key: String::new(),
        value: String::new(),
    }
    .since_version();
    let now: BTreeMap<&str, &Line> = today.iter().map(|l| (l.key.as_str(), l)).collect();
    let mut errors = Vec::new();
    let amended = |key: &str| {
        amendments
            .iter()
            .find(|a| a.version == version && a.key == key)
    };
    for a in amendments.iter().filter(|a| a.version == version) {
        if !released.iter().any(|l| l.key == a.key) {
            errors.push(format!(
                "amendment of {version} `{}`: no such line in its transcript",
                a.key
            ));
        }
    }
    for r in released {
        let Some(t) = now.get(r.key.as_str()) else {
            errors.push(format!(
                "`{}`: answered `{}` by {version}, no longer called or answered (the program stopped early?)",
                r.key, r.value
            ));
            continue;
        };
        let promised = match (r.since_version(), v) {
            (Some(s), Some(v)) => s <= v,
            // Lines no release implements, and the exit status.
            _ => r.key.starts_with("exit-status"),
        };
        let may_grow = !promised && r.value.starts_with("-ENOSYS");
        match amended(&r.key) {
            Some(a) if t.value == a.value => {}
            Some(a) if t.value == r.value => errors.push(format!(
                "`{}`: amended for {version} to `{}` ({}), but today's hypervisor still answers `{}`: drop the amendment",
                r.key, a.value, a.reason, r.value
            )),
            Some(a) => errors.push(format!(
                "`{}`: {version} answered `{}`, amended to `{}`, today `{}`",
                r.key, r.value, a.value, t.value
            )),
            None if t.value == r.value || may_grow => {}
            None => errors.push(format!(
                "`{}` (since {}): {version} answered `{}`, today's hypervisor `{}`",
                r.key, r.since, r.value, t.value
            )),
        }
    }
    for t in today {
        if !released.iter().any(|r| r.key == t.key) {
            errors.push(format!(
                "`{}`: not in the {version} transcript (the program changed: regenerate the \
                 transcript from the frozen {version} hypervisor)",
                t.key
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(lines: &[&str]) -> Vec<Line> {
        lines.iter().map(|l| Line::parse(l).unwrap()).collect()
    }

    const V10: &[&str] = &[
        "0.1 sched_op/SCHEDOP_shutdown [unknown reason] = -EINVAL; still running",
        "1.0 sched_op/SCHEDOP_poll [NULL] = -EFAULT",
        "- hypercall 2^64-1 [no such number] = -ENOSYS",
        "- exit-status [end] = 0",
    ];

    #[test]
    fn parse_and_render_round_trip() {
        let l = Line::parse("1.0 multicall [empty batch] = 0; results 1 2").unwrap();
        assert_eq!(l.since, "1.0");
        assert_eq!(l.key, "multicall [empty batch]");
        assert_eq!(l.value, "0; results 1 2");
        let text = render("1.0", &t(V10));
        assert_eq!(parse_fixture(&text).unwrap(), t(V10));
        let c = from_console(
            "keel: x\n(d1) behaviour: 1.0 multicall [empty batch] = 0\n(d1) other\n",
            Some(0),
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].to_string(), "- exit-status [end] = 0");
    }

    #[test]
    fn a_changed_error_code_is_named() {
        let mut now = t(V10);
        now[1].value = "-EINVAL".into();
        let e = compare("1.0", &t(V10), &now, &[]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("SCHEDOP_poll [NULL]"), "{e:?}");
        assert!(
            e[0].contains("-EFAULT") && e[0].contains("-EINVAL"),
            "{e:?}"
        );
        // The exit status is a promise too.
        let mut now = t(V10);
        now[3].value = "3".into();
        assert_eq!(compare("1.0", &t(V10), &now, &[]).len(), 1);
    }

    #[test]
    fn an_addition_is_allowed_a_vanished_line_is_not() {
        // 0.1 answered a 1.0 sub-command -ENOSYS: a later hypervisor may implement it.
        let mut old = t(V10);
        old[1].value = "-ENOSYS".into();
        assert!(compare("0.1", &old, &t(V10), &[]).is_empty());
        // ... but not a 0.1 one.
        let mut now = t(V10);
        now[0].value = "0".into();
        assert_eq!(compare("0.1", &t(V10), &now, &[]).len(), 1);
        let now = t(&V10[..3]);
        let e = compare("1.0", &t(V10), &now, &[]);
        assert!(e.iter().any(|m| m.contains("exit-status")), "{e:?}");
        let mut now = t(V10);
        now.push(Line::parse("1.0 multicall [new] = 0").unwrap());
        assert_eq!(compare("1.0", &t(V10), &now, &[]).len(), 1);
    }

    #[test]
    fn amendments_apply_to_their_line_only_and_must_be_current() {
        let a = parse_amendments(
            "# comment\n1.0 | sched_op/SCHEDOP_shutdown [unknown reason] | 0; shut down | Xen's rule\n",
        )
        .unwrap();
        let mut now = t(V10);
        now[0].value = "0; shut down".into();
        assert!(compare("1.0", &t(V10), &now, &a).is_empty());
        // Not for another release.
        assert_eq!(compare("0.1", &t(V10), &now, &a).len(), 1);
        // An amendment the hypervisor does not follow, or no longer needs.
        now[0].value = "-EPERM".into();
        assert_eq!(compare("1.0", &t(V10), &now, &a).len(), 1);
        let e = compare("1.0", &t(V10), &t(V10), &a);
        assert!(e[0].contains("drop the amendment"), "{e:?}");
        assert!(parse_amendments("1.0 | k | v | \n").is_err());
        assert!(parse_amendments("1.0 | k | v\n").is_err());
    }
}
