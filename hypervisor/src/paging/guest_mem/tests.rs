//! Host tests of guest memory access: a real built domain, then every rule of the
//! module documentation attacked, and random accesses over corrupted tables with a
//! spy that records every frame the hypervisor touches.

extern crate std;

use super::*;
use crate::addr::Pfn;
use crate::domain::elf::testimg::typical;
use crate::domain::elf::GuestImage;
use crate::domain::{build, DomainConfig, DomainId};
use crate::mem::fake::{FakeFrames, FakeMem};
use crate::paging::entry::{entry_addr, EntryMem, Pte, PteFlags};
use core::cell::RefCell;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::vec::Vec;

/// Frames handed out by the fake allocator: [FIRST, FIRST + COUNT).
const FIRST: u64 = 0x1000;
const COUNT: u64 = 200;

/// Memory that records which frames were read and written.
#[derive(Default)]
struct Spy {
    inner: FakeMem,
    reads: RefCell<BTreeSet<u64>>,
    writes: BTreeSet<u64>,
    /// Every read, counted (a page walk is several).
    nreads: core::cell::Cell<usize>,
}

impl PhysMem for Spy {
    fn read(&self, at: MachineAddr, out: &mut [u8]) {
        self.reads.borrow_mut().insert(at.frame().get());
        self.nreads.set(self.nreads.get() + 1);
        self.inner.read(at, out)
    }
    fn write(&mut self, at: MachineAddr, data: &[u8]) {
        self.writes.insert(at.frame().get());
        self.inner.write(at, data)
    }
}

fn setup(nx: bool) -> (Domain, Spy) {
    let bytes = typical();
    let img = GuestImage::parse(&bytes).unwrap();
    let mut mem = Spy::default();
    let mut frames = FakeFrames::new(FIRST, COUNT);
    let cfg = DomainConfig {
        nr_pages: 100,
        nx,
        ..DomainConfig::new(DomainId(1))
    };
    let dom = build(&img, &bytes, &cfg, &mut mem, &mut frames).unwrap();
    mem.reads.borrow_mut().clear();
    mem.writes.clear();
    (dom, mem)
}

/// The machine address of the L1 entry mapping `va` in the bootstrap tables.
fn l1_entry(dom: &Domain, mem: &Spy, va: u64) -> MachineAddr {
    let l = dom.layout();
    let l1_pfn = Pfn::new(
        l.page_tables.get() + 1 + l.nr_l3 + l.nr_l2 + ((va >> 21) - (l.virt_base.get() >> 21)),
    );
    entry_addr(
        dom.mfn_of(mem, l1_pfn).unwrap(),
        GuestVirt::new(va).table_index(1),
    )
}

/// Make the domain's base a second L4 (its last frame, unmapped first) that
/// maps nothing where the first maps the image, through the validated
/// operations: a new root for the same addresses.
fn switch_to_empty_base(dom: &mut Domain, mem: &mut Spy) {
    let l = *dom.layout();
    let last = Pfn::new(l.nr_pages - 1);
    let spare = dom.mfn_of(mem, last).unwrap();
    let l4 = dom.base();
    let at = l1_entry(dom, mem, l.va(last).get());
    dom.update_entry(mem, at, Pte::EMPTY).unwrap();
    for i in 0..512 {
        let e = mem.read_pte(entry_addr(l4, i));
        mem.write_pte(entry_addr(spare, i), e);
    }
    dom.pin(mem, spare, crate::domain::Level::L4).unwrap();
    let slot = GuestVirt::new(TEXT).table_index(4);
    dom.update_entry(mem, entry_addr(spare, slot), Pte::EMPTY)
        .unwrap();
    dom.new_baseptr(mem, spare).unwrap();
}

const TEXT: u64 = 0x40_0000;
const DATA: u64 = 0x40_3000;

#[test]
fn reads_and_writes_through_the_guest_tables() {
    let (dom, mut mem) = setup(false);
    // Text bytes across a page boundary (the image has (i % 251) at text offset i).
    let mut b = [0u8; 16];
    copy_from_guest(&dom, &mem, GuestVirt::new(TEXT + 0xff8), &mut b).unwrap();
    let want: Vec<u8> = (0xff8u32..0x1008).map(|i| (i % 251) as u8).collect();
    assert_eq!(&b[..], &want[..]);
    // start_info magic through its VA.
    let magic: [u8; 14] = read_bytes(&dom, &mem, dom.boot.start_info).unwrap();
    assert_eq!(&magic, b"xen-3.0-x86_64");
    // Page tables are readable (the guest maps them read-only and may read them).
    let l4 = dom.layout().va(dom.layout().page_tables);
    let _: [u8; 8] = read_bytes(&dom, &mem, l4).unwrap();
    // Write across the data/bss page boundary and read back.
    let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    copy_to_guest(&dom, &mut mem, GuestVirt::new(DATA + 0xf80), &data).unwrap();
    let mut back = std::vec![0u8; 300];
    copy_from_guest(&dom, &mem, GuestVirt::new(DATA + 0xf80), &mut back).unwrap();
    assert_eq!(back, data);
    // The stack and free memory are writable.
    copy_to_guest(
        &dom,
        &mut mem,
        GuestVirt::new(dom.boot.stack_top.get() - 8),
        &[1; 8],
    )
    .unwrap();
    // Zero-length copies succeed without touching anything.
    copy_to_guest(&dom, &mut mem, GuestVirt::new(1 << 63), &[]).unwrap();
    copy_from_guest(&dom, &mem, GuestVirt::new(1 << 63), &mut []).unwrap();
}

#[test]
fn refusals_are_efault() {
    let (dom, mut mem) = setup(false);
    let ef = Err(Errno::EFAULT);
    let mut b = [0u8; 8];
    // Read-only text, read-only page tables.
    assert_eq!(
        copy_to_guest(&dom, &mut mem, GuestVirt::new(TEXT), &[0]),
        ef
    );
    let l4 = dom.layout().va(dom.layout().page_tables);
    assert_eq!(copy_to_guest(&dom, &mut mem, l4, &[0]), ef);
    // Unmapped, non-canonical, wrapping.
    assert_eq!(
        copy_from_guest(&dom, &mem, GuestVirt::new(0x1000), &mut b),
        ef
    );
    assert_eq!(
        copy_from_guest(&dom, &mem, dom.layout().va(Pfn::new(100)), &mut b),
        ef
    );
    assert_eq!(
        copy_from_guest(&dom, &mem, GuestVirt::new(0x8000_0000_0000), &mut b),
        ef
    );
    assert_eq!(
        copy_from_guest(&dom, &mem, GuestVirt::new(u64::MAX - 3), &mut b),
        ef
    );
    // A range that starts mapped and runs past the end of the domain.
    let last = dom.layout().va(Pfn::new(99)).get() + 4092;
    assert_eq!(
        copy_from_guest(&dom, &mem, GuestVirt::new(last), &mut b),
        ef
    );
    assert!(mem.writes.is_empty());
}

#[test]
fn corrupted_entries_are_refused() {
    let ef = Err(Errno::EFAULT);
    let mut b = [0u8; 8];
    // (entry value for the L1 slot of DATA, read ok?, write ok?)
    let (dom, mem) = setup(false);
    let data_mfn = dom.mfn_of(&mem, Pfn::new(3)).unwrap();
    let table_mfn = dom.boot.cr3;
    let cases = [
        (
            Pte::new(Mfn::new(0x10), PteFlags::PRESENT | PteFlags::WRITABLE),
            false,
            false,
        ), // foreign frame
        (
            Pte::new(table_mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
            true,
            false,
        ), // writable alias of the L4: read yes, write never
        (
            Pte::new(
                data_mfn,
                PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::NO_EXECUTE,
            ),
            false,
            false,
        ), // NX without NXE: reserved
        (Pte::new(data_mfn, PteFlags::PRESENT), true, false), // read-only
        (Pte::new(data_mfn, PteFlags::WRITABLE), false, false), // not present
        (
            Pte::new(data_mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
            true,
            true,
        ), // control
    ];
    for (e, r_ok, w_ok) in cases {
        let (dom, mut mem) = setup(false);
        let at = l1_entry(&dom, &mem, DATA);
        mem.write_pte(at, e);
        assert_eq!(
            copy_from_guest(&dom, &mem, GuestVirt::new(DATA), &mut b).is_ok(),
            r_ok,
            "{e:#x}"
        );
        mem.writes.clear();
        assert_eq!(
            copy_to_guest(&dom, &mut mem, GuestVirt::new(DATA), &[7; 8]).is_ok(),
            w_ok,
            "{e:#x}"
        );
        if !w_ok {
            assert!(mem.writes.is_empty());
        }
        assert!(!mem.reads.borrow().contains(&0x10), "foreign frame read");
    }
    // An L2 entry with PS, and an L2 entry pointing at a foreign frame.
    for (flags, target) in [
        (
            PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::PAGE_SIZE,
            None,
        ),
        (PteFlags::PRESENT | PteFlags::WRITABLE, Some(Mfn::new(0x11))),
    ] {
        let (dom, mut mem) = setup(false);
        let l = *dom.layout();
        let l2 = dom.mfn_of(&mem, Pfn::new(l.page_tables.get() + 2)).unwrap();
        let at = entry_addr(l2, GuestVirt::new(DATA).table_index(2));
        let old = mem.read_pte(at);
        mem.write_pte(at, Pte::new(target.unwrap_or(old.frame()), flags));
        assert_eq!(
            copy_from_guest(&dom, &mem, GuestVirt::new(DATA), &mut b),
            ef
        );
        assert!(!mem.reads.borrow().contains(&0x11), "foreign table read");
    }
    // PS in the L4 entry is reserved.
    let (dom, mut mem) = setup(false);
    let at = entry_addr(dom.boot.cr3, GuestVirt::new(DATA).table_index(4));
    let old = mem.read_pte(at);
    mem.write_pte(at, old.with(PteFlags::PAGE_SIZE));
    assert_eq!(
        copy_from_guest(&dom, &mem, GuestVirt::new(DATA), &mut b),
        ef
    );
}

#[test]
fn nx_pages_are_readable_and_writable_with_nxe() {
    let (dom, mut mem) = setup(true);
    copy_to_guest(&dom, &mut mem, GuestVirt::new(DATA), &[1, 2, 3]).unwrap();
    let b: [u8; 3] = read_bytes(&dom, &mem, GuestVirt::new(DATA)).unwrap();
    assert_eq!(b, [1, 2, 3]);
}

#[test]
fn write_within_one_page_walks_once() {
    let (dom, mut mem) = setup(false);
    let va = GuestVirt::new(DATA + 0x10);
    mem.nreads.set(0);
    translate(&dom, &mem, va, Access::Write).unwrap();
    let one_walk = mem.nreads.get();
    assert!(one_walk > 0);
    mem.nreads.set(0);
    copy_to_guest(&dom, &mut mem, va, &[1, 2, 3, 4]).unwrap();
    assert_eq!(mem.nreads.get(), one_walk);
    let back: [u8; 4] = read_bytes(&dom, &mem, va).unwrap();
    assert_eq!(back, [1, 2, 3, 4]);
    // Refused in one page: nothing written.
    mem.writes.clear();
    assert_eq!(
        copy_to_guest(&dom, &mut mem, GuestVirt::new(TEXT), &[0; 4]),
        Err(Errno::EFAULT)
    );
    assert!(mem.writes.is_empty());
}

#[test]
fn failed_cross_page_write_writes_nothing() {
    let (dom, mut mem) = setup(false);
    // The page before the text is unmapped; the last page of data is followed by
    // the mfn_list (writable), so use text: data page N-1 writable, then make the
    // next one read-only.
    let at = l1_entry(&dom, &mem, DATA + 0x1000);
    let e = mem.read_pte(at);
    mem.write_pte(at, e.without(PteFlags::WRITABLE));
    let before: [u8; 16] = read_bytes(&dom, &mem, GuestVirt::new(DATA + 0xff8)).unwrap();
    mem.writes.clear();
    assert_eq!(
        copy_to_guest(&dom, &mut mem, GuestVirt::new(DATA + 0xff8), &[0xaa; 16]),
        Err(Errno::EFAULT)
    );
    assert!(mem.writes.is_empty());
    let after: [u8; 16] = read_bytes(&dom, &mem, GuestVirt::new(DATA + 0xff8)).unwrap();
    assert_eq!(before, after);
}

/// Frames the hypervisor may legitimately write for the guest: owned, Writable.
fn writable_frames(dom: &Domain, mem: &Spy) -> BTreeSet<u64> {
    (0..dom.nr_pages())
        .filter_map(|p| dom.mfn_of(mem, Pfn::new(p)))
        .filter(|&m| dom.frame_kind(mem, m) == FrameKind::Writable)
        .map(|m| m.get())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random table corruption, then random copies: the hypervisor never reads a
    /// frame outside the ones it handed out (domain + its frame table), never
    /// writes anything but the domain's Writable frames, and never panics.
    #[test]
    fn random_access_never_escapes(
        corruptions in proptest::collection::vec((0u64..11, 0usize..512, any::<u64>(), any::<bool>()), 0..12),
        ops in proptest::collection::vec((any::<bool>(), 0u64..0x7_0000, any::<u64>(), 0usize..9000, any::<bool>()), 1..24),
        nx in any::<bool>(),
    ) {
        let (dom, mut mem) = setup(nx);
        let l = *dom.layout();
        let owned_writable = writable_frames(&dom, &mem);
        // Corrupt random entries of the table frames with random values, half of
        // them pointing at domain or foreign frames with plausible flags.
        for (t, idx, v, plausible) in corruptions {
            let pfn = Pfn::new(l.page_tables.get() + t % l.nr_pt_frames());
            let table = dom.mfn_of(&mem, pfn).unwrap();
            let v = if plausible { Pte::new(Mfn::new(FIRST - 8 + v % (COUNT + 16)), PteFlags::from_bits_retain(v & 0x8000_0000_0000_00ff)) } else { Pte(v) };
            mem.inner.write_pte(entry_addr(table, idx), v);
        }
        let table_bytes: Vec<Vec<u8>> = (l.page_tables.get()..l.stack.get())
            .map(|p| mem.inner.frames[&dom.mfn_of(&mem, Pfn::new(p)).unwrap().get()].clone())
            .collect();
        mem.reads.borrow_mut().clear();
        mem.writes.clear();
        for (write, off, raw, len, near) in ops {
            // Mostly addresses near the domain; some anywhere.
            let va = if near { GuestVirt::new(l.virt_base.get().wrapping_add(off).wrapping_sub(0x1000)) } else { GuestVirt::new(raw) };
            if write {
                let data = std::vec![0x5a; len];
                let _ = copy_to_guest(&dom, &mut mem, va, &data);
            } else {
                let mut out = std::vec![0; len];
                let _ = copy_from_guest(&dom, &mem, va, &mut out);
            }
        }
        for f in mem.reads.borrow().iter() {
            prop_assert!((FIRST..FIRST + COUNT).contains(f), "read foreign frame {f:#x}");
        }
        for f in &mem.writes {
            prop_assert!(owned_writable.contains(f), "wrote non-writable frame {f:#x}");
        }
        // Table frames are untouched.
        for (i, p) in (l.page_tables.get()..l.stack.get()).enumerate() {
            let now = &mem.inner.frames[&dom.mfn_of(&mem, Pfn::new(p)).unwrap().get()];
            prop_assert_eq!(now, &table_bytes[i]);
        }
    }
}

/// Defence in depth: even if a writable mapping existed without its `Writable`
/// type reference (here: an L1 entry rewritten behind the MMU's back, which no
/// guest operation can do), a hypercall write through it is refused, and a
/// write through a mapping the MMU made read-only is refused by the walk.
#[test]
fn writes_need_a_writable_type_reference() {
    let (mut dom, mut mem) = setup(false);
    let l = *dom.layout();
    // The last (free) page: writable, typed Writable with one reference.
    let va = l.va(Pfn::new(l.nr_pages - 1)).get();
    let at = l1_entry(&dom, &mem, va);
    let orig = mem.read_pte(at);
    assert!(copy_to_guest(&dom, &mut mem, GuestVirt::new(va), &[1]).is_ok());
    // Through the MMU: read-only; the frame's Writable count drops to 0.
    dom.update_entry(&mut mem, at, orig.without(PteFlags::WRITABLE))
        .unwrap();
    let info = dom.page_info(&mem, orig.frame()).unwrap();
    assert_eq!(info.type_count, 0);
    assert_eq!(
        copy_to_guest(&dom, &mut mem, GuestVirt::new(va), &[2]),
        Err(Errno::EFAULT)
    );
    // Behind the MMU's back: RW again, but no type reference.
    mem.write_pte(at, orig);
    assert_eq!(
        copy_to_guest(&dom, &mut mem, GuestVirt::new(va), &[3]),
        Err(Errno::EFAULT)
    );
    assert!(read_bytes::<1, _>(&dom, &mem, GuestVirt::new(va)).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A `PageReader` returns exactly what `read_bytes` does, for runs of reads
    /// that stay in a page, move on, cross page boundaries, leave the mapping
    /// and come back.
    #[test]
    fn page_reader_agrees_with_read_bytes(
        ops in proptest::collection::vec((0u64..0x6_0000, 0u8..3), 1..60),
    ) {
        let (dom, mem) = setup(false);
        let l = *dom.layout();
        let mut r = PageReader::new();
        for (off, size) in ops {
            // Mostly near the end of the mapping (the last pages, and beyond).
            let va = GuestVirt::new(l.va(Pfn::new(l.nr_pages)).get().wrapping_sub(0x3_0000).wrapping_add(off));
            match size {
                0 => prop_assert_eq!(r.read::<8, _>(&dom, &mem, va), read_bytes::<8, _>(&dom, &mem, va)),
                1 => prop_assert_eq!(r.read::<16, _>(&dom, &mem, va), read_bytes::<16, _>(&dom, &mem, va)),
                _ => prop_assert_eq!(r.read::<24, _>(&dom, &mem, va), read_bytes::<24, _>(&dom, &mem, va)),
            }
        }
    }
}

/// A reader translates a page once: later reads in the page walk no tables.
/// Told of a write to an entry its walk read, it translates again and sees the
/// new mapping; a write elsewhere keeps the translation.
#[test]
fn page_reader_walks_once_per_page_and_forgets_on_a_write_to_its_walk() {
    let (dom, mut mem) = setup(false);
    let l = *dom.layout();
    let cr3 = dom.boot.cr3;
    let (p, q) = (l.nr_pages - 2, l.nr_pages - 1);
    let va = l.va(Pfn::new(p)).get();
    copy_to_guest(&dom, &mut mem, GuestVirt::new(va + 16), &[0x11; 8]).unwrap();
    let q_va = l.va(Pfn::new(q)).get();
    copy_to_guest(&dom, &mut mem, GuestVirt::new(q_va + 16), &[0x22; 8]).unwrap();
    let mut r = PageReader::new();
    assert_eq!(
        r.read::<8, _>(&dom, &mem, GuestVirt::new(va + 8)),
        Ok([0; 8])
    );
    // The tables are not read again for another read in the page.
    let tables: BTreeSet<u64> = (l.page_tables.get()..l.stack.get())
        .map(|t| dom.mfn_of(&mem, Pfn::new(t)).unwrap().get())
        .collect();
    mem.reads.borrow_mut().clear();
    assert_eq!(
        r.read::<8, _>(&dom, &mem, GuestVirt::new(va + 16)),
        Ok([0x11; 8])
    );
    assert!(mem.reads.borrow().is_disjoint(&tables));
    // Remap p's page to q's frame behind the reader's back (as an mmu_update
    // request would): a write elsewhere keeps the (now stale) translation...
    let at = l1_entry(&dom, &mem, va);
    let q_mfn = dom.mfn_of(&mem, Pfn::new(q)).unwrap();
    mem.write_pte(at, Pte::new(q_mfn, PteFlags::PRESENT | PteFlags::WRITABLE));
    // (Writes in a frame none of the walk's entries is in, twice: the second
    // is recognised by its frame alone.)
    let elsewhere = dom.mfn_of(&mem, Pfn::new(p)).unwrap().addr();
    r.wrote_entry(elsewhere);
    r.wrote_entry(MachineAddr::new(elsewhere.get() + 8));
    r.wrote_entry(MachineAddr::new(at.get() + 8));
    assert_eq!(
        r.read::<8, _>(&dom, &mem, GuestVirt::new(va + 16)),
        Ok([0x11; 8])
    );
    // ...and reporting the entry itself (at any byte of it) drops it.
    r.wrote_entry(MachineAddr::new(at.get() + 3));
    assert_eq!(
        r.read::<8, _>(&dom, &mem, GuestVirt::new(va + 16)),
        Ok([0x22; 8])
    );
    assert_eq!(
        r.read::<8, _>(&dom, &mem, GuestVirt::new(va + 16)),
        read_bytes::<8, _>(&dom, &mem, GuestVirt::new(va + 16))
    );
    // Every level's entry counts: the L4 entry of the walk too.
    let l4e = entry_addr(cr3, GuestVirt::new(va).table_index(4));
    let old = mem.read_pte(l4e);
    mem.write_pte(l4e, Pte::EMPTY);
    r.wrote_entry(l4e);
    assert_eq!(
        r.read::<8, _>(&dom, &mem, GuestVirt::new(va + 16)),
        Err(Errno::EFAULT)
    );
    mem.write_pte(l4e, old);
    // A failed translation keeps nothing: the next read walks again.
    assert_eq!(
        r.read::<8, _>(&dom, &mem, GuestVirt::new(va + 16)),
        Ok([0x22; 8])
    );
    // Another root is another translation, even for the same page: the new
    // base maps nothing there.
    let mut dom = dom;
    switch_to_empty_base(&mut dom, &mut mem);
    assert_eq!(
        r.read::<8, _>(&dom, &mem, GuestVirt::new(va + 16)),
        Err(Errno::EFAULT)
    );
}

/// The read cache gives what `translate` gives, before and after the tables
/// change under it (an entry rewritten, the page unmapped, another root), and
/// a hit reads only the four entries.
#[test]
fn read_cache_follows_the_tables() {
    let (dom, mut mem) = setup(false);
    let mut c = ReadCache::new();
    for va in [TEXT, TEXT + 8, DATA + 0xff0, TEXT + 0x1000, TEXT] {
        let va = GuestVirt::new(va);
        assert_eq!(
            c.translate(&dom, &mem, va),
            translate(&dom, &mem, va, Access::Read)
        );
    }
    // A hit reads the four table frames and nothing else.
    mem.reads.borrow_mut().clear();
    let _ = c.translate(&dom, &mem, GuestVirt::new(TEXT + 16)).unwrap();
    assert_eq!(mem.reads.borrow().len(), 4, "{:?}", mem.reads.borrow());
    // Point the L1 entry at another of the domain's frames: the cache follows.
    let e = l1_entry(&dom, &mem, TEXT);
    let old = mem.read_pte(e);
    let other = dom.mfn_of(&mem, Pfn::new(90)).unwrap();
    mem.write_pte(e, Pte::new(other, PteFlags::PRESENT));
    let got = c.translate(&dom, &mem, GuestVirt::new(TEXT + 16));
    assert_eq!(got, Ok(MachineAddr::new(other.addr().get() + 16)));
    assert_eq!(
        got,
        translate(&dom, &mem, GuestVirt::new(TEXT + 16), Access::Read)
    );
    // Unmapped: the same error as a walk.
    mem.write_pte(e, Pte::EMPTY);
    assert_eq!(
        c.translate(&dom, &mem, GuestVirt::new(TEXT)),
        Err(Errno::EFAULT)
    );
    // A frame the domain does not own: refused, not cached.
    mem.write_pte(e, Pte::new(Mfn::new(7), PteFlags::PRESENT));
    assert_eq!(
        c.translate(&dom, &mem, GuestVirt::new(TEXT)),
        Err(Errno::EFAULT)
    );
    mem.write_pte(e, old);
    assert_eq!(
        c.translate(&dom, &mem, GuestVirt::new(TEXT)),
        translate(&dom, &mem, GuestVirt::new(TEXT), Access::Read)
    );
    // Another root: not the cached translation.
    let mut dom = dom;
    switch_to_empty_base(&mut dom, &mut mem);
    assert_eq!(
        c.translate(&dom, &mem, GuestVirt::new(TEXT)),
        Err(Errno::EFAULT)
    );
}

proptest! {
    /// Over random corruption of the walk's entries between reads, the cache
    /// agrees with a fresh walk every time.
    #[test]
    fn read_cache_agrees_with_a_walk(
        steps in proptest::collection::vec((0usize..4, any::<u64>(), any::<bool>(), 0u64..0x3000), 1..20),
    ) {
        let (dom, mut mem) = setup(true);
        let mut c = ReadCache::new();
        for (level, v, corrupt, off) in steps {
            let va = GuestVirt::new(TEXT + off);
            if corrupt {
                if let Ok((_, w)) = translate_walk(&dom, &mem, va, Access::Read, crate::privilege::Mode::Supervisor) {
                    let lv = [4, 3, 2, 1][level];
                    let at = entry_addr(w.tables[level], va.table_index(lv));
                    // Sometimes a plausible entry (another owned frame), sometimes garbage.
                    let new = if v & 1 == 0 {
                        let flags = PteFlags::from_bits_truncate(v) & (PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::NO_EXECUTE | PteFlags::PAGE_SIZE);
                        Pte::new(dom.mfn_of(&mem, Pfn::new(v % 100)).unwrap(), flags)
                    } else {
                        Pte(v)
                    };
                    mem.write_pte(at, new);
                }
            }
            prop_assert_eq!(
                c.translate(&dom, &mem, va),
                translate(&dom, &mem, va, Access::Read)
            );
        }
    }
}
