//! The page-table entry format.
//!
//! Under direct paging the guest's page tables are read by the CPU *and* by the
//! hypervisor, and the guest writes them through `mmu_update` (whose `val` is an
//! entry) or with a store the hypervisor emulates. So the entry format is part
//! of the ABI: it is the x86-64 4-level format with 4 KiB pages, holding
//! *machine* frame numbers, with the rules of `docs/abi/mmu.md` on which flags
//! each level accepts. This module names its bits once, for the hypervisor and
//! the guest library alike.
//!
//! Bare-metal difference: none in the format; the differences are in what an
//! entry may point at (only the domain's own frames) and which bits are refused
//! (PS in L2/L3 entries: no superpages).

use crate::addr::{Mfn, PAGE_SHIFT};

bitflags::bitflags! {
    /// The flag bits of a page-table entry (everything but the frame number).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PteFlags: u64 {
        /// Present.
        const PRESENT = 1 << 0;
        /// Writable (with CR0.WP=1, which Keel enforces, this binds supervisor
        /// writes too).
        const WRITABLE = 1 << 1;
        /// User-accessible.
        const USER = 1 << 2;
        /// Write-through.
        const WRITE_THROUGH = 1 << 3;
        /// Cache disable.
        const CACHE_DISABLE = 1 << 4;
        /// Accessed (set by the CPU).
        const ACCESSED = 1 << 5;
        /// Dirty (L1 entries; set by the CPU).
        const DIRTY = 1 << 6;
        /// Page size in an L2 or L3 entry (a superpage: refused by Keel),
        /// reserved in an L4 entry, PAT in an L1 entry (refused by Keel).
        const PAGE_SIZE = 1 << 7;
        /// Global (L1 entries).
        const GLOBAL = 1 << 8;
        /// The three bits the CPU ignores, for the guest's own use (9..11).
        const AVAILABLE = 0b111 << 9;
        /// Execute-disable; a reserved bit unless the domain runs with EFER.NXE.
        const NO_EXECUTE = 1 << 63;
    }
}

/// A page-table entry as it is stored in a table (and as `mmu_update`'s `val`
/// carries it): a machine frame number in bits 12..51 and [`PteFlags`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pte(pub u64);

impl Pte {
    /// The empty (not present) entry.
    pub const EMPTY: Pte = Pte(0);

    /// The frame-number field (bits 12..51).
    pub const fn addr_mask() -> u64 {
        0x000f_ffff_ffff_f000
    }

    /// An entry naming `mfn` with `flags` (frame bits beyond 51 are dropped).
    pub const fn new(mfn: Mfn, flags: PteFlags) -> Pte {
        Pte(((mfn.get() << PAGE_SHIFT) & Self::addr_mask()) | flags.bits())
    }

    /// The frame the entry names.
    pub const fn frame(self) -> Mfn {
        Mfn::new((self.0 & Self::addr_mask()) >> PAGE_SHIFT)
    }

    /// The flag bits, including any bit [`PteFlags`] does not name (bits
    /// 52..62), so that a check of the whole entry sees them.
    pub const fn flags(self) -> PteFlags {
        PteFlags::from_bits_retain(self.0 & !Self::addr_mask())
    }

    /// Whether the entry is present.
    pub const fn is_present(self) -> bool {
        self.0 & PteFlags::PRESENT.bits() != 0
    }

    /// Whether every bit of `flags` is set.
    pub const fn contains(self, flags: PteFlags) -> bool {
        self.0 & flags.bits() == flags.bits()
    }

    /// Whether any bit of `flags` is set.
    pub const fn intersects(self, flags: PteFlags) -> bool {
        self.0 & flags.bits() != 0
    }

    /// The entry with `flags` set as well.
    pub const fn with(self, flags: PteFlags) -> Pte {
        Pte(self.0 | flags.bits())
    }

    /// The entry with `flags` clear.
    pub const fn without(self, flags: PteFlags) -> Pte {
        Pte(self.0 & !flags.bits())
    }

    /// The raw word.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

impl core::fmt::LowerHex for Pte {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::LowerHex::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_x86_64_bit_positions() {
        assert_eq!(PteFlags::PRESENT.bits(), 1);
        assert_eq!(PteFlags::WRITABLE.bits(), 2);
        assert_eq!(PteFlags::USER.bits(), 4);
        assert_eq!(PteFlags::PAGE_SIZE.bits(), 0x80);
        assert_eq!(PteFlags::AVAILABLE.bits(), 0xe00);
        assert_eq!(PteFlags::NO_EXECUTE.bits(), 1 << 63);
        // No flag overlaps the frame field.
        assert_eq!(PteFlags::all().bits() & Pte::addr_mask(), 0);
    }

    #[test]
    fn round_trip() {
        let f = PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::NO_EXECUTE;
        let e = Pte::new(Mfn::new(0xf_ffff_ffff), f);
        assert_eq!(e.frame(), Mfn::new(0xf_ffff_ffff));
        assert_eq!(e.flags(), f);
        assert!(e.is_present());
        assert_eq!(
            Pte::new(Mfn::new(1 << 41), PteFlags::empty()).frame(),
            Mfn::new(0)
        );
        assert!(e.contains(PteFlags::PRESENT | PteFlags::WRITABLE));
        assert!(!e.contains(PteFlags::PRESENT | PteFlags::USER));
        assert!(e.intersects(PteFlags::PRESENT | PteFlags::USER));
        assert!(!e.intersects(PteFlags::USER | PteFlags::DIRTY));
        assert_eq!(
            e.without(PteFlags::WRITABLE).flags(),
            f - PteFlags::WRITABLE
        );
        assert_eq!(e.without(f).with(PteFlags::USER).flags(), PteFlags::USER);
        assert_eq!(e.without(f).frame(), e.frame());
        assert!(!Pte::EMPTY.is_present());
        // Bits 52..62 are kept as flags, unnamed.
        let odd = Pte(1 << 52 | 1);
        assert_eq!(odd.flags().bits(), 1 << 52 | 1);
        assert!(!PteFlags::all().contains(odd.flags()));
    }
}
