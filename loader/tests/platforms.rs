//! The CPU models CI sweeps (`ci/cpu-models.sh --list`) are exactly the models
//! `docs/platforms.md` documents, and each is a Bochs model the tool accepts.

use keel_loader::backend::BOCHS_CPU_MODELS;
use keel_loader::cargo::Workspace;
use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn the_sweep_and_the_platform_page_name_the_same_models() {
    let ws = Workspace::locate().expect("the Keel workspace");
    let out = Command::new("bash")
        .arg(ws.root().join("ci/cpu-models.sh"))
        .arg("--list")
        .output()
        .expect("run ci/cpu-models.sh --list");
    assert!(out.status.success());
    let swept: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let page = std::fs::read_to_string(ws.root().join("docs/platforms.md")).unwrap();
    let documented: BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(m, _)| m.to_string()))
        .collect();
    assert_eq!(swept.len(), 12, "{swept:?}");
    assert_eq!(
        swept, documented,
        "ci/cpu-models.sh and docs/platforms.md disagree"
    );
    for m in &swept {
        assert!(
            BOCHS_CPU_MODELS.contains(&m.as_str()),
            "{m} is no Bochs model"
        );
    }
}
