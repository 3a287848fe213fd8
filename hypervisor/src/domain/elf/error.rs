//! Why an image was refused.

use super::{MAX_IMAGE_SPAN, MAX_SEGMENTS};

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
