//! The Keel notes in a `PT_NOTE` segment.

use keel_abi::note::{
    parse_abi_version_desc, NOTE_NAME, NT_KEEL_ABI_BUILT, NT_KEEL_ABI_VERSION, NT_KEEL_TEST,
};
use keel_abi::version::AbiVersion;

use super::bytes::Bytes;
use super::{ElfError, TestNote};

/// Where [`parse_notes`] records the Keel notes it finds.
pub(super) struct Notes<'a> {
    pub(super) abi: &'a mut Option<AbiVersion>,
    pub(super) built: &'a mut Option<AbiVersion>,
    pub(super) test: &'a mut Option<TestNote>,
}

/// Walk the notes in `start .. end` and record the Keel ones.
///
/// Note layout (gABI): `namesz: u32, descsz: u32, type: u32`, then the name padded
/// to `align`, then the descriptor padded to `align`. Notes of other owners (GNU
/// build IDs, properties) are skipped, but must still be well formed.
pub(super) fn parse_notes(
    b: &Bytes<'_>,
    start: usize,
    end: usize,
    align: usize,
    notes: Notes<'_>,
) -> Result<(), ElfError> {
    let Notes { abi, built, test } = notes;
    let mut at = start;
    while at < end {
        let header_end = at.checked_add(12).ok_or(ElfError::MalformedNote)?;
        if header_end > end {
            return Err(ElfError::MalformedNote);
        }
        let namesz = b.u32(at).ok_or(ElfError::MalformedNote)? as usize;
        let descsz = b.u32(at + 4).ok_or(ElfError::MalformedNote)? as usize;
        let ntype = b.u32(at + 8).ok_or(ElfError::MalformedNote)?;
        let name_at = header_end;
        let desc_at = name_at
            .checked_add(round_up(namesz, align).ok_or(ElfError::MalformedNote)?)
            .ok_or(ElfError::MalformedNote)?;
        let desc_end = desc_at.checked_add(descsz).ok_or(ElfError::MalformedNote)?;
        if desc_end > end {
            return Err(ElfError::MalformedNote);
        }
        let next = desc_at
            .checked_add(round_up(descsz, align).ok_or(ElfError::MalformedNote)?)
            .ok_or(ElfError::MalformedNote)?;

        let name = b.slice(name_at, namesz).ok_or(ElfError::MalformedNote)?;
        // The owner is "Keel" with its NUL (namesz = 5), as the gABI says; accept a
        // name without the NUL too.
        let is_keel = name == b"Keel\0".as_slice() || name == NOTE_NAME.as_slice();
        if is_keel {
            let desc = b.slice(desc_at, descsz).ok_or(ElfError::MalformedNote)?;
            match ntype {
                NT_KEEL_ABI_VERSION => {
                    if descsz != 4 {
                        return Err(ElfError::MalformedNote);
                    }
                    if abi.is_some() {
                        return Err(ElfError::DuplicateNote);
                    }
                    *abi = Some(parse_abi_version_desc(desc).ok_or(ElfError::MalformedNote)?);
                }
                NT_KEEL_ABI_BUILT => {
                    if descsz != 4 {
                        return Err(ElfError::MalformedNote);
                    }
                    if built.is_some() {
                        return Err(ElfError::DuplicateNote);
                    }
                    *built = Some(parse_abi_version_desc(desc).ok_or(ElfError::MalformedNote)?);
                }
                NT_KEEL_TEST => {
                    if descsz < 4 {
                        return Err(ElfError::MalformedNote);
                    }
                    if test.is_some() {
                        return Err(ElfError::DuplicateNote);
                    }
                    let category_raw = b.u32(desc_at).ok_or(ElfError::MalformedNote)?;
                    let title = desc.get(4..).unwrap_or(&[]);
                    let title_len = title.iter().position(|&c| c == 0).unwrap_or(title.len());
                    *test = Some(TestNote {
                        category_raw,
                        title_offset: desc_at + 4,
                        title_len,
                    });
                }
                // Unknown Keel note types are for newer tools; ignore them.
                _ => {}
            }
        }
        // `next > at` always (the header alone is 12 bytes), so the loop ends.
        at = next;
    }
    Ok(())
}

fn round_up(v: usize, align: usize) -> Option<usize> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}
