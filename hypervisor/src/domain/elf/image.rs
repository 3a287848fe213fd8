//! A validated guest image and its parts. Only `parse.rs` builds one, so every
//! field obeys the rules in `domain::elf`'s documentation.

use crate::addr::{GuestVirt, PAGE_SIZE};
use keel_abi::note::TestCategory;
use keel_abi::version::AbiVersion;

use super::MAX_SEGMENTS;

bitflags::bitflags! {
    /// A segment's permissions (`p_flags`). Bits other than these (the OS- and
    /// processor-specific masks) are kept as they are and mean nothing to Keel.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SegmentFlags: u32 {
        /// Executable (`PF_X`).
        const X = 1;
        /// Writable (`PF_W`).
        const W = 2;
        /// Readable (`PF_R`).
        const R = 4;
        const _ = !0;
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
    /// Its permissions.
    pub flags: SegmentFlags,
}

impl Segment {
    /// One past the last byte (cannot overflow: checked at parse time).
    pub const fn end(&self) -> u64 {
        self.vaddr.get() + self.memsz
    }
    /// Whether the segment is writable (`PF_W`).
    pub const fn writable(&self) -> bool {
        self.flags.contains(SegmentFlags::W)
    }
    /// Whether the segment is executable (`PF_X`).
    pub const fn executable(&self) -> bool {
        self.flags.contains(SegmentFlags::X)
    }
    /// Whether `va` lies in `vaddr .. vaddr + memsz`.
    pub const fn contains(&self, va: GuestVirt) -> bool {
        va.get() >= self.vaddr.get() && va.get() < self.end()
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
/// obeys the rules in the [`elf`](super) module's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestImage {
    pub(super) segments: [Segment; MAX_SEGMENTS],
    pub(super) nr_segments: usize,
    pub(super) entry: GuestVirt,
    pub(super) abi_version: AbiVersion,
    pub(super) abi_built: Option<AbiVersion>,
    pub(super) test: Option<TestNote>,
}

impl GuestImage {
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
        let lo = self.segments().first().map_or(0, |s| s.vaddr.get());
        GuestVirt::new(lo & !(PAGE_SIZE - 1))
    }
    /// One past the last loadable byte, rounded up to a page.
    pub fn virt_end(&self) -> GuestVirt {
        let hi = self.segments().last().map_or(0, |s| s.end());
        // Cannot overflow: `hi` is canonical, so at most 2^64 - 2^47 (upper half)
        // and the rounding adds less than a page.
        GuestVirt::new(hi.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1))
    }
    /// Number of pages from [`GuestImage::virt_base`] to [`GuestImage::virt_end`].
    pub fn nr_image_pages(&self) -> u64 {
        (self.virt_end().get().saturating_sub(self.virt_base().get())) / PAGE_SIZE
    }
}
