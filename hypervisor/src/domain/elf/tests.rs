//! The reader against well-formed images and against each rule broken in turn.

extern crate std;
use super::parse::*;
use super::testimg::*;
use super::*;
use crate::addr::{GuestVirt, PAGE_SIZE};
use keel_abi::note::{TestCategory, NT_KEEL_ABI_BUILT, NT_KEEL_ABI_VERSION, NT_KEEL_TEST};
use keel_abi::version::AbiVersion;
use proptest::prelude::*;
use std::vec::Vec;

#[test]
fn parses_typical_image() {
    let bytes = typical();
    let img = GuestImage::parse(&bytes).unwrap();
    assert_eq!(img.entry(), GuestVirt::new(0x40_0010));
    assert_eq!(img.abi_version(), AbiVersion::V0_1);
    assert_eq!(img.segments().len(), 2);
    let s0 = img.segments()[0];
    assert_eq!(
        (s0.vaddr, s0.filesz, s0.memsz),
        (GuestVirt::new(0x40_0000), 0x2100, 0x2100)
    );
    assert!(s0.executable() && !s0.writable());
    let s1 = img.segments()[1];
    assert_eq!(
        (s1.vaddr, s1.filesz, s1.memsz),
        (GuestVirt::new(0x40_3000), 0x300, 0x1800)
    );
    assert!(s1.writable() && !s1.executable());
    assert_eq!(img.virt_base(), GuestVirt::new(0x40_0000));
    assert_eq!(img.virt_end(), GuestVirt::new(0x40_5000));
    assert_eq!(img.nr_image_pages(), 5);
    let t = img.test().unwrap();
    assert_eq!(t.category(), Some(TestCategory::Functional));
    assert_eq!(t.title_str(&bytes), Some("typical guest"));
    // The segment's file bytes are where the header says.
    let off = s0.offset as usize;
    assert_eq!(&bytes[off..off + 4], &[0, 1, 2, 3]);
}

#[test]
fn segments_are_sorted() {
    let mut notes = abi_note(0, 1);
    notes.extend(note(b"GNU\0", 3, &[1, 2, 3, 4, 5, 6, 7, 8]));
    let bytes = build(
        0x40_0000,
        &[
            Seg::load(0x50_0000, PF_R | PF_W, &[1; 10], 10),
            Seg::note(notes),
            Seg::load(0x40_0000, PF_R | PF_X, &[2; 10], 10),
        ],
    );
    let img = GuestImage::parse(&bytes).unwrap();
    assert_eq!(img.segments()[0].vaddr, GuestVirt::new(0x40_0000));
    assert_eq!(img.segments()[1].vaddr, GuestVirt::new(0x50_0000));
    assert_eq!(img.test(), None);
}

fn with(segs: &[Seg], entry: u64) -> Result<GuestImage, ElfError> {
    GuestImage::parse(&build(entry, segs))
}

fn text() -> Seg {
    Seg::load(0x40_0000, PF_R | PF_X, &[0x90; 64], 64)
}

#[test]
fn header_rejections() {
    let good = typical();
    assert!(GuestImage::parse(&good).is_ok());
    let patch = |off: usize, v: &[u8]| {
        let mut b = good.clone();
        b[off..off + v.len()].copy_from_slice(v);
        GuestImage::parse(&b)
    };
    assert_eq!(GuestImage::parse(&good[..63]), Err(ElfError::Truncated));
    assert_eq!(GuestImage::parse(&[]), Err(ElfError::Truncated));
    assert_eq!(patch(0, b"\x7fELG"), Err(ElfError::BadMagic));
    assert_eq!(patch(4, &[1]), Err(ElfError::NotElf64));
    assert_eq!(patch(5, &[2]), Err(ElfError::NotLittleEndian));
    assert_eq!(patch(6, &[0]), Err(ElfError::BadVersion));
    assert_eq!(patch(20, &[2]), Err(ElfError::BadVersion));
    assert_eq!(patch(16, &3u16.to_le_bytes()), Err(ElfError::NotExecutable));
    assert_eq!(patch(18, &3u16.to_le_bytes()), Err(ElfError::NotX86_64));
    assert_eq!(
        patch(54, &32u16.to_le_bytes()),
        Err(ElfError::BadProgramHeaders)
    );
    assert_eq!(
        patch(56, &0u16.to_le_bytes()),
        Err(ElfError::BadProgramHeaders)
    );
    assert_eq!(
        patch(56, &0xffffu16.to_le_bytes()),
        Err(ElfError::BadProgramHeaders)
    );
    assert_eq!(patch(32, &u64::MAX.to_le_bytes()), Err(ElfError::Truncated));
    assert_eq!(
        patch(32, &(good.len() as u64 - 10).to_le_bytes()),
        Err(ElfError::Truncated)
    );
    assert_eq!(
        patch(24, &0x40_3000u64.to_le_bytes()),
        Err(ElfError::BadEntry)
    );
    assert_eq!(
        patch(24, &0x40_2100u64.to_le_bytes()),
        Err(ElfError::BadEntry)
    );
    assert_eq!(
        patch(24, &0x40_20ffu64.to_le_bytes()).map(|i| i.entry().get()),
        Ok(0x40_20ff)
    );
}

#[test]
fn segment_rejections() {
    let abi = || Seg::note(abi_note(0, 1));
    // File bytes outside the file.
    let mut b = build(0x40_0000, &[text(), abi()]);
    b[64 + 32..64 + 40].copy_from_slice(&(1u64 << 40).to_le_bytes()); // filesz
    b[64 + 40..64 + 48].copy_from_slice(&(1u64 << 40).to_le_bytes()); // memsz
    assert_eq!(
        GuestImage::parse(&b),
        Err(ElfError::SegmentOutsideFile { index: 0 })
    );
    let mut b = build(0x40_0000, &[text(), abi()]);
    b[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes()); // offset
    assert_eq!(
        GuestImage::parse(&b),
        Err(ElfError::SegmentOutsideFile { index: 0 })
    );
    // memsz < filesz
    let mut s = text();
    s.memsz = 10;
    assert_eq!(
        with(&[s, abi()], 0x40_0000),
        Err(ElfError::MemSizeBelowFileSize { index: 0 })
    );
    // Non-canonical, wrapping, straddling the hole.
    for vaddr in [
        0x0000_8000_0000_0000u64,
        0xffff_7fff_ffff_f000,
        0xffff_ffff_ffff_ff00,
    ] {
        let mut s = text();
        s.vaddr = vaddr;
        s.memsz = 0x1000;
        assert_eq!(
            with(&[s, abi()], vaddr),
            Err(ElfError::NonCanonicalSegment { index: 0 }),
            "{vaddr:#x}"
        );
    }
    let mut s = text();
    s.vaddr = 0x0000_7fff_ffff_f000;
    s.memsz = 0x2000;
    assert_eq!(
        with(&[s, abi()], 0x0000_7fff_ffff_f000),
        Err(ElfError::NonCanonicalSegment { index: 0 })
    );
    // Upper-half images are fine.
    let mut s = text();
    s.vaddr = 0xffff_ffff_8000_0000;
    assert!(with(&[s, abi()], 0xffff_ffff_8000_0000).is_ok());
    // Absurd sizes.
    let mut s = text();
    s.memsz = MAX_IMAGE_SPAN + 1;
    assert_eq!(with(&[s, abi()], 0x40_0000), Err(ElfError::TooLarge));
    let far = Seg::load(0x40_0000 + MAX_IMAGE_SPAN, PF_R, &[1], 1);
    assert_eq!(
        with(&[text(), far, abi()], 0x40_0000),
        Err(ElfError::TooLarge)
    );
    // Overlap (byte-level; sharing a page without overlapping is allowed).
    let o = Seg::load(0x40_0020, PF_R | PF_W, &[1; 8], 8);
    assert_eq!(
        with(&[text(), o, abi()], 0x40_0000),
        Err(ElfError::OverlappingSegments)
    );
    let adj = Seg::load(0x40_0040, PF_R | PF_W, &[1; 8], 8);
    assert!(with(&[text(), adj, abi()], 0x40_0000).is_ok());
    // Nothing loadable; empty PT_LOADs are skipped.
    let empty = Seg::load(0x40_0000, PF_R | PF_X, &[], 0);
    assert_eq!(
        with(&[empty.clone(), abi()], 0x40_0000),
        Err(ElfError::NoLoadableSegment)
    );
    assert!(with(&[empty, text(), abi()], 0x40_0000).is_ok());
    // Entry in a non-executable segment, or in .bss past the file bytes but inside memsz.
    let data = Seg::load(0x40_0000, PF_R | PF_W, &[0; 64], 64);
    assert_eq!(with(&[data, abi()], 0x40_0000), Err(ElfError::BadEntry));
    // Too many segments.
    let many: Vec<Seg> = (0..=MAX_SEGMENTS as u64)
        .map(|i| Seg::load(0x40_0000 + i * 0x1000, PF_R | PF_X, &[1], 1))
        .chain([abi()])
        .collect();
    assert_eq!(with(&many, 0x40_0000), Err(ElfError::TooManySegments));
    // Dynamic images.
    let mut dynamic = abi();
    dynamic.p_type = PT_DYNAMIC;
    assert_eq!(
        with(&[text(), abi(), dynamic], 0x40_0000),
        Err(ElfError::NotStatic)
    );
}

#[test]
fn note_rules() {
    let t = text;
    // Missing ABI note: only a test note, or only foreign notes.
    assert_eq!(
        with(&[t(), Seg::note(test_note(1, "x"))], 0x40_0000),
        Err(ElfError::MissingAbiNote)
    );
    assert_eq!(with(&[t()], 0x40_0000), Err(ElfError::MissingAbiNote));
    let foreign = note(b"Xen\0", NT_KEEL_ABI_VERSION, &[0, 0, 1, 0]);
    assert_eq!(
        with(&[t(), Seg::note(foreign)], 0x40_0000),
        Err(ElfError::MissingAbiNote)
    );
    // Name without NUL accepted.
    let img = with(
        &[
            t(),
            Seg::note(note(b"Keel", NT_KEEL_ABI_VERSION, &[0, 0, 3, 0])),
        ],
        0x40_0000,
    )
    .unwrap();
    assert_eq!(img.abi_version(), AbiVersion { major: 0, minor: 3 });
    // Wrong descriptor size.
    let bad = note(b"Keel\0", NT_KEEL_ABI_VERSION, &[0, 0, 1]);
    assert_eq!(
        with(&[t(), Seg::note(bad)], 0x40_0000),
        Err(ElfError::MalformedNote)
    );
    let bad = note(b"Keel\0", NT_KEEL_TEST, &[0, 0]);
    let mut notes = abi_note(0, 1);
    notes.extend(bad);
    assert_eq!(
        with(&[t(), Seg::note(notes)], 0x40_0000),
        Err(ElfError::MalformedNote)
    );
    // The build note: optional, 4 bytes, once.
    let plain = Seg::note(abi_note(0, 1));
    assert_eq!(with(&[t(), plain], 0x40_0000).unwrap().abi_built(), None);
    let mut notes = abi_note(0, 1);
    notes.extend(note(b"Keel\0", NT_KEEL_ABI_BUILT, &[1, 0, 0, 0]));
    let img = with(&[t(), Seg::note(notes.clone())], 0x40_0000).unwrap();
    assert_eq!(img.abi_version(), AbiVersion::V0_1);
    assert_eq!(img.abi_built(), Some(AbiVersion::V1_0));
    notes.extend(note(b"Keel\0", NT_KEEL_ABI_BUILT, &[1, 0, 0, 0]));
    assert_eq!(
        with(&[t(), Seg::note(notes)], 0x40_0000),
        Err(ElfError::DuplicateNote)
    );
    let mut notes = abi_note(0, 1);
    notes.extend(note(b"Keel\0", NT_KEEL_ABI_BUILT, &[1, 0, 0]));
    assert_eq!(
        with(&[t(), Seg::note(notes)], 0x40_0000),
        Err(ElfError::MalformedNote)
    );
    // Duplicates.
    let mut notes = abi_note(0, 1);
    notes.extend(abi_note(0, 1));
    assert_eq!(
        with(&[t(), Seg::note(notes)], 0x40_0000),
        Err(ElfError::DuplicateNote)
    );
    // Truncated note: descsz runs past the segment.
    let mut notes = abi_note(0, 1);
    notes[4] = 200;
    assert_eq!(
        with(&[t(), Seg::note(notes)], 0x40_0000),
        Err(ElfError::MalformedNote)
    );
    // Trailing garbage shorter than a header.
    let mut notes = abi_note(0, 1);
    notes.extend([0u8; 4]);
    assert_eq!(
        with(&[t(), Seg::note(notes)], 0x40_0000),
        Err(ElfError::MalformedNote)
    );
    // Huge namesz does not overflow.
    let mut notes = abi_note(0, 1);
    notes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        with(&[t(), Seg::note(notes)], 0x40_0000),
        Err(ElfError::MalformedNote)
    );
    // A test note without NUL, unknown category: parsed, category undecoded.
    let mut notes = abi_note(0, 1);
    notes.extend(note(b"Keel\0", NT_KEEL_TEST, &[9, 0, 0, 0, b'a', b'b']));
    let bytes = build(0x40_0000, &[t(), Seg::note(notes)]);
    let img = GuestImage::parse(&bytes).unwrap();
    let tn = img.test().unwrap();
    assert_eq!((tn.category_raw, tn.category()), (9, None));
    assert_eq!(tn.title(&bytes), b"ab");
    assert_eq!(tn.title(&[]), b"");
    // 8-aligned note segments (GNU style) parse.
    let mut n = Seg::note(abi_note(0, 1));
    n.align = 8;
    assert!(with(&[t(), n], 0x40_0000).is_ok());
    // A note segment outside the file.
    let mut b = build(0x40_0000, &[t(), Seg::note(abi_note(0, 1))]);
    let ph = 64 + PHDR_SIZE;
    b[ph + 32..ph + 40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(GuestImage::parse(&b), Err(ElfError::MalformedNote));
}

#[test]
fn display_is_one_line() {
    for e in [
        ElfError::Truncated,
        ElfError::MissingAbiNote,
        ElfError::SegmentOutsideFile { index: 3 },
        ElfError::TooLarge,
    ] {
        let s = std::format!("{e}");
        assert!(!s.is_empty() && !s.contains('\n'), "{s}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = GuestImage::parse(&bytes);
    }

    /// Random bytes behind a valid ELF header exercise the program-header paths.
    #[test]
    fn random_headers_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..1024),
        phnum in 0u16..8,
    ) {
        let mut b = typical()[..64].to_vec();
        b[56..58].copy_from_slice(&phnum.to_le_bytes());
        b.extend_from_slice(&tail);
        if let Ok(img) = GuestImage::parse(&b) {
            check_invariants(&img, &b);
        }
    }

    /// Mutations of a valid image: whatever is accepted obeys the invariants.
    #[test]
    fn mutated_images_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        truncate in any::<prop::sample::Index>(),
        do_truncate in any::<bool>(),
    ) {
        let mut b = typical();
        for (i, v) in &edits {
            let i = i.index(b.len());
            b[i] = *v;
        }
        if do_truncate {
            b.truncate(truncate.index(b.len() + 1));
        }
        if let Ok(img) = GuestImage::parse(&b) {
            check_invariants(&img, &b);
        }
    }

    /// Mutating only the header/phdr region (where the interesting fields are).
    #[test]
    fn mutated_headers_never_panic(
        edits in proptest::collection::vec((0usize..64 + 3 * 56, any::<u8>()), 1..8),
    ) {
        let mut b = typical();
        for (i, v) in &edits {
            b[*i] = *v;
        }
        if let Ok(img) = GuestImage::parse(&b) {
            check_invariants(&img, &b);
        }
    }
}

fn check_invariants(img: &GuestImage, bytes: &[u8]) {
    let segs = img.segments();
    assert!(!segs.is_empty());
    for s in segs {
        assert!(s.filesz <= s.memsz && s.memsz > 0);
        assert!(s.offset + s.filesz <= bytes.len() as u64);
        assert!(s.vaddr.is_canonical() && GuestVirt::new(s.end() - 1).is_canonical());
    }
    assert!(segs.windows(2).all(|w| w[0].end() <= w[1].vaddr.get()));
    assert!(segs
        .iter()
        .any(|s| s.executable() && s.contains(img.entry())));
    assert!(img.virt_end().get() - img.virt_base().get() <= MAX_IMAGE_SPAN + PAGE_SIZE);
}
