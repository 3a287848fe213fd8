//! # What the exit path hands a vCPU, and what it gets back
//!
//! [`GuestGprs`] is the register save area: the exit stub stores the guest's
//! general-purpose registers into this CPU's `PerCpu` (`percpu.rs`)
//! and the handler works on them in place. [`ExitEnv`] is what the stub calls
//! (the running vCPU), and [`DomainEnd`] how a domain's run ended.
#![allow(unsafe_code)]

use keel_abi::hypercall::HypercallArgs;

/// The guest's general-purpose registers, as the exit stub saves them. RSP and RIP
/// live in the VMCS.
///
/// The order is chosen for the hypercall path: RAX and the five argument
/// registers of Keel's (Xen's) convention, RDI, RSI, RDX, R10, R8, come first
/// and in that order, so that they *are* a [`HypercallArgs`] (see
/// [`Self::hypercall_args`]): a hypercall is dispatched from the saved registers
/// in place, as Xen dispatches from its `cpu_user_regs`, instead of copying six
/// registers into a new structure on every call. The stub addresses each field by
/// `offset_of!`, so the order is free to change.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestGprs {
    /// RAX (the hypercall number).
    pub rax: u64,
    /// RDI (hypercall argument 1).
    pub rdi: u64,
    /// RSI (hypercall argument 2).
    pub rsi: u64,
    /// RDX (hypercall argument 3).
    pub rdx: u64,
    /// R10 (hypercall argument 4).
    pub r10: u64,
    /// R8 (hypercall argument 5).
    pub r8: u64,
    /// RCX.
    pub rcx: u64,
    /// RBX.
    pub rbx: u64,
    /// RBP.
    pub rbp: u64,
    /// R9.
    pub r9: u64,
    /// R11.
    pub r11: u64,
    /// R12.
    pub r12: u64,
    /// R13.
    pub r13: u64,
    /// R14.
    pub r14: u64,
    /// R15.
    pub r15: u64,
}

// The prefix of `GuestGprs` is a `HypercallArgs`, field for field.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(offset_of!(HypercallArgs, nr) == offset_of!(GuestGprs, rax));
    assert!(offset_of!(HypercallArgs, args) == offset_of!(GuestGprs, rdi));
    assert!(offset_of!(GuestGprs, rsi) == offset_of!(GuestGprs, rdi) + 8);
    assert!(offset_of!(GuestGprs, rdx) == offset_of!(GuestGprs, rdi) + 16);
    assert!(offset_of!(GuestGprs, r10) == offset_of!(GuestGprs, rdi) + 24);
    assert!(offset_of!(GuestGprs, r8) == offset_of!(GuestGprs, rdi) + 32);
    assert!(size_of::<HypercallArgs>() == 6 * 8);
    assert!(align_of::<HypercallArgs>() <= align_of::<GuestGprs>());
};

impl GuestGprs {
    /// RAX, RDI, RSI, RDX, R10 and R8 as the hypercall they carry, without a
    /// copy (the layout is asserted above).
    #[inline(always)]
    pub fn hypercall_args(&self) -> &HypercallArgs {
        // SAFETY: `HypercallArgs` is `repr(C)` { u64, [u64; 5] }, and the
        // assertions above prove it lies exactly over the first six fields of
        // this `repr(C)` struct of `u64`s with no stricter alignment; every bit
        // pattern is a valid u64, and the returned reference borrows `self`.
        unsafe { &*(self as *const GuestGprs).cast::<HypercallArgs>() }
    }

    /// All registers zero.
    pub const ZERO: GuestGprs = GuestGprs {
        rax: 0,
        rcx: 0,
        rdx: 0,
        rbx: 0,
        rbp: 0,
        rsi: 0,
        rdi: 0,
        r8: 0,
        r9: 0,
        r10: 0,
        r11: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0,
    };
}

/// What the fast exit handler did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum FastExit {
    /// Handled: restore the call-clobbered registers and resume.
    Resume = RESUME_GUEST,
    /// Not handled (or only in part): save the other registers and call the
    /// full handler.
    Full = TAKE_FULL_PATH,
    /// Handled, and RBX was written too: restore it with the others.
    ResumeWithRbx = RESUME_WITH_RBX,
}

/// What the exit stub calls: the running vCPU.
pub trait ExitEnv {
    /// Called first on every exit, with only the call-clobbered registers in
    /// `gprs` (RAX, RCX, RDX, RSI, RDI, R8-R11; the others hold stale values
    /// and must be neither read nor written, except RBX, which
    /// [`FastExit::ResumeWithRbx`] reloads). Handle the exit, or decline and
    /// have [`Self::handle_exit`] called.
    fn fast_exit(&mut self, gprs: &mut GuestGprs) -> FastExit;
    /// Handle the exit that just happened (when `fast_exit` declined), with
    /// all the guest's GPRs; `None` resumes the guest.
    fn handle_exit(&mut self, gprs: &mut GuestGprs) -> Option<DomainEnd>;
    /// After [`Self::handle_exit`] answered `None`: whether this vCPU gives
    /// the CPU up now (it blocked, yielded or used up its slice), so that the
    /// exit leaves to the run loop, which enters another domain, instead of
    /// resuming this one. Answered once: the request is consumed.
    fn take_switch(&mut self) -> bool {
        false
    }
}

/// What an exit handler tells the stub: resume the guest.
pub const RESUME_GUEST: u64 = 0;
/// What the fast exit handler tells the stub: save the other registers and
/// call the full handler.
pub const TAKE_FULL_PATH: u64 = 1;
/// What the fast exit handler tells the stub: resume, with RBX reloaded from
/// the save area as well.
pub const RESUME_WITH_RBX: u64 = 2;
/// Why `keel_vmx_launch` returned: VMLAUNCH failed.
pub const LEAVE_LAUNCH_FAILED: u64 = 1;
/// VMRESUME failed.
pub const LEAVE_RESUME_FAILED: u64 = 2;
/// The domain ended (the exit handler's other answer).
pub const LEAVE_DOMAIN_ENDED: u64 = 3;
/// The vCPU gave the CPU up (`ExitEnv::take_switch`); its registers are in the
/// save area, and its VMCS is launched: it continues by VMRESUME.
pub const LEAVE_SWITCH: u64 = 4;

/// How a domain's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainEnd {
    /// The guest called `sched_op(SCHEDOP_shutdown)` with this `SHUTDOWN_*` reason.
    Shutdown(u32),
    /// The guest was killed; the diagnostic has been printed.
    Crashed,
    /// VM entry failed (software check, VMLAUNCH/VMRESUME error, or an entry-failure
    /// exit); the named failure has been printed.
    EntryFailed,
    /// A service domain, ended by the hypervisor because every other domain
    /// had ended (it does not count in the machine's power-off status).
    Destroyed,
    /// Destroyed by the control domain (`XEN_DOMCTL_destroydomain`): ended on
    /// purpose by the domain that decides, so, like a service domain's end,
    /// it does not count in the power-off status.
    DestroyedByControl,
}

/// Of an external-interrupt exit with IDT-vectoring information `idt` and
/// VM-exit interruption information `info`: whether it is the wake-up IPI
/// (`wake`) alone, `info` valid (as "acknowledge interrupt on exit" makes
/// it), and cut no event's delivery short (`idt` not valid: that event is
/// injected again, the whole way). A remote vCPU's CPU finishes such an exit
/// without a cross-CPU operation (`exit::Visitor::wake_ipi_exit`).
pub fn is_wake_ipi(idt: u64, info: u64, wake: u8) -> bool {
    const VALID: u64 = 1 << 31;
    idt & VALID == 0 && info & VALID != 0 && info & 0xff == u64::from(wake)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_wake_ipi_alone_is_a_visitors_local_exit() {
        let (wake, timer) = (0xf1u8, 0xf0u8);
        let valid = 1u64 << 31;
        assert!(is_wake_ipi(0, valid | u64::from(wake), wake));
        assert!(
            !is_wake_ipi(0, valid | u64::from(timer), wake),
            "another vector (the APIC timer ends slices)"
        );
        assert!(!is_wake_ipi(0, u64::from(wake), wake), "info not valid");
        assert!(
            !is_wake_ipi(valid | 0xf3, valid | u64::from(wake), wake),
            "an upcall's delivery was cut short: injected again the whole way"
        );
        // Bits 8-30 (type, error code) do not make another vector match.
        assert!(!is_wake_ipi(0, valid | 0x100 | u64::from(timer), wake));
    }
}
