//! Reading the Keel notes (`keel_abi::note`) out of a guest ELF image.
//!
//! The test runner discovers tests by looking at what was built, not at source
//! files: a guest program is a test exactly when its image carries an
//! [`NT_KEEL_TEST`] note, whose descriptor gives the category and the title. That
//! keeps "adding a file adds a test" true with nothing to register anywhere.
//!
//! The ELF structure (headers, segments, sections, note records) is read by the
//! `object` crate; this module only decodes the Keel notes' descriptors. The
//! hypervisor has its own, no_std ELF parser for loading guests.

use keel_abi::note::{TestCategory, NOTE_NAME, NT_KEEL_ABI_VERSION, NT_KEEL_TEST};
use object::elf::FileHeader64;
use object::read::elf::{FileHeader, NoteIterator, ProgramHeader, SectionHeader};
use object::LittleEndian;

/// Test metadata from an image's test note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestNote {
    /// The category (functional, security, ...).
    pub category: TestCategory,
    /// The one-line title.
    pub title: String,
}

/// Everything Keel-specific an image declares about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeelNotes {
    /// The ABI version (major, minor) the image was built against.
    pub abi_version: Option<(u16, u16)>,
    /// The test note, for test programs.
    pub test: Option<TestNote>,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// One note: its owner (without the trailing NULs), type and descriptor.
type Note<'a> = (&'a [u8], u32, &'a [u8]);

/// Every note of an ELF64 little-endian image, as (owner, type, descriptor): the
/// notes of the PT_NOTE segments, or, when there are none, of the SHT_NOTE
/// sections.
fn notes<'a>(elf: &'a [u8]) -> Result<Vec<Note<'a>>, String> {
    let endian = LittleEndian;
    let header = FileHeader64::<LittleEndian>::parse(elf)
        .map_err(|e| format!("not a 64-bit little-endian ELF file ({e})"))?;
    let mut out = Vec::new();
    let mut collect = |it: Option<NoteIterator<'a, FileHeader64<LittleEndian>>>| {
        if let Some(mut it) = it {
            while let Some(n) = it.next().map_err(|e| e.to_string())? {
                out.push((n.name(), n.n_type(endian).0, n.desc()));
            }
        }
        Ok::<(), String>(())
    };
    let segments = header
        .program_headers(endian, elf)
        .map_err(|e| e.to_string())?;
    let mut any_segment = false;
    for ph in segments {
        let it = ph.notes(endian, elf).map_err(|e| e.to_string())?;
        any_segment |= it.is_some();
        collect(it)?;
    }
    if !any_segment {
        let sections = header.sections(endian, elf).map_err(|e| e.to_string())?;
        for sh in sections.iter() {
            collect(sh.notes(endian, elf).map_err(|e| e.to_string())?)?;
        }
    }
    Ok(out)
}

/// Read the Keel notes of an ELF image. Notes of other owners are skipped.
pub fn read_keel_notes(elf: &[u8]) -> Result<KeelNotes, String> {
    let mut notes = KeelNotes::default();
    for (owner, ty, desc) in self::notes(elf)? {
        if owner != NOTE_NAME {
            continue;
        }
        match ty {
            NT_KEEL_ABI_VERSION => {
                let major = u16_at(desc, 0).ok_or("short ABI version note")?;
                let minor = u16_at(desc, 2).ok_or("short ABI version note")?;
                notes.abi_version = Some((major, minor));
            }
            NT_KEEL_TEST => {
                let cat = u32_at(desc, 0).ok_or("short test note")?;
                let category = TestCategory::from_u32(cat)
                    .ok_or_else(|| format!("test note has unknown category {cat}"))?;
                let title = desc.get(4..).unwrap_or(&[]);
                let title = title.split(|&b| b == 0).next().unwrap_or(&[]);
                notes.test = Some(TestNote {
                    category,
                    title: String::from_utf8_lossy(title).into_owned(),
                });
            }
            _ => {}
        }
    }
    Ok(notes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(name);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(desc);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    /// A minimal ELF64 with one PT_NOTE segment holding `notes`.
    pub(crate) fn elf_with_notes(notes: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 0x40 + 0x38];
        e[0..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[6] = 1; // EV_CURRENT
        e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes()); // phoff
        e[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes()); // phentsize
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // phnum
        let ph = 0x40;
        e[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        e[ph + 8..ph + 16].copy_from_slice(&(0x78u64).to_le_bytes());
        e[ph + 0x20..ph + 0x28].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        e.extend_from_slice(notes);
        e
    }

    /// The notes a test program built with the given category and title carries.
    pub(crate) fn test_program(category: u32, title: &str) -> Vec<u8> {
        let mut desc = category.to_le_bytes().to_vec();
        desc.extend_from_slice(title.as_bytes());
        desc.push(0);
        let mut notes = note(b"GNU\0", 3, &[1, 2, 3, 4]);
        notes.extend(note(b"Keel\0", NT_KEEL_ABI_VERSION, &[0, 0, 1, 0]));
        notes.extend(note(b"Keel\0", NT_KEEL_TEST, &desc));
        elf_with_notes(&notes)
    }

    #[test]
    fn reads_test_and_version_notes() {
        let n = read_keel_notes(&test_program(1, "pin refuses a writable L1")).unwrap();
        assert_eq!(n.abi_version, Some((0, 1)));
        assert_eq!(
            n.test,
            Some(TestNote {
                category: TestCategory::Security,
                title: "pin refuses a writable L1".into()
            })
        );
    }

    #[test]
    fn no_test_note_means_not_a_test() {
        let notes = note(b"Keel\0", NT_KEEL_ABI_VERSION, &[0, 0, 1, 0]);
        let n = read_keel_notes(&elf_with_notes(&notes)).unwrap();
        assert_eq!(n.test, None);
        assert_eq!(n.abi_version, Some((0, 1)));
    }

    #[test]
    fn refuses_garbage() {
        assert!(read_keel_notes(b"hello").is_err());
        assert!(read_keel_notes(&test_program(99, "x")).is_err());
        let mut truncated = test_program(0, "abc");
        truncated.truncate(truncated.len() - 8);
        assert!(read_keel_notes(&truncated).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = read_keel_notes(&bytes);
            // And with a valid header, so the program-header paths are exercised too.
            let base = test_program(0, "t");
            for (i, b) in base.iter().enumerate().take(0x40) {
                if i < bytes.len() && i < 8 { bytes[i] = *b; }
            }
            let _ = read_keel_notes(&bytes);
        }
        #[test]
        fn never_panics_on_mutated_notes(pos in 0usize..200, val in any::<u8>()) {
            let mut e = test_program(2, "a title");
            let p = pos % e.len();
            e[p] = val;
            let _ = read_keel_notes(&e);
        }
    }
}
