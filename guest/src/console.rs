//! The console: `print!`/`println!` over the operations table's console group
//! (`console_io(CONSOLEIO_write)` on Keel, COM1 on bare hardware: [`crate::pvops`]).
//!
//! The hypervisor prints guest output line by line, prefixed with the domain
//! (`(d1) text`). Sending one hypercall per byte would cost a VM exit per byte and
//! interleave badly, so output is collected in a line buffer and handed over one
//! whole line at a time (or when the buffer fills).
//!
//! The exception and panic paths must be able to print even if they interrupted a
//! `println!` holding the console lock; they use [`emergency_print`], which never
//! waits for the lock.

use core::fmt::{self, Write};
use spin::Mutex;

/// Bytes collected before a line is forced out without its newline.
pub const LINE_MAX: usize = 256;

/// A line buffer: bytes go in, whole lines come out through a sink.
pub struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl LineBuf {
    /// An empty buffer.
    pub const fn new() -> Self {
        LineBuf {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    /// Append `bytes`, calling `sink` with every completed line (newline included)
    /// and with the buffer's contents whenever it is full.
    pub fn push(&mut self, bytes: &[u8], sink: &mut impl FnMut(&[u8])) {
        for &b in bytes {
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' || self.len == LINE_MAX {
                sink(&self.buf[..self.len]);
                self.len = 0;
            }
        }
    }

    /// Hand out whatever is buffered (a partial line).
    pub fn flush(&mut self, sink: &mut impl FnMut(&[u8])) {
        if self.len > 0 {
            sink(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

/// Send bytes to the hypervisor console. Errors are counted, not reported: there is
/// nowhere else to report them.
fn emit(bytes: &[u8]) {
    if (crate::pvops::ops().console.write)(bytes).is_err() {
        ERRORS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
}

static ERRORS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// How many console writes the hypervisor refused so far.
pub fn write_errors() -> u32 {
    ERRORS.load(core::sync::atomic::Ordering::Relaxed)
}

static CONSOLE: Mutex<LineBuf> = Mutex::new(LineBuf::new());

struct Writer<'a>(&'a mut LineBuf);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.push(s.as_bytes(), &mut |line| emit(line));
        Ok(())
    }
}

/// The implementation of [`print!`]. Use the macros instead.
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut buf = CONSOLE.lock();
    let _ = Writer(&mut buf).write_fmt(args);
}

/// End a partial line, if one is being built, so that what follows starts on a
/// line of its own (verdict reports use it).
pub fn start_line() {
    let mut buf = CONSOLE.lock();
    if buf.len > 0 {
        buf.push(b"\n", &mut |line| emit(line));
    }
}

/// Write out any partial line.
pub fn flush() {
    if let Some(mut buf) = CONSOLE.try_lock() {
        buf.flush(&mut |line| emit(line));
    }
}

/// Print without waiting for the console lock (exception and panic paths). A partial
/// line someone else was building stays where it is; this text goes out on its own.
///
/// It writes on the platform's own console (console_io on Keel, COM1 on bare
/// hardware) whatever the table's console group is: verdicts and crashes go where
/// the runner reads them.
pub fn emergency_print(args: fmt::Arguments<'_>) {
    let mut local = LineBuf::new();
    let _ = PlatformWriter(&mut local).write_fmt(args);
    local.flush(&mut |line| emit_platform(line));
}

fn emit_platform(bytes: &[u8]) {
    if crate::pvops::platform_console(bytes).is_err() {
        ERRORS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
}

struct PlatformWriter<'a>(&'a mut LineBuf);

impl Write for PlatformWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.push(s.as_bytes(), &mut |line| emit_platform(line));
        Ok(())
    }
}

/// Print to the hypervisor console (line-buffered).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Print a line to the hypervisor console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn lines_come_out_whole() {
        let mut lb = LineBuf::new();
        let mut out: Vec<Vec<u8>> = Vec::new();
        lb.push(b"ab", &mut |l| out.push(l.to_vec()));
        assert!(out.is_empty());
        lb.push(b"c\nde\nf", &mut |l| out.push(l.to_vec()));
        assert_eq!(out, [b"abc\n".to_vec(), b"de\n".to_vec()]);
        lb.flush(&mut |l| out.push(l.to_vec()));
        assert_eq!(out.last().unwrap(), b"f");
        lb.flush(&mut |l| out.push(l.to_vec()));
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn long_lines_are_split_at_the_buffer_size() {
        let mut lb = LineBuf::new();
        let mut out: Vec<usize> = Vec::new();
        lb.push(&[b'x'; LINE_MAX * 2 + 3], &mut |l| out.push(l.len()));
        assert_eq!(out, [LINE_MAX, LINE_MAX]);
    }
}
