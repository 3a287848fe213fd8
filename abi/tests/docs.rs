//! The interface reference (`docs/abi/`) against the layout data.
//!
//! Every table of the reference is generated from `keel_abi::layout` and must be
//! current; every item of the layout data must appear on the page of its family;
//! every page must say how its part of the interface differs from bare metal.
//! After an intended change, regenerate the tables with
//! `KEEL_ABI_BLESS=1 cargo test -p keel-abi --test docs` and review the diff.

use std::path::{Path, PathBuf};

use keel_abi::layout::{self, markdown, Family, XenRelation};

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/abi")
}

fn page(name: &str) -> String {
    let p = docs_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn pages() -> Vec<(String, String)> {
    let mut v: Vec<_> = std::fs::read_dir(docs_dir())
        .expect("docs/abi exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name.clone(), std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn generated_tables_are_current() {
    let bless = std::env::var("KEEL_ABI_BLESS").as_deref() == Ok("1");
    let mut stale = Vec::new();
    for (name, text) in pages() {
        let (new, unknown) = markdown::regenerate(&text);
        assert!(
            unknown.is_empty(),
            "{name}: unknown generated blocks {unknown:?}"
        );
        if new != text {
            if bless {
                std::fs::write(docs_dir().join(&name), &new).unwrap();
            } else {
                let line = text
                    .lines()
                    .zip(new.lines())
                    .position(|(a, b)| a != b)
                    .map_or(String::from("at the end"), |n| format!("at line {}", n + 1));
                stale.push(format!("docs/abi/{name}: differs {line}"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated tables are out of date (the layout data changed); run \
         `KEEL_ABI_BLESS=1 cargo test -p keel-abi --test docs` and review:\n{}",
        stale.join("\n")
    );
}

/// The page each generated block belongs on.
fn home_of(id: &str) -> String {
    if let Some(name) = id.strip_prefix("struct:") {
        let s = layout::STRUCTS.iter().find(|s| s.name == name).unwrap();
        return s.family.doc_page().to_string();
    }
    if let Some(m) = id
        .strip_prefix("consts:")
        .or_else(|| id.strip_prefix("xen-absent:"))
    {
        let f = Family::ALL.into_iter().find(|f| f.module() == m).unwrap();
        return f.doc_page().to_string();
    }
    match id {
        "hypercall-index" | "subcommands" | "divergences" => "README.md",
        "errno" => Family::Errno.doc_page(),
        "exit-status" => Family::Platform.doc_page(),
        "test-category" => Family::Note.doc_page(),
        other => panic!("no home for block {other}"),
    }
    .to_string()
}

#[test]
fn every_table_is_on_its_page() {
    for id in markdown::all_block_ids() {
        let home = home_of(&id);
        assert!(
            page(&home).contains(&markdown::begin_marker(&id)),
            "docs/abi/{home} lacks the generated block `{id}`: add\n{}\n{}",
            markdown::begin_marker(&id),
            markdown::end_marker(&id)
        );
    }
}

/// Every constant, structure field and error code is named on its family's page
/// (the generated tables do that), every Xen hypercall number is in the index, and
/// every hypercall Keel implements has a prose section on its page: a heading
/// "`name` (hypercall N)" and the version that introduced it ("Since 0.1").
#[test]
fn every_item_is_on_its_page() {
    let mut missing = Vec::new();
    for c in layout::constants() {
        let p = page(c.family.doc_page());
        let xen = match c.xen {
            XenRelation::Same(x) => Some(x),
            _ => None,
        };
        if !p.contains(c.name) && !xen.is_some_and(|x| p.contains(x)) {
            missing.push(format!("{}: constant {}", c.family.doc_page(), c.name));
        }
    }
    for s in layout::STRUCTS {
        let p = page(s.family.doc_page());
        for f in s.fields {
            if !p.contains(&format!("`{}`", f.name)) {
                missing.push(format!(
                    "{}: field {}.{}",
                    s.family.doc_page(),
                    s.name,
                    f.name
                ));
            }
        }
    }
    for e in keel_abi::errno::ALL {
        if !page("errno.md").contains(e.name().unwrap()) {
            missing.push(format!("errno.md: {}", e.name().unwrap()));
        }
    }
    let readme = page("README.md");
    for h in keel_abi::hypercall::ALL {
        let name = h.name().unwrap();
        if !readme.contains(&format!("`{name}`")) {
            missing.push(format!("README.md: hypercall {name}"));
        }
        if let Some(v) = h.implemented_since() {
            let f = Family::of_hypercall(*h).expect("implemented hypercalls have a family");
            let p = page(f.doc_page());
            // A heading naming the hypercall and its number, and the version.
            let heading = format!("`{name}` (hypercall {})", h.0);
            if !p
                .lines()
                .any(|l| l.starts_with('#') && l.contains(&heading))
            {
                missing.push(format!("{}: a heading with {heading}", f.doc_page()));
            }
            if !p.contains(&format!("Since {v}")) {
                missing.push(format!("{}: `Since {v}` for {name}", f.doc_page()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented ABI items:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_family_page_has_the_required_sections() {
    let mut missing = Vec::new();
    for f in Family::ALL {
        let p = page(f.doc_page());
        let mut need = vec!["## Differences from bare metal"];
        if f.hypercall().is_some() {
            need.extend(["## Arguments", "## Errors"]);
        }
        for n in need {
            if !p.contains(n) {
                missing.push(format!("{}: `{n}`", f.doc_page()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "missing sections:\n{}",
        missing.join("\n")
    );
}

/// Every page of the reference, generated or not, says how its part of the
/// interface compares with Xen (the sub-command by sub-command entries are
/// checked against the hypervisor's table by `keel-hypervisor`'s
/// `tests_xen_docs`).
#[test]
fn every_page_has_differences_from_xen() {
    let missing: Vec<String> = pages()
        .into_iter()
        .filter(|(_, text)| !text.contains("\n## Differences from Xen\n"))
        .map(|(name, _)| format!("docs/abi/{name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "pages without `## Differences from Xen`:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_divergence_is_explained_on_its_page() {
    for d in layout::divergences() {
        let p = page(d.family.doc_page());
        assert!(
            p.contains(d.name),
            "docs/abi/{} does not mention the deliberate difference `{}`",
            d.family.doc_page(),
            d.name
        );
    }
}
