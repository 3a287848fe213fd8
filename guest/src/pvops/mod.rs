//! The operations table (paravirt_ops): one guest image, native or paravirtual.
//!
//! The library reaches the privileged machine through [`ops()`], a table of
//! function pointers grouped as Linux groups `pv_ops`: [`CpuOps`] (CPUID, MSRs,
//! control registers, interrupt flag, halt), [`MmuOps`] (set an entry, load the
//! root, flush one page or all), [`TimeOps`] (read the clock, arm a one-shot
//! timer), [`IrqOps`] (the timer as an interrupt) and [`ConsoleOps`]. Each group
//! has two implementations:
//!
//! | group | native (raw instructions) | Keel PV |
//! |---|---|---|
//! | cpu | CPUID, RDMSR/WRMSR, MOV CR, CLI/STI, STI;HLT | CPUID answered from a per-boot cache (one exit per leaf, ever); MSRs and CRs: the instructions (Keel has no hypercall for them, as Xen PV); `evtchn_upcall_mask` for the interrupt flag; `SCHEDOP_block` |
//! | mmu | an 8-byte store into the table, MOV CR3, INVLPG, MOV CR3 to itself | `mmu_update`, `MMUEXT_NEW_BASEPTR`, `MMUEXT_INVLPG_LOCAL`, `MMUEXT_TLB_FLUSH_LOCAL` |
//! | time | TSC scaled by a PIT calibration; local APIC one-shot timer | pvclock (no exit); `set_timer_op` |
//! | irq | the APIC timer's IDT vector | `VIRQ_TIMER` bound to an event channel, upcall vector |
//! | console | COM1, polled | `console_io(CONSOLEIO_write)` |
//!
//! **Detection** ([`init`], at boot): the Keel CPUID leaves (`0x4000_0000`,
//! "KeelKeelKeel") select PV; their absence selects native (the image then came
//! in through its multiboot1 header: [`crate::native`]).
//!
//! **A la carte**: on Keel the guest command line's `pv=` chooses PV per group
//! (`pv=all`, the default; `pv=none`; `pv=mmu,time`, ...). A group left native on
//! Keel runs its raw instructions and relies on Keel's trap-and-emulate (a direct
//! PTE store, MOV CR3, CPUID, MSRs, HLT, COM1). Two things are the platform's and
//! not the menu's, because bare hardware has no equivalent Keel could emulate:
//! announcing a page table ([`MmuOps::alloc_table`]: Keel needs it read-only and
//! pinned before MOV CR3 may load it; bare hardware needs nothing) and the local
//! APIC (Keel presents none: CPUID.1:EDX.APIC is 0), so on Keel `time` and `irq`
//! stay PV whatever `pv=` says, and [`Choice::forced`] records it. The verdict
//! line and the power-off always use the platform's own channel (console_io and
//! `SCHEDOP_shutdown` on Keel), so the runner reads them the same way whatever
//! the console group is.

use spin::{Mutex, Once};

use crate::abi::guest;
use crate::abi::mmu::{
    MmuUpdate, MmuextOp, MMUEXT_INVLPG_LOCAL, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE,
    MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_UNPIN_TABLE,
};
use crate::abi::{Errno, GuestVirt, Mfn};
use crate::arch;
use crate::cpu::CpuidResult;
use crate::fault::{self, Cr, Fault};
use crate::pagetable::{self, Pte, PteFlags};

mod chosen;
mod keel;
mod menu;
mod native;
mod ops;
mod patch;
mod platform;

pub use self::chosen::*;
pub use self::keel::*;
pub use self::menu::*;
pub use self::native::*;
pub use self::ops::*;
pub use self::patch::*;
pub use self::platform::*;

#[cfg(test)]
mod tests;
