//! Control registers the hypervisor owns: loading CR3 with a frame that is not a
//! validated L4 (a data page, a frame the domain does not own) and clearing
//! CR0.WP, CR0.PG or CR4.PAE must each take `#GP(0)`; setting CR4.VMXE must too
//! (the guest sees a CPU without VMX). Writing back the current values must work.
//!
//! It runs natively too, where the hardware's rules apply: loading CR3 with any
//! frame is allowed there (the refusals are Keel's direct-paging rule, so they are
//! checked on Keel only: on bare hardware the load succeeds and the machine runs on
//! garbage tables), clearing CR0.WP is allowed (Keel refuses it on purpose: WP
//! binds the kernel to its read-only page tables), and clearing CR0.PG or CR4.PAE
//! in long mode or setting CR4.VMXE without VMX is `#GP(0)`. QEMU's TCG does
//! none of the last three (`keel_guest::tcg`): on TCG each is named and not
//! attempted, and `tcg_attempt=NAME` attempts one on purpose so that the loader
//! can check what TCG does instead.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::fault::{read_cr, write_cr, Cr};
use keel_guest::pagetable::{self, Pte};
use keel_guest::prelude::*;
use keel_guest::pvops::{self, Platform};
use keel_guest::tcg;

keel_guest::test! {
    title: "MOV to CR3 of a non-L4 frame, clearing CR0.WP/PG or CR4.PAE, setting CR4.VMXE: #GP",
    category: Security,
    needs: Nothing,
    main: test_main,
}

const CR0_PE: u64 = 1 << 0;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_VMXE: u64 = 1 << 13;

/// A page of our own data: a frame the domain owns that is not a page table.
#[repr(align(4096))]
#[allow(dead_code)] // only its address matters
struct Page([u8; 4096]);
static DATA_PAGE: Page = Page([0; 4096]);

fn gp(what: core::fmt::Arguments<'_>, r: Result<(), Fault>) {
    fault::expect_fault(what, r, Vector::GP, Some(0));
}

fn test_main() {
    let cr0 = read_cr(Cr::Cr0);
    let cr3 = read_cr(Cr::Cr3);
    let cr4 = read_cr(Cr::Cr4);
    println!("cr0 {cr0:#x} cr3 {cr3:#x} cr4 {cr4:#x}");
    check!(
        cr0 & (CR0_PE | CR0_PG | CR0_WP) == CR0_PE | CR0_PG | CR0_WP,
        "CR0 {cr0:#x} lacks PE, PG or WP"
    );
    check!(cr4 & CR4_PAE != 0, "CR4 {cr4:#x} lacks PAE");
    check!(cr4 & CR4_VMXE == 0, "CR4 {cr4:#x} shows VMXE to the guest");

    let keel = pvops::choice().platform == Platform::Keel;
    let on_tcg = tcg::detected();
    for d in [tcg::CLEAR_CR0_PG, tcg::CLEAR_CR4_PAE, tcg::SET_CR4_VMXE] {
        if on_tcg && tcg::attempt_requested(&d) {
            println!("{}: {}", tcg::ATTEMPT_MARK, d.name);
            let r = match d {
                tcg::CLEAR_CR0_PG => write_cr(Cr::Cr0, cr0 & !CR0_PG),
                tcg::CLEAR_CR4_PAE => write_cr(Cr::Cr4, cr4 & !CR4_PAE),
                _ => write_cr(Cr::Cr4, cr4 | CR4_VMXE),
            };
            println!("{}: {} {r:?}", tcg::SURVIVED_MARK, d.name);
            failure!(
                "TCG survived {} ({r:?}): keel_guest::tcg is out of date",
                d.name
            );
            return;
        }
    }
    if keel {
        cr3_refusals(cr3);
    } else {
        println!(
            "CR3 refusals not attempted: Keel's direct-paging rule; bare hardware loads any frame"
        );
    }

    if keel {
        gp(
            format_args!("clear CR0.WP"),
            write_cr(Cr::Cr0, cr0 & !CR0_WP),
        );
    } else {
        // Bare hardware lets CPL0 clear WP; Keel does not, on purpose.
        fault::expect_no_fault(
            format_args!("clear CR0.WP natively"),
            write_cr(Cr::Cr0, cr0 & !CR0_WP),
        );
        check_eq!(
            read_cr(Cr::Cr0),
            cr0 & !CR0_WP,
            "CR0 after clearing WP natively"
        );
        fault::expect_no_fault(format_args!("set CR0.WP again"), write_cr(Cr::Cr0, cr0));
    }
    let hw_gp = |d: &tcg::Difference, what: core::fmt::Arguments<'_>, cr: Cr, v: u64| {
        if on_tcg {
            tcg::not_attempted(d);
        } else {
            gp(what, write_cr(cr, v));
        }
    };
    hw_gp(
        &tcg::CLEAR_CR0_PG,
        format_args!("clear CR0.PG"),
        Cr::Cr0,
        cr0 & !CR0_PG,
    );
    hw_gp(
        &tcg::CLEAR_CR4_PAE,
        format_args!("clear CR4.PAE"),
        Cr::Cr4,
        cr4 & !CR4_PAE,
    );
    hw_gp(
        &tcg::SET_CR4_VMXE,
        format_args!("set CR4.VMXE"),
        Cr::Cr4,
        cr4 | CR4_VMXE,
    );
    check_eq!(read_cr(Cr::Cr0), cr0, "CR0 after the refused writes");
    check_eq!(read_cr(Cr::Cr4), cr4, "CR4 after the refused writes");

    // Positive controls: writing the current values back is allowed, so the #GPs
    // above are about the values.
    fault::expect_no_fault(
        format_args!("MOV CR0 <- current value"),
        write_cr(Cr::Cr0, cr0),
    );
    fault::expect_no_fault(
        format_args!("MOV CR4 <- current value"),
        write_cr(Cr::Cr4, cr4),
    );
    fault::expect_no_fault(
        format_args!("MOV CR3 <- current L4 (TLB flush)"),
        write_cr(Cr::Cr3, cr3),
    );
    check_eq!(read_cr(Cr::Cr3), cr3, "CR3 after reloading it");
    success();
}

/// MOV CR3 of frames that are not the domain's L4: `#GP(0)` on Keel.
fn cr3_refusals(cr3: u64) {
    // CR3 candidates that are not the domain's L4.
    let data_va = GuestVirt::new(&DATA_PAGE as *const Page as u64);
    match pagetable::translate(data_va) {
        Ok(t) => gp(
            format_args!("MOV CR3 <- own data frame {:#x}", t.mfn.get()),
            write_cr(Cr::Cr3, t.mfn.get() << 12),
        ),
        Err(e) => failure!("walking our own data page: {e}"),
    }
    // An L1 (or any non-top-level table) of our own: a valid table, wrong level.
    let l4 = pagetable::cr3_mfn();
    if let Ok(t) = pagetable::translate(data_va) {
        let l1 = t.entries[2].frame();
        check!(l1 != l4, "test bug: L1 == L4");
        gp(
            format_args!("MOV CR3 <- own L1 table {:#x}", l1.get()),
            write_cr(Cr::Cr3, l1.get() << 12),
        );
    }
    // Frames the domain does not own: 0, and just past the highest owned frame.
    let max_owned = (0..keel_guest::start::start_info().nr_pages)
        .filter_map(|p| keel_guest::start::pfn_to_mfn(Pfn::new(p)).ok())
        .max()
        .unwrap_or(Mfn::new(0));
    for m in [
        Mfn::new(0),
        Mfn::new(max_owned.get() + 1),
        Mfn::new((Pte::addr_mask() >> 12) & 0xff_ffff),
    ] {
        if pagetable::owns(m) {
            continue;
        }
        gp(
            format_args!("MOV CR3 <- unowned frame {:#x}", m.get()),
            write_cr(Cr::Cr3, m.get() << 12),
        );
    }
    check_eq!(read_cr(Cr::Cr3), cr3, "CR3 after the refused loads");
}
