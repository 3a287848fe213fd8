//! The platform's own channels (verdict and power-off) and the choice's description.

use super::*;

/// The platform's own console: the channel the runner reads verdicts on.
pub fn platform_console(bytes: &[u8]) -> Result<(), Errno> {
    match choice().platform {
        Platform::Keel => guest::console_write(bytes),
        Platform::BareMetal => native_console(bytes),
    }
}

/// The platform's power-off with a Xen shutdown reason.
pub fn platform_shutdown(reason: u32) -> Errno {
    match choice().platform {
        Platform::Keel => guest::sched_shutdown(reason),
        Platform::BareMetal => {
            use crate::abi::platform::ExitStatus;
            use crate::abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
            crate::native::power_off(match reason {
                SHUTDOWN_POWEROFF => ExitStatus::Success,
                SHUTDOWN_CRASH => ExitStatus::GuestCrash,
                _ => ExitStatus::GuestOtherShutdown,
            })
        }
    }
}

/// One line saying what was chosen (printed in the test banner).
pub fn describe(c: &Choice, out: &mut impl core::fmt::Write) -> core::fmt::Result {
    write!(out, "platform {}; ops", c.platform.name())?;
    for g in Group::ALL {
        let how = match c.pv.of(g) {
            Impl::Pv => "pv",
            Impl::Native if c.platform == Platform::Keel => "trap",
            Impl::Native => "native",
        };
        write!(out, " {}={}", g.name(), how)?;
    }
    if c.forced != PvSet::NONE {
        write!(out, " (time and irq stay pv on keel: no local APIC)")?;
    }
    if let Some(w) = c.bad {
        write!(out, " (pv= word {w:?} unknown: all pv)")?;
    }
    Ok(())
}
