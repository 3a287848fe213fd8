//! # Page types and reference counts (Xen's `get_page`/`get_page_type`)
//!
//! The rules of the module documentation of [`crate::paging`], "How the counts
//! move": plain references, type references, and the references an entry holds
//! on what it points at. Validation ([`super::validate`]) is what a table type
//! costs when its count leaves zero.

use crate::addr::{Mfn, Pfn};
use crate::mem::PhysMem;
use crate::paging::entry::{Level, Pte, PteFlags};
use crate::paging::frame_table::{FrameTable, PageInfo, PageType, TypeInfo};
use crate::paging::job::{Job, Origin, Unbounded};
use crate::paging::MmError;
use core::convert::Infallible;

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
    // table: each rule reads and changes only the one it needs, and changes
    // it as one atomic step (`FrameTable::update_type`, `update_refs`): other
    // CPUs take and drop references on the same frames meanwhile (module
    // documentation of `crate::paging`, "Several CPUs").
    pub(super) fn type_info(&self, pfn: Pfn) -> TypeInfo {
        self.ft.type_info(&*self.mem, pfn).unwrap_or(TypeInfo::FREE)
    }

    /// Change the type word of `pfn` by `f`, which cannot refuse.
    #[inline(always)]
    pub(super) fn update_type(&mut self, pfn: Pfn, mut f: impl FnMut(&mut TypeInfo)) -> TypeInfo {
        let r = self.ft.update_type(self.mem, pfn, |mut i| {
            f(&mut i);
            Ok::<_, Infallible>(i)
        });
        match r {
            Ok(old) => old,
            Err(never) => match never {},
        }
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
        self.ft
            .update_refs(self.mem, pfn, |refs| {
                if refs >= MAX_REF_COUNT {
                    return Err(MmError::Overflow(mfn));
                }
                Ok(refs + 1)
            })
            .map(|_| ())
    }

    /// Drop a plain reference (Xen's `put_page`).
    pub fn put_page(&mut self, mfn: Mfn) {
        if let Ok(pfn) = self.pfn(mfn) {
            self.put_page_at(pfn);
        }
    }

    pub(super) fn put_page_at(&mut self, pfn: Pfn) {
        let r = self.ft.update_refs(self.mem, pfn, |refs| {
            Ok::<_, Infallible>(refs.saturating_sub(1))
        });
        if let Err(never) = r {
            match never {}
        }
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
        match (self.take_type(pfn, mfn, want)?, want.level()) {
            (true, Some(level)) => self.validate_now(mfn, pfn, level, false),
            _ => Ok(()),
        }
    }

    /// Validate table `mfn` (given its type by [`Self::take_type`]) in one go:
    /// the paths that are not preemptible. On failure the type count is zero
    /// again, and the plain reference is dropped too if `drop_ref`.
    #[inline(never)]
    pub(super) fn validate_now(
        &mut self,
        mfn: Mfn,
        pfn: Pfn,
        level: Level,
        drop_ref: bool,
    ) -> Result<(), MmError> {
        let mut job = Job::IDLE;
        self.start_validate(
            &mut job,
            Origin::None,
            (mfn, pfn),
            level,
            drop_ref,
            &mut Unbounded,
        )
        .unwrap_or(Ok(()))
    }

    /// Take a type reference of type `want` without validating: count it if
    /// the frame already has that type (and, for a table, is validated), or
    /// change the type if its count is zero. `true`: a table type whose count
    /// left zero: it has its type, count one, not validated, and must be
    /// validated (by a [`Job`]) before it is used.
    pub(super) fn take_type(
        &mut self,
        pfn: Pfn,
        mfn: Mfn,
        want: PageType,
    ) -> Result<bool, MmError> {
        let old = self.ft.update_type(self.mem, pfn, |mut i| {
            if i.type_count > 0 {
                if i.ty != want {
                    return Err(MmError::TypeConflict {
                        mfn,
                        have: i.ty,
                        want,
                    });
                }
                if want.level().is_some() && !i.validated {
                    // Being validated or devalidated: on a job's path (further
                    // up this very chain, for a table referencing itself), or
                    // by another CPU, which alone may finish it.
                    return Err(MmError::Recursive(mfn));
                }
                if i.type_count >= MAX_TYPE_COUNT {
                    return Err(MmError::Overflow(mfn));
                }
                i.type_count += 1;
                return Ok(i);
            }
            // Count zero: the type may change. A table is counted *before* it
            // is validated, unvalidated, so that an entry referencing it again
            // (at any level), or another CPU, sees a frame in use and is
            // refused: the CPU whose exchange made this change validates.
            i.ty = want;
            i.type_count = 1;
            i.validated = false;
            Ok(i)
        })?;
        Ok(old.type_count == 0 && want.level().is_some())
    }

    /// Drop a type reference (Xen's `put_page_type`); the last reference of a
    /// table type devalidates it.
    pub fn put_type(&mut self, mfn: Mfn) {
        if let Ok(pfn) = self.pfn(mfn) {
            self.put_type_at(pfn, mfn);
        }
    }

    pub(super) fn put_type_at(&mut self, pfn: Pfn, mfn: Mfn) {
        if let Some(level) = self.put_type_or_claim(pfn) {
            self.devalidate_now(mfn, pfn, level, false)
        }
    }

    /// Drop a type reference, unless it is the last of a validated table:
    /// then the reference is kept and the table marked not validated, in one
    /// atomic step, and its level returned: the caller must devalidate it
    /// (which drops the reference at the end). Only the CPU that made this
    /// step devalidates; any other asking for the type meanwhile is refused
    /// (Xen clears `PGT_validated` the same way before `free_page_type`).
    #[inline(always)]
    pub(super) fn put_type_or_claim(&mut self, pfn: Pfn) -> Option<Level> {
        let old = self.update_type(pfn, |i| {
            if i.type_count == 1 && i.validated && i.ty.level().is_some() {
                i.validated = false;
            } else {
                i.type_count = i.type_count.saturating_sub(1);
                if i.type_count == 0 {
                    i.validated = false;
                }
            }
        });
        match old.ty.level() {
            Some(level) if old.type_count == 1 && old.validated => Some(level),
            _ => None,
        }
    }

    /// Devalidate table `mfn` (claimed by [`Self::put_type_or_claim`]) in one go: the paths that are not preemptible. Its plain
    /// reference is dropped too if `drop_ref`.
    #[inline(never)]
    pub(super) fn devalidate_now(&mut self, mfn: Mfn, pfn: Pfn, level: Level, drop_ref: bool) {
        let mut job = Job::IDLE;
        self.start_devalidate(
            &mut job,
            Origin::None,
            (mfn, pfn),
            level,
            drop_ref,
            &mut Unbounded,
        );
    }

    /// Drop what [`Self::take_entry_ref`] took for an L1 entry `e` (a plain
    /// reference, and a writable one if RW).
    #[inline(always)]
    pub(super) fn put_l1_entry_ref(&mut self, e: Pte) {
        let Ok(pfn) = self.pfn(e.frame()) else {
            return;
        };
        if e.contains(PteFlags::WRITABLE) {
            self.put_type_shallow(pfn);
        }
        self.put_page_at(pfn);
    }

    /// Drop what [`Self::take_entry_ref`] took for `e`, except when that is the
    /// last type reference of a validated table: then nothing is dropped yet,
    /// and the table is returned, marked not validated, for a [`Job`] to
    /// devalidate (which drops the entry's references at the end).
    #[inline(always)]
    pub(super) fn put_entry_ref_shallow(&mut self, e: Pte, level: Level) -> Option<(Mfn, Pfn)> {
        let mfn = e.frame();
        let pfn = self.pfn(mfn).ok()?;
        match level {
            Level::L1 if !e.contains(PteFlags::WRITABLE) => {}
            Level::L1 => self.put_type_shallow(pfn),
            _ => {
                if self.put_type_or_claim(pfn).is_some() {
                    return Some((mfn, pfn));
                }
            }
        }
        self.put_page_at(pfn);
        None
    }
}
