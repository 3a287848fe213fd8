//! # The one call from the exit path into the hypercall layer
//!
//! Builds the hypercall context from the running vCPU and dispatches the
//! hypercall whose number and arguments are the saved registers, in place.

use super::*;

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// Dispatch the hypercall in `g` (`GuestGprs::hypercall_args`) with this
    /// vCPU's domain, memory, console and events; and whether it may have
    /// changed the events or the base pointer
    /// (`hypercall::dispatch_noting_changes`). `peers`: the other live
    /// domains (`crate::peers`).
    #[inline(always)]
    pub(super) fn call_hypercall(
        &mut self,
        g: &GuestGprs,
        peers: &mut dyn Peers,
    ) -> (Outcome, bool) {
        let mut ctx = hypercall::Ctx {
            dom: &mut *self.dom,
            mem: &mut *self.mem,
            console: &mut *self.console,
            ev: &mut self.ev,
            now: &crate::arch::timer::rdtsc,
            work: crate::preempt::Budget::new(),
            grants: &crate::grant::STORE,
            peers,
        };
        hypercall::dispatch_noting_changes(&mut ctx, g.hypercall_args())
    }
}
