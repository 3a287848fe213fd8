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

mod boot;
mod idt;
mod insn;
mod native;
mod patch;
mod port;
mod probe;
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
pub use self::step::*;
pub use self::user::*;
pub use self::vmcall::*;
