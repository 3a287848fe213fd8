//! Grants between two domains (runs with `grant_peer`, domain 2, the
//! granter; this test is domain 1, the grantee). They meet on a mailbox page
//! the granter grants ([`keel_guest::mailbox`]). Then, across domains:
//! `map_grant_ref` writable and read-only and `unmap_grant_ref`, the data
//! seen through the mapping, `GTF_reading`/`GTF_writing` set while mapped and
//! cleared after, `GNTTABOP_copy` both ways; and the adversarial set: a
//! page-table frame granted writable (refused to map, read-only too, and to
//! copy), a grant to another domain, an invalid entry, a read-only grant
//! mapped writable or copied into, another domain's frame copied or mapped
//! without a grant, a frame mapped by grant pinned as a page table by either
//! domain, a reference rewritten to another frame while mapped (the new
//! frame refused, the mapping keeps the old), a read-only mapping written,
//! a revoke that fails while the grant is in use and works after, use after
//! unmap (the address faults: no stale TLB entry) and after revoke, and the
//! granter ending while its frames are mapped here (they stay readable, with
//! their data, until unmapped).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::grant_table::*;
use keel_guest::abi::guest::{gnttab_copy, sched_yield};
use keel_guest::mailbox::{grant_cross as cmd, Mailbox};
use keel_guest::mmu::*;
use keel_guest::pagetable::{Pte, PteFlags};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Grants across domains: map, unmap, copy, the in-use flags, and the adversarial set",
    category: Security,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

/// The granter: the first companion domain.
const PEER: u16 = 2;
/// Yields to wait for the granter (it starts after this domain).
const WAIT: u32 = 200_000;

const RW: u32 = GNTMAP_HOST_MAP;
const RO: u32 = GNTMAP_HOST_MAP | GNTMAP_READONLY;

/// Map `gref` of the granter at `va`: `(status, handle)`.
fn map(gref: u32, flags: u32, va: GuestVirt) -> (i16, u32) {
    grant_map(PEER, gref, flags, va)
}

fn unmap(handle: u32, va: GuestVirt) -> i16 {
    grant_unmap(handle, va)
}

fn end(u: u64, domid: u16, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr::new(u, domid, offset)
}

fn copy(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16) -> i16 {
    let mut op = [GnttabCopy {
        source,
        dest,
        len,
        flags,
        status: 1,
    }];
    match gnttab_copy(&mut op) {
        Ok(()) => op[0].status,
        Err(e) => {
            check!(false, "copy: the call failed: {e:?}");
            i16::MIN
        }
    }
}

fn word(va: GuestVirt, i: u64) -> Result<u64, Fault> {
    fault::read_u64(GuestVirt::new(va.get() + 8 * i))
}

fn test_main() {
    use keel_guest::abi::event::DOMID_SELF;
    // Meet: the mailbox is mapped once the granter has written its entry.
    let Some((mb, h_mbox, mva)) = Mailbox::map_granted(PEER, 0, WAIT) else {
        failure!("the granter's mailbox grant never appeared");
        return;
    };
    if !check!(mb.ready(), "the mailbox page holds the granter's facts") {
        return;
    }
    let a = Mfn::new(mb.fact(cmd::FACT_A));
    let mut seq = 0;
    let mut call = |c: u8| {
        seq += 1;
        let r = mb.call(seq, c, WAIT);
        check!(r.is_some(), "command {c} answered");
        r.unwrap_or([u64::MAX; 4])
    };

    // Map A writable: the granter's data, and the in-use flags.
    let va_a = free_va();
    let (st, h_a) = map(1, RW, va_a);
    if !check_eq!(st, GNTST_OKAY, "map A writable") {
        return;
    }
    check_eq!(
        word(va_a, 7),
        Ok(0xa007),
        "the granter's data through the mapping"
    );
    check!(
        fault::write_u64(GuestVirt::new(va_a.get() + 8 * 5), 0x1234).is_ok(),
        "write through a writable grant mapping"
    );
    let r = call(cmd::REPORT);
    check_eq!(
        r[0] as u16,
        GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING,
        "entry 1 while mapped writable"
    );
    check_eq!(r[1] as u16, GTF_PERMIT_ACCESS, "entry 6 before its map");
    check_eq!(r[2], 0, "the granter pins Z while nobody maps it");

    // Z mapped by grant: neither domain may make it a page table.
    let z = Mfn::new(mb.fact(cmd::FACT_Z));
    let va_z = free_va();
    let (st, h_z) = map(6, RW, va_z);
    check_eq!(st, GNTST_OKAY, "map Z");
    let r = call(cmd::REPORT);
    check_eq!(
        r[1] as u16,
        GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING,
        "entry 6 while mapped"
    );
    check_eq!(
        r[2] as i64,
        Errno::EINVAL.as_return(),
        "the granter pins Z while it is mapped by grant"
    );
    expect_err(
        format_args!("pin the granted frame Z here"),
        pin(1, z),
        Errno::EINVAL,
    );

    // Refused maps and copies.
    let spare = free_va();
    for (what, gref, flags) in [
        ("a page table granted writable, mapped writable", 3, RW),
        ("a page table granted writable, mapped read-only", 3, RO),
        ("a grant to another domain", 4, RW),
        ("an invalid entry", 5, RW),
        ("a read-only grant mapped writable", 2, RW),
    ] {
        check_eq!(map(gref, flags, spare).0, GNTST_GENERAL_ERROR, "map {what}");
    }
    check_eq!(leaf(spare), Pte::EMPTY, "no refused map left an entry");
    let own = take_frame();
    for i in 0..512 {
        let _ = fault::write_u64(GuestVirt::new(own.va.get() + 8 * i), 0x0e00 + i);
    }
    let mine = |off| end(own.mfn.get(), DOMID_SELF, off);
    check_eq!(
        copy(end(3, PEER, 0), mine(0), 8, GNTCOPY_SOURCE_GREF),
        GNTST_GENERAL_ERROR,
        "copy from a page table through a grant"
    );
    check_eq!(
        copy(end(a.get(), PEER, 0), mine(0), 8, 0),
        GNTST_PERMISSION_DENIED,
        "copy another domain's frame without a grant"
    );
    check_eq!(
        copy(mine(0), end(2, PEER, 0), 8, GNTCOPY_DEST_GREF),
        GNTST_GENERAL_ERROR,
        "copy into a read-only grant"
    );
    expect_err(
        format_args!("map another domain's frame with mmu_update"),
        set_leaf(spare, entry(a, PteFlags::PRESENT)),
        Errno::EINVAL,
    );

    // Copies across domains, both ways.
    check_eq!(
        copy(mine(8 * 3), end(1, PEER, 0x100), 16, GNTCOPY_DEST_GREF),
        GNTST_OKAY,
        "copy into the granter's frame"
    );
    check_eq!(
        (word(va_a, 0x20), word(va_a, 0x21)),
        (Ok(0x0e03), Ok(0x0e04)),
        "the copy seen through the mapping"
    );
    check_eq!(
        copy(end(2, PEER, 8 * 9), mine(8 * 100), 8, GNTCOPY_SOURCE_GREF),
        GNTST_OKAY,
        "copy from a read-only grant"
    );
    check_eq!(word(own.va, 100), Ok(0xb009), "the data copied across");

    // A reference rewritten while mapped: the new frame is refused, the
    // mapping keeps the frame it was made with.
    call(cmd::REWRITE_1);
    check_eq!(
        map(1, RW, spare).0,
        GNTST_GENERAL_ERROR,
        "map a mapped reference that now names another frame"
    );
    check_eq!(
        copy(end(1, PEER, 0), mine(0), 8, GNTCOPY_SOURCE_GREF),
        GNTST_GENERAL_ERROR,
        "copy through it"
    );
    check_eq!(
        word(va_a, 7),
        Ok(0xa007),
        "the mapping still reaches the old frame"
    );

    // Read-only: mapped, not writable, unmapped (the address faults), and
    // revoked only once not in use.
    let va_b = free_va();
    let (st, h_b) = map(2, RO, va_b);
    check_eq!(st, GNTST_OKAY, "map B read-only");
    check_eq!(
        word(va_b, 3),
        Ok(0xb003),
        "read through a read-only mapping"
    );
    check!(
        fault::write_u64(va_b, 1).is_err(),
        "a write through a read-only grant mapping faults"
    );
    check_eq!(call(cmd::REVOKE_2)[0], 0, "revoke while mapped fails");
    check_eq!(unmap(h_b, va_b), GNTST_OKAY, "unmap B");
    check!(
        word(va_b, 3).is_err(),
        "B's address faults after the unmap (no stale TLB entry)"
    );
    check_eq!(unmap(h_b, va_b), GNTST_BAD_HANDLE, "unmap twice");
    check_eq!(call(cmd::REVOKE_2)[0], 1, "revoke once unmapped");
    check_eq!(map(2, RO, va_b).0, GNTST_GENERAL_ERROR, "map after revoke");
    check_eq!(
        copy(end(2, PEER, 0), mine(0), 8, GNTCOPY_SOURCE_GREF),
        GNTST_GENERAL_ERROR,
        "copy after revoke"
    );

    // Z unmapped: the granter may pin it again.
    check_eq!(unmap(h_z, va_z), GNTST_OKAY, "unmap Z");
    let r = call(cmd::REPORT);
    check_eq!(
        r[1] as u16,
        GTF_PERMIT_ACCESS,
        "entry 6's flags cleared at unmap"
    );
    check_eq!(r[2], 0, "the granter pins Z once unmapped");

    // The granter ends while A and the mailbox are mapped here.
    call(cmd::EXIT);
    let probe = free_va();
    let mut gone = false;
    for _ in 0..WAIT {
        match map(0, RW, probe) {
            (GNTST_BAD_DOMAIN, _) => {
                gone = true;
                break;
            }
            (GNTST_OKAY, h) => {
                let _ = unmap(h, probe);
            }
            _ => {}
        }
        let _ = sched_yield();
    }
    if !check!(gone, "the granter ended") {
        return;
    }
    check_eq!(
        (word(va_a, 7), word(va_a, 5)),
        (Ok(0xa007), Ok(0x1234)),
        "a frame of the ended granter, still mapped, keeps its data"
    );
    check!(
        fault::write_u64(GuestVirt::new(va_a.get() + 8 * 6), 6).is_ok(),
        "and stays writable"
    );
    check_eq!(
        unmap(h_a, va_a),
        GNTST_OKAY,
        "unmap A after its owner ended"
    );
    check_eq!(
        unmap(h_mbox, mva),
        GNTST_OKAY,
        "unmap the mailbox after its owner ended"
    );
    check!(word(va_a, 7).is_err(), "A's address faults after the unmap");
    success();
}
