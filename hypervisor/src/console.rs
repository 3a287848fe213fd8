//! # The hypervisor console: one buffer, drained without holding the guest
//!
//! Everything Keel prints (its own `keel: ` lines and every domain's `(dN) `
//! lines) goes, whole line by whole line, into one byte ring ([`ConsoleBuf`]).
//! The ring is drained to the UART ([`Uart`]) in bursts that never wait:
//!
//! - one line-status read says whether the transmitter is empty; if it is, the
//!   next burst (the transmit FIFO's depth: 16 bytes on a 16550A whose FIFO
//!   `arch::serial::init` found enabled, 1 byte otherwise) goes out in one string
//!   instruction ([`ConsoleBuf::pump`]);
//! - the hypervisor pumps after every VM exit while the ring holds bytes, so the
//!   ring drains at the line's speed while the guest runs, and nothing waits
//!   for the UART in the guest's time;
//! - a burst starts only if it will have gone before the guest's next timer
//!   deadline ([`burst_fits`], with the cost the last burst took), and not while
//!   an event waits to be delivered to the guest: where each
//!   port access is itself an exit to a hypervisor beneath Keel, a burst costs
//!   milliseconds, and output waits for the next exit or idle period instead
//!   of making a timer late.
//!
//! One ring for everything keeps the order in which lines were completed: a
//! hypervisor line printed after a domain's line comes out after it.
//!
//! **Back-pressure.** When a line does not fit in the ring, the writer drains the
//! ring synchronously, waiting on the UART, until it fits: a writer that outruns
//! the serial line pays for its own output at the line's speed, and at most for
//! as many bytes as it is writing (one `console_io` is at most 4,096 guest bytes,
//! so one exit never does unbounded work). Nothing is dropped while the UART
//! works.
//!
//! **Nothing lost.** The power-off, panic and exception paths call
//! [`ConsoleBuf::fatal`]: every buffered byte first, then their own lines, then
//! they wait until the UART's shift register is empty.
//!
//! **A dead UART.** Every wait is bounded ([`SPIN_LIMIT`] line-status reads). A
//! UART that stays busy that long is taken as dead: from then on bytes are handed
//! to it without waiting (as a missing UART, which reads as all ones, takes
//! them), so a broken console never hangs the hypervisor.
//!
//! **The filter.** Text a guest controls reaches the console only as printable
//! ASCII ([`escape_guest`]): anything else, including every byte of a UTF-8
//! sequence (Unicode line separators, C1 controls, bidirectional overrides), CR,
//! backspace and escape, is shown as `\xNN`, and a backslash as `\\`. A line
//! ends only where the hypervisor ends it, and starts with the prefix the
//! hypervisor gives it: no guest byte can make a line that starts `keel: ` or
//! another domain's prefix, nor hide or overwrite text on a terminal.

use crate::mem::Console;
use core::fmt;

/// The ring's size in bytes: a few hundred lines, several seconds of a 115,200
/// baud line.
pub const RING_SIZE: usize = 16 * 1024;

/// Line-status reads a synchronous wait makes before it takes the UART as dead.
pub const SPIN_LIMIT: u32 = 100_000;

/// The transmitter, as the drain sees it.
pub trait Uart {
    /// How many bytes the transmitter takes now without waiting: its FIFO depth
    /// when the transmit FIFO (or holding register) is empty, else 0. One
    /// line-status read.
    fn room(&mut self) -> usize;
    /// Hand over `bytes`, at most what [`Self::room`] last reported.
    fn send(&mut self, bytes: &[u8]);
    /// Whether every byte has left the shift register (for power-off).
    fn idle(&mut self) -> bool;
    /// The FIFO depth (what [`Self::room`] reports when it is empty).
    fn depth(&self) -> usize;
}

/// Whether a burst started at TSC `now` that is expected to cost `burst_ticks`
/// ([`BurstCost`]) will have left before TSC `before`, the time by which the
/// guest's next timer must be armed (`u64::MAX`: none), with an eighth of the
/// cost to spare ([`burst_slack`]). The exit path and the idle drain start a
/// burst only then: console output never makes a timer late. A burst is cheap
/// where the UART is a real device or emulated inside the CPU model (Bochs: a
/// few hundred ticks), but under a hypervisor beneath Keel that emulates the
/// UART in its user space every port access is an exit to it, and KVM emulates
/// `REP OUTSB` one byte, one exit, at a time: a 16-byte burst then costs 17
/// exits, about 4 ms when that KVM itself runs under Bochs.
pub const fn burst_fits(now: u64, burst_ticks: u64, before: u64) -> bool {
    match now.checked_add(burst_ticks.saturating_add(burst_slack(burst_ticks))) {
        Some(end) => end < before,
        None => false,
    }
}

/// The room [`burst_fits`] leaves beyond the expected cost: the cost of one
/// burst varies with what the machine beneath does meanwhile (under nested KVM
/// one 16-byte burst took 440,578 ticks after the estimate said 391,661: an
/// eighth more, the host's interrupts during its 17 exits).
pub const fn burst_slack(burst_ticks: u64) -> u64 {
    burst_ticks.div_ceil(8)
}

/// What the next burst is expected to cost (TSC ticks), learned from the bursts
/// sent: a burst's cost scaled to a whole FIFO (under KVM each byte is an exit
/// of its own, so the cost grows with the length). The estimate rises at once
/// to a dearer burst (at most doubling, so that one burst the machine beneath
/// stalled for milliseconds does not hold the console back for long) and falls
/// by an eighth of the difference to a cheaper one: it follows the dear end of
/// the costs, which is what a burst before a deadline must be weighed with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstCost {
    ticks: u64,
}

impl BurstCost {
    /// Nothing sent yet: 0.
    pub const fn new() -> Self {
        Self { ticks: 0 }
    }

    /// The expected cost of a whole-FIFO burst now.
    pub const fn ticks(self) -> u64 {
        self.ticks
    }

    /// A burst of `sent` bytes (of a FIFO of `depth`) took `took` ticks.
    pub fn record(&mut self, took: u64, sent: usize, depth: usize) {
        if sent == 0 {
            return;
        }
        let whole = depth.max(sent) as u64;
        let scaled = took.saturating_mul(whole) / sent as u64;
        self.ticks = if self.ticks == 0 {
            scaled
        } else if scaled >= self.ticks {
            scaled.min(self.ticks.saturating_mul(2))
        } else {
            self.ticks - (self.ticks - scaled).div_ceil(8)
        };
    }
}

/// The console ring. See the module documentation.
pub struct ConsoleBuf {
    buf: [u8; RING_SIZE],
    /// Index of the oldest byte.
    head: usize,
    /// Bytes held.
    len: usize,
    /// The UART did not become ready within [`SPIN_LIMIT`] reads.
    dead: bool,
    /// Bytes the writers waited for (back-pressure), for diagnostics and tests.
    stalled: u64,
}

impl Default for ConsoleBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleBuf {
    /// Append one record made of `parts` ([`Self::write`] for each, in order).
    pub fn write_parts<U: Uart + ?Sized>(&mut self, uart: &mut U, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total <= self.free() {
            // The usual case: the whole record fits, no waiting to decide.
            for p in parts {
                self.push(p);
            }
            return;
        }
        for p in parts {
            self.write(uart, p);
        }
    }

    /// An empty ring.
    pub const fn new() -> Self {
        ConsoleBuf {
            buf: [0; RING_SIZE],
            head: 0,
            len: 0,
            dead: false,
            stalled: 0,
        }
    }

    /// Bytes waiting to go out.
    pub const fn pending(&self) -> usize {
        self.len
    }

    /// Bytes that writers had to wait for because the ring was full.
    pub const fn stalled(&self) -> u64 {
        self.stalled
    }

    /// Whether the UART has been taken as dead.
    pub const fn uart_dead(&self) -> bool {
        self.dead
    }

    fn free(&self) -> usize {
        RING_SIZE - self.len
    }

    /// Append `bytes`, which must fit.
    fn push(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.len() <= self.free());
        let tail = (self.head + self.len) % RING_SIZE;
        let first = bytes.len().min(RING_SIZE - tail);
        let (a, b) = bytes.split_at(first);
        if let Some(dst) = self.buf.get_mut(tail..tail + a.len()) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = self.buf.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
        self.len += bytes.len();
    }

    /// Send up to `n` of the oldest bytes (in at most two pieces when the ring
    /// wraps).
    fn send_oldest<U: Uart + ?Sized>(&mut self, uart: &mut U, n: usize) {
        let n = n.min(self.len);
        let first = n.min(RING_SIZE - self.head);
        if let Some(s) = self.buf.get(self.head..self.head + first) {
            uart.send(s);
        }
        if let Some(s) = self.buf.get(..n - first) {
            if !s.is_empty() {
                uart.send(s);
            }
        }
        self.head = (self.head + n) % RING_SIZE;
        self.len -= n;
    }

    /// One burst if the UART takes it now; never waits. Returns the bytes sent.
    pub fn pump<U: Uart + ?Sized>(&mut self, uart: &mut U) -> usize {
        if self.len == 0 {
            return 0;
        }
        let room = if self.dead { uart.depth() } else { uart.room() };
        let n = room.min(self.len);
        if n > 0 {
            self.send_oldest(uart, n);
        }
        n
    }

    /// One burst, waiting (boundedly) for the UART to take it.
    fn burst_waiting<U: Uart + ?Sized>(&mut self, uart: &mut U) {
        if self.dead {
            let d = uart.depth().max(1);
            self.send_oldest(uart, d);
            return;
        }
        for _ in 0..SPIN_LIMIT {
            let room = uart.room();
            if room > 0 {
                self.send_oldest(uart, room);
                return;
            }
            core::hint::spin_loop();
        }
        self.dead = true;
        let d = uart.depth().max(1);
        self.send_oldest(uart, d);
    }

    /// Append a whole record (a line) to the ring. If it does not fit, drain the
    /// ring synchronously until it does (the back-pressure rule). A record longer
    /// than the ring goes in ring-sized pieces.
    pub fn write<U: Uart + ?Sized>(&mut self, uart: &mut U, bytes: &[u8]) {
        for piece in bytes.chunks(RING_SIZE) {
            while self.free() < piece.len() {
                let before = self.len;
                self.burst_waiting(uart);
                self.stalled += (before - self.len) as u64;
            }
            self.push(piece);
        }
    }

    /// Send everything, waiting (boundedly) for the UART, then wait until its
    /// shift register is empty.
    pub fn flush<U: Uart + ?Sized>(&mut self, uart: &mut U) {
        while self.len > 0 {
            self.burst_waiting(uart);
        }
        if self.dead {
            return;
        }
        for _ in 0..SPIN_LIMIT {
            if uart.idle() {
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// The console's last words, for the panic, exception and power-off paths:
    /// every byte buffered before, then `f`'s `keel: ` lines, then a complete
    /// flush. Nothing written before is lost or reordered.
    pub fn fatal<U: Uart + ?Sized>(
        &mut self,
        uart: &mut U,
        f: impl FnOnce(&mut KeelLineWriter<'_, dyn Console + '_>),
    ) {
        self.flush(uart);
        {
            let mut sink = Direct {
                uart,
                dead: &mut self.dead,
            };
            let mut w = KeelLineWriter::new(&mut sink as &mut dyn Console);
            f(&mut w);
            w.finish_line();
        }
        self.flush(uart);
    }
}

/// A [`Console`] that hands bytes straight to the UART, waiting for it (the
/// fatal paths, after the ring has been flushed).
struct Direct<'a, U: Uart + ?Sized> {
    uart: &'a mut U,
    dead: &'a mut bool,
}

impl<U: Uart + ?Sized> Console for Direct<'_, U> {
    fn write_bytes(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let mut room = 0;
            if !*self.dead {
                for _ in 0..SPIN_LIMIT {
                    room = self.uart.room();
                    if room > 0 {
                        break;
                    }
                    core::hint::spin_loop();
                }
                *self.dead = room == 0;
            }
            if room == 0 {
                room = self.uart.depth();
            }
            let n = room.max(1).min(rest.len());
            let (now, later) = rest.split_at(n);
            self.uart.send(now);
            rest = later;
        }
    }
}

/// Whether a byte of guest text passes the filter as it is: printable ASCII
/// except the backslash (which starts an escape).
#[inline(always)]
pub const fn passes(b: u8) -> bool {
    b >= 0x20 && b < 0x7f && b != b'\\'
}

/// Whether all eight bytes of `x` pass ([`passes`]), a word at a time: no byte
/// below 0x20, none at or above 0x7f, none a backslash. (The "has a byte less
/// than n" and "has a zero byte" tests of the classic bit tricks; each is exact
/// as a test of whether any byte qualifies.)
#[inline(always)]
pub const fn word_passes(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    // A byte of 0x7f carries into its top bit; one of 0x80 or more has it. A
    // carry into the next byte comes only from 0xff, which is caught itself.
    let del_or_high = (x.wrapping_add(ONES) | x) & HIGH;
    let y = x ^ (ONES * b'\\' as u64);
    let backslash = y.wrapping_sub(ONES) & !y & HIGH;
    below_space | del_or_high | backslash == 0
}

/// How many of the first `max` bytes of `s` pass, from the start.
#[inline]
pub fn passing_run(s: &[u8], max: usize) -> usize {
    let s = s.get(..max.min(s.len())).unwrap_or(&[]);
    let mut i = 0;
    while let Some(w) = s.get(i..i + 8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        if !word_passes(u64::from_le_bytes(a)) {
            break;
        }
        i += 8;
    }
    while let Some(&b) = s.get(i) {
        if !passes(b) {
            break;
        }
        i += 1;
    }
    i
}

/// The longest form of one filtered byte (`\xNN`).
pub const ESCAPE_MAX: usize = 4;

/// How a byte of guest text appears on the console: itself if [`passes`],
/// `\\` for a backslash, `\xNN` for anything else. Returns the bytes and their
/// count. (A newline is not text: it ends the line before the filter sees it.)
pub const fn escape_guest(b: u8) -> ([u8; ESCAPE_MAX], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if passes(b) {
        ([b, 0, 0, 0], 1)
    } else if b == b'\\' {
        ([b'\\', b'\\', 0, 0], 2)
    } else {
        (
            [b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]],
            4,
        )
    }
}

/// How a byte of the hypervisor's own text appears: as [`escape_guest`], except
/// that a backslash passes (the hypervisor's text is its own; it only quotes
/// guest data, through `Debug`, whose escapes start with backslashes).
pub const fn escape_own(b: u8) -> ([u8; ESCAPE_MAX], usize) {
    if b == b'\\' {
        ([b'\\', 0, 0, 0], 1)
    } else {
        escape_guest(b)
    }
}

/// A domain's partial console line: guest bytes in, whole filtered lines out
/// (`(dN) <text>\n`).
#[derive(Clone, Debug)]
pub struct LineBuf<const N: usize> {
    line: [u8; N],
    len: usize,
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuf<N> {
    /// An empty line.
    pub const fn new() -> Self {
        LineBuf {
            line: [0; N],
            len: 0,
        }
    }

    /// The partial line not yet printed (already filtered).
    pub fn pending(&self) -> &[u8] {
        self.line.get(..self.len).unwrap_or(&[])
    }

    /// Append guest bytes: each complete line (and each time the buffer is
    /// full, what it holds) goes to `out` as one record of three parts:
    /// `prefix`, the filtered text and a newline.
    pub fn write(
        &mut self,
        prefix: &[u8],
        bytes: &[u8],
        out: &mut (impl FnMut(&[&[u8]]) + ?Sized),
    ) {
        let mut rest = bytes;
        while let Some(&b) = rest.first() {
            // The common case: a run of bytes that pass, copied at once.
            let room = N.saturating_sub(self.len);
            let run = passing_run(rest, room);
            if self.len == 0 && rest.get(run) == Some(&b'\n') {
                // A whole line that passes as it is (the usual `println!`):
                // straight from the guest's bytes, not through the buffer. (An
                // empty one prints nothing.)
                if let Some(text) = rest.get(..run).filter(|t| !t.is_empty()) {
                    out(&[prefix, text, b"\n"]);
                }
                rest = rest.get(run + 1..).unwrap_or(&[]);
                continue;
            }
            if run > 0 {
                if let (Some(dst), Some(src)) =
                    (self.line.get_mut(self.len..self.len + run), rest.get(..run))
                {
                    dst.copy_from_slice(src);
                }
                self.len += run;
                rest = rest.get(run..).unwrap_or(&[]);
                continue;
            }
            if passes(b) {
                // No room: the line is full.
                self.emit(prefix, out);
                continue;
            }
            rest = rest.get(1..).unwrap_or(&[]);
            if b == b'\n' {
                // An empty line prints nothing (as before the filter existed).
                if self.len > 0 {
                    self.emit(prefix, out);
                }
                continue;
            }
            let (e, n) = escape_guest(b);
            if self.len + n > N {
                self.emit(prefix, out);
            }
            if let (Some(dst), Some(src)) = (self.line.get_mut(self.len..self.len + n), e.get(..n))
            {
                dst.copy_from_slice(src);
                self.len += n;
            }
        }
    }

    /// Print the partial line, if any (when full, at shutdown, when the domain
    /// is killed).
    pub fn flush(&mut self, prefix: &[u8], out: &mut (impl FnMut(&[&[u8]]) + ?Sized)) {
        if self.len > 0 {
            self.emit(prefix, out);
        }
    }

    fn emit(&mut self, prefix: &[u8], out: &mut (impl FnMut(&[&[u8]]) + ?Sized)) {
        out(&[prefix, self.line.get(..self.len).unwrap_or(&[]), b"\n"]);
        self.len = 0;
    }
}

/// A writer that starts every line with `keel: ` and passes only printable
/// ASCII ([`escape_own`]); a newline in the text ends the line.
pub struct KeelLineWriter<'a, C: Console + ?Sized> {
    out: &'a mut C,
    at_line_start: bool,
}

impl<'a, C: Console + ?Sized> KeelLineWriter<'a, C> {
    /// Write to `out`; the next byte starts a line.
    pub fn new(out: &'a mut C) -> Self {
        KeelLineWriter {
            out,
            at_line_start: true,
        }
    }

    /// End the current line if one is open.
    pub fn finish_line(&mut self) {
        if !self.at_line_start {
            self.out.write_bytes(b"\n");
            self.at_line_start = true;
        }
    }
}

impl<C: Console + ?Sized> fmt::Write for KeelLineWriter<'_, C> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for line in s.split_inclusive('\n') {
            if self.at_line_start {
                self.out.write_bytes(b"keel: ");
            }
            let (text, nl) = match line.strip_suffix('\n') {
                Some(t) => (t, true),
                None => (line, false),
            };
            let mut rest = text.as_bytes();
            while !rest.is_empty() {
                let run = rest
                    .iter()
                    .position(|&b| !passes(b) && b != b'\\')
                    .unwrap_or(rest.len());
                let (ok, tail) = rest.split_at(run);
                if !ok.is_empty() {
                    self.out.write_bytes(ok);
                }
                if let Some((&b, after)) = tail.split_first() {
                    let (e, n) = escape_own(b);
                    self.out.write_bytes(e.get(..n).unwrap_or(&[]));
                    rest = after;
                } else {
                    rest = tail;
                }
            }
            if nl {
                self.out.write_bytes(b"\n");
            }
            self.at_line_start = nl;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
