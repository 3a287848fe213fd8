//! The generated policy pages under `docs/abi/` must match the tables.
//!
//! `docs/abi/{cpuid,msr,io,insns}.md` are generated from `cpuid`, `msr`, `io` and
//! `insns`. This test fails when a committed page differs from what the tables
//! produce now; after an intended change, regenerate with
//! `KEEL_POLICY_BLESS=1 cargo test -p keel-hypervisor policy_docs` and review the diff.

extern crate std;
use std::path::PathBuf;
use std::string::String;

fn pages() -> [(&'static str, String); 4] {
    [
        ("cpuid.md", crate::policy::cpuid::markdown::page()),
        ("msr.md", crate::policy::msr::markdown::page()),
        ("io.md", crate::policy::io::markdown::page()),
        ("insns.md", crate::policy::insns::markdown::page()),
    ]
}

#[test]
fn policy_docs_are_generated_from_the_tables() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/abi");
    let bless = std::env::var("KEEL_POLICY_BLESS").as_deref() == Ok("1");
    let mut stale = std::vec::Vec::new();
    for (name, want) in pages() {
        let path = dir.join(name);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if bless {
                std::fs::write(&path, &want).unwrap();
            } else {
                let line = have
                    .lines()
                    .zip(want.lines())
                    .position(|(a, b)| a != b)
                    .map_or(String::from("at the end"), |n| {
                        std::format!("at line {}", n + 1)
                    });
                stale.push(std::format!(
                    "docs/abi/{name} differs from its table {line}"
                ));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nregenerate: KEEL_POLICY_BLESS=1 cargo test -p keel-hypervisor policy_docs",
        stale.join("\n")
    );
}
