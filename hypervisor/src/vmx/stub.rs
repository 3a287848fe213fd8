//! # Entering and leaving the guest: the assembly
//!
//! The VMCS's host RIP is `keel_vmx_exit_stub` and its host RSP the top of this
//! CPU's exit stack ([`PerCpu`]). On an exit the stub saves the guest's
//! general-purpose registers into `PerCpu::gprs` (RSP and RIP are in the VMCS),
//! in two steps (the call-clobbered ones for [`ExitEnv::fast_exit`], then the
//! rest for [`ExitEnv::handle_exit`] if the fast path declined), calling the
//! handlers `launch` installed for the running vCPU's type (inlined: no dynamic
//! dispatch on the exit path), and either restores the registers and executes
//! VMRESUME, or, when the domain has ended, switches back to the stack of
//! `keel_vmx_launch`'s caller and returns from it. So [`launch`] is called once
//! per domain and returns only when the domain is over.
#![allow(unsafe_code)]

use core::arch::global_asm;
use core::mem::offset_of;

use super::frame::{
    DomainEnd, ExitEnv, GuestGprs, LEAVE_DOMAIN_ENDED, LEAVE_LAUNCH_FAILED, LEAVE_RESUME_FAILED,
    LEAVE_SWITCH, RESUME_GUEST, RESUME_WITH_RBX,
};
use super::percpu::{no_vcpu_fast_handler, no_vcpu_handler, PerCpu};

/// Why `keel_vmx_launch` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leave {
    /// VMLAUNCH failed, with this RFLAGS.
    LaunchFailed(u64),
    /// VMRESUME failed, with this RFLAGS.
    ResumeFailed(u64),
    /// The domain ended.
    DomainEnded(DomainEnd),
    /// The vCPU gave the CPU up (`ExitEnv::take_switch`), with these registers.
    Switch(GuestGprs),
    /// The assembly returned a code it never returns.
    Unexpected(u64),
}

/// Offset of the register save area in `PerCpu`.
const GPRS: usize = offset_of!(PerCpu, gprs);

global_asm!(
    // keel_vmx_launch(pc: *mut PerCpu, resume: u64) -> u64 (System V): saves the
    // callee-saved registers, remembers RSP in pc.launch_rsp, loads the guest
    // GPRs and executes VMLAUNCH (VMRESUME if `resume` is not zero: a VMCS
    // launched before, entered again after a switch). It "returns" when
    // VMLAUNCH fails (code 1) or, via the exit stub, when the domain ends
    // (code 3), gives the CPU up (code 4) or VMRESUME fails (code 2).
    ".global keel_vmx_launch",
    "keel_vmx_launch:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rdi",
    "mov [rdi + {launch_rsp}], rsp",
    // The flags of this test survive the loads below (MOV changes no flag).
    "test rsi, rsi",
    "mov rax, rdi",
    "mov rcx, [rax + {rcx}]",
    "mov rdx, [rax + {rdx}]",
    "mov rbx, [rax + {rbx}]",
    "mov rbp, [rax + {rbp}]",
    "mov rsi, [rax + {rsi}]",
    "mov rdi, [rax + {rdi}]",
    "mov r8, [rax + {r8}]",
    "mov r9, [rax + {r9}]",
    "mov r10, [rax + {r10}]",
    "mov r11, [rax + {r11}]",
    "mov r12, [rax + {r12}]",
    "mov r13, [rax + {r13}]",
    "mov r14, [rax + {r14}]",
    "mov r15, [rax + {r15}]",
    "mov rax, [rax + {rax}]",
    "jnz 7f",
    "vmlaunch",
    // VMLAUNCH failed: we are still here, on the launch stack.
    "pushfq",
    "pop rax",
    "mov rbx, [rsp]",
    "mov [rbx + {fail_rflags}], rax",
    "mov eax, {launch_failed}",
    "keel_vmx_launch_return:",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    // VMRESUME of a VMCS entered before failed: still on the launch stack.
    "7:",
    "vmresume",
    "pushfq",
    "pop rax",
    "mov rbx, [rsp]",
    "mov [rbx + {fail_rflags}], rax",
    "mov eax, {resume_failed}",
    "jmp keel_vmx_launch_return",
    "",
    // The VM-exit entry point (the VMCS's host RIP). RSP = host RSP, the top of
    // this CPU's exit stack (16-byte aligned); GS = this CPU's PerCpu, whose
    // first field is its own address. Interrupts are off (VM exit clears RFLAGS
    // except bit 1), DF is clear.
    //
    // Two steps. First only the registers a call may clobber (RAX, RCX, RDX,
    // RSI, RDI, R8-R11) are saved and the fast handler is called: the
    // callee-saved ones keep the guest's values through it, by the call ABI.
    // If it handled the exit (0), restore those and resume (2: and RBX, which
    // CPUID writes). Otherwise (1) save the callee-saved registers too, so the
    // whole set is in PerCpu::gprs, and call the full handler.
    ".global keel_vmx_exit_stub",
    "keel_vmx_exit_stub:",
    "push rax",
    "mov rax, gs:[0]",
    "mov [rax + {rcx}], rcx",
    "mov [rax + {rdx}], rdx",
    "mov [rax + {rsi}], rsi",
    "mov [rax + {rdi}], rdi",
    "mov [rax + {r8}], r8",
    "mov [rax + {r9}], r9",
    "mov [rax + {r10}], r10",
    "mov [rax + {r11}], r11",
    "pop rcx",
    "mov [rax + {rax}], rcx",
    // RSP is 16-byte aligned here, as the call ABI requires.
    "mov rdi, rax",
    "call [rax + {fast}]",
    "test eax, eax",
    "jnz 3f",
    "mov rax, gs:[0]",
    "5:",
    "mov rcx, [rax + {rcx}]",
    "mov rdx, [rax + {rdx}]",
    "mov rsi, [rax + {rsi}]",
    "mov rdi, [rax + {rdi}]",
    "mov r8, [rax + {r8}]",
    "mov r9, [rax + {r9}]",
    "mov r10, [rax + {r10}]",
    "mov r11, [rax + {r11}]",
    "mov rax, [rax + {rax}]",
    "vmresume",
    "jmp 4f",
    "3:",
    "cmp eax, {with_rbx}",
    "jne 6f",
    "mov rax, gs:[0]",
    "mov rbx, [rax + {rbx}]",
    "jmp 5b",
    "6:",
    "mov rax, gs:[0]",
    "mov [rax + {rbx}], rbx",
    "mov [rax + {rbp}], rbp",
    "mov [rax + {r12}], r12",
    "mov [rax + {r13}], r13",
    "mov [rax + {r14}], r14",
    "mov [rax + {r15}], r15",
    // RBX is callee-saved: it still holds PerCpu after the call.
    "mov rbx, rax",
    "mov rdi, rax",
    "call [rax + {handler}]",
    "test rax, rax",
    "jnz 2f",
    "mov rax, rbx",
    "mov rcx, [rax + {rcx}]",
    "mov rdx, [rax + {rdx}]",
    "mov rbx, [rax + {rbx}]",
    "mov rbp, [rax + {rbp}]",
    "mov rsi, [rax + {rsi}]",
    "mov rdi, [rax + {rdi}]",
    "mov r8, [rax + {r8}]",
    "mov r9, [rax + {r9}]",
    "mov r10, [rax + {r10}]",
    "mov r11, [rax + {r11}]",
    "mov r12, [rax + {r12}]",
    "mov r13, [rax + {r13}]",
    "mov r14, [rax + {r14}]",
    "mov r15, [rax + {r15}]",
    "mov rax, [rax + {rax}]",
    "vmresume",
    // VMRESUME failed (RBX holds a guest value: take PerCpu from GS).
    "4:",
    "pushfq",
    "pop rax",
    "mov rbx, gs:[0]",
    "mov [rbx + {fail_rflags}], rax",
    "mov eax, {resume_failed}",
    "2:",
    // Leave: back onto keel_vmx_launch's stack, return to its caller with RAX.
    "mov rsp, [rbx + {launch_rsp}]",
    "jmp keel_vmx_launch_return",
    rax = const GPRS + offset_of!(GuestGprs, rax),
    rcx = const GPRS + offset_of!(GuestGprs, rcx),
    rdx = const GPRS + offset_of!(GuestGprs, rdx),
    rbx = const GPRS + offset_of!(GuestGprs, rbx),
    rbp = const GPRS + offset_of!(GuestGprs, rbp),
    rsi = const GPRS + offset_of!(GuestGprs, rsi),
    rdi = const GPRS + offset_of!(GuestGprs, rdi),
    r8 = const GPRS + offset_of!(GuestGprs, r8),
    r9 = const GPRS + offset_of!(GuestGprs, r9),
    r10 = const GPRS + offset_of!(GuestGprs, r10),
    r11 = const GPRS + offset_of!(GuestGprs, r11),
    r12 = const GPRS + offset_of!(GuestGprs, r12),
    r13 = const GPRS + offset_of!(GuestGprs, r13),
    r14 = const GPRS + offset_of!(GuestGprs, r14),
    r15 = const GPRS + offset_of!(GuestGprs, r15),
    launch_rsp = const offset_of!(PerCpu, launch_rsp),
    fail_rflags = const offset_of!(PerCpu, fail_rflags),
    launch_failed = const LEAVE_LAUNCH_FAILED,
    resume_failed = const LEAVE_RESUME_FAILED,
    handler = const offset_of!(PerCpu, handler),
    fast = const offset_of!(PerCpu, fast),
    with_rbx = const RESUME_WITH_RBX,
);

extern "C" {
    /// `pc` is a `*mut PerCpu` (declared as bytes: the assembly sees only offsets).
    fn keel_vmx_launch(pc: *mut u8, resume: u64) -> u64;
    fn keel_vmx_exit_stub();
}

/// The host RIP for the VMCS.
pub fn exit_stub_address() -> u64 {
    keel_vmx_exit_stub as *const () as u64
}

/// The exit handler for vCPUs of type `V` (see `percpu::ExitHandler`): the
/// stub calls it with the guest's GPRs saved in `pc`.
///
/// # Safety
/// `pc` is this CPU's PerCpu, whose `running` points at a live `V` (`launch`).
unsafe extern "C" fn exit_handler<V: ExitEnv>(pc: *const PerCpu) -> u64 {
    // SAFETY: see above; the register save area is only touched by the stub,
    // which is suspended in this call, and the vCPU only by its exits.
    let (pc, vcpu, gprs) = unsafe {
        let pc = &*pc;
        (pc, &mut *pc.running.get().cast::<V>(), &mut *pc.gprs.get())
    };
    match vcpu.handle_exit(gprs) {
        None if vcpu.take_switch() => LEAVE_SWITCH,
        None => RESUME_GUEST,
        Some(end) => {
            pc.end.set(Some(end));
            LEAVE_DOMAIN_ENDED
        }
    }
}

/// The fast exit handler for vCPUs of type `V`: called with only the
/// call-clobbered registers saved in `pc` (RAX, RCX, RDX, RSI, RDI, R8-R11);
/// answers what `ExitEnv::fast_exit` did (`frame::FastExit`).
///
/// # Safety
/// As for [`exit_handler`].
unsafe extern "C" fn fast_handler<V: ExitEnv>(pc: *const PerCpu) -> u64 {
    // SAFETY: as in `exit_handler`.
    let (vcpu, gprs) = unsafe {
        let pc = &*pc;
        (&mut *pc.running.get().cast::<V>(), &mut *pc.gprs.get())
    };
    vcpu.fast_exit(gprs) as u64
}

/// Run the guest on the current (checked) VMCS with `vcpu` handling its exits
/// and `gprs` as its registers, until the domain ends, gives the CPU up, or
/// entry fails. `resume`: the VMCS was launched before (VMRESUME, not VMLAUNCH).
pub fn launch<V: ExitEnv>(pc: &PerCpu, vcpu: &mut V, gprs: GuestGprs, resume: bool) -> Leave {
    // SAFETY: the guest is not running: nothing else touches the save area.
    unsafe { *pc.gprs.get() = gprs };
    // The pointer is cleared below, before `vcpu`'s borrow ends, and used only
    // by exits inside `keel_vmx_launch`.
    pc.running.set((vcpu as *mut V).cast());
    pc.handler.set(exit_handler::<V>);
    pc.fast.set(fast_handler::<V>);
    pc.end.set(None);
    // SAFETY: the caller made a checked VMCS current whose host RSP/RIP are this
    // CPU's exit stack and `keel_vmx_exit_stub`; `pc` is this CPU's PerCpu.
    let code = unsafe { keel_vmx_launch(pc.as_ptr(), u64::from(resume)) };
    pc.handler.set(no_vcpu_handler());
    pc.fast.set(no_vcpu_fast_handler());
    pc.running.set(core::ptr::null_mut());
    // SAFETY: as above; the guest is no longer running.
    let fail_rflags = unsafe { *pc.fail_rflags.get() };
    match code {
        LEAVE_DOMAIN_ENDED => Leave::DomainEnded(pc.end.take().unwrap_or(DomainEnd::Crashed)),
        // SAFETY: as above; the full path saved every register before leaving.
        LEAVE_SWITCH => Leave::Switch(unsafe { *pc.gprs.get() }),
        LEAVE_LAUNCH_FAILED => Leave::LaunchFailed(fail_rflags),
        LEAVE_RESUME_FAILED => Leave::ResumeFailed(fail_rflags),
        other => Leave::Unexpected(other),
    }
}
