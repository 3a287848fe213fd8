//! # Sharing the CPU: what the run loop (`vmx::run`) asks of a vCPU
//!
//! Several domains on one CPU: the vCPU gives the CPU up (it blocked, yielded
//! or used up its slice) by leaving to the run loop, which asks it here why,
//! whether it should wake, until when it may sleep, and hands it its next
//! slice before entering it again.

use super::*;
use crate::event::{on_page, with_page};
use keel_abi::vcpu::{RUNSTATE_RUNNABLE, RUNSTATE_RUNNING};

impl<'a, M: PhysMem, C: Console> Vcpu<'a, M, C> {
    /// Other domains share this CPU (set once, before the first entry).
    pub fn share_cpu(&mut self) {
        self.shared_cpu = true;
    }

    /// The domain's id.
    pub fn domain_id(&self) -> crate::domain::DomainId {
        self.dom.id
    }

    /// The domain and the machine, once the vCPU is over (its domain ended):
    /// for the run loop's teardown.
    pub fn into_parts(self) -> (&'a mut Domain, &'a mut M) {
        (self.dom, self.mem)
    }

    /// The domain and the machine, borrowed (for the run loop's teardown of
    /// an ended domain, a bounded piece at a time).
    pub fn parts_mut(&mut self) -> (&mut Domain, &mut M) {
        (&mut *self.dom, &mut *self.mem)
    }

    /// Scrub and free the frames of ended domains whose last grant mapping
    /// this domain's exits released, if there are any.
    pub fn reap_grants(&mut self, frames: &mut impl crate::mem::FrameSource) {
        if crate::grant::world::REAP_HINT.load(core::sync::atomic::Ordering::Relaxed) {
            crate::grant::world::reap(&crate::grant::STORE, &mut *self.mem, frames);
        }
    }

    /// The vCPU gives the CPU up (`why`) at the end of this exit. The exit's
    /// `before_entry` then has nothing to do but the console's burst: the run
    /// loop enters another vCPU, and this one's next entry goes through
    /// [`Self::resume_with_slice`], which does the entry work afresh (a domain
    /// switch pays for it once, not twice). Through `quiet`, so that a domain
    /// alone on its CPU pays no test for it.
    pub(super) fn give_cpu_up(&mut self, why: GiveUp) {
        self.give_up = Some(why);
        self.quiet = true;
    }

    /// Why the vCPU left the CPU (consumed). A vCPU that yielded or used up
    /// its slice is runnable from now on (one that blocked is blocked since
    /// it decided to).
    pub fn take_give_up(&mut self) -> Option<GiveUp> {
        let g = self.give_up.take();
        if self.runstates && matches!(g, Some(GiveUp::Yield | GiveUp::Preempted)) {
            self.record_runstate(RUNSTATE_RUNNABLE);
        }
        g
    }

    /// The loaded vCPU's run state changes now (`VCPUOP_get_runstate_info` reports
    /// it): the points where the run loop and the exit handlers move the
    /// vCPU call this. Kept only for a domain served ABI 1.2 (the only one
    /// that can ask): any other pays one test of a field. In TSC ticks: it
    /// runs on every domain switch, and the record is converted to
    /// nanoseconds only when the guest asks.
    #[inline(always)]
    pub(super) fn enter_runstate(&mut self, state: u32) {
        if self.runstates {
            self.record_runstate(state);
        }
    }

    /// [`Self::enter_runstate`]'s work, out of line: the paths every domain
    /// takes keep only the test.
    #[cold]
    #[inline(never)]
    fn record_runstate(&mut self, state: u32) {
        let now = crate::arch::timer::rdtsc();
        self.dom.vcpus.enter_runstate(self.ev.vcpu, state, now);
    }

    /// Whether the vCPU is blocked (waiting for an event or a deadline).
    pub fn is_blocked(&self) -> bool {
        self.ev.blocked.is_some()
    }

    /// For a blocked vCPU: fire the timers due at TSC `tsc`, and say whether
    /// it should wake now (an event to deliver, a polled port pending, the poll
    /// timed out).
    pub fn poll_wake(&mut self, tsc: u64) -> bool {
        self.ev.expire_timers(&*self.dom, &mut *self.mem, tsc);
        self.ev.should_wake(&*self.dom, &mut *self.mem, tsc)
    }

    /// The TSC at which a blocked vCPU must be looked at again (its next
    /// timer or poll timeout), if any.
    pub fn wake_deadline(&self) -> Option<u64> {
        self.ev.wake_deadline_tsc()
    }

    /// The vCPU wakes from a block: the pvclock record refreshed, as in
    /// [`Self::block`].
    pub fn woken(&mut self) {
        self.ev.blocked = None;
        // Every caller enters the vCPU next (or lets it run on).
        self.enter_runstate(RUNSTATE_RUNNING);
        with_page!(
            self.ev,
            &*self.dom,
            &mut *self.mem,
            |page| page.publish_time(&self.ev.clock.time_info()),
            else ()
        );
    }

    /// Before the vCPU enters again after another domain ran (its VMCS is
    /// current): the slice it runs for, and everything `before_entry` decides
    /// done afresh (timers that fell due meanwhile, the upcall, the
    /// preemption timer, which another domain's run left unknown).
    pub fn resume_with_slice(&mut self, slice_end: Option<u64>) {
        self.enter_runstate(RUNSTATE_RUNNING);
        self.slice_end = slice_end;
        self.preempt_idle = false;
        self.before_entry_work();
        self.quiet = self.events_quiet();
    }

    /// The run loop's scheduler gave the running vCPU's run an end (another
    /// domain woke while it ran alone): armed before the next entry.
    #[inline(never)]
    pub fn set_slice_end(&mut self, until: u64) {
        self.slice_end = Some(until);
        // Not quiet, and not taken for quiet again by an exit that computes
        // `events_quiet` before `before_entry` (the fast path's): the timer
        // is armed for the new end before the next entry, as after
        // `resume_with_slice`.
        self.quiet = false;
        self.preempt_idle = false;
    }

    /// Whether the slice the run loop gave this vCPU is over (one test when
    /// the vCPU is alone: no slice).
    #[inline(always)]
    pub(super) fn slice_over(&self) -> bool {
        match self.slice_end {
            None => false,
            Some(end) => crate::arch::timer::rdtsc() >= end,
        }
    }

    /// The domain's record (for another domain's grant operation, through
    /// `crate::peers`).
    pub fn domain(&self) -> &Domain {
        self.dom
    }

    /// Port `p` of this domain as the interdomain rules see it.
    pub fn endpoint(&self, p: u32) -> Option<crate::event::interdomain::Endpoint> {
        self.ev.chans.endpoint(p)
    }

    /// Set port `p` of this domain by the interdomain rules.
    pub fn set_endpoint(&mut self, p: u32, e: crate::event::interdomain::Endpoint) {
        self.ev.chans.set_endpoint(p, e);
    }

    /// Another domain notified port `p`: make it pending here; whether an
    /// upcall was newly raised. The upcall itself is decided again when the
    /// vCPU next enters (`resume_with_slice`).
    #[inline(always)]
    pub fn notify(&mut self, p: u32) -> bool {
        let raised = with_page!(
            self.ev,
            &*self.dom,
            &mut *self.mem,
            |page| self.ev.chans.set_pending(p, &mut page),
            else false
        );
        // A vCPU notified in the middle of its own exit (from another CPU,
        // `vmx::lend`) decides its upcall again before it enters.
        if raised {
            self.quiet = false;
        }
        raised
    }

    /// This vCPU's run ends by TSC `until` at the latest (its run loop has
    /// work for then: `vmx::run`).
    pub fn end_slice_by(&mut self, until: u64) {
        if self.slice_end.is_none_or(|e| e > until) {
            self.set_slice_end(until);
        }
    }

    /// Another CPU paused or destroyed this running vCPU's domain: its run
    /// ends at its next entry (the slice is over now).
    pub fn end_slice_now(&mut self) {
        self.set_slice_end(crate::arch::timer::rdtsc());
    }

    /// The machine frame of the domain's `shared_info` (0 without one).
    pub fn shared_frame(&self) -> u64 {
        self.ev.shared.map_or(0, |m| m.get())
    }

    /// Raise global VIRQ `virq` here (`VIRQ_DOM_EXC` from the run loop):
    /// whether an upcall was newly raised. Nothing if it is not bound.
    #[inline(always)]
    pub fn raise_virq(&mut self, virq: u32) -> bool {
        let raised = with_page!(
            self.ev,
            &*self.dom,
            &mut *self.mem,
            |page| self.ev.chans.raise_virq(virq, &mut page),
            else false
        );
        if raised {
            self.quiet = false;
        }
        raised
    }

    /// The domain is ending: close its interdomain and unbound ports, each
    /// peer end going back to unbound (`interdomain::close_all`).
    pub fn close_ports(&mut self, peers: &mut dyn Peers) {
        let me = self.dom.id;
        // Without a shared page the domain could open no port.
        let Some(page) = self.ev.page(&*self.dom, &mut *self.mem) else {
            return;
        };
        on_page!(page, |page| close_all_with(
            me,
            &mut self.ev.chans,
            &mut page,
            peers
        ));
    }
}

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// [`Vcpu::close_ports`] a bounded piece at a time: ports from `cursor`,
    /// at most `budget`; the next cursor while some remain.
    pub fn close_ports_from(
        &mut self,
        peers: &mut dyn Peers,
        cursor: u32,
        budget: u32,
    ) -> Option<u32> {
        let me = self.dom.id;
        let page = self.ev.page(&*self.dom, &mut *self.mem)?;
        on_page!(page, |page| {
            let mut world = crate::peers::Ports {
                me,
                chans: &mut self.ev.chans,
                bits: &mut page,
                peers,
            };
            crate::event::interdomain::close_all(&mut world, me, cursor, budget)
        })
    }
}

/// [`Vcpu::close_ports`] with the domain's pending bits.
fn close_all_with<B: crate::event::EventBits>(
    me: crate::domain::DomainId,
    chans: &mut crate::event::Channels,
    bits: &mut B,
    peers: &mut dyn Peers,
) {
    let mut world = crate::peers::Ports {
        me,
        chans,
        bits,
        peers,
    };
    let mut cursor = 0;
    while let Some(next) = crate::event::interdomain::close_all(&mut world, me, cursor, 64) {
        cursor = next;
    }
}

/// A vCPU of a domain while another of its vCPUs is loaded in the domain's
/// [`Vcpu`]: the exit handler's state that belongs to one vCPU (its VPID, the
/// copy of its VMCS's CR3, the control registers it reads, whether its VMCS
/// asks for interrupt windows) and its own events (timers, what it blocks
/// on). The rest of [`Vcpu`] is the domain's, or remade before every entry.
#[derive(Clone, Copy, Debug)]
pub struct VcpuParked {
    vpid: u16,
    loaded_base: Mfn,
    cr3_real: u64,
    cr0_visible: u64,
    cr4_visible: u64,
    cr8: u8,
    window_on: bool,
    events: crate::event::VcpuEvents,
}

impl VcpuParked {
    /// A vCPU that has not run yet, with VPID `vpid`, on root `root` (its
    /// VMCS as `setup::start_vcpu` writes it, control registers as vCPU 0
    /// started).
    pub fn start(vpid: u16, root: Mfn) -> Self {
        VcpuParked {
            vpid,
            loaded_base: root,
            cr3_real: root.addr().get(),
            cr0_visible: cr_policy::GUEST_CR0_INITIAL,
            cr4_visible: cr_policy::GUEST_CR4_INITIAL,
            cr8: 0,
            window_on: false,
            events: crate::event::VcpuEvents::default(),
        }
    }

    /// Whether the parked vCPU is blocked.
    pub fn is_blocked(&self) -> bool {
        self.events.blocked.is_some()
    }
}

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// The loaded vCPU (the one the exits are of).
    pub fn loaded_vcpu(&self) -> u32 {
        self.ev.vcpu
    }

    /// The vCPU port `p` of this domain notifies.
    pub fn notify_vcpu(&self, p: u32) -> u32 {
        self.ev.chans.notify_vcpu(p)
    }

    /// Load vCPU `vcpu` of the domain with its parked state `next`, parking
    /// the loaded one (returned). The caller makes `vcpu`'s VMCS current
    /// before the next entry, which goes through [`Self::resume_with_slice`].
    /// The domain's root and the event state follow (`Domain::load_vcpu`,
    /// `EventState::load_vcpu`); the translations the new vCPU's VPID may
    /// hold from before are dropped (its domain's tables may have changed
    /// while it was parked: the flushes owed then were the loaded vCPU's),
    /// and its pvclock is published, as Xen does when it schedules a vCPU.
    #[inline(never)]
    pub fn switch_vcpu(&mut self, vcpu: u32, next: VcpuParked) -> VcpuParked {
        use core::mem::replace;
        let events = self.ev.load_vcpu(&*self.dom, vcpu, next.events);
        if !self.dom.load_vcpu(vcpu) {
            log::error!("vmx: vCPU {vcpu} of domain {} has no root", self.dom.id.0);
        }
        let prev = VcpuParked {
            vpid: replace(&mut self.vpid, next.vpid),
            loaded_base: replace(&mut self.loaded_base, next.loaded_base),
            cr3_real: replace(&mut self.cr3_real, next.cr3_real),
            cr0_visible: replace(&mut self.cr0_visible, next.cr0_visible),
            cr4_visible: replace(&mut self.cr4_visible, next.cr4_visible),
            cr8: replace(&mut self.cr8, next.cr8),
            window_on: replace(&mut self.window_on, next.window_on),
            events,
        };
        // CPUID.1:ECX.OSXSAVE follows the CR4 of the vCPU that asks.
        self.cpuid.set_osxsave(self.cr4_visible & CR4_OSXSAVE != 0);
        self.flush_all();
        with_page!(
            self.ev,
            &*self.dom,
            &mut *self.mem,
            |page| page.publish_time(&self.ev.clock.time_info()),
            else ()
        );
        prev
    }
}

/// What the loaded vCPU keeps for one run on its CPU (the preemption timer
/// as its VMCS holds it, the slice, the exit being handled): per vCPU and
/// per CPU, so a vCPU that runs on another CPU than its domain's keeps its
/// own (`Visitor`).
#[derive(Clone, Copy, Debug)]
pub struct RunFields {
    preempt_idle: bool,
    preempt_for: Option<u64>,
    preempt_due: u64,
    quiet: bool,
    reason: ExitReason,
    deferred: Option<Deferred>,
    slice_end: Option<u64>,
    give_up: Option<GiveUp>,
}

impl RunFields {
    /// A vCPU's first run (as `Vcpu::new` starts vCPU 0's).
    pub fn fresh() -> Self {
        RunFields {
            preempt_idle: true,
            preempt_for: None,
            preempt_due: u64::MAX,
            quiet: false,
            reason: ExitReason::from_raw(0),
            deferred: None,
            slice_end: None,
            give_up: None,
        }
    }

    /// Why the vCPU gives its CPU up, once its exit decided it.
    pub fn give_up(&self) -> Option<GiveUp> {
        self.give_up
    }
}

/// A vCPU of the domain that runs on another CPU than the domain's (a
/// remote vCPU, `vmx::run`): its own state and its run's, installed in the
/// domain's [`Vcpu`] for each of its exits, which its CPU handles with the
/// domain's CPU stopped (`vmx::lend`), and taken out again after.
#[derive(Clone, Copy, Debug)]
pub struct Visitor {
    vcpu: u32,
    parked: VcpuParked,
    run: RunFields,
    /// What its domain was built with, kept here so that its CPU answers
    /// the exits that need nothing else alone ([`Self::own_exit`]).
    own: OwnFacts,
}

/// What a visitor's own exits read of its domain: facts fixed when the
/// domain was built. The CPUID policy is the domain's, its OSXSAVE bit kept
/// following this vCPU's own CR4 (`Vcpu::swap_visitor`).
#[derive(Clone, Copy, Debug)]
pub struct OwnFacts {
    cpuid: CpuidPolicy,
    built: crate::hypercall::BuiltFacts,
    /// `xen_version` calls answered by [`Visitor::own_exit`] and not counted
    /// in the domain yet (they are at its next installation).
    calls: u64,
}

impl Visitor {
    /// vCPU `vcpu`, not run yet, with its parked state `parked`, of the
    /// domain whose facts are `own` (`Vcpu::own_facts`).
    pub fn new(vcpu: u32, parked: VcpuParked, own: OwnFacts) -> Self {
        Visitor {
            vcpu,
            parked,
            run: RunFields::fresh(),
            own,
        }
    }

    /// Its run's fields (while not installed).
    pub fn run(&self) -> &RunFields {
        &self.run
    }

    /// Whether it is blocked (while not installed).
    pub fn is_blocked(&self) -> bool {
        self.parked.is_blocked()
    }

    /// Its VPID.
    pub fn vpid(&self) -> u16 {
        self.parked.vpid
    }

    /// On its CPU, in the exit that just happened (its VMCS current, not
    /// installed; `reason` read from it): if the exit is only another CPU's
    /// wake-up IPI (its lend served, and no request for this CPU: the caller
    /// checked), finish it here, without the domain's state: acknowledge the IPI and arm the
    /// VMX-preemption timer again for the deadline it had (it counts from
    /// each entry). Whether it was one; any other exit, or one that
    /// interrupted an event's delivery, is handled the whole way (a
    /// cross-CPU operation).
    ///
    /// Why: each of a visitor's exits costs a cross-CPU operation, whose
    /// wake-up IPIs take every other CPU's visitor out of its guest. Were
    /// those exits operations too, visitors in their guests on several CPUs
    /// would keep each other exiting: three (`vcpus_4_spread`) ran no guest
    /// code for seconds at a time.
    pub fn wake_ipi_exit(&self, cpu: &VmxCpu, reason: ExitReason) -> bool {
        if !Self::is_wake_ipi(reason) {
            return false;
        }
        percpu::count_exit(reason.basic());
        crate::arch::timer::eoi();
        if let Some(rate) = preempt_rate(cpu) {
            self.rearm_preempt(rate, crate::arch::timer::rdtsc());
        }
        true
    }

    /// Whether the exit being handled, of `reason`, is only another CPU's
    /// wake-up IPI (no event was being delivered when it came).
    pub fn is_wake_ipi(reason: ExitReason) -> bool {
        reason == ExitReason::EXTERNAL_INTERRUPT
            && crate::vmx::frame::is_wake_ipi(
                vmread(ro::IDT_VECTORING_INFO),
                vmread(ro::VMEXIT_INTERRUPTION_INFO),
                crate::arch::timer::WAKE_VECTOR,
            )
    }

    /// Arm the VMX-preemption timer again for the deadline it had, at TSC
    /// `now` (it counts from each entry, and this exit is not its own).
    fn rearm_preempt(&self, rate: u32, now: u64) {
        if !self.run.preempt_idle {
            write(
                guest::VMX_PREEMPTION_TIMER_VALUE,
                crate::vmx::caps::preemption_timer_value(self.run.preempt_due, now, rate),
            );
        }
    }

    /// Whether an exit of this `reason` may be one [`Self::own_exit`]
    /// handles (the caller asks first: most exits are not).
    #[inline(always)]
    pub fn may_be_own(reason: ExitReason) -> bool {
        reason == ExitReason::CPUID || reason == ExitReason::VMCALL
    }

    /// On its CPU, in the exit that just happened (as
    /// [`Self::wake_ipi_exit`]; the caller checked that its CPU has no
    /// request and its domain is alive): if the exit needs nothing but the
    /// vCPU's own state and its domain's built facts, handle it here and
    /// say how to resume; `None` for any other exit, handled the whole way
    /// (a cross-CPU operation).
    ///
    /// Handled here: `CPUID` (the domain's policy), and a `VMCALL` from the
    /// guest kernel whose answer reads only the facts
    /// (`crate::hypercall::own_answer`: `XENVER_version`, `XENVER_pagesize`)
    /// or is Keel's benchmark no-op. Not when a deadline of the vCPU or its
    /// slice is due (the operation's `before_entry` must see it), nor,
    /// without the VMX-preemption timer, when it has a deadline or a slice
    /// at all (then only an exit the operation handles ends them), nor in
    /// an interrupt shadow or single-stepped
    /// (the whole path retires those). Nothing it skips can be owed: an
    /// event for this vCPU comes with a wake request and an IPI, whose exit
    /// is an operation.
    ///
    /// Why: Xen's `cpuid` and `xen_version` reach only the calling vCPU and
    /// its domain's constant data; here each was a stop of every CPU.
    #[inline(never)]
    pub fn own_exit(
        &mut self,
        cpu: &VmxCpu,
        reason: ExitReason,
        g: &mut GuestGprs,
    ) -> Option<FastExit> {
        let rate = preempt_rate(cpu);
        let now = crate::arch::timer::rdtsc();
        match rate {
            Some(_) if now >= self.run.preempt_due => return None,
            Some(_) => {}
            // Without the VMX-preemption timer a deadline or a slice end is
            // the APIC timer's exit, which Bochs does not take while the
            // guest has IF clear: that is what an operation's exit checks,
            // so a vCPU with either goes that way.
            None if self.run.slice_end.is_some()
                || self.parked.events.timers.next_deadline().is_some() =>
            {
                return None
            }
            None => {}
        }
        let (rbx, answer) = match reason {
            ExitReason::CPUID => (true, None),
            ExitReason::VMCALL => {
                let cpl =
                    Cpl::from_ss_access_rights(vmread_current(guest::SS_ACCESS_RIGHTS) as u32);
                if !cpl.may_hypercall() {
                    return None;
                }
                let a = g.hypercall_args();
                let v = if a.nr == perf::KEEL_DEBUG_OP {
                    (a.args[0] == perf::DEBUGOP_NOP).then_some(perf::NOP_RESULT)
                } else {
                    crate::hypercall::own_answer(a, self.own.built)
                };
                (false, Some(v?))
            }
            _ => return None,
        };
        let rip = vmread_current(guest::RIP);
        let rflags = vmread_current(guest::RFLAGS);
        let intr = vmread_current(guest::INTERRUPTIBILITY_STATE);
        if intr & BLOCKING_STI_MOV_SS != 0 || rflags & RFLAGS_TF != 0 {
            return None;
        }
        percpu::count_exit(reason.basic());
        match answer {
            Some(v) => {
                if g.rax != perf::KEEL_DEBUG_OP {
                    // The domain counts it at this vCPU's next operation.
                    self.own.calls = self.own.calls.wrapping_add(1);
                }
                g.rax = v as u64;
            }
            None => super::cpuid::answer_cpuid(&self.own.cpuid, g),
        }
        let len = vmread_current(ro::VMEXIT_INSTRUCTION_LEN);
        write(guest::RIP, rip.wrapping_add(len));
        if let Some(rate) = rate {
            self.rearm_preempt(rate, now);
        }
        Some(if rbx {
            FastExit::ResumeWithRbx
        } else {
            FastExit::Resume
        })
    }
}

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// Install visitor `x` as the loaded vCPU, or take it out again: the
    /// loaded vCPU's state and `x`'s trade places (twice is the identity).
    /// Unlike [`Self::switch_vcpu`], nothing is flushed or published: the
    /// visitor's own VMCS stays current on its own CPU, and the vCPU it
    /// displaces only stands still for the exit (its CPU is lent).
    pub fn swap_visitor(&mut self, x: &mut Visitor) {
        use core::mem::swap;
        if x.own.calls != 0 {
            self.dom.count_hypercalls(
                keel_abi::hypercall::Hypercall::XEN_VERSION.0,
                core::mem::take(&mut x.own.calls),
            );
        }
        let prev = self.ev.vcpu;
        x.parked.events = self.ev.load_vcpu(&*self.dom, x.vcpu, x.parked.events);
        if !self.dom.load_vcpu(x.vcpu) {
            log::error!(
                "vmx: vCPU {} of domain {} has no root",
                x.vcpu,
                self.dom.id.0
            );
        }
        x.vcpu = prev;
        let p = &mut x.parked;
        swap(&mut self.vpid, &mut p.vpid);
        swap(&mut self.loaded_base, &mut p.loaded_base);
        swap(&mut self.cr3_real, &mut p.cr3_real);
        swap(&mut self.cr0_visible, &mut p.cr0_visible);
        swap(&mut self.cr4_visible, &mut p.cr4_visible);
        swap(&mut self.cr8, &mut p.cr8);
        swap(&mut self.window_on, &mut p.window_on);
        let r = &mut x.run;
        swap(&mut self.preempt_idle, &mut r.preempt_idle);
        swap(&mut self.preempt_for, &mut r.preempt_for);
        swap(&mut self.preempt_due, &mut r.preempt_due);
        swap(&mut self.quiet, &mut r.quiet);
        swap(&mut self.reason, &mut r.reason);
        swap(&mut self.deferred, &mut r.deferred);
        swap(&mut self.slice_end, &mut r.slice_end);
        swap(&mut self.give_up, &mut r.give_up);
        // CPUID.1:ECX.OSXSAVE follows the CR4 of the vCPU that asks.
        self.cpuid.set_osxsave(self.cr4_visible & CR4_OSXSAVE != 0);
        x.own
            .cpuid
            .set_osxsave(x.parked.cr4_visible & CR4_OSXSAVE != 0);
    }

    /// What a visitor of this domain keeps to answer its own exits
    /// ([`Visitor::own_exit`]).
    pub fn own_facts(&self) -> OwnFacts {
        OwnFacts {
            cpuid: self.cpuid,
            built: crate::hypercall::BuiltFacts {
                abi_encoded: self.dom.abi_version_encoded(),
            },
            calls: 0,
        }
    }

    /// The loaded vCPU's VPID.
    pub fn vpid(&self) -> u16 {
        self.vpid
    }
}

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// Publish the loaded vCPU's pvclock record (as [`Self::switch_vcpu`]
    /// does when it loads a vCPU: a remote vCPU's CPU does it before each
    /// run, as Xen does when it schedules a vCPU).
    pub fn publish_time(&mut self) {
        with_page!(
            self.ev,
            &*self.dom,
            &mut *self.mem,
            |page| page.publish_time(&self.ev.clock.time_info()),
            else ()
        );
    }

    /// Drop every translation of the loaded vCPU on this CPU (a flush its
    /// domain was owed while it ran elsewhere or another of its vCPUs made
    /// it on another CPU).
    pub fn flush_tlb(&mut self) {
        self.flush_all();
    }
}
