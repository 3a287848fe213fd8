//! `grant_table_op` in one domain (ABI 1.1: this image declares
//! 1.1): `setup_table` and `query_size`; the table frame mapped with
//! `mmu_update` and written by the guest; `GNTTABOP_copy` between the domain's
//! own frames and through its own grants, a long batch continued across exits
//! with the registers kept; and the refusals one domain can provoke: a
//! read-only grant as a destination, a page-table frame through a grant, a
//! revoked grant, a grant to another domain, a reference beyond the table, a
//! frame not the domain's, another domain's frame without a grant, a copy
//! across a page end, mapping its own grant, a map without `GNTMAP_host_map`,
//! an unknown handle, and pinning the table frame as a page table.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::event::DOMID_SELF;
use keel_guest::abi::grant_table::*;
use keel_guest::abi::guest::{
    gnttab_copy, gnttab_map, gnttab_query_size, gnttab_setup_table, gnttab_unmap, hypercall_scalar,
};
use keel_guest::abi::mmu::MMUEXT_PIN_L1_TABLE;
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, PteFlags};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "grant_table_op: setup, query, copy (own frames and own grants, continued), and the refusals of one domain",
    category: Security,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

fn status_of(what: &str, r: Result<(), Errno>, s: i16, want: i16) -> bool {
    check!(r.is_ok(), "{what}: the call failed: {r:?}") && check_eq!(s, want, "{what}: status")
}

fn copy(src: (u64, u16, u16), dst: (u64, u16, u16), len: u16, flags: u16) -> GnttabCopy {
    GnttabCopy::new(
        GnttabCopyPtr::new(src.0, src.1, src.2),
        GnttabCopyPtr::new(dst.0, dst.1, dst.2),
        len,
        flags,
    )
}

/// Our domain id (a grant names its grantee by id): the remote end of an
/// unbound port allocated for `DOMID_SELF`.
fn my_domid() -> Option<u16> {
    use keel_guest::abi::guest::{evtchn_alloc_unbound, evtchn_close, evtchn_status};
    let port = evtchn_alloc_unbound().ok()?;
    let id = evtchn_status(port).ok().map(|s| s.u[0] as u16);
    let _ = evtchn_close(port);
    id
}

fn test_main() {
    let Some(me) = my_domid() else {
        check!(false, "our domain id: no unbound port");
        return;
    };
    // Setup: one frame, listed.
    let mut list = [0u64; 1];
    let r = gnttab_setup_table(&mut list);
    if !check_eq!(r, Ok(GNTST_OKAY), "setup_table") {
        return;
    }
    let table = Mfn::new(list[0]);
    match gnttab_query_size() {
        Ok(q) => {
            check_eq!(
                (q.status, q.nr_frames, q.max_nr_frames),
                (GNTST_OKAY, 1, 4),
                "query_size"
            );
        }
        Err(e) => {
            check!(false, "query_size: {e:?}");
        }
    }
    let mut two = [GnttabQuerySize::default(); 2];
    let r = hypercall_scalar(
        Hypercall::GRANT_TABLE_OP,
        [GNTTABOP_QUERY_SIZE, two.as_mut_ptr() as u64, 2, 0, 0],
    );
    check_eq!(r, Errno::EINVAL.as_return(), "query_size with count 2");
    // The table frame is held as ordinary memory: never a page table.
    expect_err(
        format_args!("pin the grant-table frame as an L1"),
        ext(MMUEXT_PIN_L1_TABLE, table),
        Errno::EINVAL,
    );

    // Map the table frame writable in place of a free frame of ours.
    let t = take_frame();
    if !expect_ok(
        format_args!("map the grant-table frame"),
        set_leaf(t.va, entry(table, PteFlags::PRESENT | PteFlags::WRITABLE)),
    ) {
        return;
    }
    let set_entry = |gref: u64, flags: u16, domid: u16, frame: Mfn| {
        let e = u64::from(flags) | u64::from(domid) << 16 | frame.get() << 32;
        let _ = fault::write_u64(GuestVirt::new(t.va.get() + 8 * gref), e);
    };
    let flags_of =
        |gref: u64| fault::read_u64(GuestVirt::new(t.va.get() + 8 * gref)).map(|e| e as u16);

    // Copy frame to frame.
    let (a, b, c) = (take_frame(), take_frame(), take_frame());
    for i in 0..512 {
        let _ = fault::write_u64(GuestVirt::new(a.va.get() + 8 * i), 0x1111 * i);
    }
    let own = |f: &Frame, off: u16| (f.mfn.get(), DOMID_SELF, off);
    let mut ops = [copy(own(&a, 0), own(&b, 0), 4096, 0)];
    let r = gnttab_copy(&mut ops);
    if status_of("copy frame to frame", r, ops[0].status, GNTST_OKAY) {
        check_eq!(
            fault::read_u64(GuestVirt::new(b.va.get() + 8 * 511)),
            Ok(0x1111 * 511),
            "copied data"
        );
    }
    // Through a grant of our own table, to ourselves, read-only.
    set_entry(5, GTF_PERMIT_ACCESS | GTF_READONLY, me, a.mfn);
    let mut ops = [copy(
        (5, DOMID_SELF, 16),
        own(&c, 8),
        24,
        GNTCOPY_SOURCE_GREF,
    )];
    let r = gnttab_copy(&mut ops);
    if status_of("copy through a grant", r, ops[0].status, GNTST_OKAY) {
        check_eq!(
            fault::read_u64(GuestVirt::new(c.va.get() + 8)),
            Ok(0x1111 * 2),
            "data copied through the grant"
        );
    }
    check_eq!(
        flags_of(5),
        Ok(GTF_PERMIT_ACCESS | GTF_READONLY),
        "GTF_reading cleared after the copy"
    );

    // A batch longer than one exit does: continued, registers kept (the
    // compiler relies on RSI and RDX after the VMCALL).
    let mut many = [copy(own(&a, 0), own(&c, 0), 8, 0); 200];
    for (i, op) in many.iter_mut().enumerate() {
        let o = (i * 8) as u16 % 4096;
        op.source.offset = o;
        op.dest.offset = o;
    }
    let r = gnttab_copy(&mut many);
    check!(r.is_ok(), "200 copies: {r:?}");
    check!(
        many.iter().all(|o| o.status == GNTST_OKAY),
        "200 copies: every status okay"
    );
    check_eq!(
        fault::read_u64(GuestVirt::new(c.va.get() + 8 * 199)),
        Ok(0x1111 * 199),
        "the last of 200 copies"
    );

    // Refusals.
    let l4 = cr3_mfn();
    set_entry(1, GTF_PERMIT_ACCESS | GTF_READONLY, me, a.mfn);
    set_entry(2, GTF_PERMIT_ACCESS, me, l4);
    set_entry(3, GTF_PERMIT_ACCESS, me.wrapping_add(1), a.mfn);
    set_entry(4, 0, me, a.mfn);
    let cases: [(&str, GnttabCopy, i16); 9] = [
        (
            "read-only grant as destination",
            copy(own(&a, 0), (1, DOMID_SELF, 0), 8, GNTCOPY_DEST_GREF),
            GNTST_GENERAL_ERROR,
        ),
        (
            "page table through a grant",
            copy((2, DOMID_SELF, 0), own(&b, 0), 8, GNTCOPY_SOURCE_GREF),
            GNTST_GENERAL_ERROR,
        ),
        (
            "grant to another domain",
            copy((3, DOMID_SELF, 0), own(&b, 0), 8, GNTCOPY_SOURCE_GREF),
            GNTST_GENERAL_ERROR,
        ),
        (
            "revoked grant",
            copy((4, DOMID_SELF, 0), own(&b, 0), 8, GNTCOPY_SOURCE_GREF),
            GNTST_GENERAL_ERROR,
        ),
        (
            "reference beyond the table",
            copy((512, DOMID_SELF, 0), own(&b, 0), 8, GNTCOPY_SOURCE_GREF),
            GNTST_BAD_GNTREF,
        ),
        (
            "a frame not ours",
            copy((1, DOMID_SELF, 0), own(&b, 0), 8, 0),
            GNTST_BAD_PAGE,
        ),
        (
            "another domain's frame without a grant",
            copy((a.mfn.get(), me.wrapping_add(1), 0), own(&b, 0), 8, 0),
            GNTST_PERMISSION_DENIED,
        ),
        (
            "across the end of the page",
            copy(own(&a, 4000), own(&b, 0), 97, 0),
            GNTST_BAD_COPY_ARG,
        ),
        (
            "our page table as destination",
            copy(own(&a, 0), (l4.get(), DOMID_SELF, 0), 8, 0),
            GNTST_GENERAL_ERROR,
        ),
    ];
    for (what, op, want) in cases {
        let mut ops = [op];
        let r = gnttab_copy(&mut ops);
        status_of(what, r, ops[0].status, want);
    }
    for g in 1..5 {
        check_eq!(
            flags_of(g).map(|f| f & (GTF_READING | GTF_WRITING)),
            Ok(0),
            "no in-use flag left on refused entry {g}"
        );
    }

    // Mapping: our own grant, no host map; unmapping an unknown handle.
    let spare = take_frame();
    set_entry(6, GTF_PERMIT_ACCESS, me, a.mfn);
    let map = |dom: u16, flags: u32| GnttabMapGrantRef {
        host_addr: spare.va.get(),
        flags,
        gref: 6,
        dom,
        ..Default::default()
    };
    for (what, op, want) in [
        (
            "map our own grant",
            map(me, GNTMAP_HOST_MAP),
            GNTST_BAD_DOMAIN,
        ),
        ("map without host_map", map(me, 0), GNTST_BAD_GNTREF),
        (
            "map from no domain",
            map(0x7ff0, GNTMAP_HOST_MAP),
            GNTST_BAD_DOMAIN,
        ),
    ] {
        let mut ops = [op];
        let r = gnttab_map(&mut ops);
        status_of(what, r, ops[0].status, want);
    }
    let mut un = [GnttabUnmapGrantRef {
        host_addr: spare.va.get(),
        handle: 3,
        ..Default::default()
    }];
    let r = gnttab_unmap(&mut un);
    status_of("unmap an unknown handle", r, un[0].status, GNTST_BAD_HANDLE);
    // Sub-commands Keel does not adopt.
    let r = hypercall_scalar(
        Hypercall::GRANT_TABLE_OP,
        [4, two.as_mut_ptr() as u64, 1, 0, 0],
    );
    check_eq!(r, Errno::ENOSYS.as_return(), "GNTTABOP_transfer");
    // The table frame is unmapped again before the end (its teardown check
    // counts every reference).
    expect_ok(
        format_args!("unmap the table frame"),
        set_leaf(t.va, entry(t.mfn, PteFlags::PRESENT | PteFlags::WRITABLE)),
    );
    success();
}
