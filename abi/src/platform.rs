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
}
