//! Host tests of the frame table: P2M/M2P round trips with scrambled and
//! sparse frames, the dense index, the split type word, and failed allocations.

extern crate std;
use super::*;
use crate::mem::fake::{FakeFrames, FakeMem};

/// Hands out frames in a scrambled order, optionally repeating one.
struct Scrambled {
    inner: FakeFrames,
    order: std::vec::Vec<u64>,
    dup_at: Option<usize>,
    handed: usize,
}
impl FrameSource for Scrambled {
    fn alloc_frame(&mut self) -> Option<Mfn> {
        let i = self.handed;
        self.handed += 1;
        if Some(i) == self.dup_at {
            return Some(Mfn::new(self.order[0]));
        }
        let f = *self.order.get(i)?;
        self.inner.outstanding.insert(f);
        Some(Mfn::new(f))
    }
    fn alloc_contiguous(&mut self, n: u64) -> Option<Mfn> {
        self.inner.alloc_contiguous(n)
    }
    fn free_frame(&mut self, f: Mfn) {
        assert!(self.inner.outstanding.remove(&f.get()), "double free {f:?}");
    }
    fn free_count(&self) -> u64 {
        0
    }
}

fn scrambled(n: u64, dup_at: Option<usize>) -> Scrambled {
    scrambled_with_stride(n, dup_at, 1)
}

/// Frames `5000 + stride * k` in a scrambled order (a stride above
/// `DENSE_SPAN_PER_PAGE` makes the MFNs too sparse for the dense index).
fn scrambled_with_stride(n: u64, dup_at: Option<usize>, stride: u64) -> Scrambled {
    let order = (0..n).map(|i| 5000 + stride * ((i * 7919) % n)).collect();
    Scrambled {
        inner: FakeFrames::new(100, 64),
        order,
        dup_at,
        handed: 0,
    }
}

#[test]
fn the_type_word_and_the_reference_count_are_separate_words() {
    let mut mem = FakeMem::default();
    let mut src = scrambled(20, None);
    let t = FrameTable::alloc(20, &mut mem, &mut src).unwrap();
    let p = Pfn::new(7);
    let ti = TypeInfo {
        ty: PageType::Table(Level::L3),
        type_count: (1 << 30) + 5,
        pinned: true,
        validated: true,
    };
    // Writing one half leaves the other (and the neighbours) alone.
    t.set_ref_count(&mut mem, p, (1 << 40) + 3);
    t.set_type_info(&mut mem, p, ti);
    assert_eq!(t.type_info(&mem, p), Some(ti));
    assert_eq!(t.ref_count(&mem, p), Some((1 << 40) + 3));
    assert_eq!(t.info(&mem, p), Some(ti.with_refs((1 << 40) + 3)));
    assert_eq!(t.info(&mem, Pfn::new(6)), Some(PageInfo::FREE));
    assert_eq!(t.info(&mem, Pfn::new(8)), Some(PageInfo::FREE));
    let w = TypeInfo::FREE;
    t.set_type_info(&mut mem, p, w);
    assert_eq!(t.ref_count(&mem, p), Some((1 << 40) + 3));
    t.set_info(&mut mem, p, ti.with_refs(9));
    assert_eq!(t.info(&mem, p).map(|i| i.type_info()), Some(ti));
    assert_eq!(t.ref_count(&mem, p), Some(9));
    // Past the end: nothing read, nothing written.
    assert_eq!(t.type_info(&mem, Pfn::new(20)), None);
    assert_eq!(t.ref_count(&mem, Pfn::new(20)), None);
    let before = mem.frames.clone();
    t.set_type_info(&mut mem, Pfn::new(20), ti);
    t.set_ref_count(&mut mem, Pfn::new(20), 1);
    assert_eq!(mem.frames, before);
    t.free(&mut mem, &mut src);
}

#[test]
fn lookups_agree_with_and_without_the_dense_index() {
    for stride in [1u64, 3, 4, 5, 100] {
        let mut mem = FakeMem::default();
        let mut src = scrambled_with_stride(300, None, stride);
        let t = FrameTable::alloc(300, &mut mem, &mut src).unwrap();
        assert_eq!(t.dense.is_some(), stride <= DENSE_SPAN_PER_PAGE, "{stride}");
        for pfn in 0..300 {
            let mfn = t.mfn(&mem, Pfn::new(pfn)).unwrap();
            assert_eq!(t.pfn(&mem, mfn), Some(Pfn::new(pfn)));
        }
        for m in [
            0,
            4999,
            5001,
            5000 + 300 * stride,
            5000 + 300 * stride + 7,
            u64::MAX,
        ] {
            let owned = m >= 5000 && (m - 5000) % stride == 0 && (m - 5000) / stride < 300;
            assert_eq!(
                t.pfn(&mem, Mfn::new(m)).is_some(),
                owned,
                "stride {stride} mfn {m}"
            );
        }
        t.free(&mut mem, &mut src);
        assert!(src.inner.outstanding.is_empty());
    }
}

#[test]
fn p2m_m2p_round_trip_and_kinds() {
    let mut mem = FakeMem::default();
    let mut src = scrambled(1000, None);
    let t = FrameTable::alloc(1000, &mut mem, &mut src).unwrap();
    for pfn in 0..1000 {
        let mfn = t.mfn(&mem, Pfn::new(pfn)).unwrap();
        assert_eq!(t.pfn(&mem, mfn), Some(Pfn::new(pfn)));
        assert_eq!(t.kind_of_pfn(&mem, Pfn::new(pfn)), FrameKind::Writable);
        assert_eq!(t.info(&mem, Pfn::new(pfn)), Some(PageInfo::FREE));
    }
    assert_eq!(t.mfn(&mem, Pfn::new(1000)), None);
    assert_eq!(t.pfn(&mem, Mfn::new(4999)), None);
    assert_eq!(t.pfn(&mem, Mfn::new(6000)), None);
    assert_eq!(t.pfn(&mem, Mfn::new(u64::MAX)), None);
    let info = PageInfo {
        ty: PageType::Table(Level::L3),
        type_count: u32::MAX,
        ref_count: u64::MAX,
        pinned: true,
        validated: false,
    };
    t.set_info(&mut mem, Pfn::new(7), info);
    assert_eq!(t.info(&mem, Pfn::new(7)), Some(info));
    assert_eq!(
        t.kind_of_pfn(&mem, Pfn::new(7)),
        FrameKind::PageTable(Level::L3)
    );
    assert_eq!(t.kind_of_pfn(&mem, Pfn::new(6)), FrameKind::Writable);
    assert_eq!(t.kind_of_pfn(&mem, Pfn::new(5000)), FrameKind::NotOwned);
    t.free(&mut mem, &mut src);
    assert!(src.inner.outstanding.is_empty());
}

#[test]
fn failures_leave_nothing_allocated() {
    let mut mem = FakeMem::default();
    // Out of domain frames.
    let mut src = scrambled(10, None);
    assert_eq!(
        FrameTable::alloc(20, &mut mem, &mut src),
        Err(FrameTableError::OutOfMemory)
    );
    assert!(src.inner.outstanding.is_empty());
    // Out of table frames.
    let mut f = FakeFrames::new(0, 0);
    assert_eq!(
        FrameTable::alloc(20, &mut mem, &mut f),
        Err(FrameTableError::OutOfMemory)
    );
    // A frame handed out twice.
    let mut src = scrambled(10, Some(5));
    assert_eq!(
        FrameTable::alloc(8, &mut mem, &mut src),
        Err(FrameTableError::BadFrame(Mfn::new(5000)))
    );
    assert!(src.inner.outstanding.is_empty());
    for code in 0..=255u64 {
        let k = PageType::from_code(code);
        assert!(k == PageType::None || k.code() == code);
    }
}
