//! # Blocking, upcalls and timers: the work before each VM entry

use super::*;

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// Block the vCPU (`SCHEDOP_block`, `SCHEDOP_poll`, HLT) until what
    /// `self.ev.blocked` waits for happens: fire timers as they come due, and
    /// between them idle the CPU in HLT with the local APIC timer set for the next
    /// deadline. A vCPU with nothing that could ever wake it is killed.
    pub(super) fn block(&mut self, g: &GuestGprs) -> Option<DomainEnd> {
        if self.ev.blocked.is_none() {
            self.ev.blocked = Some(Blocked::Block);
        }
        self.enter_runstate(keel_abi::vcpu::RUNSTATE_BLOCKED);
        if self.shared_cpu {
            // The run loop idles or runs another domain until this one wakes
            // (`poll_wake`); nothing due now means the CPU goes elsewhere.
            let tsc = crate::arch::timer::rdtsc();
            if self.poll_wake(tsc) {
                self.woken();
            } else {
                self.give_cpu_up(GiveUp::Block);
            }
            return None;
        }
        loop {
            let tsc = crate::arch::timer::rdtsc();
            self.ev.expire_timers(&*self.dom, &mut *self.mem, tsc);
            if self.ev.should_wake(&*self.dom, &mut *self.mem, tsc) {
                break;
            }
            match self.ev.wake_deadline_tsc() {
                Some(d) => {
                    // Idle time is the console's: drain until the deadline.
                    self.console.drain_until(d);
                    crate::arch::timer::idle_until(d)
                }
                None => {
                    self.ev.blocked = None;
                    return self.crash(
                        g,
                        ExitReason::HLT,
                        0,
                        "blocked with no event source (no event pending or deliverable, no timer armed): it would sleep forever",
                    );
                }
            }
        }
        self.ev.blocked = None;
        // Alone on its CPU, it runs again at once.
        self.enter_runstate(keel_abi::vcpu::RUNSTATE_RUNNING);
        // Refresh the pvclock record at wake-up (Xen updates it when a vCPU is
        // scheduled; with a constant TSC the values are the same).
        crate::event::with_page!(
            self.ev,
            &*self.dom,
            &mut *self.mem,
            |page| page.publish_time(&self.ev.clock.time_info()),
            else ()
        );
        None
    }

    pub(super) fn set_window_exiting(&mut self, on: bool) {
        if on == self.window_on || !self.window_ok {
            return;
        }
        if let Err(e) = super::super::insn::set_interrupt_window_exiting(on) {
            log::error!("vmx: setting interrupt-window exiting failed: {e}");
        }
        self.window_on = on;
    }

    /// Before every VM entry: fire due timers, inject the upcall vector when the
    /// guest can take it (else ask for an interrupt-window exit), and set the
    /// VMX-preemption timer for the next deadline. Costs one test (no VMCS
    /// access) when no timer is armed and no upcall is wanted (`events_quiet`,
    /// cached in `quiet`).
    /// It also sends one console burst when one is due (see `before_entry_work`
    /// for when the guest's timers hold it back).
    #[inline(always)]
    pub(super) fn before_entry(&mut self) {
        if self.quiet {
            if self.console.has_work() {
                self.console.pump(u64::MAX);
            }
            return;
        }
        self.before_entry_work();
        self.quiet = self.events_quiet();
    }

    /// Whether `before_entry` would do nothing now: no timer armed, no upcall
    /// vector registered, no interrupt window requested, the preemption timer
    /// already parked, not blocked. (A time slice needs no test of its own:
    /// `resume_with_slice`, the one place that sets it, arms the timer, so
    /// the preemption timer is not parked while a slice runs.) Then every step of its work would do nothing
    /// (no timer to fire, `upcall_wanted` is None without a vector, the window
    /// is already off, the deadline is None and the timer idle).
    #[inline(always)]
    pub(super) fn events_quiet(&self) -> bool {
        self.ev.callback_vector.is_none()
            && self.ev.timers.next_deadline().is_none()
            && !self.window_on
            && self.preempt_idle
            && self.ev.blocked.is_none()
    }

    /// [`Self::events_quiet`]'s tests of the event state alone, for after a
    /// hypercall when `quiet` held before it (a hypercall changes only these).
    #[inline(always)]
    pub(super) fn events_still_quiet(&self) -> bool {
        self.ev.callback_vector.is_none()
            && self.ev.timers.next_deadline().is_none()
            && self.ev.blocked.is_none()
    }

    /// The earliest of the vCPU's own deadline and the end of its slice.
    fn entry_deadline(&self) -> Option<u64> {
        match (self.ev.wake_deadline_tsc(), self.slice_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The work of [`Self::before_entry`] when something is live.
    #[inline(never)]
    pub(super) fn before_entry_work(&mut self) {
        if self.ev.timers.next_deadline().is_some() {
            let tsc = crate::arch::timer::rdtsc();
            self.ev.expire_timers(&*self.dom, &mut *self.mem, tsc);
        }
        let upcall = self.ev.upcall_wanted(&*self.dom, &mut *self.mem);
        // A console burst only if no event waits to be delivered (a timer that
        // fired while the vCPU was blocked included) and it will have gone before
        // the VMX-preemption timer must be armed for the next deadline (the
        // deadline less the timer exit's learned latency: a burst that ends
        // inside that latency makes the timer late by what it overlaps), and
        // before the run loop's end of this run: the slice end, which is also
        // the earliest deadline of every other domain on the CPU (the
        // scheduler bounds each run by it). A burst can cost milliseconds
        // where each port access exits to a hypervisor beneath Keel, and it
        // is nobody's time but the domain that is due next. Before the
        // VMX-preemption timer is set, which reads the TSC.
        if upcall.is_none() && self.console.has_work() {
            let own = self
                .ev
                .wake_deadline_tsc()
                .map_or(u64::MAX, |d| self.advance.arm_at(d));
            self.console
                .pump(own.min(self.slice_end.unwrap_or(u64::MAX)));
        }
        match upcall {
            Some(vector) => {
                let rflags = vmread(guest::RFLAGS);
                let shadow = vmread(guest::INTERRUPTIBILITY_STATE) & BLOCKING_STI_MOV_SS;
                let busy = vmread(control::VMENTRY_INTERRUPTION_INFO_FIELD) & INJECT_VALID != 0;
                match crate::event::upcall_action(rflags & RFLAGS_IF != 0, shadow != 0, busy) {
                    UpcallAction::Inject => {
                        write(
                            control::VMENTRY_INTERRUPTION_INFO_FIELD,
                            // Type 0: external interrupt.
                            INJECT_VALID | u64::from(vector),
                        );
                        self.set_window_exiting(false);
                    }
                    UpcallAction::WaitForWindow => self.set_window_exiting(true),
                }
            }
            None => self.set_window_exiting(false),
        }
        let Some(rate) = self.preempt else {
            // No VMX-preemption timer: the host's APIC timer ends the guest's run
            // at the deadline (an external-interrupt exit, acknowledged above).
            match self.entry_deadline() {
                Some(d) => {
                    crate::arch::timer::arm(d);
                    self.preempt_idle = false;
                }
                None if !self.preempt_idle => {
                    crate::arch::timer::disarm();
                    self.preempt_idle = true;
                }
                None => {}
            }
            return;
        };
        // The guest's own deadline is armed early by the timer exit's learned
        // latency (`timer_exit` waits out the rest), so that the exit itself
        // comes at the deadline; the end of a slice is not: nothing in the
        // guest waits for it to the tick, and armed early it would only make
        // Keel wait for it (a slice is a millisecond, under Bochs fewer ticks
        // than one outlying exit latency). So only exits for the guest's
        // deadlines teach the estimate.
        let wake = self.ev.wake_deadline_tsc();
        let armed = match (wake.map(|w| self.advance.arm_at(w)), self.slice_end) {
            (Some(at), Some(end)) if end < at => Some((end, None)),
            (Some(at), _) => Some((at, wake)),
            (None, Some(end)) => Some((end, None)),
            (None, None) => None,
        };
        match armed {
            Some((at, timer)) => {
                // Read the TSC as late as possible: the timer counts from the
                // entry, so every tick spent after this read makes it late.
                let tsc = crate::arch::timer::rdtsc();
                write(
                    guest::VMX_PREEMPTION_TIMER_VALUE,
                    crate::vmx::caps::preemption_timer_value(at, tsc, rate),
                );
                self.preempt_idle = false;
                self.preempt_for = timer;
                // Due at the armed time (or now, if that has passed): the rounding
                // up to a timer tick is far below `overdue::MIN_SPAN`.
                self.preempt_due = at.max(tsc);
            }
            None if !self.preempt_idle => {
                write(guest::VMX_PREEMPTION_TIMER_VALUE, PREEMPT_NEVER);
                self.preempt_idle = true;
                self.preempt_for = None;
                self.preempt_due = u64::MAX;
            }
            None => {}
        }
    }

    /// A VMX-preemption-timer exit: record it if it came after the timer
    /// expired (`crate::overdue`); when it was armed for the guest's deadline,
    /// learn how late it came (`crate::event::advance`) and, when it came early, wait in
    /// Keel until the deadline (at most `advance::ADVANCE_CAP` ticks), so that
    /// `before_entry` fires the timer at this exit and never early.
    #[inline(never)]
    pub(super) fn timer_exit(&mut self) {
        let now = crate::arch::timer::rdtsc();
        crate::arch::timer::note_arrival(self.preempt_due, now);
        let Some(d) = self.preempt_for else {
            return;
        };
        let wait = self.advance.on_exit(d, now);
        if wait > 0 {
            let until = now + wait;
            while crate::arch::timer::rdtsc() < until {
                core::hint::spin_loop();
            }
        }
    }
}
