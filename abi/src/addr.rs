//! Address types that say what an address is.
//!
//! Keel guests use direct paging: their page tables hold *machine* frame numbers,
//! and the guest keeps its own pseudo-physical numbering (PFNs) through the frame
//! list in [`crate::start_info::StartInfo::mfn_list`]. Mixing the two is the classic
//! PV bug, so neither is ever a bare `u64` in Keel code.
//!
//! Bare-metal difference: on bare metal a kernel's page tables hold physical
//! addresses it discovers from firmware; a Keel guest's hold *machine* frames the
//! hypervisor lists for it, no frame it does not own, and only 4 KiB pages
//! (reference: `docs/abi/start_info.md`).

use crate::layout::{keel, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Addr, since: AbiVersion::V0_1;
    /// log2 of the page size.
    PAGE_SHIFT: u32 = 12 => keel();
    /// The only page size Keel guests may map (superpages are rejected; see
    /// `docs/abi/start_info.md`). Same as bare-metal x86's base page and as
    /// `XENVER_pagesize` reports.
    PAGE_SIZE: u64 = 1 << PAGE_SHIFT => keel();
}

macro_rules! frame_number {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[repr(transparent)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl $name {
            /// The frame number as a raw integer (for encoding into an ABI field).
            pub const fn raw(self) -> u64 {
                self.0
            }
            /// The frame `n` frames after this one.
            pub const fn add(self, n: u64) -> Self {
                Self(self.0 + n)
            }
        }
    };
}

frame_number!(
    /// A machine frame number: what the CPU's page walk and Keel's page tables use.
    Mfn
);
frame_number!(
    /// A guest pseudo-physical frame number: the guest's own dense numbering of its frames.
    Pfn
);

/// A machine (host-physical) byte address.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MachineAddr(pub u64);

impl MachineAddr {
    /// The frame this address lies in.
    pub const fn frame(self) -> Mfn {
        Mfn(self.0 >> PAGE_SHIFT)
    }
    /// The byte offset within its frame.
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
}

impl Mfn {
    /// The machine address of the first byte of this frame.
    pub const fn addr(self) -> MachineAddr {
        MachineAddr(self.0 << PAGE_SHIFT)
    }
}

/// A guest virtual address: meaningful only through a guest's page tables.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestVirt(pub u64);

impl GuestVirt {
    /// Whether bits 63..47 are all equal (4-level paging), as the CPU requires.
    pub const fn is_canonical(self) -> bool {
        let top = (self.0 as i64) >> 47;
        top == 0 || top == -1
    }
    /// The byte offset within its page.
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
    /// This address plus `n` bytes, or `None` on overflow.
    pub const fn checked_add(self, n: u64) -> Option<Self> {
        match self.0.checked_add(n) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }
    /// The page-table index at `level` (1 = L1 .. 4 = L4).
    pub const fn table_index(self, level: u32) -> usize {
        ((self.0 >> (PAGE_SHIFT + 9 * (level - 1))) & 0x1ff) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical() {
        assert!(GuestVirt(0).is_canonical());
        assert!(GuestVirt(0x0000_7fff_ffff_ffff).is_canonical());
        assert!(!GuestVirt(0x0000_8000_0000_0000).is_canonical());
        assert!(GuestVirt(0xffff_8000_0000_0000).is_canonical());
        assert!(!GuestVirt(0xfff7_0000_0000_0000).is_canonical());
    }

    #[test]
    fn indices() {
        let va = GuestVirt(0xffff_8000_0040_3123);
        assert_eq!(va.table_index(4), 256);
        assert_eq!(va.table_index(3), 0);
        assert_eq!(va.table_index(2), 2);
        assert_eq!(va.table_index(1), 3);
        assert_eq!(va.page_offset(), 0x123);
        assert_eq!(MachineAddr(0x12345).frame(), Mfn(0x12));
        assert_eq!(Mfn(0x12).addr(), MachineAddr(0x12000));
    }
}
