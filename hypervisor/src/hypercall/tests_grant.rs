//! `grant_table_op` on the real frame tables and page tables of one domain
//! (`crate::grant::world`): what a single domain can do and be refused. Each
//! test has its own domain id: the grant store is shared by the tests.

extern crate std;

use super::tests::{World, DATA, TEST_GRANTS};
use super::Outcome;
use crate::addr::{MachineAddr, Mfn, Pfn};
use crate::domain::elf::testimg::{typical, typical_declaring};
use crate::domain::{DomainId, PageType, GRANT_TABLE_FRAMES};
use crate::grant::world::release_domain;
use crate::mem::PhysMem;
use keel_abi::event::{Pod, DOMID_SELF};
use keel_abi::grant_table::*;
use keel_abi::hypercall::Hypercall;
use keel_abi::version::AbiVersion;
use keel_abi::Errno;
use std::vec::Vec;

fn knowing_1_1(id: u16) -> World {
    let w = World::with_image_id(
        typical_declaring(AbiVersion::V1_1, Some(AbiVersion::V1_0)),
        DomainId(id),
    );
    assert!(w.dom.serves(AbiVersion::V1_1));
    // A store slot another run of this test left behind is fresh again.
    if let Some(s) = TEST_GRANTS.lock().get_mut(usize::from(id)) {
        s.reset();
    }
    w
}

fn op(w: &mut World, cmd: u64, uop: u64, count: u64) -> Outcome {
    w.call(Hypercall::GRANT_TABLE_OP, [cmd, uop, count, 0, 0])
}

fn put<T: Pod>(w: &mut World, at: u64, v: &T) {
    let mut b = std::vec![0u8; T::SIZE];
    v.encode(&mut b);
    w.poke(at, &b);
}

fn get<T: Pod>(w: &World, at: u64) -> T {
    let b: [u8; 64] = w.peek(at);
    T::decode(&b)
}

/// Set up a table of one frame; its frame.
fn setup(w: &mut World) -> Mfn {
    let list = DATA + 0x800;
    put(
        w,
        DATA,
        &GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames: 1,
            status: 7,
            frame_list: list,
        },
    );
    assert_eq!(op(w, GNTTABOP_SETUP_TABLE, DATA, 1), Outcome::Return(0));
    let back: GnttabSetupTable = get(w, DATA);
    assert_eq!(back.status, GNTST_OKAY);
    Mfn::new(u64::from_le_bytes(w.peek(list)))
}

fn grant(w: &mut World, table: Mfn, gref: u32, flags: u16, domid: u16, frame: Mfn) {
    let e = u64::from(flags) | u64::from(domid) << 16 | frame.get() << 32;
    w.mem.write_u64(
        MachineAddr::new(table.addr().get() + 8 * u64::from(gref)),
        e,
    );
}

fn entry_flags(w: &World, table: Mfn, gref: u32) -> u16 {
    w.mem
        .read_u64(MachineAddr::new(table.addr().get() + 8 * u64::from(gref))) as u16
}

fn frame(w: &World, pfn: u64) -> Mfn {
    w.dom.mfn_of(&w.mem, Pfn::new(pfn)).unwrap()
}

fn copy_op(src: (u64, u16, u16), dst: (u64, u16, u16), len: u16, flags: u16) -> GnttabCopy {
    GnttabCopy::new(
        GnttabCopyPtr::new(src.0, src.1, src.2),
        GnttabCopyPtr::new(dst.0, dst.1, dst.2),
        len,
        flags,
    )
}

fn counts_zero_after_release(w: &mut World) {
    release_domain(&TEST_GRANTS, &mut w.dom, &mut w.mem, &crate::peers::Alone);
    assert_eq!(w.dom.release_mm(&mut w.mem), 0, "counts left");
}

#[test]
fn a_domain_whose_image_knows_only_1_0_gets_enosys() {
    // Built before 1.0 (no build note), and built with 1.0 declaring 1.0 or
    // 0.1: none of them knows 1.1.
    let images = [
        typical(),
        typical_declaring(AbiVersion::V1_0, Some(AbiVersion::V1_0)),
        typical_declaring(AbiVersion::V0_1, Some(AbiVersion::V1_0)),
    ];
    for img in images {
        let mut w = World::with_image_id(img, DomainId(8));
        assert!(!w.dom.serves(AbiVersion::V1_1));
        assert_eq!(w.dom.served_abi(), AbiVersion::V1_0);
        for cmd in 0..8 {
            assert_eq!(
                op(&mut w, cmd, DATA, 1),
                Outcome::Return(Errno::ENOSYS.as_return())
            );
        }
    }
}

#[test]
fn an_image_declaring_0_1_built_with_1_1_is_served() {
    // The compatibility guest's case: it declares the oldest release to run
    // everywhere and detects 1.1 at run time.
    let mut w = World::with_image_id(
        typical_declaring(AbiVersion::V0_1, Some(AbiVersion::V1_1)),
        DomainId(1),
    );
    if let Some(s) = TEST_GRANTS.lock().get_mut(1) {
        s.reset();
    }
    assert!(w.dom.serves(AbiVersion::V1_1));
    let _table = setup(&mut w);
    counts_zero_after_release(&mut w);
}

#[test]
fn setup_table_hands_out_the_reserved_frames_and_query_size_reports_them() {
    let mut w = knowing_1_1(2);
    let t = setup(&mut w);
    // The first frame after the domain's memory, ordinary memory held as
    // writable for the table's life, zeroed.
    assert_eq!(t, frame(&w, 64));
    let info = w.dom.page_info(&w.mem, t).unwrap();
    assert_eq!(
        (info.ty, info.type_count, info.ref_count),
        (PageType::Writable, 1, 1)
    );
    put(
        &mut w,
        DATA,
        &GnttabQuerySize {
            dom: DOMID_SELF,
            ..Default::default()
        },
    );
    assert_eq!(op(&mut w, GNTTABOP_QUERY_SIZE, DATA, 1), Outcome::Return(0));
    let q: GnttabQuerySize = get(&w, DATA);
    assert_eq!((q.nr_frames, q.max_nr_frames, q.status), (1, 4, GNTST_OKAY));
    // Growing: frames 64, 65, 66; the table never shrinks; 5 is too many.
    let list = DATA + 0x800;
    for (n, status) in [(3, GNTST_OKAY), (2, GNTST_OKAY), (5, GNTST_GENERAL_ERROR)] {
        put(
            &mut w,
            DATA,
            &GnttabSetupTable {
                dom: 2,
                nr_frames: n,
                status: 7,
                frame_list: list,
            },
        );
        assert_eq!(
            op(&mut w, GNTTABOP_SETUP_TABLE, DATA, 1),
            Outcome::Return(0)
        );
        assert_eq!(get::<GnttabSetupTable>(&w, DATA).status, status, "{n}");
    }
    let listed: [u8; 24] = w.peek(list);
    for k in 0..3 {
        let m = u64::from_le_bytes(listed[8 * k..8 * k + 8].try_into().unwrap());
        assert_eq!(m, frame(&w, 64 + k as u64).get());
    }
    const { assert!(3 < GRANT_TABLE_FRAMES) };
    // Another domain's table: none exists (bad domain); count must be 1.
    put(
        &mut w,
        DATA,
        &GnttabQuerySize {
            dom: 5,
            ..Default::default()
        },
    );
    op(&mut w, GNTTABOP_QUERY_SIZE, DATA, 1);
    assert_eq!(get::<GnttabQuerySize>(&w, DATA).status, GNTST_BAD_DOMAIN);
    assert_eq!(
        op(&mut w, GNTTABOP_QUERY_SIZE, DATA, 2),
        Outcome::Return(Errno::EINVAL.as_return())
    );
    assert_eq!(
        op(
            &mut w,
            GNTTABOP_COPY,
            DATA,
            u64::from(KEEL_GNTTAB_BATCH_MAX) + 1
        ),
        Outcome::Return(Errno::EINVAL.as_return())
    );
    assert_eq!(
        op(&mut w, GNTTABOP_COPY, DATA, 1 << 32),
        Outcome::Return(Errno::EINVAL.as_return())
    );
    assert_eq!(
        op(&mut w, GNTTABOP_QUERY_SIZE, 0x10, 1),
        Outcome::Return(Errno::EFAULT.as_return())
    );
    // Not adopted: transfer (4), set_version (8).
    for cmd in [3, 4, 7, 8, 9, 10] {
        assert_eq!(
            op(&mut w, cmd, DATA, 1),
            Outcome::Return(Errno::ENOSYS.as_return())
        );
    }
    counts_zero_after_release(&mut w);
}

#[test]
fn copy_between_own_frames_and_through_own_grants() {
    let mut w = knowing_1_1(3);
    let t = setup(&mut w);
    let (a, b) = (frame(&w, 50), frame(&w, 51));
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    w.mem.write(a.addr(), &pattern);
    // Frame to frame, a whole page.
    put(
        &mut w,
        DATA,
        &copy_op((a.get(), DOMID_SELF, 0), (b.get(), DOMID_SELF, 0), 4096, 0),
    );
    assert_eq!(op(&mut w, GNTTABOP_COPY, DATA, 1), Outcome::Return(0));
    assert_eq!(get::<GnttabCopy>(&w, DATA).status, GNTST_OKAY);
    let mut got = std::vec![0u8; 4096];
    w.mem.read(b.addr(), &mut got);
    assert_eq!(got, pattern);
    // Through a grant of the domain's own table (granted to itself): source
    // by reference 5, into frame c at an offset.
    let c = frame(&w, 52);
    grant(&mut w, t, 5, GTF_PERMIT_ACCESS | GTF_READONLY, 3, a);
    put(
        &mut w,
        DATA,
        &copy_op(
            (5, DOMID_SELF, 100),
            (c.get(), DOMID_SELF, 200),
            300,
            GNTCOPY_SOURCE_GREF,
        ),
    );
    assert_eq!(op(&mut w, GNTTABOP_COPY, DATA, 1), Outcome::Return(0));
    assert_eq!(get::<GnttabCopy>(&w, DATA).status, GNTST_OKAY);
    let mut got = std::vec![0u8; 300];
    w.mem.read(MachineAddr::new(c.addr().get() + 200), &mut got);
    assert_eq!(got, pattern[100..400]);
    // The in-use flags are cleared again, the counts back where they were.
    assert_eq!(entry_flags(&w, t, 5), GTF_PERMIT_ACCESS | GTF_READONLY);
    let ia = w.dom.page_info(&w.mem, a).unwrap();
    assert_eq!((ia.type_count, ia.ref_count), (1, 1)); // the bootstrap mapping
    counts_zero_after_release(&mut w);
}

#[test]
fn copy_refusals() {
    let mut w = knowing_1_1(4);
    let t = setup(&mut w);
    let a = frame(&w, 50);
    let l4 = w.dom.base();
    grant(&mut w, t, 1, GTF_PERMIT_ACCESS | GTF_READONLY, 4, a);
    grant(&mut w, t, 2, GTF_PERMIT_ACCESS, 4, l4);
    grant(&mut w, t, 3, GTF_PERMIT_ACCESS, 9, a);
    grant(&mut w, t, 4, 0, 4, a);
    let own = |m: Mfn| (m.get(), DOMID_SELF, 0u16);
    let cases: [(GnttabCopy, i16); 9] = [
        // A read-only grant as a destination.
        (
            copy_op(own(a), (1, DOMID_SELF, 0), 8, GNTCOPY_DEST_GREF),
            GNTST_GENERAL_ERROR,
        ),
        // A page table through a grant.
        (
            copy_op((2, DOMID_SELF, 0), own(a), 8, GNTCOPY_SOURCE_GREF),
            GNTST_GENERAL_ERROR,
        ),
        // Granted to another domain; revoked (no GTF_permit_access).
        (
            copy_op((3, DOMID_SELF, 0), own(a), 8, GNTCOPY_SOURCE_GREF),
            GNTST_GENERAL_ERROR,
        ),
        (
            copy_op((4, DOMID_SELF, 0), own(a), 8, GNTCOPY_SOURCE_GREF),
            GNTST_GENERAL_ERROR,
        ),
        // Beyond the table.
        (
            copy_op((512, DOMID_SELF, 0), own(a), 8, GNTCOPY_SOURCE_GREF),
            GNTST_BAD_GNTREF,
        ),
        // A frame that is not the domain's; another domain's frame by number.
        (copy_op((0x10, DOMID_SELF, 0), own(a), 8, 0), GNTST_BAD_PAGE),
        (
            copy_op((a.get(), 7, 0), own(a), 8, 0),
            GNTST_PERMISSION_DENIED,
        ),
        // Crossing the end of the page.
        (
            copy_op((a.get(), DOMID_SELF, 4000), own(a), 97, 0),
            GNTST_BAD_COPY_ARG,
        ),
        // The own page table as a destination frame.
        (copy_op(own(a), own(l4), 8, 0), GNTST_GENERAL_ERROR),
    ];
    let before: Vec<u8> = {
        let mut v = std::vec![0u8; 4096];
        w.mem.read(l4.addr(), &mut v);
        v
    };
    for (i, (c, want)) in cases.iter().enumerate() {
        put(&mut w, DATA, c);
        assert_eq!(op(&mut w, GNTTABOP_COPY, DATA, 1), Outcome::Return(0));
        assert_eq!(get::<GnttabCopy>(&w, DATA).status, *want, "case {i}");
    }
    let mut after = std::vec![0u8; 4096];
    w.mem.read(l4.addr(), &mut after);
    assert_eq!(before, after, "the L4 was written");
    // A refused operation leaves no flag set.
    for g in 1..5 {
        assert_eq!(entry_flags(&w, t, g) & (GTF_READING | GTF_WRITING), 0);
    }
    counts_zero_after_release(&mut w);
}

#[test]
fn map_and_unmap_refusals_of_a_lone_domain() {
    let mut w = knowing_1_1(5);
    let t = setup(&mut w);
    let a = frame(&w, 50);
    grant(&mut w, t, 1, GTF_PERMIT_ACCESS, 5, a);
    let map = |dom: u16, flags: u32, host: u64| GnttabMapGrantRef {
        host_addr: host,
        flags,
        gref: 1,
        dom,
        ..Default::default()
    };
    let cases = [
        // Its own grant: a domain maps its own frames with mmu_update.
        (map(5, GNTMAP_HOST_MAP, 0x40_a000), GNTST_BAD_DOMAIN),
        (
            map(DOMID_SELF, GNTMAP_HOST_MAP, 0x40_a000),
            GNTST_BAD_DOMAIN,
        ),
        // No such domain.
        (map(6, GNTMAP_HOST_MAP, 0x40_a000), GNTST_BAD_DOMAIN),
        // No host mapping asked for; device mapping.
        (map(5, 0, 0x40_a000), GNTST_BAD_GNTREF),
        (map(5, GNTMAP_HOST_MAP | 1, 0x40_a000), GNTST_GENERAL_ERROR),
    ];
    for (i, (m, want)) in cases.iter().enumerate() {
        put(&mut w, DATA, m);
        assert_eq!(
            op(&mut w, GNTTABOP_MAP_GRANT_REF, DATA, 1),
            Outcome::Return(0)
        );
        assert_eq!(get::<GnttabMapGrantRef>(&w, DATA).status, *want, "case {i}");
    }
    assert_eq!(entry_flags(&w, t, 1), GTF_PERMIT_ACCESS);
    let ia = w.dom.page_info(&w.mem, a).unwrap();
    assert_eq!((ia.type_count, ia.ref_count), (1, 1));
    put(
        &mut w,
        DATA,
        &GnttabUnmapGrantRef {
            host_addr: 0x40_a000,
            handle: 0,
            ..Default::default()
        },
    );
    assert_eq!(
        op(&mut w, GNTTABOP_UNMAP_GRANT_REF, DATA, 1),
        Outcome::Return(0)
    );
    assert_eq!(
        get::<GnttabUnmapGrantRef>(&w, DATA).status,
        GNTST_BAD_HANDLE
    );
    counts_zero_after_release(&mut w);
}

#[test]
fn a_long_batch_is_continued_and_the_count_given_back() {
    let mut w = knowing_1_1(6);
    let (a, b) = (frame(&w, 50), frame(&w, 51));
    w.mem.write(a.addr(), &[0xab; 4096]);
    // 200 copies of 16 bytes each (8 units each: 128 fit one exit).
    let n = 200u64;
    for i in 0..n {
        let o = (i * 16) as u16;
        put(
            &mut w,
            DATA + i * GnttabCopy::SIZE as u64,
            &copy_op((a.get(), DOMID_SELF, o), (b.get(), DOMID_SELF, o), 16, 0),
        );
    }
    let mut args = [GNTTABOP_COPY, DATA, n, 0, 0];
    let mut pieces = 0;
    loop {
        match w.call(Hypercall::GRANT_TABLE_OP, args) {
            Outcome::PreemptedRdx(word) => {
                pieces += 1;
                // The pointer stays; the count register holds the progress.
                let p = crate::preempt::Progress::decode(word, false).unwrap();
                assert_eq!((p.count, p.done), (n as u32, 128));
                args[2] = word;
            }
            // The original count is given back with the result.
            Outcome::ResumedRdx { ret: 0, count } => {
                assert_eq!(u64::from(count), n);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pieces, 1);
    let mut got = std::vec![0u8; 3200];
    w.mem.read(b.addr(), &mut got);
    assert!(got.iter().all(|&x| x == 0xab));
    for i in 0..n {
        let c: GnttabCopy = get(&w, DATA + i * GnttabCopy::SIZE as u64);
        assert_eq!(c.status, GNTST_OKAY, "{i}");
    }
    counts_zero_after_release(&mut w);
}

#[test]
fn teardown_without_release_finds_the_table_frames_still_held() {
    let mut w = knowing_1_1(7);
    setup(&mut w);
    // What `release_domain` is for: the table frame's references.
    assert_eq!(w.dom.release_mm(&mut w.mem), 1);
}

#[test]
fn a_grant_batch_inside_a_multicall_is_continued_inside_its_entry() {
    use keel_abi::mmu::MulticallEntry;
    let mut w = knowing_1_1(0);
    let (a, b) = (frame(&w, 50), frame(&w, 51));
    w.mem.write(a.addr(), &[0x5a; 4096]);
    let n = 200u64;
    let ops = DATA + 0x100;
    for i in 0..n {
        let o = (i * 16) as u16;
        put(
            &mut w,
            ops + i * GnttabCopy::SIZE as u64,
            &copy_op((a.get(), DOMID_SELF, o), (b.get(), DOMID_SELF, o), 16, 0),
        );
    }
    let entry = MulticallEntry {
        op: Hypercall::GRANT_TABLE_OP.0,
        result: 1,
        args: [GNTTABOP_COPY, ops, n, 0, 0, 0],
    };
    w.poke(DATA, &entry.encode());
    let mut args = [DATA, 1, 0, 0, 0];
    let mut pieces = 0;
    loop {
        match w.call(Hypercall::MULTICALL, args) {
            Outcome::Preempted(word) => {
                pieces += 1;
                assert!(pieces < 10);
                args[1] = word;
            }
            Outcome::Resumed { ret: 0, count: 1 } => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(pieces >= 1);
    // The entry's result is the call's, and its arguments are the guest's.
    let back = MulticallEntry::decode(&w.peek(DATA));
    assert_eq!(back.result, 0);
    assert_eq!(back.args, entry.args);
    let mut got = std::vec![0u8; 3200];
    w.mem.read(b.addr(), &mut got);
    assert!(got.iter().all(|&x| x == 0x5a));
    counts_zero_after_release(&mut w);
}
