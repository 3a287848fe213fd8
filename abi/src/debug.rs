//! `keel_debug_op`: Keel's own debug hypercall, for benchmarks.
//!
//! Two things every benchmark needs from the hypervisor, and no Xen interface offers:
//!
//! - **the floor** ([`DEBUGOP_NOP`]): a hypercall the hypervisor answers on its
//!   shortest possible path. The VMCALL exit handler recognises it before anything
//!   else a hypercall does (no argument packing, no table lookup, no per-domain
//!   accounting): exit, read the exit reason, advance RIP, resume. Every other
//!   hypercall's cost is judged against it;
//! - **the VMX counters** ([`DEBUGOP_READ_COUNTERS`]): the hypervisor counts, per
//!   CPU, VM exits by basic exit reason and every VMREAD and VMWRITE it executes.
//!   The guest reads a snapshot ([`PerfCounters`]) before and after a measured loop
//!   and so reports exits per operation and VMCS accesses per exit. Under nested
//!   virtualisation every VMREAD/VMWRITE the outer hypervisor does not shadow is
//!   itself a VM exit, so that figure predicts nested performance.
//!
//! ## Why this number
//! [`KEEL_DEBUG_OP`] is `0x4b45_454c` (the ASCII bytes "KEEL"). Xen's hypercall
//! numbers are indices into a 4 KiB hypercall page of 32-byte stubs, so they can
//! never exceed 127 (Xen defines 0..=55 today, `NR_hypercalls` is 64): a number
//! above 2^16 can never collide with one Xen adds later. A CPUID or MSR window
//! was the alternative; CPUID returns 16 bytes per exit (a snapshot would take 41
//! exits) and both are owned by the CPUID/MSR policy tables. A hypercall copies
//! the whole snapshot in one exit, through the same checked guest-memory path as
//! every other hypercall.
//!
//! `keel_debug_op` is not a Xen hypercall, so it is not in
//! [`crate::hypercall::ALL`] nor [`crate::hypercall::IMPLEMENTED`] (which list
//! Xen's numbers); it is versioned here (since 1.0). A hypervisor older than 1.0
//! answers it like any unknown number: `-ENOSYS`. A guest must treat that as
//! "no counters" and still report its TSC figures.
//!
//! Bare-metal difference: there is no hypervisor to ask on bare metal; a guest
//! there has only its own TSC.

use crate::layout::{keel, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Debug, since: AbiVersion::V1_0;
    /// The hypercall number (RAX) of `keel_debug_op(cmd, arg)`: the ASCII bytes
    /// "KEEL", far above Xen's hypercall range (0..=127 at most).
    KEEL_DEBUG_OP: u64 = 0x4b45_454c => keel();
    /// `DEBUGOP_nop`: return 0 on the hypervisor's shortest path (the floor).
    DEBUGOP_NOP: u64 = 0 => keel();
    /// `DEBUGOP_read_counters`: copy a [`PerfCounters`] snapshot to the guest
    /// buffer at `arg`; 0, or `-EFAULT` when `arg` is not a writable buffer of the
    /// structure's size.
    DEBUGOP_READ_COUNTERS: u64 = 1 => keel();
    /// The number of exit-reason slots in [`PerfCounters::exits`]: basic reasons
    /// 0..=78 have their own slot, the last slot counts every reason >= 79.
    PERF_EXIT_SLOTS: usize = 80 => keel();
}

abi_consts! {
    family: Family::Debug, since: AbiVersion::V1_2, list: DELAY_CONSTS;
    /// `DEBUGOP_platform_delay`: of the time from `arg` (system time, ns) to
    /// now, the nanoseconds during which one of the hypervisor's own timers on
    /// this CPU was overdue: due, but not yet delivered by the machine beneath
    /// the hypervisor (under nested KVM, the KVM that runs it). Returns them
    /// (0 or more). A test of timer lateness subtracts them to bound the
    /// hypervisor's own part (docs/abi/time.md).
    DEBUGOP_PLATFORM_DELAY: u64 = 2 => keel();
}

/// A snapshot of the hypervisor's VMX counters, as `DEBUGOP_read_counters` writes
/// it. All counts are since the hypervisor started (all domains, this CPU), and
/// wrap at 2^64; a reader subtracts two snapshots.
///
/// The snapshot is taken while the reading hypercall is being handled: its own
/// exit and the VMREAD of its exit reason are already counted, the rest of its
/// exit (advancing RIP: one VMREAD of the instruction length, a VMREAD and a
/// VMWRITE of RIP) is not. A reader that subtracts two back-to-back snapshots
/// learns that overhead and removes it from its measurement.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerfCounters {
    /// VMREAD executions.
    pub vmreads: u64,
    /// VMWRITE executions.
    pub vmwrites: u64,
    /// VM exits by basic exit reason (SDM appendix C); the last slot counts
    /// every reason >= `PERF_EXIT_SLOTS - 1`.
    pub exits: [u64; PERF_EXIT_SLOTS],
}

const _: () = {
    assert!(core::mem::size_of::<PerfCounters>() == 16 + 8 * PERF_EXIT_SLOTS);
    assert!(core::mem::align_of::<PerfCounters>() == 8);
};

impl PerfCounters {
    /// All counters zero.
    pub const fn zero() -> Self {
        PerfCounters {
            vmreads: 0,
            vmwrites: 0,
            exits: [0; PERF_EXIT_SLOTS],
        }
    }

    /// Every exit, all reasons.
    pub fn total_exits(&self) -> u64 {
        self.exits.iter().fold(0u64, |a, &e| a.wrapping_add(e))
    }

    /// `self - earlier`, counter by counter (wrapping: a counter that wrapped
    /// between the snapshots still gives the right difference).
    pub fn since(&self, earlier: &PerfCounters) -> PerfCounters {
        let mut d = PerfCounters::zero();
        d.vmreads = self.vmreads.wrapping_sub(earlier.vmreads);
        d.vmwrites = self.vmwrites.wrapping_sub(earlier.vmwrites);
        for ((slot, now), then) in d.exits.iter_mut().zip(&self.exits).zip(&earlier.exits) {
            *slot = now.wrapping_sub(*then);
        }
        d
    }

    /// `self - other`, counter by counter, never below zero (for removing a
    /// measured overhead from a measurement).
    pub fn saturating_sub(&self, other: &PerfCounters) -> PerfCounters {
        let mut d = PerfCounters::zero();
        d.vmreads = self.vmreads.saturating_sub(other.vmreads);
        d.vmwrites = self.vmwrites.saturating_sub(other.vmwrites);
        for ((slot, a), b) in d.exits.iter_mut().zip(&self.exits).zip(&other.exits) {
            *slot = a.saturating_sub(*b);
        }
        d
    }

    /// The structure's bytes, as the guest sees them (little endian, `repr(C)`).
    pub fn encode(&self, out: &mut [u8; core::mem::size_of::<PerfCounters>()]) {
        out[0..8].copy_from_slice(&self.vmreads.to_le_bytes());
        out[8..16].copy_from_slice(&self.vmwrites.to_le_bytes());
        for (chunk, e) in out[16..].chunks_exact_mut(8).zip(self.exits.iter()) {
            chunk.copy_from_slice(&e.to_le_bytes());
        }
    }
}

/// Guest wrappers (feature `guest`).
#[cfg(feature = "guest")]
pub mod guest {
    use super::*;
    use crate::errno::Errno;
    use crate::guest::raw::hypercall5;

    /// `keel_debug_op(DEBUGOP_nop)`: the floor. 0 on a 1.0+ hypervisor, `-ENOSYS`
    /// on an older one.
    #[inline(always)]
    pub fn nop() -> i64 {
        // SAFETY: no pointer argument.
        unsafe { hypercall5(KEEL_DEBUG_OP, DEBUGOP_NOP, 0, 0, 0, 0) }
    }

    /// `keel_debug_op(DEBUGOP_read_counters, &snapshot)`. `Err(ENOSYS)` on a
    /// hypervisor without the interface (older than 1.0).
    pub fn read_counters() -> Result<PerfCounters, Errno> {
        let mut c = PerfCounters::zero();
        // SAFETY: `c` is a live, writable PerfCounters the hypervisor fills.
        let r = unsafe {
            hypercall5(
                KEEL_DEBUG_OP,
                DEBUGOP_READ_COUNTERS,
                &mut c as *mut PerfCounters as u64,
                0,
                0,
                0,
            )
        };
        Errno::from_return(r).map(|_| c)
    }

    /// `keel_debug_op(DEBUGOP_platform_delay, since_ns)`: how many of the
    /// nanoseconds since system time `since_ns` the machine beneath the
    /// hypervisor held one of its timers past its due time. `Err(ENOSYS)`
    /// from a hypervisor that does not serve it (before 1.2, or to an image
    /// that does not declare 1.2).
    pub fn platform_delay(since_ns: u64) -> Result<u64, Errno> {
        // SAFETY: no pointer argument.
        let r = unsafe { hypercall5(KEEL_DEBUG_OP, DEBUGOP_PLATFORM_DELAY, since_ns, 0, 0, 0) };
        Errno::from_return(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_arithmetic() {
        let mut a = PerfCounters::zero();
        a.vmreads = 10;
        a.vmwrites = 3;
        a.exits[18] = 5;
        a.exits[PERF_EXIT_SLOTS - 1] = 1;
        let mut b = a;
        b.vmreads = 14;
        b.exits[18] = 7;
        let d = b.since(&a);
        assert_eq!(
            (d.vmreads, d.vmwrites, d.exits[18], d.total_exits()),
            (4, 0, 2, 2)
        );
        assert_eq!(a.saturating_sub(&b).vmreads, 0);
        let mut bytes = [0u8; core::mem::size_of::<PerfCounters>()];
        a.encode(&mut bytes);
        assert_eq!(&bytes[0..8], &10u64.to_le_bytes());
        assert_eq!(&bytes[8..16], &3u64.to_le_bytes());
        assert_eq!(&bytes[16 + 18 * 8..16 + 19 * 8], &5u64.to_le_bytes());
        assert_eq!(&bytes[bytes.len() - 8..], &1u64.to_le_bytes());
        // The wrapping difference survives a counter that wrapped.
        let mut w = PerfCounters::zero();
        w.vmreads = u64::MAX;
        let mut w2 = PerfCounters::zero();
        w2.vmreads = 1;
        assert_eq!(w2.since(&w).vmreads, 2);
    }

    #[test]
    fn the_number_is_outside_xens_range() {
        const { assert!(KEEL_DEBUG_OP > 0xffff) };
        assert!(crate::hypercall::ALL.iter().all(|h| h.0 < 128));
        assert_eq!(&KEEL_DEBUG_OP.to_be_bytes()[4..], b"KEEL");
    }
}
