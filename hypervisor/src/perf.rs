//! # `keel_debug_op`: the benchmark floor and the VMX counters
//!
//! Every hypervisor path is measured against the cheapest thing the hypervisor
//! can do, and every figure says how many VM exits and VMCS accesses it cost. Both come from one Keel-private hypercall, `keel_debug_op`
//! (`keel_abi::debug`, `docs/abi/debug.md`):
//!
//! - `DEBUGOP_NOP` is the floor. The exit path's fast handler (`vmx::exit`)
//!   answers it inline (with [`NOP_RESULT`]) before anything else a hypercall
//!   does (building the hypercall context, the table lookup, MMU bookkeeping),
//!   so what remains is the irreducible part: the exit, the save and restore of
//!   the call-clobbered registers, the VMREAD of the exit reason, the exit
//!   counter, the CPL check, and retiring the VMCALL (docs/performance.md);
//! - `DEBUGOP_READ_COUNTERS` copies a snapshot of this CPU's counters
//!   (`vmx::percpu::VmxStats`: exits per
//!   basic reason, VMREADs, VMWRITEs) to the guest, through the same checked
//!   [`crate::paging::guest_mem`] path as any other hypercall;
//! - `DEBUGOP_PLATFORM_DELAY` (ABI 1.2) answers how long, since a system time
//!   the guest gives, this CPU's own timers were overdue ([`crate::overdue`]):
//!   what the machine beneath Keel added to a timer's lateness.
//!
//! This module is the policy, pure and host-tested: which sub-command does what,
//! and what the guest gets back. Reading the counters and writing guest memory are
//! passed in by the caller, so the module needs neither VMX nor a domain.
//!
//! Why not a row of `hypercall::TABLE`? The table is the Xen interface (the ABI's
//! `hypercall::IMPLEMENTED`, checked both ways); `keel_debug_op` is not a Xen
//! hypercall, and going through the table's lookup would make the floor measure
//! the lookup too.

use crate::addr::GuestVirt;
use keel_abi::debug::{PerfCounters, DEBUGOP_PLATFORM_DELAY, DEBUGOP_READ_COUNTERS};
use keel_abi::Errno;

pub use keel_abi::debug::{DEBUGOP_NOP, KEEL_DEBUG_OP};

/// What `DEBUGOP_NOP` returns (the exit path answers it inline).
pub const NOP_RESULT: i64 = 0;

/// Handle `keel_debug_op(cmd, arg)` and give the value for RAX.
///
/// `snapshot` reads the counters (called only for `DEBUGOP_READ_COUNTERS`, so the
/// snapshot is taken as late as possible); `copy_out` writes bytes to guest
/// memory at a guest-virtual address with the guest's permissions;
/// `platform_delay` answers `DEBUGOP_PLATFORM_DELAY` for a system time in ns
/// (`None`: not served to this domain).
#[inline(always)]
pub fn debug_op(
    cmd: u64,
    arg: u64,
    snapshot: impl FnOnce() -> PerfCounters,
    copy_out: impl FnOnce(GuestVirt, &[u8]) -> Result<(), Errno>,
    platform_delay: impl FnOnce(u64) -> Option<u64>,
) -> i64 {
    match cmd {
        DEBUGOP_NOP => NOP_RESULT,
        DEBUGOP_READ_COUNTERS => {
            let mut bytes = [0u8; core::mem::size_of::<PerfCounters>()];
            snapshot().encode(&mut bytes);
            match copy_out(GuestVirt::new(arg), &bytes) {
                Ok(()) => 0,
                Err(e) => e.as_return(),
            }
        }
        DEBUGOP_PLATFORM_DELAY => match platform_delay(arg) {
            Some(ns) => ns.min(i64::MAX as u64) as i64,
            None => Errno::ENOSYS.as_return(),
        },
        _ => Errno::ENOSYS.as_return(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn nop_touches_nothing() {
        let r = debug_op(
            DEBUGOP_NOP,
            0xdead,
            || panic!("the floor must not read the counters"),
            |_, _| panic!("the floor must not write guest memory"),
            |_| panic!("the floor must not look at the timers"),
        );
        assert_eq!(r, 0);
    }

    #[test]
    fn read_counters_copies_the_snapshot() {
        let mut c = PerfCounters::zero();
        c.vmreads = 7;
        c.vmwrites = 2;
        c.exits[18] = 3;
        let mut got: Option<(GuestVirt, Vec<u8>)> = None;
        let r = debug_op(
            DEBUGOP_READ_COUNTERS,
            0x40_1000,
            || c,
            |va, b| {
                got = Some((va, b.to_vec()));
                Ok(())
            },
            |_| panic!("not asked"),
        );
        assert_eq!(r, 0);
        let (va, bytes) = got.expect("copied");
        assert_eq!(va, GuestVirt::new(0x40_1000));
        assert_eq!(bytes.len(), core::mem::size_of::<PerfCounters>());
        let mut want = [0u8; core::mem::size_of::<PerfCounters>()];
        c.encode(&mut want);
        assert_eq!(bytes, want);
    }

    #[test]
    fn errors() {
        let r = debug_op(
            DEBUGOP_READ_COUNTERS,
            0,
            PerfCounters::zero,
            |_, _| Err(Errno::EFAULT),
            |_| panic!("not asked"),
        );
        assert_eq!(r, Errno::EFAULT.as_return());
        for cmd in [3, u64::MAX] {
            let r = debug_op(cmd, 0, || panic!(), |_, _| panic!(), |_| panic!());
            assert_eq!(r, Errno::ENOSYS.as_return());
        }
    }

    #[test]
    fn platform_delay_is_served_only_where_it_is() {
        let mut asked = None;
        let r = debug_op(
            DEBUGOP_PLATFORM_DELAY,
            5_000,
            || panic!(),
            |_, _| panic!(),
            |since| {
                asked = Some(since);
                Some(1_234)
            },
        );
        assert_eq!((r, asked), (1_234, Some(5_000)));
        let r = debug_op(
            DEBUGOP_PLATFORM_DELAY,
            0,
            || panic!(),
            |_, _| panic!(),
            |_| None,
        );
        assert_eq!(r, Errno::ENOSYS.as_return());
        // Never a negative (error-looking) answer.
        let r = debug_op(
            DEBUGOP_PLATFORM_DELAY,
            0,
            || panic!(),
            |_, _| panic!(),
            |_| Some(u64::MAX),
        );
        assert_eq!(r, i64::MAX);
    }
}
