//! The benchmark interface on an older hypervisor: `bench_hypercalls`,
//! built from the current tree, booted on the frozen hypervisor of the oldest
//! released ABI version (`abi/fixtures/<version>/keel-hypervisor.elf`), which has
//! no `keel_debug_op` and no `multicall`. The guest must detect both (`-ENOSYS`),
//! report the floor and the multicall as missing and its TSC figures without
//! counters, and pass; `cargo keel bench`'s parser must read all of it.

use keel_abi::layout::RELEASED;
use keel_abi::platform::ExitStatus;
use keel_loader::backend::Backend;
use keel_loader::bench::{parse_console, Measure};
use keel_loader::console::{self, Verdict};
use keel_loader::machine::{self, Boot};
use keel_loader::MachineOptions;
use std::time::Duration;

#[test]
fn bench_hypercalls_on_the_oldest_frozen_hypervisor() {
    let ws = keel_loader::cargo::Workspace::locate().expect("workspace");
    let oldest = RELEASED[0];
    let dir = ws.root().join(format!("abi/fixtures/{oldest}"));
    let frozen = dir.join("keel-hypervisor.elf");
    let record = std::fs::read_to_string(dir.join("RELEASE.txt")).unwrap_or_default();
    if !record.lines().any(|l| l == "binaries: frozen") || !frozen.exists() {
        eprintln!("NOTE: no frozen hypervisor for ABI {oldest}: not booted");
        return;
    }
    let guests = ws.build_guests(true).expect("building the guests");
    let g = guests
        .iter()
        .find(|g| g.name == "bench_hypercalls")
        .expect("bench_hypercalls is built");
    let opts = MachineOptions::new(Duration::from_secs(300)).on(Backend::Bochs);
    let mut log = Vec::new();
    let m = opts.prepare(&mut log).expect("a Bochs machine");
    let hv_cmdline = opts.hv_cmdline();
    let boot = Boot {
        hypervisor: &frozen,
        guest: &g.path,
        guest_name: &g.name,
        guest_args: &[],
        hv_cmdline: &hv_cmdline,
        companions: &[],
    };
    let o = machine::run(&m, &boot, &mut Vec::new()).expect("boot");
    let tail = console::tail(&o.console, 30);
    assert_eq!(o.cross_check(), Ok(ExitStatus::Success), "{tail}");
    assert_eq!(
        console::test_result(&o.console).map(|r| r.verdict),
        Some(Verdict::Success),
        "{tail}"
    );
    assert!(
        o.console.contains("no keel_debug_op counters (-ENOSYS)"),
        "{tail}"
    );
    let figs = parse_console("bench_hypercalls", &o.console).expect("figures parse");
    let get = |n: &str| {
        figs.iter()
            .find(|f| f.name == n)
            .unwrap_or_else(|| panic!("no figure {n}: {tail}"))
    };
    assert!(matches!(get("floor").measure, Measure::Missing(_)));
    assert!(matches!(get("multicall_16").measure, Measure::Missing(_)));
    for n in ["xen_version", "console_io_64"] {
        let m = get(n).measured().unwrap_or_else(|| panic!("{n} measured"));
        assert!(m.median > 0.0, "{n}");
        assert_eq!(m.exits, None, "{n}: no counters on this hypervisor");
    }
}
