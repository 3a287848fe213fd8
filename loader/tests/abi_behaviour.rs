//! Behaviour fixtures (docs/abi-versioning.md): for every released version with
//! frozen images, the `abi_behaviour` guest program built from this tree
//!
//! 1. on the frozen hypervisor of that release must print exactly the release's
//!    transcript, `abi/fixtures/<version>/behaviour.txt` (so the fixture is what
//!    that hypervisor does; when the program itself changes, regenerate it from
//!    the frozen hypervisor with `KEEL_BEHAVIOUR_BLESS=1` and review the diff);
//! 2. on the hypervisor built from this tree must give the same answer on every
//!    line the release implemented, except the lines amended in
//!    `abi/fixtures/behaviour-amendments.txt`; each changed line is named.
//!
//! Four Bochs boots, one at a time.

use keel_loader::backend::Backend;
use keel_loader::behaviour::{self, Line};
use keel_loader::cargo::Workspace;
use keel_loader::machine::{self, Boot};
use keel_loader::MachineOptions;
use std::path::Path;
use std::time::Duration;

/// Boot `guest` on `hypervisor` under Bochs and return its transcript.
fn transcript(what: &str, hypervisor: &Path, guest: &Path) -> Vec<Line> {
    let opts = MachineOptions::new(Duration::from_secs(300)).on(Backend::Bochs);
    let mut log = Vec::new();
    let m = opts
        .prepare(&mut log)
        .unwrap_or_else(|e| panic!("{what}: no machine: {e}"));
    let hv_cmdline = opts.hv_cmdline();
    let boot = Boot {
        hypervisor,
        guest,
        guest_name: "abi_behaviour",
        guest_args: &[],
        hv_cmdline: &hv_cmdline,
        companions: &[],
    };
    let mut echo = Vec::new();
    let o = machine::run(&m, &boot, &mut echo).unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = o.cross_check().ok().map(|s| s as u8);
    let t = behaviour::from_console(&o.console, status);
    eprintln!(
        "--- {what} ({:.2}s): {} lines, status {status:?}",
        o.wall.as_secs_f64(),
        t.len()
    );
    assert!(
        t.len() > 100,
        "{what}: only {} transcript lines; console tail:\n{}",
        t.len(),
        keel_loader::console::tail(&o.console, 30)
    );
    t
}

#[test]
fn released_behaviour_is_kept() {
    let ws = Workspace::locate().expect("the Keel workspace");
    let fixtures = ws.root().join("abi/fixtures");
    let bless = std::env::var("KEEL_BEHAVIOUR_BLESS").as_deref() == Ok("1");
    let amendments_text =
        std::fs::read_to_string(fixtures.join(behaviour::AMENDMENTS)).unwrap_or_default();
    let amendments = behaviour::parse_amendments(&amendments_text)
        .unwrap_or_else(|e| panic!("abi/fixtures/{}: {e}", behaviour::AMENDMENTS));
    let hv = ws.build_hypervisor(true).expect("building the hypervisor");
    let guests = ws.build_guests(true).expect("building the guests");
    let program = guests
        .iter()
        .find(|g| g.name == "abi_behaviour")
        .expect("the abi_behaviour guest");
    let mut checked = 0;
    let mut errors = Vec::new();
    for v in keel_abi::layout::RELEASED {
        let version = v.to_string();
        let dir = fixtures.join(&version);
        let frozen_hv = dir.join("keel-hypervisor.elf");
        let record = std::fs::read_to_string(dir.join("RELEASE.txt")).unwrap_or_default();
        if !record.lines().any(|l| l == "binaries: frozen") {
            eprintln!("NOTE: ABI {version} has no frozen hypervisor: no behaviour fixture");
            continue;
        }
        let path = dir.join(behaviour::FIXTURE);
        let frozen = transcript(
            &format!("frozen {version} hypervisor"),
            &frozen_hv,
            &program.path,
        );
        if bless {
            std::fs::write(&path, behaviour::render(&version, &frozen)).unwrap();
            eprintln!("wrote {}", path.display());
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (generate it from the frozen hypervisor: KEEL_BEHAVIOUR_BLESS=1 \
                 cargo test -p keel-loader --test abi_behaviour)",
                path.display()
            )
        });
        let released =
            behaviour::parse_fixture(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The fixture is what the frozen hypervisor does with this program.
        for m in behaviour::compare(&version, &released, &frozen, &[]) {
            errors.push(format!(
                "the frozen {version} hypervisor no longer matches its transcript (the \
                 program changed? regenerate with KEEL_BEHAVIOUR_BLESS=1): {m}"
            ));
        }
        let today = transcript(
            &format!("today's hypervisor against {version}"),
            &hv,
            &program.path,
        );
        for m in behaviour::compare(&version, &released, &today, &amendments) {
            errors.push(format!("ABI {version}: {m}"));
        }
        checked += 1;
    }
    assert!(checked > 0, "no released version has a frozen hypervisor");
    assert!(
        errors.is_empty(),
        "released behaviour changed ({} lines; a deliberate change is an amendment in \
         abi/fixtures/{} with its reason):\n  {}",
        errors.len(),
        behaviour::AMENDMENTS,
        errors.join("\n  ")
    );
}
