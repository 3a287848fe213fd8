//! # A vCPU's timers, in system-time nanoseconds
//!
//! Two timers raise `VIRQ_TIMER`: the single-shot one (`set_timer_op`,
//! `VCPUOP_set_singleshot_timer`; Xen's `singleshot_timer`) and the periodic one
//! (`VCPUOP_set_periodic_timer`). Both are deadlines in system time; the VMX code
//! turns the nearest one into a VMX-preemption-timer count while the guest runs
//! and a local-APIC deadline while it is blocked, and calls [`Timers::expire`]
//! whenever it regains control. Because `expire` compares deadlines with the
//! current system time, a timer can never fire early, whatever the hardware
//! timer did; a hardware timer that fires early only costs one more exit.

/// The single-shot and periodic timers of one vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timers {
    /// Single-shot deadline (ns), if armed.
    pub oneshot: Option<u64>,
    /// Periodic timer: (period, next deadline), if armed.
    pub periodic: Option<(u64, u64)>,
}

impl Timers {
    /// Arm the single-shot timer (`set_timer_op`: 0 stops it).
    pub fn set_oneshot(&mut self, deadline: u64) {
        self.oneshot = (deadline != 0).then_some(deadline);
    }
    /// Stop the single-shot timer.
    pub fn stop_oneshot(&mut self) {
        self.oneshot = None;
    }
    /// Arm the periodic timer: first deadline one period after `now`.
    pub fn set_periodic(&mut self, now: u64, period: u64) {
        self.periodic = Some((period, now.saturating_add(period)));
    }
    /// Stop the periodic timer.
    pub fn stop_periodic(&mut self) {
        self.periodic = None;
    }

    /// The nearest deadline, if any timer is armed.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.oneshot, self.periodic.map(|(_, d)| d)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fire everything due at system time `now`: returns how many `VIRQ_TIMER`
    /// events to raise (0, 1 or 2; raising twice is harmless: an event already
    /// pending is not duplicated). The single-shot timer disarms; the periodic
    /// one moves to its next deadline `start + k * period` after `now`, so its
    /// deadlines never drift; periods missed entirely are merged into this event.
    pub fn expire(&mut self, now: u64) -> u32 {
        let mut n = 0;
        if let Some(d) = self.oneshot {
            if now >= d {
                self.oneshot = None;
                n += 1;
            }
        }
        if let Some((period, d)) = self.periodic {
            if now >= d && period > 0 {
                let missed = (now - d) / period;
                let next = d.saturating_add((missed + 1).saturating_mul(period));
                self.periodic = Some((period, next));
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn oneshot() {
        let mut t = Timers::default();
        assert_eq!(t.next_deadline(), None);
        t.set_oneshot(100);
        assert_eq!(t.expire(99), 0);
        assert_eq!(t.expire(100), 1);
        assert_eq!(t.expire(1000), 0);
        t.set_oneshot(5);
        t.set_oneshot(0);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn periodic_does_not_drift() {
        let mut t = Timers::default();
        t.set_periodic(0, 10);
        // Handled late every time: deadlines stay on the grid.
        for k in 1..1000u64 {
            assert_eq!(t.next_deadline(), Some(10 * k));
            assert_eq!(t.expire(10 * k + 7), 1);
        }
        // A long gap merges the missed periods into one event.
        assert_eq!(t.expire(100_000), 1);
        assert_eq!(t.next_deadline(), Some(100_010));
    }

    proptest! {
        /// Whatever each event costs (handled `delay` after its deadline, even
        /// longer than a period), the periodic deadlines stay on the grid
        /// `t0 + k * period`: the next one is always the first grid point after
        /// the time the last event was handled, and every grid point passed is
        /// either an event or merged into one.
        #[test]
        fn periodic_deadlines_stay_on_the_grid_whatever_each_event_costs(
            t0 in 0u64..1_000_000,
            p in 1u64..10_000,
            delays in proptest::collection::vec(0u64..30_000, 1..200),
        ) {
            let mut t = Timers::default();
            t.set_periodic(t0, p);
            let mut events = 0u64;
            let mut now = t0;
            for delay in delays {
                let d = t.next_deadline().unwrap();
                prop_assert_eq!((d - t0) % p, 0, "off the grid");
                prop_assert!(d > now);
                now = d + delay;
                prop_assert_eq!(t.expire(now), 1);
                events += 1;
                let next = t.next_deadline().unwrap();
                prop_assert_eq!(next, t0 + ((now - t0) / p + 1) * p);
                // Grid points passed so far: each an event or merged.
                prop_assert!(events <= (now - t0) / p);
            }
        }

        /// Never fires before a deadline; after `expire(now)` no deadline is <= now.
        #[test]
        fn never_early(d in 1u64..1_000_000, p in 1u64..10_000, nows in proptest::collection::vec(0u64..2_000_000, 1..50)) {
            let mut t = Timers::default();
            t.set_oneshot(d);
            t.set_periodic(0, p);
            let mut nows = nows;
            nows.sort_unstable();
            for now in nows {
                let before = t;
                let n = t.expire(now);
                let due = u32::from(before.oneshot.is_some_and(|x| now >= x))
                    + u32::from(before.periodic.is_some_and(|(_, x)| now >= x));
                prop_assert_eq!(n, due);
                prop_assert!(t.next_deadline().is_none_or(|x| x > now));
            }
        }
    }
}
