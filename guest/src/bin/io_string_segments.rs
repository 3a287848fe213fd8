//! String I/O follows segmentation as the CPU does (docs/abi/io.md): OUTS
//! reads FS:RSI or GS:RSI under a segment-override prefix, and in 64-bit mode
//! that adds the FS or GS base (the other segments' bases are 0); RSI alone is
//! the address only without a prefix. Checked through COM1's scratch
//! register, which keeps the last byte written, and through the faults.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::fault::{expect_fault, expect_no_fault, seg_rep_outsb, wrmsr, StringIoEnd};
use keel_guest::port::{inb, outb};
use keel_guest::prelude::*;
use keel_guest::targets::region_end;

keel_guest::test! {
    title: "String I/O segmentation: FS/GS override prefixes and bases in 64-bit mode",
    category: Functional,
    needs: Nothing,
    main: test_main,
}

const SCRATCH: u16 = 0x3ff;
const FS_BASE: u32 = 0xc000_0100;
const GS_BASE: u32 = 0xc000_0101;

fn test_main() {
    let buf = [0x11u8, 0x22, 0x33, 0x44, 0x55, 0x5a, 0x66, 0x77];
    let base = buf.as_ptr() as u64;
    for (name, gs, msr) in [("FS", false, FS_BASE), ("GS", true, GS_BASE)] {
        if let Err(e) = wrmsr(msr, base) {
            failure!("writing {name}_BASE: {e}");
            continue;
        }
        // Offset 5 from the base: the byte 0x5a. Address 5 itself (what the
        // old emulation read) is in the unmapped NULL page.
        outb(SCRATCH, 0);
        let (stop, r) = seg_rep_outsb(gs, SCRATCH, 5, 1);
        expect_no_fault(format_args!("{name}: REP OUTSB through the override"), r);
        check_eq!(
            stop,
            StringIoEnd { ptr: 6, rcx: 0 },
            "{name}: RSI/RCX after one byte"
        );
        check_eq!(
            inb(SCRATCH),
            0x5a,
            "{name}: the byte at base + 5 reached the port"
        );

        // A base two bytes before the end of the mapping: two bytes go, then
        // #PF (not present, read) at the first unmapped linear address.
        let end = region_end().get();
        let _ = wrmsr(msr, end - 2);
        let (stop, r) = seg_rep_outsb(gs, SCRATCH, 0, 4);
        if expect_fault(
            format_args!("{name}: REP OUTSB off the end of the mapping"),
            r,
            Vector::PF,
            Some(0),
        ) {
            check_eq!(r.unwrap_err().cr2, end, "{name}: CR2 is the linear address");
        }
        check_eq!(
            stop,
            StringIoEnd { ptr: 2, rcx: 2 },
            "{name}: RSI/RCX after 2 of 4"
        );
        let _ = wrmsr(msr, 0);
    }
    success();
}
