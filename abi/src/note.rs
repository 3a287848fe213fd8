//! The guest image note: how a guest ELF tells the hypervisor (and the test runner)
//! what it is.
//!
//! Every guest image carries a `PT_NOTE` segment with notes of owner name `"Keel"`:
//! - [`NT_KEEL_ABI_VERSION`]: 4 bytes: `major: u16, minor: u16` (little endian), the
//!   ABI version the guest was built against. The hypervisor refuses to start a guest
//!   whose version is newer than its own, or whose note is missing.
//! - [`NT_KEEL_TEST`]: present in test programs: `category: u32` then the test's
//!   title as UTF-8, NUL-terminated (read by `cargo keel test`).
//! - [`NT_KEEL_ABI_BUILT`] (since 1.0): 4 bytes like the ABI version note: the
//!   version of the `keel-abi` crate the image was built with, i.e. the newest
//!   interface it knows, which may be newer than the version it declares (a guest
//!   declares the oldest version it runs on). Images built before 1.0 lack it;
//!   the hypervisor uses it to tell them apart ([`crate::version::AbiVersion::presented_to`]).
//!
//! Bare-metal difference: a bare-metal kernel needs no such note; Xen PV kernels
//! carry `XEN_ELFNOTE_*` notes of owner `"Xen"` instead, which Keel ignores.

use crate::layout::{keel, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Note, since: AbiVersion::V0_1;
    /// The note owner name (without its NUL).
    NOTE_NAME: &[u8; 4] = b"Keel" => @bytes keel();
    /// Note type: ABI version the image was built against.
    NT_KEEL_ABI_VERSION: u32 = 1 => keel();
    /// Note type: test metadata.
    NT_KEEL_TEST: u32 = 2 => keel();
    /// Length of the whole ABI-version note ([`abi_version_note`]): a 12-byte header,
    /// the name `"Keel\0"` padded to 8 bytes, the 4-byte descriptor.
    ABI_VERSION_NOTE_LEN: usize = 24 => keel();
}

abi_consts! {
    family: Family::Note, since: AbiVersion::V1_0, list: BUILT_CONSTS;
    /// Note type: the ABI version of the crate the image was built with (the
    /// newest interface it knows); descriptor as [`NT_KEEL_ABI_VERSION`]'s.
    NT_KEEL_ABI_BUILT: u32 = 3 => keel();
}

/// The descriptor of the [`NT_KEEL_ABI_VERSION`] note: `major: u16, minor: u16`,
/// little endian.
pub const fn abi_version_desc(v: AbiVersion) -> [u8; 4] {
    let a = v.major.to_le_bytes();
    let b = v.minor.to_le_bytes();
    [a[0], a[1], b[0], b[1]]
}

/// Parse the descriptor of an [`NT_KEEL_ABI_VERSION`] note (`None` unless exactly 4 bytes).
pub fn parse_abi_version_desc(desc: &[u8]) -> Option<AbiVersion> {
    match desc {
        [a, b, c, d] => Some(AbiVersion {
            major: u16::from_le_bytes([*a, *b]),
            minor: u16::from_le_bytes([*c, *d]),
        }),
        _ => None,
    }
}

/// The complete ELF note declaring ABI version `v`, ready to be placed in a
/// `PT_NOTE` segment: `namesz = 5`, `descsz = 4`, `type = NT_KEEL_ABI_VERSION`,
/// `"Keel\0"` padded to 4-byte alignment, then [`abi_version_desc`]. A guest can
/// embed it as a `static` in its note section.
pub const fn abi_version_note(v: AbiVersion) -> [u8; ABI_VERSION_NOTE_LEN] {
    version_note(NT_KEEL_ABI_VERSION, v)
}

/// The complete [`NT_KEEL_ABI_BUILT`] note for version `v` (laid out as
/// [`abi_version_note`]).
pub const fn abi_built_note(v: AbiVersion) -> [u8; ABI_VERSION_NOTE_LEN] {
    version_note(NT_KEEL_ABI_BUILT, v)
}

const fn version_note(ntype: u32, v: AbiVersion) -> [u8; ABI_VERSION_NOTE_LEN] {
    let mut n = [0u8; ABI_VERSION_NOTE_LEN];
    let namesz = 5u32.to_le_bytes();
    let descsz = 4u32.to_le_bytes();
    let ty = ntype.to_le_bytes();
    let desc = abi_version_desc(v);
    let mut i = 0;
    while i < 4 {
        n[i] = namesz[i];
        n[4 + i] = descsz[i];
        n[8 + i] = ty[i];
        n[12 + i] = NOTE_NAME[i];
        n[20 + i] = desc[i];
        i += 1;
    }
    n
}

/// The category of a guest test program (as XTF groups its tests).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TestCategory {
    /// Does an operation do what it should.
    Functional = 0,
    /// Does the hypervisor refuse what it must refuse.
    Security = 1,
    /// Layouts, numbers and version behaviour.
    Abi = 2,
    /// Benchmarks: report numbers.
    Bench = 3,
    /// Anything else (demos, fuzzers).
    Special = 4,
}

impl TestCategory {
    /// All categories.
    pub const ALL: [TestCategory; 5] = [
        Self::Functional,
        Self::Security,
        Self::Abi,
        Self::Bench,
        Self::Special,
    ];

    /// Decode the note's category field.
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::Functional),
            1 => Some(Self::Security),
            2 => Some(Self::Abi),
            3 => Some(Self::Bench),
            4 => Some(Self::Special),
            _ => None,
        }
    }
    /// The lowercase name used on the runner's command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Functional => "functional",
            Self::Security => "security",
            Self::Abi => "abi",
            Self::Bench => "bench",
            Self::Special => "special",
        }
    }
    /// Parse a lowercase name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_version_note_is_a_well_formed_elf_note() {
        let v = AbiVersion {
            major: 3,
            minor: 0x0102,
        };
        let n = abi_version_note(v);
        let word = |i: usize| u32::from_le_bytes(n[i..i + 4].try_into().unwrap());
        assert_eq!(word(0), 5, "namesz counts the NUL");
        assert_eq!(word(4), 4, "descsz");
        assert_eq!(word(8), NT_KEEL_ABI_VERSION);
        assert_eq!(&n[12..17], b"Keel\0");
        assert_eq!(&n[17..20], &[0, 0, 0], "name padded to 4 bytes");
        assert_eq!(parse_abi_version_desc(&n[20..24]), Some(v));
        assert_eq!(parse_abi_version_desc(&n[20..23]), None);
        for c in TestCategory::ALL {
            assert_eq!(TestCategory::from_u32(c as u32), Some(c));
            assert_eq!(TestCategory::from_name(c.name()), Some(c));
        }
    }
}
