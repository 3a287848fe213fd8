//! # Bounded work per exit: hypercall continuations
//!
//! A batch hypercall (`mmu_update`, `mmuext_op`, `multicall`) may carry up to
//! 2^31 - 1 requests, and a guest can make that cheap (one page of requests
//! mapped at many addresses). Run in one VM exit, such a call would hold the
//! CPU for as long as the guest likes: no timer, no event, no other domain in
//! the meantime. So a batch does a bounded amount of work per exit and then
//! *preempts itself*, as Xen's hypercall continuations do: the hypervisor
//! rewrites the call's count register to say how far it got, leaves RIP on the
//! `VMCALL`, and lets the guest run. Whatever is due (a timer, an upcall) is
//! delivered first; then the guest executes the same `VMCALL` again, which goes
//! on where the last piece stopped. The guest sees exactly what one
//! uninterrupted call would have given it, only later.
//!
//! ## The bound
//!
//! Work is counted in *units*: one request of `mmu_update` or `mmuext_op`, or
//! one `multicall` entry (a batch inside a multicall counts its own requests
//! too, against the same budget). A call stops at the first check point at
//! which either
//!
//! - [`UNITS_PER_EXIT`] units have been done in this exit, or
//! - a timer of the vCPU is due (its deadline, in TSC ticks, has passed),
//!
//! and there is work left. Check points come every [`CHECK_EVERY`] units, so a
//! due timer waits for at most that many requests; and every piece does at
//! least one unit, so a call always finishes.
//!
//! ## The progress word
//!
//! Keel's calling convention promises that every register but RAX is the same
//! after a hypercall, so the progress cannot live in a moved list pointer (as
//! on Xen, whose guests treat argument registers as clobbered). It lives in the
//! count register (argument 2, RSI), which is a C `unsigned int` of at most
//! 2^31 - 1 ([`keel_abi::mmu::MMU_BATCH_MAX`]):
//!
//! | bits | meaning |
//! |---|---|
//! | 0..30 | the count the guest asked for |
//! | 31 | [`MMU_UPDATE_PREEMPTED`]: a continuation |
//! | 32..62 | the number of requests (entries) already done |
//! | 63 | `multicall` only: entry *done* was itself preempted, and its own progress word is in that entry's `result` |
//!
//! When the call completes the register gets the plain count back, so the
//! guest sees its registers unchanged. A guest may set bit 31 itself: the call
//! then starts at the done count it gave (skipping its own requests), which is
//! also what Xen does with a count carrying its continuation flag. A word with
//! nothing left (done >= count) is never one the hypervisor makes, and is
//! `-EINVAL` (so the flag alone, `MMU_BATCH_MAX + 1`, is refused as in 1.0).

use keel_abi::mmu::MMU_BATCH_MAX;
use keel_abi::Errno;

/// Bit 31 of a batch's count: the call is a continuation. Xen's
/// `MMU_UPDATE_PREEMPTED` (`xen/include/public/xen.h`), the same bit. Not in
/// the ABI crate: a guest never needs to set it, and every count with it set
/// was `-EINVAL` in 1.0, so giving it a meaning changes no valid 1.0 call.
pub const MMU_UPDATE_PREEMPTED: u64 = 1 << 31;

/// The most units one exit does before the call preempts itself (with work
/// left). About 150 instructions a request under Bochs: some 150,000
/// instructions, a few tens of microseconds on hardware.
pub const UNITS_PER_EXIT: u32 = 1024;

/// Entries of page-table validation or devalidation work
/// ([`crate::paging::job`]) charged as one unit: an entry costs a fraction of
/// a request (a present L1 entry about 20 instructions under Bochs, an empty
/// one a few), so a unit of entries is about a request's time, and a check
/// point comes every `CHECK_EVERY * ENTRIES_PER_UNIT` entries.
pub const ENTRIES_PER_UNIT: u32 = 8;

/// Units between two check points. A check reads the TSC; every four requests
/// keeps a due timer's delay below four requests' time (the upcall-latency
/// target: twice the idle figure) at about one instruction a request.
pub const CHECK_EVERY: u32 = 4;

/// What a request answers inside the hypervisor when its own work (the
/// validation or devalidation of a page-table tree, [`crate::paging::job`])
/// stopped part way: the batch then preempts itself *before* that request,
/// which goes on when the guest makes the call again. Xen's `ERESTART`
/// (85), which Xen too never returns to a guest; no Keel hypercall returns
/// it either (the batches turn it into their continuation).
pub const RESTART: Errno = Errno(85);

/// Bit 63 of a `multicall`'s progress word: the entry at the done count was
/// preempted part way, and its own progress word is in its `result` field.
pub const IN_ENTRY: u64 = 1 << 63;

/// How far a batch call has got: its decoded count register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The requests (entries) the guest asked for.
    pub count: u32,
    /// How many are done.
    pub done: u32,
    /// `multicall` only: entry `done` is part way (see [`IN_ENTRY`]).
    pub in_entry: bool,
}

impl Progress {
    /// Decode a count register. Without the continuation flag it must be a plain
    /// count (at most 2^31 - 1, else `-EINVAL`, as before continuations existed);
    /// with it, the done count must be below the count, and bit 63 is allowed
    /// only where `entries` says the call has entries that can be part way
    /// (`multicall`).
    pub fn decode(reg: u64, entries: bool) -> Result<Progress, Errno> {
        if reg & MMU_UPDATE_PREEMPTED == 0 {
            if reg > MMU_BATCH_MAX {
                return Err(Errno::EINVAL);
            }
            return Ok(Progress {
                count: reg as u32,
                done: 0,
                in_entry: false,
            });
        }
        let in_entry = reg & IN_ENTRY != 0;
        if in_entry && !entries {
            return Err(Errno::EINVAL);
        }
        let count = (reg & MMU_BATCH_MAX) as u32;
        let done = ((reg >> 32) & MMU_BATCH_MAX) as u32;
        // The hypervisor preempts only with work left: a continuation has at
        // least one request to go. (So `MMU_BATCH_MAX + 1`, the flag alone, is
        // `-EINVAL` as in 1.0.)
        if done >= count {
            return Err(Errno::EINVAL);
        }
        Ok(Progress {
            count,
            done,
            in_entry,
        })
    }

    /// The count register that resumes at this progress.
    pub const fn encode(self) -> u64 {
        (self.done as u64) << 32
            | MMU_UPDATE_PREEMPTED
            | self.count as u64
            | if self.in_entry { IN_ENTRY } else { 0 }
    }

    /// Whether this call is a continuation (the guest's register must get the
    /// plain count back when it completes).
    pub const fn resumed(reg: u64) -> bool {
        reg & MMU_UPDATE_PREEMPTED != 0
    }
}

/// Whether a call should stop at a check point: `used` units done in this
/// exit, the TSC `now`, the vCPU's next timer deadline in TSC ticks.
pub const fn should_stop(used: u32, now: u64, deadline: Option<u64>) -> bool {
    used >= UNITS_PER_EXIT
        || match deadline {
            Some(d) => now >= d,
            None => false,
        }
}

/// The work one exit has done, shared by a `multicall` and the batches inside
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    used: u32,
    next_check: u32,
    /// The next timer deadline in TSC ticks: outer `None` until first needed
    /// (most calls never reach a check point), inner `None` when no timer is
    /// armed.
    deadline: Option<Option<u64>>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new()
    }
}

impl Budget {
    /// Nothing done yet in this exit.
    pub const fn new() -> Budget {
        Budget {
            used: 0,
            next_check: CHECK_EVERY,
            deadline: None,
        }
    }

    /// An exit with room for only `n` more units (1 ..= [`UNITS_PER_EXIT`])
    /// before the bound: the call stops at `n` units if it has work left. Tests
    /// use it to split a call at every point.
    #[cfg(test)]
    pub(crate) fn with_room(n: u32) -> Budget {
        let n = n.clamp(1, UNITS_PER_EXIT);
        Budget {
            used: UNITS_PER_EXIT - n,
            next_check: UNITS_PER_EXIT,
            deadline: None,
        }
    }

    /// Units that may run before the next check point (at least one).
    #[inline(always)]
    pub const fn until_check(&self) -> u32 {
        if self.next_check > self.used {
            self.next_check - self.used
        } else {
            1
        }
    }

    /// Count `n` units done.
    #[inline(always)]
    pub fn charge(&mut self, n: u32) {
        self.used = self.used.saturating_add(n);
    }

    /// Units done in this exit.
    pub const fn used(&self) -> u32 {
        self.used
    }

    /// The vCPU's next timer deadline in TSC ticks (`u64::MAX`: none), read
    /// with `deadline` the first time in this exit (or since
    /// [`Self::timers_changed`]).
    #[inline(always)]
    pub fn deadline(&mut self, deadline: impl FnOnce() -> Option<u64>) -> u64 {
        self.deadline
            .get_or_insert_with(deadline)
            .unwrap_or(u64::MAX)
    }

    /// Units left before the bound.
    #[inline(always)]
    pub const fn room(&self) -> u32 {
        UNITS_PER_EXIT.saturating_sub(self.used)
    }

    /// Forget the deadline read so far (a call that may change the timers ran).
    pub fn timers_changed(&mut self) {
        self.deadline = None;
    }

    /// At a point where the call could stop with work left: whether it should.
    /// Between check points this is `false` without reading anything; at one it
    /// reads the TSC (`now`) and, the first time, the deadline (`deadline`).
    #[inline(always)]
    pub fn stop_here(
        &mut self,
        now: impl FnOnce() -> u64,
        deadline: impl FnOnce() -> Option<u64>,
    ) -> bool {
        if self.used < self.next_check {
            return false;
        }
        self.next_check = self.used.saturating_add(CHECK_EVERY);
        let d = *self.deadline.get_or_insert_with(deadline);
        should_stop(self.used, now(), d)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_counts_decode_as_before() {
        assert_eq!(
            Progress::decode(5, false),
            Ok(Progress {
                count: 5,
                done: 0,
                in_entry: false
            })
        );
        assert_eq!(
            Progress::decode(MMU_BATCH_MAX, true).map(|p| p.count),
            Ok(MMU_BATCH_MAX as u32)
        );
        // Above 32 bits without the flag: refused, as before.
        assert_eq!(Progress::decode(1 << 32, false), Err(Errno::EINVAL));
        assert_eq!(Progress::decode(u64::MAX, true), Err(Errno::EINVAL));
    }

    #[test]
    fn continuation_words_are_checked() {
        let p = Progress {
            count: 10,
            done: 3,
            in_entry: false,
        };
        assert_eq!(Progress::decode(p.encode(), false), Ok(p));
        assert!(Progress::resumed(p.encode()));
        assert!(!Progress::resumed(10));
        // More done than asked: refused.
        let bad = Progress { done: 11, ..p };
        assert_eq!(Progress::decode(bad.encode(), false), Err(Errno::EINVAL));
        // A batch has no entries to be part way through.
        let e = Progress {
            in_entry: true,
            ..p
        };
        assert_eq!(Progress::decode(e.encode(), false), Err(Errno::EINVAL));
        assert_eq!(Progress::decode(e.encode(), true), Ok(e));
        // Part way through an entry past the end: refused.
        let past = Progress {
            done: 10,
            in_entry: true,
            ..p
        };
        assert_eq!(Progress::decode(past.encode(), true), Err(Errno::EINVAL));
        // Nothing left: never a continuation the hypervisor makes.
        let all = Progress { done: 10, ..p };
        assert_eq!(Progress::decode(all.encode(), false), Err(Errno::EINVAL));
        assert_eq!(
            Progress::decode(MMU_UPDATE_PREEMPTED, true),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn the_budget_stops_only_at_check_points() {
        let mut b = Budget::new();
        let mut reads = 0;
        for _ in 0..CHECK_EVERY - 1 {
            b.charge(1);
            assert!(!b.stop_here(|| panic!("read between checks"), || None));
        }
        b.charge(1);
        assert!(!b.stop_here(
            || {
                reads += 1;
                0
            },
            || Some(100)
        ));
        assert_eq!(reads, 1);
        assert_eq!(b.until_check(), CHECK_EVERY);
        b.charge(CHECK_EVERY);
        // The deadline read the first time is kept.
        assert!(b.stop_here(|| 100, || panic!("deadline read twice")));
        b.timers_changed();
        b.charge(CHECK_EVERY);
        assert!(!b.stop_here(|| 100, || None));
    }

    #[test]
    fn the_budget_ends_at_the_bound_without_a_timer() {
        let mut b = Budget::new();
        let mut pieces = 0;
        while !b.stop_here(|| 0, || None) {
            b.charge(b.until_check());
            pieces += 1;
            assert!(pieces <= UNITS_PER_EXIT, "never stopped");
        }
        assert_eq!(b.used(), UNITS_PER_EXIT);
    }

    proptest! {
        #[test]
        fn progress_words_round_trip(count in 0u32..=MMU_BATCH_MAX as u32, done in 0u32..=MMU_BATCH_MAX as u32, in_entry: bool) {
            let p = Progress { count, done, in_entry };
            let ok = done < count;
            let d = Progress::decode(p.encode(), true);
            prop_assert_eq!(d.is_ok(), ok);
            if ok {
                prop_assert_eq!(d, Ok(p));
            }
        }
    }
}
