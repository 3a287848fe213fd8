//! The state of guest memory's read-translation cache ([`ReadCache`]), apart
//! from the translation that fills it: a domain holds one, and the translation
//! (in `guest_mem`) needs the domain, so the state must not.

use crate::addr::{GuestVirt, MachineAddr, Mfn};
use crate::mem::PhysMem;
use crate::paging::entry::{entry_addr, EntryMem, Pte};

/// One guest page's translation for reading, kept across calls (and exits)
/// and checked before each use by re-reading the four entries its walk read.
///
/// For reading, [`translate`](crate::paging::guest_mem::translate) is a function of the root (CR3), the four entry
/// values on the walk and the domain's ownership of the frames they name
/// (fixed for the domain's lifetime: a domain neither gains nor loses frames
/// while it runs, and a frame's *type* does not matter to a read). So if the
/// root is the same and each of the four entries still holds the value it held,
/// the translation is what a new walk would give, whatever happened in between
/// (page-table updates, pinning, base switches). Checking costs four dependent
/// loads and compares instead of a walk with a frame-table lookup per level.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadCache {
    page: Option<CachedPage>,
}

#[derive(Clone, Copy, Debug)]
struct CachedPage {
    va_page: u64,
    cr3: Mfn,
    /// The entry values the walk read, L4 first.
    entries: [Pte; 4],
    ma_page: u64,
}

impl ReadCache {
    /// A cache holding nothing.
    pub const fn new() -> ReadCache {
        ReadCache { page: None }
    }

    /// What `va` translates to from root `cr3`, if the cache holds `va`'s
    /// page for that root and the four entries its walk read still hold the
    /// values they held. Inline in [`Self::translate`]'s callers (each a
    /// hypercall's hot path).
    #[inline(always)]
    pub(crate) fn lookup<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        cr3: Mfn,
        va: GuestVirt,
    ) -> Option<MachineAddr> {
        let off = va.page_offset();
        let c = self.page.as_ref()?;
        (c.va_page == va.get() - off && c.cr3 == cr3 && still_holds(mem, c, va))
            .then(|| MachineAddr::new(c.ma_page + off))
    }

    /// Forget the cached page.
    pub(crate) fn clear(&mut self) {
        self.page = None;
    }

    /// Remember that `va` translated to `ma` from root `cr3` through the
    /// tables `tables` (L4 first), reading the four entries now.
    pub(crate) fn fill<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        cr3: Mfn,
        va: GuestVirt,
        tables: &[Mfn; 4],
        ma: MachineAddr,
    ) {
        let off = va.page_offset();
        let mut entries = [Pte::EMPTY; 4];
        for ((e, &table), level) in entries.iter_mut().zip(tables).zip([4, 3, 2, 1]) {
            *e = mem.read_pte(entry_addr(table, va.table_index(level)));
        }
        self.page = Some(CachedPage {
            va_page: va.get() - off,
            cr3,
            entries,
            ma_page: ma.get() - off,
        });
    }
}

/// Whether the four entries on `va`'s walk from `c.cr3` still hold `c.entries`.
#[inline(always)]
fn still_holds<M: PhysMem + ?Sized>(mem: &M, c: &CachedPage, va: GuestVirt) -> bool {
    let mut table = c.cr3;
    for (&want, level) in c.entries.iter().zip([4, 3, 2, 1]) {
        if mem.read_pte(entry_addr(table, va.table_index(level))) != want {
            return false;
        }
        table = want.frame();
    }
    true
}
