//! The ELF header and program headers: the checks that make a [`GuestImage`].

use crate::addr::{GuestVirt, PAGE_SIZE};
use keel_abi::version::AbiVersion;

use super::bytes::Bytes;
use super::notes::{parse_notes, Notes};
use super::{ElfError, GuestImage, Segment, SegmentFlags, MAX_IMAGE_SPAN, MAX_PHDRS, MAX_SEGMENTS};

pub(super) const ELF_HEADER_SIZE: usize = 64;
pub(super) const PHDR_SIZE: usize = 56;
pub(super) const ET_EXEC: u16 = 2;
pub(super) const EM_X86_64: u16 = 62;
pub(super) const PT_LOAD: u32 = 1;
pub(super) const PT_NOTE: u32 = 4;
/// `PT_GNU_STACK` and other OS-specific headers are ignored; `PT_DYNAMIC` and
/// `PT_INTERP` mean the image is not statically linked.
pub(super) const PT_DYNAMIC: u32 = 2;
pub(super) const PT_INTERP: u32 = 3;
pub(super) const PT_TLS: u32 = 7;

impl GuestImage {
    /// Parse and validate an ELF64 x86_64 executable. Never panics.
    pub fn parse(bytes: &[u8]) -> Result<GuestImage, ElfError> {
        let b = Bytes(bytes);
        if bytes.len() < ELF_HEADER_SIZE {
            return Err(ElfError::Truncated);
        }
        if b.slice(0, 4) != Some(b"\x7fELF".as_slice()) {
            return Err(ElfError::BadMagic);
        }
        if b.u8(4) != Some(2) {
            return Err(ElfError::NotElf64);
        }
        if b.u8(5) != Some(1) {
            return Err(ElfError::NotLittleEndian);
        }
        if b.u8(6) != Some(1) || b.u32(20) != Some(1) {
            return Err(ElfError::BadVersion);
        }
        if b.u16(16) != Some(ET_EXEC) {
            return Err(ElfError::NotExecutable);
        }
        if b.u16(18) != Some(EM_X86_64) {
            return Err(ElfError::NotX86_64);
        }
        let entry = GuestVirt::new(b.u64(24).ok_or(ElfError::Truncated)?);
        let phoff = b.u64(32).ok_or(ElfError::Truncated)?;
        let phentsize = b.u16(54).ok_or(ElfError::Truncated)?;
        let phnum = usize::from(b.u16(56).ok_or(ElfError::Truncated)?);
        if usize::from(phentsize) != PHDR_SIZE || phnum == 0 || phnum > MAX_PHDRS {
            return Err(ElfError::BadProgramHeaders);
        }
        // The whole table must be in the file (phnum <= 64, so no overflow in the
        // multiplication; the addition is checked).
        let phoff = usize::try_from(phoff).map_err(|_| ElfError::Truncated)?;
        let table_end = phoff
            .checked_add(phnum * PHDR_SIZE)
            .ok_or(ElfError::Truncated)?;
        if table_end > bytes.len() {
            return Err(ElfError::Truncated);
        }

        let mut img = GuestImage {
            segments: [Segment::default(); MAX_SEGMENTS],
            nr_segments: 0,
            entry,
            abi_version: AbiVersion { major: 0, minor: 0 },
            abi_built: None,
            test: None,
        };
        let mut abi: Option<AbiVersion> = None;

        for index in 0..phnum {
            let ph = phoff + index * PHDR_SIZE;
            let field64 = |off: usize| b.u64(ph + off).ok_or(ElfError::Truncated);
            let p_type = b.u32(ph).ok_or(ElfError::Truncated)?;
            let p_flags = b.u32(ph + 4).ok_or(ElfError::Truncated)?;
            let p_offset = field64(8)?;
            let p_vaddr = field64(16)?;
            let p_filesz = field64(32)?;
            let p_memsz = field64(40)?;
            let p_align = field64(48)?;

            match p_type {
                PT_LOAD => {
                    // The file bytes must exist, whatever the memory size.
                    let in_file = p_offset
                        .checked_add(p_filesz)
                        .is_some_and(|end| end <= bytes.len() as u64);
                    if !in_file {
                        return Err(ElfError::SegmentOutsideFile { index });
                    }
                    if p_memsz < p_filesz {
                        return Err(ElfError::MemSizeBelowFileSize { index });
                    }
                    if p_memsz == 0 {
                        // An empty PT_LOAD is legal ELF and loads nothing.
                        continue;
                    }
                    if p_memsz > MAX_IMAGE_SPAN {
                        return Err(ElfError::TooLarge);
                    }
                    if !range_is_canonical(p_vaddr, p_memsz) {
                        return Err(ElfError::NonCanonicalSegment { index });
                    }
                    let slot = img
                        .segments
                        .get_mut(img.nr_segments)
                        .ok_or(ElfError::TooManySegments)?;
                    *slot = Segment {
                        vaddr: GuestVirt::new(p_vaddr),
                        offset: p_offset,
                        filesz: p_filesz,
                        memsz: p_memsz,
                        flags: SegmentFlags::from_bits_retain(p_flags),
                    };
                    img.nr_segments += 1;
                }
                PT_NOTE => {
                    let start = usize::try_from(p_offset).map_err(|_| ElfError::MalformedNote)?;
                    let len = usize::try_from(p_filesz).map_err(|_| ElfError::MalformedNote)?;
                    let end = start.checked_add(len).ok_or(ElfError::MalformedNote)?;
                    if end > bytes.len() {
                        return Err(ElfError::MalformedNote);
                    }
                    // ELF64 notes are 4-byte aligned by the gABI, but GNU tools emit
                    // 8-byte aligned note segments (p_align = 8) for some notes.
                    let align = if p_align == 8 { 8 } else { 4 };
                    let notes = Notes {
                        abi: &mut abi,
                        built: &mut img.abi_built,
                        test: &mut img.test,
                    };
                    parse_notes(&b, start, end, align, notes)?;
                }
                PT_DYNAMIC | PT_INTERP | PT_TLS => return Err(ElfError::NotStatic),
                _ => {}
            }
        }

        if img.nr_segments == 0 {
            return Err(ElfError::NoLoadableSegment);
        }
        // Sort by address; then overlap is a property of neighbours.
        let segs = img.segments.get_mut(..img.nr_segments).unwrap_or(&mut []);
        segs.sort_unstable_by_key(|s| s.vaddr.get());
        if segs.windows(2).any(|w| w[0].end() > w[1].vaddr.get()) {
            return Err(ElfError::OverlappingSegments);
        }
        // The whole image, page-rounded, must fit the span bound (segments are
        // sorted, so first and last give the extent).
        let (lo, hi) = match (segs.first(), segs.last()) {
            (Some(f), Some(l)) => (f.vaddr.get() & !(PAGE_SIZE - 1), l.end()),
            _ => return Err(ElfError::NoLoadableSegment),
        };
        if hi - lo > MAX_IMAGE_SPAN {
            return Err(ElfError::TooLarge);
        }
        if !segs.iter().any(|s| s.executable() && s.contains(entry)) {
            return Err(ElfError::BadEntry);
        }
        img.abi_version = abi.ok_or(ElfError::MissingAbiNote)?;
        Ok(img)
    }
}

/// Whether `start .. start + len` (len > 0) is canonical, does not wrap, and lies in
/// one half of the address space (a range cannot straddle the canonical hole).
///
/// The end rounded up to a page must also be representable, so that
/// [`Segment::end`] and [`GuestImage::virt_end`] can never overflow.
fn range_is_canonical(start: u64, len: u64) -> bool {
    let Some(end) = start.checked_add(len) else {
        return false;
    };
    if end.checked_add(PAGE_SIZE - 1).is_none() {
        return false;
    }
    let last = end - 1;
    GuestVirt::new(start).is_canonical()
        && GuestVirt::new(last).is_canonical()
        && (start >> 63) == (last >> 63)
}
