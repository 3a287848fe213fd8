//! String I/O that cannot reach its memory ends as on the CPU (docs/abi/io.md):
//! an INS or OUTS exits to Keel before the CPU touches the memory operand, so Keel
//! moves the data, and an element the guest's tables do not permit must raise the
//! #PF (with CR2 and the error code) or #GP(0) the CPU would have raised, after
//! the elements before it, with RSI/RDI and RCX saying how far it got and RIP
//! still on the instruction. Before this, Keel killed the domain.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::fault::{expect_fault, expect_no_fault, pf, rep_insb, rep_outsb, StringIoEnd};
use keel_guest::prelude::*;
use keel_guest::targets::region_end;

keel_guest::test! {
    title: "String I/O faults: #PF with CR2 and error code, #GP(0), partial progress in RSI/RDI and RCX",
    category: Functional,
    main: test_main,
}

/// An empty port: reads all ones, drops writes.
const PORT: u16 = 0x2e8;

fn test_main() {
    let end = region_end().get();

    // OUTS from the last 4 mapped bytes into the first unmapped page: 4 bytes
    // go out, then #PF (not present, read) at the first unmapped byte.
    let (stop, r) = rep_outsb(PORT, GuestVirt::new(end - 4), 8);
    if expect_fault(
        format_args!("REP OUTSB across the end of the mapping"),
        r,
        Vector::PF,
        Some(0),
    ) {
        check_eq!(r.unwrap_err().cr2, end, "CR2 of the OUTS #PF");
    }
    check_eq!(
        stop,
        StringIoEnd { ptr: end, rcx: 4 },
        "RSI/RCX after 4 of 8 elements"
    );

    // INS into a page table (mapped read-only): #PF (present, write) at once,
    // nothing written, nothing counted.
    let pt = start_info().pt_base;
    let before = read_u64(pt);
    let (stop, r) = rep_insb(PORT, pt, 16);
    if expect_fault(
        format_args!("REP INSB into a page table"),
        r,
        Vector::PF,
        Some(pf::PRESENT | pf::WRITE),
    ) {
        check_eq!(r.unwrap_err().cr2, pt.get(), "CR2 of the INS #PF");
    }
    check_eq!(
        stop,
        StringIoEnd {
            ptr: pt.get(),
            rcx: 16
        },
        "RDI/RCX after no element"
    );
    check_eq!(read_u64(pt), before, "the page table is unchanged");

    // INS into our own buffer running into the unmapped page: the mapped part
    // is filled (all ones from the empty port), then #PF (not present, write).
    let mut buf = [0u8; 32];
    let (stop, r) = rep_insb(PORT, GuestVirt::new(buf.as_mut_ptr() as u64), 32);
    expect_no_fault(format_args!("REP INSB into a buffer"), r);
    check_eq!(stop.rcx, 0, "RCX after a complete REP INSB");
    check!(buf.iter().all(|&b| b == 0xff), "REP INSB filled the buffer");
    // The mapped part is the region's last 2 bytes: a free page the test uses
    // for nothing else.
    let (stop, r) = rep_insb(PORT, GuestVirt::new(end - 2), 6);
    if expect_fault(
        format_args!("REP INSB across the end of the mapping"),
        r,
        Vector::PF,
        Some(pf::WRITE),
    ) {
        check_eq!(r.unwrap_err().cr2, end, "CR2 of the INS #PF");
    }
    check_eq!(
        stop,
        StringIoEnd { ptr: end, rcx: 4 },
        "RDI/RCX after 2 of 6 elements"
    );

    // A non-canonical source: #GP(0), nothing done.
    let nc = 0x8000_0000_0000_0000u64;
    let (stop, r) = rep_outsb(PORT, GuestVirt::new(nc), 8);
    expect_fault(
        format_args!("REP OUTSB from a non-canonical address"),
        r,
        Vector::GP,
        Some(0),
    );
    check_eq!(
        stop,
        StringIoEnd { ptr: nc, rcx: 8 },
        "RSI/RCX after no element"
    );

    // NULL: #PF, not present, read.
    let (_, r) = rep_outsb(PORT, GuestVirt::new(0), 1);
    if expect_fault(format_args!("REP OUTSB from NULL"), r, Vector::PF, Some(0)) {
        check_eq!(r.unwrap_err().cr2, 0, "CR2 of the NULL #PF");
    }

    // And the instruction still works afterwards (nothing was left half-done).
    let (stop, r) = rep_outsb(PORT, GuestVirt::new(buf.as_ptr() as u64), 32);
    expect_no_fault(format_args!("REP OUTSB from a buffer"), r);
    check_eq!(stop.rcx, 0, "RCX after a complete REP OUTSB");
    success();
}

/// The 8 bytes at `va` (the page is mapped: a fault here is a test bug).
fn read_u64(va: GuestVirt) -> u64 {
    keel_guest::fault::read_u64(va).unwrap_or(0)
}
