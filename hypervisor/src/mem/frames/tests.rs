//! The frame allocator: reservations, allocation and return.

extern crate std;
use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::vec::Vec;

fn region(start: u64, len: u64, kind: RegionKind) -> MemRegion {
    MemRegion {
        range: MachineRange::from_len(start, len),
        kind,
    }
}

/// The QEMU 128 MiB map.
fn qemu_map() -> Vec<MemRegion> {
    std::vec![
        region(0, 0x9fc00, RegionKind::Usable),
        region(0x9fc00, 0x400, RegionKind::Reserved),
        region(0xf0000, 0x10000, RegionKind::Reserved),
        region(0x10_0000, 0x7ee_0000, RegionKind::Usable),
        region(0x7fe_0000, 0x2_0000, RegionKind::Reserved),
        region(0xfffc_0000, 0x4_0000, RegionKind::Reserved),
    ]
}

fn build<'a>(
    storage: &'a mut Vec<u64>,
    map: &[MemRegion],
    reserved: &[MachineRange],
) -> FrameAllocator<'a> {
    storage.resize(bitmap_words(map), 0);
    FrameAllocator::new(storage, map, reserved).unwrap()
}

#[test]
fn qemu_map_counts_and_low_memory() {
    let map = qemu_map();
    let image = MachineRange::from_len(0x20_0000, 0x1_8000);
    let mut st = Vec::new();
    let mut fa = build(&mut st, &map, &[image]);
    // Usable above 1 MiB: 0x100000..0x7fe0000 = 0x7ee0 frames, minus the image (0x18).
    assert_eq!(fa.free_count(), 0x7ee0 - 0x18);
    let first = fa.alloc_frame().unwrap();
    assert_eq!(first, Mfn::new(0x100)); // lowest first, above 1 MiB
    assert!(!fa.is_allocatable(Mfn::new(0x9f)));
    assert!(!fa.is_allocatable(Mfn::new(0x200)));
    assert!(!fa.is_allocatable(Mfn::new(0x7fe0)));
    assert!(fa.is_allocatable(Mfn::new(0x218)));
}

#[test]
fn partial_frames() {
    // Usable region starting/ending mid-frame: partial frames are not usable.
    // A reserved range touching part of a frame reserves all of it.
    let map = std::vec![region(0x10_0800, 0x3000, RegionKind::Usable)];
    let res = [MachineRange::from_len(0x10_2ff0, 0x20)];
    let mut st = Vec::new();
    let mut fa = build(&mut st, &map, &res);
    // Whole frames inside [0x100800, 0x103800): 0x101, 0x102. 0x102 is touched by `res`.
    assert_eq!(fa.free_count(), 1);
    assert_eq!(fa.alloc_frame(), Some(Mfn::new(0x101)));
    assert_eq!(fa.alloc_frame(), None);
}

#[test]
fn overlapping_reserved_region_wins() {
    let map = std::vec![
        region(0x10_0000, 0x10_0000, RegionKind::Usable),
        region(0x18_0000, 0x1000, RegionKind::AcpiNvs),
    ];
    let mut st = Vec::new();
    let fa = build(&mut st, &map, &[]);
    assert_eq!(fa.free_count(), 0xff);
    assert!(!fa.is_allocatable(Mfn::new(0x180)));
}

#[test]
fn contiguous_and_free() {
    let map = qemu_map();
    let mut st = Vec::new();
    let mut fa = build(&mut st, &map, &[MachineRange::from_len(0x10_3000, 0x1000)]);
    // 0x100..0x103 free, 0x103 reserved: a run of 4 starts at 0x104.
    let run = fa.alloc_contiguous(4).unwrap();
    assert_eq!(run, Mfn::new(0x104));
    let before = fa.free_count();
    let a = fa.alloc_contiguous(3).unwrap();
    assert_eq!(a, Mfn::new(0x100));
    for f in 0..3 {
        fa.free_frame(a.add(f));
    }
    assert_eq!(fa.free_count(), before);
    assert_eq!(fa.rejected_frees(), 0);
    // Freeing a reserved frame or a free frame is refused and counted.
    fa.free_frame(Mfn::new(0x103));
    fa.free_frame(Mfn::new(0x100));
    fa.free_frame(Mfn::new(0x5));
    fa.free_frame(Mfn::new(u64::MAX));
    assert_eq!(fa.rejected_frees(), 4);
    assert_eq!(fa.free_count(), before);
    assert_eq!(fa.alloc_contiguous(0), None);
    assert_eq!(fa.alloc_contiguous(1 << 40), None);
}

#[test]
fn exhaustion() {
    let map = std::vec![region(0x10_0000, 0x8000, RegionKind::Usable)];
    let mut st = Vec::new();
    let mut fa = build(&mut st, &map, &[]);
    let mut got = BTreeSet::new();
    while let Some(f) = fa.alloc_frame() {
        assert!(got.insert(f.get()));
    }
    assert_eq!(got.len(), 8);
    assert_eq!(fa.free_count(), 0);
    fa.free_frame(Mfn::new(0x104));
    assert_eq!(fa.alloc_frame(), Some(Mfn::new(0x104)));
}

#[test]
fn errors() {
    assert_eq!(
        FrameAllocator::new(&mut [], &[region(0, 0x9f000, RegionKind::Usable)], &[]).err(),
        Some(FramesError::NoUsableMemory)
    );
    let map = qemu_map();
    assert!(matches!(
        FrameAllocator::new(&mut [0; 3], &map, &[]).err(),
        Some(FramesError::StorageTooSmall { .. })
    ));
}

#[test]
fn bitmap_home_avoids_reserved() {
    let map = qemu_map();
    let image = MachineRange::from_len(0x20_0000, 0x1_8000);
    let mods = MachineRange::from_len(0x10_0000, 0x10_0000);
    let home = find_bitmap_home(&map, &[image, mods], 0x1000, 1 << 32).unwrap();
    assert_eq!(home, MachineRange::from_len(0x21_8000, 0x1000));
    // Nothing fits below `below`.
    assert_eq!(find_bitmap_home(&map, &[], 0x1000, 0x10_0000), None);
    // Too big.
    assert_eq!(find_bitmap_home(&map, &[], 1 << 30, 1 << 32), None);
}

fn arb_map() -> impl Strategy<Value = Vec<MemRegion>> {
    proptest::collection::vec((0u64..0x4000, 1u64..0x800, 0u32..6), 1..8).prop_map(|v| {
        v.into_iter()
            .map(|(start, len, t)| MemRegion {
                // Byte-granular starts/lengths so partial frames are exercised.
                range: MachineRange::from_len(start * 0x3f1, len * 0x7e3),
                kind: RegionKind::from_raw(if t == 0 { 1 } else { t }),
            })
            .collect()
    })
}

fn arb_reserved() -> impl Strategy<Value = Vec<MachineRange>> {
    proptest::collection::vec((0u64..0x1000_0000, 0u64..0x40_0000), 0..6).prop_map(|v| {
        v.into_iter()
            .map(|(s, l)| MachineRange::from_len(s, l))
            .collect()
    })
}

/// Is frame `f` reserved according to the *inputs* (independent of the
/// allocator's own bookkeeping)?
fn reserved_by_inputs(f: u64, map: &[MemRegion], reserved: &[MachineRange]) -> bool {
    let frame = MachineRange::from_len(f * PAGE_SIZE, PAGE_SIZE);
    let in_usable = map.iter().any(|r| {
        r.kind == RegionKind::Usable
            && r.range.start.get() <= frame.start.get()
            && frame.end.get() <= r.range.end.get()
    });
    !in_usable
        || frame.start.get() < LOW_MEMORY_END
        || reserved.iter().any(|r| r.overlaps(&frame))
        || map
            .iter()
            .any(|r| r.kind != RegionKind::Usable && r.range.overlaps(&frame))
}

#[derive(Clone, Debug)]
enum Op {
    Alloc,
    AllocN(u64),
    Free(usize),
    FreeArbitrary(u64),
}

fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            4 => Just(Op::Alloc),
            2 => (1u64..20).prop_map(Op::AllocN),
            3 => any::<usize>().prop_map(Op::Free),
            1 => (0u64..0x3000).prop_map(Op::FreeArbitrary),
        ],
        0..200,
    )
}

proptest! {
    /// Whatever the map, the reserved ranges and the sequence of operations
    /// (including frees of arbitrary frames), the allocator never hands out a
    /// reserved frame, never hands out a frame twice, and keeps an exact count.
    #[test]
    fn never_hands_out_reserved(map in arb_map(), reserved in arb_reserved(), ops in arb_ops()) {
        let mut st = std::vec![0u64; bitmap_words(&map)];
        let Ok(mut fa) = FrameAllocator::new(&mut st, &map, &reserved) else {
            return Ok(());
        };
        // Initially free frames: exactly the non-reserved ones in the span.
        let (first, end) = fa.span();
        let expected_free = (first.get()..end.get()).filter(|&f| !reserved_by_inputs(f, &map, &reserved)).count() as u64;
        prop_assert_eq!(fa.free_count(), expected_free);

        let mut held: Vec<u64> = Vec::new();
        let mut held_set = BTreeSet::new();
        for op in ops {
            match op {
                Op::Alloc => if let Some(f) = fa.alloc_frame() {
                    prop_assert!(!reserved_by_inputs(f.get(), &map, &reserved), "reserved frame {:#x}", f.get());
                    prop_assert!(held_set.insert(f.get()), "frame {:#x} handed out twice", f.get());
                    held.push(f.get());
                },
                Op::AllocN(n) => if let Some(f) = fa.alloc_contiguous(n) {
                    for g in f.get()..f.get() + n {
                        prop_assert!(!reserved_by_inputs(g, &map, &reserved), "reserved frame {:#x}", g);
                        prop_assert!(held_set.insert(g), "frame {:#x} handed out twice", g);
                        held.push(g);
                    }
                },
                Op::Free(i) => if !held.is_empty() {
                    let f = held.swap_remove(i % held.len());
                    held_set.remove(&f);
                    fa.free_frame(Mfn::new(f));
                },
                Op::FreeArbitrary(f) => if !held_set.contains(&f) {
                    // Either a reserved frame (refused) or a free one (refused).
                    let before = fa.free_count();
                    fa.free_frame(Mfn::new(f));
                    prop_assert_eq!(fa.free_count(), before);
                },
            }
            prop_assert_eq!(fa.free_count() + held.len() as u64, expected_free);
        }
    }

    /// `find_bitmap_home` returns usable, unreserved RAM below the limit.
    #[test]
    fn bitmap_home_is_free_ram(map in arb_map(), reserved in arb_reserved(), bytes in 1u64..0x20000) {
        if let Some(home) = find_bitmap_home(&map, &reserved, bytes, 0x800_0000) {
            prop_assert!(home.len() >= bytes);
            prop_assert!(home.end.get() <= 0x800_0000);
            for f in home.start.get() / PAGE_SIZE..home.end.get() / PAGE_SIZE {
                prop_assert!(!reserved_by_inputs(f, &map, &reserved));
            }
        }
    }
}
