//! Grant tables, version 1 (`grant_table_op`, hypercall 20):
//! `xen/include/public/grant_table.h`.
//!
//! **ABI 1.1.** Every item here is new in 1.1 (compared with Xen's headers,
//! documented in `docs/abi/grant.md`); a 1.1 hypervisor serves `grant_table_op`
//! to images that know 1.1 (`AbiVersion::served_to`) and answers `-ENOSYS` to
//! older ones, as their versions promise.
//!
//! A domain shares one of its frames with another by writing a *grant entry*
//! ([`GrantEntryV1`]) in its grant table: the frame, the domain allowed to use
//! it, and [`GTF_PERMIT_ACCESS`] (plus [`GTF_READONLY`]). The grantee names the
//! grant by `(granting domain, grant reference)`, the reference being the
//! entry's index, and maps it (`GNTTABOP_map_grant_ref`) or copies through it
//! (`GNTTABOP_copy`). While the grant is in use the hypervisor sets
//! [`GTF_READING`] / [`GTF_WRITING`] in the entry, so that the granter can tell
//! when revoking is complete. Per-operation results are `GNTST_*` codes in the
//! argument's `status` field; the hypercall itself returns 0 or a negative errno
//! for a problem with the batch as a whole.
//!
//! Bare-metal difference: bare metal shares memory between address spaces by
//! mapping the same physical page; under Keel's direct paging a domain may map
//! only frames it owns, and a grant is the one way to reach another domain's frame.

use crate::event::{rd16, rd32, rd64, wr, Pod};
use crate::layout::{keel, xen, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Grant, since: AbiVersion::V1_1;
    /// `GNTTABOP_map_grant_ref`: map a grant of another domain; [`GnttabMapGrantRef`].
    GNTTABOP_MAP_GRANT_REF: u64 = 0 => xen("GNTTABOP_map_grant_ref");
    /// `GNTTABOP_unmap_grant_ref`: undo a map by its handle; [`GnttabUnmapGrantRef`].
    GNTTABOP_UNMAP_GRANT_REF: u64 = 1 => xen("GNTTABOP_unmap_grant_ref");
    /// `GNTTABOP_setup_table`: size the caller's grant table and list its frames; [`GnttabSetupTable`].
    GNTTABOP_SETUP_TABLE: u64 = 2 => xen("GNTTABOP_setup_table");
    /// `GNTTABOP_copy`: copy bytes between frames named by grant or by own frame; [`GnttabCopy`].
    GNTTABOP_COPY: u64 = 5 => xen("GNTTABOP_copy");
    /// `GNTTABOP_query_size`: the table's current and maximum size in frames; [`GnttabQuerySize`].
    GNTTABOP_QUERY_SIZE: u64 = 6 => xen("GNTTABOP_query_size");
    /// Entry type: the entry is not a grant.
    GTF_INVALID: u16 = 0 => xen("GTF_invalid");
    /// Entry type: `domid` may map or copy `frame`.
    GTF_PERMIT_ACCESS: u16 = 1 => xen("GTF_permit_access");
    /// The two bits of the entry type.
    GTF_TYPE_MASK: u16 = 3 => xen("GTF_type_mask");
    /// The grantee may only read the frame.
    GTF_READONLY: u16 = 1 << 2 => xen("GTF_readonly");
    /// Set by the hypervisor while the grant is mapped or copied from.
    GTF_READING: u16 = 1 << 3 => xen("GTF_reading");
    /// Set by the hypervisor while the grant is mapped writable or copied to.
    GTF_WRITING: u16 = 1 << 4 => xen("GTF_writing");
    /// Map flag: give the caller a page-table mapping at `host_addr` (required).
    GNTMAP_HOST_MAP: u32 = 1 << 1 => xen("GNTMAP_host_map");
    /// Map flag: map read-only (required when the grant is `GTF_READONLY`).
    GNTMAP_READONLY: u32 = 1 << 2 => xen("GNTMAP_readonly");
    /// Map flags bits 16..=31 are the guest's own and ignored.
    GNTMAP_GUEST_AVAIL_MASK: u32 = 0xffff_0000 => xen("GNTMAP_guest_avail_mask");
    /// Copy flag: `source.u` is a grant reference of `source.domid` (else the caller's own frame).
    GNTCOPY_SOURCE_GREF: u16 = 1 => xen("GNTCOPY_source_gref");
    /// Copy flag: `dest.u` is a grant reference of `dest.domid` (else the caller's own frame).
    GNTCOPY_DEST_GREF: u16 = 2 => xen("GNTCOPY_dest_gref");
    /// The grant-table frames a Keel domain may have (`max_nr_frames`); 512
    /// entries of 8 bytes each.
    KEEL_GNTTAB_MAX_FRAMES: u32 = 4 => keel();
    /// The grant mappings one domain may hold at once (its maptrack table);
    /// one more is `GNTST_no_device_space`.
    KEEL_MAPTRACK_ENTRIES: u32 = 1024 => keel();
    /// The operations one `grant_table_op` call may carry; more is `-EINVAL`
    /// (the hypercall is preemptible: the budget is per exit, not per call).
    KEEL_GNTTAB_BATCH_MAX: u32 = 512 => keel();
}

abi_consts! {
    family: Family::Grant, since: AbiVersion::V1_1, list: STATUS_CONSTS;
    /// `GNTST_okay`: done.
    GNTST_OKAY: i16 = 0 => @signed xen("GNTST_okay");
    /// `GNTST_general_error`: a flag the operation does not accept, an entry that
    /// does not grant the caller this access (or kept changing), a page-table frame.
    GNTST_GENERAL_ERROR: i16 = -1 => @signed xen("GNTST_general_error");
    /// `GNTST_bad_domain`: no such domain, or the caller itself where another is needed.
    GNTST_BAD_DOMAIN: i16 = -2 => @signed xen("GNTST_bad_domain");
    /// `GNTST_bad_gntref`: the reference is beyond the table (and, as Xen, a map
    /// without `GNTMAP_host_map`).
    GNTST_BAD_GNTREF: i16 = -3 => @signed xen("GNTST_bad_gntref");
    /// `GNTST_bad_handle`: no mapping of the caller has this handle.
    GNTST_BAD_HANDLE: i16 = -4 => @signed xen("GNTST_bad_handle");
    /// `GNTST_bad_virt_addr`: `host_addr` is not a page-aligned address the caller may map there.
    GNTST_BAD_VIRT_ADDR: i16 = -5 => @signed xen("GNTST_bad_virt_addr");
    /// `GNTST_bad_dev_addr` (Keel: no device mappings, never returned).
    GNTST_BAD_DEV_ADDR: i16 = -6 => @signed xen("GNTST_bad_dev_addr");
    /// `GNTST_no_device_space`: the caller's maptrack table is full (Xen's answer).
    GNTST_NO_DEVICE_SPACE: i16 = -7 => @signed xen("GNTST_no_device_space");
    /// `GNTST_permission_denied`: another domain's table, or another domain's
    /// frame named without a grant in a copy.
    GNTST_PERMISSION_DENIED: i16 = -8 => @signed xen("GNTST_permission_denied");
    /// `GNTST_bad_page`: the frame is not its domain's.
    GNTST_BAD_PAGE: i16 = -9 => @signed xen("GNTST_bad_page");
    /// `GNTST_bad_copy_arg`: a copy that crosses a page boundary.
    GNTST_BAD_COPY_ARG: i16 = -10 => @signed xen("GNTST_bad_copy_arg");
    /// `GNTST_address_too_big` (Keel: no transfers, never returned).
    GNTST_ADDRESS_TOO_BIG: i16 = -11 => @signed xen("GNTST_address_too_big");
    /// `GNTST_eagain` (Keel: never returned; an entry that keeps changing is
    /// `GNTST_general_error`, as Xen).
    GNTST_EAGAIN: i16 = -12 => @signed xen("GNTST_eagain");
    /// `GNTST_no_space` (Keel: never returned; a full maptrack table is
    /// `GNTST_no_device_space`, as Xen).
    GNTST_NO_SPACE: i16 = -13 => @signed xen("GNTST_no_space");
}

/// A grant reference: an index into a domain's grant table.
pub type GrantRef = u32;
/// A grant handle: an index into the mapping domain's maptrack table.
pub type GrantHandle = u32;

/// The number of [`GrantEntryV1`] in one grant-table frame.
pub const fn entries_per_frame() -> u32 {
    (crate::addr::PAGE_SIZE / core::mem::size_of::<GrantEntryV1>() as u64) as u32
}

bitflags::bitflags! {
    /// The `flags` word of a grant entry (`GTF_*`), as the hypervisor reads it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GrantFlags: u16 {
        /// [`GTF_PERMIT_ACCESS`] (one value of the two-bit type field).
        const PERMIT_ACCESS = GTF_PERMIT_ACCESS;
        /// The other bit of the type field (with `PERMIT_ACCESS`: transitive;
        /// alone: accept_transfer). Keel grants neither.
        const TYPE_HIGH = GTF_TYPE_MASK & !GTF_PERMIT_ACCESS;
        /// [`GTF_READONLY`].
        const READONLY = GTF_READONLY;
        /// [`GTF_READING`].
        const READING = GTF_READING;
        /// [`GTF_WRITING`].
        const WRITING = GTF_WRITING;
        // Bits the granter may set that Keel ignores (PWT, PCD, PAT, sub_page).
        const _ = !0;
    }
}

impl GrantFlags {
    /// The two-bit entry type (`GTF_invalid`, `GTF_permit_access`, ...).
    pub const fn entry_type(self) -> u16 {
        self.bits() & GTF_TYPE_MASK
    }
}

bitflags::bitflags! {
    /// The `flags` of `gnttab_map_grant_ref` (`GNTMAP_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct MapFlags: u32 {
        /// [`GNTMAP_HOST_MAP`].
        const HOST_MAP = GNTMAP_HOST_MAP;
        /// [`GNTMAP_READONLY`].
        const READONLY = GNTMAP_READONLY;
        // Every other bit is recognised: the hypervisor refuses Xen's other
        // GNTMAP_* bits and ignores the guest's own (GNTMAP_GUEST_AVAIL_MASK).
        const _ = !0;
    }
}

bitflags::bitflags! {
    /// The `flags` of `gnttab_copy` (`GNTCOPY_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct CopyFlags: u16 {
        /// [`GNTCOPY_SOURCE_GREF`].
        const SOURCE_GREF = GNTCOPY_SOURCE_GREF;
        /// [`GNTCOPY_DEST_GREF`].
        const DEST_GREF = GNTCOPY_DEST_GREF;
        const _ = !0;
    }
}

/// `struct grant_entry_v1`: one entry of a version-1 grant table, written by
/// the granting domain (`flags` also by the hypervisor, atomically).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*`.
    pub flags: u16,
    /// The domain granted access.
    pub domid: u16,
    /// The granted frame (a machine frame number under direct paging).
    pub frame: u32,
}

/// `struct gnttab_setup_table`: `dom` and `nr_frames` in; `status` and the
/// frame list out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetupTable {
    /// `DOMID_SELF` or the caller's id.
    pub dom: u16,
    /// The number of table frames wanted (1 ..= `KEEL_GNTTAB_MAX_FRAMES`).
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// A guest-virtual pointer to `nr_frames` 64-bit words, written with the
    /// table's frames (`XEN_GUEST_HANDLE(xen_pfn_t)`).
    pub frame_list: u64,
}

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    /// `DOMID_SELF` or the caller's id.
    pub dom: u16,
    /// OUT: the table's current size in frames.
    pub nr_frames: u32,
    /// OUT: the largest size `setup_table` accepts.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// The page-aligned guest-virtual address to map the frame at.
    pub host_addr: u64,
    /// `GNTMAP_*`.
    pub flags: u32,
    /// The grant reference in `dom`'s table.
    pub gref: GrantRef,
    /// The granting domain.
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: the handle that unmaps it.
    pub handle: GrantHandle,
    /// OUT: the device address (Keel: always 0, no device mappings).
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// The address the grant is mapped at (must be the handle's).
    pub host_addr: u64,
    /// Ignored (no device mappings).
    pub dev_bus_addr: u64,
    /// The handle `map_grant_ref` returned.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_copy_ptr`: one end of a copy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopyPtr {
    /// The union `u`: a grant reference (`ref`, the low 32 bits) when the
    /// `GNTCOPY_*_gref` flag of this end is set, else the caller's own frame
    /// (`gmfn`).
    pub u: u64,
    /// The domain (`DOMID_SELF` for the caller's own frame).
    pub domid: u16,
    /// The byte offset in the frame.
    pub offset: u16,
}

/// `struct gnttab_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopy {
    /// Where the bytes come from.
    pub source: GnttabCopyPtr,
    /// Where they go.
    pub dest: GnttabCopyPtr,
    /// How many bytes (`offset + len` must stay inside each page).
    pub len: u16,
    /// `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

impl GnttabCopyPtr {
    /// One end of a copy: `u` (a frame, or a grant reference when that end's
    /// `GNTCOPY_*_gref` flag is set) of domain `domid`, at byte `offset`.
    pub const fn new(u: u64, domid: u16, offset: u16) -> Self {
        GnttabCopyPtr { u, domid, offset }
    }
}

impl GnttabCopy {
    /// A copy of `len` bytes from `source` to `dest` with `flags`. Its status
    /// starts at 1, which no `GNTST_*` is, so a status the hypervisor never
    /// wrote shows as such.
    pub const fn new(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16) -> Self {
        GnttabCopy {
            source,
            dest,
            len,
            flags,
            status: 1,
        }
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<GrantEntryV1>() == 8 && offset_of!(GrantEntryV1, frame) == 4);
    assert!(size_of::<GnttabSetupTable>() == 24 && offset_of!(GnttabSetupTable, frame_list) == 16);
    assert!(size_of::<GnttabQuerySize>() == 16 && offset_of!(GnttabQuerySize, status) == 12);
    assert!(size_of::<GnttabMapGrantRef>() == 32 && offset_of!(GnttabMapGrantRef, handle) == 20);
    assert!(
        size_of::<GnttabUnmapGrantRef>() == 24 && offset_of!(GnttabUnmapGrantRef, status) == 20
    );
    assert!(size_of::<GnttabCopyPtr>() == 16 && offset_of!(GnttabCopyPtr, offset) == 10);
    assert!(size_of::<GnttabCopy>() == 40 && offset_of!(GnttabCopy, status) == 36);
};

impl Pod for GrantEntryV1 {
    const SIZE: usize = 8;
    fn decode(b: &[u8]) -> Self {
        Self {
            flags: rd16(b, 0),
            domid: rd16(b, 2),
            frame: rd32(b, 4),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.flags.to_le_bytes());
        wr(o, 2, &self.domid.to_le_bytes());
        wr(o, 4, &self.frame.to_le_bytes());
    }
}

impl Pod for GnttabSetupTable {
    const SIZE: usize = 24;
    fn decode(b: &[u8]) -> Self {
        Self {
            dom: rd16(b, 0),
            nr_frames: rd32(b, 4),
            status: rd16(b, 8) as i16,
            frame_list: rd64(b, 16),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.dom.to_le_bytes());
        wr(o, 2, &[0, 0]);
        wr(o, 4, &self.nr_frames.to_le_bytes());
        wr(o, 8, &self.status.to_le_bytes());
        wr(o, 10, &[0; 6]);
        wr(o, 16, &self.frame_list.to_le_bytes());
    }
}

impl Pod for GnttabQuerySize {
    const SIZE: usize = 16;
    fn decode(b: &[u8]) -> Self {
        Self {
            dom: rd16(b, 0),
            nr_frames: rd32(b, 4),
            max_nr_frames: rd32(b, 8),
            status: rd16(b, 12) as i16,
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.dom.to_le_bytes());
        wr(o, 2, &[0, 0]);
        wr(o, 4, &self.nr_frames.to_le_bytes());
        wr(o, 8, &self.max_nr_frames.to_le_bytes());
        wr(o, 12, &self.status.to_le_bytes());
        wr(o, 14, &[0, 0]);
    }
}

impl Pod for GnttabMapGrantRef {
    const SIZE: usize = 32;
    fn decode(b: &[u8]) -> Self {
        Self {
            host_addr: rd64(b, 0),
            flags: rd32(b, 8),
            gref: rd32(b, 12),
            dom: rd16(b, 16),
            status: rd16(b, 18) as i16,
            handle: rd32(b, 20),
            dev_bus_addr: rd64(b, 24),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.host_addr.to_le_bytes());
        wr(o, 8, &self.flags.to_le_bytes());
        wr(o, 12, &self.gref.to_le_bytes());
        wr(o, 16, &self.dom.to_le_bytes());
        wr(o, 18, &self.status.to_le_bytes());
        wr(o, 20, &self.handle.to_le_bytes());
        wr(o, 24, &self.dev_bus_addr.to_le_bytes());
    }
}

impl Pod for GnttabUnmapGrantRef {
    const SIZE: usize = 24;
    fn decode(b: &[u8]) -> Self {
        Self {
            host_addr: rd64(b, 0),
            dev_bus_addr: rd64(b, 8),
            handle: rd32(b, 16),
            status: rd16(b, 20) as i16,
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.host_addr.to_le_bytes());
        wr(o, 8, &self.dev_bus_addr.to_le_bytes());
        wr(o, 16, &self.handle.to_le_bytes());
        wr(o, 20, &self.status.to_le_bytes());
        wr(o, 22, &[0, 0]);
    }
}

impl Pod for GnttabCopyPtr {
    const SIZE: usize = 16;
    fn decode(b: &[u8]) -> Self {
        Self {
            u: rd64(b, 0),
            domid: rd16(b, 8),
            offset: rd16(b, 10),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.u.to_le_bytes());
        wr(o, 8, &self.domid.to_le_bytes());
        wr(o, 10, &self.offset.to_le_bytes());
        wr(o, 12, &[0; 4]);
    }
}

impl Pod for GnttabCopy {
    const SIZE: usize = 40;
    fn decode(b: &[u8]) -> Self {
        Self {
            source: GnttabCopyPtr::decode(b.get(0..16).unwrap_or(&[])),
            dest: GnttabCopyPtr::decode(b.get(16..32).unwrap_or(&[])),
            len: rd16(b, 32),
            flags: rd16(b, 34),
            status: rd16(b, 36) as i16,
        }
    }
    fn encode(&self, o: &mut [u8]) {
        if let Some(s) = o.get_mut(0..16) {
            self.source.encode(s);
        }
        if let Some(s) = o.get_mut(16..32) {
            self.dest.encode(s);
        }
        wr(o, 32, &self.len.to_le_bytes());
        wr(o, 34, &self.flags.to_le_bytes());
        wr(o, 36, &self.status.to_le_bytes());
        wr(o, 38, &[0, 0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_name_xens_bits() {
        let f = GrantFlags::from_bits_retain(GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING);
        assert_eq!(f.entry_type(), GTF_PERMIT_ACCESS);
        assert!(f.contains(GrantFlags::READONLY | GrantFlags::READING));
        assert!(!f.contains(GrantFlags::WRITING));
        assert_eq!(GrantFlags::TYPE_HIGH.bits(), 2);
        assert_eq!(entries_per_frame(), 512);
    }

    #[test]
    fn round_trips() {
        let c = GnttabCopy {
            source: GnttabCopyPtr {
                u: 7,
                domid: 1,
                offset: 0x10,
            },
            dest: GnttabCopyPtr {
                u: 0x1234,
                domid: crate::event::DOMID_SELF,
                offset: 0,
            },
            len: 64,
            flags: GNTCOPY_SOURCE_GREF,
            status: GNTST_BAD_COPY_ARG,
        };
        let mut b = [0u8; 40];
        c.encode(&mut b);
        assert_eq!(GnttabCopy::decode(&b), c);
        assert_eq!(&b[36..38], &(-10i16).to_le_bytes());
        let m = GnttabMapGrantRef {
            host_addr: 0x40_0000,
            flags: GNTMAP_HOST_MAP | GNTMAP_READONLY,
            gref: 9,
            dom: 2,
            status: GNTST_OKAY,
            handle: 3,
            dev_bus_addr: 0,
        };
        let mut b = [0u8; 32];
        m.encode(&mut b);
        assert_eq!(GnttabMapGrantRef::decode(&b), m);
    }
}
