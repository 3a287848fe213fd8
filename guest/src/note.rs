//! The Keel ELF notes, as `static`s the [`crate::test!`] macro places in `.note.keel`.
//!
//! An ELF note is `namesz, descsz, type` (three `u32`), the owner name padded to 4
//! bytes, then the descriptor padded to 4 bytes. The layouts here are built at
//! compile time so that the image carries them without any code running: the
//! hypervisor reads the ABI-version note before the guest exists, and the test
//! runner reads the test note from the file.

use crate::abi::note::{TestCategory, NOTE_NAME, NT_KEEL_ABI_VERSION, NT_KEEL_TEST};
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
        let ma = v.major.to_le_bytes();
        let mi = v.minor.to_le_bytes();
        AbiNote {
            namesz: NAMESZ,
            descsz: 4,
            ntype: NT_KEEL_ABI_VERSION,
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

    /// View a note as the bytes the linker will place in the image.
    fn bytes<T>(v: &T) -> &[u8] {
        // SAFETY (test only): the note structs are plain `repr(C)` integers and byte
        // arrays with no padding (every field is 4-aligned and a multiple of 4 long).
        unsafe {
            core::slice::from_raw_parts(v as *const T as *const u8, core::mem::size_of::<T>())
        }
    }

    #[test]
    fn abi_note_layout() {
        let n = AbiNote::current();
        let b = bytes(&n);
        assert_eq!(b.len(), 24);
        assert_eq!(&b[0..4], &5u32.to_le_bytes());
        assert_eq!(&b[4..8], &4u32.to_le_bytes());
        assert_eq!(&b[8..12], &NT_KEEL_ABI_VERSION.to_le_bytes());
        assert_eq!(&b[12..17], b"Keel\0");
        let v = AbiVersion::CURRENT;
        assert_eq!(&b[20..22], &v.major.to_le_bytes());
        assert_eq!(&b[22..24], &v.minor.to_le_bytes());
    }

    #[test]
    fn test_note_layout() {
        const T: &str = "hello";
        let n: TestNote<{ title_space(T.len()) }> = TestNote::new(TestCategory::Security, T);
        let b = bytes(&n);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(&b[4..8], &(4 + 5 + 1u32).to_le_bytes());
        assert_eq!(&b[8..12], &NT_KEEL_TEST.to_le_bytes());
        assert_eq!(&b[20..24], &1u32.to_le_bytes());
        assert_eq!(&b[24..30], b"hello\0");
        assert_eq!(title_space(0), 4);
        assert_eq!(title_space(3), 4);
        assert_eq!(title_space(4), 8);
    }
}
