//! COM1: a 16550 UART, the hypervisor's console and the `log` backend.
//!
//! Every hypervisor line goes out as `keel: <text>` (the `(XEN)` convention:
//! whoever reads a mixed console can tell hypervisor lines from guest lines, which
//! the hypercall code prints as `(d1) <text>`).
//!
//! Output goes through the console ring (`crate::console`): writers append whole
//! lines and return; the ring drains in bursts of the UART's FIFO depth, one
//! line-status read and one `REP OUTSB` a burst, whenever the transmitter is
//! empty: after every VM exit ([`pump`]) and whenever someone writes. Why this
//! design for each backend is in `docs/performance.md` ("The console").
//!
//! Two ways in:
//! - the locked ring ([`SerialConsole`], the logger) for
//!   normal logging and guest console output;
//! - [`fatal`] for the exception, panic and power-off paths: they may run while
//!   the lock is held (a fault inside the logger) and one CPU never waits for
//!   itself, so they take the ring without the lock, flush it, then print.

use super::port::{inb, outb, outsb};
use crate::console::{burst_fits, BurstCost, ConsoleBuf, KeelLineWriter, Uart};
use crate::mem::Console;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;

pub use keel_abi::platform::uart::COM1;
use keel_abi::platform::uart::{Iir, Lsr, DATA, IER, IIR_FCR, LCR, LSR, MCR};
/// A 16550A's transmit FIFO.
const FIFO_DEPTH: usize = 16;

/// Whether `init` has programmed the UART (the fatal path works without it:
/// emulators do not need the programming, and on hardware we lose nothing by trying).
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Bytes one burst may hand the UART: [`FIFO_DEPTH`] once `init` has seen the
/// FIFO enabled, 1 before (or without one).
static DEPTH: AtomicUsize = AtomicUsize::new(1);

/// Program COM1 for 115200 baud, 8 data bits, no parity, one stop bit, FIFOs on,
/// no interrupts (the ring is drained by polling at exits), and find out whether
/// the transmit FIFO is really there.
pub fn init() {
    outb(COM1 + IER, 0x00);
    outb(COM1 + LCR, 0x80); // DLAB on: the next two registers are the divisor
    outb(COM1 + DATA, 0x01); // divisor low: 115200 / 1
    outb(COM1 + IER, 0x00); // divisor high
    outb(COM1 + LCR, 0x03); // 8N1, DLAB off
    outb(COM1 + IIR_FCR, 0xC7); // enable + clear FIFOs, 14-byte threshold
    outb(COM1 + MCR, 0x03); // DTR + RTS (OUT2 off: no interrupts)
                            // A missing UART reads all ones, which also says "FIFO enabled": harmless,
                            // the bytes go nowhere either way.
    let depth = if Iir::from_bits_retain(inb(COM1 + IIR_FCR)).contains(Iir::FIFO_ENABLED) {
        FIFO_DEPTH
    } else {
        1
    };
    DEPTH.store(depth, Ordering::Relaxed);
    INITIALISED.store(true, Ordering::Release);
}

/// The transmit FIFO's depth `init` found (1: no usable FIFO).
pub fn fifo_depth() -> usize {
    DEPTH.load(Ordering::Relaxed)
}

/// COM1 as the console ring's [`Uart`].
struct Com1;

impl Uart for Com1 {
    #[inline]
    fn room(&mut self) -> usize {
        // THRE with the FIFO on means the transmit FIFO is empty: it takes a
        // whole FIFO's worth. A missing UART reads 0xFF: always room.
        if Lsr::from_bits_retain(inb(COM1 + LSR)).contains(Lsr::THRE) {
            DEPTH.load(Ordering::Relaxed)
        } else {
            0
        }
    }
    #[inline]
    fn send(&mut self, bytes: &[u8]) {
        outsb(COM1 + DATA, bytes);
    }
    fn idle(&mut self) -> bool {
        Lsr::from_bits_retain(inb(COM1 + LSR)).contains(Lsr::TEMT)
    }
    fn depth(&self) -> usize {
        DEPTH.load(Ordering::Relaxed)
    }
}

/// The console ring (`crate::console`).
static RING: Mutex<ConsoleBuf> = Mutex::new(ConsoleBuf::new());

/// When the exit path should next look at the UART: the TSC at which the last
/// burst will have left it (`u64::MAX`: the ring is empty). Read without the
/// lock on every VM exit: an empty ring costs the exit path one load, a ring
/// waiting for the line one load and one RDTSC, and the UART's status is read
/// only when a burst can have gone (under a hypervisor that emulates the UART,
/// every status read is an exit of its own).
static NEXT_POLL: AtomicU64 = AtomicU64::new(u64::MAX);

/// TSC ticks one byte takes on the line (10 bits at 115,200 baud), once the TSC
/// is calibrated ([`set_tsc_hz`]); 0 before (poll at every exit).
static BYTE_TICKS: AtomicU64 = AtomicU64::new(0);

/// The expected cost of the next burst ([`BurstCost::ticks`]: status read and
/// string write, a whole FIFO's worth), which [`crate::console::burst_fits`]
/// weighs against the next timer deadline; read without the lock on the exit
/// path. 0 until a burst has gone.
static BURST_TICKS: AtomicU64 = AtomicU64::new(0);

/// What [`BURST_TICKS`] is learned with; taken only with [`RING`] held.
static BURST_COST: Mutex<BurstCost> = Mutex::new(BurstCost::new());

/// The TSC's rate, measured at boot: from now on the drain polls the UART only
/// when the last burst can have left it.
pub fn set_tsc_hz(hz: u64) {
    BYTE_TICKS.store(hz / 11_520, Ordering::Relaxed);
}

/// Record when to look at the UART next, after `sent` bytes went out.
fn schedule(ring: &ConsoleBuf, sent: usize) {
    let next = if ring.pending() == 0 {
        u64::MAX
    } else {
        // Nothing went (the FIFO was still busy): look again a byte later.
        let bytes = sent.max(1) as u64;
        super::cpu::rdtsc().saturating_add(bytes * BYTE_TICKS.load(Ordering::Relaxed))
    };
    NEXT_POLL.store(next, Ordering::Relaxed);
}

/// Append a record to the ring. The exit that follows (every guest record is
/// written from a hypercall) sends it, knowing the guest's next deadline.
fn write_record(parts: &[&[u8]]) {
    let mut ring = RING.lock();
    ring.write_parts(&mut Com1, parts);
    if ring.pending() > 0 && NEXT_POLL.load(Ordering::Relaxed) == u64::MAX {
        NEXT_POLL.store(0, Ordering::Relaxed);
    }
}

/// One burst from the ring if the UART takes it now (never waits) and it will
/// have gone before TSC `before`. Called after VM exits that [`has_work`];
/// see [`NEXT_POLL`] for what it costs.
#[inline(never)]
pub fn pump(before: u64) {
    let now = super::cpu::rdtsc();
    if burst_fits(now, BURST_TICKS.load(Ordering::Relaxed), before) {
        pump_slow(now);
    }
}

/// Whether [`pump`] would send now: output is buffered and the UART is due to
/// be polled. One load and a compare when the ring is empty.
#[inline]
pub fn has_work() -> bool {
    let next = NEXT_POLL.load(Ordering::Relaxed);
    next != u64::MAX && super::cpu::rdtsc() >= next
}

#[inline(never)]
fn pump_slow(start: u64) {
    if let Some(mut ring) = RING.try_lock() {
        let sent = ring.pump(&mut Com1);
        if sent > 0 {
            let took = super::cpu::rdtsc().saturating_sub(start);
            let mut cost = BURST_COST.lock();
            cost.record(took, sent, DEPTH.load(Ordering::Relaxed));
            BURST_TICKS.store(cost.ticks(), Ordering::Relaxed);
        }
        schedule(&ring, sent);
    }
}

/// Send everything buffered, waiting (boundedly) for the UART.
pub fn flush() {
    let mut ring = RING.lock();
    ring.flush(&mut Com1);
    NEXT_POLL.store(u64::MAX, Ordering::Relaxed);
}

/// The console's last words (exception, panic and power-off paths): every
/// buffered byte, then `f`'s `keel: ` lines, then a wait until the UART has sent
/// everything. Takes the ring without waiting for its lock: with interrupts
/// off, a holder of the lock is code this path interrupted and that will never
/// run again (the other CPUs take the lock only while they are being started,
/// when CPU 0 waits for them and does not log, and never once parked). (A write it interrupted half way may lose or repeat at
/// most that write; every complete line before it comes out.)
pub fn fatal(f: impl FnOnce(&mut KeelLineWriter<'_, dyn Console + '_>)) {
    if !INITIALISED.load(Ordering::Acquire) {
        init();
    }
    if RING.is_locked() {
        // SAFETY: see the function comment: the lock's holder was interrupted on
        // this CPU (the only one that logs by then) and never resumes.
        unsafe { RING.force_unlock() };
    }
    let mut ring = RING.lock();
    ring.fatal(&mut Com1, f);
    NEXT_POLL.store(u64::MAX, Ordering::Relaxed);
}

/// `mem::Console` for guest output: the hypercall layer adds the `(d1) ` prefix
/// and filters the text; each call is one whole line.
pub struct SerialConsole;

impl Console for SerialConsole {
    fn write_bytes(&mut self, bytes: &[u8]) {
        write_record(&[bytes]);
    }
    fn write_parts(&mut self, parts: &[&[u8]]) {
        write_record(parts);
    }
    fn pump(&mut self, before: u64) {
        pump(before);
    }
    #[inline]
    fn has_work(&self) -> bool {
        has_work()
    }
    fn drain_until(&mut self, deadline: u64) {
        loop {
            let next = NEXT_POLL.load(Ordering::Relaxed);
            let now = super::cpu::rdtsc();
            if next == u64::MAX
                || !burst_fits(now.max(next), BURST_TICKS.load(Ordering::Relaxed), deadline)
            {
                return;
            }
            if now >= next {
                pump_slow(now);
            } else {
                core::hint::spin_loop();
            }
        }
    }
}

/// The ring as a `Console` for the logger (the lock held for the whole line, so
/// its pieces stay together).
struct Locked<'a>(&'a mut ConsoleBuf);

impl Console for Locked<'_> {
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.0.write(&mut Com1, bytes);
    }
}

/// The `log` backend.
struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut ring = RING.lock();
        {
            let mut sink = Locked(&mut ring);
            let mut w = KeelLineWriter::new(&mut sink);
            let _ = match record.level() {
                log::Level::Error => write!(w, "error: {}", record.args()),
                log::Level::Warn => write!(w, "warning: {}", record.args()),
                log::Level::Info => write!(w, "{}", record.args()),
                log::Level::Debug | log::Level::Trace => {
                    write!(w, "[{}] {}", record.target(), record.args())
                }
            };
            w.finish_line();
        }
        let sent = ring.pump(&mut Com1);
        schedule(&ring, sent);
    }

    fn flush(&self) {
        flush();
    }
}

static LOGGER: Logger = Logger;

/// Program COM1 and install it as the `log` backend at `level`.
pub fn init_logging(level: log::LevelFilter) {
    init();
    // `set_logger` fails only if a logger is already set, i.e. on a second call,
    // which keeps the first (identical) logger: nothing to report.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
