//! # MSRs: one table decides every RDMSR and WRMSR a guest executes
//!
//! On hardware an MSR either exists (and then checks its reserved bits) or raises
//! #GP(0). A Keel guest sees the same, with [`MSRS`] as its CPU's list of MSRs. Each
//! row is one of four kinds:
//!
//! - **Pass-through** ([`Kind::PassThrough`]): neither RDMSR nor WRMSR exits (the
//!   row's bits in the MSR bitmap are 0), so the CPU itself reads, writes and
//!   checks the MSR. That is only correct where the guest's value survives every
//!   exit. It does for MSRs VMX does not switch *and* the host never uses: Keel has
//!   no user mode, never executes SYSCALL, SWAPGS, RDTSCP or RDPID, so STAR, LSTAR,
//!   CSTAR, SFMASK, KERNEL_GS_BASE and TSC_AUX stay the guest's while Keel runs, and
//!   have no effect on the host. Keel gives each a defined value (0) before the
//!   domain's first instruction. FS_BASE and GS_BASE are also passed through: they
//!   are the VMCS's guest segment bases, saved on exit and loaded on entry
//!   (SDM 28.3.2, 27.3.2.2), so the host never runs on the guest's values.
//! - **Write-checked** ([`Kind::WriteChecked`]): reads do not exit; writes exit so
//!   that Keel checks the reserved bits itself (#GP(0)) and then writes the
//!   register. IA32_FMASK: its reserved bits 63:32 are checked by the CPU's WRMSR,
//!   but a hypervisor beneath Keel may intercept a pass-through write and not
//!   check them (KVM keeps the value in its user-return MSR cache and writes the
//!   register with `wrmsrl_safe`, so the result is whatever the CPU under KVM
//!   does). Checking in Keel makes the rule the same on every platform.
//! - **Read-through** ([`Kind::ReadThrough`]): reads do not exit, writes do and are
//!   refused. IA32_TSC: the guest reads the host's TSC (no offsetting), and may not
//!   move it.
//! - **VMCS-managed** ([`Kind::Vmcs`]): the MSR lives in the VMCS guest-state area
//!   and is switched on entry and exit (EFER, PAT, SYSENTER_*, DEBUGCTL). Accesses
//!   exit; reads return the field, writes are validated ([`Check`]) and stored in
//!   the field.
//! - **Emulated** ([`Kind::Emulated`]): a value Keel makes up for a virtual CPU that
//!   has one logical processor, no VMX, no APIC reachable, no microcode loading and
//!   write-back memory everywhere. Writes are refused (#GP(0)), accepted only if they
//!   leave the value unchanged, or ignored, per [`Write`].
//!
//! Every other index raises #GP(0) on read and write, as hardware does for an MSR
//! that does not exist (the VMX capability MSRs included: VMX is hidden).
//!
//! The table is also the source of the MSR bitmap ([`bitmap_passes`]) and of
//! `docs/abi/msr.md`. Everything here is pure; the exit handler performs the
//! [`ReadOp`]/[`WriteOp`] the policy returns.
//!
//! The files: `table.rs` is the policy as data ([`MSRS`], the values Keel makes
//! up, the bit fields it checks); `decide.rs` answers one RDMSR or WRMSR and
//! derives the bitmap; `markdown.rs` (test-only) generates the page.

mod decide;
#[cfg(test)]
pub mod markdown;
mod table;
#[cfg(test)]
mod tests;

pub use decide::*;
pub use table::*;
