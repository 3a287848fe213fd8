//! Host tests of the domain builder: build domains in fake memory, then walk the
//! tables the way the CPU would and check every mapping against the layout.

extern crate std;

use super::*;
use crate::domain::elf::testimg::{abi_note, build as build_elf, typical, Seg, PF_R, PF_W, PF_X};
use crate::domain::FrameKind;
use crate::mem::fake::{FakeFrames, FakeMem};
use crate::paging::entry::{EntryMem, Pte, PteFlags};
use crate::paging::walk::{walk, WalkFault};
use keel_abi::start_info::{StartInfo, START_INFO_SIZE};
use proptest::prelude::*;
use std::vec::Vec;

fn cfg(nr_pages: u64, nx: bool) -> DomainConfig<'static> {
    DomainConfig {
        id: DomainId(1),
        nr_pages,
        cmd_line: b"console=keel loglevel=3",
        nx,
    }
}

fn build_ok(bytes: &[u8], c: &DomainConfig<'_>) -> (Domain, FakeMem, FakeFrames) {
    let img = GuestImage::parse(bytes).unwrap();
    let mut mem = FakeMem::default();
    let mut frames = FakeFrames::new(0x1000, c.nr_pages + 64);
    let dom = build(&img, bytes, c, &mut mem, &mut frames).unwrap();
    check_domain(&dom, &mem, &img, bytes, c);
    (dom, mem, frames)
}

/// Every property the builder promises, checked from the outside.
fn check_domain(dom: &Domain, mem: &FakeMem, img: &GuestImage, bytes: &[u8], c: &DomainConfig<'_>) {
    let l = *dom.layout();
    let n = c.nr_pages;
    // The memory, then the grant-table frames.
    assert_eq!(dom.nr_pages(), n);
    assert_eq!(dom.owned_pages(), n + crate::domain::GRANT_TABLE_FRAMES);
    assert!(dom.served_abi() <= AbiVersion::CURRENT);
    assert_eq!(dom.id, c.id);
    assert_eq!(dom.nx_enabled(), c.nx);

    // Layout order and sizes, as start_info.rs documents.
    assert_eq!(l.virt_base, img.virt_base());
    assert_eq!(l.mfn_list, Pfn::new(img.nr_image_pages()));
    assert_eq!(l.mfn_list_pages, (n * 8).div_ceil(4096));
    assert_eq!(l.start_info.get(), l.mfn_list.get() + l.mfn_list_pages);
    assert_eq!(l.page_tables.get(), l.start_info.get() + 1);
    assert_eq!(l.stack.get(), l.page_tables.get() + l.nr_pt_frames());
    assert_eq!(l.first_free.get(), l.stack.get() + BOOT_STACK_PAGES);
    assert!(l.first_free.get() <= n);

    // Boot state.
    assert_eq!(dom.boot.entry, img.entry());
    assert_eq!(dom.boot.stack_top.get() % 16, 0);
    assert_eq!(dom.boot.stack_top, l.va(l.first_free));
    assert_eq!(dom.boot.start_info, l.va(l.start_info));
    assert_eq!(dom.boot.cr3, dom.mfn_of(mem, l.page_tables).unwrap());

    // P2M / M2P / kinds.
    let mut seen = std::collections::BTreeSet::new();
    for pfn in 0..n {
        let mfn = dom.mfn_of(mem, Pfn::new(pfn)).unwrap();
        assert!(seen.insert(mfn), "frame {mfn:?} used twice");
        assert!(dom.owns(mem, mfn));
        assert_eq!(dom.pfn_of(mem, mfn), Some(Pfn::new(pfn)));
        let want = match l.table_level(Pfn::new(pfn)) {
            Some(level) => FrameKind::PageTable(level),
            None => FrameKind::Writable,
        };
        assert_eq!(dom.frame_kind(mem, mfn), want);
    }
    // The grant-table frames follow, owned, ordinary memory, mapped nowhere.
    let g = crate::domain::GRANT_TABLE_FRAMES;
    for pfn in n..n + g {
        let mfn = dom.mfn_of(mem, Pfn::new(pfn)).unwrap();
        assert_eq!(dom.frame_kind(mem, mfn), FrameKind::Writable);
    }
    assert_eq!(dom.mfn_of(mem, Pfn::new(n + g)), None);
    // The frame table's own frames and unrelated frames are not the domain's.
    for m in [
        Mfn::new(0),
        Mfn::new(0xfff),
        Mfn::new(0x1000 + n + g + 64),
        Mfn::new(u64::MAX >> 12),
    ] {
        assert!(!dom.owns(mem, m));
        assert_eq!(dom.frame_kind(mem, m), FrameKind::NotOwned);
    }

    // Every PFN is mapped at virt_base + pfn * 4096, through owned tables only.
    let owned = |_: Level, f: Mfn| dom.owns(mem, f);
    for pfn in 0..n {
        let va = l.va(Pfn::new(pfn));
        let w = walk(
            mem,
            dom.boot.cr3,
            GuestVirt::new(va.get() + 0x123),
            c.nx,
            owned,
        )
        .unwrap_or_else(|e| panic!("pfn {pfn} va {:#x}: {e:?}", va.get()));
        assert_eq!(w.frame, dom.mfn_of(mem, Pfn::new(pfn)).unwrap());
        for t in w.tables {
            assert!(matches!(dom.frame_kind(mem, t), FrameKind::PageTable(_)));
        }
        let (want_w, want_x) = expected_perms(img, &l, pfn);
        assert_eq!(w.writable, want_w, "pfn {pfn} writable");
        assert_eq!(w.executable, want_x || !c.nx, "pfn {pfn} executable");
        if l.table_level(Pfn::new(pfn)).is_some() {
            assert!(!w.writable, "page-table frame {pfn} mapped writable");
        }
    }
    // Nothing below virt_base or at/after the end.
    let end = l.va(Pfn::new(n));
    assert!(walk(mem, dom.boot.cr3, end, c.nx, owned).is_err());
    if l.virt_base.get() >= 4096 {
        assert!(walk(
            mem,
            dom.boot.cr3,
            GuestVirt::new(l.virt_base.get() - 4096),
            c.nx,
            owned
        )
        .is_err());
    }

    // Independently of the walk: every present entry of every table frame points
    // at a frame of the domain; no superpages; leaf entries that map a table frame
    // are read-only; non-leaf entries point at tables of the next level down; and
    // the number of present leaf entries is exactly nr_pages.
    let mut leaves = 0;
    for pfn in l.page_tables.get()..l.stack.get() {
        let level = l.table_level(Pfn::new(pfn)).unwrap();
        let t = dom.mfn_of(mem, Pfn::new(pfn)).unwrap();
        for i in 0..512 {
            let e = mem.read_pte(entry_addr(t, i));
            if !e.contains(PteFlags::PRESENT) {
                assert_eq!(e, Pte::EMPTY);
                continue;
            }
            let target = e.frame();
            assert!(dom.owns(mem, target), "entry points outside the domain");
            if !c.nx {
                assert!(!e.contains(PteFlags::NO_EXECUTE));
            }
            if level == Level::L1 {
                leaves += 1;
                if matches!(dom.frame_kind(mem, target), FrameKind::PageTable(_)) {
                    assert!(
                        !e.contains(PteFlags::WRITABLE),
                        "writable mapping of a page table"
                    );
                }
            } else {
                assert!(!e.contains(PteFlags::PAGE_SIZE));
                let below = Level::from_number(level.number() - 1).unwrap();
                assert_eq!(dom.frame_kind(mem, target), FrameKind::PageTable(below));
            }
        }
    }
    assert_eq!(leaves, n);

    // start_info.
    let mut si = [0u8; START_INFO_SIZE];
    let si_mfn = dom.mfn_of(mem, l.start_info).unwrap();
    mem.read(si_mfn.addr(), &mut si);
    let si = StartInfo::decode(&si);
    assert!(si.magic_ok());
    assert_eq!(&si.magic[..14], b"xen-3.0-x86_64");
    assert_eq!(si.nr_pages, n);
    assert_eq!(si.flags, 0);
    assert_eq!(si.pt_base, l.va(l.page_tables));
    assert_eq!(si.nr_pt_frames, l.nr_pt_frames());
    assert_eq!(si.mfn_list, l.va(l.mfn_list));
    assert_eq!(si.cmd_line_bytes(), c.cmd_line);
    assert_eq!(
        (si.shared_info.get(), si.store_mfn.get(), si.mod_start.get()),
        (0, 0, 0)
    );

    // The frame list, read through the guest's own mapping.
    for pfn in 0..n {
        let va = GuestVirt::new(si.mfn_list.get() + pfn * 8);
        let w = walk(mem, dom.boot.cr3, va, c.nx, owned).unwrap();
        let v = mem.read_u64(MachineAddr::new(w.frame.addr().get() + va.page_offset()));
        assert_eq!(Mfn::new(v), dom.mfn_of(mem, Pfn::new(pfn)).unwrap());
    }

    // The image: file bytes, then zeroes to memsz; gaps zero.
    for s in img.segments() {
        for i in (0..s.memsz).step_by(97).chain([s.memsz - 1]) {
            let va = GuestVirt::new(s.vaddr.get() + i);
            let w = walk(mem, dom.boot.cr3, va, c.nx, owned).unwrap();
            let mut b = [0u8];
            mem.read(
                MachineAddr::new(w.frame.addr().get() + va.page_offset()),
                &mut b,
            );
            let want = if i < s.filesz {
                bytes[(s.offset + i) as usize]
            } else {
                0
            };
            assert_eq!(b[0], want, "segment byte {i}");
        }
    }
    // The stack is zero.
    for pfn in l.stack.get()..l.first_free.get() {
        let f = dom.mfn_of(mem, Pfn::new(pfn)).unwrap();
        assert!(mem
            .frames
            .get(&f.get())
            .is_none_or(|v| v.iter().all(|&b| b == 0)));
    }
}

fn expected_perms(img: &GuestImage, l: &Layout, pfn: u64) -> (bool, bool) {
    if l.table_level(Pfn::new(pfn)).is_some() {
        return (false, false);
    }
    if pfn < l.image_pages {
        let (s, e) = (l.va(Pfn::new(pfn)).get(), l.va(Pfn::new(pfn)).get() + 4096);
        let on: Vec<_> = img
            .segments()
            .iter()
            .filter(|x| x.vaddr.get() < e && x.end() > s)
            .collect();
        if !on.is_empty() {
            return (
                on.iter().any(|x| x.writable()),
                on.iter().any(|x| x.executable()),
            );
        }
    }
    (true, false)
}

#[test]
fn typical_guest_default_memory() {
    for nx in [false, true] {
        let bytes = typical();
        let c = cfg(DEFAULT_NR_PAGES, nx);
        let (dom, mut mem, mut frames) = build_ok(&bytes, &c);
        let l = *dom.layout();
        // 5 image pages, 4 pages of frame list, 1 start_info, L4+L3+L2+5 L1s
        // (8 MiB from 0x40_0000 spans 2 MiB regions 2..=5, i.e. 4 L1s).
        assert_eq!(l.image_pages, 5);
        assert_eq!(l.mfn_list_pages, 4);
        assert_eq!((l.nr_l3, l.nr_l2, l.nr_l1), (1, 1, 4));
        assert_eq!(l.nr_pt_frames(), 7);
        assert_eq!(dom.boot.start_info, GuestVirt::new(0x40_0000 + 9 * 4096));
        assert_eq!(
            dom.boot.stack_top,
            GuestVirt::new(0x40_0000 + (10 + 7 + 4) * 4096)
        );
        // Text is read-only: a write through the mapping would fault.
        let w = walk(&mem, dom.boot.cr3, GuestVirt::new(0x40_0000), nx, |_, _| {
            true
        })
        .unwrap();
        assert!(!w.writable && w.executable);
        let w = walk(&mem, dom.boot.cr3, GuestVirt::new(0x40_3000), nx, |_, _| {
            true
        })
        .unwrap();
        assert!(w.writable && w.executable != nx);
        dom.teardown(&mut mem, &mut frames);
        assert!(
            frames.outstanding.is_empty(),
            "teardown leaked {:?}",
            frames.outstanding
        );
    }
}

#[test]
fn teardown_scrubs() {
    let bytes = typical();
    let (dom, mut mem, mut frames) = build_ok(&bytes, &cfg(64, false));
    let f = dom.mfn_of(&mem, Pfn::new(0)).unwrap();
    dom.teardown(&mut mem, &mut frames);
    assert!(mem.frames[&f.get()].iter().all(|&b| b == 0));
    assert!(frames.outstanding.is_empty());
}

#[test]
fn tables_across_l2_l3_and_l4_boundaries() {
    // 1 GiB - 1 MiB: the domain crosses a 1 GiB boundary (two L2s).
    // 512 GiB - 1 MiB: it crosses an L4 slot (two L3s, two L2s).
    // Upper half (a "kernel" link address).
    for (base, l3, l2) in [
        (0x3ff0_0000u64, 1, 2),
        (0x7f_fff0_0000, 2, 2),
        (0xffff_ffff_8000_0000, 1, 1),
    ] {
        let text = Seg::load(base, PF_R | PF_X, &[0xc3; 100], 100);
        let bytes = build_elf(base, &[text, Seg::note(abi_note(0, 1))]);
        for nx in [false, true] {
            let c = cfg(512, nx);
            let (dom, mut mem, mut frames) = build_ok(&bytes, &c);
            assert_eq!(
                (dom.layout().nr_l3, dom.layout().nr_l2),
                (l3, l2),
                "{base:#x}"
            );
            dom.teardown(&mut mem, &mut frames);
            assert!(frames.outstanding.is_empty());
        }
    }
}

#[test]
fn shared_pages_and_gaps() {
    // text and data share page 0x40_0000; a gap page at 0x40_2000; rodata at 0x40_3000.
    let text = Seg::load(0x40_0000, PF_R | PF_X, &[1; 0x800], 0x800);
    let data = Seg::load(0x40_0800, PF_R | PF_W, &[2; 0x100], 0x1900);
    let ro = Seg::load(0x40_3000, PF_R, &[3; 0x10], 0x10);
    let bytes = build_elf(0x40_0000, &[text, data, ro, Seg::note(abi_note(0, 1))]);
    let (dom, mut mem, mut frames) = build_ok(&bytes, &cfg(128, true));
    let perm = |va: u64| {
        let w = walk(&mem, dom.boot.cr3, GuestVirt::new(va), true, |_, _| true).unwrap();
        (w.writable, w.executable)
    };
    assert_eq!(perm(0x40_0000), (true, true)); // union of text and data
    assert_eq!(perm(0x40_1000), (true, false)); // data (bss)
    assert_eq!(perm(0x40_2000), (true, false)); // gap
    assert_eq!(perm(0x40_3000), (false, false)); // rodata
    dom.teardown(&mut mem, &mut frames);
    assert!(frames.outstanding.is_empty());
}

#[test]
fn refusals() {
    let bytes = typical();
    let img = GuestImage::parse(&bytes).unwrap();
    let mut mem = FakeMem::default();
    let mut frames = FakeFrames::new(0x1000, 4096);
    let mut try_build = |bytes: &[u8], img: &GuestImage, c: &DomainConfig<'_>| {
        let r = build(img, bytes, c, &mut mem, &mut frames).map(|_| ());
        assert!(frames.outstanding.is_empty(), "failed build leaked frames");
        r
    };

    // 1.1 is the current version: an image declaring it runs and is served it.
    let current = build_elf(
        0x40_0000,
        &[
            Seg::load(0x40_0000, PF_R | PF_X, &[1], 1),
            Seg::note(abi_note(1, 1)),
        ],
    );
    assert_eq!(AbiVersion::CURRENT, AbiVersion::V1_1);
    {
        let mut mem = FakeMem::default();
        let mut frames = FakeFrames::new(0x1000, 4096);
        let img = GuestImage::parse(&current).unwrap();
        let d = build(&img, &current, &cfg(64, false), &mut mem, &mut frames).unwrap();
        assert!(d.serves(AbiVersion::V1_1));
        d.teardown(&mut mem, &mut frames);
        assert!(frames.outstanding.is_empty());
    }
    // The version in progress (1.2) is accepted, and served its staged calls;
    // a domain has the vCPUs its command line asks for.
    assert_eq!(keel_abi::layout::IN_PROGRESS, Some(AbiVersion::V1_2));
    let next = build_elf(
        0x40_0000,
        &[
            Seg::load(0x40_0000, PF_R | PF_X, &[1], 1),
            Seg::note(abi_note(1, 2)),
        ],
    );
    {
        let mut mem = FakeMem::default();
        let mut frames = FakeFrames::new(0x1000, 4096);
        let img = GuestImage::parse(&next).unwrap();
        let c = DomainConfig {
            cmd_line: b"vcpu_ops keel.vcpus=1",
            ..cfg(64, false)
        };
        let d = build(&img, &next, &c, &mut mem, &mut frames).unwrap();
        assert!(d.serves(AbiVersion::V1_2));
        assert_eq!(d.vcpus.count(), 1);
        d.teardown(&mut mem, &mut frames);
        assert!(frames.outstanding.is_empty());
    }
    // ABI too new: beyond the version in progress, and major.
    let newer = build_elf(
        0x40_0000,
        &[
            Seg::load(0x40_0000, PF_R | PF_X, &[1], 1),
            Seg::note(abi_note(1, 3)),
        ],
    );
    let e = try_build(&newer, &GuestImage::parse(&newer).unwrap(), &cfg(64, false)).unwrap_err();
    assert_eq!(
        e,
        BuildError::AbiUnsupported {
            guest: AbiVersion { major: 1, minor: 3 },
            hypervisor: AbiVersion::CURRENT
        }
    );
    assert_eq!(
        std::format!("{e}"),
        std::format!(
            "guest needs ABI 1.3, this hypervisor implements {}",
            AbiVersion::CURRENT
        )
    );
    assert_eq!(e.exit_status(), ExitStatus::BadGuestImage);
    let major = build_elf(
        0x40_0000,
        &[
            Seg::load(0x40_0000, PF_R | PF_X, &[1], 1),
            Seg::note(abi_note(2, 0)),
        ],
    );
    assert!(matches!(
        try_build(&major, &GuestImage::parse(&major).unwrap(), &cfg(64, false)),
        Err(BuildError::AbiUnsupported { .. })
    ));
    // Older guests run: 0.1 (major 0 is the pre-release series of 1) and 1.0.
    for (major, minor) in [(0, 1), (1, 0)] {
        let older = build_elf(
            0x40_0000,
            &[
                Seg::load(0x40_0000, PF_R | PF_X, &[1], 1),
                Seg::note(abi_note(major, minor)),
            ],
        );
        let r = {
            let img = GuestImage::parse(&older).unwrap();
            let mut mem = FakeMem::default();
            let mut fr = FakeFrames::new(0, 200);
            build(&img, &older, &cfg(64, false), &mut mem, &mut fr)
                .map(|d| d.teardown(&mut mem, &mut fr).leaked_counts)
        };
        assert_eq!(r, Ok(0), "a guest declaring {major}.{minor}");
    }

    // Too small: image 5 + list 1 + si 1 + tables 4 + stack 4 = 15 pages.
    assert_eq!(
        try_build(&bytes, &img, &cfg(14, false)),
        Err(BuildError::TooSmall {
            needed: 15,
            nr_pages: 14
        })
    );
    assert_eq!(
        try_build(&bytes, &img, &cfg(0, false)),
        Err(BuildError::BadNrPages { nr_pages: 0 })
    );
    assert_eq!(
        try_build(&bytes, &img, &cfg(MAX_DOMAIN_PAGES + 1, false)),
        Err(BuildError::BadNrPages {
            nr_pages: MAX_DOMAIN_PAGES + 1
        })
    );
    // Out of machine memory (4096 frames available, 5000 wanted).
    let e = try_build(&bytes, &img, &cfg(5000, false)).unwrap_err();
    assert_eq!(e, BuildError::OutOfMemory { nr_pages: 5000 });
    assert_eq!(e.exit_status(), ExitStatus::OutOfMemory);
    // Command line.
    let long = [b'x'; MAX_GUEST_CMDLINE];
    let c = DomainConfig {
        cmd_line: &long,
        ..cfg(64, false)
    };
    assert_eq!(
        try_build(&bytes, &img, &c),
        Err(BuildError::BadCmdLine {
            len: MAX_GUEST_CMDLINE
        })
    );
    let c = DomainConfig {
        cmd_line: b"a\0b",
        ..cfg(64, false)
    };
    assert_eq!(
        try_build(&bytes, &img, &c),
        Err(BuildError::BadCmdLine { len: 3 })
    );
    let fits = [b'y'; MAX_GUEST_CMDLINE - 1];
    let c = DomainConfig {
        cmd_line: &fits,
        ..cfg(64, false)
    };
    assert_eq!(try_build_ok(&bytes, &img, &c), Ok(()));
    // Bytes that are not the image.
    assert_eq!(
        try_build(&bytes[..100], &img, &cfg(64, false)),
        Err(BuildError::ImageMismatch)
    );
    // The domain would run off the end of the lower canonical half.
    let top = 0x7fff_fff0_0000u64;
    let edge = build_elf(
        top,
        &[
            Seg::load(top, PF_R | PF_X, &[1], 1),
            Seg::note(abi_note(0, 1)),
        ],
    );
    let eimg = GuestImage::parse(&edge).unwrap();
    assert_eq!(
        try_build(&edge, &eimg, &cfg(512, false)),
        Err(BuildError::AddressSpace)
    );
    assert!(try_build_ok(&edge, &eimg, &cfg(256, false)).is_ok());
    for e in [
        BuildError::AddressSpace,
        BuildError::BadFrame(Mfn::new(3)),
        BuildError::ImageMismatch,
    ] {
        assert!(!std::format!("{e}").contains('\n'));
    }
}

/// Build in fresh memory and tear down; Ok if the build worked.
fn try_build_ok(bytes: &[u8], img: &GuestImage, c: &DomainConfig<'_>) -> Result<(), BuildError> {
    let mut mem = FakeMem::default();
    let mut frames = FakeFrames::new(0x10, c.nr_pages + 64);
    let dom = build(img, bytes, c, &mut mem, &mut frames)?;
    check_domain(&dom, &mem, img, bytes, c);
    dom.teardown(&mut mem, &mut frames);
    assert!(frames.outstanding.is_empty());
    Ok(())
}

#[test]
fn walk_of_missing_mapping_reports_level() {
    let bytes = typical();
    let (dom, mem, _frames) = build_ok(&bytes, &cfg(64, false));
    let r = walk(
        &mem,
        dom.boot.cr3,
        GuestVirt::new(0x8000_0000),
        false,
        |_, _| true,
    );
    assert_eq!(r, Err(WalkFault::NotPresent { level: Level::L3 }));
}

prop_compose! {
    fn arb_image()(
        base_sel in 0usize..4,
        base_off in 0u64..1024,
        nsegs in 1usize..4,
        sizes in proptest::collection::vec((1u64..0x3000, 0u64..0x2000, 0u64..0x2000, 0u32..8), 3),
    ) -> Vec<u8> {
        let bases = [0x40_0000u64, 0x3ff0_0000, 0x7f_fff0_0000, 0xffff_ffff_8000_0000];
        let base = bases[base_sel] + base_off * 4096;
        let mut segs = Vec::new();
        let mut va = base;
        for (i, &(filesz, extra, gap, flags)) in sizes.iter().take(nsegs).enumerate() {
            let flags = if i == 0 { PF_R | PF_X } else { flags };
            let data: Vec<u8> = (0..filesz).map(|j| (j * 31 + i as u64) as u8).collect();
            segs.push(Seg::load(va, flags, &data, filesz + extra));
            va += filesz + extra + gap;
        }
        segs.push(Seg::note(abi_note(0, 1)));
        build_elf(base, &segs)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random images and sizes: either a clean refusal that leaks nothing, or a
    /// domain that satisfies every invariant and tears down completely.
    #[test]
    fn random_domains_satisfy_invariants(bytes in arb_image(), nr_pages in 1u64..700, nx in any::<bool>()) {
        let img = GuestImage::parse(&bytes).unwrap();
        let c = cfg(nr_pages, nx);
        let mut mem = FakeMem::default();
        let mut frames = FakeFrames::new(0x2000, nr_pages + 40);
        match build(&img, &bytes, &c, &mut mem, &mut frames) {
            Ok(dom) => {
                check_domain(&dom, &mem, &img, &bytes, &c);
                dom.teardown(&mut mem, &mut frames);
            }
            Err(e) => prop_assert!(matches!(e, BuildError::TooSmall { .. } | BuildError::AddressSpace), "{e:?}"),
        }
        prop_assert!(frames.outstanding.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Mutated images the parser accepts are built (or refused) without a panic,
    /// and a built domain satisfies the invariants.
    #[test]
    fn mutated_images_build_or_refuse(
        edits in proptest::collection::vec((0usize..64 + 3 * 56, any::<u8>()), 1..6),
        nr_pages in 1u64..200,
    ) {
        let mut bytes = typical();
        for (i, v) in &edits {
            bytes[*i] = *v;
        }
        let Ok(img) = GuestImage::parse(&bytes) else { return Ok(()) };
        let c = cfg(nr_pages, true);
        let mut mem = FakeMem::default();
        let mut frames = FakeFrames::new(0x2000, nr_pages + 40);
        if let Ok(dom) = build(&img, &bytes, &c, &mut mem, &mut frames) {
            check_domain(&dom, &mem, &img, &bytes, &c);
            dom.teardown(&mut mem, &mut frames);
        }
        prop_assert!(frames.outstanding.is_empty());
    }
}
