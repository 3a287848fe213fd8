use super::*;

#[test]
fn struct_data_matches_the_compile_time_assertions() {
    let si = STRUCTS.iter().find(|s| s.name == "StartInfo").unwrap();
    assert_eq!(si.size, 1168);
    assert_eq!(si.align, 8);
    let f = |n: &str| si.fields.iter().find(|f| f.name == n).unwrap();
    assert_eq!((f("nr_pages").offset, f("nr_pages").size), (32, 8));
    assert_eq!((f("console").offset, f("console").size), (72, 16));
    assert_eq!((f("cmd_line").offset, f("cmd_line").size), (128, 1024));
    assert_eq!(f("console").xen, Some("console.domU"));
}

#[test]
fn fields_are_ordered_disjoint_and_inside_the_struct() {
    for s in STRUCTS {
        let mut end = 0;
        for f in s.fields {
            assert!(f.offset >= end, "{}.{} overlaps", s.name, f.name);
            end = f.offset + f.size;
        }
        assert!(end <= s.size, "{} fields run past its size", s.name);
        assert_eq!(s.size % s.align, 0);
    }
}

#[test]
fn constant_names_are_unique_within_a_family() {
    let all: std::vec::Vec<_> = constants().collect();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert!(
                !(a.family == b.family && a.name == b.name),
                "{} registered twice",
                a.name
            );
        }
    }
}

#[test]
fn nothing_is_newer_than_the_current_version_but_the_one_in_progress() {
    let ok = |v: AbiVersion| v <= AbiVersion::CURRENT || Some(v) == IN_PROGRESS;
    for c in constants() {
        assert!(ok(c.since), "{}", c.name);
    }
    for s in STRUCTS {
        assert!(ok(s.since), "{}", s.name);
    }
    for g in GOLDEN {
        assert!(ok(g.since), "{}", g.name);
    }
    if let Some(next) = IN_PROGRESS {
        assert!(next > AbiVersion::CURRENT);
        assert_eq!(
            (next.major, next.minor),
            (AbiVersion::CURRENT.major, AbiVersion::CURRENT.minor + 1)
        );
    }
    for h in crate::hypercall::ALL {
        if let Some(v) = h.implemented_since() {
            assert!(ok(v), "{:?}", h.name());
        }
    }
    assert!(RELEASED.windows(2).all(|w| w[0] < w[1]));
    assert!(*RELEASED.last().unwrap() <= AbiVersion::CURRENT);
}

#[test]
fn items_in_progress_are_left_out_of_the_description() {
    let mut d = std::string::String::new();
    write_fixture(&mut d).unwrap();
    let staged: std::vec::Vec<_> = STRUCTS
        .iter()
        .filter(|s| !described(s.since))
        .map(|s| s.name)
        .chain(constants().filter(|c| !described(c.since)).map(|c| c.name))
        .chain(
            GOLDEN
                .iter()
                .filter(|g| !described(g.since))
                .map(|g| g.name),
        )
        .collect();
    // Only the version in progress may have items outside the description.
    assert!(IN_PROGRESS.is_some() || staged.is_empty(), "{staged:?}");
    for name in staged {
        assert!(
            !d.contains(&std::format!(".{name} ")),
            "{name} is in the dump"
        );
    }
    // Sub-commands served early to images that declare the version in
    // progress are not claimed by the description either.
    for s in crate::hypercall::IMPLEMENTED {
        let claimed = d.contains(&std::format!("/{} ", s.name));
        assert_eq!(claimed, described(s.since), "{}", s.name);
    }
    // The rule itself: the current version is described, the next is not.
    let next = AbiVersion {
        major: AbiVersion::CURRENT.major,
        minor: AbiVersion::CURRENT.minor + 1,
    };
    assert!(described(AbiVersion::CURRENT) && !described(next));
    assert!(described(AbiVersion::V1_0) && described(AbiVersion::V1_1));
}

#[test]
fn the_1_1_items_are_described() {
    let mut d = std::string::String::new();
    write_fixture(&mut d).unwrap();
    assert!(
        d.contains("struct grant_table.GrantEntryV1 "),
        "grant entry"
    );
    assert!(d.contains("const grant_table.GNTST_BAD_GNTREF "), "GNTST");
    assert!(d.contains("implemented grant_table_op since=1.1"));
    for sub in [
        "grant_table_op/GNTTABOP_copy",
        "event_channel_op/EVTCHNOP_bind_interdomain",
    ] {
        let line = d
            .lines()
            .find(|l| l.starts_with(&std::format!("implemented {sub} ")));
        assert!(
            line.is_some_and(|l| l.ends_with(" since=1.1")),
            "{sub}: {line:?}"
        );
    }
    assert!(d.contains("struct domctl.XenDomctl "), "domctl envelope");
    assert!(d.contains("struct ring.SringHeader "), "ring header");
}

#[test]
fn golden_start_info_puts_each_field_at_its_offset() {
    // The sample's low bytes are the field offsets: the encoder must agree with
    // offset_of! for every integer field.
    let si = STRUCTS.iter().find(|s| s.name == "StartInfo").unwrap();
    GOLDEN[0].with_bytes(|b| {
        assert_eq!(b.len(), si.size);
        for f in si.fields {
            if matches!(f.name, "magic" | "flags" | "cmd_line") {
                continue;
            }
            assert_eq!(b[f.offset], f.offset as u8, "{}", f.name);
        }
        assert_eq!(b[72 + 8], 80, "console.evtchn");
    });
}

#[test]
fn the_current_version_runs_guests_of_the_oldest_release() {
    // 1.x: every 0.x guest runs, so a guest that declares 0.1 runs on the
    // frozen 0.1 hypervisor and on every 1.x one.
    assert_eq!(
        oldest_release_runnable_by(AbiVersion::CURRENT),
        Some(AbiVersion::V0_1)
    );
    assert_eq!(
        oldest_release_runnable_by(AbiVersion::V0_1),
        Some(AbiVersion::V0_1)
    );
    assert_eq!(
        oldest_release_runnable_by(AbiVersion { major: 2, minor: 0 }),
        None
    );
}

#[test]
fn every_sample_puts_each_field_at_its_offset() {
    // The samples' low bytes are the field offsets: each encoder must agree
    // with offset_of! for every field (offset 0 is where every encoder starts).
    let mut checked = 0;
    // (0.1's samples predate the rule and are frozen as they are.)
    let samples = GOLDEN
        .iter()
        .filter(|g| g.name.ends_with(".sample") && g.since >= AbiVersion::V1_0);
    for g in samples {
        let Some(s) = STRUCTS
            .iter()
            .find(|s| g.name == std::format!("{}.{}.sample", s.family.module(), s.name))
        else {
            panic!("golden {} names no structure", g.name);
        };
        g.with_bytes(|b| {
            assert_eq!(b.len(), s.size, "{}", g.name);
            for f in s.fields.iter().filter(|f| f.offset != 0) {
                assert_eq!(b[f.offset], f.offset as u8, "{}.{}", s.name, f.name);
            }
        });
        checked += 1;
    }
    assert!(checked >= 17, "only {checked} samples checked");
}

#[test]
fn every_structure_since_1_0_has_a_golden_sample() {
    for s in STRUCTS.iter().filter(|s| s.since >= AbiVersion::V1_0) {
        let name = std::format!("{}.{}.sample", s.family.module(), s.name);
        let g = GOLDEN.iter().find(|g| g.name == name);
        assert!(g.is_some(), "no golden sample {name}");
        assert_eq!(g.unwrap().since, s.since, "{name}");
    }
}

#[test]
fn golden_names_are_unique_and_fit() {
    for (i, a) in GOLDEN.iter().enumerate() {
        assert!(
            GOLDEN[i + 1..].iter().all(|b| b.name != a.name),
            "{}",
            a.name
        );
        let mut buf = [0u8; GOLDEN_MAX];
        assert!((a.encode)(&mut buf) <= GOLDEN_MAX, "{}", a.name);
    }
}

#[test]
fn every_implemented_hypercall_has_a_family() {
    for h in crate::hypercall::ALL {
        if h.implemented_since().is_some() {
            assert!(Family::of_hypercall(*h).is_some(), "{:?}", h.name());
        }
    }
}
