//! The machine frame allocator.
//!
//! Every frame the hypervisor hands out (to its own page tables, the VMXON region
//! and VMCS, a domain's memory) comes from here, and the one property that matters
//! is negative: **it never hands out a frame that holds something else** — the
//! hypervisor image, the boot information, the modules (the guest image is still to
//! be read), the first MiB (real-mode IVT, BIOS data, EBDA, option ROMs, the BIOS),
//! or anything the firmware's memory map does not call usable RAM (ACPI tables and
//! NVS, MMIO, reserved, bad memory).
//!
//! The design is a bitmap over the span of usable RAM (bit set = frame free). The
//! bitmap's storage is given to [`FrameAllocator::new`] by the caller: on hardware a
//! range of RAM chosen by [`find_bitmap_home`] (and itself reserved), in tests a
//! `Vec`. No heap, and no fixed limit on RAM size.
//!
//! The allocator also keeps the (page-rounded) usable and reserved ranges, so that
//! [`FrameSource::free_frame`] can refuse a frame that was never allocatable: a
//! buggy free of a reserved frame would otherwise put it into circulation. Refusals
//! are counted and logged, not fatal (the caller cannot do anything better).
//!
//! Allocation is lowest-address-first. That keeps early allocations (the direct map's
//! page tables, VMX structures) below 4 GiB, where the boot page tables already map
//! everything.

use crate::addr::{Mfn, PAGE_SIZE};
use crate::boot::{MachineRange, MemRegion, RegionKind};
use crate::mem::FrameSource;
use core::fmt;

/// The end of the first MiB: never allocated (BIOS data, EBDA, ROMs, real-mode
/// structures the firmware may still reference, and the area ACPI's RSDP scan reads).
pub const LOW_MEMORY_END: u64 = 0x10_0000;

/// How many usable ranges the allocator remembers (after merging).
pub const MAX_USABLE: usize = 128;
/// How many reserved ranges the allocator remembers (memory-map holes, the image,
/// boot data, modules, the bitmap itself...).
pub const MAX_RESERVED: usize = 256;

fn align_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}
fn align_up(v: u64) -> u64 {
    v.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// A half-open range of frame numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FrameRange {
    first: u64,
    end: u64,
}

impl FrameRange {
    /// The whole frames inside `r` (rounded inward): for usable memory, a partial
    /// frame is not usable.
    fn inward(r: &MachineRange) -> Self {
        FrameRange {
            first: align_up(r.start.get()) / PAGE_SIZE,
            end: align_down(r.end.get()) / PAGE_SIZE,
        }
    }
    /// Every frame `r` touches (rounded outward): for reserved memory, a partial
    /// frame is reserved.
    fn outward(r: &MachineRange) -> Self {
        FrameRange {
            first: align_down(r.start.get()) / PAGE_SIZE,
            end: align_up(r.end.get()) / PAGE_SIZE,
        }
    }
    fn contains(&self, f: u64) -> bool {
        self.first <= f && f < self.end
    }
    fn is_empty(&self) -> bool {
        self.end <= self.first
    }
}

/// Why the allocator could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramesError {
    /// The memory map has no usable RAM above the first MiB.
    NoUsableMemory,
    /// The bitmap storage is smaller than [`bitmap_words`] says it must be.
    StorageTooSmall {
        /// Words needed.
        needed: usize,
        /// Words given.
        given: usize,
    },
    /// More usable or reserved ranges than the fixed capacity.
    TooManyRanges,
    /// The hardware allocator was already built (its bitmap storage is unique).
    AlreadyBuilt,
}

impl fmt::Display for FramesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramesError::NoUsableMemory => write!(f, "no usable RAM above 1 MiB in the memory map"),
            FramesError::StorageTooSmall { needed, given } => {
                write!(f, "frame bitmap needs {needed} words, got {given}")
            }
            FramesError::TooManyRanges => {
                write!(f, "too many memory ranges for the frame allocator")
            }
            FramesError::AlreadyBuilt => write!(f, "the frame allocator was already built"),
        }
    }
}

/// The frames the bitmap must cover: from the lowest usable frame above the first
/// MiB to the end of the highest usable frame.
fn usable_span(regions: &[MemRegion]) -> Option<FrameRange> {
    let mut span: Option<FrameRange> = None;
    for r in regions.iter().filter(|r| r.kind == RegionKind::Usable) {
        let mut fr = FrameRange::inward(&r.range);
        fr.first = fr.first.max(LOW_MEMORY_END / PAGE_SIZE);
        if fr.is_empty() {
            continue;
        }
        span = Some(match span {
            None => fr,
            Some(s) => FrameRange {
                first: s.first.min(fr.first),
                end: s.end.max(fr.end),
            },
        });
    }
    span
}

/// How many `u64` words of bitmap storage [`FrameAllocator::new`] needs for this
/// memory map (0 if it has no usable memory).
pub fn bitmap_words(regions: &[MemRegion]) -> usize {
    match usable_span(regions) {
        Some(s) => (s.end - s.first).div_ceil(64) as usize,
        None => 0,
    }
}

/// Find a home for `bytes` of bitmap storage: a page-aligned range of usable RAM
/// entirely below `below` (on hardware: what the boot page tables map), above the
/// first MiB, that overlaps no reserved range and no non-usable region.
pub fn find_bitmap_home(
    regions: &[MemRegion],
    reserved: &[MachineRange],
    bytes: u64,
    below: u64,
) -> Option<MachineRange> {
    let size = align_up(bytes.max(1));
    for r in regions.iter().filter(|r| r.kind == RegionKind::Usable) {
        let fr = FrameRange::inward(&r.range);
        let mut start = (fr.first * PAGE_SIZE).max(LOW_MEMORY_END);
        let end = (fr.end * PAGE_SIZE).min(below);
        // Slide a window through the region, jumping past whatever it hits.
        while start.checked_add(size).is_some_and(|e| e <= end) {
            let cand = MachineRange::from_len(start, size);
            match reserved
                .iter()
                .chain(
                    regions
                        .iter()
                        .filter(|r| r.kind != RegionKind::Usable)
                        .map(|r| &r.range),
                )
                .filter(|r| r.overlaps(&cand))
                .map(|r| align_up(r.end.get()))
                .max()
            {
                None => return Some(cand),
                Some(next) => start = next.max(start + PAGE_SIZE),
            }
        }
    }
    None
}

/// The frame allocator (see the module comment).
pub struct FrameAllocator<'a> {
    /// Bit `i` set: frame `base + i` is free.
    bitmap: &'a mut [u64],
    base: u64,
    nframes: u64,
    free: u64,
    /// Search for single frames from here (all frames below are known in use).
    hint: u64,
    usable: [FrameRange; MAX_USABLE],
    n_usable: usize,
    reserved: [FrameRange; MAX_RESERVED],
    n_reserved: usize,
    rejected_frees: u64,
}

impl<'a> FrameAllocator<'a> {
    /// Build the allocator: every frame of usable RAM in `regions` is free, except
    /// the first MiB, every frame touched by a `reserved` range, and every frame
    /// touched by a non-usable region of the map (maps may overlap; reserved wins).
    ///
    /// `storage` must have at least [`bitmap_words`]`(regions)` words; if it lives in
    /// RAM, its range must be among `reserved`.
    pub fn new(
        storage: &'a mut [u64],
        regions: &[MemRegion],
        reserved: &[MachineRange],
    ) -> Result<Self, FramesError> {
        let span = usable_span(regions).ok_or(FramesError::NoUsableMemory)?;
        let needed = (span.end - span.first).div_ceil(64) as usize;
        if storage.len() < needed {
            return Err(FramesError::StorageTooSmall {
                needed,
                given: storage.len(),
            });
        }
        let bitmap = &mut storage[..needed];
        bitmap.fill(0);
        let mut fa = FrameAllocator {
            bitmap,
            base: span.first,
            nframes: span.end - span.first,
            free: 0,
            hint: 0,
            usable: [FrameRange::default(); MAX_USABLE],
            n_usable: 0,
            reserved: [FrameRange::default(); MAX_RESERVED],
            n_reserved: 0,
            rejected_frees: 0,
        };
        // The first MiB is reserved like everything else (one uniform check).
        fa.push_reserved(FrameRange {
            first: 0,
            end: LOW_MEMORY_END / PAGE_SIZE,
        })?;
        for r in regions {
            if r.kind == RegionKind::Usable {
                let fr = FrameRange::inward(&r.range);
                if !fr.is_empty() {
                    if fa.n_usable == MAX_USABLE {
                        return Err(FramesError::TooManyRanges);
                    }
                    fa.usable[fa.n_usable] = fr;
                    fa.n_usable += 1;
                }
            } else {
                fa.push_reserved(FrameRange::outward(&r.range))?;
            }
        }
        for r in reserved {
            fa.push_reserved(FrameRange::outward(r))?;
        }
        // Mark usable frames free, then clear every reserved frame: word-at-a-time
        // work, so building is fast even for large memory under an emulator.
        for i in 0..fa.n_usable {
            let u = fa.usable[i];
            fa.set_range(u.first, u.end, true);
        }
        for i in 0..fa.n_reserved {
            let r = fa.reserved[i];
            fa.set_range(r.first, r.end, false);
        }
        fa.free = fa.bitmap.iter().map(|w| u64::from(w.count_ones())).sum();
        Ok(fa)
    }

    fn push_reserved(&mut self, fr: FrameRange) -> Result<(), FramesError> {
        if fr.is_empty() {
            return Ok(());
        }
        if self.n_reserved == MAX_RESERVED {
            return Err(FramesError::TooManyRanges);
        }
        self.reserved[self.n_reserved] = fr;
        self.n_reserved += 1;
        Ok(())
    }

    /// Whether `f` may ever be handed out: inside usable RAM and outside every
    /// reserved range.
    pub fn is_allocatable(&self, f: Mfn) -> bool {
        let f = f.get();
        f >= self.base
            && f - self.base < self.nframes
            && self.usable[..self.n_usable].iter().any(|u| u.contains(f))
            && !self.reserved[..self.n_reserved]
                .iter()
                .any(|r| r.contains(f))
    }

    /// Whether `f` is currently free.
    pub fn is_free(&self, f: Mfn) -> bool {
        f.get() >= self.base && f.get() - self.base < self.nframes && self.bit(f.get())
    }

    /// Frees refused because the frame was never allocatable or was already free.
    pub fn rejected_frees(&self) -> u64 {
        self.rejected_frees
    }

    /// The frames the bitmap covers: `[first, end)`.
    pub fn span(&self) -> (Mfn, Mfn) {
        (Mfn::new(self.base), Mfn::new(self.base + self.nframes))
    }

    /// Set or clear the bits of frames `[first, end)`, clipped to the span.
    fn set_range(&mut self, first: u64, end: u64, free: bool) {
        let lo = first.max(self.base) - self.base;
        let hi = end.min(self.base + self.nframes).saturating_sub(self.base);
        let mut i = lo;
        while i < hi {
            if i.is_multiple_of(64) && hi - i >= 64 {
                self.bitmap[(i / 64) as usize] = if free { u64::MAX } else { 0 };
                i += 64;
            } else {
                self.set_bit(self.base + i, free);
                i += 1;
            }
        }
    }

    fn bit(&self, f: u64) -> bool {
        let i = f - self.base;
        self.bitmap[(i / 64) as usize] & (1 << (i % 64)) != 0
    }
    fn set_bit(&mut self, f: u64, free: bool) {
        let i = f - self.base;
        let w = &mut self.bitmap[(i / 64) as usize];
        if free {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
}

impl FrameSource for FrameAllocator<'_> {
    fn alloc_frame(&mut self) -> Option<Mfn> {
        let start_word = (self.hint / 64) as usize;
        for wi in start_word..self.bitmap.len() {
            let w = self.bitmap[wi];
            if w != 0 {
                let i = wi as u64 * 64 + u64::from(w.trailing_zeros());
                let f = self.base + i;
                self.set_bit(f, false);
                self.free -= 1;
                self.hint = i;
                return Some(Mfn::new(f));
            }
        }
        self.hint = self.nframes;
        None
    }

    fn alloc_contiguous(&mut self, n: u64) -> Option<Mfn> {
        if n == 0 || n > self.free {
            return None;
        }
        if n == 1 {
            return self.alloc_frame();
        }
        // First fit: scan for a run of `n` free bits, skipping all-zero words.
        let mut run_start = 0u64;
        let mut run_len = 0u64;
        let mut i = self.hint - self.hint % 64;
        while i < self.nframes {
            if i.is_multiple_of(64) && self.bitmap[(i / 64) as usize] == 0 {
                run_len = 0;
                i += 64;
                continue;
            }
            if self.bit(self.base + i) {
                if run_len == 0 {
                    run_start = i;
                }
                run_len += 1;
                if run_len == n {
                    for f in run_start..run_start + n {
                        self.set_bit(self.base + f, false);
                    }
                    self.free -= n;
                    return Some(Mfn::new(self.base + run_start));
                }
            } else {
                run_len = 0;
            }
            i += 1;
        }
        None
    }

    fn free_frame(&mut self, f: Mfn) {
        if !self.is_allocatable(f) || self.bit(f.get()) {
            // Never put a reserved frame into circulation; never count a frame twice.
            self.rejected_frees += 1;
            log::warn!(
                "frames: refused to free frame {:#x} (reserved or already free)",
                f.get()
            );
            return;
        }
        self.set_bit(f.get(), true);
        self.free += 1;
        self.hint = self.hint.min(f.get() - self.base);
    }

    fn free_count(&self) -> u64 {
        self.free
    }
}

#[cfg(test)]
mod tests;
