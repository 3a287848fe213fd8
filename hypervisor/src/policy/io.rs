//! # I/O ports: an empty bus with one serial port
//!
//! Every IN/OUT (and INS/OUTS) a guest executes exits to Keel (unconditional I/O
//! exiting, or I/O bitmaps of all ones: `vmx::controls`). The guest sees the bus
//! described by [`PORTS`]:
//!
//! - **COM1** (`0x3f8..=0x3ff`): a 16550 UART that transmits instantly and never
//!   receives. Bytes written to its data register become a second console, line by
//!   line, prefixed `(dN:com1) ` so nobody mistakes them for the PV console's `(dN) `
//!   lines (and a guest cannot forge a test verdict through it). A guest that knows
//!   nothing of hypercalls can still print.
//! - **Port 0x80** (POST codes, also the classic "I/O delay" port): ignored
//!   silently, reads all ones.
//! - **Everything else**: reads return all ones (what an ISA bus returns when no
//!   device answers), writes are dropped, and the exit handler logs each such port
//!   once.
//!
//! An access of 2 or 4 bytes is, as on an ISA bus, that many one-byte accesses to
//! consecutive ports. The module is pure: the exit handler decodes the exit and
//! hands the bytes here together with a [`Console`].

use crate::mem::Console;

/// What a port range is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// The emulated COM1 UART.
    Com1,
    /// Accepted and ignored, without logging (reads all ones).
    Ignored,
}

/// A range of ports with a device behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
    /// Name.
    pub name: &'static str,
    /// What it is.
    pub kind: PortKind,
    /// Why, for the documentation.
    pub why: &'static str,
}

/// COM1's base port.
pub use keel_abi::platform::uart::COM1;

/// The bus. Ports not listed read all ones, drop writes, and are logged once.
pub const PORTS: &[PortRange] = &[
    PortRange {
        first: 0x80,
        last: 0x80,
        name: "POST code / I/O delay",
        kind: PortKind::Ignored,
        why: "kernels write it as a delay; ignored without logging",
    },
    PortRange {
        first: COM1,
        last: COM1 + 7,
        name: "COM1 (16550 UART)",
        kind: PortKind::Com1,
        why: "transmit-only UART: output is a second console, lines prefixed `(dN:com1) `",
    },
];

/// The device for `port`, if any.
pub fn lookup(port: u16) -> Option<&'static PortRange> {
    PORTS.iter().find(|r| r.first <= port && port <= r.last)
}

/// 16550 UART registers (offsets from the base) and the bits the emulation
/// reads or reports.
use keel_abi::platform::{self, uart};

use uart::{Iir, Lcr, Lsr, ModemStatus};

/// The longest COM1 line printed as one; a longer one is split.
pub const LINE_MAX: usize = 120;

/// The emulated COM1: its registers and the line being assembled.
#[derive(Clone, Debug)]
pub struct Com1 {
    domain: u16,
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fifo: bool,
    divisor: u16,
    line: [u8; LINE_MAX],
    len: usize,
}

impl Com1 {
    /// COM1 of domain `domain`, as after reset.
    pub const fn new(domain: u16) -> Self {
        Com1 {
            domain,
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            fifo: false,
            divisor: 12, // 9600 baud
            line: [0; LINE_MAX],
            len: 0,
        }
    }

    fn dlab(&self) -> bool {
        Lcr::from_bits_retain(self.lcr).contains(Lcr::DLAB)
    }

    /// Read register `off`.
    pub fn read(&self, off: u16) -> u8 {
        match off {
            uart::DATA if self.dlab() => self.divisor as u8,
            uart::DATA => 0, // nothing is ever received
            uart::IER if self.dlab() => (self.divisor >> 8) as u8,
            uart::IER => self.ier,
            uart::IIR_FCR => {
                let fifo = if self.fifo {
                    Iir::FIFO_ENABLED
                } else {
                    Iir::empty()
                };
                (Iir::NO_INTERRUPT | fifo).bits()
            }
            uart::LCR => self.lcr,
            uart::MCR => self.mcr,
            // Always idle: every byte is taken at once.
            uart::LSR => (Lsr::THRE | Lsr::TEMT).bits(),
            // A connected terminal.
            uart::MSR => (ModemStatus::CTS | ModemStatus::DSR | ModemStatus::DCD).bits(),
            uart::SCR => self.scr,
            _ => 0xff,
        }
    }

    /// Write register `off`; a transmitted byte goes to the line (and the console
    /// when the line is complete).
    pub fn write(&mut self, off: u16, v: u8, console: &mut (impl Console + ?Sized)) {
        match off {
            uart::DATA if self.dlab() => self.divisor = (self.divisor & 0xff00) | u16::from(v),
            uart::DATA => self.transmit(v, console),
            uart::IER if self.dlab() => self.divisor = (self.divisor & 0xff) | (u16::from(v) << 8),
            uart::IER => self.ier = v & 0xf,
            uart::IIR_FCR => self.fifo = v & 1 != 0,
            uart::LCR => self.lcr = v,
            uart::MCR => self.mcr = v & 0x1f,
            uart::SCR => self.scr = v,
            // LSR and MSR are read-only.
            _ => {}
        }
    }

    fn transmit(&mut self, b: u8, console: &mut (impl Console + ?Sized)) {
        match b {
            b'\n' => self.flush(console),
            // Terminals send CR LF; the console adds its own line ends.
            b'\r' => {}
            _ => {
                if self.len == LINE_MAX {
                    self.flush(console);
                }
                if let Some(slot) = self.line.get_mut(self.len) {
                    // Only printable ASCII reaches the host's console: a guest must
                    // not drive the operator's terminal with escape sequences.
                    *slot = if b == b'\t' || (0x20..0x7f).contains(&b) {
                        b
                    } else {
                        b'.'
                    };
                    self.len += 1;
                }
            }
        }
    }

    /// Print the line assembled so far (at a newline, when full, and when the
    /// domain ends with a partial line).
    pub fn flush(&mut self, console: &mut (impl Console + ?Sized)) {
        let mut prefix = [0u8; platform::COM1_PREFIX_MAX];
        let n = platform::tagged_domain_prefix(self.domain, platform::COM1_TAG, &mut prefix);
        console.write_bytes(prefix.get(..n).unwrap_or(&[]));
        console.write_bytes(self.line.get(..self.len).unwrap_or(&[]));
        console.write_bytes(b"\n");
        self.len = 0;
    }

    /// Whether a partial line is waiting.
    pub fn pending(&self) -> bool {
        self.len != 0
    }
}

/// The bus of one domain.
#[derive(Clone, Debug)]
pub struct IoBus {
    /// COM1.
    pub com1: Com1,
}

/// The outcome of one IN/OUT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// For IN: the value (the low `size` bytes; upper bytes all ones).
    pub value: u32,
    /// The first port of the access with no device (to be logged once), if any.
    pub unhandled: Option<u16>,
}

impl IoBus {
    /// The bus of domain `domain`.
    pub const fn new(domain: u16) -> Self {
        IoBus {
            com1: Com1::new(domain),
        }
    }

    /// IN of `size` (1, 2 or 4) bytes from `port`.
    pub fn read(&mut self, port: u16, size: u8) -> Access {
        let mut value = u32::MAX;
        let mut unhandled = None;
        for i in 0..size.min(4) {
            let p = port.wrapping_add(u16::from(i));
            let b = match lookup(p).map(|r| r.kind) {
                Some(PortKind::Com1) => self.com1.read(p - COM1),
                Some(PortKind::Ignored) => 0xff,
                None => {
                    unhandled = unhandled.or(Some(p));
                    0xff
                }
            };
            let shift = 8 * u32::from(i);
            value = (value & !(0xff << shift)) | (u32::from(b) << shift);
        }
        Access { value, unhandled }
    }

    /// OUT of the low `size` (1, 2 or 4) bytes of `value` to `port`.
    pub fn write(
        &mut self,
        port: u16,
        size: u8,
        value: u32,
        console: &mut (impl Console + ?Sized),
    ) -> Access {
        let mut unhandled = None;
        for i in 0..size.min(4) {
            let p = port.wrapping_add(u16::from(i));
            let b = (value >> (8 * u32::from(i))) as u8;
            match lookup(p).map(|r| r.kind) {
                Some(PortKind::Com1) => self.com1.write(p - COM1, b, console),
                Some(PortKind::Ignored) => {}
                None => unhandled = unhandled.or(Some(p)),
            }
        }
        Access {
            value: 0,
            unhandled,
        }
    }
}

/// A segment register, numbered as the VMCS instruction-information field
/// numbers it (SDM 28.2.5: 0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// ES.
    Es,
    /// CS.
    Cs,
    /// SS.
    Ss,
    /// DS.
    Ds,
    /// FS.
    Fs,
    /// GS.
    Gs,
}

impl Segment {
    /// From the 3-bit field; `None` for 6 and 7.
    pub const fn from_info(bits: u64) -> Option<Segment> {
        match bits & 7 {
            0 => Some(Segment::Es),
            1 => Some(Segment::Cs),
            2 => Some(Segment::Ss),
            3 => Some(Segment::Ds),
            4 => Some(Segment::Fs),
            5 => Some(Segment::Gs),
            _ => None,
        }
    }

    /// Whether its base takes part in 64-bit addressing: only FS's and GS's
    /// (SDM vol. 1, 3.3.7.1: the CPU treats the others' bases as 0).
    pub const fn has_base_in_long_mode(self) -> bool {
        matches!(self, Segment::Fs | Segment::Gs)
    }
}

/// The segment of OUTS's memory operand in 64-bit mode, from the
/// instruction's bytes (for CPUs that do not report it in the
/// instruction-information field): DS, unless a segment-override prefix says
/// otherwise (the last one counts). INS always writes ES:RDI, which no prefix
/// overrides. Scanning stops at the first byte that is not a legacy prefix; a
/// REX prefix must come last and is skipped.
pub fn outs_segment(insn: &[u8]) -> Segment {
    let mut seg = Segment::Ds;
    for &b in insn {
        seg = match b {
            0x26 => Segment::Es,
            0x2e => Segment::Cs,
            0x36 => Segment::Ss,
            0x3e => Segment::Ds,
            0x64 => Segment::Fs,
            0x65 => Segment::Gs,
            0xf0 | 0xf2 | 0xf3 | 0x66 | 0x67 | 0x40..=0x4f => seg,
            _ => break,
        };
    }
    seg
}

/// `docs/abi/io.md`, generated from [`PORTS`].
#[cfg(test)]
pub mod markdown {
    extern crate std;
    use super::*;
    use std::fmt::Write as _;
    use std::string::String;

    /// The whole page.
    pub fn page() -> String {
        let mut s = String::from("# I/O ports: what IN and OUT do in a Keel guest\n\n");
        s.push_str(&crate::policy::generated::generated_note(
            "io.rs",
            "the table `PORTS`",
        ));
        s.push_str(
            "Every port access exits to Keel. The guest sees an empty bus with the devices\n\
below. **Every other port reads all ones and drops writes**; Keel logs each such\n\
port once (`keel: vmx: domain N reads port 0x...: no device`). An access of 2 or 4\n\
bytes is that many one-byte accesses to consecutive ports. INS/OUTS work on the\n\
same devices (64-bit addressing, either direction of RFLAGS.DF; OUTS reads\n\
DS:RSI or, under a segment-override prefix, that segment, so FS and GS add their\n\
bases as in any 64-bit access; INS writes ES:RDI; a REP prefix is\n\
emulated up to 4096 elements per exit, then the instruction resumes; with\n\
RFLAGS.TF set, one element at a time, each followed by a single-step `#DB`\n\
(DR6.BS) with RIP still on the instruction until RCX reaches zero, as the CPU\n\
steps a REP string instruction). Keel\n\
moves the data through the guest's page tables with the permissions of the\n\
privilege level that executed the instruction (at CPL3, with IOPL=3, a user-mode\n\
access: U/S must be set at every level, and a `#PF` has U set in its error code); an\n\
element the guest could not access raises what the CPU would raise (a `#PF` with\n\
CR2 and the error code, or `#GP(0)` for a non-canonical address), after the\n\
elements before it are done: RSI/RDI and, under REP, RCX count them, and RIP stays\n\
on the instruction. The destination of INS is checked before the port is read.\n\n\
| Ports | Device | Behaviour |\n|---|---|---|\n",
        );
        for r in PORTS {
            let _ = writeln!(
                s,
                "| `{:#x}`{} | {} | {} |",
                r.first,
                if r.last != r.first {
                    std::format!("..=`{:#x}`", r.last)
                } else {
                    String::new()
                },
                r.name,
                r.why
            );
        }
        s.push_str(
            "\n## COM1\n\n\
A 16550 that transmits instantly and never receives: LSR reads `0x60` (transmitter\n\
empty), MSR `0xb0` (CTS, DSR, DCD), IIR `0x01` (no interrupt; `0xc1` with FIFOs\n\
enabled), the receive buffer `0`. IER, LCR, MCR, the scratch register and the\n\
divisor latch (LCR.DLAB) keep what is written. No interrupts are ever raised.\n\
Transmitted bytes are printed line by line as `(dN:com1) <text>`: CR is dropped,\n\
a byte outside printable ASCII (and tab) is shown as `.`, a line longer than 120\n\
bytes is split, and a partial line is printed when the domain ends.\n",
        );
        s.push_str(
            "\n## Differences from Xen\n\n\
A Xen PV guest has no I/O ports unless the toolstack grants them (an I/O bitmap\n\
or IOPL through `physdev_op`, normally for dom0 only); an unprivileged PV kernel's\n\
IN/OUT faults. A Xen HVM guest sees the ports of its device model (QEMU). Keel\n\
has neither: every access exits, and the guest sees an empty bus with the\n\
devices above.\n",
        );
        s
    }
}

#[cfg(test)]
mod tests;
