//! # Pinning, the base pointer, and the release of everything at teardown
//!
//! A pin is the guest's own type reference on a table (MMUEXT_PIN_Lk_TABLE);
//! the base pointer (CR3) holds another. Teardown drops every pin and the
//! base, after which every count of the domain must be zero.

use crate::addr::{Mfn, Pfn};
use crate::mem::PhysMem;
use crate::paging::entry::Level;
use crate::paging::frame_table::PageType;
use crate::paging::job::{Finished, Job, Meter, Origin};
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
        self.mark_pinned(mfn)
    }

    /// Drop the guest's pin (MMUEXT_UNPIN_TABLE).
    pub fn unpin(&mut self, mfn: Mfn) -> Result<(), MmError> {
        let pfn = self.pfn(mfn)?;
        if !self.clear_pinned(pfn) {
            return Err(MmError::NotPinned(mfn));
        }
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

/// The preemptible forms of the operations above, for the hypercalls: each
/// does its work through the domain's [`Job`] and `meter`, and returns `None`
/// when the meter stopped it with work left. The same request made again goes
/// on where it stopped (its [`Origin`] is the job's); any other first settles
/// the job ([`Mm::settle`]).
impl<M: PhysMem + ?Sized> Mm<'_, M> {
    /// [`Self::pin`], preemptible.
    pub fn pin_in(
        &mut self,
        job: &mut Job,
        mfn: Mfn,
        level: Level,
        meter: &mut impl Meter,
    ) -> Finished {
        let origin = Origin::Pin(mfn, level);
        if job.busy() {
            if job.origin() == origin {
                let validating = job.validating();
                let r = self.run(job, meter)?;
                if validating && r.is_ok() {
                    return Some(self.mark_pinned(mfn));
                }
                return Some(r);
            }
            if !self.settle(job, meter) {
                return None;
            }
        }
        let pfn = match self.pfn(mfn) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        if self.type_info(pfn).pinned {
            return Some(Err(MmError::AlreadyPinned(mfn)));
        }
        if let Err(e) = self.get_page_at(pfn, mfn) {
            return Some(Err(e));
        }
        let r = match self.take_type(pfn, mfn, PageType::Table(level)) {
            Err(e) => {
                self.put_page_at(pfn);
                Err(e)
            }
            Ok(false) => Ok(()),
            Ok(true) => self.start_validate(job, origin, (mfn, pfn), level, true, meter)?,
        };
        if r.is_ok() {
            return Some(self.mark_pinned(mfn));
        }
        Some(r)
    }

    /// Set the pin bit of `mfn`, whose pin's references are held: a test and
    /// set, so that of two CPUs pinning one frame at once (each checked the
    /// bit before taking its references) one is refused and drops its
    /// references again.
    fn mark_pinned(&mut self, mfn: Mfn) -> Result<(), MmError> {
        let pfn = self.pfn(mfn)?;
        let old = self.update_type(pfn, |i| i.pinned = true);
        if old.pinned {
            // Another CPU's pin: this one's type reference is not the last.
            self.put_type_at(pfn, mfn);
            self.put_page_at(pfn);
            return Err(MmError::AlreadyPinned(mfn));
        }
        Ok(())
    }

    /// Clear the pin bit of `pfn`: `true` if it was set (a test and clear:
    /// of two CPUs unpinning one frame at once, one drops the pin's
    /// references).
    fn clear_pinned(&mut self, pfn: Pfn) -> bool {
        self.update_type(pfn, |i| i.pinned = false).pinned
    }

    /// [`Self::unpin`], preemptible: the pin is gone at once; the
    /// devalidation it causes goes on in the job.
    pub fn unpin_in(&mut self, job: &mut Job, mfn: Mfn, meter: &mut impl Meter) -> Finished {
        let origin = Origin::Unpin(mfn);
        if job.busy() {
            if job.origin() == origin {
                return self.run(job, meter);
            }
            if !self.settle(job, meter) {
                return None;
            }
        }
        let pfn = match self.pfn(mfn) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        if !self.clear_pinned(pfn) {
            return Some(Err(MmError::NotPinned(mfn)));
        }
        self.put_page_and_type_in(job, origin, mfn, pfn, meter)
    }

    /// Drop a type reference and a plain reference on `mfn`, the type
    /// reference's devalidation (if it was a table's last) in `job`.
    fn put_page_and_type_in(
        &mut self,
        job: &mut Job,
        origin: Origin,
        mfn: Mfn,
        pfn: Pfn,
        meter: &mut impl Meter,
    ) -> Finished {
        match self.put_type_or_claim(pfn) {
            Some(level) => self.start_devalidate(job, origin, (mfn, pfn), level, true, meter),
            None => {
                self.put_page_at(pfn);
                Some(Ok(()))
            }
        }
    }

    /// [`Self::set_base`], preemptible: `new` is the base at once; dropping
    /// `old`'s references (its devalidation, if the base held its last type
    /// reference) goes on in the job. `old` is not looked at when the job
    /// goes on.
    pub fn set_base_in(
        &mut self,
        job: &mut Job,
        old: Mfn,
        new: Mfn,
        meter: &mut impl Meter,
    ) -> Finished {
        let origin = Origin::NewBase(new);
        if job.busy() {
            if job.origin() == origin {
                return self.run(job, meter);
            }
            if !self.settle(job, meter) {
                return None;
            }
        }
        let pfn = match self.pfn(new) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let i = self.type_info(pfn);
        if !(i.pinned && i.validated && i.ty == PageType::Table(Level::L4)) {
            return Some(Err(MmError::NotPinnedL4(new)));
        }
        if let Err(e) = self.get_page_at(pfn, new) {
            return Some(Err(e));
        }
        // Validated with a non-zero count: only counted, never validated here.
        match self.take_type(pfn, new, PageType::Table(Level::L4)) {
            Ok(false) => {}
            Ok(true) => {
                // Unpinned and devalidated by another CPU since the check:
                // this type reference is the only one, unvalidated; give it
                // back (nobody else may use the frame as a table meanwhile).
                self.update_type(pfn, |i| {
                    i.type_count = 0;
                    i.validated = false;
                });
                self.put_page_at(pfn);
                return Some(Err(MmError::NotPinnedL4(new)));
            }
            Err(e) => {
                self.put_page_at(pfn);
                return Some(Err(e));
            }
        }
        match self.pfn(old) {
            Ok(old_pfn) => self.put_page_and_type_in(job, origin, old, old_pfn, meter),
            Err(_) => Some(Ok(())),
        }
    }
}
