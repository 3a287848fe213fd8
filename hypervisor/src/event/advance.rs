//! # Arming the guest's timer early by the platform's exit latency
//!
//! A timer that comes due while the guest runs reaches Keel through the
//! VMX-preemption timer's exit, and that exit arrives some time after the timer
//! reaches zero: a few instructions on a CPU that implements the timer itself, a
//! whole chain of work where a hypervisor beneath Keel emulates it (under KVM, an
//! hrtimer in the host, the host's interrupt, then a synthesized exit to Keel:
//! tens of thousands of TSC ticks). Any interrupt the host takes in that window
//! (its own tick) makes the timer later still.
//!
//! [`TimerAdvance`] learns that latency from the exits themselves and arms the
//! preemption timer that much before the deadline; an exit that then comes
//! before the deadline waits in Keel for it (never fires early), bounded by
//! [`ADVANCE_CAP`]. KVM does the same for its guests' local APIC timers
//! (`lapic_timer_advance`). Only exits armed for the guest's own deadlines
//! teach it: the end of a slice is armed at its time (nothing waits for it to
//! the tick). The first exit sets the estimate (at most [`FIRST_STEP_CAP`]):
//! learning it an eighth at a time would leave the guest's first dozen timers
//! up to a whole exit latency late, and under nested KVM that latency is most
//! of the lateness bound (`docs/abi/time.md`). After it the estimate moves by
//! an eighth of each error, and a late exit counts at most [`LATE_STEP_CAP`]
//! (the host once descheduling the vCPU for milliseconds must not make every
//! later timer wait long in Keel). An exit early by more than half the
//! estimate takes half the error off at once: the estimate was set by an
//! outlier (a first exit that came late for a reason of its own), and it
//! comes down within a dozen exits instead of dozens, never below the latency
//! that exit showed.

/// The largest advance, in TSC ticks, and so the longest Keel waits in one exit
/// for a deadline the timer's exit came early for.
pub const ADVANCE_CAP: u64 = 1 << 16;
/// The most one late exit adds to the error the estimate learns from.
pub const LATE_STEP_CAP: u64 = ADVANCE_CAP / 4;
/// The most the first exit, learned whole, sets the estimate to: about the
/// latency under nested KVM inside Bochs (about 23,000 ticks) with room for one
/// host interrupt, and an overshoot only makes Keel wait (never the guest late)
/// until the eighths bring it down.
pub const FIRST_STEP_CAP: u64 = ADVANCE_CAP / 2;

/// The learned latency of the timer's exit (TSC ticks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerAdvance {
    ticks: u64,
    /// An exit has been learned from.
    learned: bool,
}

impl TimerAdvance {
    /// No advance yet.
    pub const fn new() -> Self {
        Self {
            ticks: 0,
            learned: false,
        }
    }

    /// The advance now (TSC ticks, at most [`ADVANCE_CAP`]).
    pub const fn ticks(self) -> u64 {
        self.ticks
    }

    /// When to make the timer's exit come for `deadline` (TSC).
    pub const fn arm_at(self, deadline: u64) -> u64 {
        deadline.saturating_sub(self.ticks)
    }

    /// The timer armed for `deadline` exited at TSC `now`: learn from the
    /// error, and return how many ticks are left until the deadline (0 when it
    /// has passed), which the caller waits out before firing the timer.
    pub fn on_exit(&mut self, deadline: u64, now: u64) -> u64 {
        if !self.learned {
            self.learned = true;
            if now >= deadline {
                self.ticks = (now - deadline).min(FIRST_STEP_CAP);
                return 0;
            }
            // Early already (the deadline moved, or no latency at all): nothing
            // to add; wait as below.
        }
        if now >= deadline {
            let late = (now - deadline).min(LATE_STEP_CAP);
            self.ticks = (self.ticks + late.div_ceil(8)).min(ADVANCE_CAP);
            0
        } else {
            let early = deadline - now;
            let step = if early > self.ticks / 2 {
                early / 2
            } else {
                early.div_ceil(8)
            };
            self.ticks = self.ticks.saturating_sub(step);
            // Armed at most `ADVANCE_CAP` early, so this is the bound already;
            // the min keeps it one when the deadline moved.
            early.min(ADVANCE_CAP)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A platform whose timer exit comes `latency` ticks after the armed time.
    fn converge(latency: u64, rounds: usize) -> (TimerAdvance, u64) {
        let mut a = TimerAdvance::new();
        let mut worst_wait = 0;
        let mut deadline = 1_000_000u64;
        for _ in 0..rounds {
            let exit_at = a.arm_at(deadline) + latency;
            worst_wait = worst_wait.max(a.on_exit(deadline, exit_at));
            deadline += 500_000;
        }
        (a, worst_wait)
    }

    #[test]
    fn learns_the_latency_and_then_meets_deadlines() {
        let (a, _) = converge(25_000, 200);
        assert!(a.ticks().abs_diff(25_000) <= 8, "{}", a.ticks());
        // Converged: the exit comes within a few ticks of the deadline.
        let d = 9_000_000;
        let exit_at = a.arm_at(d) + 25_000;
        assert!(exit_at.abs_diff(d) <= 8);
    }

    #[test]
    fn the_first_exit_is_learned_whole() {
        let mut a = TimerAdvance::new();
        assert_eq!(a.on_exit(1000, 1000 + 23_000), 0);
        assert_eq!(a.ticks(), 23_000);
        // So the second timer's exit already comes at its deadline.
        let d = 500_000;
        assert_eq!(a.arm_at(d) + 23_000, d);
        // A stall at the first exit sets at most the first cap.
        let mut b = TimerAdvance::new();
        assert_eq!(b.on_exit(1000, 1000 + 10_000_000), 0);
        assert_eq!(b.ticks(), FIRST_STEP_CAP);
        // An early first exit learns nothing and waits.
        let mut c = TimerAdvance::new();
        assert_eq!(c.on_exit(1000, 900), 100);
        assert_eq!(c.ticks(), 0);
    }

    #[test]
    fn a_late_exit_after_the_first_is_not_learned_whole() {
        let mut a = TimerAdvance::new();
        assert_eq!(a.on_exit(1000, 1000 + 20_000), 0);
        assert_eq!(a.on_exit(1000, 1000 + 20_000 + 10_000_000), 0);
        assert_eq!(a.ticks(), 20_000 + LATE_STEP_CAP / 8);
    }

    #[test]
    fn an_early_exit_waits_for_the_deadline() {
        let mut a = TimerAdvance {
            ticks: 800,
            learned: true,
        };
        // Early by less than half the estimate: an eighth of the error.
        assert_eq!(a.on_exit(10_000, 9_800), 200);
        assert_eq!(a.ticks(), 775);
        // By more (the estimate was an outlier): half of it.
        assert_eq!(a.on_exit(10_000, 9_225), 775);
        assert_eq!(a.ticks(), 388);
        assert_eq!(a.on_exit(10_000, 10_000), 0);
    }

    #[test]
    fn an_outlying_first_exit_is_unlearned_fast() {
        // The first exit came 30,000 ticks late on a platform whose latency is
        // 100 (a host interrupt, or the guest kept the CPU busy at that
        // moment): the later exits come early and bring the estimate down.
        let mut a = TimerAdvance::new();
        assert_eq!(a.on_exit(1000, 1000 + 30_000), 0);
        assert_eq!(a.ticks(), 30_000);
        let mut deadline = 1_000_000u64;
        let mut exits = 0;
        while a.ticks() > 200 {
            let exit_at = a.arm_at(deadline) + 100;
            let w = a.on_exit(deadline, exit_at);
            // Never below what the exit showed, never fired early.
            assert!(a.ticks() >= 100);
            assert_eq!(exit_at + w, deadline);
            deadline += 500_000;
            exits += 1;
        }
        // An eighth at a time would take about 40.
        assert!(exits <= 12, "{exits}");
        // And then the eighths finish the job.
        let (b, _) = converge(100, 200);
        assert!(b.ticks().abs_diff(100) <= 8);
    }

    proptest! {
        /// Whatever the exits do, the advance and every wait stay within the cap,
        /// and a wait ends exactly at the deadline (never early).
        #[test]
        fn bounded(steps in proptest::collection::vec((0u64..1 << 40, 0u64..1 << 40), 1..200)) {
            let mut a = TimerAdvance::new();
            for (deadline, now) in steps {
                let w = a.on_exit(deadline, now);
                prop_assert!(a.ticks() <= ADVANCE_CAP);
                prop_assert!(w <= ADVANCE_CAP);
                if now < deadline && deadline - now <= ADVANCE_CAP {
                    prop_assert_eq!(now + w, deadline);
                }
                prop_assert!(a.arm_at(deadline) <= deadline);
            }
        }

        /// On a platform with a fixed latency up to the cap, the advance converges
        /// and the waits shrink to nothing.
        #[test]
        fn converges(latency in 0u64..ADVANCE_CAP) {
            let (a, _) = converge(latency, 400);
            prop_assert!(a.ticks().abs_diff(latency) <= 8);
        }
    }
}
