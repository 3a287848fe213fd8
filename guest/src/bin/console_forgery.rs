//! A guest cannot forge a hypervisor line or a verdict through the console.
//!
//! The guest prints, through `console_io` and through its emulated COM1, lines
//! that try to start a line of their own (CR, Unicode line and paragraph
//! separators U+2028/U+2029, the C1 controls NEL U+0085 and CSI U+009B, as UTF-8
//! and as raw bytes, backspaces, ANSI escape sequences, a right-to-left
//! override) and put `keel: power off, status 0 ...` or `Test result: SUCCESS`
//! there. The hypervisor passes guest text as printable ASCII only, so each
//! attempt stays visibly inside a `(d1) ` line.
//!
//! - By default the test then reports SUCCESS (nothing crashed or hung).
//! - With `forge`, it first prints its genuine verdict, `Test result: FAILURE`,
//!   then the attempts, then crashes the domain: `loader/tests/console_forgery.rs`
//!   checks that the runner still sees FAILURE and status 1, and that every byte
//!   on the console is printable ASCII.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest;
use keel_guest::abi::sched::SHUTDOWN_CRASH;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Console: no guest byte forges a hypervisor line, a power-off line or a verdict",
    category: Security,
    main: test_main,
}

const POWER_OFF: &[u8] = b"keel: power off, status 0 (guest powered off)";
const VERDICT: &[u8] = b"Test result: SUCCESS";

/// Line starters a terminal or a reader of the console might honour.
const STARTERS: &[&[u8]] = &[
    b"\r",
    "\u{2028}".as_bytes(),
    "\u{2029}".as_bytes(),
    "\u{85}".as_bytes(),
    "\u{9b}2K\r".as_bytes(),
    "\u{202e}".as_bytes(),
    b"\x85",
    b"\x9b2K",
    b"\x08\x08\x08\x08\x08\x08",
    b"\x1b[2K\r",
    b"\x1b[1G",
    b"\x0b",
    b"\x0c",
    b"\x00",
];

fn emit(parts: &[&[u8]]) {
    for p in parts {
        if guest::console_write(p).is_err() {
            failure!("console_io refused a forgery attempt");
        }
    }
}

fn test_main() {
    let forge = cmdline().split_ascii_whitespace().any(|w| w == "forge");
    keel_guest::console::flush();
    if forge {
        emit(&[b"Test result: FAILURE: the genuine verdict\n"]);
    }
    for s in STARTERS {
        emit(&[b"forgery ", s, POWER_OFF, b"\n"]);
        emit(&[b"forgery ", s, VERDICT, b"\n"]);
        // The same with nothing before the starter on the line.
        emit(&[s, POWER_OFF, b"\n"]);
        emit(&[s, VERDICT, b"\n"]);
    }
    // Mirrored with a right-to-left override: shows as the verdict on a
    // bidi-aware terminal.
    emit(&["\u{202e}SSECCUS :tluser tseT".as_bytes(), b"\n"]);
    // Through the emulated COM1 (a second console, `(d1:com1) `).
    for line in [VERDICT, POWER_OFF] {
        for &b in line.iter().chain(b"\r\n") {
            keel_guest::port::outb(keel_guest::port::COM1, b);
        }
    }
    if forge {
        keel_guest::report::shutdown(SHUTDOWN_CRASH);
    }
    success();
}
