//! The I/O policy (docs/abi/io.md): COM1 is a 16550 that prints a second console
//! (lines `(d1:com1) ...` in the log), port 0x80 is ignored, every other port
//! reads all ones and drops writes. IN of 8 or 16 bits keeps the rest of RAX.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::platform::uart::{IER, IIR_FCR, LCR, LSR, MSR, SCR};
use keel_guest::port::{
    self, inb, inb_rax, inl, insb, insb_down, inw, outb, outl, outsb, outsb_down, outw, COM1,
};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "I/O ports: COM1 as a second console, port 0x80 ignored, empty bus reads all ones",
    category: Functional,
    main: test_main,
}

fn test_main() {
    // The UART a driver probes: transmitter empty, modem lines up, no interrupt.
    check_eq!(inb(COM1 + LSR), 0x60, "COM1 LSR");
    check_eq!(inb(COM1 + MSR), 0xb0, "COM1 MSR");
    check_eq!(inb(COM1 + IIR_FCR), 0x01, "COM1 IIR");
    outb(COM1 + SCR, 0xa5);
    check_eq!(inb(COM1 + SCR), 0xa5, "COM1 scratch register");
    // Usual init: 8N1 at 115200 through the divisor latch.
    outb(COM1 + IER, 0);
    outb(COM1 + LCR, 0x80);
    outw(COM1, 1);
    check_eq!(inw(COM1), 1, "COM1 divisor latch");
    outb(COM1 + LCR, 0x03);
    check_eq!(inb(COM1 + LCR), 0x03, "COM1 LCR");
    outb(COM1 + IIR_FCR, 0xc7);
    check_eq!(inb(COM1 + IIR_FCR), 0xc1, "COM1 IIR with FIFOs");
    // A line through OUT, one through REP OUTSB.
    port::com1_write(b"hello from COM1\r\n");
    outsb(COM1, b"second line via rep outsb\n");
    println!("wrote two COM1 lines (look for \"(d1:com1) \" in the log)");

    // Port 0x80: ignored.
    outb(0x80, 0x42);
    check_eq!(inb(0x80), 0xff, "port 0x80 read");

    // The empty bus.
    for p in [0x60u16, 0x64, COM1 + 8, 0xcf8, 0xffff] {
        check_eq!(inb(p), 0xff, "inb {p:#x}");
        check_eq!(inw(p), 0xffff, "inw {p:#x}");
        check_eq!(inl(p), 0xffff_ffff, "inl {p:#x}");
    }
    outl(0xcf8, 0x8000_0000);
    check_eq!(inl(0xcfc), 0xffff_ffff, "PCI config data with no PCI");
    check_eq!(
        inb_rax(0x61, 0x1122_3344_5566_7700),
        0x1122_3344_5566_77ff,
        "8-bit IN keeps RAX[63:8]"
    );
    let mut buf = [0u8; 9];
    insb(0x71, &mut buf);
    check_eq!(buf, [0xff; 9], "REP INSB from an empty port");
    // REP string I/O longer than one exit emulates (4096 elements): the
    // instruction is resumed until RCX reaches 0.
    let mut big = [0u8; 5000];
    insb(0x2e8, &mut big);
    check!(big.iter().all(|&b| b == 0xff), "REP INSB of 5000 bytes");
    outsb(0x2e8, &big);
    // RFLAGS.DF = 1: the strings run downwards.
    let text = b"\nnwod sffo";
    let rsi = outsb_down(COM1, text);
    check_eq!(rsi, text.as_ptr() as u64 - 1, "RSI after STD; REP OUTSB");
    let mut sentinel = [0x11u8; 6];
    let rdi = insb_down(0x2e8, &mut sentinel[1..5]);
    check_eq!(rdi, sentinel.as_ptr() as u64, "RDI after STD; REP INSB");
    check_eq!(
        sentinel,
        [0x11, 0xff, 0xff, 0xff, 0xff, 0x11],
        "STD; REP INSB"
    );
    success();
}
