//! # A pure page walk
//!
//! A walk that mirrors the CPU's, with one difference: before it reads any
//! table frame it asks a caller-supplied predicate whether it may (so a root or
//! entry naming a foreign frame, or MMIO, is never even read). Keel maps 4 KiB
//! pages only: a PS bit in an L2 or L3 entry is a fault here (validation
//! refuses it too), not a superpage.

use crate::addr::{GuestVirt, Mfn, PAGE_SIZE};
use crate::mem::PhysMem;
use crate::paging::entry::{entry_addr, EntryMem, Level, PteFlags};

/// The outcome of a successful walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    /// The 4 KiB frame the address maps to.
    pub frame: Mfn,
    /// RW was set at every level.
    pub writable: bool,
    /// NX was clear at every level (always true when NXE is off).
    pub executable: bool,
    /// U/S was set at every level: user mode may access the page.
    pub user: bool,
    /// The table frames read, L4 first.
    pub tables: [Mfn; 4],
}

/// Why a walk stopped. `level` is the table whose entry was at fault (or, for
/// [`WalkFault::Refused`], the table that was not read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkFault {
    /// The address is not canonical.
    NonCanonical,
    /// The predicate refused to let a table frame be read.
    Refused {
        /// The level of the table frame.
        level: Level,
        /// The frame.
        frame: Mfn,
    },
    /// An entry is not present.
    NotPresent {
        /// The level of the entry.
        level: Level,
    },
    /// An entry has a reserved bit set (PS in an L4 entry, NX without NXE).
    Reserved {
        /// The level of the entry.
        level: Level,
    },
    /// PS in an L2 or L3 entry: Keel maps 4 KiB pages only.
    Superpage {
        /// The level of the entry.
        level: Level,
    },
}

/// Walk the 4-level tables rooted at `cr3` for `va`, as the CPU would (without
/// setting accessed/dirty bits). `may_read(level, frame)` is asked before each
/// table frame is read.
pub fn walk<M: PhysMem + ?Sized>(
    mem: &M,
    cr3: Mfn,
    va: GuestVirt,
    nxe: bool,
    mut may_read: impl FnMut(Level, Mfn) -> bool,
) -> Result<Walk, WalkFault> {
    if !va.is_canonical() {
        return Err(WalkFault::NonCanonical);
    }
    let mut table = cr3;
    let mut out = Walk {
        frame: Mfn::new(0),
        writable: true,
        executable: true,
        user: true,
        tables: [Mfn::new(0); 4],
    };
    for (i, level) in Level::WALK_ORDER.into_iter().enumerate() {
        if !may_read(level, table) {
            return Err(WalkFault::Refused {
                level,
                frame: table,
            });
        }
        if let Some(slot) = out.tables.get_mut(i) {
            *slot = table;
        }
        let e = mem.read_pte(entry_addr(table, va.table_index(level.number())));
        if !e.is_present() {
            return Err(WalkFault::NotPresent { level });
        }
        if e.contains(PteFlags::NO_EXECUTE) && !nxe {
            return Err(WalkFault::Reserved { level });
        }
        if e.contains(PteFlags::PAGE_SIZE) {
            match level {
                Level::L4 => return Err(WalkFault::Reserved { level }),
                Level::L3 | Level::L2 => return Err(WalkFault::Superpage { level }),
                Level::L1 => {} // PAT: a memory type, not a size.
            }
        }
        out.writable &= e.contains(PteFlags::WRITABLE);
        out.user &= e.contains(PteFlags::USER);
        out.executable &= !e.contains(PteFlags::NO_EXECUTE);
        table = e.frame();
    }
    out.frame = table;
    Ok(out)
}

/// Number of bytes from `va` to the end of its page (1..=4096).
pub const fn bytes_to_page_end(va: GuestVirt) -> u64 {
    PAGE_SIZE - va.page_offset()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::fake::FakeMem;
    use crate::paging::entry::*;

    fn setup(l1_flags: PteFlags, l2_flags: PteFlags) -> FakeMem {
        let mut m = FakeMem::default();
        let va = GuestVirt::new(0x40_0000);
        m.write_pte(
            entry_addr(Mfn::new(1), va.table_index(4)),
            Pte::new(Mfn::new(2), PteFlags::PRESENT | PteFlags::WRITABLE),
        );
        m.write_pte(
            entry_addr(Mfn::new(2), va.table_index(3)),
            Pte::new(Mfn::new(3), PteFlags::PRESENT | PteFlags::WRITABLE),
        );
        m.write_pte(
            entry_addr(Mfn::new(3), va.table_index(2)),
            Pte::new(Mfn::new(4), l2_flags),
        );
        m.write_pte(
            entry_addr(Mfn::new(4), va.table_index(1)),
            Pte::new(Mfn::new(9), l1_flags),
        );
        m
    }

    #[test]
    fn bytes_to_page_end_counts_to_the_next_page() {
        assert_eq!(bytes_to_page_end(GuestVirt::new(0x1fff)), 1);
        assert_eq!(bytes_to_page_end(GuestVirt::new(0x1000)), 4096);
    }

    #[test]
    fn walks_like_the_cpu() {
        let m = setup(
            PteFlags::PRESENT | PteFlags::WRITABLE,
            PteFlags::PRESENT | PteFlags::WRITABLE,
        );
        let w = walk(&m, Mfn::new(1), GuestVirt::new(0x40_0123), false, |_, _| {
            true
        })
        .unwrap();
        assert_eq!(w.frame, Mfn::new(9));
        assert!(w.writable && w.executable);
        assert!(!w.user, "U/S clear at two levels");
        let m = setup(
            PteFlags::PRESENT | PteFlags::USER,
            PteFlags::PRESENT | PteFlags::USER,
        );
        assert!(
            !walk(&m, Mfn::new(1), GuestVirt::new(0x40_0000), false, |_, _| {
                true
            })
            .unwrap()
            .user,
            "U/S clear at L4 and L3"
        );
        assert_eq!(
            w.tables,
            [Mfn::new(1), Mfn::new(2), Mfn::new(3), Mfn::new(4)]
        );

        // RW clear at L2 makes the page read-only.
        let m = setup(PteFlags::PRESENT | PteFlags::WRITABLE, PteFlags::PRESENT);
        assert!(
            !walk(&m, Mfn::new(1), GuestVirt::new(0x40_0000), false, |_, _| {
                true
            })
            .unwrap()
            .writable
        );
        // NX: reserved without NXE, execute-disable with it.
        let m = setup(
            PteFlags::PRESENT | PteFlags::NO_EXECUTE,
            PteFlags::PRESENT | PteFlags::WRITABLE,
        );
        assert_eq!(
            walk(&m, Mfn::new(1), GuestVirt::new(0x40_0000), false, |_, _| {
                true
            }),
            Err(WalkFault::Reserved { level: Level::L1 })
        );
        assert!(
            !walk(&m, Mfn::new(1), GuestVirt::new(0x40_0000), true, |_, _| {
                true
            })
            .unwrap()
            .executable
        );
        // PS in L2: superpage refused. PAT in L1: fine.
        let m = setup(
            PteFlags::PRESENT,
            PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::PAGE_SIZE,
        );
        assert_eq!(
            walk(&m, Mfn::new(1), GuestVirt::new(0x40_0000), false, |_, _| {
                true
            }),
            Err(WalkFault::Superpage { level: Level::L2 })
        );
        let m = setup(PteFlags::PRESENT | PteFlags::PAGE_SIZE, PteFlags::PRESENT);
        assert!(
            walk(&m, Mfn::new(1), GuestVirt::new(0x40_0000), false, |_, _| {
                true
            })
            .is_ok()
        );
        // Not present / non-canonical / refused.
        assert_eq!(
            walk(&m, Mfn::new(1), GuestVirt::new(0x60_0000), false, |_, _| {
                true
            }),
            Err(WalkFault::NotPresent { level: Level::L2 })
        );
        assert_eq!(
            walk(&m, Mfn::new(1), GuestVirt::new(1 << 47), false, |_, _| true),
            Err(WalkFault::NonCanonical)
        );
        assert_eq!(
            walk(&m, Mfn::new(1), GuestVirt::new(0x40_0000), false, |l, _| l
                != Level::L2),
            Err(WalkFault::Refused {
                level: Level::L2,
                frame: Mfn::new(3)
            })
        );
    }
}
