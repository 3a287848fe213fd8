//! # Validated updates of one entry (`mmu_update`, emulated page-table writes)

use crate::addr::{MachineAddr, Mfn};
use crate::mem::PhysMem;
use crate::paging::entry::{entry_addr, EntryMem, Level, Pte, ENTRIES};
use crate::paging::flush::flush_for;
use crate::paging::frame_table::PageType;
use crate::paging::job::{Finished, Job, Meter, Origin, Unbounded};
use crate::paging::{Flush, Mm, MmError};

impl<M: PhysMem + ?Sized> Mm<'_, M> {
    /// Write `new` into entry `index` of frame `table` (MMU_NORMAL_PT_UPDATE, or
    /// an emulated PTE write). If the frame is a validated table the new entry is
    /// validated in full (references taken before the old ones are dropped); if it
    /// is ordinary memory the write is a plain one, as on Xen. Returns what the
    /// guest's TLB needs.
    pub fn mod_entry(&mut self, table: Mfn, index: usize, new: Pte) -> Result<Flush, MmError> {
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
        new: Pte,
    ) -> Result<Flush, MmError> {
        let mut flush = Flush::None;
        let mut job = Job::IDLE;
        self.mod_entry_in(
            &mut job,
            last,
            table,
            index,
            new,
            &mut flush,
            &mut Unbounded,
        )
        .unwrap_or(Ok(()))
        .map(|()| flush)
    }

    /// [`Self::mod_entry_in`] with the meter made only when the update may
    /// need one: the common update of a run (an entry of the same validated
    /// L1 table as the previous update, no job in progress) has no validation
    /// work below it and is written at once, without one.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn mod_entry_lazy<Mt: Meter>(
        &mut self,
        job: &mut Job,
        last: &mut LastTable,
        table: Mfn,
        index: usize,
        new: Pte,
        flush: &mut Flush,
        meter: impl FnOnce() -> Mt,
    ) -> Finished {
        if index < ENTRIES && !job.busy() && last.0 == Some((table, Level::L1)) {
            return self.write_l1_entry(entry_addr(table, index), new, flush);
        }
        self.mod_entry_in(job, last, table, index, new, flush, &mut meter())
    }

    /// [`Self::mod_entry_after`], preemptible (see [`Self::pin_in`]): the
    /// validation of a table the new entry references first, then the write,
    /// then the devalidation of a table the old entry held the last type
    /// reference of, each in `job`. The TLB flush the write needs is merged
    /// into `flush` when the write is made.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn mod_entry_in(
        &mut self,
        job: &mut Job,
        last: &mut LastTable,
        table: Mfn,
        index: usize,
        new: Pte,
        flush: &mut Flush,
        meter: &mut impl Meter,
    ) -> Finished {
        if index >= ENTRIES {
            return Some(Err(MmError::Misaligned));
        }
        let at = entry_addr(table, index);
        if job.busy() {
            return self.mod_entry_resume(job, last, table, index, new, flush, meter);
        }
        let level = match last.0 {
            Some((t, level)) if t == table => level,
            _ => {
                last.0 = None;
                let pfn = match self.pfn(table) {
                    Ok(p) => p,
                    Err(e) => return Some(Err(e)),
                };
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
                        if let Err(e) = self.get_type_at(pfn, table, PageType::Writable) {
                            return Some(Err(e));
                        }
                        self.mem.write_pte(at, new);
                        self.put_type_at(pfn, table);
                        return Some(Ok(()));
                    }
                }
            }
        };
        if level == Level::L1 {
            return self.write_l1_entry(at, new, flush);
        }
        self.mod_upper_entry(job, at, level, new, flush, meter)
    }

    /// An update of an L1 entry: no table below, so no job (the common case,
    /// kept tight).
    #[inline(always)]
    fn write_l1_entry(&mut self, at: MachineAddr, new: Pte, flush: &mut Flush) -> Finished {
        let old = self.mem.read_pte(at);
        if new.is_present() {
            if let Err(e) = self.take_entry_ref(new, Level::L1) {
                return Some(Err(e));
            }
        }
        self.mem.write_pte(at, new);
        if old.is_present() {
            self.put_l1_entry_ref(old);
        }
        let f = flush_for(old, new);
        if f != Flush::None {
            *flush = flush.merge(f);
        }
        Some(Ok(()))
    }

    /// An update of an entry of an L2, L3 or L4 table: its validation and
    /// devalidation work in `job`.
    #[inline(never)]
    fn mod_upper_entry(
        &mut self,
        job: &mut Job,
        at: MachineAddr,
        level: Level,
        new: Pte,
        flush: &mut Flush,
        meter: &mut impl Meter,
    ) -> Finished {
        if new.is_present() {
            match self.take_entry_ref(new, level) {
                Ok(None) => {}
                Ok(Some(child)) => {
                    let origin = Origin::Update(at, new);
                    match self.start_validate(job, origin, child, level.below(), true, meter)? {
                        Ok(()) => {}
                        Err(e) => return Some(Err(e)),
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
        self.write_entry(job, at, level, new, flush, meter)
    }

    /// The write of an update whose new entry holds its references: drop the
    /// old entry's (its table's devalidation, if any, in `job`).
    #[inline(always)]
    fn write_entry(
        &mut self,
        job: &mut Job,
        at: MachineAddr,
        level: Level,
        new: Pte,
        flush: &mut Flush,
        meter: &mut impl Meter,
    ) -> Finished {
        let old = self.mem.read_pte(at);
        self.mem.write_pte(at, new);
        let f = flush_for(old, new);
        if f != Flush::None {
            *flush = flush.merge(f);
        }
        if old.is_present() {
            if let Some(child) = self.put_entry_ref_shallow(old, level) {
                let origin = Origin::Update(at, new);
                return self.start_devalidate(job, origin, child, level.below(), true, meter);
            }
        }
        Some(Ok(()))
    }

    /// [`Self::mod_entry_in`] with a job in progress: go on with it if it is
    /// this update's, else settle it and make the update.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    #[cold]
    fn mod_entry_resume(
        &mut self,
        job: &mut Job,
        last: &mut LastTable,
        table: Mfn,
        index: usize,
        new: Pte,
        flush: &mut Flush,
        meter: &mut impl Meter,
    ) -> Finished {
        // A job may change any table's state: look the table up again.
        *last = LastTable::default();
        let at = entry_addr(table, index);
        if job.origin() != Origin::Update(at, new) {
            if !self.settle(job, meter) {
                return None;
            }
            return self.mod_entry_in(job, last, table, index, new, flush, meter);
        }
        let validating = job.validating();
        if let Err(e) = self.run(job, meter)? {
            return Some(Err(e));
        }
        if !validating {
            // The old entry's devalidation: the update is complete.
            return Some(Ok(()));
        }
        // The new entry's references are complete: the write. The table is
        // still the validated table the update started on: every other
        // request settles this job before it changes anything.
        let level = match self.pfn(table).map(|p| self.type_info(p)) {
            Ok(i) if i.validated => i.ty.level(),
            _ => None,
        };
        match level {
            Some(level) => self.write_entry(job, at, level, new, flush, meter),
            None => {
                log::error!("mmu: the table of a preempted update changed type");
                Some(Err(MmError::Recursive(table)))
            }
        }
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
