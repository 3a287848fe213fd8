//! # Guest memory: every hypercall argument goes through here
//!
//! A hypercall argument is a guest-virtual address, and under direct paging the
//! only correct meaning of a guest-virtual address is the one the guest's *current*
//! page tables give it. So the hypervisor never dereferences guest pointers: it
//! walks the tables from the domain's base pointer ([`Domain::base`], the one
//! record of the root: what the vCPU's CR3 holds) exactly as the CPU would, with
//! the guest's permissions, and then applies its own rules on top:
//!
//! 1. the address is canonical and `va + len` does not wrap;
//! 2. every table frame of the walk is owned by the domain (it is checked *before*
//!    it is read, so a guest cannot make the hypervisor read a foreign frame or
//!    MMIO by pointing CR3 or an entry at it);
//! 3. every entry is present, has no reserved bit set (NX without EFER.NXE, PS in
//!    an L4 entry) and no PS in L3/L2 (Keel has no superpages);
//! 4. for writes, RW is set at every level (the guest runs with CR0.WP=1, so
//!    that is what binds its own supervisor writes); for an access made for
//!    guest user mode (CPL3, [`crate::privilege`]), U/S is set at every level;
//! 5. the final frame is owned by the domain, and for writes it is not a
//!    page-table frame ([`FrameKind`]) but a frame whose page type is `Writable`
//!    with a non-zero type count ([`crate::paging`]): a hypercall must never become a
//!    way around the read-only mapping of page tables (Xen's `__copy_to_guest`
//!    gets the same guarantee from running on the guest's tables with Xen's own
//!    page types).
//!
//! Anything else is `-EFAULT`. A copy spanning pages is done page by page; all
//! pages are checked before the first byte is written, so a failed copy to the
//! guest writes nothing. Accessed/dirty bits are not set (the builder presets
//! them on its own tables).

use crate::addr::{GuestVirt, MachineAddr, Mfn, PAGE_SIZE};
use crate::domain::{Domain, FrameKind, PageType};
use crate::mem::PhysMem;
use crate::paging::entry::entry_addr;
pub use crate::paging::read_cache::ReadCache;
use crate::paging::walk::{bytes_to_page_end, walk, Walk};
use crate::privilege::Mode;
use keel_abi::Errno;

/// The kind of access a copy makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The hypervisor reads guest memory (`copy_from_guest`).
    Read,
    /// The hypervisor writes guest memory (`copy_to_guest`).
    Write,
}

/// Translate `va` for a supervisor-mode `access` (a hypercall's, which only
/// the guest kernel may make) under the rules in the module documentation.
pub fn translate<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &M,
    va: GuestVirt,
    access: Access,
) -> Result<MachineAddr, Errno> {
    translate_walk(dom, mem, va, access, Mode::Supervisor).map(|(ma, _)| ma)
}

/// [`translate`] for an access made with the permissions of `mode`: a
/// user-mode access also needs U/S at every level of the walk, as the CPU
/// requires of an access from CPL3 (`crate::privilege`).
pub fn translate_as<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &M,
    va: GuestVirt,
    access: Access,
    mode: Mode,
) -> Result<MachineAddr, Errno> {
    translate_walk(dom, mem, va, access, mode).map(|(ma, _)| ma)
}

/// [`translate_as`], with the walk it made.
fn translate_walk<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &M,
    va: GuestVirt,
    access: Access,
    mode: Mode,
) -> Result<(MachineAddr, Walk), Errno> {
    let w = walk(mem, dom.base(), va, dom.nx_enabled(), |_, table| {
        dom.owns(mem, table)
    })
    .map_err(|_| Errno::EFAULT)?;
    if access == Access::Write && !w.writable {
        return Err(Errno::EFAULT);
    }
    if mode == Mode::User && !w.user {
        return Err(Errno::EFAULT);
    }
    let ok = match (dom.frame_kind_inline(mem, w.frame), access) {
        (FrameKind::NotOwned, _) => false,
        (FrameKind::PageTable(_), Access::Read) => true,
        (FrameKind::PageTable(_), Access::Write) => false,
        (FrameKind::Writable, Access::Read) => true,
        // A writable walk implies a validated RW L1 entry, which holds a
        // `Writable` type reference (crate::paging); check the count itself too, so
        // that a hypercall write can only land where the type rules say the
        // guest's own writes may.
        (FrameKind::Writable, Access::Write) => dom
            .page_info(mem, w.frame)
            .is_some_and(|i| i.ty == PageType::Writable && i.type_count > 0),
    };
    if !ok {
        return Err(Errno::EFAULT);
    }
    Ok((MachineAddr::new(w.frame.addr().get() + va.page_offset()), w))
}

/// Reads of a run of small objects from guest memory (a hypercall's request
/// list) with one translation per guest page instead of one per read.
///
/// The reader keeps the last page it translated for reading, with what that
/// translation depended on: the root (CR3) and the four entries the walk read.
/// For reading, [`translate`] is a function of exactly those (the tables'
/// ownership, the other thing it checks, is fixed for the domain's lifetime),
/// so a kept translation is what a new one would be as long as the root is the
/// same (checked on every read) and none of the four entries has been written.
/// The caller must report every guest page-table entry it writes between reads
/// ([`Self::wrote_entry`]); the requests it runs (`mmu_update`) write one
/// entry each, at an address known before they run. (Changes to *other*
/// tables, devalidation included, do not change these entries' contents.)
///
/// An object that crosses a page boundary is read with [`copy_from_guest`]
/// (two fresh translations) and leaves the kept page alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageReader {
    window: Option<Window>,
}

/// One translated page: see [`PageReader`].
#[derive(Clone, Copy, Debug)]
struct Window {
    /// The guest-virtual page (its first byte).
    va_page: u64,
    /// Its machine frame's first byte.
    ma_page: u64,
    /// The root the translation was made from.
    cr3: Mfn,
    /// The machine addresses of the entries the walk read, L4 first.
    entries: [MachineAddr; 4],
    /// The last frame a write was reported in that holds none of `entries`
    /// (`u64::MAX`: none yet): a run of writes to one table (the usual batch)
    /// is then checked with one comparison per write.
    clear_frame: u64,
}

impl PageReader {
    /// A reader with no page translated yet.
    pub const fn new() -> PageReader {
        PageReader { window: None }
    }

    /// Read `N` bytes at guest-virtual `va` through the domain's current tables:
    /// exactly what [`read_bytes`] would return, or the same error.
    pub fn read<const N: usize, M: PhysMem + ?Sized>(
        &mut self,
        dom: &Domain,
        mem: &M,
        va: GuestVirt,
    ) -> Result<[u8; N], Errno> {
        let off = va.page_offset();
        if off + N as u64 > PAGE_SIZE {
            return read_bytes(dom, mem, va);
        }
        let va_page = va.get() - off;
        let cr3 = dom.base();
        let ma_page = match self.window {
            Some(w) if w.va_page == va_page && w.cr3 == cr3 => w.ma_page,
            _ => {
                self.window = None;
                let (ma, w) = translate_walk(dom, mem, va, Access::Read, Mode::Supervisor)?;
                let mut entries = [MachineAddr::new(0); 4];
                for ((e, &table), level) in entries.iter_mut().zip(&w.tables).zip([4, 3, 2, 1]) {
                    *e = entry_addr(table, va.table_index(level));
                }
                let ma_page = ma.get() - off;
                self.window = Some(Window {
                    va_page,
                    ma_page,
                    cr3,
                    entries,
                    clear_frame: u64::MAX,
                });
                ma_page
            }
        };
        Ok(read_words(mem, MachineAddr::new(ma_page + off)))
    }

    /// The guest page-table entry at machine address `at` has been (or is about
    /// to be) written: forget the kept translation if its walk read that entry.
    pub fn wrote_entry(&mut self, at: MachineAddr) {
        let Some(w) = &mut self.window else { return };
        let frame = at.get() >> 12;
        if frame == w.clear_frame {
            return;
        }
        if !w.entries.iter().any(|e| e.get() >> 12 == frame) {
            w.clear_frame = frame;
        } else if w.entries.contains(&MachineAddr::new(at.get() & !7)) {
            self.window = None;
        }
    }
}

/// Writes of a run of small objects to guest memory (a `multicall`'s results)
/// with one translation per guest page instead of two per write.
///
/// A kept translation for writing depends on the root (checked on every
/// write), the entries of the walk, and the frame's page type (`Writable` with
/// a non-zero count, [`translate`]'s rule 5). Only the page-table hypercalls
/// change entries or types, so the caller must [`Self::forget`] after running
/// any call that may (`mmu_update`, `mmuext_op`); nothing else a hypercall does
/// changes them.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageWriter {
    /// (guest-virtual page, its machine page, the root).
    window: Option<(u64, u64, Mfn)>,
}

impl PageWriter {
    /// A writer with no page translated yet.
    pub const fn new() -> PageWriter {
        PageWriter { window: None }
    }

    /// Forget the kept translation.
    pub fn forget(&mut self) {
        self.window = None;
    }

    /// Write `data` at guest-virtual `va` through the domain's current tables:
    /// exactly what [`copy_to_guest`] would do, or the same error.
    pub fn write<const N: usize, M: PhysMem + ?Sized>(
        &mut self,
        dom: &Domain,
        mem: &mut M,
        va: GuestVirt,
        data: &[u8; N],
    ) -> Result<(), Errno> {
        let off = va.page_offset();
        if off + N as u64 > PAGE_SIZE {
            return copy_to_guest(dom, mem, va, data);
        }
        let va_page = va.get() - off;
        let cr3 = dom.base();
        let ma_page = match self.window {
            Some((v, m, r)) if v == va_page && r == cr3 => m,
            _ => {
                self.window = None;
                let ma = translate(dom, mem, va, Access::Write)?;
                let m = ma.get() - off;
                self.window = Some((va_page, m, cr3));
                m
            }
        };
        mem.write(MachineAddr::new(ma_page + off), data);
        Ok(())
    }
}

impl ReadCache {
    /// [`translate`] for [`Access::Read`]: the same answer or the same error.
    /// The check of the kept page is inline in each caller (a hypercall's
    /// hot path), the walk that refills it out of line.
    #[inline(always)]
    pub fn translate<M: PhysMem + ?Sized>(
        &mut self,
        dom: &Domain,
        mem: &M,
        va: GuestVirt,
    ) -> Result<MachineAddr, Errno> {
        let cr3 = dom.base();
        if let Some(ma) = self.lookup(mem, cr3, va) {
            return Ok(ma);
        }
        self.refill(dom, mem, cr3, va)
    }

    /// [`Self::translate`] when the kept page does not answer: a walk, kept.
    #[inline(never)]
    fn refill<M: PhysMem + ?Sized>(
        &mut self,
        dom: &Domain,
        mem: &M,
        cr3: Mfn,
        va: GuestVirt,
    ) -> Result<MachineAddr, Errno> {
        self.clear();
        let (ma, w) = translate_walk(dom, mem, va, Access::Read, Mode::Supervisor)?;
        self.fill(mem, cr3, va, &w.tables, ma);
        Ok(ma)
    }
}

/// `N` bytes at `at` (within one frame): 8-byte words when aligned, bytes
/// otherwise.
fn read_words<const N: usize, M: PhysMem + ?Sized>(mem: &M, at: MachineAddr) -> [u8; N] {
    let mut b = [0u8; N];
    if at.get().is_multiple_of(8) && N.is_multiple_of(8) {
        for (k, c) in b.chunks_exact_mut(8).enumerate() {
            c.copy_from_slice(
                &mem.read_u64(MachineAddr::new(at.get() + 8 * k as u64))
                    .to_le_bytes(),
            );
        }
    } else {
        mem.read(at, &mut b);
    }
    b
}

/// Call `f(machine address, offset into the buffer, length)` for each page-sized
/// piece of `va .. va + len`, after translating it. Stops at the first error.
fn for_each_piece<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &M,
    va: GuestVirt,
    len: usize,
    (access, mode): (Access, Mode),
    mut f: impl FnMut(MachineAddr, usize, usize),
) -> Result<(), Errno> {
    let len64 = u64::try_from(len).map_err(|_| Errno::EFAULT)?;
    // `va + len` may equal 2^64 only if the last byte is 2^64 - 1; reject a wrap.
    if len64 > 0 && va.checked_add(len64 - 1).is_none() {
        return Err(Errno::EFAULT);
    }
    let mut done = 0usize;
    while done < len {
        let cur = GuestVirt::new(va.get().wrapping_add(done as u64));
        let n = (bytes_to_page_end(cur) as usize).min(len - done);
        let ma = translate_as(dom, mem, cur, access, mode)?;
        f(ma, done, n);
        done += n;
    }
    Ok(())
}

/// Check that `va .. va + len` is accessible for `access` (e.g. before a
/// multi-step operation that must not fail half way).
pub fn check_range<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &M,
    va: GuestVirt,
    len: usize,
    access: Access,
) -> Result<(), Errno> {
    for_each_piece(dom, mem, va, len, (access, Mode::Supervisor), |_, _, _| {})
}

/// Copy `out.len()` bytes from guest-virtual `va` into `out` (a supervisor-mode
/// read). On error `out` may hold part of the data.
pub fn copy_from_guest<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &M,
    va: GuestVirt,
    out: &mut [u8],
) -> Result<(), Errno> {
    copy_from_guest_as(dom, mem, va, out, Mode::Supervisor)
}

/// [`copy_from_guest`] with the permissions of `mode`.
pub fn copy_from_guest_as<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &M,
    va: GuestVirt,
    out: &mut [u8],
    mode: Mode,
) -> Result<(), Errno> {
    let len = out.len();
    for_each_piece(dom, mem, va, len, (Access::Read, mode), |ma, off, n| {
        if let Some(dst) = out.get_mut(off..off + n) {
            mem.read(ma, dst);
        }
    })
}

/// Copy `data` to guest-virtual `va` (a supervisor-mode write). Every page is
/// checked first: on error nothing has been written.
pub fn copy_to_guest<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &mut M,
    va: GuestVirt,
    data: &[u8],
) -> Result<(), Errno> {
    copy_to_guest_as(dom, mem, va, data, Mode::Supervisor)
}

/// [`copy_to_guest`] with the permissions of `mode`.
pub fn copy_to_guest_as<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &mut M,
    va: GuestVirt,
    data: &[u8],
    mode: Mode,
) -> Result<(), Errno> {
    // Within one page (a hypercall's result word, the usual case) there is
    // one translation to check, so checking it and writing through it is
    // already all or nothing: one walk instead of the two below (a walk is
    // about 300 instructions on the direct map).
    if !data.is_empty() && data.len() as u64 <= bytes_to_page_end(va) {
        let ma = translate_as(dom, mem, va, Access::Write, mode)?;
        mem.write(ma, data);
        return Ok(());
    }
    for_each_piece(
        dom,
        mem,
        va,
        data.len(),
        (Access::Write, mode),
        |_, _, _| {},
    )?;
    // Second pass: translate again and write. The checks are repeated (a write
    // could only change a translation by landing in a frame the guest uses as a
    // table without it being typed as one, which the page types rule out; the
    // repeat costs little and keeps this function correct on its own).
    let mut done = 0usize;
    while done < data.len() {
        let cur = GuestVirt::new(va.get().wrapping_add(done as u64));
        let n = (bytes_to_page_end(cur) as usize).min(data.len() - done);
        let ma = translate_as(dom, mem, cur, Access::Write, mode)?;
        if let Some(src) = data.get(done..done + n) {
            mem.write(ma, src);
        }
        done += n;
    }
    Ok(())
}

/// Read a plain little-endian value of `N` bytes from the guest.
pub fn read_bytes<const N: usize, M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &M,
    va: GuestVirt,
) -> Result<[u8; N], Errno> {
    let mut b = [0u8; N];
    copy_from_guest(dom, mem, va, &mut b)?;
    Ok(b)
}

#[cfg(test)]
mod tests;
