//! # The exit qualification of an I/O instruction (SDM 28.2.1, table 28-5)
//!
//! Pure decoding, tested on the host: what the I/O exit handler needs to know
//! about the instruction that exited (size, direction, string, REP, port).

use bitflags::bitflags;

bitflags! {
    /// The flag bits of an I/O exit qualification.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct IoQualFlags: u64 {
        /// Bit 3: IN/INS (clear: OUT/OUTS).
        const IN = 1 << 3;
        /// Bit 4: a string instruction (INS/OUTS).
        const STRING = 1 << 4;
        /// Bit 5: a REP prefix.
        const REP = 1 << 5;
        /// Bit 6: the port was an immediate operand (clear: DX).
        const IMMEDIATE = 1 << 6;
    }
}

/// A decoded I/O exit qualification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    /// The access size in bytes: 1, 2 or 4.
    pub size: u8,
    /// IN or INS (a read from the port).
    pub is_in: bool,
    /// INS or OUTS.
    pub string: bool,
    /// With a REP prefix.
    pub rep: bool,
    /// The port.
    pub port: u16,
}

impl IoAccess {
    /// Decode `q`. Bits 2:0 hold the size minus one (0, 1 or 3); the encoding
    /// the SDM does not define (2, or anything above 3) is `None`.
    pub const fn decode(q: u64) -> Option<IoAccess> {
        let size = match q & 7 {
            0 => 1,
            1 => 2,
            3 => 4,
            _ => return None,
        };
        let f = IoQualFlags::from_bits_truncate(q);
        Some(IoAccess {
            size,
            is_in: f.contains(IoQualFlags::IN),
            string: f.contains(IoQualFlags::STRING),
            rep: f.contains(IoQualFlags::REP),
            port: (q >> 16) as u16,
        })
    }
}

/// The address size of INS/OUTS from the VM-exit instruction-information field
/// (SDM 28.2.5, table 28-8, bits 9:7): 0 16-bit, 1 32-bit, 2 64-bit.
pub const fn string_address_size(info: u64) -> u8 {
    ((info >> 7) & 7) as u8
}

/// The segment-register field of that instruction information (bits 17:15).
pub const fn string_segment(info: u64) -> u64 {
    (info >> 15) & 7
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn out_dx_al() {
        // OUT DX, AL with DX = 0x3f8.
        let a = IoAccess::decode(0x03f8_0000).unwrap();
        assert_eq!(
            a,
            IoAccess {
                size: 1,
                is_in: false,
                string: false,
                rep: false,
                port: 0x3f8
            }
        );
    }

    #[test]
    fn rep_insd_and_in_ax_imm() {
        let a = IoAccess::decode(0x0060_0000 | 0b11_1011).unwrap();
        assert_eq!(
            (a.size, a.is_in, a.string, a.rep, a.port),
            (4, true, true, true, 0x60)
        );
        let b = IoAccess::decode(0x0080_0000 | (1 << 6) | (1 << 3) | 1).unwrap();
        assert_eq!(
            (b.size, b.is_in, b.string, b.rep, b.port),
            (2, true, false, false, 0x80)
        );
    }

    #[test]
    fn undefined_sizes_are_refused() {
        assert_eq!(IoAccess::decode(2), None);
        for s in 4..8 {
            assert_eq!(IoAccess::decode(s), None);
        }
    }

    #[test]
    fn instruction_information() {
        // 64-bit addressing (2 in bits 9:7), GS (5 in bits 17:15).
        let info = (2 << 7) | (5 << 15);
        assert_eq!(string_address_size(info), 2);
        assert_eq!(string_segment(info), 5);
    }

    proptest! {
        /// Every defined qualification round-trips through its fields.
        #[test]
        fn round_trip(size in prop::sample::select(vec![1u8, 2, 4]), is_in: bool,
                      string: bool, rep: bool, imm: bool, port: u16, high in 0u64..(1 << 16)) {
            let q = u64::from(size - 1)
                | (u64::from(is_in) << 3)
                | (u64::from(string) << 4)
                | (u64::from(rep) << 5)
                | (u64::from(imm) << 6)
                | (u64::from(port) << 16)
                | (high << 32);
            let a = IoAccess::decode(q).unwrap();
            prop_assert_eq!(a, IoAccess { size, is_in, string, rep, port });
        }
    }
}
