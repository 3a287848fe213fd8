//! Tiny stand-in kernels for testing the tool itself.
//!
//! To test `keel`'s machinery (the ISO, the bochsrc, QEMU's command line, console
//! tailing, the timeout, the exit-code cross-check, the runner's verdicts) without
//! depending on the hypervisor, the tool's own tests boot these: a few dozen bytes
//! of hand-assembled 32-bit code behind a multiboot1 header (QEMU `-kernel`) and
//! a multiboot2 header (GRUB), both with explicit load addresses (the "a.out
//! kludge"), so the image is a flat binary with no ELF at all.
//!
//! The code prints a text to COM1, then ends like the hypervisor does: status to
//! QEMU's isa-debug-exit port, then for Bochs "Shutdown" to port 0x8900, then
//! `cli; hlt` forever. Or it just hangs, or it tries to end the run with Bochs's
//! magic breakpoint as a guest could.

/// Where the image is loaded (1 MiB, as multiboot kernels usually are).
const LOAD: u32 = 0x10_0000;
/// The code follows the two headers.
const CODE_OFFSET: u32 = 96;

/// How a stand-in kernel ends after printing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Power off with this status, the way the hypervisor does.
    PowerOff(u8),
    /// `cli; hlt` forever: a hang.
    Hang,
    /// Bochs's magic breakpoint (`xchg bx, bx`), then `cli; hlt` forever: what
    /// a guest that tries to end the run itself would do.
    MagicBreak,
}

/// x86 (32-bit) code, assembled by hand; strings are placed after the code and
/// their addresses patched in.
struct Asm {
    code: Vec<u8>,
    /// (offset of an imm32 in `code`, index into `strings`)
    fixups: Vec<(usize, usize)>,
    strings: Vec<Vec<u8>>,
}

impl Asm {
    /// Point ESI at a new NUL-terminated string `s` (address patched later).
    fn load_esi(&mut self, s: &[u8]) {
        self.fixups.push((self.code.len() + 1, self.strings.len()));
        let mut z = s.to_vec();
        z.push(0);
        self.strings.push(z);
        self.code.extend_from_slice(&[0xbe, 0, 0, 0, 0]); // mov esi, imm32
    }
    /// Write the NUL-terminated string `s` to I/O port `port`, byte by byte.
    fn out_string(&mut self, s: &[u8], port: u16) {
        self.load_esi(s);
        let [lo, hi] = port.to_le_bytes();
        self.code.extend_from_slice(&[
            0x66, 0xba, lo, hi,   // mov dx, port
            0xac, // 1: lodsb
            0x84, 0xc0, // test al, al
            0x74, 0x03, // jz 2f
            0xee, // out dx, al
            0xeb, 0xf8, // jmp 1b
                  // 2:
        ]);
    }
    /// Write the string to COM1, waiting before each byte until the transmitter
    /// is empty (LSR bit 5): Bochs models the line's speed and drops bytes written
    /// faster than that.
    fn serial_string(&mut self, s: &[u8]) {
        self.load_esi(s);
        self.code.extend_from_slice(&[
            0xac, // 1: lodsb
            0x84, 0xc0, // test al, al
            0x74, 0x14, // jz 3f
            0x88, 0xc3, // mov bl, al
            0x66, 0xba, 0xfd, 0x03, // mov dx, 0x3fd (LSR)
            0xec, // 2: in al, dx
            0xa8, 0x20, // test al, 0x20
            0x74, 0xfb, // jz 2b
            0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8 (THR)
            0x88, 0xd8, // mov al, bl
            0xee, // out dx, al
            0xeb, 0xe7, // jmp 1b
                  // 3:
        ]);
    }
    /// `out port, al` with al = `v`.
    fn out_byte(&mut self, port: u16, v: u8) {
        let [lo, hi] = port.to_le_bytes();
        self.code
            .extend_from_slice(&[0x66, 0xba, lo, hi, 0xb0, v, 0xee]);
    }
    fn finish(mut self) -> Vec<u8> {
        let mut addr = LOAD + CODE_OFFSET + self.code.len() as u32;
        let mut tail = Vec::new();
        for (at, idx) in std::mem::take(&mut self.fixups) {
            self.code[at..at + 4].copy_from_slice(&addr.to_le_bytes());
            addr += self.strings[idx].len() as u32;
            tail.extend_from_slice(&self.strings[idx]);
        }
        self.code.extend_from_slice(&tail);
        self.code
    }
}

/// A flat multiboot1+2 kernel that prints `text` to COM1 and ends as `end` says.
pub fn kernel(text: &str, end: End) -> Vec<u8> {
    let mut a = Asm {
        code: Vec::new(),
        fixups: Vec::new(),
        strings: Vec::new(),
    };
    // COM1: 115200 baud 8N1, FIFOs on (firmware may have left it in any state).
    for (port, v) in [
        (0x3f9, 0x00), // no interrupts
        (0x3fb, 0x80), // DLAB: divisor follows
        (0x3f8, 0x01), // divisor 1: 115200 baud
        (0x3f9, 0x00),
        (0x3fb, 0x03), // 8N1, DLAB off
        (0x3fa, 0xc7), // FIFOs on and cleared
        (0x3fc, 0x03), // DTR, RTS
    ] {
        a.out_byte(port, v);
    }
    a.serial_string(text.as_bytes());
    // Wait until the last byte has left the shift register (LSR bit 6, TEMT):
    // under Bochs, powering off right after the last write loses the bytes still
    // in the UART.
    a.code.extend_from_slice(&[
        0x66, 0xba, 0xfd, 0x03, // mov dx, 0x3fd
        0xec, // 1: in al, dx
        0xa8, 0x40, // test al, 0x40
        0x74, 0xfb, // jz 1b
    ]);
    if let End::PowerOff(status) = end {
        a.out_byte(0xf4, status); // QEMU isa-debug-exit: exits here
        a.out_string(b"Shutdown", 0x8900); // Bochs: exit status 1
    }
    if end == End::MagicBreak {
        a.code.extend_from_slice(&[0x66, 0x87, 0xdb]); // xchg bx, bx
    }
    a.code.extend_from_slice(&[0xfa, 0xf4, 0xeb, 0xfc]); // 1: cli; hlt; jmp 1b
    let code = a.finish();

    let mut img = Vec::new();
    let d = |img: &mut Vec<u8>, v: u32| img.extend_from_slice(&v.to_le_bytes());
    let entry = LOAD + CODE_OFFSET;
    // Multiboot1 header, flags bit 16: the address fields below are valid.
    let (magic1, flags1) = (0x1bad_b002u32, 1u32 << 16);
    for v in [
        magic1,
        flags1,
        0u32.wrapping_sub(magic1.wrapping_add(flags1)),
        LOAD, // header_addr (the header is at the image's start)
        LOAD, // load_addr
        0,    // load_end_addr: the whole file
        0,    // bss_end_addr: no bss
        entry,
    ] {
        d(&mut img, v);
    }
    // Multiboot2 header (8-aligned): address tag, entry tag, end tag.
    let (magic2, len2) = (0xe852_50d6u32, 64u32);
    for v in [
        magic2,
        0,
        len2,
        0u32.wrapping_sub(magic2.wrapping_add(len2)),
    ] {
        d(&mut img, v);
    }
    // Type 2 (address), flags 0, size 24; header_addr is where *this* header
    // (at file offset 32) lands, from which GRUB works out the file offset to load.
    for v in [2u32, 24, LOAD + 32, LOAD, 0, 0] {
        d(&mut img, v);
    }
    for v in [3u32, 12, entry, 0] {
        d(&mut img, v); // type 3 (entry address), size 12, padding to 8
    }
    for v in [0u32, 8] {
        d(&mut img, v); // end tag
    }
    assert_eq!(img.len() as u32, CODE_OFFSET);
    img.extend_from_slice(&code);
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_check_out() {
        let k = kernel("hi\n", End::PowerOff(4));
        let dw = |o: usize| u32::from_le_bytes(k[o..o + 4].try_into().unwrap());
        assert_eq!(dw(0).wrapping_add(dw(4)).wrapping_add(dw(8)), 0);
        assert_eq!(dw(28), LOAD + CODE_OFFSET);
        assert_eq!(
            dw(32)
                .wrapping_add(dw(36))
                .wrapping_add(dw(40))
                .wrapping_add(dw(44)),
            0
        );
        assert_eq!(dw(40), 64);
        assert_eq!(dw(12), LOAD); // multiboot1 header_addr: the header is at offset 0
        assert_eq!(dw(56), LOAD + 32); // multiboot2 header_addr: that header is at 32
                                       // The string follows the code and the code points at it.
        let text_at = k.windows(3).position(|w| w == b"hi\n").unwrap() as u32;
        let mov_esi: Vec<u8> = [0xbe]
            .into_iter()
            .chain((LOAD + text_at).to_le_bytes())
            .collect();
        assert!(k.windows(5).any(|w| w == mov_esi));
        // The status is the immediate of `mov al, 4` before the out to 0xf4.
        assert!(k
            .windows(7)
            .any(|w| w == [0x66, 0xba, 0xf4, 0x00, 0xb0, 4, 0xee]));
        assert!(k.windows(9).any(|w| w == b"Shutdown\0"));
        let ok = kernel("x", End::PowerOff(0));
        assert!(ok.windows(9).any(|w| w == b"Shutdown\0"));
        assert!(!ok.windows(3).any(|w| w == [0x66, 0x87, 0xdb]));
        let magic = kernel("x", End::MagicBreak);
        assert!(magic.windows(3).any(|w| w == [0x66, 0x87, 0xdb]));
        let hang = kernel("x", End::Hang);
        assert!(!hang.windows(4).any(|w| w == [0x66, 0xba, 0xf4, 0x00]));
    }
}
