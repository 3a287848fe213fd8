//! # The x86-64 4-level page-table entry format
//!
//! Under direct paging the CPU walks the guest's own tables, and the hypervisor
//! must see exactly what the CPU would see. This module holds the entry format
//! (shared by the domain builder, the [`walk`](crate::paging::walk), the
//! validation rules and guest memory access): the flag bits, the levels, and
//! how an entry names a frame. The format itself is the ABI's
//! ([`keel_abi::pte`], documented in docs/abi/mmu.md): the guest library uses
//! the same definition.

use crate::addr::{MachineAddr, Mfn, PAGE_SHIFT};
use crate::mem::PhysMem;
pub use keel_abi::pte::{Pte, PteFlags};

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

/// The L4 frame named by a raw CR3 value (bits 12..51; PWT, PCD and a PCID in
/// bits 0..11 are not part of the address).
pub const fn cr3_frame(cr3: u64) -> Mfn {
    Mfn::new((cr3 & Pte::addr_mask()) >> PAGE_SHIFT)
}

/// The machine address of entry `index` of the table in frame `table`.
pub const fn entry_addr(table: Mfn, index: usize) -> MachineAddr {
    MachineAddr::new(table.addr().get() + (index as u64) * 8)
}

/// Page-table entries read and written as [`Pte`]s: every physical memory
/// has them.
pub trait EntryMem: PhysMem {
    /// The entry at `at` (8-byte aligned).
    #[inline(always)]
    fn read_pte(&self, at: MachineAddr) -> Pte {
        Pte(self.read_u64(at))
    }
    /// Write the entry at `at` (8-byte aligned).
    #[inline(always)]
    fn write_pte(&mut self, at: MachineAddr, e: Pte) {
        self.write_u64(at, e.raw());
    }
}

impl<M: PhysMem + ?Sized> EntryMem for M {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_cr3() {
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
