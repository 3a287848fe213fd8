//! Host tests of the page-type rules: one test per rule (each attempts the
//! violation), an independent audit that recomputes every count from the tables,
//! and a property test over random operation sequences.

extern crate std;

use super::*;
use crate::addr::{GuestVirt, MachineAddr, Mfn, Pfn};
use crate::mem::fake::{FakeFrames, FakeMem};
use crate::mem::FrameSource;
use crate::paging::entry::*;
use crate::paging::frame_table::{FrameTable, PageInfo, PageType};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec;

/// A frame table of `n` frames in fake memory.
pub(super) struct World {
    pub(super) mem: FakeMem,
    pub(super) frames: FakeFrames,
    pub(super) ft: Option<FrameTable>,
    pub(super) base: Option<Mfn>,
    pub(super) nx: bool,
}

impl World {
    pub(super) fn new(n: u64) -> World {
        let mut mem = FakeMem::default();
        let mut frames = FakeFrames::new(0x100, n + 16);
        let ft = FrameTable::alloc(n, &mut mem, &mut frames).unwrap();
        World {
            mem,
            frames,
            ft: Some(ft),
            base: None,
            nx: true,
        }
    }
    pub(super) fn ft(&self) -> &FrameTable {
        self.ft.as_ref().unwrap()
    }
    pub(super) fn mm(&mut self) -> Mm<'_, FakeMem> {
        Mm {
            ft: self.ft.as_ref().unwrap(),
            mem: &mut self.mem,
            nx: self.nx,
        }
    }
    pub(super) fn mfn(&self, pfn: u64) -> Mfn {
        self.ft().mfn(&self.mem, Pfn::new(pfn)).unwrap()
    }
    pub(super) fn info(&self, pfn: u64) -> PageInfo {
        self.ft().info(&self.mem, Pfn::new(pfn)).unwrap()
    }
    /// A raw write, as the guest could make through a writable mapping (or the
    /// test sets up before anything is validated).
    pub(super) fn poke(&mut self, pfn: u64, i: usize, v: Pte) {
        let m = self.mfn(pfn);
        self.mem.write_pte(entry_addr(m, i), v);
    }
    pub(super) fn peek(&self, pfn: u64, i: usize) -> Pte {
        self.mem.read_pte(entry_addr(self.mfn(pfn), i))
    }
    pub(super) fn e(&self, pfn: u64, flags: PteFlags) -> Pte {
        Pte::new(self.mfn(pfn), flags)
    }
    pub(super) fn update(&mut self, pfn: u64, i: usize, v: Pte) -> Result<Flush, MmError> {
        let m = self.mfn(pfn);
        self.mm().mod_entry(m, i, v)
    }
    pub(super) fn pin(&mut self, pfn: u64, l: Level) -> Result<(), MmError> {
        let m = self.mfn(pfn);
        self.mm().pin(m, l)
    }
    pub(super) fn unpin(&mut self, pfn: u64) -> Result<(), MmError> {
        let m = self.mfn(pfn);
        self.mm().unpin(m)
    }
    pub(super) fn set_base(&mut self, pfn: u64) -> Result<(), MmError> {
        let m = self.mfn(pfn);
        let old = self.base;
        self.mm().set_base(old, m)?;
        self.base = Some(m);
        Ok(())
    }
    /// A four-level chain: L4 at 0 -> L3 at 1 -> L2 at 2 -> L1 at 3, the L1
    /// mapping frame 10 writable and frame 11 read-only.
    pub(super) fn chain(&mut self) {
        let rw = PteFlags::PRESENT | PteFlags::WRITABLE;
        let (l3, l2, l1) = (self.e(1, rw), self.e(2, rw), self.e(3, rw));
        self.poke(0, 0, l3);
        self.poke(1, 0, l2);
        self.poke(2, 0, l1);
        let (a, b) = (self.e(10, rw), self.e(11, PteFlags::PRESENT));
        self.poke(3, 0, a);
        self.poke(3, 1, b);
    }
    pub(super) fn teardown(mut self) {
        let base = self.base;
        let left = self.mm().release_all(base);
        self.base = None;
        assert_eq!(left, 0, "counts left after release");
        audit(&self).unwrap();
        let ft = self.ft.take().unwrap();
        ft.free(&mut self.mem, &mut self.frames);
        assert!(self.frames.outstanding.is_empty(), "frames not returned");
    }
}

/// Recompute every count from the tables and compare; check the invariants.
pub(super) fn audit(w: &World) -> Result<(), String> {
    let ft = w.ft();
    let n = ft.nr_pages();
    let mut want: BTreeMap<u64, (u32, u64)> = BTreeMap::new(); // pfn -> (type, refs)
    let pfn_of = |m: Mfn| ft.pfn(&w.mem, m).map(|p| p.get());
    for p in 0..n {
        let i = w.info(p);
        if i.pinned {
            let e = want.entry(p).or_default();
            e.0 += 1;
            e.1 += 1;
            if i.ty.level().is_none() {
                return Err(format!("pfn {p} pinned with type {:?}", i.ty));
            }
        }
        if i.validated != (i.type_count > 0 && i.ty.level().is_some()) {
            return Err(format!("pfn {p}: validated flag wrong: {i:?}"));
        }
    }
    if let Some(b) = w.base {
        let p = pfn_of(b).ok_or("base not owned")?;
        let e = want.entry(p).or_default();
        e.0 += 1;
        e.1 += 1;
        if w.info(p).ty != PageType::Table(Level::L4) {
            return Err(format!("base pfn {p} is {:?}", w.info(p)));
        }
    }
    for p in 0..n {
        let i = w.info(p);
        let Some(level) = i.ty.level() else { continue };
        if !i.validated {
            continue;
        }
        for idx in 0..ENTRIES {
            let e = w.peek(p, idx);
            if !e.contains(PteFlags::PRESENT) {
                continue;
            }
            check_entry(e, level, w.nx)
                .map_err(|err| format!("validated L{} pfn {p}[{idx}]: {err}", level.number()))?;
            let t =
                pfn_of(e.frame()).ok_or_else(|| format!("pfn {p}[{idx}] maps foreign {:#x}", e))?;
            let ti = w.info(t);
            let slot = want.entry(t).or_default();
            slot.1 += 1;
            let need = match level {
                Level::L1 if e.contains(PteFlags::WRITABLE) => Some(PageType::Writable),
                Level::L1 => None,
                Level::L2 => Some(PageType::Table(Level::L1)),
                Level::L3 => Some(PageType::Table(Level::L2)),
                Level::L4 => Some(PageType::Table(Level::L3)),
            };
            if let Some(ty) = need {
                slot.0 += 1;
                if ti.ty != ty {
                    return Err(format!(
                        "pfn {p}[{idx}] needs {ty:?} of pfn {t}, which is {ti:?}"
                    ));
                }
            }
            // The bar: no writable mapping of a page-table frame.
            if level == Level::L1 && e.contains(PteFlags::WRITABLE) && ti.ty.level().is_some() {
                return Err(format!("pfn {p}[{idx}] maps table pfn {t} writable"));
            }
        }
    }
    for p in 0..n {
        let i = w.info(p);
        let (t, r) = want.get(&p).copied().unwrap_or_default();
        if (i.type_count, i.ref_count) != (t, r) {
            return Err(format!(
                "pfn {p}: stored type/ref counts {}/{}, recomputed {t}/{r} ({i:?})",
                i.type_count, i.ref_count
            ));
        }
    }
    Ok(())
}

#[test]
fn pinning_a_chain_types_every_frame_and_unpinning_releases_it() {
    let mut w = World::new(16);
    w.chain();
    w.pin(0, Level::L4).unwrap();
    audit(&w).unwrap();
    assert_eq!(w.info(0).ty, PageType::Table(Level::L4));
    assert!(w.info(0).pinned && w.info(0).validated);
    assert_eq!(w.info(3).ty, PageType::Table(Level::L1));
    assert_eq!(w.info(10).ty, PageType::Writable);
    assert_eq!((w.info(10).type_count, w.info(10).ref_count), (1, 1));
    assert_eq!((w.info(11).type_count, w.info(11).ref_count), (0, 1));
    assert_eq!(w.pin(0, Level::L4), Err(MmError::AlreadyPinned(w.mfn(0))));
    w.set_base(0).unwrap();
    // Unpinning the base keeps it validated (the base holds a type reference).
    w.unpin(0).unwrap();
    assert!(w.info(0).validated);
    assert_eq!(w.unpin(0), Err(MmError::NotPinned(w.mfn(0))));
    audit(&w).unwrap();
    w.teardown();
}

#[test]
fn unpin_devalidates_and_counts_return_to_zero() {
    let mut w = World::new(16);
    w.chain();
    w.pin(0, Level::L4).unwrap();
    w.unpin(0).unwrap();
    for p in 0..16 {
        let i = w.info(p);
        assert_eq!(
            (i.type_count, i.ref_count, i.validated),
            (0, 0, false),
            "{p}"
        );
    }
    // A devalidated table is ordinary memory again.
    let v = w.e(5, PteFlags::PRESENT);
    w.update(3, 7, v).unwrap();
    assert_eq!(w.peek(3, 7), v);
    w.teardown();
}

#[test]
fn an_entry_may_reference_only_the_domains_frames() {
    let mut w = World::new(16);
    w.chain();
    w.poke(3, 2, Pte::new(Mfn::new(0x5), PteFlags::PRESENT)); // below the fake frames: not owned
    assert_eq!(w.pin(0, Level::L4), Err(MmError::NotOwned(Mfn::new(0x5))));
    audit(&w).unwrap();
    for p in 0..16 {
        assert_eq!(w.info(p).type_count, 0, "failed pin left a count on {p}");
    }
    w.poke(3, 2, Pte::EMPTY);
    w.pin(0, Level::L4).unwrap();
    for foreign in [
        Mfn::new(0x5),
        Mfn::new(0xf_ffff_ffff),
        Mfn::new(0x100 + 100),
    ] {
        assert_eq!(
            w.update(3, 5, Pte::new(foreign, PteFlags::PRESENT)),
            Err(MmError::NotOwned(foreign))
        );
        assert_eq!(w.peek(3, 5), Pte::EMPTY, "a refused update wrote");
    }
    // The table frame itself must be the domain's.
    assert_eq!(
        w.mm().mod_entry(Mfn::new(0x5), 0, Pte::EMPTY),
        Err(MmError::NotOwned(Mfn::new(0x5)))
    );
    audit(&w).unwrap();
    w.teardown();
}

#[test]
fn no_writable_mapping_of_a_page_table() {
    let mut w = World::new(16);
    w.chain();
    w.pin(0, Level::L4).unwrap();
    for table in 0..4 {
        let v = w.e(table, PteFlags::PRESENT | PteFlags::WRITABLE);
        let r = w.update(3, 9, v);
        assert!(
            matches!(r, Err(MmError::TypeConflict { .. })),
            "RW map of table {table}: {r:?}"
        );
        // Read-only is fine.
        let v = w.e(table, PteFlags::PRESENT);
        w.update(3, 9, v).unwrap();
    }
    // And a frame mapped writable cannot become a table.
    assert!(matches!(
        w.pin(10, Level::L1),
        Err(MmError::TypeConflict { .. })
    ));
    let v = w.e(10, PteFlags::PRESENT | PteFlags::WRITABLE);
    assert!(matches!(
        w.update(2, 1, v),
        Err(MmError::TypeConflict { .. })
    ));
    audit(&w).unwrap();
    w.teardown();
}

#[test]
fn xsa182_flag_only_update_is_fully_validated() {
    let mut w = World::new(16);
    w.chain();
    // Map L1 (pfn 3) read-only in itself, then try to flip just RW on.
    let ro = w.e(3, PteFlags::PRESENT | PteFlags::ACCESSED);
    w.poke(3, 4, ro);
    w.pin(0, Level::L4).unwrap();
    assert!(matches!(
        w.update(3, 4, ro.with(PteFlags::WRITABLE)),
        Err(MmError::TypeConflict { .. })
    ));
    assert_eq!(w.peek(3, 4), ro);
    // The same for an L4 entry: RW on an existing L3 link is fine (a non-leaf
    // RW does not make the table writable), but PS or a reserved bit is not.
    let l3 = w.peek(0, 0);
    w.update(0, 0, l3.without(PteFlags::WRITABLE)).unwrap();
    w.update(0, 0, l3).unwrap();
    assert!(matches!(
        w.update(0, 0, l3.with(PteFlags::PAGE_SIZE)),
        Err(MmError::Reserved { .. })
    ));
    assert!(matches!(
        w.update(1, 0, w.peek(1, 0).with(PteFlags::PAGE_SIZE)),
        Err(MmError::Superpage { .. })
    ));
    audit(&w).unwrap();
    w.teardown();
}

#[test]
fn superpages_and_reserved_bits_are_refused() {
    for (level, e, ok) in [
        (Level::L2, PteFlags::PRESENT | PteFlags::PAGE_SIZE, false),
        (Level::L3, PteFlags::PRESENT | PteFlags::PAGE_SIZE, false),
        (Level::L4, PteFlags::PRESENT | PteFlags::PAGE_SIZE, false),
        (Level::L1, PteFlags::PRESENT | PteFlags::PAGE_SIZE, false), // PAT: refused
        (
            Level::L1,
            PteFlags::PRESENT
                | PteFlags::GLOBAL
                | PteFlags::DIRTY
                | PteFlags::ACCESSED
                | PteFlags::AVAILABLE,
            true,
        ),
        (Level::L2, PteFlags::PRESENT | PteFlags::GLOBAL, false),
        (Level::L2, PteFlags::PRESENT | PteFlags::DIRTY, false),
        (
            Level::L1,
            PteFlags::PRESENT | PteFlags::from_bits_retain(1 << 52),
            false,
        ),
        (
            Level::L1,
            PteFlags::PRESENT | PteFlags::from_bits_retain(1 << 62),
            false,
        ),
        (
            Level::L3,
            PteFlags::PRESENT
                | PteFlags::NO_EXECUTE
                | PteFlags::USER
                | PteFlags::WRITE_THROUGH
                | PteFlags::CACHE_DISABLE,
            true,
        ),
    ] {
        let e = Pte::new(Mfn::new(0x1234), e);
        assert_eq!(check_entry(e, level, true).is_ok(), ok, "{level:?} {e:#x}");
    }
    // NX is reserved without EFER.NXE.
    assert!(check_entry(
        Pte::new(Mfn::new(0x1234), PteFlags::PRESENT | PteFlags::NO_EXECUTE),
        Level::L1,
        false
    )
    .is_err());
    let mut w = World::new(16);
    w.nx = false;
    w.chain();
    w.poke(3, 3, w.e(12, PteFlags::PRESENT | PteFlags::NO_EXECUTE));
    assert!(matches!(w.pin(0, Level::L4), Err(MmError::Reserved { .. })));
    audit(&w).unwrap();
    w.teardown();
}

#[test]
fn linear_page_tables_are_refused_at_every_level() {
    for level in [Level::L2, Level::L3, Level::L4] {
        // A table that references itself, read-only, at its own level.
        let mut w = World::new(16);
        w.chain();
        let pfn = 4 - u64::from(level.number()); // L4 is pfn 0, L3 1, L2 2
        let selfref = w.e(pfn, PteFlags::PRESENT);
        w.poke(pfn, 100, selfref);
        let r = w.pin(0, Level::L4);
        assert!(
            matches!(r, Err(MmError::TypeConflict { .. } | MmError::Recursive(_))),
            "{level:?}: {r:?}"
        );
        audit(&w).unwrap();
        // Installed later through an update: refused as well.
        w.poke(pfn, 100, Pte::EMPTY);
        w.pin(0, Level::L4).unwrap();
        assert!(w.update(pfn, 100, selfref).is_err());
        // And the L4 in an L4 of another address space.
        w.poke(5, 0, w.e(0, PteFlags::PRESENT));
        assert!(w.pin(5, Level::L4).is_err());
        audit(&w).unwrap();
        w.teardown();
    }
}

#[test]
fn flushes_whenever_a_present_entry_changes() {
    let mut w = World::new(16);
    w.chain();
    w.pin(0, Level::L4).unwrap();
    let rw = w.peek(3, 0);
    // Adding A/D only: no flush. Removing RW, the mapping, or changing the frame: flush.
    assert_eq!(
        w.update(3, 0, rw.with(PteFlags::ACCESSED | PteFlags::DIRTY)),
        Ok(Flush::None)
    );
    assert_eq!(
        w.update(3, 0, rw.without(PteFlags::WRITABLE)),
        Ok(Flush::All)
    );
    assert_eq!(w.update(3, 0, w.e(12, PteFlags::PRESENT)), Ok(Flush::All));
    assert_eq!(w.update(3, 0, Pte::EMPTY), Ok(Flush::All));
    assert_eq!(w.update(3, 0, rw), Ok(Flush::None)); // was not present
    assert_eq!(
        w.update(3, 0, rw.with(PteFlags::NO_EXECUTE)),
        Ok(Flush::All)
    );
    assert_eq!(
        Flush::Page(GuestVirt::new(1)).merge(Flush::Page(GuestVirt::new(2))),
        Flush::All
    );
    assert_eq!(
        Flush::None.merge(Flush::Page(GuestVirt::new(2))),
        Flush::Page(GuestVirt::new(2))
    );
    w.teardown();
}

#[test]
fn base_must_be_a_pinned_validated_l4() {
    let mut w = World::new(16);
    w.chain();
    assert_eq!(w.set_base(0), Err(MmError::NotPinnedL4(w.mfn(0))));
    w.pin(1, Level::L3).unwrap();
    assert_eq!(w.set_base(1), Err(MmError::NotPinnedL4(w.mfn(1))));
    w.unpin(1).unwrap();
    w.pin(0, Level::L4).unwrap();
    w.set_base(0).unwrap();
    // A second address space sharing the L3.
    w.poke(5, 0, w.e(1, PteFlags::PRESENT | PteFlags::WRITABLE));
    w.pin(5, Level::L4).unwrap();
    w.set_base(5).unwrap();
    assert_eq!(w.info(1).type_count, 2);
    w.set_base(0).unwrap();
    w.unpin(5).unwrap();
    assert_eq!(w.info(1).type_count, 1);
    audit(&w).unwrap();
    w.teardown();
}

#[test]
fn failed_validation_leaves_nothing_behind() {
    let mut w = World::new(16);
    w.chain();
    // The L1 at 3 becomes bad after frames 10 and 11 took their references.
    w.poke(3, 400, w.e(0, PteFlags::PRESENT | PteFlags::WRITABLE));
    assert!(w.pin(0, Level::L4).is_err());
    for p in 0..16 {
        let i = w.info(p);
        assert_eq!(
            (i.type_count, i.ref_count, i.validated),
            (0, 0, false),
            "{p}"
        );
    }
    w.teardown();
}

#[test]
fn ordinary_frames_take_plain_writes_tables_in_use_do_not_bypass() {
    let mut w = World::new(16);
    // Frame 7 is ordinary memory: mod_entry writes anything (as Xen does).
    w.update(7, 3, Pte(0xdead_beef)).unwrap();
    assert_eq!(w.peek(7, 3), Pte(0xdead_beef));
    w.chain();
    w.pin(0, Level::L4).unwrap();
    // Frame 10 is mapped writable: a plain write is fine too.
    w.update(10, 0, Pte(0x1234)).unwrap();
    assert_eq!(w.update(3, ENTRIES, Pte::EMPTY), Err(MmError::Misaligned));
    audit(&w).unwrap();
    w.teardown();
}

#[test]
fn a_built_domain_starts_consistent_and_tears_down_completely() {
    use crate::domain::elf::testimg::typical;
    use crate::domain::elf::GuestImage;
    use crate::domain::{build, DomainConfig, DomainId};
    let bytes = typical();
    let img = GuestImage::parse(&bytes).unwrap();
    let mut mem = FakeMem::default();
    let mut frames = FakeFrames::new(0x1000, 2048 + 64);
    let free0 = frames.free_count();
    let mut cfg = DomainConfig::new(DomainId(1));
    cfg.nx = true;
    let mut dom = build(&img, &bytes, &cfg, &mut mem, &mut frames).unwrap();
    let l4 = dom.base();
    let i = dom.page_info(&mem, l4).unwrap();
    assert_eq!(i.ty, PageType::Table(Level::L4));
    assert!(i.pinned && i.validated);
    assert_eq!(i.type_count, 2); // pin + base
                                 // Every table frame is typed, every writable-mapped frame is Writable.
    let l = *dom.layout();
    for p in 0..l.nr_pages {
        let m = dom.mfn_of(&mem, Pfn::new(p)).unwrap();
        let i = dom.page_info(&mem, m).unwrap();
        // One reference from its own (leaf) mapping, plus: the upper entry for
        // a table below L4, the pin and the base for the L4.
        let extra = match l.table_level(Pfn::new(p)) {
            Some(level) => {
                assert_eq!(i.ty, PageType::Table(level), "pfn {p}");
                if level == Level::L4 {
                    2
                } else {
                    1
                }
            }
            None => {
                assert!(i.ty.level().is_none(), "pfn {p}");
                0
            }
        };
        assert_eq!(i.ref_count, 1 + extra, "pfn {p}");
    }
    // Switch to a second pinned L4 (a copy of the first), then tear down.
    let spare = dom.mfn_of(&mem, Pfn::new(l.nr_pages - 1)).unwrap();
    // Spare is mapped writable; unmap it first (through the validated path).
    let va = l.va(Pfn::new(l.nr_pages - 1));
    let w = crate::paging::walk::walk(&mem, l4, va, true, |_, _| true).unwrap();
    let l1 = w.tables[3];
    let at = MachineAddr::new(entry_addr(l1, va.table_index(1)).get());
    dom.update_entry(&mut mem, at, Pte::EMPTY).unwrap();
    assert_eq!(dom.take_flush(), Flush::All);
    assert_eq!(dom.take_flush(), Flush::None);
    for i in 0..ENTRIES {
        let e = mem.read_pte(entry_addr(l4, i));
        mem.write_pte(entry_addr(spare, i), e);
    }
    dom.pin(&mut mem, spare, Level::L4).unwrap();
    dom.new_baseptr(&mut mem, spare).unwrap();
    assert_eq!(dom.base(), spare);
    dom.unpin(&mut mem, l4).unwrap();
    let t = dom.teardown(&mut mem, &mut frames);
    assert_eq!(t.leaked_counts, 0);
    assert_eq!(frames.free_count(), free0, "every frame returned");
    assert!(frames.outstanding.is_empty());
    assert!(t.frames_returned >= t.nr_pages);
}

/// One step of a random guest.
#[derive(Clone, Debug)]
enum Op {
    /// A write the guest could make through a writable mapping: only to frames
    /// not in use as tables (the step is skipped otherwise).
    Raw {
        pfn: u64,
        idx: usize,
        val: Pte,
    },
    Update {
        pfn: u64,
        idx: usize,
        val: Pte,
    },
    Pin {
        pfn: u64,
        level: u32,
    },
    Unpin {
        pfn: u64,
    },
    Base {
        pfn: u64,
    },
}

const POOL: u64 = 12;

fn entry_strategy() -> impl Strategy<Value = (u64, u64, u64)> {
    // (target pfn or foreign, flags, selector)
    (0..POOL + 2, any::<u16>().prop_map(u64::from), 0..8u64)
}

fn make_entry(w: &World, (t, bits, _): (u64, u64, u64)) -> Pte {
    let m = if t >= POOL {
        Mfn::new(0x42 + t)
    } else {
        w.mfn(t)
    };
    let mut flags = PteFlags::empty();
    for (i, f) in [
        PteFlags::PRESENT,
        PteFlags::PRESENT,
        PteFlags::PRESENT,
        PteFlags::WRITABLE,
        PteFlags::WRITABLE,
        PteFlags::ACCESSED,
        PteFlags::PAGE_SIZE,
        PteFlags::NO_EXECUTE,
        PteFlags::GLOBAL,
        PteFlags::from_bits_retain(1 << 52),
        PteFlags::USER,
        PteFlags::DIRTY,
    ]
    .into_iter()
    .enumerate()
    {
        // PS, bit 52 and G rarer than the others.
        let rare = matches!(i, 6 | 8 | 9) && bits & 0xf000 != 0;
        if bits & (1 << i) != 0 && !rare {
            flags |= f;
        }
    }
    Pte::new(m, flags)
}

fn op_strategy() -> impl Strategy<Value = (u8, u64, usize, (u64, u64, u64), u32)> {
    (0..6u8, 0..POOL, 0..3usize, entry_strategy(), 1..=4u32)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_operation_sequences_keep_the_invariants(
        steps in proptest::collection::vec(op_strategy(), 1..60)
    ) {
        let mut w = World::new(POOL);
        let mut log: Vec<Op> = Vec::new();
        for (kind, pfn, idx, ent, level) in steps {
            let val = make_entry(&w, ent);
            let op = match kind {
                0 | 1 => Op::Raw { pfn, idx, val },
                2 => Op::Update { pfn, idx, val },
                3 => Op::Pin { pfn, level },
                4 => Op::Unpin { pfn },
                _ => Op::Base { pfn },
            };
            log.push(op.clone());
            match op {
                Op::Raw { pfn, idx, val } => {
                    let i = w.info(pfn);
                    if i.ty.level().is_none() || i.type_count == 0 {
                        w.poke(pfn, idx, val);
                    }
                }
                Op::Update { pfn, idx, val } => {
                    let before = w.peek(pfn, idx);
                    if w.update(pfn, idx, val).is_err() {
                        prop_assert_eq!(w.peek(pfn, idx), before, "refused update wrote");
                    } else {
                        prop_assert_eq!(w.peek(pfn, idx), val);
                    }
                }
                Op::Pin { pfn, level } => {
                    let _ = w.pin(pfn, Level::from_number(level).unwrap());
                }
                Op::Unpin { pfn } => {
                    let _ = w.unpin(pfn);
                }
                Op::Base { pfn } => {
                    let _ = w.set_base(pfn);
                }
            }
            if let Err(e) = audit(&w) {
                prop_assert!(false, "after {:?}: {}", log, e);
            }
        }
        let base = w.base;
        let left = w.mm().release_all(base);
        w.base = None;
        prop_assert_eq!(left, 0, "counts left after releasing everything: {:?}", log);
        for p in 0..POOL {
            let i = w.info(p);
            prop_assert_eq!((i.type_count, i.ref_count, i.pinned, i.validated), (0, 0, false, false));
        }
        w.teardown();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// A run of updates through one `LastTable` (what one `mmu_update` batch
    /// does) has exactly the effects of the same updates made one by one: the
    /// same results, the same memory, the same counts, including when an update
    /// of one table devalidates the table the previous update wrote (the next
    /// update to it must see it unvalidated).
    #[test]
    fn updates_after_a_last_table_equal_updates_one_by_one(
        steps in proptest::collection::vec(
            (0..10u8, 0..5u64, 0..3usize, entry_strategy(), 1..=4u32), 1..80)
    ) {
        let (mut run, mut one) = (World::new(POOL), World::new(POOL));
        // Start from a validated chain (L4 pinned, the lower tables typed only
        // by the entries above them), so that updates devalidate tables.
        for w in [&mut run, &mut one] {
            w.chain();
            w.pin(0, Level::L4).unwrap();
        }
        let mut last = LastTable::default();
        for (k, (kind, pfn, idx, ent, level)) in steps.into_iter().enumerate() {
            let val = make_entry(&one, ent);
            match kind {
                0 => {
                    last = LastTable::default();
                    let r = (run.pin(pfn, Level::from_number(level).unwrap()),
                             one.pin(pfn, Level::from_number(level).unwrap()));
                    prop_assert_eq!(r.0, r.1);
                }
                1 => {
                    last = LastTable::default();
                    prop_assert_eq!(run.unpin(pfn), one.unpin(pfn));
                }
                _ => {
                    let m = one.mfn(pfn);
                    // Every other update through the lazy-meter entry (the
                    // fast path for a run on one L1 table).
                    let a = if k % 2 == 0 {
                        run.mm().mod_entry_after(&mut last, m, idx, val)
                    } else {
                        let (mut job, mut f) = (crate::paging::job::Job::IDLE, Flush::None);
                        run.mm()
                            .mod_entry_lazy(&mut job, &mut last, m, idx, val, &mut f, || {
                                crate::paging::job::Unbounded
                            })
                            .unwrap_or(Ok(()))
                            .map(|()| f)
                    };
                    let b = one.mm().mod_entry(m, idx, val);
                    prop_assert_eq!(a, b, "step {}", k);
                }
            }
            prop_assert_eq!(&run.mem.frames, &one.mem.frames, "step {}", k);
            if let Err(e) = audit(&run) {
                prop_assert!(false, "step {}: {}", k, e);
            }
        }
        run.teardown();
        one.teardown();
    }
}

#[test]
fn a_last_table_is_not_trusted_after_its_table_is_devalidated() {
    // L2 at pfn 2 -> L1 at pfn 3 (unpinned, referenced only by the L2 entry).
    let mut w = World::new(POOL);
    w.chain();
    w.pin(2, Level::L2).unwrap();
    let (l1, l2) = (w.mfn(3), w.mfn(2));
    let mut last = LastTable::default();
    let ro = w.e(11, PteFlags::PRESENT);
    // An update of the L1: remembered as a validated L1.
    w.mm().mod_entry_after(&mut last, l1, 5, ro).unwrap();
    assert_eq!(last, LastTable(Some((l1, Level::L1))));
    // Clearing the L2 entry devalidates the L1 (its last type reference).
    w.mm()
        .mod_entry_after(&mut last, l2, 0, Pte::EMPTY)
        .unwrap();
    assert!(!w.info(3).validated);
    assert_eq!(w.info(11).ref_count, 0, "the L1's entries dropped theirs");
    // The L1 is ordinary memory now: a plain write that takes no reference.
    w.mm().mod_entry_after(&mut last, l1, 6, ro).unwrap();
    assert_eq!(w.info(11).ref_count, 0);
    assert_eq!(last, LastTable(None));
    audit(&w).unwrap();
    w.unpin(2).unwrap();
    w.teardown();
}

proptest! {
    /// `check_entry` (a table of allowed flags, one test on the fast path)
    /// decides exactly as the rules read: PS in an L2/L3 entry is a superpage,
    /// any other bit outside `allowed_flags` is reserved.
    #[test]
    fn check_entry_is_the_rules(e in any::<u64>(), bits in any::<u16>(), level in 1u32..=4, nx in any::<bool>()) {
        // Mostly plausible entries (low flag bits, an address), some anything.
        let e = if bits & 1 == 0 {
            let flags = u64::from(bits >> 1) | (e & PteFlags::NO_EXECUTE.bits());
            Pte::new(Mfn::new(e >> 24), PteFlags::from_bits_retain(flags))
        } else {
            Pte(e)
        };
        let level = Level::from_number(level).unwrap();
        let want = if matches!(level, Level::L2 | Level::L3) && e.contains(PteFlags::PAGE_SIZE) {
            Err(MmError::Superpage { level })
        } else if e.raw() & !(allowed_flags(level, nx).bits() | Pte::addr_mask()) != 0 {
            Err(MmError::Reserved { level, entry: e })
        } else {
            Ok(e.frame())
        };
        prop_assert_eq!(check_entry(e, level, nx), want);
    }
}
