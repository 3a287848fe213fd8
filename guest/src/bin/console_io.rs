//! `console_io`: writes of every legal size succeed, too large a count is
//! `-EINVAL`, `CONSOLEIO_read` and unknown sub-commands are `-ENOSYS`.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::console::{CONSOLEIO_READ, CONSOLEIO_WRITE, CONSOLEIO_WRITE_MAX};
use keel_guest::abi::guest::hypercall_scalar;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "console_io: write sizes, -EINVAL for oversized writes, -ENOSYS for read and unknown commands",
    category: Functional,
    main: test_main,
}

/// A maximum-size buffer: 64 lines of 64 bytes, so even an accepted oversized
/// write stays readable on the console.
static BIG: [u8; CONSOLEIO_WRITE_MAX as usize + 64] = {
    let mut b = [b'.'; CONSOLEIO_WRITE_MAX as usize + 64];
    let mut i = 63;
    while i < b.len() {
        b[i] = b'\n';
        i += 64;
    }
    b
};

fn console_io(cmd: u64, count: u64, buf: u64) -> i64 {
    hypercall_scalar(Hypercall::CONSOLE_IO, [cmd, count, buf, 0, 0])
}

fn test_main() {
    let line = b"console_io: a direct CONSOLEIO_write of one line\n";
    check_eq!(
        console_io(CONSOLEIO_WRITE, line.len() as u64, line.as_ptr() as u64),
        0,
        "CONSOLEIO_write of {} bytes",
        line.len()
    );

    // A zero-length write has nothing to read: it succeeds (as on Xen).
    check_eq!(
        console_io(CONSOLEIO_WRITE, 0, line.as_ptr() as u64),
        0,
        "CONSOLEIO_write of 0 bytes"
    );

    // Exactly the maximum is accepted...
    check_eq!(
        console_io(CONSOLEIO_WRITE, CONSOLEIO_WRITE_MAX, BIG.as_ptr() as u64),
        0,
        "CONSOLEIO_write of CONSOLEIO_WRITE_MAX ({CONSOLEIO_WRITE_MAX}) bytes"
    );
    // ...one more is refused, not truncated.
    for count in [
        CONSOLEIO_WRITE_MAX + 1,
        CONSOLEIO_WRITE_MAX + 64,
        1 << 32,
        u64::MAX,
    ] {
        let r = console_io(CONSOLEIO_WRITE, count, BIG.as_ptr() as u64);
        // Counts beyond the buffer may also be reported as -EFAULT (the buffer ends
        // first); a count past the maximum must never succeed.
        if count <= BIG.len() as u64 {
            check_eq!(
                r,
                Errno::EINVAL.as_return(),
                "CONSOLEIO_write of {count} bytes"
            );
        } else {
            check!(
                r == Errno::EINVAL.as_return() || r == Errno::EFAULT.as_return(),
                "CONSOLEIO_write of {count:#x} bytes returned {r}, want -EINVAL or -EFAULT"
            );
        }
    }

    let mut rbuf = [0u8; 16];
    check_eq!(
        console_io(CONSOLEIO_READ, rbuf.len() as u64, rbuf.as_mut_ptr() as u64),
        Errno::ENOSYS.as_return(),
        "CONSOLEIO_read"
    );
    check_eq!(rbuf, [0u8; 16], "buffer after a refused CONSOLEIO_read");

    // Including CONSOLEIO_write with upper bits set: all 64 bits of the command count.
    for cmd in [2u64, 3, 0x100, u32::MAX as u64, 1 << 32, u64::MAX] {
        check_eq!(
            console_io(cmd, 1, line.as_ptr() as u64),
            Errno::ENOSYS.as_return(),
            "console_io unknown command {cmd:#x}"
        );
    }

    // The safe wrapper splits long output into legal chunks.
    let wrapped = keel_guest::abi::guest::console_write(&BIG[..CONSOLEIO_WRITE_MAX as usize + 64]);
    check_eq!(wrapped, Ok(()), "abi::guest::console_write of 4160 bytes");
    check_eq!(
        keel_guest::console::write_errors(),
        0,
        "console write errors while printing"
    );

    success();
}
