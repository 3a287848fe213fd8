//! Port I/O.

use super::*;

/// `IN` of 1, 2 or 4 bytes (any other size reads 4).
pub fn port_in(port: u16, size: u8) -> u32 {
    let v: u32;
    // SAFETY: port I/O has no effect on memory.
    unsafe {
        match size {
            1 => {
                let b: u8;
                asm!("in al, dx", in("dx") port, out("al") b, options(nomem, nostack));
                v = u32::from(b) | 0xffff_ff00;
            }
            2 => {
                let w: u16;
                asm!("in ax, dx", in("dx") port, out("ax") w, options(nomem, nostack));
                v = u32::from(w) | 0xffff_0000;
            }
            _ => asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack)),
        }
    }
    v
}

/// `IN AL, DX` with AL preset to `al`: the whole of RAX afterwards (the upper
/// bytes must be unchanged by an 8-bit IN).
pub fn port_in8_rax(port: u16, rax: u64) -> u64 {
    let v: u64;
    // SAFETY: port I/O has no effect on memory.
    unsafe { asm!("in al, dx", in("dx") port, inout("rax") rax => v, options(nomem, nostack)) };
    v
}

/// `OUT` of 1, 2 or 4 bytes (any other size writes 4).
pub fn port_out(port: u16, size: u8, value: u32) {
    // SAFETY: port I/O has no effect on memory.
    unsafe {
        match size {
            1 => asm!("out dx, al", in("dx") port, in("al") value as u8, options(nomem, nostack)),
            2 => asm!("out dx, ax", in("dx") port, in("ax") value as u16, options(nomem, nostack)),
            _ => asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack)),
        }
    }
}

/// `REP OUTSB`: every byte of `bytes` to `port`.
pub fn port_outs(port: u16, bytes: &[u8]) {
    // SAFETY: OUTS reads `bytes` (RSI, RCX) and touches nothing else; DF is clear
    // (the ABI guarantees it at every call).
    unsafe {
        asm!("rep outsb", in("dx") port, inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _, options(nostack, readonly))
    };
}

/// `REP INSB`: fill `buf` from `port`.
pub fn port_ins(port: u16, buf: &mut [u8]) {
    // SAFETY: INS writes `buf` (RDI, RCX) and nothing else; DF is clear.
    unsafe {
        asm!("rep insb", in("dx") port, inout("rdi") buf.as_mut_ptr() => _,
            inout("rcx") buf.len() => _, options(nostack))
    };
}

/// `STD; REP OUTSB; CLD` from the last byte of `bytes` down to the first: returns
/// RSI afterwards (one below `bytes`).
pub fn port_outs_down(port: u16, bytes: &[u8]) -> u64 {
    let rsi: u64;
    // SAFETY: OUTS reads `bytes` backwards (RSI from its last byte, RCX = its
    // length) and touches nothing else; DF is set only around the instruction.
    unsafe {
        asm!("std", "rep outsb", "cld", in("dx") port,
            inout("rsi") bytes.as_ptr().wrapping_add(bytes.len().saturating_sub(1)) => rsi,
            inout("rcx") bytes.len() => _, options(nostack, readonly))
    };
    rsi
}

/// `STD; REP INSB; CLD` into `buf` from its last byte down to the first: returns
/// RDI afterwards (one below `buf`).
pub fn port_ins_down(port: u16, buf: &mut [u8]) -> u64 {
    let rdi: u64;
    // SAFETY: INS writes `buf` backwards (RDI from its last byte, RCX = its length)
    // and nothing else; DF is set only around the instruction.
    unsafe {
        asm!("std", "rep insb", "cld", in("dx") port,
            inout("rdi") buf.as_mut_ptr().wrapping_add(buf.len().saturating_sub(1)) => rdi,
            inout("rcx") buf.len() => _, options(nostack))
    };
    rdi
}

/// `REP OUTSB` of `count` bytes from `addr` to `port`, as a fault probe:
/// (RSI, RCX, exinfo) when it ended. Any address may be aimed at: OUTS only
/// reads memory, and a fault ends it into the exception table.
pub fn probe_rep_outsb(port: u16, addr: u64, count: u64) -> (u64, u64, u64) {
    let (rsi, rcx, info): (u64, u64, u64);
    // SAFETY: reads memory only; DF is clear (the ABI guarantees it at every
    // call); a fault is caught by the exception table and reported in R11.
    unsafe {
        asm!(
            "xor r11d, r11d",
            "2: rep outsb",
            "3:",
            extable!("2b" => "3b"),
            in("dx") port,
            inout("rsi") addr => rsi,
            inout("rcx") count => rcx,
            out("r11") info,
            options(nostack, readonly),
        )
    };
    (rsi, rcx, info)
}

/// `REP OUTSB` with an FS (`gs == false`) or GS segment override: `count`
/// bytes at FS/GS base + `offset` to `port`, as a fault probe: (RSI, RCX,
/// exinfo) when it ended. Reads memory only.
pub fn probe_seg_rep_outsb(gs: bool, port: u16, offset: u64, count: u64) -> (u64, u64, u64) {
    let (rsi, rcx, info): (u64, u64, u64);
    // SAFETY: reads memory only; DF is clear; a fault is caught by the
    // exception table and reported in R11. The bytes are `fs`/`gs` + `rep` +
    // OUTSB (the assembler has no spelling for the override on OUTS).
    unsafe {
        if gs {
            asm!("xor r11d, r11d", "2: .byte 0x65, 0xf3, 0x6e", "3:", extable!("2b" => "3b"),
                in("dx") port, inout("rsi") offset => rsi, inout("rcx") count => rcx,
                out("r11") info, options(nostack, readonly))
        } else {
            asm!("xor r11d, r11d", "2: .byte 0x64, 0xf3, 0x6e", "3:", extable!("2b" => "3b"),
                in("dx") port, inout("rsi") offset => rsi, inout("rcx") count => rcx,
                out("r11") info, options(nostack, readonly))
        }
    };
    (rsi, rcx, info)
}

/// `REP INSB` of `count` bytes from `port` to `addr`, as a fault probe: (RDI,
/// RCX, exinfo) when it ended. Writes memory, like [`probe_write_u64`]: the
/// caller aims it at its own buffer or at memory it cannot write.
pub fn probe_rep_insb(port: u16, addr: u64, count: u64) -> (u64, u64, u64) {
    let (rdi, rcx, info): (u64, u64, u64);
    // SAFETY: the caller chose to change this memory (see above); DF is clear; a
    // fault is caught by the exception table and reported in R11.
    unsafe {
        asm!(
            "xor r11d, r11d",
            "2: rep insb",
            "3:",
            extable!("2b" => "3b"),
            in("dx") port,
            inout("rdi") addr => rdi,
            inout("rcx") count => rcx,
            out("r11") info,
            options(nostack),
        )
    };
    (rdi, rcx, info)
}
