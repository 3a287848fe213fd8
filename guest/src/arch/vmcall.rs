//! The hypercall register convention check.

use super::*;

// `keel_vmcall_all_regs(regs: *mut [u64; 15])`: load every GPR but RSP from
// `regs` (order: RAX, RBX, RCX, RDX, RSI, RDI, RBP, R8..R15), execute VMCALL, and
// store every GPR back, so a test can see exactly what the hypercall changed. The
// callee-saved registers are saved around it (it is an ordinary C function).
global_asm!(
    concat!(
        r#"
    .section .text.keel_vmcall_all_regs, "ax"
    .global keel_vmcall_all_regs
keel_vmcall_all_regs:
"#,
        push_callee_saved!(),
        "pushq %rdi\n",
        load_gprs_from_rdi!(),
        r#"
    vmcall
    xchgq %rdi, (%rsp)
    movq %rax, 0(%rdi)
    movq %rbx, 8(%rdi)
    movq %rcx, 16(%rdi)
    movq %rdx, 24(%rdi)
    movq %rsi, 32(%rdi)
    movq %rbp, 48(%rdi)
    movq %r8, 56(%rdi)
    movq %r9, 64(%rdi)
    movq %r10, 72(%rdi)
    movq %r11, 80(%rdi)
    movq %r12, 88(%rdi)
    movq %r13, 96(%rdi)
    movq %r14, 104(%rdi)
    movq %r15, 112(%rdi)
    popq %rax
    movq %rax, 40(%rdi)
"#,
        pop_callee_saved!(),
        "ret\n",
    ),
    options(att_syntax)
);

extern "C" {
    fn keel_vmcall_all_regs(regs: *mut [u64; 15]);
}

/// Issue a hypercall with every general-purpose register (but RSP) loaded from
/// `regs` and return every register's value afterwards (same order: RAX, RBX,
/// RCX, RDX, RSI, RDI, RBP, R8..R15). RAX holds the number going in and the result
/// coming out; RDI, RSI, RDX, R10, R8 are the arguments.
pub fn vmcall_all_regs(regs: [u64; 15]) -> [u64; 15] {
    let mut r = regs;
    // SAFETY: the callee saves and restores every callee-saved register and uses no
    // memory but `r`; it is called through the C ABI, so the compiler treats the
    // caller-saved registers as clobbered. The hypercall's pointer arguments are the
    // caller's choice, as for `abi::guest::hypercall_scalar`.
    unsafe { keel_vmcall_all_regs(&mut r) };
    r
}
