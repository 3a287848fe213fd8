#[test]
fn l0_exits_from_marks() {
    // Mark 0: the run's start to the first calibration read; 0 -> 1: the
    // calibration pair (3 exits: the tail of one read, the head of the next,
    // the mark itself); then a figure over pairs (2, 3) and (4, 5).
    let l0 = [(50, 9), (3, 1), (8, 2), (2003, 1001), (9, 3), (2003, 1001)];
    assert_eq!(super::l0_for_marks(&l0, (2, 2, 0)), Some((4000.0, 2000.0)));
    // A single pair.
    assert_eq!(super::l0_for_marks(&l0, (2, 1, 0)), Some((2000.0, 1000.0)));
    // Marks the trace does not reach: no count rather than a wrong one.
    assert_eq!(super::l0_for_marks(&l0, (4, 2, 0)), None);
    assert_eq!(super::l0_for_marks(&[], (0, 1, 0)), None);
}

#[test]
fn marks_field_parses() {
    let (_, m) = super::parse_figure(&[
        "KEEL-BENCH v1 name=x n=2 per=1 min=1 p10=1 median=1 p90=1 max=1",
        "KEEL-BENCH v1 name=x exits=2 vmreads=6 vmwrites=2",
        "KEEL-BENCH v1 name=x marks=2,1,0",
    ])
    .unwrap();
    let super::Measure::Measured(m) = m else {
        panic!("not measured")
    };
    assert_eq!(m.marks, Some((2, 1, 0)));
    assert!(super::parse_figure(&[
        "KEEL-BENCH v1 name=x n=2 per=1 min=1 p10=1 median=1 p90=1 max=1",
        "KEEL-BENCH v1 name=x marks=2,1",
    ])
    .is_err());
}

use super::*;

const LINE: &str = "(d1) KEEL-BENCH v1 name=xen_version n=1000 per=1 min=170 p10=171 median=174 p90=180 max=300\r\n(d1) KEEL-BENCH v1 name=xen_version exits=1000 vmreads=3000 vmwrites=1000\r\n(d1) KEEL-BENCH v1 name=xen_version reasons=18:990,0:5\n(d1) KEEL-BENCH v1 name=xen_version reasons=30:5\n";

fn measured(median: f64, exits: f64, vmcs: f64) -> Measure {
    Measure::Measured(Measured {
        n: 10,
        per: 1,
        min: median,
        p10: median,
        median,
        p90: median,
        max: median,
        exits: Some(exits * 10.0),
        vmreads: Some(vmcs * 10.0),
        vmwrites: Some(0.0),
        reasons: BTreeMap::from([(18, exits * 10.0)]),
        marks: None,
        l0_exits: None,
        l0_reflected: None,
    })
}

fn fig(program: &str, name: &str, m: Measure) -> Figure {
    Figure {
        program: program.into(),
        name: name.into(),
        measure: m,
    }
}

fn machine() -> MachineId {
    MachineId {
        backend: "bochs".into(),
        cpu_model: "corei7_skylake_x".into(),
        ips: 2_000_000,
    }
}

fn report(figures: Vec<Figure>) -> Report {
    Report {
        machine: machine(),
        runs: 1,
        rustc: Some("rustc 1.95.0 (59807616e 2026-04-14)".into()),
        figures,
    }
}

#[test]
fn parses_a_figure_from_its_lines() {
    let figs = parse_console("bench_hypercalls", LINE).unwrap();
    assert_eq!(figs.len(), 1);
    assert_eq!(figs[0].key(), "bench_hypercalls/xen_version");
    let m = figs[0].measured().unwrap();
    assert_eq!((m.n, m.per, m.median, m.max), (1000, 1, 174.0, 300.0));
    assert_eq!(m.exits_per_op(), Some(1.0));
    assert_eq!(m.vmcs_per_op(), Some(4.0));
    assert_eq!(m.vmcs_per_exit(), Some(4.0));
    assert_eq!(
        m.reasons,
        BTreeMap::from([(0, 5.0), (18, 990.0), (30, 5.0)])
    );
    assert_eq!(m.cost(), 174.0);
    // Lines of other figures may come in between.
    let (name, _) = parse_figure(&[
        "KEEL-BENCH v1 name=a n=1 per=1 min=1 p10=1 median=1 p90=1 max=1",
        "KEEL-BENCH v1 name=a exits=- vmreads=- vmwrites=-",
    ])
    .unwrap();
    assert_eq!(name, "a");
}

#[test]
fn parses_missing_and_counterless_figures() {
    let (name, m) = parse_figure(&[
        "(d1) KEEL-BENCH v1 name=multicall_16 missing=multicall returned -38 (ENOSYS)",
    ])
    .unwrap();
    assert_eq!(name, "multicall_16");
    assert_eq!(
        m,
        Measure::Missing("multicall returned -38 (ENOSYS)".into())
    );
    let (_, m) = parse_figure(&[
        "KEEL-BENCH v1 name=mmu_update_512 n=10 per=512 min=51200 p10=51200 median=51200 p90=51200 max=51200",
        "KEEL-BENCH v1 name=mmu_update_512 exits=- vmreads=- vmwrites=-",
    ])
    .unwrap();
    let Measure::Measured(m) = m else { panic!() };
    assert_eq!(m.cost(), 100.0);
    assert_eq!(m.exits_per_op(), None);
    assert_eq!(m.vmcs_per_exit(), None);
}

#[test]
fn rejects_malformed_figures_and_ignores_other_lines() {
    assert!(parse_line("(d1) hello").is_none());
    for bad in [
        "KEEL-BENCH v2 name=x n=1",
        "KEEL-BENCH v1 n=1",
        "KEEL-BENCH v1 name=x",
        "KEEL-BENCH v1 name=Bad n=1 per=1 min=1 p10=1 median=1 p90=1 max=1",
        "KEEL-BENCH v1 name=x n=1 per=1 min=1 p10=1 median=1 p90=1 max=1 junk",
    ] {
        assert!(parse_line(bad).unwrap().is_err(), "{bad}");
    }
    let full = "KEEL-BENCH v1 name=x n=1 per=1 min=1 p10=1 median=1 p90=1 max=1";
    for bad in [
        // max missing
        vec!["KEEL-BENCH v1 name=x n=1 per=1 min=1 p10=1 median=1 p90=1"],
        vec!["KEEL-BENCH v1 name=x n=1 per=0 min=1 p10=1 median=1 p90=1 max=1"],
        vec!["KEEL-BENCH v1 name=x n=1 per=1 min=5 p10=1 median=1 p90=1 max=1"],
        vec!["KEEL-BENCH v1 name=x n=1 per=1 min=1 p10=1 median=x p90=1 max=1"],
        vec![full, "KEEL-BENCH v1 name=x reasons=18"],
        vec![
            full,
            "KEEL-BENCH v1 name=x reasons=18:1",
            "KEEL-BENCH v1 name=x reasons=18:1",
        ],
        vec![full, "KEEL-BENCH v1 name=x median=2"],
        vec![full, "KEEL-BENCH v1 name=x colour=blue"],
        vec![full, "KEEL-BENCH v1 name=x missing=no"],
    ] {
        assert!(parse_figure(&bad).is_err(), "{bad:?}");
    }
    let twice = format!("{LINE}\n{LINE}\n");
    assert!(parse_console("p", &twice).unwrap_err().contains("twice"));
    let figs = parse_console("p", &format!("(d1) boot\r\n{LINE}\r\n")).unwrap();
    assert_eq!(figs.len(), 1);
}

#[test]
fn reads_older_style_lines_too() {
    let c = "(d1) bench rdmsr FEATURE_CONTROL (emul)   median    210 min    209 max    400 ticks (n=400)\n(d1) bench console ......\n(d1) bench: no counters\n";
    let figs = parse_console("bench_policy", c).unwrap();
    assert_eq!(figs.len(), 1);
    assert_eq!(figs[0].key(), "bench_policy/rdmsr_feature_control_emul");
    let m = figs[0].measured().unwrap();
    assert_eq!((m.median, m.min, m.max, m.n), (210.0, 209.0, 400.0, 400));
    assert_eq!(m.exits, None);
    assert!(
        parse_legacy_line("bench x median 5 min 9 max 1 ticks (n=1)")
            .unwrap()
            .is_err()
    );
    assert!(parse_legacy_line("bench x median 5 min 1 max 9 ticks")
        .unwrap()
        .is_err());
}

#[test]
fn json_round_trip() {
    let r = report(vec![
        fig("bench_hypercalls", "floor", measured(131.0, 1.0, 4.0)),
        fig("bench_hypercalls", "xen_version", measured(177.0, 1.0, 4.0)),
        fig(
            "bench_hypercalls",
            "multicall_16",
            Measure::Missing("not \"there\"\n".into()),
        ),
        fig(
            "bench_mmu",
            "update_512",
            Measure::Measured(Measured::timing(3, 512, [1.0, 2.0, 76801.0, 76802.0, 1e9])),
        ),
    ]);
    let text = to_json(&r);
    assert!(text.contains("\"vs_floor\": 1.3511"), "{text}");
    let back = from_json(&text).unwrap();
    assert_eq!(back, r);
    assert!(from_json("{}").is_err());
    assert!(from_json("not json").is_err());
    let no_median = text.replacen("\"median\": 131,", "", 1);
    assert!(from_json(&no_median).is_err(), "{no_median}");
    // Integral numbers are written without a fraction, as they always were.
    assert!(text.contains("\"median\": 131,"), "{text}");
    assert!(text.contains("\"exits\": null"), "{text}");
    assert!(from_json(&text.replace(JSON_FORMAT, "other/9")).is_err());
}

/// The committed baseline (written by the hand-made writer this replaced, and
/// by this one since) reads, and writing it back loses nothing.
#[test]
fn the_committed_baseline_reads() {
    let ws = crate::cargo::Workspace::locate().unwrap();
    let text = std::fs::read_to_string(ws.root().join(BASELINE_PATH)).unwrap();
    let base = from_json(&text).unwrap();
    assert!(base.figures.len() > 10);
    assert!(base.floor().is_some());
    assert_eq!(from_json(&to_json(&base)).unwrap(), base);
}

#[test]
fn check_fails_on_a_regression_of_more_than_two_percent() {
    let base = report(vec![
        fig("b", "floor", measured(100.0, 1.0, 4.0)),
        fig("b", "null", measured(200.0, 1.0, 4.0)),
    ]);
    // +2% exactly: within the tolerance.
    let same = report(vec![
        fig("b", "floor", measured(102.0, 1.0, 4.0)),
        fig("b", "null", measured(200.0, 1.0, 4.0)),
    ]);
    let c = compare(&base, &same, |_| true, TOLERANCE);
    assert!(c.ok(), "{}", c.render());
    assert_eq!(
        c.compared,
        ["b/floor: 100 -> 102 (+2.0%)", "b/null: 200 -> 200 (0.0%)"]
    );
    assert!(
        c.render().contains("\n  b/null: 200 -> 200 (0.0%)\n"),
        "{}",
        c.render()
    );
    assert!(c.render().contains("2 figure(s) compared"));
    // +2.5%: fails, and says which figure and number.
    let worse = report(vec![
        fig("b", "floor", measured(100.0, 1.0, 4.0)),
        fig("b", "null", measured(205.0, 1.0, 4.0)),
    ]);
    let c = compare(&base, &worse, |_| true, TOLERANCE);
    assert!(!c.ok());
    assert_eq!(c.regressions.len(), 1);
    assert_eq!(c.regressions[0].key, "b/null");
    assert_eq!(c.regressions[0].metric, "cost");
    let text = c.render();
    assert!(text.contains("REGRESSIONS"), "{text}");
    assert!(text.contains("b/null cost: 200 -> 205 (+2.5%)"), "{text}");
    assert!(text.contains("CHECK FAILED"), "{text}");
    // More VMCS accesses at the same cost also fail; an exit where there was
    // none fails whatever the tolerance.
    let vmcs = report(vec![
        fig("b", "floor", measured(100.0, 1.0, 5.0)),
        fig("b", "null", measured(200.0, 1.0, 4.0)),
    ]);
    let c = compare(&base, &vmcs, |_| true, TOLERANCE);
    assert_eq!(c.regressions[0].metric, "VMCS/op");
    let zero = report(vec![fig("b", "pvclock", measured(50.0, 0.0, 0.0))]);
    let one = report(vec![fig("b", "pvclock", measured(50.0, 0.01, 0.0))]);
    let c = compare(&zero, &one, |_| true, TOLERANCE);
    assert_eq!(c.regressions.len(), 1);
    assert!(c.render().contains("from zero"));
}

#[test]
fn check_reports_improvements_new_and_lost_figures() {
    let base = report(vec![
        fig("b", "floor", measured(100.0, 1.0, 4.0)),
        fig("b", "gone", measured(100.0, 1.0, 4.0)),
        fig("b", "multi", Measure::Missing("ENOSYS".into())),
        fig("c", "other", measured(100.0, 1.0, 4.0)),
    ]);
    let now = report(vec![
        fig("b", "floor", measured(90.0, 1.0, 4.0)),
        fig("b", "multi", measured(500.0, 1.0, 4.0)),
        fig("b", "fresh", measured(10.0, 0.0, 0.0)),
    ]);
    // Program `c` did not run: its figures are out of scope.
    let c = compare(&base, &now, |f| f.program == "b", TOLERANCE);
    assert!(c.regressions.is_empty());
    assert_eq!(c.improvements.len(), 1);
    assert_eq!(c.lost.len(), 1, "{:?}", c.lost);
    assert!(c.lost[0].contains("b/gone"));
    assert_eq!(c.new, ["b/multi (now measured)", "b/fresh"]);
    assert!(!c.ok());
    let text = c.render();
    assert!(text.contains("--update-baseline"), "{text}");
    // A figure that became missing is lost too.
    let missing = report(vec![fig("b", "floor", Measure::Missing("ENOSYS".into()))]);
    let c = compare(&base, &missing, |f| f.name == "floor", TOLERANCE);
    assert!(!c.ok());
    assert!(c.lost[0].contains("now missing: ENOSYS"));
}

#[test]
fn a_compiler_change_is_named() {
    let base = report(vec![]);
    let mut now = report(vec![]);
    assert_eq!(toolchain_note(&base, &now), None);
    now.rustc = Some("rustc 1.96.0".into());
    let n = toolchain_note(&base, &now).unwrap();
    assert!(
        n.contains("rustc 1.95.0") && n.contains("rustc 1.96.0"),
        "{n}"
    );
    now.rustc = None;
    assert_eq!(toolchain_note(&base, &now), None);
    // The version survives the JSON.
    assert_eq!(
        from_json(&to_json(&base)).unwrap().rustc.as_deref(),
        Some("rustc 1.95.0 (59807616e 2026-04-14)")
    );
}

#[test]
fn repeated_runs_combine_by_median() {
    let run = |m: f64| vec![fig("b", "x", measured(m, 1.0, 4.0))];
    let combined = combine_runs(&[run(100.0), run(300.0), run(110.0)]);
    assert_eq!(combined.len(), 1);
    assert_eq!(combined[0].measured().unwrap().median, 110.0);
    let mut even = [4.0, 1.0, 3.0, 2.0];
    assert_eq!(median(&mut even), Some(2.5));
    assert_eq!(median(&mut []), None);
    let missing = combine_runs(&[vec![fig("b", "y", Measure::Missing("no".into()))]]);
    assert_eq!(missing[0].measure, Measure::Missing("no".into()));
}

#[test]
fn one_nested_run_keeps_its_l0_counts() {
    // The nested backend's figures go through the combination too (one run).
    let mut m = measured(20_000.0, 1.0, 4.0);
    if let Measure::Measured(x) = &mut m {
        x.l0_exits = Some(583.0);
        x.l0_reflected = Some(301.0);
    }
    let combined = combine_runs(&[vec![fig("bench_events", "send_to_upcall", m)]]);
    let c = combined[0].measured().unwrap();
    assert_eq!((c.l0_exits, c.l0_reflected), (Some(583.0), Some(301.0)));
    let r = report(combined);
    assert!(table(&r, None).contains("L0/op"), "{}", table(&r, None));
}

#[test]
fn pv_and_trap_figures_are_paired() {
    let r = report(vec![
        fig("bench_pvops", "cpuid.pv", measured(20.0, 0.0, 0.0)),
        fig("bench_pvops", "cpuid.trap", measured(200.0, 1.0, 4.0)),
        fig(
            "bench_pvops",
            "rdmsr.pv",
            Measure::Missing("no hypercall".into()),
        ),
        fig("bench_pvops", "rdmsr.trap", measured(300.0, 1.0, 4.0)),
        fig("bench_hypercalls", "floor", measured(100.0, 1.0, 4.0)),
    ]);
    let t = pv_vs_trap(&r);
    let line = |op: &str| {
        t.lines()
            .find(|l| l.starts_with(op))
            .unwrap_or("")
            .to_string()
    };
    let cpuid: Vec<String> = line("bench_pvops/cpuid ")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(cpuid, ["bench_pvops/cpuid", "20", "200", "10.00"], "{t}");
    let rdmsr: Vec<String> = line("bench_pvops/rdmsr ")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(rdmsr, ["bench_pvops/rdmsr", "missing", "300", "-"], "{t}");
    assert!(!t.contains("floor"), "{t}");
    assert!(table(&r, None).contains("PV beside native"));
    assert_eq!(
        pv_vs_trap(&report(vec![fig("p", "floor", measured(1.0, 0.0, 0.0))])),
        ""
    );
}

#[test]
fn table_states_the_unit_and_the_floor_ratio() {
    let r = report(vec![
        fig("bench_hypercalls", "floor", measured(100.0, 1.0, 4.0)),
        fig("bench_hypercalls", "xen_version", measured(150.0, 1.0, 4.0)),
        fig(
            "bench_hypercalls",
            "multicall_16",
            Measure::Missing("ENOSYS".into()),
        ),
    ]);
    let t = table(&r, None);
    assert!(!t.contains("baseline"), "{t}");
    assert!(t.contains("Bochs instruction counts"), "{t}");
    assert!(t.contains("instructions/op"), "{t}");
    assert!(t.contains("1.50"), "{t}");
    assert!(t.contains("missing: ENOSYS"), "{t}");
    let mut kvm = r.clone();
    kvm.machine.backend = "kvm".into();
    kvm.runs = 5;
    let t = table(&kvm, None);
    assert!(t.contains("hardware TSC cycles"), "{t}");
    assert!(t.contains("medians over 5 run(s)"), "{t}");
    assert!(t.contains("cycles/op"), "{t}");
    // Beside a baseline of the same machine: its cost and the change.
    let base = report(vec![
        fig("bench_hypercalls", "floor", measured(110.0, 1.0, 4.0)),
        fig("bench_hypercalls", "xen_version", measured(150.0, 1.0, 4.0)),
    ]);
    let mut now = r.clone();
    now.figures
        .push(fig("bench_new", "x", measured(7.0, 1.0, 4.0)));
    let t = table(&now, Some(&base));
    let line = |k: &str| -> Vec<String> {
        t.lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert!(
        t.lines().nth(1).unwrap().contains("baseline    change"),
        "{t}"
    );
    let floor = line("bench_hypercalls/floor ");
    assert_eq!(floor[1..4], ["100", "110", "-9.1%"], "{t}");
    let xv = line("bench_hypercalls/xen_version");
    assert_eq!(xv[1..4], ["150", "150", "0.0%"], "{t}");
    let new = line("bench_new/x");
    assert_eq!(new[1..4], ["7", "-", "new"], "{t}");
    // Another machine's baseline is not beside it.
    let mut other = base.clone();
    other.machine.cpu_model = "tigerlake".into();
    assert!(!table(&now, Some(&other)).contains("baseline"));
}

#[test]
fn baseline_merge_keeps_programs_not_run() {
    let old = report(vec![
        fig("a", "x", measured(1.0, 1.0, 1.0)),
        fig("b", "y", measured(2.0, 1.0, 1.0)),
    ]);
    let now = report(vec![fig("a", "x", measured(5.0, 1.0, 1.0))]);
    let m = merge_baseline(Some(&old), &now);
    assert_eq!(m.figures.len(), 2);
    assert_eq!(m.get("a/x").unwrap().measured().unwrap().median, 5.0);
    assert!(m.get("b/y").is_some());
    // Another machine's baseline is replaced, not merged.
    let mut other = old.clone();
    other.machine.cpu_model = "tigerlake".into();
    assert_eq!(merge_baseline(Some(&other), &now).figures.len(), 1);
}

#[test]
fn selection_by_program_figure_or_key() {
    use keel_abi::note::TestCategory;
    let p = |name: &str, cat| TestProgram {
        companions: Vec::new(),
        name: name.into(),
        path: "/x".into(),
        category: cat,
        title: String::new(),
    };
    let all = [
        p("bench_hypercalls", TestCategory::Bench),
        p("bench_mmu", TestCategory::Bench),
        p("hello", TestCategory::Functional),
    ];
    let names = |v: Vec<TestProgram>| v.into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert_eq!(
        names(select_programs(&all, &[])),
        ["bench_hypercalls", "bench_mmu"]
    );
    assert_eq!(
        names(select_programs(&all, &["bench_m*".into()])),
        ["bench_mmu"]
    );
    assert_eq!(
        names(select_programs(&all, &["bench_hypercalls/floor".into()])),
        ["bench_hypercalls"]
    );
    // A figure name: every program runs, the figures are filtered.
    assert_eq!(select_programs(&all, &["floor".into()]).len(), 2);
    let f = fig("bench_hypercalls", "floor", Measure::Missing(String::new()));
    assert!(keep_figure(&f, &["floor".into()]));
    assert!(keep_figure(&f, &["bench_hyper*".into()]));
    assert!(keep_figure(&f, &["*/floor".into()]));
    assert!(!keep_figure(&f, &["xen_*".into()]));
    assert!(keep_figure(&f, &[]));
    // A pattern that selects nothing is named; one that names a known figure
    // or a program is not.
    let known = [f.clone()];
    let pats: Vec<String> = ["floor", "bench_mmu", "nosuch", "hello", "bench_mmu/x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        unmatched(&all, &known, &pats),
        ["nosuch", "hello", "bench_mmu/x"]
    );
    assert!(unmatched(&all, &known, &[]).is_empty());
}

#[test]
fn the_page_tables_come_from_the_report() {
    let r = report(vec![
        fig("bench_hypercalls", "floor", measured(100.0, 1.0, 7.0)),
        fig("bench_mmu", "pin", measured(19711.8, 0.2, 1.4)),
        fig("bench_pvops", "cpuid.pv", measured(34.0, 0.0, 0.0)),
        fig("bench_pvops", "cpuid.trap", measured(173.0, 1.0, 6.0)),
        fig(
            "bench_pvops",
            "rdmsr.pv",
            Measure::Missing("no MSR hypercall".into()),
        ),
        fig("bench_pvops", "rdmsr.trap", measured(240.0, 1.0, 6.0)),
        fig("bench_grant", "map", Measure::Missing("not wired".into())),
    ]);
    let t = markdown_figures(&r);
    assert!(t.contains("corei7_skylake_x"), "{t}");
    assert!(
        t.contains("| `bench_mmu/pin` | 19,711.8 | 1 | 0.20 | 1.40 | 7 | 197.12 |"),
        "{t}"
    );
    assert!(
        t.contains("| `bench_grant/map` | missing: not wired |"),
        "{t}"
    );
    assert!(!t.contains("cpuid"), "the pairs have their own table: {t}");
    let p = markdown_pv_vs_trap(&r);
    assert!(p.contains("| `cpuid` | 34 | 173 | 5.09 | 0 / 1 |"), "{p}");
    assert!(
        p.contains("| `rdmsr` | - (no MSR hypercall) | 240 | - | - / 1 |"),
        "{p}"
    );
    assert_eq!(p.matches("| `").count(), 2, "{p}");

    let page = "intro\n<!-- BEGIN GENERATED bench:figures -->\nstale\n<!-- END GENERATED bench:figures -->\nmid\n<!-- BEGIN GENERATED bench:cpus -->\n<!-- END GENERATED bench:cpus -->\n<!-- BEGIN GENERATED bench:cross-cpu -->\n<!-- END GENERATED bench:cross-cpu -->\n<!-- BEGIN GENERATED bench:pv-vs-trap -->\n<!-- END GENERATED bench:pv-vs-trap -->\nend\n";
    let new = regenerate_page(page, &r).unwrap();
    assert!(!new.contains("stale"), "{new}");
    assert!(new.starts_with("intro\n<!-- BEGIN GENERATED bench:figures -->\nMeasured on"));
    assert!(
        new.contains("mid\n") && new.ends_with("<!-- END GENERATED bench:pv-vs-trap -->\nend\n")
    );
    assert_eq!(regenerate_page(&new, &r).unwrap(), new);
    assert!(regenerate_page("no blocks", &r).is_err());
    assert!(regenerate_page("<!-- BEGIN GENERATED bench:x -->\n", &r).is_err());
    assert!(regenerate_page(
        "<!-- BEGIN GENERATED bench:figures -->\nno end\n<!-- BEGIN GENERATED bench:pv-vs-trap -->\n<!-- END GENERATED bench:pv-vs-trap -->\n",
        &r
    )
    .is_err());
}

#[test]
fn per_cpu_names() {
    assert_eq!(per_cpu("xen_version.cpu0"), Some(("xen_version", 0)));
    assert_eq!(per_cpu("a.cpu.cpu12"), Some(("a.cpu", 12)));
    for not in [
        "xen_version",
        "xen_version.cpu",
        ".cpu1",
        "x.cpu1a",
        "x.worst",
    ] {
        assert_eq!(per_cpu(not), None, "{not}");
    }
}

#[test]
fn the_worst_of_figures_on_several_cpus() {
    // Interleaved as several domains print them; another program's per-CPU
    // figures and an unrelated figure stay out of the group.
    let mut figs = vec![
        fig("p", "null.cpu0", measured(240.0, 1.0, 7.0)),
        fig("p", "other", measured(9.0, 1.0, 7.0)),
        fig("p", "null.cpu2", measured(250.0, 2.0, 8.0)),
        fig("p", "null.cpu1", measured(250.0, 1.0, 9.0)),
        fig("q", "null.cpu0", measured(999.0, 1.0, 7.0)),
    ];
    add_worst(&mut figs);
    let names: Vec<String> = figs.iter().map(Figure::key).collect();
    assert_eq!(
        names,
        [
            "p/null.cpu0",
            "p/other",
            "p/null.cpu2",
            "p/null.cpu1",
            "p/null.worst",
            "q/null.cpu0",
            "q/null.worst"
        ]
    );
    // The dearest; of two equally dear, the lower CPU's (cpu1: 9 VMCS/op).
    let worst = figs[4].measured().expect("measured");
    assert_eq!(worst.cost(), 250.0);
    assert_eq!(worst.vmcs_per_op(), Some(9.0));
    assert_eq!(figs[6].measured().map(Measured::cost), Some(999.0));
    // Derived once: a second pass (a combined report) adds nothing.
    add_worst(&mut figs);
    assert_eq!(figs.len(), 7);
}

#[test]
fn a_missing_cpu_makes_the_worst_missing() {
    let mut figs = vec![
        fig("p", "null.cpu0", measured(240.0, 1.0, 7.0)),
        fig("p", "null.cpu1", Measure::Missing("no counters".into())),
    ];
    add_worst(&mut figs);
    assert_eq!(
        figs[2].measure,
        Measure::Missing("cpu 1: no counters".into())
    );
}

#[test]
fn the_several_cpu_tables() {
    let mut figs = vec![
        fig("bench_cpus_1", "null.cpu0", measured(150.0, 1.0, 7.0)),
        fig("bench_cpus_2", "null.cpu1", measured(175.0, 1.0, 7.0)),
        fig("bench_cpus_2", "null.cpu0", measured(175.0, 1.0, 7.0)),
        fig("bench_cpus_4", "null.cpu0", measured(175.0, 1.0, 7.0)),
        fig("bench_cpus_4", "null.cpu1", measured(180.0, 1.0, 8.0)),
        fig("bench_cpus_4", "null.cpu2", Measure::Missing("late".into())),
        fig("bench_ring", "round_trip", measured(7000.0, 4.0, 30.0)),
        fig(
            "bench_ring_2cpu",
            "round_trip",
            measured(21000.0, 2.0, 20.0),
        ),
        fig("bench_ring_2cpu", "only_here", measured(10.0, 0.0, 0.0)),
    ];
    add_worst(&mut figs);
    let r = report(figs);
    let t = markdown_cpus(&r);
    assert!(
        t.contains("| `bench_cpus_1` | `null` | 1 | 150 | 150 | 1 | 7 | 1.00 |"),
        "{t}"
    );
    // CPUs in order, whatever order the domains printed in.
    assert!(
        t.contains("| `bench_cpus_2` | `null` | 2 | 175, 175 | 175 | 1 | 7 | 1.17 |"),
        "{t}"
    );
    assert!(
        t.contains(
            "| `bench_cpus_4` | `null` | 3 | 175, 180, - | missing: cpu 2: late | - | - | - |"
        ),
        "{t}"
    );
    assert_eq!(t.matches("| `bench_").count(), 3, "{t}");
    let c = markdown_cross_cpu(&r);
    assert!(
        c.contains("| `bench_ring/round_trip` | 7,000 | 21,000 | 3.00 | 4 / 2 |"),
        "{c}"
    );
    assert!(
        c.contains("| `bench_ring/only_here` | - | 10 | - | - / 0 |"),
        "{c}"
    );
    assert_eq!(c.matches("| `bench_").count(), 2, "{c}");
}
