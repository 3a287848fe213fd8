//! `keel`, the host tool (`cargo keel <command>`): argument parsing only; the work
//! is in the `keel_loader` library.

use keel_loader::cli::{self, AbiCommand, Command};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        print!("{}", cli::help());
        return ExitCode::SUCCESS;
    }
    let cli = match cli::parse(args) {
        Ok(c) => c,
        Err(e) if cli::is_help_request(&e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("keel: {}", cli::one_line(&e));
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    let (mut out, mut log) = (std::io::stdout(), std::io::stderr());
    let result = match cli.command {
        Command::Run(r) => {
            let machine = r.machine.options(cli::RUN_TIMEOUT);
            keel_loader::run_guests(&r.guest, &machine, &mut out, &mut log).map(|r| r.exit_code)
        }
        Command::Test(t) => {
            keel_loader::test(&t.options(), &mut out, &mut log).map(|s| i32::from(!s.ok()))
        }
        Command::Bench(b) => {
            keel_loader::bench(&b.options(), &mut out, &mut log).map(|ok| i32::from(!ok))
        }
        Command::Abi(AbiCommand::Dump) => {
            print!("{}", keel_loader::abi::dump());
            Ok(0)
        }
        Command::Abi(AbiCommand::Check) => keel_loader::cargo::Workspace::locate()
            .and_then(|ws| keel_loader::abi::check(&ws, &mut out))
            .map(|ok| i32::from(!ok)),
        Command::Completions { shell } => {
            cli::completions(shell, &mut out);
            Ok(0)
        }
    };
    let _ = out.flush();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) if keel_loader::error::is_usage(&e) => {
            eprintln!("keel: {e:#}");
            ExitCode::from(cli::EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("keel: error: {e:#}");
            ExitCode::from(cli::EXIT_TOOL_FAILED)
        }
    }
}
