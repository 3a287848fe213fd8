//! # Validation: the entry rules, and a table checked entry by entry
//!
//! A table type is validated when its type count leaves zero: every present
//! entry is checked against the flag rules ([`check_entry`]) and takes its
//! references; a failure undoes the entries done. Devalidation drops them
//! when the count returns to zero. Both walk the tree below the table in
//! bounded pieces ([`super::job`]).

use crate::addr::Mfn;
use crate::mem::PhysMem;
use crate::paging::entry::{
    entry_addr, pte_frame, Level, PTE_A, PTE_ADDR_MASK, PTE_AVAIL, PTE_D, PTE_G, PTE_NX, PTE_P,
    PTE_PCD, PTE_PS, PTE_PWT, PTE_RW, PTE_US,
};
use crate::paging::{Mm, MmError};

/// The flags accepted in an entry of a table of `level` (see the module docs).
/// PS (bit 7) is never among them.
pub const fn allowed_flags(level: Level, nx: bool) -> u64 {
    let common = PTE_P | PTE_RW | PTE_US | PTE_PWT | PTE_PCD | PTE_A | PTE_AVAIL | PTE_ADDR_MASK;
    let nxb = if nx { PTE_NX } else { 0 };
    match level {
        Level::L1 => common | PTE_D | PTE_G | nxb,
        _ => common | nxb,
    }
}

/// [`allowed_flags`] for every level (index `level - 1`), without and with NX.
const ALLOWED: [[u64; 4]; 2] = {
    let mut t = [[0; 4]; 2];
    let mut i = 0;
    while i < 4 {
        let level = Level::WALK_ORDER[3 - i];
        t[0][i] = allowed_flags(level, false);
        t[1][i] = allowed_flags(level, true);
        i += 1;
    }
    t
};

/// Check a present entry of a table of `level` against the flag rules; the frame
/// it points at. (Ownership and type are checked when the reference is taken.)
#[inline(always)]
pub fn check_entry(e: u64, level: Level, nx: bool) -> Result<Mfn, MmError> {
    let allowed = ALLOWED[nx as usize][level as usize - 1];
    if e & !allowed != 0 {
        // PS is refused everywhere; in an L2 or L3 entry it would be a superpage.
        return Err(
            if matches!(level, Level::L2 | Level::L3) && e & PTE_PS != 0 {
                MmError::Superpage { level }
            } else {
                MmError::Reserved { level, entry: e }
            },
        );
    }
    Ok(pte_frame(e))
}

impl<M: PhysMem + ?Sized> Mm<'_, M> {
    pub(super) fn entry(&self, table: Mfn, i: usize) -> u64 {
        self.mem.read_u64(entry_addr(table, i))
    }
}
