//! `docs/performance.md`'s figures tables are generated from the committed
//! baseline (`bench/baseline.json`) and must be current: a new baseline comes
//! with its tables. After recording one, regenerate them with
//! `KEEL_PERF_BLESS=1 cargo test -p keel-loader --test performance_doc` and
//! review the diff together with the prose that explains the figures.

use keel_loader::bench::{from_json, regenerate_page, BASELINE_PATH};
use keel_loader::cargo::Workspace;

#[test]
fn the_figures_tables_follow_the_baseline() {
    let ws = Workspace::locate().expect("the Keel workspace");
    let baseline = std::fs::read_to_string(ws.root().join(BASELINE_PATH)).unwrap();
    let report = from_json(&baseline).expect("the baseline reads");
    let path = ws.root().join("docs/performance.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let new =
        regenerate_page(&page, &report).unwrap_or_else(|e| panic!("docs/performance.md: {e}"));
    if new == page {
        return;
    }
    if std::env::var("KEEL_PERF_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, new).unwrap();
        return;
    }
    let line = page
        .lines()
        .zip(new.lines())
        .position(|(a, b)| a != b)
        .map_or(String::from("at the end"), |n| format!("at line {}", n + 1));
    panic!(
        "docs/performance.md's generated tables differ from {BASELINE_PATH} {line}; \
         regenerate: KEEL_PERF_BLESS=1 cargo test -p keel-loader --test performance_doc"
    );
}
