//! The console keeps every byte, in order, whatever ends the domain.
//!
//! The guest prints numbered lines much faster than the serial line drains them
//! (the hypervisor's console ring holds the rest), touches an empty I/O port
//! after every 25th line (the hypervisor logs each such port once: its own line
//! must come out between the guest's lines it was printed between), and then:
//!
//! - by default: reports SUCCESS and powers off at once, with most of the
//!   output still buffered. The runner checks the `KEEL-SEQ` lines it received:
//!   every number, in order (a gap or a swap is a FAILURE).
//! - with `crash`: prints a partial line and blocks with nothing that could wake
//!   it, so the hypervisor kills the domain. `loader/tests/console_order.rs`
//!   checks that every line, the partial line and the hypervisor's lines arrive
//!   in order before the crash report and the power-off line.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest;
use keel_guest::prelude::*;
use keel_guest::report::SEQ_MARKER;

keel_guest::test! {
    title: "Console: no byte lost or reordered when the domain ends (power-off or crash)",
    category: Functional,
    main: test_main,
}

/// Lines printed: about 20 KB, more than the hypervisor's ring holds at once.
const LINES: u32 = 300;
/// An empty port is touched after every this many lines.
const PORT_EVERY: u32 = 25;
/// The first empty port touched (then one more each time).
pub const FIRST_PORT: u16 = 0x300;

fn test_main() {
    let crash = cmdline().split_ascii_whitespace().any(|w| w == "crash");
    for i in 0..LINES {
        // ~70 bytes a line, with the number in the text so that a lost or
        // swapped piece shows.
        println!(
            "{SEQ_MARKER} order {i}/{LINES} ------------------------------------------ {i:05}"
        );
        if i % PORT_EVERY == 0 {
            let _ = keel_guest::port::inb(FIRST_PORT + (i / PORT_EVERY) as u16);
        }
    }
    check_eq!(
        keel_guest::console::write_errors(),
        0,
        "console writes refused"
    );
    if crash {
        keel_guest::console::flush();
        // A partial line: the hypervisor prints it when the domain dies.
        let _ = guest::console_write(b"KEEL-SEQ partial line before the crash");
        // Upcalls masked, no timer, nothing pending: the hypervisor kills the
        // domain rather than let it sleep for ever.
        keel_guest::arch::cli();
        keel_guest::events::disable();
        let _ = guest::sched_block();
        println!("still running after a block that should have killed the domain");
    }
    success();
}
