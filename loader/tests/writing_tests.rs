//! docs/writing-tests.md, followed literally: the page tells a newcomer to copy
//! the template test program to a new file and run it with `cargo keel test`;
//! this test finds those two commands in the page, does exactly that (under a
//! name of its own), and expects SUCCESS. If the page stops saying how, or what
//! it says stops working, this test fails.
//!
//! It adds a file under `guest/src/bin/`, so it lives in its own test binary
//! (cargo runs test binaries one after another: the suite run cannot see a
//! half-made test) and a guard removes the file however the test ends.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The name this test gives its copy (distinct from anything a person would pick).
const NAME: &str = "zz_doc_writing_tests_check";

/// Removes the copied test program on drop: a failing or panicking test never
/// leaves it behind in the source tree.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The words of every line of the page (code blocks included) that starts, after
/// an optional `$ ` prompt, with `prefix`.
fn commands<'a>(doc: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    doc.lines()
        .map(|l| l.trim().trim_start_matches("$ "))
        .filter(|l| l.starts_with(prefix))
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect()
        })
        .collect()
}

#[test]
fn the_writing_tests_page_works_as_written() {
    let ws = workspace();
    let doc_path = ws.join("docs/writing-tests.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("{}: {e}", doc_path.display()));

    // Step 1 of the page: `cp guest/src/bin/template.rs guest/src/bin/<name>.rs`.
    let cp = commands(&doc, "cp ")
        .into_iter()
        .find(|w| w.len() == 3 && w[1] == "guest/src/bin/template.rs")
        .expect("the page has no `cp guest/src/bin/template.rs guest/src/bin/<name>.rs` command");
    let their_name = cp[2]
        .strip_prefix("guest/src/bin/")
        .and_then(|f| f.strip_suffix(".rs"))
        .expect("the page copies the template somewhere other than guest/src/bin/<name>.rs");
    // Step 2: `cargo keel test <name>` (with whatever options the page gives).
    let run = commands(&doc, "cargo keel test")
        .into_iter()
        .find(|w| w.contains(&their_name))
        .unwrap_or_else(|| panic!("the page never runs `cargo keel test {their_name}`"));

    // Do it, under our own name.
    let new_file = ws.join(format!("guest/src/bin/{NAME}.rs"));
    let _guard = RemoveOnDrop(new_file.clone());
    std::fs::copy(ws.join("guest/src/bin/template.rs"), &new_file).expect("copying the template");
    let args: Vec<&str> = run[2..] // after `cargo keel`
        .iter()
        .map(|&w| if w == their_name { NAME } else { w })
        .collect();
    // `cargo keel` is this crate's `keel` binary (the alias in .cargo/config.toml).
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(&args)
        .current_dir(&ws)
        .output()
        .expect("running keel");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "keel {}\n{stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "keel test exited with {}", out.status);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("SUCCESS") && l.split_whitespace().nth(1) == Some(NAME)),
        "no SUCCESS line for {NAME}"
    );
    assert_eq!(stdout.lines().last(), Some("1 passed, 0 failed, 0 skipped"));
    drop(_guard);
    assert!(
        !new_file.exists(),
        "the copied test program was left behind"
    );
}

#[test]
fn command_extraction() {
    let doc = "Copy it:\n\n```sh\n$ cp guest/src/bin/template.rs guest/src/bin/my_test.rs\ncargo keel test my_test   # boots it\n```\n";
    assert_eq!(
        commands(doc, "cp "),
        [[
            "cp",
            "guest/src/bin/template.rs",
            "guest/src/bin/my_test.rs"
        ]]
    );
    assert_eq!(
        commands(doc, "cargo keel test"),
        [["cargo", "keel", "test", "my_test"]]
    );
}
