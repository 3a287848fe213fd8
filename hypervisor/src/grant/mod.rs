//! # Grant tables, version 1: the policy
//!
//! A domain shares one of its frames with another by writing a grant entry
//! (`keel_abi::grant_table::GrantEntryV1`) in its grant table; the grantee
//! names it by `(granter, reference)` and maps it into its own page tables
//! (`GNTTABOP_map_grant_ref`), or copies through it (`GNTTABOP_copy`). Under
//! direct paging the grantee's page-table entry holds the granter's machine
//! frame, so the page-type and reference accounting spans domains: every
//! mapping holds a reference on the frame *and a writable type reference*, which
//! is what keeps these promises:
//!
//! - a granted frame never becomes a page table of either domain while it is
//!   mapped (its type is writable, and a type changes only at count zero);
//! - a page-table frame is never granted (taking the writable type fails), not
//!   even read-only: Keel takes the type reference for read-only mappings too,
//!   where Xen takes none;
//! - a frame outlives its owner while another domain maps it: the reference is
//!   dropped only by the unmap (or the mapper's teardown), and the frame goes
//!   back to the allocator then;
//! - a reference in use cannot be reused: while a reference is mapped, the
//!   hypervisor keeps the frame it mapped ([`table::Active`]) and refuses a map
//!   whose entry no longer grants that frame to that domain; a revoked entry
//!   (`GTF_permit_access` cleared) is refused on every new map and copy, pinned
//!   or not (Xen checks the entry only for the first pin);
//! - an unmapped grant leaves no stale TLB entry: a batch of unmaps removes the
//!   page-table entries, flushes the mapper's TLB once, and only then drops the
//!   frame references ([`ops::unmap_grant_refs`]).
//!
//! The granter learns when its grant is in use from `GTF_reading` and
//! `GTF_writing`, which the hypervisor sets with a bounded compare-and-exchange
//! on the entry's first word while the grant is mapped or copied through
//! ([`entry`]): a granter that revokes with its own compare-and-exchange (the
//! Linux protocol) cannot lose that race.
//!
//! Everything here is plain safe Rust over one trait, [`GrantWorld`]: the frame
//! accounting, the mapper's page tables, the TLB and the shared table frames
//! belong to the paging code, which implements it. Per-domain state
//! ([`GrantState`]) is fixed-size (no heap): the active entries of the domain's
//! own table and the maptrack table of the mappings it holds.

pub mod batch;
pub mod entry;
pub mod ops;
pub mod table;
pub mod world;

#[cfg(test)]
mod tests;

use crate::addr::{GuestVirt, Mfn};
use crate::domain::DomainId;
use keel_abi::grant_table as abi;

pub use table::{GrantState, GrantTable, Maptrack};

use keel_abi::grant_table::{KEEL_GNTTAB_MAX_FRAMES, KEEL_MAPTRACK_ENTRIES};

/// One domain's grant state at Keel's sizes (`KEEL_GNTTAB_MAX_FRAMES` table
/// frames, `KEEL_MAPTRACK_ENTRIES` mappings).
pub type DomainGrants =
    GrantState<{ KEEL_GNTTAB_MAX_FRAMES as usize }, { KEEL_MAPTRACK_ENTRIES as usize }>;

/// Domain ids with grant state: `0 .. MAX_DOMAINS` (a domain with a higher id
/// gets `GNTST_bad_domain` from every operation).
pub const MAX_DOMAINS: usize = 8;

/// Every domain's grant state, indexed by domain id, behind one lock (the
/// policy works on all of them at once: a map touches the granter's table and
/// the mapper's maptrack). Fixed size, no heap.
pub type Store = spin::Mutex<[DomainGrants; MAX_DOMAINS]>;

/// An empty store.
pub const fn new_store() -> Store {
    spin::Mutex::new([const { DomainGrants::new() }; MAX_DOMAINS])
}

/// The hypervisor's store (the host tests make their own).
pub static STORE: Store = new_store();

/// The result of one grant operation (`GNTST_*`), written to its `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum GrantStatus {
    /// `GNTST_okay`.
    Okay = abi::GNTST_OKAY,
    /// `GNTST_general_error`.
    GeneralError = abi::GNTST_GENERAL_ERROR,
    /// `GNTST_bad_domain`.
    BadDomain = abi::GNTST_BAD_DOMAIN,
    /// `GNTST_bad_gntref`.
    BadGntref = abi::GNTST_BAD_GNTREF,
    /// `GNTST_bad_handle`.
    BadHandle = abi::GNTST_BAD_HANDLE,
    /// `GNTST_bad_virt_addr`.
    BadVirtAddr = abi::GNTST_BAD_VIRT_ADDR,
    /// `GNTST_no_device_space`: Xen's answer when the mapper's maptrack table
    /// is full.
    NoDeviceSpace = abi::GNTST_NO_DEVICE_SPACE,
    /// `GNTST_permission_denied`.
    PermissionDenied = abi::GNTST_PERMISSION_DENIED,
    /// `GNTST_bad_page`.
    BadPage = abi::GNTST_BAD_PAGE,
    /// `GNTST_bad_copy_arg`.
    BadCopyArg = abi::GNTST_BAD_COPY_ARG,
}

impl GrantStatus {
    /// The value written to the guest's `status` field.
    pub const fn code(self) -> i16 {
        self as i16
    }
}

/// Why the frame accounting refused a reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameRefusal {
    /// The frame is not the named owner's (or the owner is gone).
    NotOwned,
    /// The frame has a type that excludes the one asked for (a page table, for
    /// a writable reference).
    WrongType,
}

/// What the grant policy needs from the rest of the hypervisor. Every method
/// is a single bounded step; none may fail silently.
pub trait GrantWorld {
    /// Whether `d` exists and is not being torn down (new grants may name it).
    fn alive(&self, d: DomainId) -> bool;

    /// Take a general reference on `mfn` as a frame of `owner`.
    fn get_page(&mut self, owner: DomainId, mfn: Mfn) -> Result<(), FrameRefusal>;
    /// Drop one. When `owner` is gone and this was the last reference, the
    /// frame goes back to the allocator (Xen's rule for a frame mapped through
    /// a grant while its owner died).
    fn put_page(&mut self, owner: DomainId, mfn: Mfn);
    /// Take a writable type reference on `mfn` (refused for page tables).
    fn get_writable(&mut self, owner: DomainId, mfn: Mfn) -> Result<(), FrameRefusal>;
    /// Drop one.
    fn put_writable(&mut self, owner: DomainId, mfn: Mfn);

    /// Enter `mfn` at `va` in `mapper`'s current page tables (writable or not).
    /// The address must be mapped by an L1 table of the mapper whose entry is
    /// not present: [`GrantStatus::BadVirtAddr`] otherwise.
    fn install_mapping(
        &mut self,
        mapper: DomainId,
        va: GuestVirt,
        mfn: Mfn,
        writable: bool,
    ) -> Result<(), GrantStatus>;
    /// Clear the entry at `va` if it maps `mfn` ([`GrantStatus::GeneralError`]
    /// if it does not). The TLB is flushed separately.
    fn remove_mapping(
        &mut self,
        mapper: DomainId,
        va: GuestVirt,
        mfn: Mfn,
    ) -> Result<(), GrantStatus>;
    /// Flush `mapper`'s TLB on every CPU that may hold its translations.
    fn flush_tlb(&mut self, mapper: DomainId);

    /// A zeroed frame for `d`'s grant table, shared writable with `d` (the
    /// frame accounting charges it to `d`); `None` when memory is short.
    fn alloc_table_frame(&mut self, d: DomainId) -> Option<Mfn>;
    /// Read the 8 bytes at `offset` of table frame `frame`.
    fn read_u64(&self, frame: Mfn, offset: u64) -> u64;
    /// Atomically compare-and-exchange the 32-bit word at `offset` of `frame`;
    /// returns the value found.
    fn cmpxchg_u32(&mut self, frame: Mfn, offset: u64, old: u32, new: u32) -> u32;
    /// Atomically clear `bits` in the 16-bit word at `offset` of `frame`.
    fn clear_bits_u16(&mut self, frame: Mfn, offset: u64, bits: u16);

    /// Copy `len` bytes from `src` at `src_off` to `dst` at `dst_off` (both
    /// ranges inside their frames, checked by the caller).
    fn copy_bytes(&mut self, src: Mfn, src_off: u16, dst: Mfn, dst_off: u16, len: u16);
}
