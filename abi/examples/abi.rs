//! `cargo run -q -p keel-abi --example abi -- dump` / `-- check <fixture>`: the ABI
//! description tool without the host tool (which offers the same as
//! `cargo keel abi dump|check`). Used by the release procedure in
//! `docs/abi-versioning.md`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["dump"] => {
            print!("{}", keel_abi::layout::dump());
            ExitCode::SUCCESS
        }
        ["check", path] => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{path}: {e}");
                    return ExitCode::from(2);
                }
            };
            match keel_abi::layout::check(&text) {
                Ok(()) => {
                    println!("{path}: the current ABI keeps every item of this fixture");
                    ExitCode::SUCCESS
                }
                Err(violations) => {
                    for v in &violations {
                        eprintln!("{path}:{v}");
                    }
                    eprintln!("{path}: {} violation(s)", violations.len());
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: abi dump | abi check <fixture>");
            ExitCode::from(2)
        }
    }
}
