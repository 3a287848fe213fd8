//! # Page types and reference counts (Xen's `get_page`/`get_page_type`)
//!
//! The rules of the module documentation of [`crate::paging`], "How the counts
//! move": plain references, type references, and the references an entry holds
//! on what it points at. Validation ([`super::validate`]) is what a table type
//! costs when its count leaves zero.

use crate::addr::{Mfn, Pfn};
use crate::mem::PhysMem;
use crate::paging::entry::{pte_frame, Level, PTE_RW};
use crate::paging::frame_table::{FrameTable, PageInfo, PageType, TypeInfo};
use crate::paging::validate::check_entry;
use crate::paging::MmError;

/// The most type references a frame may hold (refused beyond: Xen refuses a
/// count overflow the same way).
pub const MAX_TYPE_COUNT: u32 = 1 << 30;
/// The most references a frame may hold.
pub const MAX_REF_COUNT: u64 = 1 << 40;

/// The machine state the rules read and change: one domain's frame table, machine
/// memory, and whether the domain runs with EFER.NXE.
pub struct Mm<'a, M: PhysMem + ?Sized> {
    /// The domain's frames and their accounting.
    pub ft: &'a FrameTable,
    /// Machine memory.
    pub mem: &'a mut M,
    /// EFER.NXE: NX is a legal bit only then.
    pub nx: bool,
}

impl<M: PhysMem + ?Sized> Mm<'_, M> {
    pub(super) fn pfn(&self, mfn: Mfn) -> Result<Pfn, MmError> {
        self.ft.pfn(&*self.mem, mfn).ok_or(MmError::NotOwned(mfn))
    }

    pub(super) fn info(&self, pfn: Pfn) -> PageInfo {
        self.ft.info(&*self.mem, pfn).unwrap_or(PageInfo::FREE)
    }

    // The type word and the reference count are separate words of the frame
    // table: each rule reads and writes only the one it changes.
    pub(super) fn type_info(&self, pfn: Pfn) -> TypeInfo {
        self.ft.type_info(&*self.mem, pfn).unwrap_or(TypeInfo::FREE)
    }

    pub(super) fn set_type_info(&mut self, pfn: Pfn, t: TypeInfo) {
        self.ft.set_type_info(self.mem, pfn, t);
    }

    /// The accounting of `mfn`, if the domain owns it.
    pub fn page_info(&self, mfn: Mfn) -> Option<PageInfo> {
        let pfn = self.ft.pfn(&*self.mem, mfn)?;
        self.ft.info(&*self.mem, pfn)
    }

    /// Take a plain reference on an owned frame (Xen's `get_page`).
    pub fn get_page(&mut self, mfn: Mfn) -> Result<(), MmError> {
        let pfn = self.pfn(mfn)?;
        self.get_page_at(pfn, mfn)
    }

    // The `_at` forms take the PFN the caller already looked up: an entry's
    // references need it up to four times.
    pub(super) fn get_page_at(&mut self, pfn: Pfn, mfn: Mfn) -> Result<(), MmError> {
        let refs = self.ft.ref_count(&*self.mem, pfn).unwrap_or(0);
        if refs >= MAX_REF_COUNT {
            return Err(MmError::Overflow(mfn));
        }
        self.ft.set_ref_count(self.mem, pfn, refs + 1);
        Ok(())
    }

    /// Drop a plain reference (Xen's `put_page`).
    pub fn put_page(&mut self, mfn: Mfn) {
        if let Ok(pfn) = self.pfn(mfn) {
            self.put_page_at(pfn);
        }
    }

    pub(super) fn put_page_at(&mut self, pfn: Pfn) {
        let refs = self.ft.ref_count(&*self.mem, pfn).unwrap_or(0);
        self.ft.set_ref_count(self.mem, pfn, refs.saturating_sub(1));
    }

    /// Take a type reference of type `want` (Xen's `get_page_type`): count it if
    /// the frame already has that type (and, for a table, is validated), or change
    /// the type if its count is zero, validating a table type.
    pub fn get_type(&mut self, mfn: Mfn, want: PageType) -> Result<(), MmError> {
        let pfn = self.pfn(mfn)?;
        self.get_type_at(pfn, mfn, want)
    }

    pub(super) fn get_type_at(
        &mut self,
        pfn: Pfn,
        mfn: Mfn,
        want: PageType,
    ) -> Result<(), MmError> {
        let mut i = self.type_info(pfn);
        if i.type_count > 0 {
            if i.ty != want {
                return Err(MmError::TypeConflict {
                    mfn,
                    have: i.ty,
                    want,
                });
            }
            if want.level().is_some() && !i.validated {
                // Still being validated further up this very chain.
                return Err(MmError::Recursive(mfn));
            }
            if i.type_count >= MAX_TYPE_COUNT {
                return Err(MmError::Overflow(mfn));
            }
            i.type_count += 1;
            self.set_type_info(pfn, i);
            return Ok(());
        }
        // Count zero: the type may change. For a table, count the reference
        // *before* validating, unvalidated, so that an entry referencing this
        // frame again (at any level) sees a frame in use and is refused.
        i.ty = want;
        i.type_count = 1;
        i.validated = false;
        self.set_type_info(pfn, i);
        if let Some(level) = want.level() {
            let r = self.validate(mfn, level);
            // Re-read rather than reuse `i`: what validation did to this frame
            // is whatever the stored word says.
            let mut i = self.type_info(pfn);
            match r {
                Ok(()) => i.validated = true,
                Err(_) => i.type_count = 0,
            }
            self.set_type_info(pfn, i);
            r?;
        }
        Ok(())
    }

    /// Drop a type reference (Xen's `put_page_type`); the last reference of a
    /// table type devalidates it.
    pub fn put_type(&mut self, mfn: Mfn) {
        if let Ok(pfn) = self.pfn(mfn) {
            self.put_type_at(pfn, mfn);
        }
    }

    pub(super) fn put_type_at(&mut self, pfn: Pfn, mfn: Mfn) {
        let mut i = self.type_info(pfn);
        i.type_count = i.type_count.saturating_sub(1);
        let devalidate = i.type_count == 0 && i.validated;
        if i.type_count == 0 {
            i.validated = false;
        }
        self.set_type_info(pfn, i);
        if let (true, Some(level)) = (devalidate, i.ty.level()) {
            self.devalidate(mfn, level);
        }
    }

    /// The references a present entry of a table of `level` holds. Inline: a
    /// read-only L1 entry (the common case, in validation and in updates) needs
    /// only the checks and a plain reference; the type references are out of
    /// line.
    #[inline(always)]
    pub(super) fn get_entry_ref(&mut self, e: u64, level: Level) -> Result<(), MmError> {
        let mfn = check_entry(e, level, self.nx)?;
        let pfn = self.pfn(mfn)?;
        self.get_page_at(pfn, mfn)?;
        let want = match level {
            Level::L1 if e & PTE_RW == 0 => return Ok(()),
            Level::L1 => PageType::Writable,
            Level::L2 => PageType::Table(Level::L1),
            Level::L3 => PageType::Table(Level::L2),
            Level::L4 => PageType::Table(Level::L3),
        };
        self.get_type_or_put_page(pfn, mfn, want)
    }

    /// The type reference of [`Self::get_entry_ref`]; on failure the plain
    /// reference it took is dropped again.
    #[inline(never)]
    pub(super) fn get_type_or_put_page(
        &mut self,
        pfn: Pfn,
        mfn: Mfn,
        want: PageType,
    ) -> Result<(), MmError> {
        let r = self.get_type_at(pfn, mfn, want);
        if r.is_err() {
            self.put_page_at(pfn);
        }
        r
    }

    /// Drop what [`Self::get_entry_ref`] took for `e`.
    #[inline(always)]
    pub(super) fn put_entry_ref(&mut self, e: u64, level: Level) {
        let mfn = pte_frame(e);
        let Ok(pfn) = self.pfn(mfn) else { return };
        match level {
            Level::L1 if e & PTE_RW == 0 => {}
            _ => self.put_type_at(pfn, mfn),
        }
        self.put_page_at(pfn);
    }
}
