//! Comparing a released fixture with the current crate (feature `alloc`).
//!
//! Both sides are text in the fixture format, so the comparison is one simple
//! algorithm over keyed lines: the key of a line is `<kind> <name>`, the rest is
//! its value. Every key of the released fixture must still exist with the same
//! value, except for three kinds whose values may *grow* compatibly:
//!
//! - `abi-version`: the current version must be able to run a guest of the
//!   released one ([`AbiVersion::can_run`]: same major, minor not older);
//! - `features`: the current feature bitmap must contain every released bit;
//! - nothing else: a hypercall that was `-ENOSYS` may become implemented (that is
//!   an *added* `implemented` line), but an implemented one may never regress.
//!
//! Lines that exist only in the current crate are additions. They are allowed,
//! because additions are how the ABI grows, but they must belong to a *later*
//! version than the fixture: an item whose `since=` is the fixture's version (or
//! older), or a new field of a released structure, or a new chunk of a released
//! golden sample, is a change to a released version and is reported.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::version::AbiVersion;

/// Render the current ABI description in the fixture format
/// (what `cargo keel abi dump` prints and `abi/fixtures/<v>/layout.txt` holds).
pub fn dump() -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = super::write_fixture(&mut s);
    s
}

/// Check the current crate against a released fixture: `Ok(())` when every item of
/// the fixture still exists unchanged (additions belonging to a later version are
/// allowed), otherwise every violation, each naming its item.
///
/// This is `cargo keel abi check` and the test run by `cargo test -p keel-abi` for
/// every directory of `abi/fixtures/`.
pub fn check(fixture: &str) -> Result<(), Vec<Violation>> {
    check_against(fixture, &dump())
}

/// [`check`] with the current description given as text (for tests of the checker
/// itself and for comparing two fixtures).
pub fn check_against(fixture: &str, current: &str) -> Result<(), Vec<Violation>> {
    let mut violations = Vec::new();
    let released = parse(fixture, &mut violations);
    // The current description is generated; a malformed line there is a bug in
    // the dump and is reported the same way.
    let now = parse(current, &mut violations);

    let released_version = released
        .get(&("abi-version", "keel"))
        .and_then(|e| parse_version(e.value));
    let Some(released_version) = released_version else {
        violations.push(Violation {
            line: 0,
            item: "abi-version keel".to_string(),
            problem: Problem::Malformed {
                text: "the fixture has no `abi-version keel <major>.<minor>` line".to_string(),
            },
        });
        return Err(violations);
    };

    for (key, old) in &released {
        let item = || format!("{} {}", key.0, key.1);
        let Some(new) = now.get(key) else {
            violations.push(Violation {
                line: old.line,
                item: item(),
                problem: Problem::Vanished,
            });
            continue;
        };
        let compatible = match key.0 {
            "abi-version" => match parse_version(new.value) {
                Some(v) => v.can_run(released_version),
                None => false,
            },
            "features" => bits_grow(old.value, new.value),
            _ => old.value == new.value,
        };
        if !compatible {
            violations.push(Violation {
                line: old.line,
                item: item(),
                problem: Problem::Changed {
                    released: old.value.to_string(),
                    current: new.value.to_string(),
                },
            });
        }
    }

    for (key, new) in &now {
        if released.contains_key(key) {
            continue;
        }
        // A new field of a released struct, or a new chunk of a released golden
        // sample, changes something released even though the line itself is new.
        let parent = match key.0 {
            "field" => key.1.rsplit_once('.').map(|(s, _)| ("struct", s)),
            "golden" => key.1.split_once('@').map(|(g, _)| ("golden", g)),
            _ => None,
        };
        let added_to_released = match parent {
            Some(p) if released.contains_key(&p) => true,
            _ => since(new.value).is_some_and(|v| v <= released_version),
        };
        if added_to_released {
            violations.push(Violation {
                line: new.line,
                item: format!("{} {}", key.0, key.1),
                problem: Problem::AddedToReleased {
                    released: released_version,
                    current: new.value.to_string(),
                },
            });
        }
    }

    if violations.is_empty() {
        Ok(())
    } else {
        violations.sort_by_key(|v| v.line);
        Err(violations)
    }
}

/// One line of a description: `<kind> <name> <value>`.
struct Entry<'a> {
    line: usize,
    value: &'a str,
}

/// Parse a description into a map keyed by `(kind, name)`; report malformed and
/// duplicate lines.
fn parse<'a>(
    text: &'a str,
    violations: &mut Vec<Violation>,
) -> BTreeMap<(&'a str, &'a str), Entry<'a>> {
    let mut map = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut parts = l.splitn(3, ' ');
        let (Some(kind), Some(name), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            violations.push(Violation {
                line,
                item: l.to_string(),
                problem: Problem::Malformed {
                    text: "expected `<kind> <name> <value>`".to_string(),
                },
            });
            continue;
        };
        if map.insert((kind, name), Entry { line, value }).is_some() {
            violations.push(Violation {
                line,
                item: format!("{kind} {name}"),
                problem: Problem::Malformed {
                    text: "the item appears twice".to_string(),
                },
            });
        }
    }
    map
}

/// `"0.1"` -> 0.1.
fn parse_version(s: &str) -> Option<AbiVersion> {
    let (maj, min) = s.trim().split_once('.')?;
    Some(AbiVersion {
        major: maj.parse().ok()?,
        minor: min.parse().ok()?,
    })
}

/// The `since=<v>` token of a value, if any.
fn since(value: &str) -> Option<AbiVersion> {
    value
        .split(' ')
        .find_map(|t| t.strip_prefix("since="))
        .and_then(parse_version)
}

/// For `features` lines (`= 0x... since=v`): every released bit is still set and
/// the rest of the line is unchanged.
fn bits_grow(old: &str, new: &str) -> bool {
    let split = |v: &str| -> Option<(u64, String)> {
        let mut toks = v.split(' ');
        (toks.next()? == "=").then_some(())?;
        let bits = u64::from_str_radix(toks.next()?.trim_start_matches("0x"), 16).ok()?;
        Some((bits, toks.collect::<Vec<_>>().join(" ")))
    };
    match (split(old), split(new)) {
        (Some((o, orest)), Some((n, nrest))) => n & o == o && orest == nrest,
        _ => false,
    }
}

/// What is wrong with an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The item exists but its value changed incompatibly.
    Changed {
        /// The value in the released fixture.
        released: String,
        /// The current value.
        current: String,
    },
    /// The item of the released fixture no longer exists.
    Vanished,
    /// The item is new but claims to belong to (or changes an item of) a released
    /// version; additions must go to a later version.
    AddedToReleased {
        /// The fixture's version.
        released: AbiVersion,
        /// The new item's value (with its `since=`).
        current: String,
    },
    /// A line that is not `<kind> <name> <value>`, a duplicate, or a missing header.
    Malformed {
        /// What is wrong.
        text: String,
    },
}

/// One incompatibility between a released fixture and the current crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The line of the fixture (or, for additions, of the current dump); 0 if none.
    pub line: usize,
    /// The item's key: `<kind> <name>`, e.g. `const sched.SCHEDOP_YIELD`.
    pub item: String,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Violation {
    /// One line: `line 12: const sched.SCHEDOP_YIELD changed: released "= 0 since=0.1", now "= 1 since=0.1"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {} ", self.line, self.item)?;
        match &self.problem {
            Problem::Changed { released, current } => {
                write!(f, "changed: released \"{released}\", now \"{current}\"")
            }
            Problem::Vanished => write!(f, "vanished (it is part of a released version)"),
            Problem::AddedToReleased { released, current } => write!(
                f,
                "was added to released version {released} (\"{current}\"); additions \
                 belong to the next version: give it a later `since` and bump \
                 AbiVersion::CURRENT (docs/abi-versioning.md)"
            ),
            Problem::Malformed { text } => write!(f, "malformed: {text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_crate_matches_its_own_dump() {
        assert_eq!(check(&dump()), Ok(()));
    }

    #[test]
    fn dump_is_deterministic_and_has_every_kind() {
        let d = dump();
        assert_eq!(d, dump());
        for kind in [
            "abi-version ",
            "struct ",
            "field ",
            "const ",
            "features ",
            "errno ",
            "hypercall ",
            "implemented ",
            "exit-status ",
            "test-category ",
            "golden ",
        ] {
            assert!(d.lines().any(|l| l.starts_with(kind)), "no {kind}line");
        }
        assert!(d.contains("const sched.SCHEDOP_SHUTDOWN = 2 since=0.1\n"));
        assert!(d.contains("field start_info.StartInfo.cmd_line offset=128 size=1024\n"));
        assert!(d.contains("hypercall sched_op = 29\n"));
        assert!(d.contains("implemented console_io since=0.1\n"));
    }

    /// The next minor version after the current one (these tests must keep
    /// working when `CURRENT` moves on).
    fn next() -> AbiVersion {
        AbiVersion {
            minor: AbiVersion::CURRENT.minor + 1,
            ..AbiVersion::CURRENT
        }
    }

    fn version_line(v: AbiVersion) -> String {
        format!("abi-version keel {v}")
    }

    /// Replace the first line starting with `prefix` by `with`.
    fn mutate(text: &str, prefix: &str, with: Option<&str>) -> String {
        let mut done = false;
        let mut out = String::new();
        for l in text.lines() {
            if !done && l.starts_with(prefix) {
                done = true;
                if let Some(w) = with {
                    out.push_str(w);
                    out.push('\n');
                }
            } else {
                out.push_str(l);
                out.push('\n');
            }
        }
        assert!(done, "no line starts with {prefix}");
        out
    }

    fn only(v: Result<(), Vec<Violation>>) -> Violation {
        let v = v.expect_err("the mutation must be detected");
        assert_eq!(v.len(), 1, "{v:?}");
        v.into_iter().next().unwrap()
    }

    #[test]
    fn a_changed_constant_in_the_fixture_is_named() {
        let fixture = mutate(
            &dump(),
            "const sched.SCHEDOP_YIELD ",
            Some("const sched.SCHEDOP_YIELD = 7 since=0.1"),
        );
        let v = only(check(&fixture));
        assert_eq!(v.item, "const sched.SCHEDOP_YIELD");
        assert!(matches!(v.problem, Problem::Changed { .. }));
        assert!(v.to_string().contains("SCHEDOP_YIELD changed"));
    }

    #[test]
    fn a_changed_field_offset_is_named() {
        let cur = mutate(
            &dump(),
            "field start_info.StartInfo.flags ",
            Some("field start_info.StartInfo.flags offset=52 size=4"),
        );
        let v = only(check_against(&dump(), &cur));
        assert_eq!(v.item, "field start_info.StartInfo.flags");
    }

    #[test]
    fn a_vanished_item_is_named() {
        let cur = mutate(&dump(), "errno ENOSYS ", None);
        let v = only(check_against(&dump(), &cur));
        assert_eq!(v.item, "errno ENOSYS");
        assert_eq!(v.problem, Problem::Vanished);
    }

    #[test]
    fn an_implemented_hypercall_may_not_regress_but_one_may_be_added() {
        let cur = mutate(&dump(), "implemented sched_op ", None);
        assert_eq!(
            only(check_against(&dump(), &cur)).item,
            "implemented sched_op"
        );
        let mut grown = dump();
        grown.push_str(&format!("implemented vm_assist since={}\n", next()));
        let grown = grown.replace(&version_line(AbiVersion::CURRENT), &version_line(next()));
        assert_eq!(check_against(&dump(), &grown), Ok(()));
    }

    #[test]
    fn a_golden_byte_change_is_named_with_its_offset() {
        let d = dump();
        let line = d
            .lines()
            .find(|l| l.starts_with("golden start_info.StartInfo.sample@0020 "))
            .unwrap();
        let cur = d.replace(line, &line.replacen(" 20 ", " 21 ", 1));
        assert_ne!(cur, d);
        let v = only(check_against(&d, &cur));
        assert_eq!(v.item, "golden start_info.StartInfo.sample@0020");
    }

    #[test]
    fn additions_need_a_later_version() {
        let d = dump();
        let mut cur = d.clone();
        cur.push_str(&format!("const sched.SCHEDOP_NEW = 9 since={}\n", next()));
        assert_eq!(check_against(&d, &cur), Ok(()));
        let mut cur = d.clone();
        cur.push_str(&format!(
            "const sched.SCHEDOP_NEW = 9 since={}\n",
            AbiVersion::CURRENT
        ));
        let v = only(check_against(&d, &cur));
        assert!(matches!(v.problem, Problem::AddedToReleased { .. }));
        let mut cur = d.clone();
        cur.push_str("field sched.SchedShutdown.extra offset=4 size=4\n");
        assert_eq!(
            only(check_against(&d, &cur)).item,
            "field sched.SchedShutdown.extra"
        );
    }

    #[test]
    fn versions_and_features_may_only_grow() {
        let d = dump();
        let cur = version_line(AbiVersion::CURRENT);
        let two_later = AbiVersion {
            minor: next().minor + 1,
            ..next()
        };
        let newer = d.replace(&cur, &version_line(two_later));
        assert_eq!(check_against(&d, &newer), Ok(()));
        let other_major = d.replace(
            &cur,
            &version_line(AbiVersion {
                major: AbiVersion::CURRENT.major + 1,
                minor: 0,
            }),
        );
        assert_eq!(
            only(check_against(&d, &other_major)).item,
            "abi-version keel"
        );
        // A fixture newer than the crate cannot be satisfied.
        assert!(check(&newer).is_err());

        let bits = crate::version::features::SUBMAP0;
        let unset = (0..32).map(|b| 1u32 << b).find(|b| bits & b == 0).unwrap();
        let with_bit = d.replace(
            &format!("features submap0 = {bits:#010x}"),
            &format!("features submap0 = {:#010x}", bits | unset),
        );
        assert_ne!(with_bit, d);
        assert_eq!(check_against(&d, &with_bit), Ok(()));
        assert_eq!(only(check_against(&with_bit, &d)).item, "features submap0");
    }

    /// Exhaustively: changing the value of any single line of the fixture is
    /// reported as exactly one violation naming that line's item. Deleting a line
    /// from a fixture makes the current item look *added*: that is reported for
    /// every kind that records its version (or belongs to a released parent), and
    /// allowed for the kinds without one (error codes, hypercall numbers, exit
    /// statuses, test categories), whose additions only the "frozen exactly" test
    /// of a released current version restricts.
    #[test]
    fn every_single_line_mutation_is_named() {
        let d = dump();
        for (i, line) in d.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let key = format!("{} {}", parts.next().unwrap(), parts.next().unwrap());
            let replace = |with: Option<String>| -> String {
                let mut out = String::new();
                for (j, l) in d.lines().enumerate() {
                    if j != i {
                        out.push_str(l);
                        out.push('\n');
                    } else if let Some(w) = &with {
                        out.push_str(w);
                        out.push('\n');
                    }
                }
                out
            };
            let changed = replace(Some(format!("{line}9")));
            let v = check(&changed).expect_err(line);
            assert_eq!(v.len(), 1, "{line}: {v:?}");
            assert_eq!(v[0].item, key, "{line}");
            assert_eq!(v[0].line, i + 1, "{line}");
            let kind = key.split(' ').next().unwrap();
            let must = !matches!(
                kind,
                "errno" | "hypercall" | "exit-status" | "test-category"
            );
            let reported = check(&replace(None)).is_err_and(|v| v.iter().any(|v| v.item == key));
            assert_eq!(reported, must, "deleting {line}");
        }
    }

    #[test]
    fn malformed_and_headerless_fixtures_fail() {
        let d = dump();
        let bad = format!("{d}nonsense\n");
        assert!(matches!(
            only(check(&bad)).problem,
            Problem::Malformed { .. }
        ));
        let dup = format!("{d}errno EPERM = 1\n");
        assert!(check(&dup).is_err());
        assert!(check("").is_err());
    }
}
