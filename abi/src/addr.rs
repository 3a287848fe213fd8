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

/// Bits of a machine address: the architectural limit of MAXPHYADDR (Intel SDM
/// Vol. 3A, 4.1.4) and the width of the address field of a page-table entry.
const MACHINE_ADDR_BITS: u32 = 52;
/// Bits of a frame number (machine or pseudo-physical): a machine address's
/// bits without the page offset.
const FRAME_NUMBER_BITS: u32 = MACHINE_ADDR_BITS - PAGE_SHIFT;

/// Why a guest-supplied integer is not an address of the kind asked for. The
/// hypervisor turns it into the `Errno` Xen returns at that place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrError {
    /// A frame number of 40 bits bits or more.
    FrameOutOfRange(u64),
    /// A machine address of 52 bits bits or more.
    MachineOutOfRange(u64),
    /// A virtual address whose bits 63..47 are not all equal.
    NonCanonical(u64),
}

impl core::fmt::Display for AddrError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::FrameOutOfRange(v) => {
                write!(f, "frame number {v:#x} wider than {FRAME_NUMBER_BITS} bits")
            }
            Self::MachineOutOfRange(v) => {
                write!(
                    f,
                    "machine address {v:#x} wider than {MACHINE_ADDR_BITS} bits"
                )
            }
            Self::NonCanonical(v) => write!(f, "virtual address {v:#x} is not canonical"),
        }
    }
}

macro_rules! frame_number {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        ///
        /// The field is private: a number a guest supplied becomes one through
        /// [`Self::from_guest`] (checked against 40 bits); constants
        /// and numbers the hypervisor computed from frames it already holds use
        /// [`Self::new`].
        #[repr(transparent)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u64);

        impl $name {
            /// One past the largest frame number.
            pub const LIMIT: u64 = 1 << FRAME_NUMBER_BITS;

            /// A frame number the caller knows to be in range: a constant, or
            /// one computed from a frame, a table entry's address field or a
            /// checked number. Not checked: these conversions sit on hot paths,
            /// and ABI layouts (start info, golden fixtures) carry raw fields.
            #[inline(always)]
            pub const fn new(n: u64) -> Self {
                Self(n)
            }
            /// A frame number a guest supplied, refused if it cannot name a frame.
            #[inline(always)]
            pub const fn from_guest(n: u64) -> Result<Self, AddrError> {
                if n < Self::LIMIT {
                    Ok(Self(n))
                } else {
                    Err(AddrError::FrameOutOfRange(n))
                }
            }
            /// The frame number as a raw integer (for encoding into an ABI field).
            #[inline(always)]
            pub const fn get(self) -> u64 {
                self.0
            }
            /// The frame `n` frames after this one.
            #[inline(always)]
            pub const fn add(self, n: u64) -> Self {
                Self::new(self.0 + n)
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

/// A machine (host-physical) byte address, below 2^52 bits.
///
/// The field is private: a guest-supplied address goes through
/// [`Self::from_guest`]; addresses computed from frames use [`Self::new`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MachineAddr(u64);

impl MachineAddr {
    /// One past the largest machine address.
    pub const LIMIT: u64 = 1 << MACHINE_ADDR_BITS;

    /// An address the caller knows to be in range (a constant, or one computed
    /// from a frame plus an offset within it, or a raw ABI field). Not checked.
    #[inline(always)]
    pub const fn new(a: u64) -> Self {
        Self(a)
    }
    /// An address a guest supplied, refused if no machine address is that wide.
    #[inline(always)]
    pub const fn from_guest(a: u64) -> Result<Self, AddrError> {
        if a < Self::LIMIT {
            Ok(Self(a))
        } else {
            Err(AddrError::MachineOutOfRange(a))
        }
    }
    /// The address as a raw integer.
    #[inline(always)]
    pub const fn get(self) -> u64 {
        self.0
    }
    /// The frame this address lies in.
    #[inline(always)]
    pub const fn frame(self) -> Mfn {
        Mfn(self.0 >> PAGE_SHIFT)
    }
    /// The byte offset within its frame.
    #[inline(always)]
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
    /// This address plus `n` bytes (the caller keeps it within the frame or
    /// the region it was computed from).
    #[inline(always)]
    pub const fn offset(self, n: u64) -> Self {
        Self::new(self.0 + n)
    }
}

impl Mfn {
    /// The machine address of the first byte of this frame.
    #[inline(always)]
    pub const fn addr(self) -> MachineAddr {
        MachineAddr(self.0 << PAGE_SHIFT)
    }
}

/// A guest virtual address: meaningful only through a guest's page tables.
///
/// Any 64-bit value is representable, because the CPU accepts any value in a
/// register and a fault report must name the non-canonical address an access
/// reached. A pointer a guest passes to a hypercall goes through
/// [`Self::from_guest`], which refuses a non-canonical one; the page walk checks
/// again for addresses computed by adding lengths.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestVirt(u64);

impl GuestVirt {
    /// The address `v`, canonical or not (constants, register values the
    /// hardware reported, and sums the walk checks).
    #[inline(always)]
    pub const fn new(v: u64) -> Self {
        Self(v)
    }
    /// A pointer a guest supplied, refused unless canonical.
    #[inline(always)]
    pub const fn from_guest(v: u64) -> Result<Self, AddrError> {
        if Self(v).is_canonical() {
            Ok(Self(v))
        } else {
            Err(AddrError::NonCanonical(v))
        }
    }
    /// The address as a raw integer.
    #[inline(always)]
    pub const fn get(self) -> u64 {
        self.0
    }
    /// Whether bits 63..47 are all equal (4-level paging), as the CPU requires.
    #[inline(always)]
    pub const fn is_canonical(self) -> bool {
        let top = (self.0 as i64) >> 47;
        top == 0 || top == -1
    }
    /// The byte offset within its page.
    #[inline(always)]
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
    /// This address plus `n` bytes, or `None` on overflow.
    #[inline(always)]
    pub const fn checked_add(self, n: u64) -> Option<Self> {
        match self.0.checked_add(n) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }
    /// This address plus `n` bytes, wrapping at 2^64 (the result may be
    /// non-canonical; the walk refuses it then).
    #[inline(always)]
    pub const fn wrapping_add(self, n: u64) -> Self {
        Self(self.0.wrapping_add(n))
    }
    /// The page-table index at `level` (1 = L1 .. 4 = L4).
    #[inline(always)]
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
    }

    #[test]
    fn checked_constructors() {
        assert_eq!(Mfn::from_guest(Mfn::LIMIT - 1), Ok(Mfn(Mfn::LIMIT - 1)));
        assert_eq!(
            Mfn::from_guest(Mfn::LIMIT),
            Err(AddrError::FrameOutOfRange(Mfn::LIMIT))
        );
        assert_eq!(
            Pfn::from_guest(u64::MAX),
            Err(AddrError::FrameOutOfRange(u64::MAX))
        );
        assert_eq!(
            MachineAddr::from_guest(0xf_ffff_ffff_fff8).map(MachineAddr::get),
            Ok(0xf_ffff_ffff_fff8)
        );
        assert_eq!(
            MachineAddr::from_guest(1 << 52),
            Err(AddrError::MachineOutOfRange(1 << 52))
        );
        assert!(GuestVirt::from_guest(0xffff_8000_0000_0000).is_ok());
        assert_eq!(
            GuestVirt::from_guest(0x0000_8000_0000_0000),
            Err(AddrError::NonCanonical(0x0000_8000_0000_0000))
        );
        assert_eq!(Mfn(0x12).addr(), MachineAddr(0x12000));
    }
}
