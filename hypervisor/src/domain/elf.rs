//! # Guest images: a strict ELF64 reader
//!
//! A Keel guest is a statically linked ELF64 executable for x86_64 (see
//! `guest/link.ld`): a few `PT_LOAD` segments, an entry point, and a `PT_NOTE`
//! segment carrying the Keel notes ([`keel_abi::note`]). This module turns the bytes
//! of such an image into a [`GuestImage`]: a validated description the domain
//! builder can trust without re-checking a single field.
//!
//! The image is untrusted input (it arrives as a boot module, and the host tool
//! feeds arbitrary files to the same code), so the parser:
//!
//! - never panics and never indexes unchecked: every read goes through
//!   `Bytes`, every sum through `checked_add`;
//! - refuses anything it does not fully understand rather than guessing: wrong
//!   class, byte order, machine or type; segments whose file bytes lie outside the
//!   file, whose `memsz < filesz`, whose addresses are not canonical or wrap, or
//!   which overlap; absurd sizes; an entry point outside every executable segment;
//!   malformed notes; a missing ABI note.
//!
//! It is pure and `no_std` with no allocation (a fixed maximum of
//! [`MAX_SEGMENTS`] loadable segments), so the host tool uses it too.
//!
//! Xen's equivalent is `xen/common/libelf/`; Keel's images are far simpler (no
//! relocation, no `__xen_guest` section, no PAE variants), so this reader is much
//! stricter.

use crate::addr::{GuestVirt, PAGE_SIZE};
use keel_abi::note::{
    parse_abi_version_desc, TestCategory, NOTE_NAME, NT_KEEL_ABI_BUILT, NT_KEEL_ABI_VERSION,
    NT_KEEL_TEST,
};
use keel_abi::version::AbiVersion;

/// The most `PT_LOAD` segments an image may have (Keel images have two or three).
pub const MAX_SEGMENTS: usize = 16;
/// The most program headers an image may have.
pub const MAX_PHDRS: usize = 64;
/// The largest span of guest-virtual addresses an image may cover (its lowest
/// loadable page to its highest): 1 GiB. A guest bigger than this is a mistake,
/// and the bound keeps every later computation far away from overflow.
pub const MAX_IMAGE_SPAN: u64 = 1 << 30;

const ELF_HEADER_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// `PT_GNU_STACK` and other OS-specific headers are ignored; `PT_DYNAMIC` and
/// `PT_INTERP` mean the image is not statically linked.
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_TLS: u32 = 7;

/// Segment permission: executable (`PF_X`).
pub const PF_X: u32 = 1;
/// Segment permission: writable (`PF_W`).
pub const PF_W: u32 = 2;
/// Segment permission: readable (`PF_R`).
pub const PF_R: u32 = 4;

/// Why an image was refused. Each variant names one rule; [`core::fmt::Display`]
/// says it in a sentence for the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF header, or a header/table lies outside the file.
    Truncated,
    /// Not `\x7fELF`.
    BadMagic,
    /// Not ELFCLASS64.
    NotElf64,
    /// Not little-endian.
    NotLittleEndian,
    /// `EI_VERSION` / `e_version` is not 1.
    BadVersion,
    /// Not `ET_EXEC` (Keel loads statically linked executables only).
    NotExecutable,
    /// Not `EM_X86_64`.
    NotX86_64,
    /// `e_phentsize` is not 56, or there are no or too many program headers.
    BadProgramHeaders,
    /// `PT_DYNAMIC`, `PT_INTERP` or `PT_TLS`: not a freestanding static image.
    NotStatic,
    /// More than [`MAX_SEGMENTS`] loadable segments.
    TooManySegments,
    /// No loadable segment with a non-zero size.
    NoLoadableSegment,
    /// A segment's file bytes lie outside the file.
    SegmentOutsideFile {
        /// The program header index.
        index: usize,
    },
    /// A segment's `p_memsz` is smaller than its `p_filesz`.
    MemSizeBelowFileSize {
        /// The program header index.
        index: usize,
    },
    /// A segment's addresses are not canonical, wrap, or straddle the canonical hole.
    NonCanonicalSegment {
        /// The program header index.
        index: usize,
    },
    /// A segment (or the whole image) is larger than [`MAX_IMAGE_SPAN`].
    TooLarge,
    /// Two loadable segments overlap.
    OverlappingSegments,
    /// The entry point is not inside an executable loadable segment.
    BadEntry,
    /// A note header or its name/descriptor lies outside its `PT_NOTE` segment, or a
    /// Keel note has the wrong size.
    MalformedNote,
    /// Two Keel notes of the same type.
    DuplicateNote,
    /// No `NT_KEEL_ABI_VERSION` note: the image was not built for Keel.
    MissingAbiNote,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "image truncated (header or table outside the file)"),
            Self::BadMagic => write!(f, "not an ELF file"),
            Self::NotElf64 => write!(f, "not a 64-bit ELF file"),
            Self::NotLittleEndian => write!(f, "not a little-endian ELF file"),
            Self::BadVersion => write!(f, "unknown ELF version"),
            Self::NotExecutable => write!(f, "not an ELF executable (ET_EXEC)"),
            Self::NotX86_64 => write!(f, "not an x86_64 ELF file"),
            Self::BadProgramHeaders => write!(f, "bad program header table"),
            Self::NotStatic => write!(
                f,
                "image is not statically linked (PT_DYNAMIC/PT_INTERP/PT_TLS)"
            ),
            Self::TooManySegments => {
                write!(f, "more than {MAX_SEGMENTS} loadable segments")
            }
            Self::NoLoadableSegment => write!(f, "no loadable segment"),
            Self::SegmentOutsideFile { index } => {
                write!(f, "segment {index}: file bytes outside the file")
            }
            Self::MemSizeBelowFileSize { index } => {
                write!(f, "segment {index}: memory size smaller than file size")
            }
            Self::NonCanonicalSegment { index } => {
                write!(f, "segment {index}: address range not canonical")
            }
            Self::TooLarge => write!(f, "image spans more than {} MiB", MAX_IMAGE_SPAN >> 20),
            Self::OverlappingSegments => write!(f, "loadable segments overlap"),
            Self::BadEntry => write!(f, "entry point outside every executable segment"),
            Self::MalformedNote => write!(f, "malformed note"),
            Self::DuplicateNote => write!(f, "duplicate Keel note"),
            Self::MissingAbiNote => write!(
                f,
                "no Keel ABI note (NT_KEEL_ABI_VERSION): not a Keel guest image"
            ),
        }
    }
}

/// One loadable segment, validated: `vaddr .. vaddr + memsz` is canonical, does not
/// wrap, and overlaps no other segment; `offset .. offset + filesz` lies in the file;
/// `filesz <= memsz`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Where the segment starts in guest-virtual memory (not necessarily page aligned).
    pub vaddr: GuestVirt,
    /// Offset of its initialised bytes in the file.
    pub offset: u64,
    /// Number of initialised bytes (copied from the file).
    pub filesz: u64,
    /// Size in memory; bytes past `filesz` are zero (`.bss`).
    pub memsz: u64,
    /// `PF_R | PF_W | PF_X`.
    pub flags: u32,
}

impl Segment {
    /// One past the last byte (cannot overflow: checked at parse time).
    pub const fn end(&self) -> u64 {
        self.vaddr.0 + self.memsz
    }
    /// Whether the segment is writable (`PF_W`).
    pub const fn writable(&self) -> bool {
        self.flags & PF_W != 0
    }
    /// Whether the segment is executable (`PF_X`).
    pub const fn executable(&self) -> bool {
        self.flags & PF_X != 0
    }
    /// Whether `va` lies in `vaddr .. vaddr + memsz`.
    pub const fn contains(&self, va: GuestVirt) -> bool {
        va.0 >= self.vaddr.0 && va.0 < self.end()
    }
}

/// The `NT_KEEL_TEST` note of a test program. The title is kept as a range of the
/// image file so that the parser needs no allocation; [`TestNote::title`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestNote {
    /// The raw category field ([`TestNote::category`] decodes it).
    pub category_raw: u32,
    /// Offset of the title in the image file.
    pub title_offset: usize,
    /// Length of the title, up to (not including) its NUL.
    pub title_len: usize,
}

impl TestNote {
    /// The decoded category, or `None` for a number this build does not know.
    pub const fn category(&self) -> Option<TestCategory> {
        TestCategory::from_u32(self.category_raw)
    }
    /// The title bytes, read from the image the note was parsed from (empty if
    /// `image` is not that image).
    pub fn title<'a>(&self, image: &'a [u8]) -> &'a [u8] {
        self.title_offset
            .checked_add(self.title_len)
            .and_then(|end| image.get(self.title_offset..end))
            .unwrap_or(&[])
    }
    /// The title as UTF-8, or `None` if it is not valid UTF-8.
    pub fn title_str<'a>(&self, image: &'a [u8]) -> Option<&'a str> {
        core::str::from_utf8(self.title(image)).ok()
    }
}

/// A validated guest image. Built only by [`GuestImage::parse`], so every field
/// obeys the rules in the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestImage {
    segments: [Segment; MAX_SEGMENTS],
    nr_segments: usize,
    entry: GuestVirt,
    abi_version: AbiVersion,
    abi_built: Option<AbiVersion>,
    test: Option<TestNote>,
}

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
        let entry = GuestVirt(b.u64(24).ok_or(ElfError::Truncated)?);
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
                        vaddr: GuestVirt(p_vaddr),
                        offset: p_offset,
                        filesz: p_filesz,
                        memsz: p_memsz,
                        flags: p_flags,
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
        segs.sort_unstable_by_key(|s| s.vaddr.0);
        if segs.windows(2).any(|w| w[0].end() > w[1].vaddr.0) {
            return Err(ElfError::OverlappingSegments);
        }
        // The whole image, page-rounded, must fit the span bound (segments are
        // sorted, so first and last give the extent).
        let (lo, hi) = match (segs.first(), segs.last()) {
            (Some(f), Some(l)) => (f.vaddr.0 & !(PAGE_SIZE - 1), l.end()),
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

    /// The loadable segments, sorted by address, non-overlapping, non-empty.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.nr_segments).unwrap_or(&[])
    }
    /// The entry point (inside an executable segment).
    pub const fn entry(&self) -> GuestVirt {
        self.entry
    }
    /// The ABI version the image was built against (its `NT_KEEL_ABI_VERSION` note).
    pub const fn abi_version(&self) -> AbiVersion {
        self.abi_version
    }
    /// The ABI version of the crate the image was built with (its
    /// `NT_KEEL_ABI_BUILT` note): `None` for images built before 1.0.
    pub const fn abi_built(&self) -> Option<AbiVersion> {
        self.abi_built
    }
    /// The test metadata (`NT_KEEL_TEST`), present in test programs.
    pub const fn test(&self) -> Option<TestNote> {
        self.test
    }
    /// The lowest loadable address rounded down to a page: Xen's `virt_base`, where
    /// PFN 0 of the domain is mapped.
    pub fn virt_base(&self) -> GuestVirt {
        let lo = self.segments().first().map_or(0, |s| s.vaddr.0);
        GuestVirt(lo & !(PAGE_SIZE - 1))
    }
    /// One past the last loadable byte, rounded up to a page.
    pub fn virt_end(&self) -> GuestVirt {
        let hi = self.segments().last().map_or(0, |s| s.end());
        // Cannot overflow: `hi` is canonical, so at most 2^64 - 2^47 (upper half)
        // and the rounding adds less than a page.
        GuestVirt(hi.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1))
    }
    /// Number of pages from [`GuestImage::virt_base`] to [`GuestImage::virt_end`].
    pub fn nr_image_pages(&self) -> u64 {
        (self.virt_end().0.saturating_sub(self.virt_base().0)) / PAGE_SIZE
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
    GuestVirt(start).is_canonical()
        && GuestVirt(last).is_canonical()
        && (start >> 63) == (last >> 63)
}

/// Walk the notes in `start .. end` and record the Keel ones.
///
/// Note layout (gABI): `namesz: u32, descsz: u32, type: u32`, then the name padded
/// to `align`, then the descriptor padded to `align`. Notes of other owners (GNU
/// build IDs, properties) are skipped, but must still be well formed.
/// Where [`parse_notes`] records the Keel notes it finds.
struct Notes<'a> {
    abi: &'a mut Option<AbiVersion>,
    built: &'a mut Option<AbiVersion>,
    test: &'a mut Option<TestNote>,
}

fn parse_notes(
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

/// Bounds-checked little-endian reads from the image.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn slice(&self, at: usize, len: usize) -> Option<&'a [u8]> {
        self.0.get(at..at.checked_add(len)?)
    }
    fn array<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.slice(at, N)?.try_into().ok()
    }
    fn u8(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }
    fn u16(&self, at: usize) -> Option<u16> {
        self.array(at).map(u16::from_le_bytes)
    }
    fn u32(&self, at: usize) -> Option<u32> {
        self.array(at).map(u32::from_le_bytes)
    }
    fn u64(&self, at: usize) -> Option<u64> {
        self.array(at).map(u64::from_le_bytes)
    }
}

/// Building ELF images in tests (here and in the domain builder's tests).
#[cfg(test)]
pub(crate) mod testimg {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// One segment to emit.
    #[derive(Clone)]
    pub struct Seg {
        pub p_type: u32,
        pub flags: u32,
        pub vaddr: u64,
        pub data: Vec<u8>,
        pub memsz: u64,
        pub align: u64,
    }

    impl Seg {
        pub fn load(vaddr: u64, flags: u32, data: &[u8], memsz: u64) -> Self {
            Seg {
                p_type: PT_LOAD,
                flags,
                vaddr,
                data: data.to_vec(),
                memsz,
                align: PAGE_SIZE,
            }
        }
        pub fn note(data: Vec<u8>) -> Self {
            Seg {
                p_type: PT_NOTE,
                flags: PF_R,
                vaddr: 0,
                memsz: data.len() as u64,
                data,
                align: 4,
            }
        }
    }

    /// A note record with 4-byte padding.
    pub fn note(name: &[u8], ntype: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&ntype.to_le_bytes());
        v.extend_from_slice(name);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    pub fn abi_note(major: u16, minor: u16) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&major.to_le_bytes());
        d.extend_from_slice(&minor.to_le_bytes());
        note(b"Keel\0", NT_KEEL_ABI_VERSION, &d)
    }

    pub fn test_note(category: u32, title: &str) -> Vec<u8> {
        let mut d = category.to_le_bytes().to_vec();
        d.extend_from_slice(title.as_bytes());
        d.push(0);
        note(b"Keel\0", NT_KEEL_TEST, &d)
    }

    /// An ELF64 x86_64 ET_EXEC with the given program headers; segment data is
    /// placed after the headers, each at a file offset congruent to its vaddr
    /// modulo the page size (as linkers do).
    pub fn build(entry: u64, segs: &[Seg]) -> Vec<u8> {
        let phoff = 64usize;
        let mut data_at = phoff + segs.len() * PHDR_SIZE;
        let mut out = std::vec![0u8; data_at];
        out[0..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, s) in segs.iter().enumerate() {
            if s.p_type == PT_LOAD {
                let want = (s.vaddr % PAGE_SIZE) as usize;
                while data_at % PAGE_SIZE as usize != want {
                    data_at += 1;
                }
            }
            let ph = phoff + i * PHDR_SIZE;
            out[ph..ph + 4].copy_from_slice(&s.p_type.to_le_bytes());
            out[ph + 4..ph + 8].copy_from_slice(&s.flags.to_le_bytes());
            out[ph + 8..ph + 16].copy_from_slice(&(data_at as u64).to_le_bytes());
            out[ph + 16..ph + 24].copy_from_slice(&s.vaddr.to_le_bytes());
            out[ph + 24..ph + 32].copy_from_slice(&s.vaddr.to_le_bytes());
            out[ph + 32..ph + 40].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
            out[ph + 40..ph + 48].copy_from_slice(&s.memsz.to_le_bytes());
            out[ph + 48..ph + 56].copy_from_slice(&s.align.to_le_bytes());
            if out.len() < data_at {
                out.resize(data_at, 0);
            }
            out.extend_from_slice(&s.data);
            data_at = out.len();
        }
        out
    }

    /// A typical guest: text RX at 0x40_0000 (2 pages + a bit), data RW with bss,
    /// the ABI note (0.1) and a test note, as images were built before 1.0 (no
    /// build note).
    pub fn typical() -> Vec<u8> {
        typical_built(None)
    }

    /// [`typical`], with an `NT_KEEL_ABI_BUILT` note of `built` when given (as
    /// every image built with the 1.0 crate or later has).
    pub fn typical_built(built: Option<AbiVersion>) -> Vec<u8> {
        let text: Vec<u8> = (0..0x2100u32).map(|i| (i % 251) as u8).collect();
        let data: Vec<u8> = (0..0x300u32).map(|i| (i % 13) as u8 + 1).collect();
        let mut notes = abi_note(0, 1);
        if let Some(b) = built {
            notes.extend(note(
                b"Keel\0",
                NT_KEEL_ABI_BUILT,
                &keel_abi::note::abi_version_desc(b),
            ));
        }
        notes.extend(test_note(0, "typical guest"));
        build(
            0x40_0010,
            &[
                Seg::load(0x40_0000, PF_R | PF_X, &text, text.len() as u64),
                Seg::load(0x40_3000, PF_R | PF_W, &data, 0x1800),
                Seg::note(notes),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::testimg::*;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn parses_typical_image() {
        let bytes = typical();
        let img = GuestImage::parse(&bytes).unwrap();
        assert_eq!(img.entry(), GuestVirt(0x40_0010));
        assert_eq!(img.abi_version(), AbiVersion::V0_1);
        assert_eq!(img.segments().len(), 2);
        let s0 = img.segments()[0];
        assert_eq!(
            (s0.vaddr, s0.filesz, s0.memsz),
            (GuestVirt(0x40_0000), 0x2100, 0x2100)
        );
        assert!(s0.executable() && !s0.writable());
        let s1 = img.segments()[1];
        assert_eq!(
            (s1.vaddr, s1.filesz, s1.memsz),
            (GuestVirt(0x40_3000), 0x300, 0x1800)
        );
        assert!(s1.writable() && !s1.executable());
        assert_eq!(img.virt_base(), GuestVirt(0x40_0000));
        assert_eq!(img.virt_end(), GuestVirt(0x40_5000));
        assert_eq!(img.nr_image_pages(), 5);
        let t = img.test().unwrap();
        assert_eq!(t.category(), Some(TestCategory::Functional));
        assert_eq!(t.title_str(&bytes), Some("typical guest"));
        // The segment's file bytes are where the header says.
        let off = s0.offset as usize;
        assert_eq!(&bytes[off..off + 4], &[0, 1, 2, 3]);
    }

    #[test]
    fn segments_are_sorted() {
        let mut notes = abi_note(0, 1);
        notes.extend(note(b"GNU\0", 3, &[1, 2, 3, 4, 5, 6, 7, 8]));
        let bytes = build(
            0x40_0000,
            &[
                Seg::load(0x50_0000, PF_R | PF_W, &[1; 10], 10),
                Seg::note(notes),
                Seg::load(0x40_0000, PF_R | PF_X, &[2; 10], 10),
            ],
        );
        let img = GuestImage::parse(&bytes).unwrap();
        assert_eq!(img.segments()[0].vaddr, GuestVirt(0x40_0000));
        assert_eq!(img.segments()[1].vaddr, GuestVirt(0x50_0000));
        assert_eq!(img.test(), None);
    }

    fn with(segs: &[Seg], entry: u64) -> Result<GuestImage, ElfError> {
        GuestImage::parse(&build(entry, segs))
    }

    fn text() -> Seg {
        Seg::load(0x40_0000, PF_R | PF_X, &[0x90; 64], 64)
    }

    #[test]
    fn header_rejections() {
        let good = typical();
        assert!(GuestImage::parse(&good).is_ok());
        let patch = |off: usize, v: &[u8]| {
            let mut b = good.clone();
            b[off..off + v.len()].copy_from_slice(v);
            GuestImage::parse(&b)
        };
        assert_eq!(GuestImage::parse(&good[..63]), Err(ElfError::Truncated));
        assert_eq!(GuestImage::parse(&[]), Err(ElfError::Truncated));
        assert_eq!(patch(0, b"\x7fELG"), Err(ElfError::BadMagic));
        assert_eq!(patch(4, &[1]), Err(ElfError::NotElf64));
        assert_eq!(patch(5, &[2]), Err(ElfError::NotLittleEndian));
        assert_eq!(patch(6, &[0]), Err(ElfError::BadVersion));
        assert_eq!(patch(20, &[2]), Err(ElfError::BadVersion));
        assert_eq!(patch(16, &3u16.to_le_bytes()), Err(ElfError::NotExecutable));
        assert_eq!(patch(18, &3u16.to_le_bytes()), Err(ElfError::NotX86_64));
        assert_eq!(
            patch(54, &32u16.to_le_bytes()),
            Err(ElfError::BadProgramHeaders)
        );
        assert_eq!(
            patch(56, &0u16.to_le_bytes()),
            Err(ElfError::BadProgramHeaders)
        );
        assert_eq!(
            patch(56, &0xffffu16.to_le_bytes()),
            Err(ElfError::BadProgramHeaders)
        );
        assert_eq!(patch(32, &u64::MAX.to_le_bytes()), Err(ElfError::Truncated));
        assert_eq!(
            patch(32, &(good.len() as u64 - 10).to_le_bytes()),
            Err(ElfError::Truncated)
        );
        assert_eq!(
            patch(24, &0x40_3000u64.to_le_bytes()),
            Err(ElfError::BadEntry)
        );
        assert_eq!(
            patch(24, &0x40_2100u64.to_le_bytes()),
            Err(ElfError::BadEntry)
        );
        assert_eq!(
            patch(24, &0x40_20ffu64.to_le_bytes()).map(|i| i.entry().0),
            Ok(0x40_20ff)
        );
    }

    #[test]
    fn segment_rejections() {
        let abi = || Seg::note(abi_note(0, 1));
        // File bytes outside the file.
        let mut b = build(0x40_0000, &[text(), abi()]);
        b[64 + 32..64 + 40].copy_from_slice(&(1u64 << 40).to_le_bytes()); // filesz
        b[64 + 40..64 + 48].copy_from_slice(&(1u64 << 40).to_le_bytes()); // memsz
        assert_eq!(
            GuestImage::parse(&b),
            Err(ElfError::SegmentOutsideFile { index: 0 })
        );
        let mut b = build(0x40_0000, &[text(), abi()]);
        b[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes()); // offset
        assert_eq!(
            GuestImage::parse(&b),
            Err(ElfError::SegmentOutsideFile { index: 0 })
        );
        // memsz < filesz
        let mut s = text();
        s.memsz = 10;
        assert_eq!(
            with(&[s, abi()], 0x40_0000),
            Err(ElfError::MemSizeBelowFileSize { index: 0 })
        );
        // Non-canonical, wrapping, straddling the hole.
        for vaddr in [
            0x0000_8000_0000_0000u64,
            0xffff_7fff_ffff_f000,
            0xffff_ffff_ffff_ff00,
        ] {
            let mut s = text();
            s.vaddr = vaddr;
            s.memsz = 0x1000;
            assert_eq!(
                with(&[s, abi()], vaddr),
                Err(ElfError::NonCanonicalSegment { index: 0 }),
                "{vaddr:#x}"
            );
        }
        let mut s = text();
        s.vaddr = 0x0000_7fff_ffff_f000;
        s.memsz = 0x2000;
        assert_eq!(
            with(&[s, abi()], 0x0000_7fff_ffff_f000),
            Err(ElfError::NonCanonicalSegment { index: 0 })
        );
        // Upper-half images are fine.
        let mut s = text();
        s.vaddr = 0xffff_ffff_8000_0000;
        assert!(with(&[s, abi()], 0xffff_ffff_8000_0000).is_ok());
        // Absurd sizes.
        let mut s = text();
        s.memsz = MAX_IMAGE_SPAN + 1;
        assert_eq!(with(&[s, abi()], 0x40_0000), Err(ElfError::TooLarge));
        let far = Seg::load(0x40_0000 + MAX_IMAGE_SPAN, PF_R, &[1], 1);
        assert_eq!(
            with(&[text(), far, abi()], 0x40_0000),
            Err(ElfError::TooLarge)
        );
        // Overlap (byte-level; sharing a page without overlapping is allowed).
        let o = Seg::load(0x40_0020, PF_R | PF_W, &[1; 8], 8);
        assert_eq!(
            with(&[text(), o, abi()], 0x40_0000),
            Err(ElfError::OverlappingSegments)
        );
        let adj = Seg::load(0x40_0040, PF_R | PF_W, &[1; 8], 8);
        assert!(with(&[text(), adj, abi()], 0x40_0000).is_ok());
        // Nothing loadable; empty PT_LOADs are skipped.
        let empty = Seg::load(0x40_0000, PF_R | PF_X, &[], 0);
        assert_eq!(
            with(&[empty.clone(), abi()], 0x40_0000),
            Err(ElfError::NoLoadableSegment)
        );
        assert!(with(&[empty, text(), abi()], 0x40_0000).is_ok());
        // Entry in a non-executable segment, or in .bss past the file bytes but inside memsz.
        let data = Seg::load(0x40_0000, PF_R | PF_W, &[0; 64], 64);
        assert_eq!(with(&[data, abi()], 0x40_0000), Err(ElfError::BadEntry));
        // Too many segments.
        let many: Vec<Seg> = (0..=MAX_SEGMENTS as u64)
            .map(|i| Seg::load(0x40_0000 + i * 0x1000, PF_R | PF_X, &[1], 1))
            .chain([abi()])
            .collect();
        assert_eq!(with(&many, 0x40_0000), Err(ElfError::TooManySegments));
        // Dynamic images.
        let mut dynamic = abi();
        dynamic.p_type = PT_DYNAMIC;
        assert_eq!(
            with(&[text(), abi(), dynamic], 0x40_0000),
            Err(ElfError::NotStatic)
        );
    }

    #[test]
    fn note_rules() {
        let t = text;
        // Missing ABI note: only a test note, or only foreign notes.
        assert_eq!(
            with(&[t(), Seg::note(test_note(1, "x"))], 0x40_0000),
            Err(ElfError::MissingAbiNote)
        );
        assert_eq!(with(&[t()], 0x40_0000), Err(ElfError::MissingAbiNote));
        let foreign = note(b"Xen\0", NT_KEEL_ABI_VERSION, &[0, 0, 1, 0]);
        assert_eq!(
            with(&[t(), Seg::note(foreign)], 0x40_0000),
            Err(ElfError::MissingAbiNote)
        );
        // Name without NUL accepted.
        let img = with(
            &[
                t(),
                Seg::note(note(b"Keel", NT_KEEL_ABI_VERSION, &[0, 0, 3, 0])),
            ],
            0x40_0000,
        )
        .unwrap();
        assert_eq!(img.abi_version(), AbiVersion { major: 0, minor: 3 });
        // Wrong descriptor size.
        let bad = note(b"Keel\0", NT_KEEL_ABI_VERSION, &[0, 0, 1]);
        assert_eq!(
            with(&[t(), Seg::note(bad)], 0x40_0000),
            Err(ElfError::MalformedNote)
        );
        let bad = note(b"Keel\0", NT_KEEL_TEST, &[0, 0]);
        let mut notes = abi_note(0, 1);
        notes.extend(bad);
        assert_eq!(
            with(&[t(), Seg::note(notes)], 0x40_0000),
            Err(ElfError::MalformedNote)
        );
        // The build note: optional, 4 bytes, once.
        let plain = Seg::note(abi_note(0, 1));
        assert_eq!(with(&[t(), plain], 0x40_0000).unwrap().abi_built(), None);
        let mut notes = abi_note(0, 1);
        notes.extend(note(b"Keel\0", NT_KEEL_ABI_BUILT, &[1, 0, 0, 0]));
        let img = with(&[t(), Seg::note(notes.clone())], 0x40_0000).unwrap();
        assert_eq!(img.abi_version(), AbiVersion::V0_1);
        assert_eq!(img.abi_built(), Some(AbiVersion::V1_0));
        notes.extend(note(b"Keel\0", NT_KEEL_ABI_BUILT, &[1, 0, 0, 0]));
        assert_eq!(
            with(&[t(), Seg::note(notes)], 0x40_0000),
            Err(ElfError::DuplicateNote)
        );
        let mut notes = abi_note(0, 1);
        notes.extend(note(b"Keel\0", NT_KEEL_ABI_BUILT, &[1, 0, 0]));
        assert_eq!(
            with(&[t(), Seg::note(notes)], 0x40_0000),
            Err(ElfError::MalformedNote)
        );
        // Duplicates.
        let mut notes = abi_note(0, 1);
        notes.extend(abi_note(0, 1));
        assert_eq!(
            with(&[t(), Seg::note(notes)], 0x40_0000),
            Err(ElfError::DuplicateNote)
        );
        // Truncated note: descsz runs past the segment.
        let mut notes = abi_note(0, 1);
        notes[4] = 200;
        assert_eq!(
            with(&[t(), Seg::note(notes)], 0x40_0000),
            Err(ElfError::MalformedNote)
        );
        // Trailing garbage shorter than a header.
        let mut notes = abi_note(0, 1);
        notes.extend([0u8; 4]);
        assert_eq!(
            with(&[t(), Seg::note(notes)], 0x40_0000),
            Err(ElfError::MalformedNote)
        );
        // Huge namesz does not overflow.
        let mut notes = abi_note(0, 1);
        notes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            with(&[t(), Seg::note(notes)], 0x40_0000),
            Err(ElfError::MalformedNote)
        );
        // A test note without NUL, unknown category: parsed, category undecoded.
        let mut notes = abi_note(0, 1);
        notes.extend(note(b"Keel\0", NT_KEEL_TEST, &[9, 0, 0, 0, b'a', b'b']));
        let bytes = build(0x40_0000, &[t(), Seg::note(notes)]);
        let img = GuestImage::parse(&bytes).unwrap();
        let tn = img.test().unwrap();
        assert_eq!((tn.category_raw, tn.category()), (9, None));
        assert_eq!(tn.title(&bytes), b"ab");
        assert_eq!(tn.title(&[]), b"");
        // 8-aligned note segments (GNU style) parse.
        let mut n = Seg::note(abi_note(0, 1));
        n.align = 8;
        assert!(with(&[t(), n], 0x40_0000).is_ok());
        // A note segment outside the file.
        let mut b = build(0x40_0000, &[t(), Seg::note(abi_note(0, 1))]);
        let ph = 64 + PHDR_SIZE;
        b[ph + 32..ph + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(GuestImage::parse(&b), Err(ElfError::MalformedNote));
    }

    #[test]
    fn display_is_one_line() {
        for e in [
            ElfError::Truncated,
            ElfError::MissingAbiNote,
            ElfError::SegmentOutsideFile { index: 3 },
            ElfError::TooLarge,
        ] {
            let s = std::format!("{e}");
            assert!(!s.is_empty() && !s.contains('\n'), "{s}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = GuestImage::parse(&bytes);
        }

        /// Random bytes behind a valid ELF header exercise the program-header paths.
        #[test]
        fn random_headers_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..1024),
            phnum in 0u16..8,
        ) {
            let mut b = typical()[..64].to_vec();
            b[56..58].copy_from_slice(&phnum.to_le_bytes());
            b.extend_from_slice(&tail);
            if let Ok(img) = GuestImage::parse(&b) {
                check_invariants(&img, &b);
            }
        }

        /// Mutations of a valid image: whatever is accepted obeys the invariants.
        #[test]
        fn mutated_images_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
            truncate in any::<prop::sample::Index>(),
            do_truncate in any::<bool>(),
        ) {
            let mut b = typical();
            for (i, v) in &edits {
                let i = i.index(b.len());
                b[i] = *v;
            }
            if do_truncate {
                b.truncate(truncate.index(b.len() + 1));
            }
            if let Ok(img) = GuestImage::parse(&b) {
                check_invariants(&img, &b);
            }
        }

        /// Mutating only the header/phdr region (where the interesting fields are).
        #[test]
        fn mutated_headers_never_panic(
            edits in proptest::collection::vec((0usize..64 + 3 * 56, any::<u8>()), 1..8),
        ) {
            let mut b = typical();
            for (i, v) in &edits {
                b[*i] = *v;
            }
            if let Ok(img) = GuestImage::parse(&b) {
                check_invariants(&img, &b);
            }
        }
    }

    fn check_invariants(img: &GuestImage, bytes: &[u8]) {
        let segs = img.segments();
        assert!(!segs.is_empty());
        for s in segs {
            assert!(s.filesz <= s.memsz && s.memsz > 0);
            assert!(s.offset + s.filesz <= bytes.len() as u64);
            assert!(s.vaddr.is_canonical() && GuestVirt(s.end() - 1).is_canonical());
        }
        assert!(segs.windows(2).all(|w| w[0].end() <= w[1].vaddr.0));
        assert!(segs
            .iter()
            .any(|s| s.executable() && s.contains(img.entry())));
        assert!(img.virt_end().0 - img.virt_base().0 <= MAX_IMAGE_SPAN + PAGE_SIZE);
    }
}
