//! `sched_op` (hypercall 29): scheduler operations (`xen/include/public/sched.h`).

/// Give up the CPU.
pub const SCHEDOP_YIELD: u64 = 0;
/// Block until an event is pending.
pub const SCHEDOP_BLOCK: u64 = 1;
/// Shut the domain down; argument: `*const SchedShutdown`.
pub const SCHEDOP_SHUTDOWN: u64 = 2;
/// Poll a set of event channels.
pub const SCHEDOP_POLL: u64 = 3;
/// Shut down another domain.
pub const SCHEDOP_REMOTE_SHUTDOWN: u64 = 4;
/// Set the shutdown code without shutting down.
pub const SCHEDOP_SHUTDOWN_CODE: u64 = 5;
/// Watchdog.
pub const SCHEDOP_WATCHDOG: u64 = 6;
/// Pin override.
pub const SCHEDOP_PIN_OVERRIDE: u64 = 7;

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    /// One of the `SHUTDOWN_*` reasons.
    pub reason: u32,
}
const _: () = assert!(core::mem::size_of::<SchedShutdown>() == 4);

/// Domain exited normally; power it off.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Clean up, kill and restart.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Suspend.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// The domain crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// Watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Soft reset.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;

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
