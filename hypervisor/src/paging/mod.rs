//! # Direct paging: page types, pinning and validated updates
//!
//! Under direct paging the CPU walks the guest's own page tables, which hold
//! machine frame numbers. Nothing stands between the guest and the machine except
//! two invariants, which this module keeps (Xen's model, `xen/arch/x86/mm.c`):
//!
//! 1. **Ownership.** Every present entry of every table the CPU can reach names a
//!    frame the domain owns.
//! 2. **Types.** Every frame has one [`PageType`](frame_table::PageType) at a time, with a *type count*:
//!    `Writable` counts the L1 entries that map it writable, `Table(Lk)` counts the
//!    L(k+1) entries that reference it, its pin and (for an L4) the vCPU's base
//!    pointer. A frame changes type only while its type count is zero. So a frame
//!    in use as a page table has no writable mapping, and a frame mapped writable
//!    is not in use as a page table: the guest can change its tables only through
//!    the hypervisor.
//!
//! ## How the counts move
//!
//! - [`get_type`](Mm::get_type) on a page-table type whose count goes from 0 to 1 *validates*
//!   the frame: every present entry is checked ([`check_entry`]) and takes a
//!   reference on what it points at (a writable-type reference for an RW L1
//!   entry, a table-type reference of the level below for an upper-level entry,
//!   a plain reference for a read-only L1 entry). If any entry fails, the
//!   references taken so far are dropped again and the frame stays unused.
//! - [`put_type`](Mm::put_type) whose count reaches 0 *devalidates*: every present entry drops
//!   its reference. Devalidation is what lets a frame go back to being ordinary
//!   memory.
//! - [`mod_entry`](Mm::mod_entry) (one `mmu_update`, or an emulated PTE write) takes the new
//!   entry's reference first (full validation, no fast path for "flag-only"
//!   changes: Xen XSA-182's class), writes the entry, then drops the old entry's
//!   reference, and reports whether a TLB flush is needed before the guest runs
//!   again (whenever a present entry changed other than in its A/D bits: XSA-286's
//!   class).
//! - [`pin`](Mm::pin)/[`unpin`](Mm::unpin) hold one type reference for the
//!   guest; [`set_base`](Mm::set_base) holds one for the vCPU's CR3.
//!
//! ## Bounded recursion (XSA-240's class)
//!
//! Validation recurses from a table to the tables its entries reference, and
//! devalidation likewise. Every step goes *down* one level (an L(k) entry may
//! reference only an L(k-1) table), so the depth is at most four whatever the
//! guest writes, and the stack cost is four small frames. Keel forbids linear
//! ("recursive") page tables: an entry referencing a table of its own level (or
//! the table itself) asks for a type the frame does not have while it is in use,
//! and is refused. A cycle is therefore impossible, which is also why teardown
//! (unpin everything, drop the base) always brings every count back to zero.
//!
//! The total work of one validation is bounded too: a table is validated once,
//! when its type count leaves zero; later references only count.
//!
//! ## Entry rules ([`check_entry`])
//!
//! - Flags allowed in an L1 entry: P, RW, US, PWT, PCD, A, D, G, the three
//!   software bits 9..11, and NX (only when the domain runs with EFER.NXE). PAT
//!   (bit 7) and bits 52..62 are refused.
//! - In L2/L3/L4 entries: P, RW, US, PWT, PCD, A, software bits 9..11, NX. PS is
//!   refused: no superpages (a 2 MiB or 1 GiB page would map 512 or 262144 frames
//!   with one entry, none of them typed). D and G (ignored by the CPU there) are
//!   refused, so that every bit the hypervisor accepts has one meaning.
//!
//! Every refusal is an [`MmError`], which the hypercall layer reports as
//! `-EINVAL` (Xen's code for the same refusals).

pub mod access_fault;
pub mod emulate;
pub mod entry;
mod error;
mod flush;
pub mod frame_table;
pub mod guest_mem;
pub mod job;
mod pin;
pub mod read_cache;
mod types;
mod update;
pub mod validate;
pub mod walk;

pub use error::MmError;
pub use flush::{flush_for, Flush};
pub use types::{Mm, MAX_REF_COUNT, MAX_TYPE_COUNT};
pub use update::LastTable;
pub use validate::{allowed_flags, check_entry};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_job;
#[cfg(test)]
mod tests_smp;
