//! The direct map: machine memory mapped 1:1 (`HostVirt == MachineAddr`).
//!
//! The boot code maps the first 4 GiB with 2 MiB pages. [`extend_direct_map`]
//! continues the same identity mapping up to the top of RAM once the frame
//! allocator exists (its page tables come from it). Everything the hypervisor
//! touches in machine memory goes through [`DirectMap`] (the `PhysMem`
//! implementation policy code is written against) or, before the allocator exists,
//! [`BootWindow`] (the boot information parser's view of memory).
//!
//! After boot, [`harden`] remaps the first 2 MiB and the image's 2 MiB pages with 4 KiB pages: page 0 becomes
//! unmapped (a null pointer faults), the image's code read-execute, its read-only
//! data read-only and no-execute, its data no-execute, and the page below the boot
//! stack unmapped (a stack overflow faults). The rest of the direct map stays
//! writable (and executable when the CPU has no NX), MMIO included; its caching
//! comes from the MTRRs, which firmware sets to UC for MMIO.

use crate::addr::{MachineAddr, Mfn, PAGE_SIZE};
use crate::boot::{BootMemory, MachineRange, MemRegion};
use crate::mem::frames::{self, FrameAllocator, FramesError};
use crate::mem::{word_in_map, FrameSource, PhysMem};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::structures::paging::{PageTable, PageTableFlags};
use x86_64::PhysAddr;

/// What the boot page tables map.
pub const BOOT_MAP_TOP: u64 = 4 << 30;
const LARGE_PAGE: u64 = 2 << 20;

/// The end of the direct map (exclusive). Grows once, in `extend_direct_map`.
static DIRECT_MAP_TOP: AtomicU64 = AtomicU64::new(BOOT_MAP_TOP);

/// The current end of the direct map.
pub fn direct_map_top() -> MachineAddr {
    MachineAddr::new(DIRECT_MAP_TOP.load(Ordering::Relaxed))
}

/// A pointer to machine address `ma` through the direct map, after checking that
/// `[ma, ma + len)` is mapped and that `ma` is not 0 (a null pointer in Rust's
/// eyes; frame 0 is never allocated, so a 0 here is a hypervisor bug).
pub(crate) fn direct_ptr(ma: u64, len: usize) -> *mut u8 {
    let end = ma.checked_add(len as u64);
    assert!(
        ma != 0 && end.is_some_and(|e| e <= DIRECT_MAP_TOP.load(Ordering::Relaxed)),
        "direct map: machine range {ma:#x}+{len:#x} is not mapped"
    );
    ma as *mut u8
}

/// `PhysMem` over the direct map.
///
/// Callers (policy code) only name frames the hypervisor owns or has checked a
/// domain owns; this type checks what it can check locally — the range is mapped
/// and stays within one frame, as the `PhysMem` contract says — and panics
/// (status 3) otherwise, because either would be a hypervisor bug.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectMap;

fn check_one_frame(at: MachineAddr, len: usize) {
    assert!(
        at.page_offset() + len as u64 <= PAGE_SIZE,
        "PhysMem access at {:#x}+{len:#x} crosses a frame",
        at.get()
    );
}

/// The direct-map pointer to a naturally aligned `T` at `at`, if the one-test
/// fast path applies ([`word_in_map`]: aligned, so within one frame; not null;
/// below the top of the direct map, which is 2 MiB-aligned).
#[inline(always)]
fn word_ptr<T>(at: MachineAddr) -> Option<*mut T> {
    let top = DIRECT_MAP_TOP.load(Ordering::Relaxed);
    word_in_map(at.get(), core::mem::size_of::<T>() as u64, top).then_some(at.get() as *mut T)
}

// The word accessors' slow paths (unaligned words), out of line so that the
// fast paths need no stack frame for the byte buffer and the panic message.
#[cold]
#[inline(never)]
fn read_slow<const N: usize>(at: MachineAddr) -> [u8; N] {
    let mut b = [0u8; N];
    DirectMap.read(at, &mut b);
    b
}

#[cold]
#[inline(never)]
fn write_slow(at: MachineAddr, data: &[u8]) {
    DirectMap.write(at, data);
}

impl PhysMem for DirectMap {
    // The word accessors: one load or store after one range test; anything the
    // test does not accept (an unaligned word) takes the checked byte path,
    // which panics on what would be a hypervisor bug.
    #[inline]
    fn read_u32(&self, at: MachineAddr) -> u32 {
        match word_ptr::<u32>(at) {
            // SAFETY: mapped, aligned and non-null (checked); the caller may read
            // this machine memory (the `PhysMem` contract); only CPU 0 works
            // (the others are parked), no DMA.
            Some(p) => u32::from_le(unsafe { p.read() }),
            None => u32::from_le_bytes(read_slow(at)),
        }
    }

    #[inline]
    fn read_u64(&self, at: MachineAddr) -> u64 {
        match word_ptr::<u64>(at) {
            // SAFETY: as in `read_u32`.
            Some(p) => u64::from_le(unsafe { p.read() }),
            None => u64::from_le_bytes(read_slow(at)),
        }
    }

    #[inline]
    fn write_u32(&mut self, at: MachineAddr, v: u32) {
        match word_ptr::<u32>(at) {
            // SAFETY: as in `read_u32`; the caller owns the frame, so no Rust
            // object of the hypervisor lives there.
            Some(p) => unsafe { p.write(v.to_le()) },
            None => write_slow(at, &v.to_le_bytes()),
        }
    }

    #[inline]
    fn write_u64(&mut self, at: MachineAddr, v: u64) {
        match word_ptr::<u64>(at) {
            // SAFETY: as in `write_u32`.
            Some(p) => unsafe { p.write(v.to_le()) },
            None => write_slow(at, &v.to_le_bytes()),
        }
    }

    fn cmpxchg_u32(&mut self, at: MachineAddr, old: u32, new: u32) -> u32 {
        let Some(p) = word_ptr::<u32>(at) else {
            // Unaligned: no atomic instruction covers it, and no caller names one.
            panic!("cmpxchg_u32 at an unaligned {:#x}", at.get());
        };
        // SAFETY: as in `read_u32`; the word is naturally aligned, so the
        // atomic view is sound, and a guest may share the frame (it is
        // ordinary memory), which is why the access is a locked instruction.
        let a = unsafe { core::sync::atomic::AtomicU32::from_ptr(p) };
        match a.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(v) | Err(v) => v,
        }
    }

    fn load_u64(&self, at: MachineAddr) -> u64 {
        let Some(p) = word_ptr::<u64>(at) else {
            panic!("load_u64 at an unaligned {:#x}", at.get());
        };
        // SAFETY: as in `cmpxchg_u64`. Relaxed: the value is only a guess that
        // the exchange confirms (on x86 this is the plain load anyway).
        let a = unsafe { core::sync::atomic::AtomicU64::from_ptr(p) };
        a.load(Ordering::Relaxed)
    }

    fn cmpxchg_u64(&mut self, at: MachineAddr, old: u64, new: u64) -> u64 {
        let Some(p) = word_ptr::<u64>(at) else {
            panic!("cmpxchg_u64 at an unaligned {:#x}", at.get());
        };
        // SAFETY: as in `cmpxchg_u32` (a frame-table word: hypervisor memory
        // that several CPUs update, never the guest).
        let a = unsafe { core::sync::atomic::AtomicU64::from_ptr(p) };
        if RACY_CMPXCHG {
            return racy_exchange(a, old, new);
        }
        match a.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(v) | Err(v) => v,
        }
    }

    fn fetch_and_u32(&mut self, at: MachineAddr, bits: u32) -> u32 {
        let Some(p) = word_ptr::<u32>(at) else {
            panic!("fetch_and_u32 at an unaligned {:#x}", at.get());
        };
        // SAFETY: as in `cmpxchg_u32`.
        let a = unsafe { core::sync::atomic::AtomicU32::from_ptr(p) };
        a.fetch_and(bits, Ordering::SeqCst)
    }

    fn test_and_set_bit_u64(&mut self, at: MachineAddr, bit: u32) -> bool {
        let Some(p) = word_ptr::<u64>(at) else {
            panic!("test_and_set_bit_u64 at an unaligned {:#x}", at.get());
        };
        // SAFETY: as in `cmpxchg_u32` (a word of a page the guest shares:
        // its other vCPUs change it with locked instructions meanwhile).
        let a = unsafe { core::sync::atomic::AtomicU64::from_ptr(p) };
        let m = 1u64 << (bit % 64);
        a.fetch_or(m, Ordering::SeqCst) & m != 0
    }

    fn test_and_clear_bit_u64(&mut self, at: MachineAddr, bit: u32) -> bool {
        let Some(p) = word_ptr::<u64>(at) else {
            panic!("test_and_clear_bit_u64 at an unaligned {:#x}", at.get());
        };
        // SAFETY: as in `test_and_set_bit_u64`.
        let a = unsafe { core::sync::atomic::AtomicU64::from_ptr(p) };
        let m = 1u64 << (bit % 64);
        a.fetch_and(!m, Ordering::SeqCst) & m != 0
    }

    fn read_with(&self, at: MachineAddr, len: usize, f: &mut dyn FnMut(&[u8])) {
        check_one_frame(at, len);
        let src = direct_ptr(at.get(), len);
        // SAFETY: the range is mapped (checked) and is machine memory the caller
        // may read; nothing writes it while `f` runs (only CPU 0 works, the
        // others are parked; no DMA; the guest is not running during an exit), and the slice does not outlive `f`.
        f(unsafe { core::slice::from_raw_parts(src, len) });
    }

    fn read(&self, at: MachineAddr, out: &mut [u8]) {
        check_one_frame(at, out.len());
        let src = direct_ptr(at.get(), out.len());
        // SAFETY: the range is mapped (checked) and is machine memory the caller
        // may read; `out` is a distinct Rust buffer. Other CPUs/devices writing the
        // same memory concurrently is not possible yet (only CPU 0 works, the
        // others are parked; no DMA).
        unsafe { core::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
    }

    fn copy(&mut self, src: MachineAddr, dst: MachineAddr, len: usize) {
        check_one_frame(src, len);
        check_one_frame(dst, len);
        let (from, to) = (direct_ptr(src.get(), len), direct_ptr(dst.get(), len));
        // SAFETY: both ranges are mapped (checked) machine memory the caller
        // may read and write (the `PhysMem` contract: it owns or was granted
        // the frames, so no Rust object of the hypervisor lives there); they
        // may overlap, which `ptr::copy` allows. Only CPU 0 works, no DMA.
        unsafe { core::ptr::copy(from, to, len) };
    }

    fn write(&mut self, at: MachineAddr, data: &[u8]) {
        check_one_frame(at, data.len());
        let dst = direct_ptr(at.get(), data.len());
        // SAFETY: as for `read`; the caller owns the frame (it came from the frame
        // allocator), so no Rust object of the hypervisor lives there.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
    }
}

/// The boot information parser's view of memory: the first 4 GiB, where multiboot
/// loaders put everything they hand over.
#[derive(Clone, Copy, Debug, Default)]
pub struct BootWindow;

impl BootMemory for BootWindow {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let end = addr.checked_add(len as u64)?;
        if addr == 0 || end > BOOT_MAP_TOP {
            return None;
        }
        // SAFETY: the range is identity-mapped by the boot page tables, and the
        // loader's structures are not written while we parse them (nothing else
        // runs). The slice is only read.
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
    }
}

/// The bytes of a boot module (a guest image), read-only, for the rest of the run.
///
/// Module ranges are reserved from the frame allocator, so nothing ever writes
/// them: a `'static` shared slice is sound. `None` if the range is empty or outside
/// the direct map.
pub fn module_bytes(m: &crate::boot::Module) -> Option<&'static [u8]> {
    let (start, len) = (m.range.start.get(), m.range.len());
    let end = start.checked_add(len)?;
    if start == 0 || len == 0 || end > DIRECT_MAP_TOP.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: mapped (checked), reserved from the frame allocator (never written),
    // loaded by the boot loader before we started.
    Some(unsafe { core::slice::from_raw_parts(start as *const u8, len as usize) })
}

static BITMAP_TAKEN: AtomicBool = AtomicBool::new(false);

/// Build the frame allocator for this memory map: find RAM below 4 GiB for its
/// bitmap (clear of `reserved`), reserve that too, and construct it. Returns the
/// allocator and where its bitmap lives. Only the first call can succeed (the
/// `'static` bitmap must never be aliased); later calls return `AlreadyBuilt`.
pub fn build_frame_allocator(
    regions: &[MemRegion],
    reserved: &[MachineRange],
) -> Result<(FrameAllocator<'static>, MachineRange), FramesError> {
    if BITMAP_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(FramesError::AlreadyBuilt);
    }
    let words = frames::bitmap_words(regions);
    let bytes = (words * 8) as u64;
    let home = frames::find_bitmap_home(regions, reserved, bytes, BOOT_MAP_TOP)
        .ok_or(FramesError::NoUsableMemory)?;
    // SAFETY: `home` is usable RAM below 4 GiB (identity-mapped), clear of the
    // image, boot data, modules and firmware regions; it is handed out once
    // (BITMAP_TAKEN) and reserved in the allocator below, so nothing else will
    // ever alias it. u64 alignment: `home` is page-aligned.
    let storage: &'static mut [u64] = unsafe {
        core::slice::from_raw_parts_mut(direct_ptr(home.start.get(), bytes as usize).cast(), words)
    };
    let mut all_reserved = [MachineRange::default(); frames::MAX_RESERVED / 2];
    let n = reserved.len().min(all_reserved.len() - 1);
    all_reserved[..n].copy_from_slice(&reserved[..n]);
    all_reserved[n] = home;
    let fa = FrameAllocator::new(storage, regions, &all_reserved[..=n])?;
    Ok((fa, home))
}

/// Why the direct map could not be extended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No frame for a page table.
    OutOfFrames,
    /// A page-table frame came from memory not yet mapped (the allocator hands out
    /// low frames first, so this means there is no free RAM below 4 GiB).
    FrameNotMapped(Mfn),
}

fn new_table(frames: &mut impl FrameSource) -> Result<Mfn, MapError> {
    let f = frames.alloc_frame().ok_or(MapError::OutOfFrames)?;
    if f.addr().get() + PAGE_SIZE > DIRECT_MAP_TOP.load(Ordering::Relaxed) {
        frames.free_frame(f);
        return Err(MapError::FrameNotMapped(f));
    }
    DirectMap.zero_frame(f);
    Ok(f)
}

/// The page table in frame `f`, through the direct map.
///
/// # Safety
/// `f` must be a page-table frame of the live hierarchy (or a fresh one), mapped,
/// and not otherwise referenced for the lifetime of the returned reference.
unsafe fn table(f: Mfn) -> &'static mut PageTable {
    // SAFETY: delegated to the caller.
    unsafe { &mut *direct_ptr(f.addr().get(), PAGE_SIZE as usize).cast::<PageTable>() }
}

/// Extend the identity map from 4 GiB to `top` (rounded up to 2 MiB), taking page
/// tables from `frames`. Returns how many bytes were added.
pub fn extend_direct_map(top: MachineAddr, frames: &mut impl FrameSource) -> Result<u64, MapError> {
    let start = DIRECT_MAP_TOP.load(Ordering::Relaxed);
    let end = top.get().div_ceil(LARGE_PAGE) * LARGE_PAGE;
    if end <= start {
        return Ok(0);
    }
    let table_flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    let pml4_frame = Mfn::new(super::cpu::read_cr3() >> 12 & ((1 << 40) - 1));
    let mut addr = start;
    while addr < end {
        let i4 = (addr >> 39 & 0x1ff) as usize;
        let i3 = (addr >> 30 & 0x1ff) as usize;
        let i2 = (addr >> 21 & 0x1ff) as usize;
        // SAFETY: the PML4 is the live one (CR3); the other CPUs are not started
        // yet, and nothing else holds a reference to page tables while the
        // direct map is being extended.
        let pml4 = unsafe { table(pml4_frame) };
        if pml4[i4].is_unused() {
            let t = new_table(frames)?;
            pml4[i4].set_addr(PhysAddr::new(t.addr().get()), table_flags);
        }
        let pdpt_frame = Mfn::new(pml4[i4].addr().as_u64() >> 12);
        // SAFETY: as above; the PDPT is part of the live hierarchy.
        let pdpt = unsafe { table(pdpt_frame) };
        if pdpt[i3].is_unused() {
            let t = new_table(frames)?;
            pdpt[i3].set_addr(PhysAddr::new(t.addr().get()), table_flags);
        }
        let pd_frame = Mfn::new(pdpt[i3].addr().as_u64() >> 12);
        // SAFETY: as above.
        let pd = unsafe { table(pd_frame) };
        // Identity: the 2 MiB page at `addr` maps machine address `addr`. Entries
        // go from not-present to present, which needs no TLB flush.
        pd[i2].set_addr(PhysAddr::new(addr), table_flags | PageTableFlags::HUGE_PAGE);
        addr += LARGE_PAGE;
    }
    DIRECT_MAP_TOP.store(end, Ordering::Relaxed);
    // Touch the last word of RAM through the new mapping: a mistake in the tables
    // above faults here, at boot, with a register dump, not later in a domain.
    core::hint::black_box(DirectMap.read_u64(MachineAddr::new((top.get() - 8) & !7)));
    Ok(end - start)
}

const EFER_NXE: u64 = super::bits::efer::NXE;

/// The most 2 MiB pages the image may span (from 2 MiB): its statics (the
/// per-CPU areas, the domain and grant tables) make it larger than one.
const IMAGE_LARGE_PAGES: usize = 3;

/// Remap `[0, 2 MiB)` and the image's 2 MiB pages with 4 KiB pages and
/// protections (see the module comment). Call after everything that reads page
/// 0 (the BIOS RSDP scan reads the EBDA pointer at 0x40E). The image must start
/// at 2 MiB (link.ld puts it there) and end within [`IMAGE_LARGE_PAGES`] large
/// pages (checked here).
pub fn harden(frames: &mut impl FrameSource) -> Result<(), MapError> {
    let img = super::boot::image_layout();
    let large_pages = img.end.div_ceil(LARGE_PAGE) as usize - 1;
    assert!(
        img.start == LARGE_PAGE && large_pages <= IMAGE_LARGE_PAGES,
        "the image must start at 2 MiB and end below {} MiB for harden()",
        (IMAGE_LARGE_PAGES + 1) * 2
    );
    let nx = if super::cpu::rdmsr(super::cpu::IA32_EFER) & EFER_NXE != 0 {
        PageTableFlags::NO_EXECUTE
    } else {
        PageTableFlags::empty()
    };
    let p = PageTableFlags::PRESENT;
    let w = PageTableFlags::WRITABLE;

    let low = new_table(frames)?;
    // SAFETY: the frame is fresh (zeroed, not yet in the hierarchy) and mapped.
    let low_t = unsafe { table(low) };
    for i in 1..512u64 {
        low_t[i as usize].set_addr(PhysAddr::new(i * PAGE_SIZE), p | w | nx);
    }
    let mut image = [Mfn::new(0); IMAGE_LARGE_PAGES];
    for (j, slot) in image.iter_mut().enumerate().take(large_pages) {
        let t = new_table(frames)?;
        // SAFETY: as above.
        let image_t = unsafe { table(t) };
        let base = LARGE_PAGE * (j as u64 + 1);
        for i in 0..512u64 {
            let a = base + i * PAGE_SIZE;
            let flags = if a == img.stack_guard {
                continue;
            } else if a >= img.start && a < img.text_end {
                p
            } else if a >= img.text_end && a < img.rodata_end {
                p | nx
            } else {
                p | w | nx
            };
            image_t[i as usize].set_addr(PhysAddr::new(a), flags);
        }
        *slot = t;
    }

    let pml4_frame = Mfn::new(super::cpu::read_cr3() >> 12 & ((1 << 40) - 1));
    // SAFETY: the live hierarchy; the other CPUs are not started yet; no other
    // reference to the tables.
    let pml4 = unsafe { table(pml4_frame) };
    let pdpt_frame = Mfn::new(pml4[0].addr().as_u64() >> 12);
    // SAFETY: as above.
    let pdpt = unsafe { table(pdpt_frame) };
    let pd_frame = Mfn::new(pdpt[0].addr().as_u64() >> 12);
    // SAFETY: as above.
    let pd = unsafe { table(pd_frame) };
    // Each new table maps exactly what the 2 MiB page it replaces mapped (minus the
    // pages made absent), so the code doing the switch stays mapped throughout.
    pd[0].set_addr(PhysAddr::new(low.addr().get()), p | w);
    for (j, t) in image.iter().enumerate().take(large_pages) {
        pd[j + 1].set_addr(PhysAddr::new(t.addr().get()), p | w);
    }
    // Reload CR3: drops every TLB entry (no global pages are used).
    // SAFETY: same PML4; only the permissions and page sizes above changed.
    unsafe {
        core::arch::asm!("mov cr3, {}", in(reg) super::cpu::read_cr3(), options(nostack, preserves_flags))
    };
    Ok(())
}

/// Built with `KEEL_RACY_CMPXCHG` in the environment, the frame table's
/// compare-and-exchange ([`DirectMap`]'s `cmpxchg_u64`) becomes a load, a
/// pause and a store: the update that is *not* atomic, for showing that the
/// guest race tests catch it (`grant_race_2cpu`; the host tests' switch of
/// the same name: `paging/tests_smp.rs`). Never in a build anyone runs for
/// real: the boot log says so loudly (`RACY_CMPXCHG`, `main.rs`).
pub const RACY_CMPXCHG: bool = option_env!("KEEL_RACY_CMPXCHG").is_some();

/// The racy exchange: decide on a plain load, wait, store without looking
/// again, so that another CPU's exchange in between is lost.
#[cold]
fn racy_exchange(a: &core::sync::atomic::AtomicU64, old: u64, new: u64) -> u64 {
    let found = a.load(Ordering::Relaxed);
    if found == old {
        for _ in 0..64 {
            core::hint::spin_loop();
        }
        a.store(new, Ordering::Relaxed);
    }
    found
}
