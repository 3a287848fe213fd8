//! # Pinning, the base pointer, and the release of everything at teardown
//!
//! A pin is the guest's own type reference on a table (MMUEXT_PIN_Lk_TABLE);
//! the base pointer (CR3) holds another. Teardown drops every pin and the
//! base, after which every count of the domain must be zero.

use crate::addr::{Mfn, Pfn};
use crate::mem::PhysMem;
use crate::paging::entry::Level;
use crate::paging::frame_table::PageType;
use crate::paging::{Mm, MmError};

impl<M: PhysMem + ?Sized> Mm<'_, M> {
    /// Pin `mfn` as a table of `level` (MMUEXT_PIN_Lk_TABLE): validate it if
    /// needed and hold a type reference until [`Self::unpin`].
    pub fn pin(&mut self, mfn: Mfn, level: Level) -> Result<(), MmError> {
        let pfn = self.pfn(mfn)?;
        if self.type_info(pfn).pinned {
            return Err(MmError::AlreadyPinned(mfn));
        }
        self.get_page_at(pfn, mfn)?;
        if let Err(e) = self.get_type_at(pfn, mfn, PageType::Table(level)) {
            self.put_page_at(pfn);
            return Err(e);
        }
        let mut i = self.type_info(pfn);
        i.pinned = true;
        self.set_type_info(pfn, i);
        Ok(())
    }

    /// Drop the guest's pin (MMUEXT_UNPIN_TABLE).
    pub fn unpin(&mut self, mfn: Mfn) -> Result<(), MmError> {
        let pfn = self.pfn(mfn)?;
        let mut i = self.type_info(pfn);
        if !i.pinned {
            return Err(MmError::NotPinned(mfn));
        }
        i.pinned = false;
        self.set_type_info(pfn, i);
        self.put_type_at(pfn, mfn);
        self.put_page_at(pfn);
        Ok(())
    }

    /// Make `new` the base (CR3) in place of `old`: `new` must be a pinned,
    /// validated L4 (NEW_BASEPTR, MOV to CR3). The base holds its own type
    /// reference, so unpinning the running L4 does not devalidate it.
    pub fn set_base(&mut self, old: Option<Mfn>, new: Mfn) -> Result<(), MmError> {
        let pfn = self.pfn(new)?;
        let i = self.type_info(pfn);
        if !(i.pinned && i.validated && i.ty == PageType::Table(Level::L4)) {
            return Err(MmError::NotPinnedL4(new));
        }
        self.get_page_at(pfn, new)?;
        if let Err(e) = self.get_type_at(pfn, new, PageType::Table(Level::L4)) {
            self.put_page_at(pfn);
            return Err(e);
        }
        if let Some(old) = old {
            self.put_type(old);
            self.put_page(old);
        }
        Ok(())
    }

    /// Drop the base's references (teardown).
    pub fn drop_base(&mut self, base: Mfn) {
        self.put_type(base);
        self.put_page(base);
    }

    /// Release everything the guest holds: every pin, then the base. Afterwards
    /// every count of the domain is zero (there are no cycles: see the module
    /// docs). Returns the number of frames whose counts are not (a bug if
    /// non-zero; the caller reports it).
    pub fn release_all(&mut self, base: Option<Mfn>) -> u64 {
        for p in 0..self.ft.nr_pages() {
            if self.type_info(Pfn::new(p)).pinned {
                if let Some(m) = self.ft.mfn(&*self.mem, Pfn::new(p)) {
                    let _ = self.unpin(m);
                }
            }
        }
        if let Some(b) = base {
            self.drop_base(b);
        }
        (0..self.ft.nr_pages())
            .filter(|&p| {
                let i = self.info(Pfn::new(p));
                i.type_count != 0 || i.ref_count != 0 || i.pinned || i.validated
            })
            .count() as u64
    }
}
