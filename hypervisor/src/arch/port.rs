//! Port I/O. Each helper is a single `in`/`out` instruction.
//!
//! These are safe functions although a port write can reconfigure the machine:
//! Keel runs alone on the hardware (there is no other kernel whose invariants a port
//! write could break from safe code), and every caller in `arch` documents which
//! device it drives. Guests never reach these: they run in VMX non-root mode.

use core::arch::asm;

/// Read a byte from `port`.
#[inline]
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: `in` has no memory effects visible to Rust.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Read a 16-bit word from `port`.
#[inline]
pub fn inw(port: u16) -> u16 {
    let v: u16;
    // SAFETY: as for `inb`.
    unsafe {
        asm!("in ax, dx", out("ax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Read a 32-bit word from `port`.
#[inline]
pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for `inb`.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Write a byte to `port`.
#[inline]
pub fn outb(port: u16, v: u8) {
    // SAFETY: `out` has no memory effects visible to Rust.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}

/// Write a 16-bit word to `port`.
#[inline]
pub fn outw(port: u16, v: u16) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    };
}

/// Write a 32-bit word to `port`.
#[inline]
pub fn outl(port: u16, v: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    };
}

/// Write the bytes of `data` to `port`, in order, with one `REP OUTSB`: one
/// instruction (and, under a hypervisor that emulates the port, one exit) for
/// the whole string.
#[inline]
pub fn outsb(port: u16, data: &[u8]) {
    // SAFETY: `rep outsb` reads `data.len()` bytes from `data` (a valid slice)
    // and writes them to the port; RSI and RCX are clobbered (declared), and the
    // direction flag is clear as the ABI guarantees.
    unsafe {
        asm!("rep outsb", in("dx") port, inout("rsi") data.as_ptr() => _,
             inout("rcx") data.len() => _, options(nostack, preserves_flags, readonly))
    };
}
