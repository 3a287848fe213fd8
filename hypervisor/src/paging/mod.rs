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
//! ## Several CPUs
//!
//! Two CPUs may take and drop references and types on one frame at once: a
//! grant map from domain A (on CPU 0) of a frame of domain B while B (on CPU
//! 1) pins or unpins it, or two vCPUs of one domain. Xen's model is kept:
//!
//! - **Atomic words.** A frame's accounting is two 64-bit words of its P2M
//!   entry ([`frame_table`]): the type word (type, pinned, validated, type
//!   count) and the reference count. Every change is a compare-and-exchange
//!   loop ([`FrameTable::update_type`](frame_table::FrameTable::update_type),
//!   [`update_refs`](frame_table::FrameTable::update_refs); a locked `CMPXCHG`
//!   through [`PhysMem::cmpxchg_u64`](crate::mem::PhysMem::cmpxchg_u64)): the
//!   rule sees the word, decides, and the exchange stores its decision only if
//!   the word is still the one it decided on; otherwise it decides again on
//!   the new word. A refusal stores nothing. So the decision and the change
//!   are one step: taking a type (count it, or change the type while the
//!   count is zero: `take_type`), dropping one (count it down, or claim the
//!   last reference of a validated table: `put_type_or_claim`), the pin bit
//!   (test and set, test and clear), the reference count (with its overflow
//!   check). Reads outside an exchange are hints: a stale one makes the
//!   exchange fail and the rule decide again.
//! - **Two words, no lock between them.** No rule needs both words in one
//!   step: the only invariant across them, "a type reference comes with a
//!   plain reference", is kept by order (the plain reference is taken before
//!   the type reference and dropped after it), as Xen's `get_page_and_type`.
//! - **Validation has one owner.** The exchange that moves a table type's
//!   count from zero to one stores it *not validated*; exactly one CPU's
//!   exchange does that, and only that CPU validates the table (in its own
//!   [`Job`](job::Job), stopped and resumed by that domain's hypercalls only),
//!   and sets the validated bit at the end. Devalidation likewise: the last
//!   type reference of a validated table is not dropped but claimed (the
//!   validated bit cleared, the count left at one) in one exchange, and only
//!   the claiming CPU devalidates and finally stores count zero (Xen's
//!   `PGT_validated` cleared before `free_page_type`, `PGT_partial` for the
//!   piece in progress). Anyone else asking for that table type meanwhile is
//!   refused ([`MmError::Recursive`], `-EINVAL`), changing nothing: Xen waits
//!   for the other CPU instead, but the other CPU's job may be preempted and
//!   go on only when its vCPU next runs, so a wait could last as long as the
//!   scheduler lets it, or for ever if both vCPUs share one CPU. Only vCPUs of
//!   one domain can meet this way (another domain's grant asks for a writable
//!   type or a plain reference, which never waits on validation: a table
//!   refuses it as a type conflict, as on one CPU), and a guest racing itself
//!   on one of its own tables gets an error back, not a hang.
//! - **What stays serialised.** The *contents* of a domain's page tables and
//!   its one [`Job`](job::Job): an update reads the old entry, writes the
//!   new one and moves both entries' counts, and a job walks a table while
//!   it changes the counts below. These belong to the domain, and only the
//!   CPU that holds the domain exclusively (today `&mut Domain` on the CPU
//!   that runs it; with several vCPUs, the domain's MMU lock, held for one
//!   piece of an `mmu_update`, `mmuext_op` or emulated PTE write) changes
//!   them. Other domains never touch them: a grant takes and drops only
//!   counts. The frame table's layout (P2M, M2P, the dense index) does not
//!   change after the domain is built.
//!
//! Host tests: `tests_smp.rs` (threads racing every kind of reference on a
//! few shared frames, and a property test over step-by-step interleavings).
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
