//! The hardware layer: entry, descriptor tables, exception stubs and fault probes.
//!
//! This is the only module of keel-guest with `unsafe` code or assembly, and it
//! exists only for `x86_64-unknown-none`.
//!
//! ## Start of day
//! The hypervisor enters `_start` in 64-bit mode at CPL0 with RSP at the top of a
//! boot stack, RSI = the start_info address, IF = 0, and — per the guest-facing
//! contract — GDTR and IDTR with base 0 and limit 0: the segment registers hold
//! valid hidden state, but any exception or segment reload before we install our own
//! tables is a triple fault. So `_start` touches nothing that could fault before
//! `rust_start` has loaded the GDT, TSS and IDT; the first fault-capable access is
//! the read of start_info, after the IDT is live.
//!
//! `.bss` is cleared by `_start` even though the domain builder hands out zeroed
//! frames: the image must not depend on that, and it is a few thousand instructions.
//! We then move to a 64 KiB stack in `.bss`, so stack depth never depends on how
//! much boot stack the builder chose.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::abi::start_info::START_INFO_SIZE;
use crate::abi::GuestVirt;
use crate::cpu::CpuidResult;
use crate::fault::{encode_exinfo, Cr, ExEntry, ExceptionState, Insn, VmxInsn};

// The `.ex_table` entries of a probe (see `probe`): here, before the modules,
// because a `macro_rules!` macro is in scope only in the text after it.
macro_rules! extable {
    ($($fault:literal => $fixup:literal),+) => {
        concat!(
            ".pushsection .ex_table, \"a\"\n",
            ".balign 8\n",
            $(".quad ", $fault, ", ", $fixup, "\n",)+
            ".popsection\n"
        )
    };
}

// What the user-mode entry and the all-register VMCALL both do with registers,
// as AT&T assembler text for their `global_asm!` (`concat!` them in): save and
// restore the six callee-saved registers of the C ABI, and load every GPR but
// RSP from the 15-word array at RDI (order RAX, RBX, RCX, RDX, RSI, RDI, RBP,
// R8..R15, as in `Frame::gpr`), RDI itself last.
macro_rules! push_callee_saved {
    () => {
        "pushq %rbx\npushq %rbp\npushq %r12\npushq %r13\npushq %r14\npushq %r15\n"
    };
}
macro_rules! pop_callee_saved {
    () => {
        "popq %r15\npopq %r14\npopq %r13\npopq %r12\npopq %rbp\npopq %rbx\n"
    };
}
macro_rules! load_gprs_from_rdi {
    () => {
        concat!(
            "movq 0(%rdi), %rax\n",
            "movq 8(%rdi), %rbx\n",
            "movq 16(%rdi), %rcx\n",
            "movq 24(%rdi), %rdx\n",
            "movq 32(%rdi), %rsi\n",
            "movq 48(%rdi), %rbp\n",
            "movq 56(%rdi), %r8\n",
            "movq 64(%rdi), %r9\n",
            "movq 72(%rdi), %r10\n",
            "movq 80(%rdi), %r11\n",
            "movq 88(%rdi), %r12\n",
            "movq 96(%rdi), %r13\n",
            "movq 104(%rdi), %r14\n",
            "movq 112(%rdi), %r15\n",
            "movq 40(%rdi), %rdi\n",
        )
    };
}

mod boot;
mod idt;
mod insn;
mod native;
mod patch;
mod port;
mod probe;
mod smp;
mod step;
mod user;
mod vmcall;

use self::boot::*;
pub use self::idt::*;
pub use self::insn::*;
pub use self::native::*;
pub use self::patch::*;
pub use self::port::*;
pub use self::probe::*;
pub use self::smp::*;
pub use self::step::*;
pub use self::user::*;
pub use self::vmcall::*;
