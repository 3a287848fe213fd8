//! # Validated updates of one entry (`mmu_update`, emulated page-table writes)

use crate::addr::Mfn;
use crate::mem::PhysMem;
use crate::paging::entry::{entry_addr, Level, ENTRIES, PTE_P};
use crate::paging::flush::flush_for;
use crate::paging::frame_table::PageType;
use crate::paging::{Flush, Mm, MmError};

impl<M: PhysMem + ?Sized> Mm<'_, M> {
    /// Write `new` into entry `index` of frame `table` (MMU_NORMAL_PT_UPDATE, or
    /// an emulated PTE write). If the frame is a validated table the new entry is
    /// validated in full (references taken before the old ones are dropped); if it
    /// is ordinary memory the write is a plain one, as on Xen. Returns what the
    /// guest's TLB needs.
    pub fn mod_entry(&mut self, table: Mfn, index: usize, new: u64) -> Result<Flush, MmError> {
        self.mod_entry_after(&mut LastTable::default(), table, index, new)
    }

    /// [`Self::mod_entry`] as the next of a run of updates: `last` is what the
    /// previous update of the run found the table it wrote to be, and is
    /// updated to this one's. An update to the same validated table as the
    /// previous one skips looking the table up again; any other (another
    /// table, ordinary memory) looks it up. See [`LastTable`] for why this is
    /// exact.
    #[inline(always)]
    pub fn mod_entry_after(
        &mut self,
        last: &mut LastTable,
        table: Mfn,
        index: usize,
        new: u64,
    ) -> Result<Flush, MmError> {
        if index >= ENTRIES {
            return Err(MmError::Misaligned);
        }
        let at = entry_addr(table, index);
        let level = match last.0 {
            Some((t, level)) if t == table => level,
            _ => {
                last.0 = None;
                let pfn = self.pfn(table)?;
                let i = self.type_info(pfn);
                match i.ty.level() {
                    Some(l) if i.validated => {
                        last.0 = Some((table, l));
                        l
                    }
                    _ => {
                        // Ordinary memory: the same write the guest could do
                        // through a writable mapping, allowed only if the frame
                        // could have one.
                        self.get_type_at(pfn, table, PageType::Writable)?;
                        self.mem.write_u64(at, new);
                        self.put_type_at(pfn, table);
                        return Ok(Flush::None);
                    }
                }
            }
        };
        let old = self.mem.read_u64(at);
        if new & PTE_P != 0 {
            self.get_entry_ref(new, level)?;
        }
        self.mem.write_u64(at, new);
        if old & PTE_P != 0 {
            self.put_entry_ref(old, level);
        }
        Ok(flush_for(old, new))
    }
}

/// The table the previous update of a run of updates ([`Mm::mod_entry_after`])
/// wrote to, when it was a validated table: its frame and level.
///
/// Why the next update to the same frame may take the level from here instead
/// of the frame table: the frame was a validated `Table(level)` with a non-zero
/// type count when the previous update looked, and an update of a table never
/// changes that table's type word. Its new entry takes a plain reference, a
/// `Writable` reference or a `Table(level - 1)` reference on its target; on the
/// table itself the last two are refused (the table's type is in use as
/// another), and a plain reference touches only the reference count. Its old
/// entry drops references taken while the table was `Table(level)` in its
/// current validation, so not a type reference on the table itself; dropping
/// one may devalidate the target, which recurses only downwards (entries of
/// lower levels, which hold no type reference on a table of this level either).
/// An update of *another* table could devalidate this one (dropping its last
/// reference), which is why only the immediately previous update counts: every
/// update through a `LastTable` replaces it, and a run must not do anything
/// else between its updates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastTable(pub(super) Option<(Mfn, Level)>);
