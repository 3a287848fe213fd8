//! # Decoding the page-table stores Keel emulates
//!
//! A guest may write an entry of a validated page table with an ordinary store
//! through its read-only mapping (Xen's "writable page tables" done the simple
//! way: no unhooking, every write emulated). The CPU faults; the exit handler
//! reads the instruction at RIP and, if it is one of the two 8-byte stores below,
//! applies it as one validated update ([`super::Mm::mod_entry`]) and advances RIP
//! by its length. Anything else is reflected to the guest as the `#PF` it was.
//!
//! Only two encodings are needed, because that is what compilers emit for
//! `*pte = value` on a `u64`:
//!
//! - `REX.W 89 /r`: `MOV r/m64, r64` (memory destination);
//! - `REX.W C7 /0 id`: `MOV r/m64, imm32` (sign-extended; clearing an entry).
//!
//! The linear address comes from the fault (CR2), so the decoder only needs the
//! instruction's *length* and the *value*: ModRM, SIB and displacement are
//! skipped, not evaluated. Legacy prefixes (operand size, LOCK, segment
//! overrides, REP) are not accepted: such a store is reflected.

/// Where the stored value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A general-purpose register, in the SDM's numbering (0 RAX .. 15 R15).
    Reg(u8),
    /// An immediate (already sign-extended to 64 bits).
    Imm(u64),
}

/// A decoded 8-byte store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Store {
    /// Instruction length in bytes.
    pub len: u64,
    /// The value's source.
    pub src: Source,
}

/// Decode `bytes` (the instruction at RIP, up to 15 bytes; fewer if the page
/// ends) as one of the stores Keel emulates.
pub fn decode_store(bytes: &[u8]) -> Option<Store> {
    let rex = *bytes.first()?;
    // REX with W=1 (0x48..=0x4f): a 64-bit operand.
    if rex & 0xf8 != 0x48 {
        return None;
    }
    let op = *bytes.get(1)?;
    let modrm = *bytes.get(2)?;
    let (md, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
    if md == 3 {
        return None; // register destination: not a store
    }
    let mut len: usize = 3;
    if rm == 4 {
        let sib = *bytes.get(3)?;
        len += 1;
        if md == 0 && sib & 7 == 5 {
            len += 4; // no base: disp32
        }
    }
    len += match (md, rm) {
        (0, 5) => 4, // RIP-relative disp32
        (0, _) => 0,
        (1, _) => 1,
        _ => 4,
    };
    let src = match op {
        0x89 => Source::Reg(reg | ((rex >> 2) & 1) << 3),
        0xc7 if reg == 0 => {
            let imm = bytes.get(len..len + 4)?;
            len += 4;
            let v = i32::from_le_bytes([imm[0], imm[1], imm[2], imm[3]]);
            Source::Imm(v as i64 as u64)
        }
        _ => return None,
    };
    if len > bytes.len() {
        return None;
    }
    Some(Store {
        len: len as u64,
        src,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_stores_compilers_emit() {
        // mov [rdi], rax
        assert_eq!(
            decode_store(&[0x48, 0x89, 0x07]),
            Some(Store {
                len: 3,
                src: Source::Reg(0)
            })
        );
        // mov [rdi+rcx*8], r11  (4c 89 1c cf)
        assert_eq!(
            decode_store(&[0x4c, 0x89, 0x1c, 0xcf]),
            Some(Store {
                len: 4,
                src: Source::Reg(11)
            })
        );
        // mov [rax+0x10], rdx (48 89 50 10)
        assert_eq!(
            decode_store(&[0x48, 0x89, 0x50, 0x10, 0x90]),
            Some(Store {
                len: 4,
                src: Source::Reg(2)
            })
        );
        // mov [rbx+0x1000], rsi (48 89 b3 00 10 00 00)
        assert_eq!(
            decode_store(&[0x48, 0x89, 0xb3, 0, 0x10, 0, 0]).map(|s| s.len),
            Some(7)
        );
        // mov [rip+0], rax (48 89 05 00 00 00 00)
        assert_eq!(
            decode_store(&[0x48, 0x89, 0x05, 0, 0, 0, 0]).map(|s| s.len),
            Some(7)
        );
        // mov [disp32], rax via SIB without base (48 89 04 25 d32)
        assert_eq!(
            decode_store(&[0x48, 0x89, 0x04, 0x25, 0, 0, 0, 0]).map(|s| s.len),
            Some(8)
        );
        // mov qword [rdi], -1 (48 c7 07 ff ff ff ff)
        assert_eq!(
            decode_store(&[0x48, 0xc7, 0x07, 0xff, 0xff, 0xff, 0xff]),
            Some(Store {
                len: 7,
                src: Source::Imm(u64::MAX)
            })
        );
        // mov qword [rdi+8], 0 (48 c7 47 08 00 00 00 00)
        assert_eq!(
            decode_store(&[0x48, 0xc7, 0x47, 0x08, 0, 0, 0, 0]),
            Some(Store {
                len: 8,
                src: Source::Imm(0)
            })
        );
    }

    #[test]
    fn refuses_everything_else() {
        for b in [
            &[0x89, 0x07][..],                     // 32-bit store
            &[0x66, 0x48, 0x89, 0x07],             // prefix
            &[0xf0, 0x48, 0x87, 0x07],             // lock xchg
            &[0x48, 0x89, 0xc7],                   // mov rdi, rax (register)
            &[0x48, 0x8b, 0x07],                   // load
            &[0x48, 0xc7, 0x4f, 0x08, 0, 0, 0, 0], // C7 /1
            &[0x48, 0x89],                         // truncated
            &[0x48, 0x89, 0x47],                   // truncated disp8
            &[0x48, 0xc7, 0x07, 0, 0],             // truncated imm
            &[],
        ] {
            assert_eq!(decode_store(b), None, "{b:x?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_length_fits(b in proptest::collection::vec(proptest::num::u8::ANY, 0..16)) {
            if let Some(s) = decode_store(&b) {
                proptest::prop_assert!(s.len as usize <= b.len() && s.len >= 3);
            }
        }
    }
}
