//! The Keel ELF notes, as `static`s the [`crate::test!`] macro places in `.note.keel`.
//!
//! An ELF note is `namesz, descsz, type` (three `u32`), the owner name padded to 4
//! bytes, then the descriptor padded to 4 bytes. The layouts here are built at
//! compile time so that the image carries them without any code running: the
//! hypervisor reads the ABI-version note before the guest exists, and the test
//! runner reads the test note from the file.

use crate::abi::note::{
    TestCategory, NOTE_NAME, NT_KEEL_ABI_BUILT, NT_KEEL_ABI_VERSION, NT_KEEL_TEST,
};
use crate::abi::version::AbiVersion;

/// `"Keel\0"` padded to 8 bytes.
const NAME: [u8; 8] = [
    NOTE_NAME[0],
    NOTE_NAME[1],
    NOTE_NAME[2],
    NOTE_NAME[3],
    0,
    0,
    0,
    0,
];
/// `namesz` counts the terminating NUL but not the padding.
const NAMESZ: u32 = NOTE_NAME.len() as u32 + 1;

/// The ABI-version note: `major: u16, minor: u16`.
#[repr(C, align(4))]
pub struct AbiNote {
    namesz: u32,
    descsz: u32,
    ntype: u32,
    name: [u8; 8],
    desc: [u8; 4],
}

impl AbiNote {
    /// The note for the ABI version this crate was built against.
    pub const fn current() -> Self {
        Self::for_version(AbiVersion::CURRENT)
    }

    /// The note for `v`.
    pub const fn for_version(v: AbiVersion) -> Self {
        Self::with_type(NT_KEEL_ABI_VERSION, v)
    }

    /// The `NT_KEEL_ABI_BUILT` note: the version of the `keel-abi` this image is
    /// built with (every image gets one; a 1.x hypervisor tells an image without
    /// it, built before 1.0, that it implements 0.2: `docs/abi/image.md`).
    pub const fn built() -> Self {
        Self::with_type(NT_KEEL_ABI_BUILT, AbiVersion::CURRENT)
    }

    const fn with_type(ntype: u32, v: AbiVersion) -> Self {
        let ma = v.major.to_le_bytes();
        let mi = v.minor.to_le_bytes();
        AbiNote {
            namesz: NAMESZ,
            descsz: 4,
            ntype,
            name: NAME,
            desc: [ma[0], ma[1], mi[0], mi[1]],
        }
    }
}

/// The space a title of `len` bytes takes in a [`TestNote`]: the bytes, a NUL, and
/// padding to a multiple of 4 (the category before it is 4 bytes, so the whole
/// descriptor stays 4-aligned).
pub const fn title_space(len: usize) -> usize {
    (len + 1).div_ceil(4) * 4
}

/// The test note: `category: u32`, then the title, NUL-terminated. `N` is
/// [`title_space`] of the title's length.
#[repr(C, align(4))]
pub struct TestNote<const N: usize> {
    namesz: u32,
    descsz: u32,
    ntype: u32,
    name: [u8; 8],
    category: u32,
    title: [u8; N],
}

impl<const N: usize> TestNote<N> {
    /// Build the note. Fails to compile (const panic) if `N` cannot hold the title.
    pub const fn new(category: TestCategory, title: &str) -> Self {
        let t = title.as_bytes();
        assert!(t.len() < N, "TestNote: N must be title_space(title.len())");
        let mut buf = [0u8; N];
        let mut i = 0;
        while i < t.len() {
            buf[i] = t[i];
            i += 1;
        }
        TestNote {
            namesz: NAMESZ,
            // The descriptor's true size: category + title + NUL (padding excluded).
            descsz: 4 + t.len() as u32 + 1,
            ntype: NT_KEEL_TEST,
            name: NAME,
            category: category as u32,
            title: buf,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn abi_note_layout() {
        // The ELF note layout: three u32 words, the name padded to 8, the descriptor.
        assert_eq!(size_of::<AbiNote>(), 24);
        assert_eq!(offset_of!(AbiNote, ntype), 8);
        assert_eq!(offset_of!(AbiNote, name), 12);
        assert_eq!(offset_of!(AbiNote, desc), 20);
        let n = AbiNote::current();
        assert_eq!((n.namesz, n.descsz, n.ntype), (5, 4, NT_KEEL_ABI_VERSION));
        assert_eq!(&n.name, b"Keel\0\0\0\0");
        let v = AbiVersion::CURRENT;
        assert_eq!(u16::from_le_bytes([n.desc[0], n.desc[1]]), v.major);
        assert_eq!(u16::from_le_bytes([n.desc[2], n.desc[3]]), v.minor);
        // The build note: the same bytes as the ABI crate's own encoder.
        let b = AbiNote::built();
        assert_eq!((b.namesz, b.descsz, b.ntype), (5, 4, NT_KEEL_ABI_BUILT));
        let mut bytes = [0u8; 24];
        bytes[0..4].copy_from_slice(&b.namesz.to_le_bytes());
        bytes[4..8].copy_from_slice(&b.descsz.to_le_bytes());
        bytes[8..12].copy_from_slice(&b.ntype.to_le_bytes());
        bytes[12..20].copy_from_slice(&b.name);
        bytes[20..24].copy_from_slice(&b.desc);
        assert_eq!(bytes, crate::abi::note::abi_built_note(AbiVersion::CURRENT));
    }

    #[test]
    fn test_note_layout() {
        const T: &str = "hello";
        type Note = TestNote<{ title_space(T.len()) }>;
        assert_eq!(size_of::<Note>(), 24 + 8);
        assert_eq!(offset_of!(Note, category), 20);
        assert_eq!(offset_of!(Note, title), 24);
        let n: Note = TestNote::new(TestCategory::Security, T);
        assert_eq!((n.namesz, n.descsz, n.ntype), (5, 4 + 5 + 1, NT_KEEL_TEST));
        assert_eq!(n.category, TestCategory::Security as u32);
        assert_eq!(&n.title, b"hello\0\0\0");
        assert_eq!(title_space(0), 4);
        assert_eq!(title_space(3), 4);
        assert_eq!(title_space(4), 8);
    }
}
