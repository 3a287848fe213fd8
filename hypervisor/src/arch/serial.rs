//! COM1: a 16550 UART, the hypervisor's console and the `log` backend.
//!
//! Every hypervisor line goes out as `keel: <text>` (the `(XEN)` convention:
//! whoever reads a mixed console can tell hypervisor lines from guest lines, which
//! the hypercall code prints as `(d1) <text>`).
//!
//! Two ways in:
//! - [`Serial`] behind a spin lock, for normal logging and guest console output;
//! - [`emergency_writer`], which bypasses the lock, for the exception, panic and
//!   power-off paths: they may run while the lock is held (a fault inside the
//!   logger), and one CPU never waits for itself.

use super::port::{inb, outb};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;

/// COM1's I/O base.
pub const COM1: u16 = 0x3F8;

// 16550 register offsets from the base.
const THR: u16 = 0; // transmit holding (DLAB=0)
const IER: u16 = 1; // interrupt enable (DLAB=0)
const DLL: u16 = 0; // divisor latch low (DLAB=1)
const DLM: u16 = 1; // divisor latch high (DLAB=1)
const FCR: u16 = 2; // FIFO control
const LCR: u16 = 3; // line control
const MCR: u16 = 4; // modem control
const LSR: u16 = 5; // line status
const LSR_THR_EMPTY: u8 = 1 << 5;
const LSR_TRANSMITTER_EMPTY: u8 = 1 << 6;

/// Whether `init` has programmed the UART (the emergency path works without it:
/// emulators do not need the programming, and on hardware we lose nothing by trying).
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Program COM1 for 115200 baud, 8 data bits, no parity, one stop bit, FIFOs on,
/// no interrupts (Keel polls).
pub fn init() {
    outb(COM1 + IER, 0x00);
    outb(COM1 + LCR, 0x80); // DLAB on: the next two registers are the divisor
    outb(COM1 + DLL, 0x01); // 115200 / 1
    outb(COM1 + DLM, 0x00);
    outb(COM1 + LCR, 0x03); // 8N1, DLAB off
    outb(COM1 + FCR, 0xC7); // enable + clear FIFOs, 14-byte threshold
    outb(COM1 + MCR, 0x03); // DTR + RTS (OUT2 off: no interrupts)
    INITIALISED.store(true, Ordering::Release);
}

/// Send one byte, waiting (boundedly) for the transmitter. A missing UART reads as
/// 0xFF, which has "THR empty" set, so this never hangs on a machine without COM1;
/// the bound covers a UART that is present but stuck.
fn put_byte(b: u8) {
    for _ in 0..100_000 {
        if inb(COM1 + LSR) & LSR_THR_EMPTY != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    outb(COM1 + THR, b);
}

/// Wait (boundedly) until the UART has sent every byte, shift register included.
/// The power-off path calls this before it stops the machine: an emulator that
/// exits on a port write would otherwise lose the end of the last line (Bochs did:
/// `status 6 (VMXON failed` without its closing parenthesis).
pub fn flush() {
    for _ in 0..1_000_000 {
        if inb(COM1 + LSR) & LSR_TRANSMITTER_EMPTY != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// The raw UART: bytes out, as they are.
pub struct Serial;

impl Serial {
    /// Write bytes unchanged.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            put_byte(b);
        }
    }
}

/// The locked console everyone but the emergency paths uses.
pub static SERIAL: Mutex<Serial> = Mutex::new(Serial);

/// A writer that starts every line with `keel: `.
pub struct KeelLineWriter<'a> {
    serial: &'a mut Serial,
    at_line_start: bool,
}

impl<'a> KeelLineWriter<'a> {
    /// Wrap a serial port; the next byte starts a line.
    pub fn new(serial: &'a mut Serial) -> Self {
        KeelLineWriter {
            serial,
            at_line_start: true,
        }
    }
    /// End the current line if one is open.
    pub fn finish_line(&mut self) {
        if !self.at_line_start {
            self.serial.write_bytes(b"\n");
            self.at_line_start = true;
        }
    }
}

impl Write for KeelLineWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for line in s.split_inclusive('\n') {
            if self.at_line_start {
                self.serial.write_bytes(b"keel: ");
            }
            self.serial.write_bytes(line.as_bytes());
            self.at_line_start = line.ends_with('\n');
        }
        Ok(())
    }
}

/// The console for the exception/panic/power-off paths: no lock (see the module
/// comment). Output may interleave with a line that was being printed when the
/// fault hit; that is the price of never deadlocking.
pub fn emergency_writer() -> Serial {
    if !INITIALISED.load(Ordering::Acquire) {
        init();
    }
    Serial
}

/// `mem::Console` for guest output: the hypercall layer adds the `(d1) ` prefix.
pub struct SerialConsole;

impl crate::mem::Console for SerialConsole {
    fn write_bytes(&mut self, bytes: &[u8]) {
        SERIAL.lock().write_bytes(bytes);
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
        let mut serial = SERIAL.lock();
        let mut w = KeelLineWriter::new(&mut serial);
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

    fn flush(&self) {}
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
