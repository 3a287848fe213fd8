//! Every implemented hypercall and sub-command, row by row of [`TABLE`], has its
//! comparison with Xen in the reference: a bullet under "## Differences from Xen"
//! on its family's page of `docs/abi/` whose head (the text before its first
//! `: `) names it, e.g. "- `SCHEDOP_poll`: ...". A row added to the table without
//! saying how it compares with Xen fails here.

use super::TABLE;
use keel_abi::layout::Family;
use std::path::PathBuf;
use std::string::String;
use std::vec::Vec;

/// The "## Differences from Xen" section of a page, or `None`.
fn xen_section(page: &str) -> Option<&str> {
    let start = page.find("## Differences from Xen\n")?;
    let rest = &page[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |e| e + 1);
    Some(&rest[..end])
}

/// The heads of the section's bullets: a `- ` line and its indented continuation
/// lines, up to the first `: `.
fn bullet_heads(section: &str) -> Vec<String> {
    let mut bullets: Vec<String> = Vec::new();
    for line in section.lines() {
        if let Some(b) = line.strip_prefix("- ") {
            bullets.push(b.into());
        } else if let (Some(last), true) = (bullets.last_mut(), line.starts_with("  ")) {
            last.push(' ');
            last.push_str(line.trim());
        } else if !line.trim().is_empty() {
            // A paragraph ends the list above it.
            bullets.push(String::new());
        }
    }
    bullets
        .into_iter()
        .map(|b| b.split(": ").next().unwrap_or("").into())
        .filter(|h: &String| !h.is_empty())
        .collect()
}

/// The names a row's bullet must mention: the sub-command (`SCHEDOP_poll`), or
/// the hypercall for a row that is a whole hypercall (`multicall`).
fn row_name(name: &str) -> &str {
    name.split(" / ").nth(1).unwrap_or(name)
}

fn page(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/abi")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn missing_entries(read: impl Fn(&str) -> String) -> Vec<String> {
    let mut missing = Vec::new();
    for row in TABLE {
        let fam = Family::of_hypercall(row.nr)
            .unwrap_or_else(|| panic!("{}: an implemented hypercall without a family", row.name));
        let text = read(fam.doc_page());
        let Some(section) = xen_section(&text) else {
            missing.push(std::format!(
                "docs/abi/{}: no `## Differences from Xen`",
                fam.doc_page()
            ));
            continue;
        };
        let want = std::format!("`{}`", row_name(row.name));
        if !bullet_heads(section).iter().any(|h| h.contains(&want)) {
            missing.push(std::format!(
                "docs/abi/{}: no `- {want}: ...` bullet under Differences from Xen ({})",
                fam.doc_page(),
                row.name
            ));
        }
    }
    missing
}

#[test]
fn every_table_row_is_compared_with_xen_in_the_docs() {
    let missing = missing_entries(page);
    assert!(
        missing.is_empty(),
        "hypercall table rows without a Xen comparison:\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_row_without_its_bullet_is_reported() {
    // Drop the bullet of SCHEDOP_poll from the real page: exactly that row fails.
    let doctored = |name: &str| {
        let text = page(name);
        if name == "sched.md" {
            text.replace("- `SCHEDOP_poll`:", "- Polling:")
        } else {
            text
        }
    };
    let missing = missing_entries(doctored);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("SCHEDOP_poll"), "{missing:?}");
}
