//! Reading the guest's own page tables (direct paging).
//!
//! Keel guests run on page tables that hold *machine* frame numbers. To read a
//! table the guest needs a virtual address for its frame: every frame the domain
//! owns is mapped in the bootstrap region at `virt_base + pfn * 4096`, so a table's
//! MFN is turned into a PFN through the frame list (`mfn_list`, indexed here for
//! reverse lookup) and then into that address. The tables themselves are mapped
//! read-only, which is fine: this module only reads.
//!
//! Every read goes through a fault probe, so a broken table is an `Err`, not a crash.

use spin::Mutex;

pub use crate::abi::pte::{Pte, PteFlags};
use crate::abi::{GuestVirt, Mfn, Pfn, PAGE_SIZE};
use crate::fault::{self, Cr, Fault};
use crate::start;

/// The most frames the reverse index holds (256 MiB of guest memory).
pub const MAX_FRAMES: usize = 65536;

/// `mfn_list` sorted by MFN, for MFN -> PFN lookups (`N`: capacity).
pub struct FrameIndex<const N: usize = MAX_FRAMES> {
    pairs: [(u64, u64); N],
    len: usize,
    /// Whether the domain has more frames than the index holds.
    pub truncated: bool,
}

impl<const N: usize> FrameIndex<N> {
    const fn empty() -> Self {
        FrameIndex {
            pairs: [(0, 0); N],
            len: 0,
            truncated: false,
        }
    }

    /// Fill from `(mfn, pfn)` pairs and sort.
    pub fn fill(&mut self, frames: impl Iterator<Item = (Mfn, Pfn)>) {
        self.len = 0;
        self.truncated = false;
        for (m, p) in frames {
            if self.len == N {
                self.truncated = true;
                break;
            }
            self.pairs[self.len] = (m.get(), p.get());
            self.len += 1;
        }
        self.pairs[..self.len].sort_unstable();
    }

    /// The PFN of `mfn`, if the domain owns it.
    pub fn pfn_of(&self, mfn: Mfn) -> Option<Pfn> {
        let s = &self.pairs[..self.len];
        s.binary_search_by_key(&mfn.get(), |&(m, _)| m)
            .ok()
            .map(|i| Pfn::new(s[i].1))
    }

    /// An MFN that appears more than once in the frame list, if any.
    pub fn duplicate(&self) -> Option<Mfn> {
        self.pairs[..self.len]
            .windows(2)
            .find(|w| w[0].0 == w[1].0)
            .map(|w| Mfn::new(w[0].0))
    }

    /// Number of frames indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

static INDEX: Mutex<FrameIndex> = Mutex::new(FrameIndex::empty());
static INDEX_BUILT: spin::Once<Result<(), Fault>> = spin::Once::new();

/// The reverse frame index, built from `mfn_list` on first use. `Err` if reading
/// `mfn_list` faulted. The guard holds a lock that every walk in this module takes:
/// drop it before walking.
pub fn index() -> Result<spin::MutexGuard<'static, FrameIndex>, Fault> {
    let built = INDEX_BUILT.call_once(|| {
        let n = start::start_info().nr_pages;
        let mut err = None;
        let mut idx = INDEX.lock();
        idx.fill(
            (0..n).map_while(|pfn| match start::pfn_to_mfn(Pfn::new(pfn)) {
                Ok(m) => Some((m, Pfn::new(pfn))),
                Err(f) => {
                    err = Some(f);
                    None
                }
            }),
        );
        match err {
            Some(f) => Err(f),
            None => Ok(()),
        }
    });
    (*built)?;
    Ok(INDEX.lock())
}

/// Whether the domain owns `mfn` (it is in `mfn_list`). Takes the index lock
/// briefly: do not call it while holding the guard from [`index`].
pub fn owns(mfn: Mfn) -> bool {
    index().is_ok_and(|i| i.pfn_of(mfn).is_some())
}

/// Why a walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The entry at `level` is not present.
    NotPresent {
        /// 4 = L4 .. 1 = L1.
        level: u32,
    },
    /// The entry at `level` maps a superpage.
    Superpage {
        /// 3 or 2.
        level: u32,
    },
    /// A table frame the domain does not own (so it has no address to read it at).
    NotOwned {
        /// The table's frame.
        mfn: Mfn,
    },
    /// Reading a table or the frame list faulted.
    Fault(Fault),
}

impl core::fmt::Display for WalkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WalkError::NotPresent { level } => write!(f, "L{level} entry not present"),
            WalkError::Superpage { level } => write!(f, "L{level} entry is a superpage"),
            WalkError::NotOwned { mfn } => write!(f, "table frame {:#x} not owned", mfn.get()),
            WalkError::Fault(x) => write!(f, "reading a table took {x}"),
        }
    }
}

/// The frame CR3 points at (the L4).
pub fn cr3_mfn() -> Mfn {
    Mfn::new((fault::read_cr(Cr::Cr3) & Pte::addr_mask()) >> 12)
}

/// The bootstrap-region address of an owned frame.
pub fn frame_va(mfn: Mfn) -> Result<GuestVirt, WalkError> {
    let pfn = index()
        .map_err(WalkError::Fault)?
        .pfn_of(mfn)
        .ok_or(WalkError::NotOwned { mfn })?;
    Ok(start::pfn_to_va(pfn))
}

/// Entry `i` of the table in frame `table`.
pub fn read_entry(table: Mfn, i: usize) -> Result<Pte, WalkError> {
    let va = frame_va(table)?;
    fault::read_u64(GuestVirt::new(va.get() + (i as u64 % 512) * 8))
        .map(Pte)
        .map_err(WalkError::Fault)
}

/// A translation: the four entries used (L4 first) and the final frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Entries from L4 (index 0) to L1 (index 3).
    pub entries: [Pte; 4],
    /// The frame `va` is in.
    pub mfn: Mfn,
}

impl Translation {
    /// Whether every level allows writes.
    pub fn writable(&self) -> bool {
        self.entries.iter().all(|e| e.contains(PteFlags::WRITABLE))
    }
}

/// Walk the current tables for `va`.
pub fn translate(va: GuestVirt) -> Result<Translation, WalkError> {
    let mut table = cr3_mfn();
    let mut entries = [Pte::EMPTY; 4];
    for level in (1..=4u32).rev() {
        let e = read_entry(table, va.table_index(level))?;
        entries[(4 - level) as usize] = e;
        if !e.is_present() {
            return Err(WalkError::NotPresent { level });
        }
        if level != 1 && level != 4 && e.contains(PteFlags::PAGE_SIZE) {
            return Err(WalkError::Superpage { level });
        }
        table = e.frame();
    }
    Ok(Translation {
        entries,
        mfn: table,
    })
}

/// One present entry found by [`visit`].
#[derive(Clone, Copy, Debug)]
pub struct Visit {
    /// The level of the table holding the entry (4 = L4).
    pub level: u32,
    /// The frame of the table holding the entry.
    pub table: Mfn,
    /// The entry's index.
    pub index: usize,
    /// The entry.
    pub pte: Pte,
    /// The first virtual address the entry covers.
    pub va: GuestVirt,
}

/// Call `f` for every present entry of every table reachable from CR3 (L4 first,
/// depth first). Stops at the first table it cannot read.
pub fn visit(mut f: impl FnMut(&Visit)) -> Result<(), WalkError> {
    fn walk(table: Mfn, level: u32, base: u64, f: &mut dyn FnMut(&Visit)) -> Result<(), WalkError> {
        for i in 0..512usize {
            let pte = read_entry(table, i)?;
            if !pte.is_present() {
                continue;
            }
            let mut va = base | ((i as u64) << (12 + 9 * (level - 1)));
            // Sign-extend bit 47 into a canonical address.
            if va & (1 << 47) != 0 {
                va |= 0xffff_0000_0000_0000;
            }
            f(&Visit {
                level,
                table,
                index: i,
                pte,
                va: GuestVirt::new(va),
            });
            if level > 1 && !pte.contains(PteFlags::PAGE_SIZE) {
                walk(pte.frame(), level - 1, va, f)?;
            }
        }
        Ok(())
    }
    walk(cr3_mfn(), 4, 0, &mut f)
}

/// The bootstrap page-table region `[pt_base, pt_base + nr_pt_frames pages)`.
pub fn pt_region() -> (GuestVirt, GuestVirt) {
    let si = start::start_info();
    (
        si.pt_base,
        GuestVirt::new(si.pt_base.get() + si.nr_pt_frames * PAGE_SIZE),
    )
}

/// FNV-1a over the 4 KiB at `va` (read through probes): a cheap fingerprint to
/// notice that a page changed.
pub fn page_hash(va: GuestVirt) -> Result<u64, Fault> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..(PAGE_SIZE / 8) {
        let w = fault::read_u64(GuestVirt::new(va.get() + i * 8))?;
        h ^= w;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_index_lookup_and_duplicates() {
        let mut idx = FrameIndex::<4>::empty();
        idx.fill(
            [
                (Mfn::new(50), Pfn::new(0)),
                (Mfn::new(7), Pfn::new(1)),
                (Mfn::new(99), Pfn::new(2)),
            ]
            .into_iter(),
        );
        assert_eq!(idx.pfn_of(Mfn::new(7)), Some(Pfn::new(1)));
        assert_eq!(idx.pfn_of(Mfn::new(99)), Some(Pfn::new(2)));
        assert_eq!(idx.pfn_of(Mfn::new(8)), None);
        assert_eq!(idx.duplicate(), None);
        idx.fill([(Mfn::new(5), Pfn::new(0)), (Mfn::new(5), Pfn::new(1))].into_iter());
        assert_eq!(idx.duplicate(), Some(Mfn::new(5)));
        idx.fill((0..6).map(|i| (Mfn::new(i), Pfn::new(i))));
        assert!(idx.truncated);
        assert_eq!(idx.len(), 4);
    }
}
