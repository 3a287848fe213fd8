//! Finding `\_S5` in the DSDT without an AML interpreter.
//!
//! ACPI S5 ("soft off") is entered by writing `SLP_TYPa | SLP_EN` to PM1a_CNT (and
//! `SLP_TYPb` to PM1b_CNT). The SLP_TYP values are not in any fixed table: they are
//! the first two elements of the `\_S5` package in the DSDT's AML. Virtually every
//! firmware declares it as a plain named package,
//!
//! ```text
//! Name (_S5, Package (0x04) { 0x05, 0x05, Zero, Zero })
//! 08 5F 53 35 5F 12 0A 04 0A 05 0A 05 00 00
//! ^NameOp        ^PackageOp (PkgLength, NumElements, elements...)
//! ```
//!
//! so a byte scanner that recognises exactly this shape (with or without a root
//! prefix `\`, elements encoded as Zero/One/Byte/Word/DWord constants) finds it, and
//! anything else (`_S5` as a method, odd encodings) is reported as "not found"
//! rather than guessed. This is what the `acpi` crate leaves to an AML interpreter
//! (the `aml` crate), which is far more than power-off needs.

const NAME_OP: u8 = 0x08;
const ROOT_CHAR: u8 = b'\\';
const PACKAGE_OP: u8 = 0x12;
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const BYTE_PREFIX: u8 = 0x0A;
const WORD_PREFIX: u8 = 0x0B;
const DWORD_PREFIX: u8 = 0x0C;

/// SLP_TYPa and SLP_TYPb for S5 (3-bit fields of PM1x_CNT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SleepTypes {
    /// For PM1a_CNT.
    pub a: u8,
    /// For PM1b_CNT.
    pub b: u8,
}

/// Decode an AML PkgLength at the start of `b`: returns (length, bytes used).
fn pkg_length(b: &[u8]) -> Option<(usize, usize)> {
    let lead = *b.first()?;
    let follow = usize::from(lead >> 6);
    if follow == 0 {
        return Some((usize::from(lead & 0x3f), 1));
    }
    let mut len = usize::from(lead & 0x0f);
    for i in 0..follow {
        len |= usize::from(*b.get(1 + i)?) << (4 + 8 * i);
    }
    Some((len, 1 + follow))
}

/// Decode one integer element at the start of `b`: returns (value, bytes used).
fn integer(b: &[u8]) -> Option<(u64, usize)> {
    match *b.first()? {
        ZERO_OP => Some((0, 1)),
        ONE_OP => Some((1, 1)),
        BYTE_PREFIX => Some((u64::from(*b.get(1)?), 2)),
        WORD_PREFIX => Some((
            u64::from(u16::from_le_bytes(b.get(1..3)?.try_into().ok()?)),
            3,
        )),
        DWORD_PREFIX => Some((
            u64::from(u32::from_le_bytes(b.get(1..5)?.try_into().ok()?)),
            5,
        )),
        _ => None,
    }
}

/// Parse the package that starts right after a `_S5_` name at `b`.
fn s5_package(b: &[u8]) -> Option<SleepTypes> {
    if *b.first()? != PACKAGE_OP {
        return None;
    }
    let (len, used) = pkg_length(b.get(1..)?)?;
    // PkgLength counts its own bytes; the package body follows it.
    let body = b.get(1 + used..1 + len)?;
    let num = *body.first()?;
    if num == 0 {
        return None;
    }
    let (a, n) = integer(body.get(1..)?)?;
    // A one-element package gives the same value for both registers.
    let b_val = if num >= 2 {
        integer(body.get(1 + n..)?)?.0
    } else {
        a
    };
    Some(SleepTypes {
        a: (a & 7) as u8,
        b: (b_val & 7) as u8,
    })
}

/// Find `Name(\_S5, Package(){a, b, ...})` in an AML byte stream (the DSDT body,
/// or an SSDT's). Returns `None` if there is no such declaration in that shape.
pub fn find_s5(aml: &[u8]) -> Option<SleepTypes> {
    let mut from = 0;
    while let Some(pos) = aml.get(from..)?.windows(4).position(|w| w == b"_S5_") {
        let at = from + pos;
        let named = match at.checked_sub(1).map(|i| aml[i]) {
            Some(NAME_OP) => true,
            Some(ROOT_CHAR) => at >= 2 && aml[at - 2] == NAME_OP,
            _ => false,
        };
        if named {
            if let Some(t) = s5_package(&aml[at + 4..]) {
                return Some(t);
            }
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn qemu_style() {
        // Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero }) as SeaBIOS/QEMU emit
        // it, inside some surrounding AML.
        let aml = [
            0x10, 0x05, b'\\', b'_', b'S', b'B', b'_', // Scope noise
            NAME_OP, b'_', b'S', b'5', b'_', PACKAGE_OP, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00, 0xA4,
        ];
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 0, b: 0 }));
    }

    #[test]
    fn byte_prefixed_with_root() {
        let aml = [
            NAME_OP,
            ROOT_CHAR,
            b'_',
            b'S',
            b'5',
            b'_',
            PACKAGE_OP,
            0x08, // PkgLength: itself + 7 body bytes
            0x04,
            BYTE_PREFIX,
            0x05,
            BYTE_PREFIX,
            0x07,
            ZERO_OP,
            ZERO_OP,
        ];
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 5, b: 7 }));
    }

    #[test]
    fn word_and_one() {
        let aml = [
            NAME_OP,
            b'_',
            b'S',
            b'5',
            b'_',
            PACKAGE_OP,
            0x06,
            0x02,
            WORD_PREFIX,
            0x06,
            0x00,
            ONE_OP,
        ];
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 6, b: 1 }));
    }

    #[test]
    fn multi_byte_pkg_length() {
        // Lead byte 0x40: one following byte; length = 0x0 | (0x06 << 4) = 0x60.
        let mut aml = std::vec![
            NAME_OP,
            b'_',
            b'S',
            b'5',
            b'_',
            PACKAGE_OP,
            0x40,
            0x06,
            0x02,
            BYTE_PREFIX,
            3,
            BYTE_PREFIX,
            4
        ];
        aml.resize(6 + 0x60 + 1, 0);
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 3, b: 4 }));
        assert_eq!(pkg_length(&[0x40, 0x06]), Some((0x60, 2)));
        assert_eq!(pkg_length(&[0x81, 0x23, 0x01]), Some((0x1231, 3)));
    }

    #[test]
    fn not_a_name_or_not_a_package() {
        // A method reference (no NameOp): ignored. Then the real one.
        let aml = [
            0x14,
            b'_',
            b'S',
            b'5',
            b'_',
            0x00, // MethodOp-ish
            NAME_OP,
            b'_',
            b'S',
            b'5',
            b'_',
            PACKAGE_OP,
            0x04,
            0x01,
            BYTE_PREFIX,
            2,
        ];
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 2, b: 2 }));
        assert_eq!(find_s5(&[NAME_OP, b'_', b'S', b'5', b'_', 0x0A, 5]), None);
        assert_eq!(find_s5(b"no sleep states here"), None);
        assert_eq!(find_s5(&[]), None);
        // Truncated package.
        assert_eq!(
            find_s5(&[NAME_OP, b'_', b'S', b'5', b'_', PACKAGE_OP, 0x06, 0x04]),
            None
        );
    }

    extern crate std;

    proptest! {
        #[test]
        fn never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..256), at in 0usize..256) {
            // Plant a name somewhere so the package parser runs on random bytes.
            if bytes.len() > 6 {
                let at = at % (bytes.len() - 5);
                bytes[at] = NAME_OP;
                bytes[at + 1..at + 5].copy_from_slice(b"_S5_");
            }
            let _ = find_s5(&bytes);
        }
    }
}
