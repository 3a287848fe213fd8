//! # Domains
//!
//! A domain is a guest: its machine frames, what each of them is
//! ([`frame_table`](crate::paging::frame_table)), the state its vCPU starts in ([`BootState`]), and a little
//! per-domain hypervisor state (the partial console line, hypercall counters).
//! [`build()`] makes one from a [`GuestImage`](crate::domain::elf::GuestImage); [`Domain::teardown`] gives every
//! frame back.
//!
//! The memory model is Xen's direct paging: the guest's page tables hold machine
//! frame numbers and the CPU walks them with no second stage, so the only thing
//! standing between a guest and the rest of the machine is the rule that no page
//! table the CPU can reach maps a frame the domain does not own, or maps a
//! page-table frame writable. [`crate::paging`] keeps that rule with Xen's page types
//! and counts, stored in the [`frame_table`](crate::paging::frame_table); the methods here are the domain's
//! MMU operations (pin, unpin, update an entry, switch the base pointer).

pub mod build;
pub mod elf;
pub mod vcpus;

pub use crate::paging::entry::Level;
pub use crate::paging::frame_table::{FrameKind, PageInfo, PageType};
pub use build::{build, BuildError, DomainConfig, Layout, BOOT_STACK_PAGES, DEFAULT_NR_PAGES};

/// Frames a domain owns beyond its memory for its grant table
/// (`KEEL_GNTTAB_MAX_FRAMES`): PFNs `layout.nr_pages ..`, outside the frame
/// list, handed out by `GNTTABOP_setup_table`.
pub const GRANT_TABLE_FRAMES: u64 = keel_abi::grant_table::KEEL_GNTTAB_MAX_FRAMES as u64;

use crate::addr::{GuestVirt, Mfn, Pfn};
use crate::console::LineBuf;
use crate::mem::{Console, FrameSource, PhysMem};
use crate::paging::entry::Pte;
use crate::paging::frame_table::FrameTable;
use crate::paging::job::{Finished, Job, Meter, Origin, Unbounded};
use crate::paging::{Flush, LastTable, Mm, MmError};
use keel_abi::version::AbiVersion;

/// A domain identifier (Xen's `domid_t`). Keel's first guest is domain 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainId(pub u16);

/// Where the domain's vCPU starts (the guest-facing contract in `CONTRACT.md`:
/// RIP = entry, RSP = stack_top, RSI = start_info, CR3 = cr3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootState {
    /// The ELF entry point.
    pub entry: GuestVirt,
    /// Top of the boot stack (16-byte aligned; the first push lands just below).
    pub stack_top: GuestVirt,
    /// The start_info page.
    pub start_info: GuestVirt,
    /// The bootstrap L4 (what CR3 holds).
    pub cr3: Mfn,
}

/// What [`Domain::teardown`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Teardown {
    /// Frames the domain owned.
    pub nr_pages: u64,
    /// Frames the frame source gained (the domain's and its frame table's).
    pub frames_returned: u64,
    /// Frames whose type or reference counts were not zero after every pin and
    /// the base were dropped (0 unless there is a bug).
    pub leaked_counts: u64,
}

/// The longest partial console line buffered per domain; a longer line is
/// printed in pieces (Xen does the same with its per-domain buffer).
pub const CONSOLE_LINE_MAX: usize = 160;

/// Hypercall numbers counted individually; higher numbers share one counter.
pub const COUNTED_HYPERCALLS: usize = 64;

/// A domain. Made by [`build()`]; must be ended with [`Domain::teardown`] to give
/// its frames back (dropping it leaks them).
#[derive(Debug)]
pub struct Domain {
    /// The domain's identifier.
    pub id: DomainId,
    /// The vCPU's initial state.
    pub boot: BootState,
    layout: Layout,
    nx: bool,
    frames: FrameTable,
    /// The L4 the loaded vCPU runs on (holds a type reference:
    /// [`crate::paging`]).
    base: Mfn,
    /// The roots of the domain's other vCPUs (index: vCPU id; `None` for the
    /// loaded one and for a vCPU never initialised), each holding its own
    /// type reference as `base` does (Xen's per-vCPU `guest_table`). All of
    /// a domain's vCPUs run on its CPU, one at a time: the one loaded has its
    /// root in `base`, where every access to guest memory looks.
    vcpu_bases: [Option<Mfn>; vcpus::MAX_VCPUS],
    /// The vCPU whose root `base` is.
    loaded: u8,
    /// The TLB flush owed to the guest before it runs again (per domain:
    /// an update made by one vCPU is owed to all; the run loop flushes the
    /// domain's translations whole when it switches between its vCPUs).
    flush: Flush,
    /// The validation or devalidation an MMU hypercall left part way
    /// ([`crate::paging::job`]): at most one per domain.
    mm_job: Job,
    /// The vCPU whose request last ran `mm_job` (meaningful while it is
    /// busy): another vCPU's MMU request waits for it ([`Self::mm_waits`]).
    mm_owner: u8,
    console: LineBuf<CONSOLE_LINE_MAX>,
    /// `(d<id>) `, made once at build (every console line starts with it).
    console_prefix: ([u8; 10], usize),
    /// The translation of the page `console_io` last read, checked before
    /// each use (`read_cache::ReadCache`): a guest prints from the same buffer.
    pub console_cache: crate::paging::read_cache::ReadCache,
    hypercall_counts: [u64; COUNTED_HYPERCALLS],
    other_hypercalls: u64,
    /// The ABI version this domain is told the hypervisor implements
    /// (`AbiVersion::presented_to`: 0.2 for a guest built before 1.0), kept in
    /// its `XENVER_version` encoding: that is the null hypercall's whole answer
    /// (`cargo keel bench` counts its instructions).
    abi_encoded: u32,
    /// The newest ABI version whose calls are served to this domain
    /// (`AbiVersion::served_to`: what its image knows, up to the hypervisor's
    /// version, or the version in progress to an image declaring it).
    served: AbiVersion,
    /// Its name: the first word of its command line, cut to 16 bytes and
    /// zero-padded (what `getdomaininfo` reports as the handle).
    name: [u8; 16],
    /// Its vCPUs: how many (`keel.vcpus=`), their states, run states and
    /// `vcpu_info` places (`vcpus`). Run-state times are TSC ticks from the
    /// domain's clock's start (system time 0), converted when the guest asks.
    pub vcpus: vcpus::VcpuTable,
}

impl Domain {
    /// The ABI version reported to this domain (`XENVER_version`, CPUID leaf
    /// `0x4000_0001`): the hypervisor's own, except to a guest built before 1.0
    /// (`keel_abi::version::AbiVersion::presented_to`).
    pub const fn abi_version(&self) -> AbiVersion {
        AbiVersion::decode(self.abi_encoded)
    }

    /// [`Self::abi_version`] in the `XENVER_version` encoding.
    pub const fn abi_version_encoded(&self) -> u32 {
        self.abi_encoded
    }

    /// Whether the domain is served the calls (and the answers) introduced in
    /// ABI version `since`: its image knows that version
    /// ([`Self::served_abi`]). A handler of a call newer than 1.0 checks it
    /// and answers `-ENOSYS` otherwise, as the versions the image knows promise.
    pub const fn serves(&self, since: AbiVersion) -> bool {
        since.encode() <= self.served.encode()
    }

    /// The newest ABI version whose calls are served to this domain
    /// (`keel_abi::version::AbiVersion::served_to`).
    pub const fn served_abi(&self) -> AbiVersion {
        self.served
    }

    /// Its name from the boot line (zero-padded).
    pub const fn name(&self) -> [u8; 16] {
        self.name
    }

    /// Number of frames of the domain's memory (`start_info.nr_pages`).
    pub const fn nr_pages(&self) -> u64 {
        self.layout.nr_pages
    }
    /// Number of frames the domain owns: its memory and its grant-table
    /// frames ([`GRANT_TABLE_FRAMES`]).
    pub const fn owned_pages(&self) -> u64 {
        self.frames.nr_pages()
    }
    /// Where everything was put at build time.
    pub const fn layout(&self) -> &Layout {
        &self.layout
    }
    /// Whether the domain's page tables may use NX (its EFER.NXE is set): the
    /// builder set NX on non-executable pages, and page walks treat NX as reserved
    /// when this is false.
    pub const fn nx_enabled(&self) -> bool {
        self.nx
    }

    /// Whether the domain owns machine frame `mfn`: one load through the
    /// frame table's dense index, O(log n) for a domain without one.
    pub fn owns<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> bool {
        self.frames.pfn(mem, mfn).is_some()
    }
    /// The PFN of an owned frame.
    pub fn pfn_of<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> Option<Pfn> {
        self.frames.pfn(mem, mfn)
    }
    /// The machine frame of `pfn`.
    pub fn mfn_of<M: PhysMem + ?Sized>(&self, mem: &M, pfn: Pfn) -> Option<Mfn> {
        self.frames.mfn(mem, pfn)
    }
    /// What `mfn` is to this domain (`NotOwned` if it is not the domain's).
    pub fn frame_kind<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> FrameKind {
        self.frame_kind_inline(mem, mfn)
    }

    /// [`Self::frame_kind`], always inlined: for the translation of every guest
    /// pointer, where as a call it costs about a third as much again. Only
    /// there: inlined everywhere, it made the halt path's exits dearer.
    #[inline(always)]
    pub fn frame_kind_inline<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> FrameKind {
        match self.frames.pfn(mem, mfn) {
            Some(pfn) => self.frames.kind_of_pfn(mem, pfn),
            None => FrameKind::NotOwned,
        }
    }

    /// The vCPU table, and what each frame is to this domain
    /// ([`Self::frame_kind`]), borrowed together: the table's operations
    /// judge the frames a request names.
    pub fn vcpus_and_frames<'s, M: PhysMem + ?Sized>(
        &'s mut self,
        mem: &'s M,
    ) -> (&'s mut vcpus::VcpuTable, impl Fn(Mfn) -> FrameKind + 's) {
        let frames = &self.frames;
        let kind = move |mfn| match frames.pfn(mem, mfn) {
            Some(pfn) => frames.kind_of_pfn(mem, pfn),
            None => FrameKind::NotOwned,
        };
        (&mut self.vcpus, kind)
    }

    /// The accounting of `mfn`, if the domain owns it.
    pub fn page_info<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> Option<PageInfo> {
        self.frames.info(mem, self.frames.pfn(mem, mfn)?)
    }

    #[inline(always)]
    fn mm<'a, M: PhysMem + ?Sized>(&'a self, mem: &'a mut M) -> Mm<'a, M> {
        Mm {
            ft: &self.frames,
            mem,
            nx: self.nx,
        }
    }

    /// The L4 the loaded vCPU runs on.
    pub const fn base(&self) -> Mfn {
        self.base
    }

    /// The vCPU whose root [`Self::base`] is (0 until another is loaded).
    pub const fn loaded_vcpu(&self) -> u32 {
        self.loaded as u32
    }

    /// The root of vCPU `vcpu`: [`Self::base`] for the loaded one; another's
    /// if it was given one.
    pub fn vcpu_base(&self, vcpu: u32) -> Option<Mfn> {
        if vcpu == self.loaded_vcpu() {
            return Some(self.base);
        }
        self.vcpu_bases.get(vcpu as usize).copied().flatten()
    }

    /// Give vCPU `vcpu` (not the loaded one, without a root yet) the root
    /// `new`, a pinned, validated L4 of the domain, taking its type
    /// reference (`VCPUOP_initialise`'s CR3). `-EINVAL` (Xen's answer to a
    /// CR3 it cannot take) for any other frame, for the loaded vCPU, one
    /// beyond the table and one that has a root already.
    pub fn set_vcpu_base<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        vcpu: u32,
        new: Mfn,
    ) -> Result<(), keel_abi::Errno> {
        use keel_abi::Errno;
        if vcpu == self.loaded_vcpu() {
            return Err(Errno::EINVAL);
        }
        match self.vcpu_bases.get(vcpu as usize) {
            Some(None) => {}
            _ => return Err(Errno::EINVAL),
        }
        self.mm(mem)
            .set_base(None, new)
            .map_err(|_| Errno::EINVAL)?;
        if let Some(slot) = self.vcpu_bases.get_mut(vcpu as usize) {
            *slot = Some(new);
        }
        Ok(())
    }

    /// Load vCPU `vcpu`'s root into [`Self::base`] (the loaded one's goes to
    /// its slot): no reference moves. Whether `vcpu` is loaded now (false:
    /// it has no root, nothing changed).
    pub fn load_vcpu(&mut self, vcpu: u32) -> bool {
        if vcpu == self.loaded_vcpu() {
            return true;
        }
        let Some(new) = self
            .vcpu_bases
            .get_mut(vcpu as usize)
            .and_then(Option::take)
        else {
            return false;
        };
        let old = core::mem::replace(&mut self.base, new);
        if let Some(slot) = self.vcpu_bases.get_mut(usize::from(self.loaded)) {
            *slot = Some(old);
        }
        self.loaded = vcpu as u8;
        true
    }

    /// Pin `mfn` as a table of `level` (validating it), in one go.
    pub fn pin<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        mfn: Mfn,
        level: Level,
    ) -> Result<(), MmError> {
        self.pin_in(mem, mfn, level, &mut Unbounded)
            .unwrap_or(Ok(()))
    }

    /// Drop a pin, in one go.
    pub fn unpin<M: PhysMem + ?Sized>(&mut self, mem: &mut M, mfn: Mfn) -> Result<(), MmError> {
        self.unpin_in(mem, mfn, &mut Unbounded).unwrap_or(Ok(()))
    }

    /// Switch the base pointer to `new` (a pinned, validated L4), in one go; a
    /// full TLB flush is owed afterwards (the caller reloads CR3).
    pub fn new_baseptr<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        new: Mfn,
    ) -> Result<(), MmError> {
        self.new_baseptr_in(mem, new, &mut Unbounded)
            .unwrap_or(Ok(()))
    }

    /// Update the entry at machine address `ptr` (8-byte aligned, in a frame the
    /// domain owns) to `val`, validated, in one go. Records the TLB flush it
    /// needs.
    pub fn update_entry<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        ptr: crate::addr::MachineAddr,
        val: Pte,
    ) -> Result<(), MmError> {
        self.update_entry_in(mem, &mut LastTable::default(), ptr, val, || Unbounded)
            .unwrap_or(Ok(()))
    }

    // The preemptible forms (`crate::paging::job`): `None` when `meter`
    // stopped the work part way; the same request made again goes on. With
    // several vCPUs, their callers ask `mm_waits` before a request and call
    // `mm_ran` after it (once a hypercall or emulated instruction, not once
    // an entry: `mmu_update`'s per-entry path stays as it was).

    /// Whether the loaded vCPU's MMU request must wait (be made again
    /// later) because another vCPU's request left the domain's one job part
    /// way, and that vCPU can go on with it: it is up and not blocked, so it
    /// will execute its request again (its RIP is on it). Without the wait,
    /// each of the waiting vCPU's requests would settle the job, undoing a
    /// validation, and a tree larger than one time slice's work would never
    /// get pinned while another vCPU makes MMU requests (`mmu_race`). A job
    /// whose vCPU went down or blocked is settled as before: nothing waits
    /// for a vCPU that may never come back to it.
    #[inline(always)]
    pub fn mm_waits(&self) -> bool {
        self.mm_job.busy()
            && self.mm_owner != self.loaded
            && self.vcpus.up_at(u32::from(self.mm_owner))
            && !self.vcpus.blocked_at(u32::from(self.mm_owner))
    }

    /// After the loaded vCPU's MMU requests (one hypercall's piece, one
    /// emulated instruction): a job they left part way is its own.
    #[inline(always)]
    pub fn mm_ran(&mut self) {
        if self.mm_job.busy() {
            self.mm_owner = self.loaded;
        }
    }

    /// [`Self::pin`], preemptible.
    pub fn pin_in<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        mfn: Mfn,
        level: Level,
        meter: &mut impl Meter,
    ) -> Finished {
        let mut mm = Mm {
            ft: &self.frames,
            mem,
            nx: self.nx,
        };
        mm.pin_in(&mut self.mm_job, mfn, level, meter)
    }

    /// [`Self::unpin`], preemptible.
    pub fn unpin_in<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        mfn: Mfn,
        meter: &mut impl Meter,
    ) -> Finished {
        let mut mm = Mm {
            ft: &self.frames,
            mem,
            nx: self.nx,
        };
        mm.unpin_in(&mut self.mm_job, mfn, meter)
    }

    /// [`Self::new_baseptr`], preemptible: `new` is the base as soon as the
    /// checks pass; dropping the old base's references may go on later.
    pub fn new_baseptr_in<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        new: Mfn,
        meter: &mut impl Meter,
    ) -> Finished {
        let mut mm = Mm {
            ft: &self.frames,
            mem,
            nx: self.nx,
        };
        let r = mm.set_base_in(&mut self.mm_job, self.base, new, meter);
        let switched = match r {
            Some(r) => r.is_ok(),
            None => self.mm_job.origin() == Origin::NewBase(new),
        };
        if switched {
            self.base = new;
            self.flush = self.flush.merge(Flush::All);
        }
        r
    }

    /// [`Self::update_entry`], preemptible, as the next of a run of updates
    /// with nothing else in between (one `mmu_update` batch): see
    /// [`LastTable`]. The meter is made (`meter()`) only if the update may
    /// have validation work to do.
    #[inline(always)]
    pub fn update_entry_in<M: PhysMem + ?Sized, Mt: Meter>(
        &mut self,
        mem: &mut M,
        last: &mut LastTable,
        ptr: crate::addr::MachineAddr,
        val: Pte,
        meter: impl FnOnce() -> Mt,
    ) -> Finished {
        if !ptr.get().is_multiple_of(8) {
            return Some(Err(MmError::Misaligned));
        }
        let index = (ptr.page_offset() / 8) as usize;
        let mut mm = Mm {
            ft: &self.frames,
            mem,
            nx: self.nx,
        };
        mm.mod_entry_lazy(
            &mut self.mm_job,
            last,
            ptr.frame(),
            index,
            val,
            &mut self.flush,
            meter,
        )
    }

    /// Finish or undo the MMU job an earlier hypercall left part way (see
    /// [`crate::paging::job`]); `true` when none is left.
    pub fn settle_mm<M: PhysMem + ?Sized>(&mut self, mem: &mut M, meter: &mut impl Meter) -> bool {
        let mut mm = Mm {
            ft: &self.frames,
            mem,
            nx: self.nx,
        };
        mm.settle(&mut self.mm_job, meter)
    }

    /// Whether an MMU job is part way.
    pub const fn mm_busy(&self) -> bool {
        self.mm_job.busy()
    }

    /// The request whose work the MMU job part way does (`Origin::None` if
    /// there is none).
    pub const fn mm_job_origin(&self) -> Origin {
        if self.mm_job.busy() {
            self.mm_job.origin()
        } else {
            Origin::None
        }
    }

    /// Owe the guest a TLB flush (TLB_FLUSH_LOCAL, INVLPG_LOCAL).
    pub fn request_flush(&mut self, f: Flush) {
        self.flush = self.flush.merge(f);
    }

    /// The TLB flush owed, cleared: the VMX layer performs it before the next
    /// VM entry.
    /// Whether an update left a TLB flush owed (cheap: no state changes).
    pub fn flush_owed(&self) -> bool {
        !matches!(self.flush, Flush::None)
    }

    pub fn take_flush(&mut self) -> Flush {
        core::mem::take(&mut self.flush)
    }

    // The frame accounting a grant uses: a plain reference and a writable type
    // reference on a frame of this domain, taken and dropped by the grant code
    // (`crate::grant::world`) for a mapping or a copy, possibly by another
    // domain's call. The same rules as the domain's own page tables.

    /// The domain's frame accounting, as a grant reaches it.
    pub fn frame_owner(&self) -> FrameOwner<'_> {
        FrameOwner {
            frames: &self.frames,
            nx: self.nx,
        }
    }

    /// [`Self::frame_owner`] as a value other CPUs can keep
    /// (`crate::peers::registry`): the frame table is a handle on machine
    /// memory, where the counts are.
    pub fn frame_record(&self) -> FrameRecord {
        FrameRecord {
            frames: self.frames.clone(),
            nx: self.nx,
        }
    }

    /// Take a plain reference on `mfn` (a frame of this domain).
    pub fn grant_get_page<M: PhysMem + ?Sized>(
        &self,
        mem: &mut M,
        mfn: Mfn,
    ) -> Result<(), MmError> {
        self.frame_owner().get_page(mem, mfn)
    }
    /// Drop one.
    pub fn grant_put_page<M: PhysMem + ?Sized>(&self, mem: &mut M, mfn: Mfn) {
        self.frame_owner().put_page(mem, mfn)
    }
    /// Take a writable type reference on `mfn` (refused for a page table).
    pub fn grant_get_writable<M: PhysMem + ?Sized>(
        &self,
        mem: &mut M,
        mfn: Mfn,
    ) -> Result<(), MmError> {
        self.frame_owner().get_writable(mem, mfn)
    }
    /// Drop one.
    pub fn grant_put_writable<M: PhysMem + ?Sized>(&self, mem: &mut M, mfn: Mfn) {
        self.frame_owner().put_writable(mem, mfn)
    }

    /// The frame `mfn` of this ending domain outlives it (another domain maps
    /// it through a grant): its teardown neither scrubs nor frees it.
    pub fn grant_keep_frame<M: PhysMem + ?Sized>(&self, mem: &mut M, mfn: Mfn) {
        self.frames.keep_out_of_free(mem, mfn)
    }

    /// Release every pin and the base pointer; returns the number of frames
    /// whose counts did not return to zero (0 unless there is a bug).
    pub fn release_mm<M: PhysMem + ?Sized>(&mut self, mem: &mut M) -> u64 {
        self.settle_mm(mem, &mut Unbounded);
        // Every vCPU's root, the loaded one's last (`release_all`).
        for i in 0..self.vcpu_bases.len() {
            if let Some(b) = self.vcpu_bases.get_mut(i).and_then(Option::take) {
                self.mm(mem).drop_base(b);
            }
        }
        let base = self.base;
        self.mm(mem).release_all(Some(base))
    }

    /// Give every frame back: drop every pin and the base (all counts return
    /// to zero, which is checked and reported), then the domain's own frames
    /// (scrubbed, so no guest data outlives the guest) and the hypervisor frames
    /// of its frame table. Returns what was checked.
    pub fn teardown<M: PhysMem + ?Sized, F: FrameSource + ?Sized>(
        mut self,
        mem: &mut M,
        frames: &mut F,
    ) -> Teardown {
        self.release_frames(mem, frames)
    }

    /// [`Self::teardown`] of a domain whose record stays (it ended while
    /// others run): afterwards it owns no frame, and every lookup in it fails.
    pub fn release_frames<M: PhysMem + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        mem: &mut M,
        frames: &mut F,
    ) -> Teardown {
        let leaked_counts = self.release_mm(mem);
        if leaked_counts != 0 {
            log::error!(
                "domain {}: {leaked_counts} frames still had references at teardown",
                self.id.0
            );
        }
        let before = frames.free_count();
        let nr_pages = self.owned_pages();
        self.frames.take().free(mem, frames);
        Teardown {
            nr_pages,
            frames_returned: frames.free_count().saturating_sub(before),
            leaked_counts,
        }
    }

    /// [`Self::release_frames`] a bounded piece at a time, for a domain
    /// that ended while others run: scrub and free its frames from PFN
    /// `from`, at most `n`; the next PFN while some remain. Once none remain
    /// its frame table's own frames are freed too, and it owns nothing. The
    /// caller has released its counts first ([`Self::release_mm`]).
    pub fn free_frames_from<M: PhysMem + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        mem: &mut M,
        frames: &mut F,
        from: u64,
        n: u64,
    ) -> Option<u64> {
        let next = self.frames.free_frames_from(mem, frames, from, n);
        if next.is_none() {
            self.frames.take().free_table(frames);
        }
        next
    }

    /// Append guest console output; complete lines go to `console` as
    /// `(d<id>) <text>\n`, one whole line per call. The text passes the console
    /// filter ([`crate::console::escape_guest`]: printable ASCII, everything else
    /// escaped visibly), so a guest can neither forge another line's prefix nor
    /// drive the operator's terminal.
    pub fn console_write<C: Console + ?Sized>(&mut self, console: &mut C, bytes: &[u8]) {
        let (prefix, n) = self.console_prefix();
        let prefix = prefix.get(..n).unwrap_or(&[]);
        self.console
            .write(prefix, bytes, &mut |r: &[&[u8]]| console.write_parts(r));
    }

    /// Print the buffered partial line, if any (at shutdown, or when killed).
    pub fn console_flush<C: Console + ?Sized>(&mut self, console: &mut C) {
        if self.console.pending().is_empty() {
            return;
        }
        let (prefix, n) = self.console_prefix();
        let prefix = prefix.get(..n).unwrap_or(&[]);
        self.console
            .flush(prefix, &mut |r: &[&[u8]]| console.write_parts(r));
    }

    fn console_prefix(&self) -> ([u8; 10], usize) {
        self.console_prefix
    }

    /// The partial console line not yet printed (filtered).
    pub fn console_pending(&self) -> &[u8] {
        self.console.pending()
    }

    /// Count one hypercall of number `nr` (for benchmarks and diagnostics).
    #[inline(always)]
    pub fn count_hypercall(&mut self, nr: u64) {
        self.count_hypercalls(nr, 1);
    }
    /// Count `n` hypercalls of number `nr` at once (those a vCPU on another
    /// CPU answered there: `vmx::exit::Visitor::own_exit`).
    #[inline(always)]
    pub fn count_hypercalls(&mut self, nr: u64, n: u64) {
        let slot = usize::try_from(nr)
            .ok()
            .and_then(|i| self.hypercall_counts.get_mut(i));
        match slot {
            Some(c) => *c = c.wrapping_add(n),
            None => self.other_hypercalls = self.other_hypercalls.wrapping_add(n),
        }
    }
    /// How many hypercalls of number `nr` the domain made (numbers at or above
    /// [`COUNTED_HYPERCALLS`] share one counter).
    pub fn hypercall_count(&self, nr: u64) -> u64 {
        usize::try_from(nr)
            .ok()
            .and_then(|i| self.hypercall_counts.get(i).copied())
            .unwrap_or(self.other_hypercalls)
    }
}

/// `(d<id>) ` for domain `id`, and its length.
pub(crate) fn console_prefix_for(id: DomainId) -> ([u8; 10], usize) {
    let mut prefix = [0u8; 10];
    let n = keel_abi::platform::domain_prefix(id.0, &mut prefix);
    (prefix, n)
}

/// A domain's frame accounting as another domain's grant reaches it: its
/// frame table (the counts of its frames, in machine memory) and whether NX
/// is legal in its entries. Only counts move through it: a grant never
/// changes the owner's page tables.
#[derive(Clone, Copy)]
pub struct FrameOwner<'a> {
    frames: &'a FrameTable,
    nx: bool,
}

impl FrameOwner<'_> {
    #[inline(always)]
    fn mm<'m, M: PhysMem + ?Sized>(&'m self, mem: &'m mut M) -> Mm<'m, M> {
        Mm {
            ft: self.frames,
            mem,
            nx: self.nx,
        }
    }
    /// Take a plain reference on `mfn` (a frame of this domain).
    pub fn get_page<M: PhysMem + ?Sized>(&self, mem: &mut M, mfn: Mfn) -> Result<(), MmError> {
        self.mm(mem).get_page(mfn)
    }
    /// Drop one.
    pub fn put_page<M: PhysMem + ?Sized>(&self, mem: &mut M, mfn: Mfn) {
        self.mm(mem).put_page(mfn)
    }
    /// Take a writable type reference on `mfn` (refused for a page table).
    pub fn get_writable<M: PhysMem + ?Sized>(&self, mem: &mut M, mfn: Mfn) -> Result<(), MmError> {
        self.mm(mem).get_type(mfn, PageType::Writable)
    }
    /// Drop one.
    pub fn put_writable<M: PhysMem + ?Sized>(&self, mem: &mut M, mfn: Mfn) {
        self.mm(mem).put_type(mfn)
    }
}

/// A [`FrameOwner`] held by value (see [`Domain::frame_record`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameRecord {
    frames: FrameTable,
    nx: bool,
}

impl FrameRecord {
    /// The accounting it reaches.
    pub fn owner(&self) -> FrameOwner<'_> {
        FrameOwner {
            frames: &self.frames,
            nx: self.nx,
        }
    }
}

#[cfg(test)]
mod tests_roots;
