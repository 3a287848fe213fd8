//! # The per-domain frame table: who owns a machine frame, and what it is
//!
//! Direct paging puts machine frame numbers in the guest's page tables, so every
//! decision the hypervisor makes about guest memory ("may this entry point there?",
//! "may this hypercall write there?") starts with two questions about a machine
//! frame: does this domain own it, and what type is it? Xen answers them with
//! `frame_table`, one `struct page_info` per machine frame (owner, type and count,
//! reference count). Keel keeps the same information per *domain*, indexed by PFN,
//! with a reverse index from MFN:
//!
//! - the **P2M** table: for each PFN, 32 bytes: the MFN, the type word (page
//!   type, pinned and validated bits, type count: [`PageInfo`]), the reference
//!   count, and a spare word;
//! - the **M2P** index: the domain's MFNs sorted, each packed with its PFN
//!   (`mfn << 24 | pfn`), so MFN -> PFN is a binary search: O(log n) reads;
//! - when the domain's frames are close together (the allocator hands out the
//!   lowest free frames, so they usually are), a **dense** reverse index too: one
//!   `u32` (PFN + 1, 0 = not the domain's) per machine frame between the lowest and
//!   highest MFN, so MFN -> PFN is one read. Page-table validation asks this
//!   question for every entry, which is why it is worth a few frames.
//!
//! There is no heap in the hypervisor, so both live in hypervisor-owned machine
//! frames (taken from the [`FrameSource`], never mapped into the guest) and are read
//! through [`PhysMem`]. The rules that change the counts are in [`crate::paging`].
//!
//! Several CPUs change one frame's counts at once (another domain's grant, a
//! second vCPU), so the type word and the reference count change only through
//! [`FrameTable::update_type`] and [`FrameTable::update_refs`]:
//! compare-and-exchange loops on the word, as Xen's `count_info` and
//! `type_info` ([`crate::paging`], "Several CPUs", says why and what else is
//! serialised). The `set_*` stores are for words no other CPU can reach (a
//! table being built, tests).

use super::entry::Level;
use crate::addr::{MachineAddr, Mfn, Pfn, PAGE_SIZE};
use crate::mem::{FrameSource, PhysMem};

/// Bytes per P2M entry: MFN, type word, reference count, spare.
const P2M_ENTRY: u64 = 32;
/// Offset of the type word in a P2M entry.
const P2M_TYPE: u64 = 8;
/// Offset of the reference count in a P2M entry.
const P2M_REFS: u64 = 16;
/// Bytes per M2P entry.
const M2P_ENTRY: u64 = 8;
/// Bits of the packed PFN in an M2P entry.
const M2P_PFN_BITS: u32 = 24;

/// The most frames a domain may have (PFNs must fit the M2P packing): 2^24 frames,
/// 64 GiB.
pub const MAX_DOMAIN_PAGES: u64 = 1 << M2P_PFN_BITS;
/// The highest MFN a domain frame may have (52-bit machine addresses, the
/// architectural maximum).
pub const MAX_MFN: u64 = (1 << 40) - 1;

/// What a frame is, from the hypervisor's point of view (Xen's page type).
///
/// The coarse view of a frame's [`PageType`] that hypercall copies need: a frame
/// whose type is a page-table level is `PageTable` (whatever its type count),
/// everything else the domain owns is `Writable` (which a copy to the guest still
/// reaches only through a writable mapping, i.e. a `Writable` type reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Not a frame of this domain.
    NotOwned,
    /// Ordinary memory: the guest may map it writable, hypercalls may write it.
    Writable,
    /// A page table of the given level: mapped read-only, never written by a
    /// hypercall's copy to the guest.
    PageTable(Level),
}

/// A frame's page type (Xen's `PGT_*`): what the hypervisor currently lets the
/// frame be used as. It changes only while the type count is zero
/// ([`crate::paging`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageType {
    /// No use yet (or every use dropped and none taken since).
    None,
    /// Mapped writable by at least one L1 entry (the count counts them).
    Writable,
    /// A page table of this level (the count counts pins, upper-level entries
    /// that reference it, and the vCPU's base pointer for an L4).
    Table(Level),
}

impl PageType {
    const fn code(self) -> u64 {
        match self {
            PageType::None => 0,
            PageType::Writable => 1,
            PageType::Table(l) => 1 + l.number() as u64,
        }
    }
    const fn from_code(c: u64) -> PageType {
        match c & 0xff {
            1 => PageType::Writable,
            2 => PageType::Table(Level::L1),
            3 => PageType::Table(Level::L2),
            4 => PageType::Table(Level::L3),
            5 => PageType::Table(Level::L4),
            _ => PageType::None,
        }
    }
    /// The level, for a page-table type.
    pub const fn level(self) -> Option<Level> {
        match self {
            PageType::Table(l) => Some(l),
            _ => None,
        }
    }
}

/// Everything the hypervisor tracks about one frame of a domain (Xen's
/// `page_info`: `count_info` and `type_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// The current type.
    pub ty: PageType,
    /// How many uses of the current type exist.
    pub type_count: u32,
    /// How many references exist: present entries of validated tables that
    /// point at the frame, plus a pin, plus the base pointer.
    pub ref_count: u64,
    /// The guest pinned the frame as a table of its type.
    pub pinned: bool,
    /// The frame's entries are validated and hold references (page-table types
    /// with a non-zero type count only).
    pub validated: bool,
}

/// The type half of a [`PageInfo`]: everything but the reference count, which
/// is what one word of the P2M entry holds (the type rules of [`crate::paging`]
/// read and write it without touching the count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    /// The current type.
    pub ty: PageType,
    /// How many uses of the current type exist.
    pub type_count: u32,
    /// The guest pinned the frame as a table of its type.
    pub pinned: bool,
    /// The frame's entries are validated and hold references.
    pub validated: bool,
}

impl TypeInfo {
    /// A frame with no type use.
    pub const FREE: TypeInfo = PageInfo::FREE.type_info();
    const PINNED: u64 = 1 << 8;
    const VALIDATED: u64 = 1 << 9;
    const fn encode(&self) -> u64 {
        self.ty.code()
            | if self.pinned { Self::PINNED } else { 0 }
            | if self.validated { Self::VALIDATED } else { 0 }
            | (self.type_count as u64) << 32
    }
    const fn decode(type_word: u64) -> TypeInfo {
        TypeInfo {
            ty: PageType::from_code(type_word),
            type_count: (type_word >> 32) as u32,
            pinned: type_word & Self::PINNED != 0,
            validated: type_word & Self::VALIDATED != 0,
        }
    }
    /// The whole accounting, with `ref_count` references.
    pub const fn with_refs(self, ref_count: u64) -> PageInfo {
        PageInfo {
            ty: self.ty,
            type_count: self.type_count,
            ref_count,
            pinned: self.pinned,
            validated: self.validated,
        }
    }
}

impl PageInfo {
    /// A frame nobody uses.
    pub const FREE: PageInfo = PageInfo {
        ty: PageType::None,
        type_count: 0,
        ref_count: 0,
        pinned: false,
        validated: false,
    };
    /// The type half (everything but the reference count).
    pub const fn type_info(&self) -> TypeInfo {
        TypeInfo {
            ty: self.ty,
            type_count: self.type_count,
            pinned: self.pinned,
            validated: self.validated,
        }
    }
    /// The coarse kind hypercall copies use.
    pub const fn kind(&self) -> FrameKind {
        match self.ty {
            PageType::Table(l) => FrameKind::PageTable(l),
            _ => FrameKind::Writable,
        }
    }
}

/// A run of hypervisor frames holding one of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Extent {
    first: Mfn,
    count: u64,
}

impl Extent {
    fn alloc(frames: &mut (impl FrameSource + ?Sized), bytes: u64) -> Option<Extent> {
        let count = bytes.div_ceil(PAGE_SIZE).max(1);
        let first = frames.alloc_contiguous(count)?;
        Some(Extent { first, count })
    }
    fn free(self, frames: &mut (impl FrameSource + ?Sized)) {
        for i in 0..self.count {
            frames.free_frame(self.first.add(i));
        }
    }
    fn at(self, byte: u64) -> MachineAddr {
        MachineAddr::new(self.first.addr().get() + byte)
    }
}

/// The P2M table and M2P index of one domain. See the module documentation.
/// A handle: the accounting lives in machine memory, so a copy (another CPU's
/// view of the domain, `crate::peers::registry`) reaches the same counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameTable {
    nr_pages: u64,
    p2m: Extent,
    m2p: Extent,
    dense: Option<Dense>,
}

/// The dense MFN -> PFN index over `[first, first + span)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dense {
    table: Extent,
    first: Mfn,
    span: u64,
}

/// The dense index is built when the domain's MFNs span at most this many
/// frames per domain frame (4 bytes per spanned frame: at most 1/256 of the
/// domain's memory).
const DENSE_SPAN_PER_PAGE: u64 = 4;

/// Why a frame table could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameTableError {
    /// The frame source ran dry (the table's own frames or the domain's).
    OutOfMemory,
    /// The frame source returned a frame twice, or one above [`MAX_MFN`].
    BadFrame(Mfn),
}

impl FrameTable {
    /// Allocate the table and `nr_pages` domain frames (zeroed), all
    /// [`PageInfo::FREE`].
    /// On failure nothing stays allocated.
    pub fn alloc<M: PhysMem + ?Sized, F: FrameSource + ?Sized>(
        nr_pages: u64,
        mem: &mut M,
        frames: &mut F,
    ) -> Result<FrameTable, FrameTableError> {
        if nr_pages > MAX_DOMAIN_PAGES {
            return Err(FrameTableError::OutOfMemory);
        }
        let p2m =
            Extent::alloc(frames, nr_pages * P2M_ENTRY).ok_or(FrameTableError::OutOfMemory)?;
        let Some(m2p) = Extent::alloc(frames, nr_pages * M2P_ENTRY) else {
            p2m.free(frames);
            return Err(FrameTableError::OutOfMemory);
        };
        let mut t = FrameTable {
            nr_pages: 0,
            p2m,
            m2p,
            dense: None,
        };
        // Domain frames one at a time: the guest must not rely on contiguity
        // (its frame list says where each PFN is), and the allocator need not
        // have nr_pages contiguous frames.
        for pfn in 0..nr_pages {
            let Some(mfn) = frames.alloc_frame() else {
                t.free(mem, frames);
                return Err(FrameTableError::OutOfMemory);
            };
            if mfn.get() > MAX_MFN {
                frames.free_frame(mfn);
                t.free(mem, frames);
                return Err(FrameTableError::BadFrame(mfn));
            }
            // Whatever the frame held before (another domain's data, or ours) must
            // not leak into this domain.
            mem.zero_frame(mfn);
            mem.write_u64(t.p2m.at(pfn * P2M_ENTRY), mfn.get());
            mem.write_u64(
                t.p2m.at(pfn * P2M_ENTRY + P2M_TYPE),
                TypeInfo::FREE.encode(),
            );
            mem.write_u64(t.p2m.at(pfn * P2M_ENTRY + P2M_REFS), 0);
            mem.write_u64(t.m2p.at(pfn * M2P_ENTRY), (mfn.get() << M2P_PFN_BITS) | pfn);
            t.nr_pages = pfn + 1;
        }
        t.sort_m2p(mem);
        // A frame handed out twice would be mapped at two PFNs and freed twice.
        // Mark every repeat (after the first) so that `free` frees each frame once.
        let mut dup = None;
        for i in 1..t.nr_pages {
            let (a, b) = (t.m2p_entry(mem, i - 1), t.m2p_entry(mem, i));
            if a >> M2P_PFN_BITS == b >> M2P_PFN_BITS {
                let dup_pfn = b & ((1 << M2P_PFN_BITS) - 1);
                mem.write_u64(t.p2m.at(dup_pfn * P2M_ENTRY), u64::MAX);
                dup.get_or_insert(Mfn::new(b >> M2P_PFN_BITS));
            }
        }
        if let Some(d) = dup {
            t.free(mem, frames);
            return Err(FrameTableError::BadFrame(d));
        }
        t.dense = t.build_dense(mem, frames);
        Ok(t)
    }

    /// Take the table out, leaving one of no frames in its place (every
    /// lookup in it fails): a domain that ended gives its frames back while its
    /// record (`Domain`) lives on until the machine powers off.
    pub fn take(&mut self) -> FrameTable {
        let none = Extent {
            first: Mfn::new(0),
            count: 0,
        };
        core::mem::replace(
            self,
            FrameTable {
                nr_pages: 0,
                p2m: none,
                m2p: none,
                dense: None,
            },
        )
    }

    /// Keep `mfn` out of [`Self::free`]: it outlives the domain (another
    /// domain still maps it through a grant, and frees it when that ends).
    /// Its counts stay readable until the table is freed.
    pub fn keep_out_of_free<M: PhysMem + ?Sized>(&self, mem: &mut M, mfn: Mfn) {
        if let Some(pfn) = self.pfn(&*mem, mfn) {
            mem.write_u64(self.p2m.at(pfn.get() * P2M_ENTRY), u64::MAX);
        }
    }

    /// Return the domain's frames (scrubbed) and the table's own frames.
    pub fn free<M: PhysMem + ?Sized, F: FrameSource + ?Sized>(self, mem: &mut M, frames: &mut F) {
        let _ = self.free_frames_from(mem, frames, 0, self.nr_pages);
        self.free_table(frames);
    }

    /// Scrub and free the domain's frames from PFN `from`, at most `n` of
    /// them: the next PFN while some remain. The table stays readable (it is
    /// freed by [`Self::free_table`] once every frame is).
    pub fn free_frames_from<M: PhysMem + ?Sized, F: FrameSource + ?Sized>(
        &self,
        mem: &mut M,
        frames: &mut F,
        from: u64,
        n: u64,
    ) -> Option<u64> {
        let end = from.saturating_add(n.max(1)).min(self.nr_pages);
        for pfn in from..end {
            let raw = mem.read_u64(self.p2m.at(pfn * P2M_ENTRY));
            // u64::MAX marks a slot whose frame is freed through another slot.
            if raw != u64::MAX {
                mem.zero_frame(Mfn::new(raw));
                frames.free_frame(Mfn::new(raw));
            }
        }
        (end < self.nr_pages).then_some(end)
    }

    /// Free the table's own frames (after [`Self::free_frames_from`] freed
    /// every frame of the domain).
    pub fn free_table<F: FrameSource + ?Sized>(self, frames: &mut F) {
        self.p2m.free(frames);
        self.m2p.free(frames);
        if let Some(d) = self.dense {
            d.table.free(frames);
        }
    }

    /// Build the dense index if the MFNs are close enough together and the
    /// frames are there (it is an optimisation: without it lookups search).
    fn build_dense<M: PhysMem + ?Sized, F: FrameSource + ?Sized>(
        &self,
        mem: &mut M,
        frames: &mut F,
    ) -> Option<Dense> {
        let n = self.nr_pages;
        let lo = self.m2p_entry(mem, 0) >> M2P_PFN_BITS;
        let hi = self.m2p_entry(mem, n.checked_sub(1)?) >> M2P_PFN_BITS;
        let span = hi.checked_sub(lo)? + 1;
        if span > n.saturating_mul(DENSE_SPAN_PER_PAGE) {
            return None;
        }
        let table = Extent::alloc(frames, span * 4)?;
        for i in 0..table.count {
            mem.zero_frame(table.first.add(i));
        }
        for i in 0..n {
            let e = self.m2p_entry(mem, i);
            let (mfn, pfn) = (e >> M2P_PFN_BITS, e & ((1 << M2P_PFN_BITS) - 1));
            // pfn < 2^24, so pfn + 1 fits a u32.
            mem.write_u32(table.at((mfn - lo) * 4), (pfn + 1) as u32);
        }
        Some(Dense {
            table,
            first: Mfn::new(lo),
            span,
        })
    }

    /// Number of frames.
    pub const fn nr_pages(&self) -> u64 {
        self.nr_pages
    }

    /// The machine frame of `pfn`, if the domain has that PFN.
    pub fn mfn<M: PhysMem + ?Sized>(&self, mem: &M, pfn: Pfn) -> Option<Mfn> {
        (pfn.get() < self.nr_pages)
            .then(|| Mfn::new(mem.read_u64(self.p2m.at(pfn.get() * P2M_ENTRY))))
    }

    /// The PFN of `mfn`, if the domain owns it: one read of the dense index, or
    /// a binary search of the M2P index.
    #[inline]
    pub fn pfn<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> Option<Pfn> {
        if let Some(d) = self.dense {
            // The dense index covers only MFNs of the domain (so <= MAX_MFN);
            // one unsigned comparison rejects MFNs below and above it.
            let off = mfn.get().wrapping_sub(d.first.get());
            if off >= d.span {
                return None;
            }
            return mem
                .read_u32(d.table.at(off * 4))
                .checked_sub(1)
                .map(|p| Pfn::new(u64::from(p)));
        }
        self.pfn_search(mem, mfn)
    }

    /// [`Self::pfn`] without the dense index (out of line: the dense lookup is
    /// the common case, and this loop would give it a large frame).
    #[inline(never)]
    fn pfn_search<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> Option<Pfn> {
        if mfn.get() > MAX_MFN {
            return None;
        }
        let (mut lo, mut hi) = (0u64, self.nr_pages);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.m2p_entry(mem, mid);
            let m = e >> M2P_PFN_BITS;
            if m == mfn.get() {
                return Some(Pfn::new(e & ((1 << M2P_PFN_BITS) - 1)));
            }
            if m < mfn.get() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        None
    }

    /// The kind of `pfn` (`NotOwned` past the end).
    pub fn kind_of_pfn<M: PhysMem + ?Sized>(&self, mem: &M, pfn: Pfn) -> FrameKind {
        match self.info(mem, pfn) {
            Some(i) => i.kind(),
            None => FrameKind::NotOwned,
        }
    }

    /// The accounting of `pfn` (`None` past the end).
    pub fn info<M: PhysMem + ?Sized>(&self, mem: &M, pfn: Pfn) -> Option<PageInfo> {
        let t = self.type_info(mem, pfn)?;
        let refs = self.ref_count(mem, pfn)?;
        Some(t.with_refs(refs))
    }

    /// Store the accounting of `pfn` (ignored past the end):
    /// a plain store, for a word no other CPU can change meanwhile.
    pub fn set_info<M: PhysMem + ?Sized>(&self, mem: &mut M, pfn: Pfn, info: PageInfo) {
        self.set_type_info(mem, pfn, info.type_info());
        self.set_ref_count(mem, pfn, info.ref_count);
    }

    // The two halves of the accounting, one word each: the type rules read and
    // change only the type word, references only the count, so each costs one
    // machine-memory access instead of two.

    /// The type half of the accounting of `pfn` (`None` past the end).
    pub fn type_info<M: PhysMem + ?Sized>(&self, mem: &M, pfn: Pfn) -> Option<TypeInfo> {
        (pfn.get() < self.nr_pages)
            .then(|| TypeInfo::decode(mem.read_u64(self.p2m.at(pfn.get() * P2M_ENTRY + P2M_TYPE))))
    }

    /// Store the type half of the accounting of `pfn` (ignored past the
    /// end): a plain store, for a word no other CPU can change meanwhile.
    pub fn set_type_info<M: PhysMem + ?Sized>(&self, mem: &mut M, pfn: Pfn, t: TypeInfo) {
        if pfn.get() < self.nr_pages {
            mem.write_u64(self.p2m.at(pfn.get() * P2M_ENTRY + P2M_TYPE), t.encode());
        }
    }

    /// The reference count of `pfn` (`None` past the end).
    pub fn ref_count<M: PhysMem + ?Sized>(&self, mem: &M, pfn: Pfn) -> Option<u64> {
        (pfn.get() < self.nr_pages)
            .then(|| mem.read_u64(self.p2m.at(pfn.get() * P2M_ENTRY + P2M_REFS)))
    }

    /// Store the reference count of `pfn` (ignored past the end):
    /// a plain store, for a word no other CPU can change meanwhile.
    pub fn set_ref_count<M: PhysMem + ?Sized>(&self, mem: &mut M, pfn: Pfn, refs: u64) {
        if pfn.get() < self.nr_pages {
            mem.write_u64(self.p2m.at(pfn.get() * P2M_ENTRY + P2M_REFS), refs);
        }
    }

    /// Change the type word of `pfn` as one atomic step (a compare-and-exchange
    /// loop, Xen's `_get_page_type`): `f` maps the word it sees to the new one,
    /// or refuses (nothing stored); if another CPU changed the word between
    /// the read and the exchange, `f` runs again on what it changed it to.
    /// `Ok` holds the word `f` accepted (the one replaced). Past the end `f`
    /// sees [`TypeInfo::FREE`] and nothing is stored.
    #[inline(always)]
    pub fn update_type<M: PhysMem + ?Sized, R>(
        &self,
        mem: &mut M,
        pfn: Pfn,
        mut f: impl FnMut(TypeInfo) -> Result<TypeInfo, R>,
    ) -> Result<TypeInfo, R> {
        if pfn.get() >= self.nr_pages {
            return f(TypeInfo::FREE).map(|_| TypeInfo::FREE);
        }
        let at = self.p2m.at(pfn.get() * P2M_ENTRY + P2M_TYPE);
        let mut word = mem.load_u64(at);
        loop {
            let old = TypeInfo::decode(word);
            let new = f(old)?.encode();
            let found = mem.cmpxchg_u64(at, word, new);
            if found == word {
                return Ok(old);
            }
            word = found;
        }
    }

    /// Change the reference count of `pfn` as one atomic step, as
    /// [`Self::update_type`] the type word (Xen's `get_page`): `Ok` holds the
    /// count `f` accepted. Past the end `f` sees 0 and nothing is stored.
    #[inline(always)]
    pub fn update_refs<M: PhysMem + ?Sized, R>(
        &self,
        mem: &mut M,
        pfn: Pfn,
        mut f: impl FnMut(u64) -> Result<u64, R>,
    ) -> Result<u64, R> {
        if pfn.get() >= self.nr_pages {
            return f(0).map(|_| 0);
        }
        let at = self.p2m.at(pfn.get() * P2M_ENTRY + P2M_REFS);
        let mut refs = mem.load_u64(at);
        loop {
            let new = f(refs)?;
            let found = mem.cmpxchg_u64(at, refs, new);
            if found == refs {
                return Ok(refs);
            }
            refs = found;
        }
    }

    fn m2p_entry<M: PhysMem + ?Sized>(&self, mem: &M, i: u64) -> u64 {
        mem.read_u64(self.m2p.at(i * M2P_ENTRY))
    }

    /// Heapsort of the M2P index in place: O(n log n), no recursion, no memory.
    fn sort_m2p<M: PhysMem + ?Sized>(&self, mem: &mut M) {
        let n = self.nr_pages;
        let at = |i: u64| self.m2p.at(i * M2P_ENTRY);
        let sift_down = |mem: &mut M, mut root: u64, end: u64| loop {
            let mut child = 2 * root + 1;
            if child >= end {
                break;
            }
            if child + 1 < end && mem.read_u64(at(child)) < mem.read_u64(at(child + 1)) {
                child += 1;
            }
            let (r, c) = (mem.read_u64(at(root)), mem.read_u64(at(child)));
            if r >= c {
                break;
            }
            mem.write_u64(at(root), c);
            mem.write_u64(at(child), r);
            root = child;
        };
        for start in (0..n / 2).rev() {
            sift_down(mem, start, n);
        }
        for end in (1..n).rev() {
            let (a, b) = (mem.read_u64(at(0)), mem.read_u64(at(end)));
            mem.write_u64(at(0), b);
            mem.write_u64(at(end), a);
            sift_down(mem, 0, end);
        }
    }
}

#[cfg(test)]
mod tests;
