//! `sched_op` (hypercall 29): scheduler operations (`xen/include/public/sched.h`).
//!
//! `sched_op(cmd, arg)`. Keel implements `SCHEDOP_yield` (since 0.1; returns 0:
//! there is one vCPU and nothing else to run, so it is a no-op that still exits to
//! the hypervisor), `SCHEDOP_shutdown` (since 0.1; does not return: the domain ends
//! with the given reason, which becomes the machine's power-off status), and
//! `SCHEDOP_block` and `SCHEDOP_poll` (since 1.0; `docs/abi/time.md`). The other
//! commands (`remote_shutdown`, `shutdown_code`, `watchdog`, `pin_override`)
//! return `-ENOSYS`. Bare-metal difference: a kernel on bare metal halts
//! or powers off through ACPI; a Keel guest asks the hypervisor.

use crate::layout::{keel, xen, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Sched, since: AbiVersion::V0_1;
    /// Give up the CPU.
    SCHEDOP_YIELD: u64 = 0 => xen("SCHEDOP_yield");
    /// Block until an event is pending (implemented since 1.0: enables event
    /// delivery and blocks atomically; returns at once if an event is pending).
    SCHEDOP_BLOCK: u64 = 1 => xen("SCHEDOP_block");
    /// Shut the domain down; argument: `*const SchedShutdown`.
    SCHEDOP_SHUTDOWN: u64 = 2 => xen("SCHEDOP_shutdown");
    /// Poll a set of event channels (implemented since 1.0; argument `*const SchedPoll`).
    SCHEDOP_POLL: u64 = 3 => xen("SCHEDOP_poll");
    /// Shut down another domain (Keel: `-ENOSYS`).
    SCHEDOP_REMOTE_SHUTDOWN: u64 = 4 => xen("SCHEDOP_remote_shutdown");
    /// Set the shutdown code without shutting down (Keel: `-ENOSYS`).
    SCHEDOP_SHUTDOWN_CODE: u64 = 5 => xen("SCHEDOP_shutdown_code");
    /// Watchdog (Keel: `-ENOSYS`).
    SCHEDOP_WATCHDOG: u64 = 6 => xen("SCHEDOP_watchdog");
    /// Pin override (Keel: `-ENOSYS`).
    SCHEDOP_PIN_OVERRIDE: u64 = 7 => xen("SCHEDOP_pin_override");
}

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    /// One of the `SHUTDOWN_*` reasons.
    pub reason: u32,
}
const _: () = {
    assert!(core::mem::size_of::<SchedShutdown>() == 4);
    assert!(core::mem::align_of::<SchedShutdown>() == 4);
    assert!(core::mem::offset_of!(SchedShutdown, reason) == 0);
};

impl SchedShutdown {
    /// Size of the structure in guest memory.
    pub const SIZE: usize = core::mem::size_of::<SchedShutdown>();

    /// The bytes as they lie in guest memory (little endian).
    pub const fn encode(&self) -> [u8; Self::SIZE] {
        self.reason.to_le_bytes()
    }

    /// Parse the bytes the hypervisor copied from the guest.
    pub const fn decode(b: &[u8; Self::SIZE]) -> Self {
        SchedShutdown {
            reason: u32::from_le_bytes(*b),
        }
    }
}

/// `struct sched_poll` (`SCHEDOP_poll`, since 1.0): wait until one of `nr_ports`
/// ports (a guest array of `u32`, at most [`SCHED_POLL_MAX_PORTS`]) is pending, an
/// event needs delivery, or system time reaches `timeout` (0: no timeout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPoll {
    /// Guest virtual address of the port array (`XEN_GUEST_HANDLE(evtchn_port_t)`).
    pub ports: u64,
    /// Number of ports.
    pub nr_ports: u32,
    /// Absolute system time in ns; 0 waits with no timeout.
    pub timeout: u64,
}
const _: () = {
    assert!(core::mem::size_of::<SchedPoll>() == 24);
    assert!(core::mem::offset_of!(SchedPoll, nr_ports) == 8);
    assert!(core::mem::offset_of!(SchedPoll, timeout) == 16);
};

impl SchedPoll {
    /// Size in guest memory.
    pub const SIZE: usize = 24;
    /// The bytes as they lie in guest memory.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.ports.to_le_bytes());
        b[8..12].copy_from_slice(&self.nr_ports.to_le_bytes());
        b[16..24].copy_from_slice(&self.timeout.to_le_bytes());
        b
    }
    /// Parse the bytes copied from the guest.
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        SchedPoll {
            ports: crate::event::rd64(b, 0),
            nr_ports: crate::event::rd32(b, 8),
            timeout: crate::event::rd64(b, 16),
        }
    }
}

abi_consts! {
    family: Family::Sched, since: AbiVersion::V1_0, list: POLL_CONSTS;
    /// The most ports one `SCHEDOP_poll` may name (Xen's limit, 128; more is `-EINVAL`).
    SCHED_POLL_MAX_PORTS: u32 = 128 => keel();
}

abi_consts! {
    family: Family::Sched, since: AbiVersion::V0_1, list: SHUTDOWN_CONSTS;
    /// Domain exited normally; power it off. (Keel: the machine powers off with
    /// status 0, `ExitStatus::Success`.)
    SHUTDOWN_POWEROFF: u32 = 0 => xen("SHUTDOWN_poweroff");
    /// Clean up, kill and restart. (Keel 0.1 has no restart: the machine powers off
    /// with `ExitStatus::GuestOtherShutdown`.)
    SHUTDOWN_REBOOT: u32 = 1 => xen("SHUTDOWN_reboot");
    /// Suspend (Keel 0.1: treated as a final shutdown, `GuestOtherShutdown`).
    SHUTDOWN_SUSPEND: u32 = 2 => xen("SHUTDOWN_suspend");
    /// The domain crashed (Keel: `ExitStatus::GuestCrash`).
    SHUTDOWN_CRASH: u32 = 3 => xen("SHUTDOWN_crash");
    /// Watchdog expired (Keel: `GuestOtherShutdown`).
    SHUTDOWN_WATCHDOG: u32 = 4 => xen("SHUTDOWN_watchdog");
    /// Soft reset (Keel: `GuestOtherShutdown`).
    SHUTDOWN_SOFT_RESET: u32 = 5 => xen("SHUTDOWN_soft_reset");
}

/// Xen's lowercase name of a shutdown reason, for diagnostics.
pub const fn shutdown_reason_name(reason: u32) -> Option<&'static str> {
    match reason {
        SHUTDOWN_POWEROFF => Some("poweroff"),
        SHUTDOWN_REBOOT => Some("reboot"),
        SHUTDOWN_SUSPEND => Some("suspend"),
        SHUTDOWN_CRASH => Some("crash"),
        SHUTDOWN_WATCHDOG => Some("watchdog"),
        SHUTDOWN_SOFT_RESET => Some("soft_reset"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_encoding_and_names() {
        let s = SchedShutdown {
            reason: SHUTDOWN_SOFT_RESET,
        };
        assert_eq!(s.encode(), [5, 0, 0, 0]);
        assert_eq!(SchedShutdown::decode(&s.encode()), s);
        assert_eq!(shutdown_reason_name(SHUTDOWN_CRASH), Some("crash"));
        assert_eq!(shutdown_reason_name(6), None);
    }
}
