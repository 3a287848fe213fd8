//! "Every constant in one place, and every constant in the data": a constant
//! defined by hand (`pub const NAME: ...` outside `abi_consts!`) would be part of
//! the crate's API but missing from the layout data, hence from the fixtures, the
//! Xen cross-check and the docs. This test scans the crate's source and fails
//! for any such constant that is not an explicitly listed non-constant item.

use std::path::Path;

/// Public constants that are deliberately not entries of `layout::constants()`,
/// each with where the layout data covers it (or why it is not ABI).
const NOT_REGISTERED: &[(&str, &str)] = &[
    (
        "LIMIT",
        "addr::{Mfn, Pfn, MachineAddr}::LIMIT: the bound the checked constructors apply \
         (MAXPHYADDR's architectural 52 bits), not a value exchanged with guests",
    ),
    (
        "ALL",
        "lists of Errno/Hypercall/ExitStatus/TestCategory/Family: rendered item by item; \
         report::Verdict::ALL: the guest-to-runner protocol, not hypervisor ABI",
    ),
    (
        "IMPLEMENTED",
        "hypercall::IMPLEMENTED: rendered as `implemented` lines",
    ),
    (
        "START_INFO_SIZE",
        "size_of::<StartInfo>(): the `struct` line",
    ),
    (
        "SIZE",
        "size_of of SchedShutdown/XenFeatureInfo: their `struct` lines",
    ),
    (
        "ENTRY_SIZE",
        "ring::SharedRing::<Req, Rsp>::ENTRY_SIZE: computed from a driver's own types",
    ),
    (
        "V0_1",
        "AbiVersion::V0_1: the `abi-version` line and every `since=`",
    ),
    (
        "V1_0",
        "AbiVersion::V1_0: the `abi-version` line and every `since=`",
    ),
    (
        "V1_1",
        "AbiVersion::V1_1: the `abi-version` line and every `since=`",
    ),
    (
        "V1_2",
        "AbiVersion::V1_2: every `since=` (in progress: left out of the description)",
    ),
    ("IN_PROGRESS", "layout metadata, not ABI"),
    (
        "PRE_1_0_PRESENTED",
        "AbiVersion::decode(PRE_1_0_XENVER_VERSION): the `const` line of that",
    ),
    (
        "RESULT_OFFSET",
        "offset_of!(MulticallEntry, result): its `field` line",
    ),
    ("CURRENT", "AbiVersion::CURRENT: the `abi-version` line"),
    (
        "TEST_RESULT_MARKER",
        "report::TEST_RESULT_MARKER: the guest-to-runner protocol, not hypervisor ABI",
    ),
    (
        "SEQ_MARKER",
        "report::SEQ_MARKER: the guest-to-runner protocol, not hypervisor ABI",
    ),
    (
        "EXTRAVERSION",
        "a value, frozen as the golden sample version.EXTRAVERSION",
    ),
    (
        "SUBMAP0",
        "the feature bitmap: the `features` line (may only grow)",
    ),
    ("RELEASED", "layout metadata, not ABI"),
    ("STRUCTS", "layout metadata, not ABI"),
    ("GOLDEN", "layout metadata, not ABI"),
    ("GOLDEN_MAX", "layout metadata, not ABI"),
    ("XEN_NOT_ADOPTED", "layout metadata, not ABI"),
    ("XEN_SCOPE", "layout metadata, not ABI"),
    ("XEN_STRUCT_ALIASES", "layout metadata, not ABI"),
    ("BEHAVIOUR_DIVERGENCES", "layout metadata, not ABI"),
    ("FIXTURE_HEADER", "layout metadata, not ABI"),
];

/// Public constants of one file that are not ABI at all, so not entries of
/// `layout::constants()`; listed by file so that their (generic) names exempt
/// nothing elsewhere.
const NOT_ABI_IN_FILE: &[(&str, &[&str], &str)] = &[
    (
        "pte.rs",
        &["EMPTY"],
        "pte::Pte::EMPTY: the all-zero (not present) entry, a convenience of the entry \
         type; the format's bits are PteFlags",
    ),
    (
        "platform.rs",
        &[
            "COM1", "DATA", "IER", "IIR_FCR", "LCR", "MCR", "LSR", "MSR", "SCR",
        ],
        "platform::uart: the 16550's I/O base and register offsets, hardware facts the \
         hypervisor's console driver and UART emulation and the guest's COM1 share",
    ),
    (
        "platform.rs",
        &["DOMAIN_PREFIX_MAX"],
        "the length of the `(d<id>) ` console prefix, which domain_prefix writes and \
         strip_domain_prefix parses: the console protocol with the runner, not guest ABI",
    ),
    (
        "platform.rs",
        &["COM1_TAG", "COM1_PREFIX_MAX"],
        "the `(d<id>:com1) ` prefix of the lines a domain writes to its emulated COM1,          which tagged_domain_prefix writes: console output on the host, not guest ABI",
    ),
];

fn scan(dir: &Path, found: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            scan(&p, found);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for (i, line) in text.lines().enumerate() {
                let Some(rest) = line.trim_start().strip_prefix("pub const ") else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // `pub const fn` and macro metavariables (`$name`) are not constants.
                if name.is_empty() || name == "fn" {
                    continue;
                }
                found.push((name, format!("{}:{}", p.display(), i + 1)));
            }
        }
    }
}

#[test]
fn every_public_constant_is_in_the_layout_data() {
    let mut found = Vec::new();
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(
        found.len() > 10,
        "the scan found almost nothing: is it broken?"
    );
    let mut stray = Vec::new();
    for (name, at) in &found {
        let registered = keel_abi::layout::constants().any(|c| c.name == name);
        let listed = NOT_REGISTERED.iter().any(|(n, _)| n == name)
            || NOT_ABI_IN_FILE.iter().any(|(file, names, _)| {
                at.contains(&format!("/{file}:")) && names.contains(&name.as_str())
            });
        if !registered && !listed {
            stray.push(format!("{at}: pub const {name}"));
        }
    }
    assert!(
        stray.is_empty(),
        "constants defined outside abi_consts! (so missing from the fixtures, the Xen \
         cross-check and docs/abi): define them with abi_consts!, or list them in \
         NOT_REGISTERED with the reason:\n{}",
        stray.join("\n")
    );
}

#[test]
fn the_scan_sees_registered_constants_too() {
    // The scanner only sees hand-written `pub const`s; abi_consts! hides the rest.
    // Make sure it is not blind: a known hand-written one must be found.
    let mut found = Vec::new();
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(found.iter().any(|(n, _)| n == "START_INFO_SIZE"));
    assert!(!found.iter().any(|(n, _)| n == "SCHEDOP_YIELD"));
}
