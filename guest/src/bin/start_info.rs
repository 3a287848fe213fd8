//! The start-of-day page is what the ABI promises: Xen's magic, a plausible
//! domain size, a frame list of distinct frames, page tables where `pt_base` says
//! (and CR3 on the first of them), and the bootstrap region laid out in PFN order.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::start_info::{MAGIC, MAX_GUEST_CMDLINE};
use keel_guest::pagetable;
use keel_guest::prelude::*;
use keel_guest::start::{boot, pfn_to_mfn, va_to_pfn};

keel_guest::test! {
    title: "start_info: magic, nr_pages, distinct mfn_list entries, pt_base mapped and in CR3, layout",
    category: Functional,
    main: test_main,
}

fn test_main() {
    let b = boot();
    let si = &b.info;
    println!(
        "start_info at {:#x}: nr_pages {}, mfn_list {:#x}, pt_base {:#x} ({} frames), flags {:#x}",
        b.va.get(),
        si.nr_pages,
        si.mfn_list.get(),
        si.pt_base.get(),
        si.nr_pt_frames,
        si.flags
    );

    check!(
        si.magic_ok(),
        "magic {:?} does not start with \"xen-\"",
        &si.magic[..16]
    );
    check_eq!(&si.magic[..MAGIC.len()], MAGIC, "magic");
    check!(
        si.magic[MAGIC.len()..].iter().all(|&b| b == 0),
        "magic is not NUL-padded"
    );
    check!(
        si.cmd_line_bytes().len() < MAX_GUEST_CMDLINE,
        "cmd_line is not NUL-terminated"
    );

    // Size: at least the image plus the structures that follow it; at most what a
    // 64-bit frame list in a sane guest could describe.
    let image_pages = (b.image_end.get() - b.virt_base.get()) / PAGE_SIZE;
    check!(
        si.nr_pages > image_pages + si.nr_pt_frames + 2 && si.nr_pages < (1 << 24),
        "nr_pages {} is implausible (image {} pages, {} page-table frames)",
        si.nr_pages,
        image_pages,
        si.nr_pt_frames
    );
    check!(
        si.nr_pt_frames >= 4,
        "nr_pt_frames {} < 4: a 4-level hierarchy needs at least L4, L3, L2, L1",
        si.nr_pt_frames
    );

    // Everything start_info points at lies in the bootstrap region, page-aligned
    // where it must be, after the image.
    for (name, va) in [
        ("start_info", b.va),
        ("mfn_list", si.mfn_list),
        ("pt_base", si.pt_base),
    ] {
        match va_to_pfn(va) {
            None => failure!("{name} {:#x} is outside the bootstrap region", va.get()),
            Some(p) => {
                check!(
                    va.get() >= b.image_end.get(),
                    "{name} {:#x} overlaps the image (ends {:#x})",
                    va.get(),
                    b.image_end.get()
                );
                println!("{name}: pfn {:#x}", p.get());
            }
        }
    }
    check_eq!(b.va.page_offset(), 0, "start_info page offset");
    check_eq!(si.pt_base.page_offset(), 0, "pt_base page offset");
    check_eq!(si.mfn_list.page_offset(), 0, "mfn_list page offset");
    check!(
        si.mfn_list.get() + si.nr_pages * 8 <= b.va.get()
            || si.mfn_list.get() >= b.va.get() + PAGE_SIZE,
        "mfn_list overlaps start_info"
    );

    // The frame list: readable, entries distinct (a frame mapped twice under two
    // PFNs would let a writable alias of a page table exist).
    let idx = match pagetable::index() {
        Ok(i) => i,
        Err(f) => {
            failure!("reading mfn_list at {:#x} took {f}", si.mfn_list.get());
            return;
        }
    };
    if idx.truncated {
        println!("note: only the first {} frames are checked", idx.len());
    }
    if let Some(m) = idx.duplicate() {
        failure!("mfn_list names frame {:#x} more than once", m.get());
    }
    check!(
        idx.pfn_of(Mfn::new(0)).is_none(),
        "mfn_list gives the guest machine frame 0"
    );
    drop(idx);

    // pt_base is mapped (readable), and it is the L4 that CR3 points at.
    match fault::read_u64(si.pt_base) {
        Ok(_) => {}
        Err(f) => failure!("reading pt_base {:#x} took {f}", si.pt_base.get()),
    }
    if let Some(pfn) = va_to_pfn(si.pt_base) {
        match pfn_to_mfn(pfn) {
            Ok(m) => {
                check_eq!(pagetable::cr3_mfn(), m, "CR3 frame vs the frame of pt_base");
            }
            Err(f) => failure!("mfn_list entry of pt_base took {f}"),
        }
    }

    // The bootstrap region maps PFN n at virt_base + n*4096: check it by walking
    // the tables for a sample of pages across the region.
    let n = si.nr_pages;
    for pfn in [0, 1, n / 4, n / 2, (3 * n) / 4, n - 1] {
        let va = keel_guest::start::pfn_to_va(Pfn::new(pfn));
        let want = match pfn_to_mfn(Pfn::new(pfn)) {
            Ok(m) => m,
            Err(f) => {
                failure!("mfn_list[{pfn:#x}] took {f}");
                continue;
            }
        };
        match pagetable::translate(va) {
            Ok(t) => {
                check_eq!(
                    t.mfn,
                    want,
                    "frame mapped at {:#x} (pfn {pfn:#x})",
                    va.get()
                );
            }
            Err(e) => failure!("walking {:#x} (pfn {pfn:#x}): {e}", va.get()),
        }
    }
    success();
}
