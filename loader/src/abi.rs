//! `cargo keel abi dump|check`: the ABI description and its released fixtures.
//!
//! The description itself and the compatibility rules live in the `abi` crate
//! ([`keel_abi::layout`]); this is the command-line face of it: `dump` prints the
//! current description in the fixture format, `check` compares it with every
//! released fixture under `abi/fixtures/<version>/layout.txt`, naming each item
//! that changed or vanished.

use crate::cargo::Workspace;
use crate::error::{Context, Result};
use std::io::Write;
use std::path::PathBuf;

/// The current ABI description, in the fixture format.
pub fn dump() -> String {
    keel_abi::layout::dump()
}

/// The released fixtures: `(version directory name, layout.txt path)`, by version.
pub fn fixtures(ws: &Workspace) -> Result<Vec<(String, PathBuf)>> {
    let dir = ws.root().join("abi/fixtures");
    let mut v = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let layout = e.path().join("layout.txt");
        if layout.is_file() {
            v.push((e.file_name().to_string_lossy().into_owned(), layout));
        }
    }
    v.sort();
    Ok(v)
}

/// Check the current ABI against every released fixture, reporting on `out`.
/// Returns true when all are compatible.
pub fn check(ws: &Workspace, out: &mut dyn Write) -> Result<bool> {
    let fixtures = fixtures(ws)?;
    if fixtures.is_empty() {
        crate::bail!(
            "no released fixtures under {}",
            ws.root().join("abi/fixtures").display()
        );
    }
    let mut ok = true;
    for (version, path) in fixtures {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        match keel_abi::layout::check(&text) {
            Ok(()) => {
                let _ = writeln!(out, "abi {version}: ok ({})", path.display());
            }
            Err(violations) => {
                ok = false;
                let _ = writeln!(
                    out,
                    "abi {version}: {} incompatible change(s) against {}:",
                    violations.len(),
                    path.display()
                );
                for v in violations {
                    let _ = writeln!(out, "  {v}");
                }
            }
        }
    }
    Ok(ok)
}
