//! Copies to and from guest memory that cross page boundaries: the hypervisor
//! walks each page separately, so a buffer spanning two writable pages must be
//! written whole and right, and a buffer whose second page is not writable (or
//! not mapped) must fail with `-EFAULT` having written *nothing* — not even the
//! part that fits in the first page (a partial write into a page-table frame's
//! neighbour is how a copy bug becomes an exploit).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use keel_guest::abi::console::CONSOLEIO_WRITE;
use keel_guest::abi::guest::hypercall_scalar;
use keel_guest::abi::version::{XENVER_EXTRAVERSION, XENVER_GET_FEATURES};
use keel_guest::fault::read_u64;
use keel_guest::pagetable;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Hypercall buffers across page boundaries: whole writes, and no partial write on -EFAULT",
    category: Security,
    main: test_main,
}

/// Two writable pages of our own, filled with a marker.
#[repr(C, align(4096))]
struct TwoPages([AtomicU64; 1024]);
#[allow(clippy::declare_interior_mutable_const)]
const M: AtomicU64 = AtomicU64::new(0);
static BUF: TwoPages = TwoPages([M; 1024]);
const MARK: u64 = 0x6d61_726b_6d61_726b;

fn xv(cmd: u64, p: u64) -> i64 {
    hypercall_scalar(Hypercall::XEN_VERSION, [cmd, p, 0, 0, 0])
}

fn test_main() {
    for w in BUF.0.iter() {
        w.store(MARK, Relaxed);
    }
    let base = &BUF as *const TwoPages as u64;
    let boundary = base + PAGE_SIZE;

    // 1. Writable | writable: 16 bytes of extraversion across the boundary.
    check_eq!(
        xv(XENVER_EXTRAVERSION, boundary - 8),
        0,
        "XENVER_extraversion across two writable pages"
    );
    let lo = BUF.0[511].load(Relaxed).to_le_bytes();
    let hi = BUF.0[512].load(Relaxed).to_le_bytes();
    let mut got = [0u8; 16];
    got[..8].copy_from_slice(&lo);
    got[8..].copy_from_slice(&hi);
    check_eq!(
        &got[..6],
        b"-keel\0",
        "extraversion bytes across the boundary"
    );
    check!(
        got[6..].iter().all(|&b| b == 0),
        "extraversion padding across the boundary is not NUL: {got:?}"
    );
    check_eq!(BUF.0[510].load(Relaxed), MARK, "the word before the buffer");
    check_eq!(BUF.0[513].load(Relaxed), MARK, "the word after the buffer");

    // get_features across the boundary: the index is read from the first page,
    // the answer written into the second.
    for w in BUF.0.iter() {
        w.store(MARK, Relaxed);
    }
    // submap_idx 0 in the upper half of word 511 (the last 4 bytes of page 1).
    BUF.0[511].store(MARK & 0xffff_ffff, Relaxed);
    check_eq!(
        xv(XENVER_GET_FEATURES, boundary - 4),
        0,
        "XENVER_get_features across two writable pages"
    );
    check_eq!(
        BUF.0[512].load(Relaxed) & 0xffff_ffff,
        u64::from(keel_guest::abi::version::features::SUBMAP0),
        "feature submap written into the second page"
    );
    check_eq!(
        BUF.0[512].load(Relaxed) >> 32,
        MARK >> 32,
        "bytes after the feature struct"
    );

    // 2. Read-only | writable: the last page-table frame, then the boot stack page
    //    the hypervisor entered us on (writable, unused since `_start` switched to
    //    its own stack). The write must fail and leave the stack page untouched.
    let (_, pt_hi) = pagetable::pt_region();
    let next = pt_hi;
    match pagetable::translate(next) {
        Ok(t) if t.writable() => {
            let before = read_u64(next);
            check_eq!(
                xv(XENVER_EXTRAVERSION, next.get() - 8),
                Errno::EFAULT.as_return(),
                "XENVER_extraversion from a page-table frame into the next page"
            );
            check_eq!(
                read_u64(next),
                before,
                "the writable page after the page tables (a partial write?)"
            );
        }
        Ok(_) => println!("note: the page after the page tables is not writable: case skipped"),
        Err(e) => failure!("walking {:#x}: {e}", next.get()),
    }

    // 3. Writable | unmapped: the last page of the region, then nothing.
    let end = keel_guest::targets::region_end();
    let last = GuestVirt::new(end.get() - 8);
    let before = read_u64(last);
    check_eq!(
        xv(XENVER_EXTRAVERSION, last.get()),
        Errno::EFAULT.as_return(),
        "XENVER_extraversion off the end of the region"
    );
    check_eq!(
        read_u64(last),
        before,
        "the last 8 bytes of the region (a partial write?)"
    );

    // 4. Reads across read-only | writable are fine: console_io from the page
    //    tables' last 8 bytes into the next page (bytes that are mostly zero: the
    //    console drops them), then across our own two pages.
    let text = b"guest_mem_boundaries: a console read across two pages follows\n";
    check_eq!(
        hypercall_scalar(
            Hypercall::CONSOLE_IO,
            [
                CONSOLEIO_WRITE,
                text.len() as u64,
                text.as_ptr() as u64,
                0,
                0
            ]
        ),
        0,
        "console_io of a plain buffer"
    );
    check_eq!(
        hypercall_scalar(
            Hypercall::CONSOLE_IO,
            [CONSOLEIO_WRITE, 16, pt_hi.get() - 8, 0, 0]
        ),
        0,
        "console_io of 16 bytes across the end of the page tables"
    );
    println!();
    // 16 bytes across the boundary of our two pages (printable marker bytes).
    check_eq!(
        hypercall_scalar(
            Hypercall::CONSOLE_IO,
            [CONSOLEIO_WRITE, 16, boundary + 8, 0, 0]
        ),
        0,
        "console_io of 16 bytes inside our buffer"
    );
    println!();
    success();
}
