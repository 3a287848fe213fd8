//! `keel`, the host tool (`cargo keel <command>`): argument parsing only; the work
//! is in the `keel_loader` library.

use keel_loader::cli::{self, Command};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keel: {e}");
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    let (mut out, mut log) = (std::io::stdout(), std::io::stderr());
    let result = match cmd {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(0)
        }
        Command::Run { guest, machine } => {
            keel_loader::run(&guest, &machine, &mut out, &mut log).map(|r| r.exit_code)
        }
        Command::Test(t) => keel_loader::test(&t, &mut out, &mut log).map(|s| i32::from(!s.ok())),
        Command::Bench(b) => keel_loader::bench(&b, &mut out, &mut log).map(|ok| i32::from(!ok)),
        Command::AbiDump => {
            print!("{}", keel_loader::abi::dump());
            Ok(0)
        }
        Command::AbiCheck => keel_loader::cargo::Workspace::locate()
            .and_then(|ws| keel_loader::abi::check(&ws, &mut out))
            .map(|ok| i32::from(!ok)),
    };
    let _ = out.flush();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("keel: error: {e}");
            ExitCode::from(cli::EXIT_TOOL_FAILED)
        }
    }
}
