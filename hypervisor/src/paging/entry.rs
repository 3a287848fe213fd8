//! # The x86-64 4-level page-table entry format
//!
//! Under direct paging the CPU walks the guest's own tables, and the hypervisor
//! must see exactly what the CPU would see. This module holds the entry format
//! (shared by the domain builder, the [`walk`](crate::paging::walk), the
//! validation rules and guest memory access): the flag bits, the levels, and
//! how an entry names a frame. The format itself is the ABI's
//! ([`keel_abi::pte`], documented in docs/abi/mmu.md): the guest library uses
//! the same definition.

use crate::addr::{MachineAddr, Mfn};
pub use keel_abi::pte::{Pte, PteFlags};

// The bits as raw words, for the rule tables and the tests that build
// entries bit by bit. One definition: the ABI's [`PteFlags`].

/// Present.
pub const PTE_P: u64 = PteFlags::PRESENT.bits();
/// Writable (with CR0.WP=1 this binds supervisor writes too).
pub const PTE_RW: u64 = PteFlags::WRITABLE.bits();
/// User-accessible (the builder leaves it clear: the guest kernel sets it for
/// its own user mode).
pub const PTE_US: u64 = PteFlags::USER.bits();
/// Write-through.
pub const PTE_PWT: u64 = PteFlags::WRITE_THROUGH.bits();
/// Cache disable.
pub const PTE_PCD: u64 = PteFlags::CACHE_DISABLE.bits();
/// Global (L1 only).
pub const PTE_G: u64 = PteFlags::GLOBAL.bits();
/// The three bits the CPU ignores and the OS may use (9..11).
pub const PTE_AVAIL: u64 = PteFlags::AVAILABLE.bits();
/// Accessed.
pub const PTE_A: u64 = PteFlags::ACCESSED.bits();
/// Dirty (leaf only).
pub const PTE_D: u64 = PteFlags::DIRTY.bits();
/// Page size in L2/L3 entries (superpage); reserved in L4 entries; PAT in L1 entries.
pub const PTE_PS: u64 = PteFlags::PAGE_SIZE.bits();
/// Execute-disable; a reserved bit unless EFER.NXE is set.
pub const PTE_NX: u64 = PteFlags::NO_EXECUTE.bits();
/// The machine-address field (bits 12..51).
pub const PTE_ADDR_MASK: u64 = Pte::addr_mask();

/// Entries per table.
pub const ENTRIES: usize = 512;

/// A page-table level: L1 holds 4 KiB leaf entries, L4 is what CR3 points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Page table (leaf entries).
    L1 = 1,
    /// Page directory.
    L2 = 2,
    /// Page-directory-pointer table.
    L3 = 3,
    /// PML4: the root.
    L4 = 4,
}

impl Level {
    /// All levels, root first (the order of a walk).
    pub const WALK_ORDER: [Level; 4] = [Level::L4, Level::L3, Level::L2, Level::L1];

    /// The level as a number 1..=4.
    pub const fn number(self) -> u32 {
        self as u32
    }
    /// The level from a number 1..=4.
    pub const fn from_number(n: u32) -> Option<Level> {
        match n {
            1 => Some(Level::L1),
            2 => Some(Level::L2),
            3 => Some(Level::L3),
            4 => Some(Level::L4),
            _ => None,
        }
    }
    /// The level below (L1 for L1: an L1 entry references no table).
    pub const fn below(self) -> Level {
        match self {
            Level::L4 => Level::L3,
            Level::L3 => Level::L2,
            _ => Level::L1,
        }
    }
    /// log2 of the bytes one *table* at this level covers (L1: 2 MiB = 21).
    pub const fn table_span_shift(self) -> u32 {
        12 + 9 * self.number()
    }
}

/// The frame an entry points at.
pub const fn pte_frame(pte: u64) -> Mfn {
    Pte(pte).frame()
}

/// The L4 frame named by a raw CR3 value (bits 12..51; PWT, PCD and a PCID in
/// bits 0..11 are not part of the address).
pub const fn cr3_frame(cr3: u64) -> Mfn {
    pte_frame(cr3)
}

/// Build an entry pointing at `mfn` with `flags`.
pub const fn pte(mfn: Mfn, flags: u64) -> u64 {
    ((mfn.get() << 12) & PTE_ADDR_MASK) | flags
}

/// The machine address of entry `index` of the table in frame `table`.
pub const fn entry_addr(table: Mfn, index: usize) -> MachineAddr {
    MachineAddr::new(table.addr().get() + (index as u64) * 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables at frames 1 (L4), 2 (L3), 3 (L2), 4 (L1) mapping va 0x40_0000 -> frame 9.
    #[test]
    fn pte_round_trip_and_levels() {
        let e = pte(Mfn::new(0xf_ffff_ffff), PTE_P | PTE_NX);
        assert_eq!(pte_frame(e), Mfn::new(0xf_ffff_ffff));
        assert_eq!(pte_frame(pte(Mfn::new(1 << 41), 0)), Mfn::new(0)); // bits above 51 are dropped
        for l in Level::WALK_ORDER {
            assert_eq!(Level::from_number(l.number()), Some(l));
        }
        assert_eq!(Level::from_number(5), None);
        assert_eq!(Level::L1.table_span_shift(), 21);
        assert_eq!(Level::L4.table_span_shift(), 48);
        assert_eq!(cr3_frame(0x0000_0001_2345_6018), Mfn::new(0x0012_3456));
        assert_eq!(cr3_frame(0x8000_0000_0000_1fff), Mfn::new(1));
    }
}
