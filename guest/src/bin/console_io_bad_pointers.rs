//! `console_io(CONSOLEIO_write)` with buffers the guest does not own or that are
//! not mapped: every one must be refused with `-EFAULT`, including buffers that
//! start in the guest's memory and run off its end.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::console::CONSOLEIO_WRITE;
use keel_guest::abi::guest::hypercall_scalar;
use keel_guest::prelude::*;
use keel_guest::targets;

keel_guest::test! {
    title: "console_io: NULL, unmapped, non-canonical and hypervisor-looking buffers are -EFAULT",
    category: Security,
    main: test_main,
}

fn write(count: u64, buf: u64) -> i64 {
    hypercall_scalar(Hypercall::CONSOLE_IO, [CONSOLEIO_WRITE, count, buf, 0, 0])
}

fn test_main() {
    for bp in targets::bad_pointers() {
        if keel_guest::start::va_to_pfn(bp.va).is_some() {
            // With a very large guest_mem the region could reach this address.
            println!(
                "note: {} ({:#x}) is inside the guest's region: not tested",
                bp.name,
                bp.va.get()
            );
            continue;
        }
        for count in [1u64, 16, 4096] {
            check_eq!(
                write(count, bp.va.get()),
                Errno::EFAULT.as_return(),
                "CONSOLEIO_write({count}, {} {:#x}) [{:?}]",
                bp.name,
                bp.va.get(),
                bp.kind
            );
        }
    }

    // A buffer whose first bytes are the guest's but whose tail is not mapped: the
    // last 8 bytes of the region plus 8 beyond it.
    let end = targets::region_end().get();
    check_eq!(
        write(16, end - 8),
        Errno::EFAULT.as_return(),
        "CONSOLEIO_write(16) straddling the end of the guest's region at {end:#x}"
    );
    // A buffer whose address wraps around the top of the address space.
    check_eq!(
        write(32, u64::MAX - 15),
        Errno::EFAULT.as_return(),
        "CONSOLEIO_write(32) wrapping past 2^64"
    );
    // A buffer that starts canonical-low and runs into the non-canonical hole.
    check_eq!(
        write(64, 0x0000_7fff_ffff_fff0),
        Errno::EFAULT.as_return(),
        "CONSOLEIO_write(64) running into the non-canonical hole"
    );

    // The positive control: the same call on a good buffer works, so the -EFAULTs
    // above are about the pointers.
    let ok = b"console_io_bad_pointers: a good buffer still prints\n";
    check_eq!(
        write(ok.len() as u64, ok.as_ptr() as u64),
        0,
        "CONSOLEIO_write of a good buffer"
    );
    success();
}
