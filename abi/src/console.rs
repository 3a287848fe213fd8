//! `console_io` (hypercall 18): the hypervisor console.
//!
//! `console_io(cmd, count, buffer)`. Keel implements `CONSOLEIO_write`: the bytes go
//! to the hypervisor's serial console, prefixed per line with the domain. It returns
//! 0 on success as Xen does. `CONSOLEIO_read` returns `-ENOSYS` (no console input).
//! Bare-metal difference: there is no UART to program; a guest that does not know
//! the PV interface may still print through an emulated COM1 (see `docs/abi/io.md`).

/// Write `count` bytes from the buffer to the console.
pub const CONSOLEIO_WRITE: u64 = 0;
/// Read from the console (Keel: `-ENOSYS`).
pub const CONSOLEIO_READ: u64 = 1;

/// The most bytes one `CONSOLEIO_write` accepts; longer writes fail with `-EINVAL`
/// rather than being truncated silently. (Xen loops over any length; Keel bounds the
/// time spent in one exit.)
pub const CONSOLEIO_WRITE_MAX: u64 = 4096;
