//! The tables of the interface reference (`docs/abi/*.md`), generated from the
//! layout data (feature `alloc`).
//!
//! "Tables are data": the hypercall index, the structure layouts, the constant and
//! error-code tables and the list of differences from Xen are never typed by
//! hand. Each page holds generated blocks between marker comments
//!
//! ```text
//! <!-- BEGIN GENERATED consts:sched -->
//! ...
//! <!-- END GENERATED consts:sched -->
//! ```
//!
//! and `abi/tests/docs.rs` fails when a committed block differs from
//! [`generated_block`] (run it with `KEEL_ABI_BLESS=1` to rewrite the blocks after
//! an intended change), or when an item of the layout data is not on its page.

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use super::{constants, divergences, errno_xen, Family, XenRelation, STRUCTS};
use crate::hypercall::{Hypercall, ALL as HYPERCALLS};
use crate::note::TestCategory;
use crate::platform::ExitStatus;

/// The marker that opens generated block `id`.
pub fn begin_marker(id: &str) -> String {
    format!("<!-- BEGIN GENERATED {id} -->")
}

/// The marker that closes generated block `id`.
pub fn end_marker(id: &str) -> String {
    format!("<!-- END GENERATED {id} -->")
}

/// The content of generated block `id` (without markers), or `None` for an
/// unknown id. Ids: `hypercall-index`, `struct:<RustName>`, `consts:<module>`,
/// `errno`, `divergences`, `exit-status`, `test-category`.
pub fn generated_block(id: &str) -> Option<String> {
    match id {
        "hypercall-index" => Some(hypercall_index()),
        "subcommands" => Some(subcommand_table()),
        "errno" => Some(errno_table()),
        "divergences" => Some(divergence_table()),
        "exit-status" => Some(exit_status_table()),
        "test-category" => Some(test_category_table()),
        _ => {
            if let Some(name) = id.strip_prefix("struct:") {
                struct_table(name)
            } else if let Some(module) = id.strip_prefix("consts:") {
                Family::ALL
                    .into_iter()
                    .find(|f| f.module() == module)
                    .map(constant_table)
            } else if let Some(module) = id.strip_prefix("xen-absent:") {
                Family::ALL
                    .into_iter()
                    .find(|f| f.module() == module)
                    .map(xen_absent_table)
            } else {
                None
            }
        }
    }
}

/// Every block id the data can generate (the docs test requires each to appear
/// on some page, so that no table is forgotten).
pub fn all_block_ids() -> impl Iterator<Item = String> {
    let fixed = [
        "hypercall-index",
        "subcommands",
        "errno",
        "divergences",
        "exit-status",
        "test-category",
    ]
    .into_iter()
    .map(String::from);
    let structs = STRUCTS.iter().map(|s| format!("struct:{}", s.name));
    let consts = Family::ALL
        .into_iter()
        .filter(|f| constants().any(|c| c.family == *f))
        .map(|f| format!("consts:{}", f.module()));
    let absent = Family::ALL
        .into_iter()
        .filter(|f| super::XEN_NOT_ADOPTED.iter().any(|a| a.family == *f))
        .map(|f| format!("xen-absent:{}", f.module()));
    fixed.chain(structs).chain(consts).chain(absent)
}

/// The Xen items of a family that Keel deliberately leaves out, one row per
/// reason (the items that share it in one cell).
pub fn xen_absent_table(family: Family) -> String {
    let mut s = String::from("| Xen items not adopted | Why |\n|---|---|\n");
    let mut reasons: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
    for a in super::XEN_NOT_ADOPTED.iter().filter(|a| a.family == family) {
        if !reasons.contains(&a.why) {
            reasons.push(a.why);
        }
    }
    for why in reasons {
        let names: alloc::vec::Vec<String> = super::XEN_NOT_ADOPTED
            .iter()
            .filter(|a| a.family == family && a.why == why)
            .map(|a| format!("`{}`", a.xen))
            .collect();
        let _ = writeln!(s, "| {} | {} |", names.join(", "), cell(why));
    }
    s
}

/// Text for a table cell: whitespace collapsed, `|` escaped.
fn cell(doc: &str) -> String {
    let mut s = String::new();
    for w in doc.split_whitespace() {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(w);
    }
    s.replace('|', "\\|")
}

/// The first sentence of a rustdoc (given one string per line), for a table:
/// the first paragraph's lines joined, cut after the first `". "`, with
/// intra-doc link brackets removed (`` [`X`] `` becomes `` `X` ``).
fn summary(lines: &[&str]) -> String {
    let mut para = String::new();
    for l in lines {
        if l.trim().is_empty() {
            break;
        }
        para.push(' ');
        para.push_str(l.trim());
    }
    let para = para.replace("[`", "`").replace("`]", "`");
    let first = match para.find(". ") {
        Some(i) => &para[..=i],
        None => para.as_str(),
    };
    cell(first)
}

/// The index of every Xen hypercall number with Keel's status.
pub fn hypercall_index() -> String {
    let mut s = String::from(
        "| Nr | Xen hypercall | Keel status | Reference | What it is |\n|---:|---|---|---|---|\n",
    );
    for h in HYPERCALLS {
        let name = h.name().unwrap_or("?");
        let (status, page) = match h.implemented_since() {
            Some(v) => {
                let page = Family::of_hypercall(*h)
                    .map(|f| format!("[{}]({})", f.doc_page(), f.doc_page()))
                    .unwrap_or_default();
                (format!("implemented since {}", since_cell(v)), page)
            }
            None => (String::from("`-ENOSYS`"), String::from("—")),
        };
        let _ = writeln!(
            s,
            "| {} | `{name}` | {status} | {page} | {} |",
            h.0,
            summary(&[h.description().unwrap_or("")])
        );
    }
    s
}

/// Every implemented sub-command (`hypercall::IMPLEMENTED`); every other
/// sub-command is `-ENOSYS`.
pub fn subcommand_table() -> String {
    let mut s = String::from(
        "| Hypercall | Sub-command | Value | Since | Reference |\n|---|---|---:|---|---|\n",
    );
    for c in crate::hypercall::IMPLEMENTED {
        let page = Family::of_hypercall(c.hypercall)
            .map(|f| format!("[{}]({})", f.doc_page(), f.doc_page()))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| `{}` | `{}` | {} | {} | {page} |",
            c.hypercall.name().unwrap_or("?"),
            c.name,
            c.sub,
            since_cell(c.since)
        );
    }
    s
}

/// Whether a hypercall is implemented, for prose ("implemented since 0.1").
pub fn hypercall_status(h: Hypercall) -> String {
    match h.implemented_since() {
        Some(v) => format!("implemented since {}", since_cell(v)),
        None => String::from("-ENOSYS"),
    }
}

/// The "since" of an item: its version, and "(in progress)" for an item staged
/// for [`super::IN_PROGRESS`] that no hypervisor serves yet.
fn since_cell(v: crate::version::AbiVersion) -> String {
    if super::described(v) {
        format!("{v}")
    } else {
        format!("{v} (in progress)")
    }
}

fn xen_cell(x: XenRelation) -> String {
    match x {
        XenRelation::Same(n) => format!("`{n}`"),
        XenRelation::Differs { xen: Some(n), .. } => format!("differs from `{n}`"),
        XenRelation::Differs { xen: None, .. } => String::from("Keel only (differs)"),
        XenRelation::KeelOnly => String::from("Keel only"),
    }
}

/// The layout table of structure `name` (Rust name).
pub fn struct_table(name: &str) -> Option<String> {
    let st = STRUCTS.iter().find(|s| s.name == name)?;
    let mut s = format!(
        "`{}` ({}): size {} bytes, alignment {}, since {}.\n\n\
         | Field | Offset | Size | Xen field |\n|---|---:|---:|---|\n",
        st.name,
        xen_cell(st.xen),
        st.size,
        st.align,
        since_cell(st.since)
    );
    for f in st.fields {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            f.name,
            f.offset,
            f.size,
            f.xen
                .map(|x| format!("`{x}`"))
                .unwrap_or_else(|| "—".into())
        );
    }
    Some(s)
}

/// The table of every constant of family `f`.
pub fn constant_table(f: Family) -> String {
    let mut s =
        String::from("| Constant | Value | Xen | Since | Meaning |\n|---|---|---|---|---|\n");
    for c in constants().filter(|c| c.family == f) {
        let value = match c.value {
            super::ConstValue::Int(v) if v >= 256 => format!("`{v:#x}`"),
            super::ConstValue::Signed(v) if v < 0 => format!("`{v}`"),
            v => format!("`{v}`"),
        };
        let doc = summary(c.doc);
        let _ = writeln!(
            s,
            "| `{}` | {value} | {} | {} | {doc} |",
            c.name,
            xen_cell(c.xen),
            since_cell(c.since)
        );
    }
    s
}

/// The error codes.
pub fn errno_table() -> String {
    let mut s =
        String::from("| Error | Value | Returned as | Xen | Meaning |\n|---|---:|---:|---|---|\n");
    for e in crate::errno::ALL {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} |",
            e.name().unwrap_or("?"),
            e.0,
            e.as_return(),
            xen_cell(errno_xen(*e)),
            summary(&[e.description().unwrap_or("")])
        );
    }
    s
}

/// Every deliberate difference from Xen.
pub fn divergence_table() -> String {
    let mut s = String::from("| Keel item | Xen item | Why |\n|---|---|---|\n");
    for d in divergences() {
        let _ = writeln!(
            s,
            "| `{}` ([{}]({})) | {} | {} |",
            d.name,
            d.family.module(),
            d.family.doc_page(),
            d.xen
                .map(|x| format!("`{x}`"))
                .unwrap_or_else(|| "—".into()),
            cell(d.why)
        );
    }
    s
}

/// The power-off statuses.
pub fn exit_status_table() -> String {
    let mut s = String::from("| Status | Name | Console text |\n|---:|---|---|\n");
    for e in ExitStatus::ALL {
        let _ = writeln!(s, "| {} | `{e:?}` | {} |", e as u8, e.describe());
    }
    s
}

/// The test categories of the test note.
pub fn test_category_table() -> String {
    let mut s = String::from("| Value | Name |\n|---:|---|\n");
    for c in TestCategory::ALL {
        let _ = writeln!(s, "| {} | `{}` |", c as u32, c.name());
    }
    s
}

/// Replace every generated block of a page by its current content. Returns the
/// new text and the ids of blocks that are unknown (left as they are).
pub fn regenerate(page: &str) -> (String, alloc::vec::Vec<String>) {
    let mut out = String::new();
    let mut unknown = alloc::vec::Vec::new();
    let mut rest = page;
    const OPEN: &str = "<!-- BEGIN GENERATED ";
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(id_end) = after.find(" -->") else {
            break;
        };
        let id = &after[..id_end];
        let end = end_marker(id);
        let Some(end_pos) = rest.find(&end) else {
            unknown.push(format!("{id} (no end marker)"));
            break;
        };
        let begin = begin_marker(id);
        out.push_str(&rest[..start]);
        out.push_str(&begin);
        out.push('\n');
        match generated_block(id) {
            Some(block) => out.push_str(&block),
            None => {
                unknown.push(String::from(id));
                out.push_str(rest[start + begin.len()..end_pos].trim_start_matches('\n'));
            }
        }
        out.push_str(&end);
        rest = &rest[end_pos + end.len()..];
    }
    out.push_str(rest);
    (out, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_first_sentences_without_links() {
        assert_eq!(
            summary(&[
                "Fills a [`XenFeatureInfo`] for",
                "the submap. More text.",
                "",
                "x"
            ]),
            "Fills a `XenFeatureInfo` for the submap."
        );
        assert_eq!(summary(&[" a | b"]), "a \\| b");
    }

    #[test]
    fn every_block_id_generates() {
        for id in all_block_ids() {
            assert!(generated_block(&id).is_some(), "{id}");
        }
        assert!(generated_block("struct:Nope").is_none());
    }

    #[test]
    fn index_lists_every_hypercall_with_its_status() {
        let t = hypercall_index();
        assert!(
            t.contains("| 17 | `xen_version` | implemented since 0.1 | [version.md](version.md)")
        );
        assert!(
            t.contains("| 20 | `grant_table_op` | implemented since 1.1 | [grant.md](grant.md)")
        );
        assert!(t.contains("| 21 | `vm_assist` | `-ENOSYS` |"));
        assert!(t.contains("| 1 | `mmu_update` | implemented since 1.0 | [mmu.md](mmu.md)"));
        assert_eq!(t.lines().count(), 2 + HYPERCALLS.len());
    }

    #[test]
    fn regenerate_replaces_only_blocks() {
        let page =
            "intro\n<!-- BEGIN GENERATED errno -->\nstale\n<!-- END GENERATED errno -->\noutro\n";
        let (new, unknown) = regenerate(page);
        assert!(unknown.is_empty());
        assert!(new.starts_with("intro\n<!-- BEGIN GENERATED errno -->\n| Error |"));
        assert!(new.ends_with("<!-- END GENERATED errno -->\noutro\n"));
        assert!(!new.contains("stale"));
        assert_eq!(regenerate(&new).0, new);
        let (_, unknown) = regenerate("<!-- BEGIN GENERATED x -->\n<!-- END GENERATED x -->");
        assert_eq!(unknown, ["x"]);
    }
}
