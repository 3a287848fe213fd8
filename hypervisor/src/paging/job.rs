//! # Validation and devalidation in bounded pieces (Xen's `PGT_partial`, XSA-45)
//!
//! Validating a table that references unvalidated tables validates the tree
//! below it, and dropping the last type reference of a table devalidates the
//! tree below it: up to 512 entries a table, four levels deep, so a pin, an
//! unpin or one `mmu_update` request can cost work in proportion to the
//! guest's memory. A [`Job`] does that work iteratively, depth first, with an
//! explicit path of at most four tables instead of recursion, one entry at a
//! time, and asks a [`Meter`] after each entry whether to stop. Stopped, the
//! job keeps its place (the tables on its path and the next entry of each), and
//! the request that started it is re-executed later and goes on from there.
//!
//! ## The state of the tables on a job's path
//!
//! Every table on the path of a job in progress has its type
//! (`Table(level)`), a type count of exactly one, held by the job, and is not
//! validated. The other rules already refuse every use of such a frame: a new
//! type reference to it is refused as `Recursive` (the rule that refuses a table
//! referencing itself during validation), an update of one of its entries is
//! refused (it is a table but not validated, and its type count forbids the
//! plain write), it cannot become the base (not validated) and it is never
//! pinned. So nothing but the job changes those tables' counts while the job
//! is stopped: this is why one job per domain suffices, and why a stopped job
//! may be finished or undone later, whatever the guest did in between.
//!
//! - **Validating** (`Kind::Validate`): entries `[0, next)` of each table on
//!   the path hold their references; the entry at `next` of every table but the
//!   deepest is the one that references the table below it on the path (a plain
//!   reference and the job's type reference). When a table's last entry is
//!   done, it is marked validated and its type count (one) becomes the
//!   reference of the entry above it (or of the request, for the root).
//! - **Devalidating** (`Kind::Devalidate`): entries `[0, next)` still hold
//!   their references and are dropped from the top down; a child whose last
//!   type reference is dropped joins the path. A table whose entries are all
//!   dropped gets type count zero and its plain reference (held by the entry
//!   above it, or by the request for the root if `drop_root_ref`) is dropped.
//! - A validation that meets a refused entry turns into the devalidation of
//!   what it did (every table on its path keeps its `next`), and reports the
//!   refusal when that is done: the state is then exactly as before the
//!   request.
//!
//! ## Who owns a job
//!
//! The domain keeps one [`Job`] and the [`Origin`] of the request that started
//! it. The same request re-executed (the guest re-executes a preempted
//! `VMCALL`) goes on with it; any other MMU request first *settles* it: a
//! devalidation is finished (the request that started it was done as far as
//! the guest is concerned), a validation is undone (the guest abandoned the
//! request: its state goes back to before it). Either way, a job is always
//! finished or undone with bounded work per exit. With several vCPUs, the
//! domain (`Domain::mm_waits`) makes another vCPU's request wait while the
//! job's vCPU is up and not blocked, rather than settle it: otherwise each
//! request of one vCPU would undo another's validation, and a tree larger
//! than one time slice's work would never be validated.

use crate::addr::{MachineAddr, Mfn, Pfn};
use crate::mem::PhysMem;
use crate::paging::entry::{Level, Pte, PteFlags, ENTRIES};
use crate::paging::frame_table::PageType;
use crate::paging::{Mm, MmError};

/// Decides when a [`Job`] stops: asked after each run of entries the job
/// handles (never more than [`Meter::quota`] at a time).
pub trait Meter {
    /// How many entries may be handled before the meter is asked (at least
    /// one).
    fn quota(&self) -> u32 {
        1
    }
    /// `n` more entries done; `true` if the job must stop now (with work
    /// left).
    fn tick(&mut self, n: u32) -> bool;
}

/// A meter that never stops a job: for the domain builder, teardown and the
/// paths that are not preemptible.
pub struct Unbounded;

impl Meter for Unbounded {
    #[inline(always)]
    fn quota(&self) -> u32 {
        u32::MAX
    }
    #[inline(always)]
    fn tick(&mut self, _: u32) -> bool {
        false
    }
}

/// At most `n` entries, then stop (tests split jobs at every point with it).
pub struct Entries(pub u64);

impl Meter for Entries {
    fn quota(&self) -> u32 {
        u32::try_from(self.0).unwrap_or(u32::MAX).max(1)
    }
    fn tick(&mut self, n: u32) -> bool {
        self.0 = self.0.saturating_sub(u64::from(n));
        self.0 == 0
    }
}

/// The request a job does the work of: the same request re-executed goes on
/// with the job; any other settles it first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// None (a job of a path that is not preemptible).
    #[default]
    None,
    /// `MMUEXT_PIN_Lk_TABLE` of this frame.
    Pin(Mfn, Level),
    /// `MMUEXT_UNPIN_TABLE` of this frame.
    Unpin(Mfn),
    /// `MMUEXT_NEW_BASEPTR` to this frame.
    NewBase(Mfn),
    /// One validated update: this entry, this value.
    Update(MachineAddr, Pte),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kind {
    #[default]
    Validate,
    Devalidate,
}

/// One table on a job's path and the next entry to handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Step {
    mfn: Mfn,
    pfn: Pfn,
    level: Level,
    next: u16,
}

impl Default for Step {
    fn default() -> Self {
        Step {
            mfn: Mfn::new(0),
            pfn: Pfn::new(0),
            level: Level::L1,
            next: 0,
        }
    }
}

/// A validation or devalidation in progress (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    kind: Kind,
    path: [Step; 4],
    /// Tables on the path; zero when there is no job.
    depth: u8,
    /// Whether finishing the root drops a plain reference on it.
    drop_root_ref: bool,
    origin: Origin,
    /// What the request gets when the job ends.
    result: Result<(), MmError>,
}

/// How a job's run ended.
pub type Finished = Option<Result<(), MmError>>;

impl Default for Job {
    fn default() -> Self {
        Job::IDLE
    }
}

impl Job {
    /// No job.
    pub const IDLE: Job = Job {
        kind: Kind::Validate,
        path: [Step {
            mfn: Mfn::new(0),
            pfn: Pfn::new(0),
            level: Level::L1,
            next: 0,
        }; 4],
        depth: 0,
        drop_root_ref: false,
        origin: Origin::None,
        result: Ok(()),
    };

    /// Whether a job is in progress.
    #[inline(always)]
    pub const fn busy(&self) -> bool {
        self.depth != 0
    }

    /// The request the job in progress does the work of.
    pub const fn origin(&self) -> Origin {
        self.origin
    }

    /// Whether the job in progress validates (rather than devalidates).
    pub fn validating(&self) -> bool {
        self.busy() && self.kind == Kind::Validate
    }

    fn start(&mut self, kind: Kind, origin: Origin, root: Step, drop_root_ref: bool) {
        *self = Job {
            kind,
            depth: 1,
            drop_root_ref,
            origin,
            ..Job::IDLE
        };
        self.path[0] = root;
    }

    /// Whether the next step handles an entry (rather than finishing a table).
    fn entry_next(&self) -> bool {
        let top = self.path[usize::from(self.depth.clamp(1, 4)) - 1];
        match self.kind {
            Kind::Validate => usize::from(top.next) < ENTRIES,
            Kind::Devalidate => top.next > 0,
        }
    }

    fn top(&mut self) -> &mut Step {
        // depth is 1..=4 whenever this is called (run checks it).
        &mut self.path[usize::from(self.depth.clamp(1, 4)) - 1]
    }
}

impl<M: PhysMem + ?Sized> Mm<'_, M> {
    /// Start validating `mfn` (already given type `Table(level)`, count one,
    /// not validated, by [`Self::take_type`]) and run until done or `meter`
    /// stops it. `None`: stopped, the job holds the rest. A refusal undoes
    /// the validation, the type count goes back to zero and, if `drop_ref`,
    /// the plain reference on `mfn` is dropped.
    pub(super) fn start_validate(
        &mut self,
        job: &mut Job,
        origin: Origin,
        (mfn, pfn): (Mfn, Pfn),
        level: Level,
        drop_ref: bool,
        meter: &mut impl Meter,
    ) -> Finished {
        let root = Step {
            mfn,
            pfn,
            level,
            next: 0,
        };
        job.start(Kind::Validate, origin, root, drop_ref);
        self.run(job, meter)
    }

    /// Devalidate table `mfn` of `level`, whose last type reference the
    /// caller claimed ([`Self::put_type_or_claim`]: count one, not
    /// validated), dropping its plain reference at the end if `drop_ref`.
    /// `None`: stopped, the job holds the rest.
    pub(super) fn start_devalidate(
        &mut self,
        job: &mut Job,
        origin: Origin,
        (mfn, pfn): (Mfn, Pfn),
        level: Level,
        drop_ref: bool,
        meter: &mut impl Meter,
    ) -> Finished {
        let root = Step {
            mfn,
            pfn,
            level,
            next: ENTRIES as u16,
        };
        job.start(Kind::Devalidate, origin, root, drop_ref);
        self.run(job, meter)
    }

    /// Finish whatever job is in progress that is not `origin`'s: a
    /// devalidation is completed, a validation undone. `true` when no job is
    /// left.
    pub fn settle(&mut self, job: &mut Job, meter: &mut impl Meter) -> bool {
        if !job.busy() {
            return true;
        }
        if job.kind == Kind::Validate {
            job.kind = Kind::Devalidate;
        }
        self.run(job, meter).is_some()
    }

    /// Run `job` until it ends or `meter` stops it. `Some(result)` when it
    /// ended (the job is then idle): `Ok` for a finished validation or
    /// devalidation, the refusal for a validation that met one (and was
    /// undone).
    pub fn run(&mut self, job: &mut Job, meter: &mut impl Meter) -> Finished {
        let mut stop = false;
        while job.busy() {
            // Stop only before an entry: the steps that finish a table
            // (bounded by the depth) are done first, so a piece never ends
            // with nothing but them left.
            if stop && job.entry_next() {
                return None;
            }
            let quota = meter.quota().max(1);
            let n = match job.kind {
                Kind::Validate => self.validate_step(job, quota),
                Kind::Devalidate => self.devalidate_step(job, quota),
            };
            if n > 0 && meter.tick(n) {
                stop = true;
            }
        }
        let r = job.result;
        *job = Job::IDLE;
        Some(r)
    }

    /// One step of a validation: the entries it handled (the unit of work a
    /// meter counts), at most `quota`. An L1 table's entries reference no
    /// table, so a run of them is handled in one step.
    fn validate_step(&mut self, job: &mut Job, quota: u32) -> u32 {
        let top = *job.top();
        if top.level == Level::L1 && usize::from(top.next) < ENTRIES {
            let end = (usize::from(top.next) + quota as usize).min(ENTRIES);
            let mut i = usize::from(top.next);
            while i < end {
                let e = self.entry(top.mfn, i);
                if e.is_present() {
                    if let Err(err) = self.take_entry_ref(e, Level::L1) {
                        job.top().next = i as u16;
                        job.kind = Kind::Devalidate;
                        job.result = Err(err);
                        return (i + 1 - usize::from(top.next)) as u32;
                    }
                }
                i += 1;
            }
            job.top().next = end as u16;
            return (end - usize::from(top.next)) as u32;
        }
        if usize::from(top.next) == ENTRIES {
            // Every entry holds its references: the table is validated, and
            // the job's type count on it is now its parent entry's.
            self.update_type(top.pfn, |i| i.validated = true);
            job.depth -= 1;
            if job.busy() {
                job.top().next += 1;
            }
            return 0;
        }
        // Empty entries (most of an upper table's) in one run, then at most
        // one present entry.
        let start = usize::from(top.next);
        let end = (start + quota as usize).min(ENTRIES);
        let mut i = start;
        let mut e = Pte::EMPTY;
        while i < end {
            e = self.entry(top.mfn, i);
            if e.is_present() {
                break;
            }
            i += 1;
        }
        job.top().next = i as u16;
        if i == end {
            return (end - start) as u32;
        }
        let handled = (i + 1 - start) as u32;
        match self.take_entry_ref(e, top.level) {
            Ok(None) => job.top().next += 1,
            Ok(Some((mfn, pfn))) => {
                // A table of the level below, now the job's: validate it first.
                let level = top.level.below();
                job.depth += 1;
                *job.top() = Step {
                    mfn,
                    pfn,
                    level,
                    next: 0,
                };
            }
            Err(err) => {
                // Undo what was done, then report the refusal.
                job.kind = Kind::Devalidate;
                job.result = Err(err);
            }
        }
        handled
    }

    /// One step of a devalidation: the entries it handled, at most `quota`
    /// (a run of an L1 table's in one step).
    fn devalidate_step(&mut self, job: &mut Job, quota: u32) -> u32 {
        let top = *job.top();
        if top.level == Level::L1 && top.next > 0 {
            let start = usize::from(top.next);
            let end = start.saturating_sub(quota as usize);
            let mut i = start;
            while i > end {
                i -= 1;
                let e = self.entry(top.mfn, i);
                if e.is_present() {
                    self.put_l1_entry_ref(e);
                }
            }
            job.top().next = end as u16;
            return (start - end) as u32;
        }
        if top.next == 0 {
            self.update_type(top.pfn, |i| {
                i.type_count = 0;
                i.validated = false;
            });
            job.depth -= 1;
            if job.busy() || job.drop_root_ref {
                self.put_page_at(top.pfn);
            }
            return 0;
        }
        // Empty entries in one run (downwards), then at most one present.
        let start = usize::from(top.next);
        let end = start.saturating_sub(quota as usize);
        let mut i = start;
        let mut e = Pte::EMPTY;
        while i > end {
            i -= 1;
            e = self.entry(top.mfn, i);
            if e.is_present() {
                break;
            }
        }
        job.top().next = i as u16;
        let handled = (start - i) as u32;
        if !e.is_present() {
            return handled;
        }
        let mfn = e.frame();
        let Ok(pfn) = self.pfn(mfn) else {
            return handled;
        };
        match top.level {
            Level::L1 if !e.contains(PteFlags::WRITABLE) => self.put_page_at(pfn),
            Level::L1 => {
                self.put_type_shallow(pfn);
                self.put_page_at(pfn);
            }
            level => {
                if self.put_type_or_claim(pfn).is_some() {
                    // The last type reference of a table: the job takes it and
                    // devalidates the table below before dropping the entry's
                    // plain reference.
                    job.depth += 1;
                    *job.top() = Step {
                        mfn,
                        pfn,
                        level: level.below(),
                        next: ENTRIES as u16,
                    };
                } else {
                    self.put_page_at(pfn);
                }
            }
        }
        handled
    }

    /// The references a present entry of a table of `level` holds, taken
    /// without validating: `Some` names a table whose type count left zero
    /// (it has its type, count one, not validated) and must be validated
    /// before the entry is complete. On failure nothing is held.
    #[inline(always)]
    pub(super) fn take_entry_ref(
        &mut self,
        e: Pte,
        level: Level,
    ) -> Result<Option<(Mfn, Pfn)>, MmError> {
        let mfn = crate::paging::check_entry(e, level, self.nx)?;
        let pfn = self.pfn(mfn)?;
        self.get_page_at(pfn, mfn)?;
        let want = match level {
            Level::L1 if !e.contains(PteFlags::WRITABLE) => return Ok(None),
            Level::L1 => PageType::Writable,
            Level::L2 => PageType::Table(Level::L1),
            Level::L3 => PageType::Table(Level::L2),
            Level::L4 => PageType::Table(Level::L3),
        };
        self.take_type_or_put_page(pfn, mfn, want)
    }

    /// The type half of [`Self::take_entry_ref`] (out of line: most entries
    /// are read-only L1 entries); on failure the plain reference is dropped.
    #[inline(never)]
    fn take_type_or_put_page(
        &mut self,
        pfn: Pfn,
        mfn: Mfn,
        want: PageType,
    ) -> Result<Option<(Mfn, Pfn)>, MmError> {
        match self.take_type(pfn, mfn, want) {
            Ok(true) => Ok(Some((mfn, pfn))),
            Ok(false) => Ok(None),
            Err(e) => {
                self.put_page_at(pfn);
                Err(e)
            }
        }
    }

    /// Drop a type reference that cannot be a table's last (a writable one, or
    /// one of several): no devalidation.
    pub(super) fn put_type_shallow(&mut self, pfn: Pfn) {
        self.update_type(pfn, |i| {
            i.type_count = i.type_count.saturating_sub(1);
            if i.type_count == 0 {
                i.validated = false;
            }
        });
    }
}
