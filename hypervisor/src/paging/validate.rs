//! # Validation: the entry rules, and a table checked entry by entry
//!
//! A table type is validated when its type count leaves zero: every present
//! entry is checked against the flag rules ([`check_entry`]) and takes its
//! references; a failure undoes the entries done. Devalidation drops them
//! when the count returns to zero. Both walk the tree below the table in
//! bounded pieces ([`super::job`]).

use crate::addr::Mfn;
use crate::mem::PhysMem;
use crate::paging::entry::{entry_addr, EntryMem, Level, Pte, PteFlags};
use crate::paging::{Mm, MmError};

/// The flags accepted in an entry of a table of `level` (see the module docs).
/// PS (bit 7) is never among them.
pub const fn allowed_flags(level: Level, nx: bool) -> PteFlags {
    let common = PteFlags::PRESENT
        .union(PteFlags::WRITABLE)
        .union(PteFlags::USER)
        .union(PteFlags::WRITE_THROUGH)
        .union(PteFlags::CACHE_DISABLE)
        .union(PteFlags::ACCESSED)
        .union(PteFlags::AVAILABLE);
    let with_nx = if nx {
        common.union(PteFlags::NO_EXECUTE)
    } else {
        common
    };
    match level {
        Level::L1 => with_nx.union(PteFlags::DIRTY).union(PteFlags::GLOBAL),
        _ => with_nx,
    }
}

/// The bits that may be set in an entry of each level (index `level - 1`),
/// without and with NX: [`allowed_flags`] and the frame number.
const ALLOWED: [[u64; 4]; 2] = {
    let mut t = [[0; 4]; 2];
    let mut i = 0;
    while i < 4 {
        let level = Level::WALK_ORDER[3 - i];
        t[0][i] = allowed_flags(level, false).bits() | Pte::addr_mask();
        t[1][i] = allowed_flags(level, true).bits() | Pte::addr_mask();
        i += 1;
    }
    t
};

/// Check a present entry of a table of `level` against the flag rules; the frame
/// it points at. (Ownership and type are checked when the reference is taken.)
#[inline(always)]
pub fn check_entry(e: Pte, level: Level, nx: bool) -> Result<Mfn, MmError> {
    let allowed = ALLOWED[nx as usize][level as usize - 1];
    if e.raw() & !allowed != 0 {
        // PS is refused everywhere; in an L2 or L3 entry it would be a superpage.
        return Err(
            if matches!(level, Level::L2 | Level::L3) && e.contains(PteFlags::PAGE_SIZE) {
                MmError::Superpage { level }
            } else {
                MmError::Reserved { level, entry: e }
            },
        );
    }
    Ok(e.frame())
}

impl<M: PhysMem + ?Sized> Mm<'_, M> {
    pub(super) fn entry(&self, table: Mfn, i: usize) -> Pte {
        self.mem.read_pte(entry_addr(table, i))
    }
}
