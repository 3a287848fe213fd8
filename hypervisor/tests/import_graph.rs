//! No import circle between the hypervisor's source files.
//!
//! The graph's nodes are the files of `hypervisor/src` reachable from `lib.rs`
//! and `main.rs` through `mod` declarations, test modules included (a circle
//! that only a `#[cfg(test)]` module closes is still a circle in the test
//! build). File `a` has an edge to file `b` when code in `a` (comments and
//! string literals removed) names a path that resolves into the module `b`
//! defines:
//!
//! - paths starting `crate::`, `super::`, `self::`, or the name of a child
//!   module of the module they are written in (`use` trees, `{…}` groups
//!   included, and paths in expressions, types and attributes alike);
//! - a path resolves to the longest prefix that is a module defined by a file,
//!   so a path into an inline module lands on the file holding it.
//!
//! One kind of edge is not counted: an edge to an *ancestor* file (a child
//! module naming its parent's or the crate root's items, typically
//! `use super::*` in a child module). A child module is part of its parent,
//! the way an inline module is; the parent decides what it declares, and the
//! rule that matters is between siblings and cousins. The parent naming its
//! child's items is counted, so a child naming a sibling's item through the
//! parent's re-export is not seen: name the sibling directly.
//!
//! Paths through a name brought in by `use` (`use crate::x; x::f()`) are not
//! followed: the `use` already made the edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    PathSep,
    Punct(char),
}

/// `src` as tokens with their line numbers: comments dropped, literals kept
/// as opaque strings, everything else one character per punctuation token
/// (except `::`).
fn tokenize(src: &str) -> Vec<(Tok, usize)> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let count_lines = |s: &[char]| s.iter().filter(|&&c| c == '\n').count();
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let (start, mut depth) = (i, 0usize);
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count_lines(&b[start..i.min(b.len())]);
        } else if let Some((len, body)) = raw_string(&b[i..]) {
            out.push((Tok::Str(body), line));
            line += count_lines(&b[i..i + len]);
            i += len;
        } else if c == '"' || (c == 'b' && next == Some('"')) {
            let start = i;
            i += if c == 'b' { 2 } else { 1 };
            let body_start = i;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            out.push((
                Tok::Str(b[body_start..i.min(b.len())].iter().collect()),
                line,
            ));
            i += 1;
            line += count_lines(&b[start..i.min(b.len())]);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(b[start..i].iter().collect()), line));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '.') {
                if b[i] == '.' && !b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
        } else if c == ':' && next == Some(':') {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// A raw string literal (`r"…"`, `r#"…"#`, `br"…"`) at the start of `s`: its
/// length and body.
fn raw_string(s: &[char]) -> Option<(usize, String)> {
    let mut i = 0;
    if s.first() == Some(&'b') {
        i += 1;
    }
    if s.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
    i += hashes;
    if s.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    let body_start = i;
    while i < s.len() {
        if s[i] == '"'
            && s[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some((i + 1 + hashes, s[body_start..i].iter().collect()));
        }
        i += 1;
    }
    Some((s.len(), s[body_start..].iter().collect()))
}

/// The first segment of the binary crate's module paths.
const BIN: &str = "<bin>";

/// One source file: the module path it defines and where it is.
struct File {
    module: Vec<String>,
    path: PathBuf,
}

/// A path written in a file: the module it was written in, its segments, its line.
struct Ref {
    scope: Vec<String>,
    segs: Vec<String>,
    line: usize,
}

/// Loads the crate tree from `root_file` (module path `[]`), following `mod`
/// declarations (and `#[path]`), and collects each file's paths. Inline
/// modules are recorded in `inline` so that paths into them resolve.
fn load(
    root_module: Vec<String>,
    root_file: &Path,
    files: &mut Vec<File>,
    refs: &mut Vec<Vec<Ref>>,
    inline: &mut BTreeSet<Vec<String>>,
) {
    let mut queue = vec![(root_module, root_file.to_path_buf())];
    while let Some((module, path)) = queue.pop() {
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let toks = tokenize(&text);
        let is_dir_owner = matches!(
            path.file_name().and_then(|n| n.to_str()),
            Some("mod.rs" | "lib.rs" | "main.rs")
        );
        let dir = path.parent().unwrap().to_path_buf();
        let child_dir = if is_dir_owner {
            dir.clone()
        } else {
            dir.join(path.file_stem().unwrap())
        };
        let mut file_refs = Vec::new();
        // Inline modules open at these brace depths.
        let mut stack: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut path_attr: Option<String> = None;
        let mut i = 0;
        while i < toks.len() {
            let scope = || {
                let mut s = module.clone();
                s.extend(stack.iter().map(|(n, _)| n.clone()));
                s
            };
            match &toks[i].0 {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => {
                    depth -= 1;
                    if stack.last().is_some_and(|&(_, d)| d == depth) {
                        stack.pop();
                    }
                }
                Tok::Ident(id) if id == "path" => {
                    if let (Some((Tok::Punct('='), _)), Some((Tok::Str(p), _))) =
                        (toks.get(i + 1), toks.get(i + 2))
                    {
                        path_attr = Some(p.clone());
                    }
                }
                Tok::Ident(id) if id == "mod" => {
                    if let Some((Tok::Ident(name), _)) = toks.get(i + 1) {
                        let mut m = scope();
                        m.push(name.clone());
                        match toks.get(i + 2).map(|t| &t.0) {
                            Some(Tok::Punct(';')) => {
                                let mut d = child_dir.clone();
                                for (n, _) in &stack {
                                    d = d.join(n);
                                }
                                let file = match path_attr.take() {
                                    Some(p) if stack.is_empty() => dir.join(p),
                                    Some(p) => d.join(p),
                                    None if d.join(format!("{name}.rs")).exists() => {
                                        d.join(format!("{name}.rs"))
                                    }
                                    None => d.join(name).join("mod.rs"),
                                };
                                queue.push((m, file));
                                i += 3;
                                continue;
                            }
                            Some(Tok::Punct('{')) => {
                                inline.insert(m);
                                stack.push((name.clone(), depth));
                                depth += 1;
                                path_attr = None;
                                i += 3;
                                continue;
                            }
                            _ => {}
                        }
                    }
                }
                Tok::Ident(id) if id == "use" => {
                    let line = toks[i].1;
                    let (paths, end) = use_tree(&toks, i + 1, Vec::new());
                    let s = scope();
                    file_refs.extend(paths.into_iter().map(|segs| Ref {
                        scope: s.clone(),
                        segs,
                        line,
                    }));
                    i = end;
                    continue;
                }
                Tok::Ident(first)
                    if matches!(toks.get(i + 1), Some((Tok::PathSep, _)))
                        && !matches!(i.checked_sub(1).map(|j| &toks[j].0), Some(Tok::PathSep)) =>
                {
                    let line = toks[i].1;
                    let mut segs = vec![first.clone()];
                    let mut j = i + 1;
                    while let (Some((Tok::PathSep, _)), Some((Tok::Ident(s), _))) =
                        (toks.get(j), toks.get(j + 1))
                    {
                        segs.push(s.clone());
                        j += 2;
                    }
                    file_refs.push(Ref {
                        scope: scope(),
                        segs,
                        line,
                    });
                    i = j;
                    continue;
                }
                Tok::Punct(';') => path_attr = None,
                _ => {}
            }
            i += 1;
        }
        files.push(File { module, path });
        refs.push(file_refs);
    }
}

/// The paths of the use tree starting at `toks[i]` (after `use` or inside a
/// group), each prefixed with `prefix`, and the index after the tree.
fn use_tree(toks: &[(Tok, usize)], mut i: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let mut segs = prefix;
    let mut out = Vec::new();
    if matches!(toks.get(i), Some((Tok::PathSep, _))) {
        i += 1;
    }
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(s)) if s != "as" => {
                segs.push(s.clone());
                i += 1;
            }
            Some(Tok::PathSep) => i += 1,
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Punct('}')) | None => {
                            i += 1;
                            break;
                        }
                        Some(Tok::Punct(',')) => i += 1,
                        _ => {
                            let (p, end) = use_tree(toks, i, segs.clone());
                            out.extend(p);
                            i = end;
                        }
                    }
                }
                return (out, i);
            }
            Some(Tok::Punct('*')) => {
                out.push(segs);
                return (out, i + 1);
            }
            Some(Tok::Ident(_)) => {
                // `as name`
                out.push(segs);
                return (out, i + 2);
            }
            _ => {
                if !segs.is_empty() {
                    out.push(segs);
                }
                return (out, i);
            }
        }
    }
}

/// The absolute module path a path written in `scope` names, if it starts
/// with `crate`, `self`, `super` or a child module of `scope`.
fn absolute(
    scope: &[String],
    segs: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut base = scope.to_vec();
    let mut rest = segs;
    match segs.first()?.as_str() {
        "crate" => {
            base.truncate(usize::from(scope.first().map(String::as_str) == Some(BIN)));
            rest = &segs[1..];
        }
        "self" => rest = &segs[1..],
        "super" => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        first => {
            let mut child = scope.to_vec();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The import graph of the crate rooted at `src`: for each file (by index),
/// the files it depends on and the line of one path that makes the edge.
fn graph(src: &Path) -> (Vec<File>, Vec<BTreeMap<usize, usize>>) {
    let mut files = Vec::new();
    let mut refs = Vec::new();
    let mut inline = BTreeSet::new();
    // The binary is its own crate: its module paths start with `BIN` so that
    // the two trees do not share them.
    load(
        Vec::new(),
        &src.join("lib.rs"),
        &mut files,
        &mut refs,
        &mut inline,
    );
    load(
        vec![BIN.into()],
        &src.join("main.rs"),
        &mut files,
        &mut refs,
        &mut inline,
    );
    let by_module: BTreeMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let mut modules: BTreeSet<Vec<String>> = by_module.keys().cloned().collect();
    modules.extend(inline);
    let mut edges = vec![BTreeMap::new(); files.len()];
    for (from, file_refs) in refs.iter().enumerate() {
        for r in file_refs {
            let Some(mut abs) = absolute(&r.scope, &r.segs, &modules) else {
                continue;
            };
            // The module the path names (an inline one included) ...
            while !abs.is_empty() && !modules.contains(&abs) {
                abs.pop();
            }
            let is_ancestor = abs.len() <= r.scope.len() && r.scope[..abs.len()] == abs[..];
            if is_ancestor {
                continue;
            }
            // ... and the file that defines it.
            while !by_module.contains_key(&abs) {
                abs.pop();
            }
            let to = by_module[&abs];
            if to != from {
                edges[from].entry(to).or_insert(r.line);
            }
        }
    }
    (files, edges)
}

/// The strongly connected components with more than one file (Tarjan).
fn circles(edges: &[BTreeMap<usize, usize>]) -> Vec<Vec<usize>> {
    struct T<'a> {
        edges: &'a [BTreeMap<usize, usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on: Vec<bool>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(t: &mut T, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in t.edges[v].keys() {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let n = edges.len();
    let mut t = T {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on: vec![false; n],
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    t.out
}

/// One cycle through `comp`, as the file edges (with the line making each).
fn one_cycle(comp: &[usize], edges: &[BTreeMap<usize, usize>]) -> Vec<(usize, usize, usize)> {
    let inside: BTreeSet<usize> = comp.iter().copied().collect();
    let start = comp[0];
    // Breadth-first from `start` back to `start` inside the component.
    let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
    let mut frontier = vec![start];
    'search: while !frontier.is_empty() {
        let mut next = Vec::new();
        for v in frontier {
            for &w in edges[v].keys().filter(|w| inside.contains(w)) {
                if w == start {
                    prev.insert(start, v);
                    break 'search;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(w) {
                    e.insert(v);
                    next.push(w);
                }
            }
        }
        frontier = next;
    }
    let mut cycle = Vec::new();
    let mut to = start;
    loop {
        let from = prev[&to];
        cycle.push((from, to, edges[from][&to]));
        to = from;
        if to == start {
            break;
        }
    }
    cycle.reverse();
    cycle
}

fn describe(src: &Path, files: &[File], edges: &[BTreeMap<usize, usize>]) -> Vec<String> {
    let name = |i: usize| {
        files[i]
            .path
            .strip_prefix(src)
            .unwrap_or(&files[i].path)
            .display()
            .to_string()
    };
    circles(edges)
        .iter()
        .map(|comp| {
            let files_in: Vec<String> = comp.iter().map(|&i| name(i)).collect();
            let steps: Vec<String> = one_cycle(comp, edges)
                .iter()
                .map(|&(a, b, line)| format!("{}:{line} -> {}", name(a), name(b)))
                .collect();
            format!(
                "circle among {{{}}}: {}",
                files_in.join(", "),
                steps.join(", ")
            )
        })
        .collect()
}

#[test]
fn no_import_circle_between_hypervisor_source_files() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let (files, edges) = graph(&src);
    // The walk must have found the tree, or the test proves nothing.
    assert!(
        files.len() > 50,
        "only {} files reached from lib.rs/main.rs",
        files.len()
    );
    let found = describe(&src, &files, &edges);
    assert!(
        found.is_empty(),
        "import circles in hypervisor/src:\n{}",
        found.join("\n")
    );
}

/// The checker itself, on a small tree: it sees a circle that goes through a
/// `use` group, an expression path and a child-module-relative path, and it
/// does not count a child naming its parent.
#[test]
fn the_checker_finds_a_planted_circle_and_ignores_child_to_parent() {
    let dir = std::env::temp_dir().join(format!("keel-import-graph-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("a")).unwrap();
    let write = |p: &str, s: &str| fs::write(dir.join(p), s).unwrap();
    write(
        "lib.rs",
        "mod a;\nmod b;\n#[cfg(test)]\nmod c { use crate::b::X; }\n",
    );
    write("main.rs", "use keel::a;\n");
    write("a/mod.rs", "mod x;\nmod y;\npub use y::Y;\n");
    write(
        "a/x.rs",
        "use super::*;\n// crate::b::Z in a comment\nconst S: &str = \"crate::b\";\n",
    );
    write("a/y.rs", "use super::{x, Y2};\npub struct Y;\n");
    write(
        "b.rs",
        "use crate::{a::{self as aa}, c};\nfn f() -> u8 { crate::a::x::G }\n",
    );
    let (files, edges) = graph(&dir);
    assert_eq!(files.len(), 6);
    let found = describe(&dir, &files, &edges);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("b.rs") && found[0].contains("lib.rs"),
        "{found:?}"
    );
    // Drop the test module's edge: no circle left (a/x.rs -> a/mod.rs and
    // a/y.rs -> a/mod.rs are child-to-parent; the comment and the string do
    // not count).
    write("lib.rs", "mod a;\nmod b;\nmod c {}\n");
    write("b.rs", "fn f() -> u8 { crate::a::x::G }\n");
    let (files, edges) = graph(&dir);
    assert!(describe(&dir, &files, &edges).is_empty());
    // A sibling pair closes a circle.
    write("a/x.rs", "use super::y::Y;\n");
    write("a/y.rs", "fn g() { super::x::h() }\n");
    let (files, edges) = graph(&dir);
    let found = describe(&dir, &files, &edges);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("a/x.rs:1 -> a/y.rs"), "{found:?}");
    let _ = fs::remove_dir_all(&dir);
}
