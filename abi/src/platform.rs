//! The power-off protocol between the hypervisor and the host tool (`keel`).
//!
//! This is not guest ABI: it is how a run of the machine ends. The hypervisor's last
//! console line is always
//!
//! ```text
//! keel: power off, status N (reason)
//! ```
//!
//! and it then powers the machine off through the best mechanism the platform has
//! (QEMU's isa-debug-exit with `N`, Bochs's shutdown port, ACPI S5). Emulators can
//! only report a few exit codes, so the console line is the authority and the exit
//! code a cross-check.
//!
//! It is frozen with the guest ABI all the same: compatibility testing boots the
//! *frozen* hypervisor binary of every released version, and the host tool must
//! still understand how that binary reports the end of a run.

/// Why the machine powered off. The numeric values are stable.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The guest shut down with `SHUTDOWN_poweroff`.
    Success = 0,
    /// The guest shut down with `SHUTDOWN_crash`, or was killed for misbehaving.
    GuestCrash = 1,
    /// The guest shut down with another reason (reboot, suspend, watchdog, soft_reset).
    GuestOtherShutdown = 2,
    /// The hypervisor took an exception or panicked.
    HypervisorPanic = 3,
    /// The CPU has no VMX.
    NoVmx = 4,
    /// VMX is disabled by firmware (IA32_FEATURE_CONTROL locked without VMX).
    VmxDisabledByFirmware = 5,
    /// VMXON failed.
    VmxonFailed = 6,
    /// The software VM-entry checks or VMLAUNCH failed.
    VmEntryFailed = 7,
    /// No guest image, or the image was refused (bad ELF, ABI too new, too large).
    BadGuestImage = 8,
    /// The hypervisor ran out of memory building the domain.
    OutOfMemory = 9,
}

impl ExitStatus {
    /// Every status, by value.
    pub const ALL: [ExitStatus; 10] = [
        Self::Success,
        Self::GuestCrash,
        Self::GuestOtherShutdown,
        Self::HypervisorPanic,
        Self::NoVmx,
        Self::VmxDisabledByFirmware,
        Self::VmxonFailed,
        Self::VmEntryFailed,
        Self::BadGuestImage,
        Self::OutOfMemory,
    ];

    /// Decode a status number.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u8 == v)
    }

    /// Short lowercase description used in the power-off line.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Success => "guest powered off",
            Self::GuestCrash => "guest crashed",
            Self::GuestOtherShutdown => "guest shut down with another reason",
            Self::HypervisorPanic => "hypervisor panic",
            Self::NoVmx => "no VT-x",
            Self::VmxDisabledByFirmware => "VT-x disabled by firmware",
            Self::VmxonFailed => "VMXON failed",
            Self::VmEntryFailed => "VM entry failed",
            Self::BadGuestImage => "bad guest image",
            Self::OutOfMemory => "out of memory",
        }
    }
}

use crate::layout::{keel, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Platform, since: AbiVersion::V0_1;
    /// The prefix of the hypervisor's last console line.
    POWER_OFF_PREFIX: &str = "keel: power off, status " => @str keel();
    /// I/O port of QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=4`);
    /// QEMU exits with `(value << 1) | 1`.
    QEMU_DEBUG_EXIT_PORT: u16 = 0xf4 => keel();
}

/// COM1, the 16550 UART of every machine Keel runs on: the hypervisor's console
/// driver, the UART it emulates for a guest, and the guest's native console share
/// these hardware facts (register offsets from the base and the bits they use).
/// Not guest ABI: a 16550 is what it is.
pub mod uart {
    /// COM1's I/O base.
    pub const COM1: u16 = 0x3f8;
    /// Receive buffer / transmit holding register; the divisor latch's low byte
    /// while LCR.DLAB is set.
    pub const DATA: u16 = 0;
    /// Interrupt enable; the divisor latch's high byte while LCR.DLAB is set.
    pub const IER: u16 = 1;
    /// Interrupt identification (read) / FIFO control (write).
    pub const IIR_FCR: u16 = 2;
    /// Line control.
    pub const LCR: u16 = 3;
    /// Modem control.
    pub const MCR: u16 = 4;
    /// Line status.
    pub const LSR: u16 = 5;
    /// Modem status.
    pub const MSR: u16 = 6;
    /// Scratch.
    pub const SCR: u16 = 7;

    bitflags::bitflags! {
        /// Line control: only DLAB changes what the registers mean.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Lcr: u8 {
            /// The divisor latch is at DATA and IER.
            const DLAB = 1 << 7;
            const _ = !0;
        }
    }

    bitflags::bitflags! {
        /// Line status.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Lsr: u8 {
            /// Transmit holding register empty (with the FIFO on: the transmit
            /// FIFO is empty).
            const THRE = 1 << 5;
            /// Transmitter empty.
            const TEMT = 1 << 6;
        }
    }

    bitflags::bitflags! {
        /// Modem status.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct ModemStatus: u8 {
            /// Clear to send.
            const CTS = 1 << 4;
            /// Data set ready.
            const DSR = 1 << 5;
            /// Data carrier detect.
            const DCD = 1 << 7;
        }
    }

    bitflags::bitflags! {
        /// Interrupt identification.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Iir: u8 {
            /// No interrupt pending.
            const NO_INTERRUPT = 1;
            /// FIFOs enabled (both bits: a 16550A; a 16550 without the "A"
            /// reports 10, its FIFO unusable; an 8250/16450 reports 00).
            const FIFO_ENABLED = 0xc0;
        }
    }
}

/// The prefix the hypervisor puts on each line a domain writes with
/// `console_io`: `(d<decimal id>) ` (Xen's convention). The host tool finds a
/// domain's verdict behind it.
pub const DOMAIN_PREFIX_MAX: usize = "(d65535) ".len();

/// Write domain `id`'s console prefix `(d<id>) ` into `out` (at most
/// [`DOMAIN_PREFIX_MAX`] bytes; a shorter `out` gets what fits); returns the
/// length written.
pub fn domain_prefix(id: u16, out: &mut [u8]) -> usize {
    tagged_domain_prefix(id, "", out)
}

/// The tag on the lines a domain writes through its emulated COM1, a second
/// console beside `console_io`: `(d<id>:com1) `, so nobody takes them for the
/// PV console's lines (nor does [`strip_domain_prefix`]).
pub const COM1_TAG: &str = ":com1";

/// The longest prefix of a COM1 line: `(d65535:com1) `.
pub const COM1_PREFIX_MAX: usize = DOMAIN_PREFIX_MAX + COM1_TAG.len();

/// Write `(d<id><tag>) ` into `out` (a shorter `out` gets what fits); returns
/// the length written. With an empty tag it is [`domain_prefix`].
pub fn tagged_domain_prefix(id: u16, tag: &str, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 5];
    let mut v = id;
    let mut nd = 0;
    for d in digits.iter_mut() {
        *d = b'0' + (v % 10) as u8;
        nd += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut n = 0;
    let mut put = |b: u8| {
        if let Some(s) = out.get_mut(n) {
            *s = b;
            n += 1;
        }
    };
    put(b'(');
    put(b'd');
    for d in digits[..nd].iter().rev() {
        put(*d);
    }
    for b in tag.bytes() {
        put(b);
    }
    put(b')');
    put(b' ');
    n
}

/// Split a console line into its domain (from the `(d<id>) ` prefix) and the
/// rest; `None` when the line does not start with a domain prefix.
pub fn strip_domain_prefix(line: &str) -> Option<(u16, &str)> {
    let rest = line.strip_prefix("(d")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = rest.get(..digits)?.parse().ok()?;
    Some((id, rest[digits..].strip_prefix(") ")?))
}

/// Parse a console line of the form `keel: power off, status N (...)`.
pub fn parse_power_off_line(line: &str) -> Option<ExitStatus> {
    let rest = line.trim_end().strip_prefix(POWER_OFF_PREFIX)?;
    let num: &str = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    ExitStatus::from_u8(num.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(
            parse_power_off_line("keel: power off, status 0 (guest powered off)"),
            Some(ExitStatus::Success)
        );
        assert_eq!(
            parse_power_off_line("keel: power off, status 4 (no VT-x)\r"),
            Some(ExitStatus::NoVmx)
        );
        assert_eq!(parse_power_off_line("keel: power off, status 99 (x)"), None);
        assert_eq!(
            parse_power_off_line("guest: keel: power off, status 0"),
            None
        );
        for s in ExitStatus::ALL {
            assert_eq!(ExitStatus::from_u8(s as u8), Some(s));
        }
    }

    #[test]
    fn domain_prefixes() {
        let mut b = [0u8; DOMAIN_PREFIX_MAX];
        for (id, want) in [
            (0u16, "(d0) "),
            (1, "(d1) "),
            (42, "(d42) "),
            (65535, "(d65535) "),
        ] {
            let n = domain_prefix(id, &mut b);
            assert_eq!(&b[..n], want.as_bytes());
            let line = std::format!("{want}Test result: SUCCESS");
            assert_eq!(
                strip_domain_prefix(&line),
                Some((id, "Test result: SUCCESS"))
            );
        }
        let mut c = [0u8; COM1_PREFIX_MAX];
        for (id, want) in [(1u16, "(d1:com1) "), (65535, "(d65535:com1) ")] {
            let n = tagged_domain_prefix(id, COM1_TAG, &mut c);
            assert_eq!(&c[..n], want.as_bytes());
        }
        let mut short = [0u8; 4];
        assert_eq!(tagged_domain_prefix(123, COM1_TAG, &mut short), 4);
        assert_eq!(&short, b"(d12");
        for bad in [
            "(d) x",
            "(dx) x",
            "(d1)x",
            "(d1:com1) x",
            "(d65536) x",
            " (d1) x",
            "d1) x",
        ] {
            assert_eq!(strip_domain_prefix(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn domain_prefix_round_trips(id: u16, rest in "[ -~]{0,40}") {
            let mut b = [0u8; DOMAIN_PREFIX_MAX];
            let n = domain_prefix(id, &mut b);
            let line = std::format!("{}{rest}", core::str::from_utf8(&b[..n]).unwrap());
            proptest::prop_assert_eq!(strip_domain_prefix(&line), Some((id, rest.as_str())));
        }
    }
}
