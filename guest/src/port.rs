//! Port I/O. In a Keel guest every port access exits to the hypervisor, which
//! emulates COM1 (a second console) and an otherwise empty bus (`docs/abi/io.md`).

use crate::arch;

/// `IN AL, DX`.
pub fn inb(port: u16) -> u8 {
    arch::port_in(port, 1) as u8
}
/// `IN AX, DX`.
pub fn inw(port: u16) -> u16 {
    arch::port_in(port, 2) as u16
}
/// `IN EAX, DX`.
pub fn inl(port: u16) -> u32 {
    arch::port_in(port, 4)
}
/// `IN AL, DX` with RAX preset: the whole register afterwards.
pub fn inb_rax(port: u16, rax: u64) -> u64 {
    arch::port_in8_rax(port, rax)
}
/// `OUT DX, AL`.
pub fn outb(port: u16, v: u8) {
    arch::port_out(port, 1, v.into())
}
/// `OUT DX, AX`.
pub fn outw(port: u16, v: u16) {
    arch::port_out(port, 2, v.into())
}
/// `OUT DX, EAX`.
pub fn outl(port: u16, v: u32) {
    arch::port_out(port, 4, v)
}
/// `REP OUTSB`.
pub fn outsb(port: u16, bytes: &[u8]) {
    arch::port_outs(port, bytes)
}
/// `REP INSB`.
pub fn insb(port: u16, buf: &mut [u8]) {
    arch::port_ins(port, buf)
}

/// `STD; REP OUTSB` (from the last byte down); returns RSI afterwards.
pub fn outsb_down(port: u16, bytes: &[u8]) -> u64 {
    arch::port_outs_down(port, bytes)
}
/// `STD; REP INSB` (from the last byte down); returns RDI afterwards.
pub fn insb_down(port: u16, buf: &mut [u8]) -> u64 {
    arch::port_ins_down(port, buf)
}

pub use crate::abi::platform::uart::COM1;
use crate::abi::platform::uart::{Lsr, DATA, LSR};

/// Print `s` on COM1 the way a guest without a PV console would: wait for the
/// transmitter (LSR.THRE), then write each byte to the data register. Gives up
/// waiting after a bounded number of polls (a broken UART must not hang a test).
pub fn com1_write(s: &[u8]) {
    for &b in s {
        com1_byte(b, 1000);
    }
}

/// Write one byte to COM1 once LSR.THRE is set, polling it at most `polls` times.
pub fn com1_byte(b: u8, polls: u32) {
    for _ in 0..polls {
        if Lsr::from_bits_retain(inb(COM1 + LSR)).contains(Lsr::THRE) {
            break;
        }
    }
    outb(COM1 + DATA, b);
}
