//! The initial page tables the hypervisor built keep the direct-paging rules:
//! every mapping reaches only frames the domain owns, no superpages, every table
//! frame is one of the bootstrap page-table frames, and every mapping of a
//! page-table frame is read-only.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::PAGE_SIZE;
use keel_guest::pagetable::{self, PteFlags};
use keel_guest::prelude::*;
use keel_guest::start::{pfn_to_mfn, va_to_pfn};

keel_guest::test! {
    title: "Initial page tables: owned frames only, no superpages, page-table frames mapped read-only",
    category: Security,
    main: test_main,
}

/// The most table frames this test tracks (the bootstrap set is a handful).
const MAX_TABLES: usize = 64;

fn test_main() {
    let (pt_lo, pt_hi) = pagetable::pt_region();
    // The machine frames of the bootstrap page-table region.
    let mut pt_frames = [Mfn::new(0); MAX_TABLES];
    let n_pt = ((pt_hi.get() - pt_lo.get()) / PAGE_SIZE) as usize;
    if n_pt > MAX_TABLES {
        keel_guest::error!("{n_pt} page-table frames: more than this test tracks");
        return;
    }
    for (i, slot) in pt_frames.iter_mut().take(n_pt).enumerate() {
        let va = GuestVirt::new(pt_lo.get() + i as u64 * PAGE_SIZE);
        match va_to_pfn(va).map(pfn_to_mfn) {
            Some(Ok(m)) => *slot = m,
            _ => {
                failure!(
                    "page-table frame {i} at {:#x} is not in the bootstrap region",
                    va.get()
                );
                return;
            }
        }
    }
    let pt_frames = &pt_frames[..n_pt];
    let is_pt = |m: Mfn| pt_frames.contains(&m);

    check!(
        is_pt(pagetable::cr3_mfn()),
        "CR3 ({:#x}) is not one of the bootstrap page-table frames",
        pagetable::cr3_mfn().get()
    );

    if let Err(f) = pagetable::index() {
        failure!("reading mfn_list took {f}");
        return;
    }
    let owned = pagetable::owns;

    let (mut tables_seen, mut leaves, mut pt_mappings, mut problems) = (0u32, 0u64, 0u32, 0u32);
    let mut complain = |args: core::fmt::Arguments<'_>| {
        problems += 1;
        if problems <= 8 {
            failure!("{args}");
        }
    };
    let r = pagetable::visit(|v| {
        let target = v.pte.frame();
        if v.level > 1 && v.pte.contains(PteFlags::PAGE_SIZE) {
            complain(format_args!(
                "L{} entry {} of table {:#x} maps a superpage ({:#x})",
                v.level,
                v.index,
                v.table.get(),
                v.pte
            ));
            return;
        }
        if !owned(target) {
            complain(format_args!(
                "L{} entry {} of table {:#x} (va {:#x}) reaches frame {:#x}, not the domain's",
                v.level,
                v.index,
                v.table.get(),
                v.va.get(),
                target.get()
            ));
        }
        if v.level > 1 {
            tables_seen += 1;
            if !is_pt(target) {
                complain(format_args!(
                    "L{} table frame {:#x} (under va {:#x}) is not a bootstrap page-table frame",
                    v.level - 1,
                    target.get(),
                    v.va.get()
                ));
            }
        } else {
            leaves += 1;
            if is_pt(target) {
                pt_mappings += 1;
                if v.pte.contains(PteFlags::WRITABLE) {
                    complain(format_args!(
                        "va {:#x} maps page-table frame {:#x} writable (pte {:#x})",
                        v.va.get(),
                        target.get(),
                        v.pte
                    ));
                }
            }
        }
    });
    if let Err(e) = r {
        failure!("walking the page tables: {e}");
    }
    println!(
        "{} tables below the L4, {leaves} 4 KiB mappings, {pt_mappings} of them map page-table frames",
        tables_seen
    );
    check!(
        pt_mappings as usize >= n_pt,
        "only {pt_mappings} mappings of the {n_pt} page-table frames (the bootstrap region maps them all)"
    );
    check!(
        leaves >= keel_guest::start::start_info().nr_pages,
        "fewer mappings ({leaves}) than pages"
    );
    success();
}
