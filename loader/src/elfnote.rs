//! Reading the Keel notes (`keel_abi::note`) out of a guest ELF image.
//!
//! The test runner discovers tests by looking at what was built, not at source
//! files: a guest program is a test exactly when its image carries an
//! [`NT_KEEL_TEST`] note, whose descriptor gives the category and the title. That
//! keeps "adding a file adds a test" true with nothing to register anywhere.
//!
//! The hypervisor has its own, no_std ELF parser for loading guests; this one is
//! deliberately smaller (notes only) and, like it, never panics on bad input.

use keel_abi::note::{TestCategory, NOTE_NAME, NT_KEEL_ABI_VERSION, NT_KEEL_TEST};

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
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}
fn range(b: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    b.get(start..end)
}

/// The note areas of an ELF64 little-endian image: the PT_NOTE segments, or, when
/// there are none, the SHT_NOTE sections.
fn note_areas(elf: &[u8]) -> Result<Vec<&[u8]>, String> {
    if elf.get(0..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bad = || "truncated ELF header".to_string();
    let phoff = u64_at(elf, 0x20).ok_or_else(bad)?;
    let shoff = u64_at(elf, 0x28).ok_or_else(bad)?;
    let phentsize = u64::from(u16_at(elf, 0x36).ok_or_else(bad)?);
    let phnum = u64::from(u16_at(elf, 0x38).ok_or_else(bad)?);
    let shentsize = u64::from(u16_at(elf, 0x3a).ok_or_else(bad)?);
    let shnum = u64::from(u16_at(elf, 0x3c).ok_or_else(bad)?);

    const PT_NOTE: u32 = 4;
    const SHT_NOTE: u32 = 7;
    let mut areas = Vec::new();
    for i in 0..phnum {
        let ph = range(elf, phoff.saturating_add(i * phentsize), 0x38)
            .ok_or("truncated program header")?;
        if u32_at(ph, 0) == Some(PT_NOTE) {
            let (off, size) = (u64_at(ph, 0x08).unwrap_or(0), u64_at(ph, 0x20).unwrap_or(0));
            areas.push(range(elf, off, size).ok_or("PT_NOTE outside the file")?);
        }
    }
    if areas.is_empty() {
        for i in 0..shnum {
            let sh = range(elf, shoff.saturating_add(i * shentsize), 0x40)
                .ok_or("truncated section header")?;
            if u32_at(sh, 4) == Some(SHT_NOTE) {
                let (off, size) = (u64_at(sh, 0x18).unwrap_or(0), u64_at(sh, 0x20).unwrap_or(0));
                areas.push(range(elf, off, size).ok_or("SHT_NOTE outside the file")?);
            }
        }
    }
    Ok(areas)
}

/// Read the Keel notes of an ELF image. Notes of other owners are skipped.
pub fn read_keel_notes(elf: &[u8]) -> Result<KeelNotes, String> {
    let mut notes = KeelNotes::default();
    for area in note_areas(elf)? {
        let mut off = 0usize;
        // Each note: namesz, descsz, type, then name and descriptor, each padded to 4.
        while off + 12 <= area.len() {
            let namesz = u32_at(area, off).unwrap_or(0) as usize;
            let descsz = u32_at(area, off + 4).unwrap_or(0) as usize;
            let ty = u32_at(area, off + 8).unwrap_or(0);
            let name_start = off + 12;
            let desc_start = name_start
                .checked_add(namesz.checked_next_multiple_of(4).ok_or("bad note")?)
                .ok_or("bad note")?;
            let next = desc_start
                .checked_add(descsz.checked_next_multiple_of(4).ok_or("bad note")?)
                .ok_or("bad note")?;
            let name = area
                .get(name_start..name_start + namesz)
                .ok_or("truncated note")?;
            let desc = area
                .get(desc_start..desc_start + descsz)
                .ok_or("truncated note")?;
            // The owner name is NUL-terminated in the file.
            let owner = name.strip_suffix(b"\0").unwrap_or(name);
            if owner == NOTE_NAME {
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
            off = next;
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
