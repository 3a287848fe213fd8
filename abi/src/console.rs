//! `console_io` (hypercall 18): the hypervisor console.
//!
//! `console_io(cmd, count, buffer)`. Keel implements `CONSOLEIO_write`: the bytes go
//! to the hypervisor's serial console, prefixed per line with the domain. It returns
//! 0 on success as Xen does. `CONSOLEIO_read` returns `-ENOSYS` (no console input).
//! Bare-metal difference: there is no UART to program; a guest that does not know
//! the PV interface has no other output path in 0.1 (see `docs/abi/console.md`).

use crate::layout::{differs, xen, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Console, since: AbiVersion::V0_1;
    /// Write `count` bytes from the buffer to the console.
    CONSOLEIO_WRITE: u64 = 0 => xen("CONSOLEIO_write");
    /// Read from the console (Keel: `-ENOSYS`).
    CONSOLEIO_READ: u64 = 1 => xen("CONSOLEIO_read");
    /// The most bytes one `CONSOLEIO_write` accepts; longer writes fail with `-EINVAL`
    /// rather than being truncated silently. (Xen loops over any length; Keel bounds the
    /// time spent in one exit.)
    CONSOLEIO_WRITE_MAX: u64 = 4096 => differs(None,
        "Xen accepts a write of any length (it loops, preempting); Keel bounds the work \
         of one VM exit and answers a longer write with -EINVAL instead of truncating");
}
