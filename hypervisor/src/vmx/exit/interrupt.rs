//! # Exceptions, NMIs and host interrupts that arrive while a guest runs

use super::*;

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// An exit that is only another CPU's wake-up IPI
    /// (`Visitor::is_wake_ipi`: no event was being delivered, so none is
    /// re-injected), bringing a wake request for the vCPU it interrupted
    /// (a visitor: `vmx::run::visit`): acknowledged, and the events that
    /// woke it delivered at this entry (`before_entry`), all in the fast
    /// path; the vCPU's run goes on.
    pub fn wake_ipi_deliver(&mut self) -> FastExit {
        percpu::count_exit(ExitReason::EXTERNAL_INTERRUPT.basic());
        crate::arch::timer::eoi();
        self.quiet = self.events_quiet();
        self.before_entry();
        FastExit::Resume
    }

    /// A host interrupt arrived while the guest ran. Keel 0.1 has no interrupt
    /// source of its own; with "acknowledge interrupt on exit" the CPU has already
    /// taken the vector from the interrupt controller. Keel leaves it in service
    /// (no EOI), which keeps that source and lower-priority ones quiet, logs the
    /// vector once, and resumes the guest.
    pub(super) fn external_interrupt(&mut self, g: &GuestGprs) -> Option<DomainEnd> {
        if !self
            .controls
            .exit
            .contains(ExitControls::ACK_INTERRUPT_ON_EXIT)
        {
            return self.crash(
                g,
                ExitReason::EXTERNAL_INTERRUPT,
                0,
                "host interrupt pending, and without \"acknowledge interrupt on exit\" Keel 0.1 cannot take it",
            );
        }
        let info = vmread(ro::VMEXIT_INTERRUPTION_INFO);
        let vector = (info & 0xff) as usize;
        if vector == usize::from(crate::arch::timer::TIMER_VECTOR) {
            // Keel's own APIC timer: it ended the run (without the
            // VMX-preemption timer), or was left pending from an idle period.
            crate::arch::timer::armed_timer_arrived();
            crate::arch::timer::eoi();
        } else if vector == usize::from(crate::arch::timer::WAKE_VECTOR) {
            // Another CPU's wake-up IPI (it asked for this CPU's domains:
            // `vmx::lend`, served before this exit was handled): acknowledge
            // it (the timers are looked at before the next entry anyway).
            crate::arch::timer::eoi();
        } else if vector == usize::from(crate::arch::timer::SPURIOUS_VECTOR) {
            // Spurious: no EOI.
        } else if percpu::this().vectors_logged.first_time(vector) {
            log::warn!("vmx: host interrupt vector {vector:#x} arrived while domain {} ran: acknowledged and left in service (0.1 has no interrupt sources)", self.dom.id.0);
        }
        self.reinject_idt_vectoring();
        None
    }

    /// An NMI, or a write-protection #PF (the only exception the bitmap
    /// intercepts, filtered by the error-code mask and match).
    pub(super) fn exception_or_nmi(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let info = vmread(ro::VMEXIT_INTERRUPTION_INFO) as u32;
        if (info >> 8) & 7 == intr_type::HARDWARE_EXCEPTION && info & 0xff == u32::from(VEC_PF) {
            return self.page_fault(g);
        }
        if (info >> 8) & 7 == intr_type::NMI {
            log::warn!(
                "vmx: NMI while domain {} ran: ignored (0.1 has no NMI sources)",
                self.dom.id.0
            );
            self.reinject_idt_vectoring();
            return None;
        }
        self.crash(
            g,
            ExitReason::EXCEPTION_OR_NMI,
            u64::from(info),
            "unexpected exception exit (only #PF is intercepted)",
        )
    }
}
