//! # Direct paging: page types, pinning and validated updates
//!
//! Under direct paging the CPU walks the guest's own page tables, which hold
//! machine frame numbers. Nothing stands between the guest and the machine except
//! two invariants, which this module keeps (Xen's model, `xen/arch/x86/mm.c`):
//!
//! 1. **Ownership.** Every present entry of every table the CPU can reach names a
//!    frame the domain owns.
//! 2. **Types.** Every frame has one [`PageType`] at a time, with a *type count*:
//!    `Writable` counts the L1 entries that map it writable, `Table(Lk)` counts the
//!    L(k+1) entries that reference it, its pin and (for an L4) the vCPU's base
//!    pointer. A frame changes type only while its type count is zero. So a frame
//!    in use as a page table has no writable mapping, and a frame mapped writable
//!    is not in use as a page table: the guest can change its tables only through
//!    the hypervisor.
//!
//! ## How the counts move
//!
//! - [`get_type`](Mm::get_type) on a page-table type whose count goes from 0 to 1 *validates*
//!   the frame: every present entry is checked ([`check_entry`]) and takes a
//!   reference on what it points at (a writable-type reference for an RW L1
//!   entry, a table-type reference of the level below for an upper-level entry,
//!   a plain reference for a read-only L1 entry). If any entry fails, the
//!   references taken so far are dropped again and the frame stays unused.
//! - [`put_type`](Mm::put_type) whose count reaches 0 *devalidates*: every present entry drops
//!   its reference. Devalidation is what lets a frame go back to being ordinary
//!   memory.
//! - [`mod_entry`](Mm::mod_entry) (one `mmu_update`, or an emulated PTE write) takes the new
//!   entry's reference first (full validation, no fast path for "flag-only"
//!   changes: Xen XSA-182's class), writes the entry, then drops the old entry's
//!   reference, and reports whether a TLB flush is needed before the guest runs
//!   again (whenever a present entry changed other than in its A/D bits: XSA-286's
//!   class).
//! - [`pin`](Mm::pin)/[`unpin`](Mm::unpin) hold one type reference for the
//!   guest; [`set_base`](Mm::set_base) holds one for the vCPU's CR3.
//!
//! ## Bounded recursion (XSA-240's class)
//!
//! Validation recurses from a table to the tables its entries reference, and
//! devalidation likewise. Every step goes *down* one level (an L(k) entry may
//! reference only an L(k-1) table), so the depth is at most four whatever the
//! guest writes, and the stack cost is four small frames. Keel forbids linear
//! ("recursive") page tables: an entry referencing a table of its own level (or
//! the table itself) asks for a type the frame does not have while it is in use,
//! and is refused. A cycle is therefore impossible, which is also why teardown
//! (unpin everything, drop the base) always brings every count back to zero.
//!
//! The total work of one validation is bounded too: a table is validated once,
//! when its type count leaves zero; later references only count.
//!
//! ## Entry rules ([`check_entry`])
//!
//! - Flags allowed in an L1 entry: P, RW, US, PWT, PCD, A, D, G, the three
//!   software bits 9..11, and NX (only when the domain runs with EFER.NXE). PAT
//!   (bit 7) and bits 52..62 are refused.
//! - In L2/L3/L4 entries: P, RW, US, PWT, PCD, A, software bits 9..11, NX. PS is
//!   refused: no superpages (a 2 MiB or 1 GiB page would map 512 or 262144 frames
//!   with one entry, none of them typed). D and G (ignored by the CPU there) are
//!   refused, so that every bit the hypervisor accepts has one meaning.
//!
//! Every refusal is an [`MmError`], which the hypercall layer reports as
//! `-EINVAL` (Xen's code for the same refusals).

pub mod access_fault;
pub mod emulate;
pub mod entry;
pub mod frame_table;
pub mod guest_mem;

use crate::addr::{Mfn, Pfn};
use crate::mem::PhysMem;
use crate::paging::entry::{
    entry_addr, pte_frame, Level, PTE_A, PTE_ADDR_MASK, PTE_D, PTE_NX, PTE_P, PTE_PS, PTE_RW,
    PTE_US,
};
use crate::paging::frame_table::{FrameTable, PageInfo, PageType, TypeInfo};

/// Write-through.
pub const PTE_PWT: u64 = 1 << 3;
/// Cache disable.
pub const PTE_PCD: u64 = 1 << 4;
/// Global (L1 only).
pub const PTE_G: u64 = 1 << 8;
/// The three bits the CPU ignores and the OS may use (9..11).
pub const PTE_AVAIL: u64 = 0b111 << 9;

/// Entries per table.
pub const ENTRIES: usize = 512;

/// The most type references a frame may hold (refused beyond: Xen refuses a
/// count overflow the same way).
pub const MAX_TYPE_COUNT: u32 = 1 << 30;
/// The most references a frame may hold.
pub const MAX_REF_COUNT: u64 = 1 << 40;

/// Why an MMU operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    /// The frame is not the domain's.
    NotOwned(Mfn),
    /// The frame is in use as another type.
    TypeConflict {
        /// The frame.
        mfn: Mfn,
        /// Its type.
        have: PageType,
        /// The type asked for.
        want: PageType,
    },
    /// The frame is being validated higher up the same chain (a table that
    /// references itself at its own level: a linear mapping).
    Recursive(Mfn),
    /// An entry has a bit set that Keel does not accept at that level.
    Reserved {
        /// The level of the table the entry is in.
        level: Level,
        /// The entry.
        entry: u64,
    },
    /// PS in an L2 or L3 entry.
    Superpage {
        /// The level of the table the entry is in.
        level: Level,
    },
    /// A count would overflow.
    Overflow(Mfn),
    /// The frame is already pinned.
    AlreadyPinned(Mfn),
    /// The frame is not pinned.
    NotPinned(Mfn),
    /// The frame is not a pinned, validated L4 (NEW_BASEPTR, MOV to CR3).
    NotPinnedL4(Mfn),
    /// The address of an entry is not 8-byte aligned.
    Misaligned,
}

impl core::fmt::Display for MmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MmError::NotOwned(m) => write!(f, "frame {:#x} is not the domain's", m.0),
            MmError::TypeConflict { mfn, have, want } => write!(
                f,
                "frame {:#x} is in use as {have:?}, cannot become {want:?}",
                mfn.0
            ),
            MmError::Recursive(m) => write!(
                f,
                "frame {:#x} references itself at its own level (linear page tables are refused)",
                m.0
            ),
            MmError::Reserved { level, entry } => {
                write!(
                    f,
                    "L{} entry {entry:#x} has a refused bit set",
                    level.number()
                )
            }
            MmError::Superpage { level } => {
                write!(f, "PS in an L{} entry: no superpages", level.number())
            }
            MmError::Overflow(m) => write!(f, "count of frame {:#x} would overflow", m.0),
            MmError::AlreadyPinned(m) => write!(f, "frame {:#x} is already pinned", m.0),
            MmError::NotPinned(m) => write!(f, "frame {:#x} is not pinned", m.0),
            MmError::NotPinnedL4(m) => {
                write!(f, "frame {:#x} is not a pinned, validated L4", m.0)
            }
            MmError::Misaligned => write!(f, "entry address not 8-byte aligned"),
        }
    }
}

/// What must happen to the guest's TLB before it runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Flush {
    /// Nothing.
    #[default]
    None,
    /// One page's translation (INVLPG).
    Page(u64),
    /// Everything (the whole VPID, or a CR3 reload).
    All,
}

impl Flush {
    /// Both flushes (anything with `All` is `All`; two different pages are `All`).
    pub const fn merge(self, other: Flush) -> Flush {
        match (self, other) {
            (Flush::None, x) | (x, Flush::None) => x,
            (Flush::Page(a), Flush::Page(b)) if a == b => Flush::Page(a),
            _ => Flush::All,
        }
    }
}

/// The machine state the rules read and change: one domain's frame table, machine
/// memory, and whether the domain runs with EFER.NXE.
pub struct Mm<'a, M: PhysMem + ?Sized> {
    /// The domain's frames and their accounting.
    pub ft: &'a FrameTable,
    /// Machine memory.
    pub mem: &'a mut M,
    /// EFER.NXE: NX is a legal bit only then.
    pub nx: bool,
}

/// The flags accepted in an entry of a table of `level` (see the module docs).
/// PS (bit 7) is never among them.
pub const fn allowed_flags(level: Level, nx: bool) -> u64 {
    let common = PTE_P | PTE_RW | PTE_US | PTE_PWT | PTE_PCD | PTE_A | PTE_AVAIL | PTE_ADDR_MASK;
    let nxb = if nx { PTE_NX } else { 0 };
    match level {
        Level::L1 => common | PTE_D | PTE_G | nxb,
        _ => common | nxb,
    }
}

/// [`allowed_flags`] for every level (index `level - 1`), without and with NX.
const ALLOWED: [[u64; 4]; 2] = {
    let mut t = [[0; 4]; 2];
    let mut i = 0;
    while i < 4 {
        let level = Level::WALK_ORDER[3 - i];
        t[0][i] = allowed_flags(level, false);
        t[1][i] = allowed_flags(level, true);
        i += 1;
    }
    t
};

/// Check a present entry of a table of `level` against the flag rules; the frame
/// it points at. (Ownership and type are checked when the reference is taken.)
#[inline(always)]
pub fn check_entry(e: u64, level: Level, nx: bool) -> Result<Mfn, MmError> {
    let allowed = ALLOWED[nx as usize][level as usize - 1];
    if e & !allowed != 0 {
        // PS is refused everywhere; in an L2 or L3 entry it would be a superpage.
        return Err(
            if matches!(level, Level::L2 | Level::L3) && e & PTE_PS != 0 {
                MmError::Superpage { level }
            } else {
                MmError::Reserved { level, entry: e }
            },
        );
    }
    Ok(pte_frame(e))
}

impl<M: PhysMem + ?Sized> Mm<'_, M> {
    fn pfn(&self, mfn: Mfn) -> Result<Pfn, MmError> {
        self.ft.pfn(&*self.mem, mfn).ok_or(MmError::NotOwned(mfn))
    }

    fn info(&self, pfn: Pfn) -> PageInfo {
        self.ft.info(&*self.mem, pfn).unwrap_or(PageInfo::FREE)
    }

    // The type word and the reference count are separate words of the frame
    // table: each rule reads and writes only the one it changes.
    fn type_info(&self, pfn: Pfn) -> TypeInfo {
        self.ft.type_info(&*self.mem, pfn).unwrap_or(TypeInfo::FREE)
    }

    fn set_type_info(&mut self, pfn: Pfn, t: TypeInfo) {
        self.ft.set_type_info(self.mem, pfn, t);
    }

    /// The accounting of `mfn`, if the domain owns it.
    pub fn page_info(&self, mfn: Mfn) -> Option<PageInfo> {
        let pfn = self.ft.pfn(&*self.mem, mfn)?;
        self.ft.info(&*self.mem, pfn)
    }

    /// Take a plain reference on an owned frame (Xen's `get_page`).
    pub fn get_page(&mut self, mfn: Mfn) -> Result<(), MmError> {
        let pfn = self.pfn(mfn)?;
        self.get_page_at(pfn, mfn)
    }

    // The `_at` forms take the PFN the caller already looked up: an entry's
    // references need it up to four times.
    fn get_page_at(&mut self, pfn: Pfn, mfn: Mfn) -> Result<(), MmError> {
        let refs = self.ft.ref_count(&*self.mem, pfn).unwrap_or(0);
        if refs >= MAX_REF_COUNT {
            return Err(MmError::Overflow(mfn));
        }
        self.ft.set_ref_count(self.mem, pfn, refs + 1);
        Ok(())
    }

    /// Drop a plain reference (Xen's `put_page`).
    pub fn put_page(&mut self, mfn: Mfn) {
        if let Ok(pfn) = self.pfn(mfn) {
            self.put_page_at(pfn);
        }
    }

    fn put_page_at(&mut self, pfn: Pfn) {
        let refs = self.ft.ref_count(&*self.mem, pfn).unwrap_or(0);
        self.ft.set_ref_count(self.mem, pfn, refs.saturating_sub(1));
    }

    /// Take a type reference of type `want` (Xen's `get_page_type`): count it if
    /// the frame already has that type (and, for a table, is validated), or change
    /// the type if its count is zero, validating a table type.
    pub fn get_type(&mut self, mfn: Mfn, want: PageType) -> Result<(), MmError> {
        let pfn = self.pfn(mfn)?;
        self.get_type_at(pfn, mfn, want)
    }

    fn get_type_at(&mut self, pfn: Pfn, mfn: Mfn, want: PageType) -> Result<(), MmError> {
        let mut i = self.type_info(pfn);
        if i.type_count > 0 {
            if i.ty != want {
                return Err(MmError::TypeConflict {
                    mfn,
                    have: i.ty,
                    want,
                });
            }
            if want.level().is_some() && !i.validated {
                // Still being validated further up this very chain.
                return Err(MmError::Recursive(mfn));
            }
            if i.type_count >= MAX_TYPE_COUNT {
                return Err(MmError::Overflow(mfn));
            }
            i.type_count += 1;
            self.set_type_info(pfn, i);
            return Ok(());
        }
        // Count zero: the type may change. For a table, count the reference
        // *before* validating, unvalidated, so that an entry referencing this
        // frame again (at any level) sees a frame in use and is refused.
        i.ty = want;
        i.type_count = 1;
        i.validated = false;
        self.set_type_info(pfn, i);
        if let Some(level) = want.level() {
            let r = self.validate(mfn, level);
            // Re-read rather than reuse `i`: what validation did to this frame
            // is whatever the stored word says.
            let mut i = self.type_info(pfn);
            match r {
                Ok(()) => i.validated = true,
                Err(_) => i.type_count = 0,
            }
            self.set_type_info(pfn, i);
            r?;
        }
        Ok(())
    }

    /// Drop a type reference (Xen's `put_page_type`); the last reference of a
    /// table type devalidates it.
    pub fn put_type(&mut self, mfn: Mfn) {
        if let Ok(pfn) = self.pfn(mfn) {
            self.put_type_at(pfn, mfn);
        }
    }

    fn put_type_at(&mut self, pfn: Pfn, mfn: Mfn) {
        let mut i = self.type_info(pfn);
        i.type_count = i.type_count.saturating_sub(1);
        let devalidate = i.type_count == 0 && i.validated;
        if i.type_count == 0 {
            i.validated = false;
        }
        self.set_type_info(pfn, i);
        if let (true, Some(level)) = (devalidate, i.ty.level()) {
            self.devalidate(mfn, level);
        }
    }

    /// The references a present entry of a table of `level` holds. Inline: a
    /// read-only L1 entry (the common case, in validation and in updates) needs
    /// only the checks and a plain reference; the type references are out of
    /// line.
    #[inline(always)]
    fn get_entry_ref(&mut self, e: u64, level: Level) -> Result<(), MmError> {
        let mfn = check_entry(e, level, self.nx)?;
        let pfn = self.pfn(mfn)?;
        self.get_page_at(pfn, mfn)?;
        let want = match level {
            Level::L1 if e & PTE_RW == 0 => return Ok(()),
            Level::L1 => PageType::Writable,
            Level::L2 => PageType::Table(Level::L1),
            Level::L3 => PageType::Table(Level::L2),
            Level::L4 => PageType::Table(Level::L3),
        };
        self.get_type_or_put_page(pfn, mfn, want)
    }

    /// The type reference of [`Self::get_entry_ref`]; on failure the plain
    /// reference it took is dropped again.
    #[inline(never)]
    fn get_type_or_put_page(&mut self, pfn: Pfn, mfn: Mfn, want: PageType) -> Result<(), MmError> {
        let r = self.get_type_at(pfn, mfn, want);
        if r.is_err() {
            self.put_page_at(pfn);
        }
        r
    }

    /// Drop what [`Self::get_entry_ref`] took for `e`.
    #[inline(always)]
    fn put_entry_ref(&mut self, e: u64, level: Level) {
        let mfn = pte_frame(e);
        let Ok(pfn) = self.pfn(mfn) else { return };
        match level {
            Level::L1 if e & PTE_RW == 0 => {}
            _ => self.put_type_at(pfn, mfn),
        }
        self.put_page_at(pfn);
    }

    fn entry(&self, table: Mfn, i: usize) -> u64 {
        self.mem.read_u64(entry_addr(table, i))
    }

    /// Validate every present entry of `table`; on failure undo the ones done.
    fn validate(&mut self, table: Mfn, level: Level) -> Result<(), MmError> {
        for i in 0..ENTRIES {
            let e = self.entry(table, i);
            if e & PTE_P == 0 {
                continue;
            }
            if let Err(err) = self.get_entry_ref(e, level) {
                for j in 0..i {
                    let e = self.entry(table, j);
                    if e & PTE_P != 0 {
                        self.put_entry_ref(e, level);
                    }
                }
                return Err(err);
            }
        }
        Ok(())
    }

    fn devalidate(&mut self, table: Mfn, level: Level) {
        for i in 0..ENTRIES {
            let e = self.entry(table, i);
            if e & PTE_P != 0 {
                self.put_entry_ref(e, level);
            }
        }
    }

    /// Pin `mfn` as a table of `level` (MMUEXT_PIN_Lk_TABLE): validate it if
    /// needed and hold a type reference until [`Self::unpin`].
    pub fn pin(&mut self, mfn: Mfn, level: Level) -> Result<(), MmError> {
        let pfn = self.pfn(mfn)?;
        if self.type_info(pfn).pinned {
            return Err(MmError::AlreadyPinned(mfn));
        }
        self.get_page_at(pfn, mfn)?;
        if let Err(e) = self.get_type_at(pfn, mfn, PageType::Table(level)) {
            self.put_page_at(pfn);
            return Err(e);
        }
        let mut i = self.type_info(pfn);
        i.pinned = true;
        self.set_type_info(pfn, i);
        Ok(())
    }

    /// Drop the guest's pin (MMUEXT_UNPIN_TABLE).
    pub fn unpin(&mut self, mfn: Mfn) -> Result<(), MmError> {
        let pfn = self.pfn(mfn)?;
        let mut i = self.type_info(pfn);
        if !i.pinned {
            return Err(MmError::NotPinned(mfn));
        }
        i.pinned = false;
        self.set_type_info(pfn, i);
        self.put_type_at(pfn, mfn);
        self.put_page_at(pfn);
        Ok(())
    }

    /// Make `new` the base (CR3) in place of `old`: `new` must be a pinned,
    /// validated L4 (NEW_BASEPTR, MOV to CR3). The base holds its own type
    /// reference, so unpinning the running L4 does not devalidate it.
    pub fn set_base(&mut self, old: Option<Mfn>, new: Mfn) -> Result<(), MmError> {
        let pfn = self.pfn(new)?;
        let i = self.type_info(pfn);
        if !(i.pinned && i.validated && i.ty == PageType::Table(Level::L4)) {
            return Err(MmError::NotPinnedL4(new));
        }
        self.get_page_at(pfn, new)?;
        if let Err(e) = self.get_type_at(pfn, new, PageType::Table(Level::L4)) {
            self.put_page_at(pfn);
            return Err(e);
        }
        if let Some(old) = old {
            self.put_type(old);
            self.put_page(old);
        }
        Ok(())
    }

    /// Drop the base's references (teardown).
    pub fn drop_base(&mut self, base: Mfn) {
        self.put_type(base);
        self.put_page(base);
    }

    /// Write `new` into entry `index` of frame `table` (MMU_NORMAL_PT_UPDATE, or
    /// an emulated PTE write). If the frame is a validated table the new entry is
    /// validated in full (references taken before the old ones are dropped); if it
    /// is ordinary memory the write is a plain one, as on Xen. Returns what the
    /// guest's TLB needs.
    pub fn mod_entry(&mut self, table: Mfn, index: usize, new: u64) -> Result<Flush, MmError> {
        self.mod_entry_after(&mut LastTable::default(), table, index, new)
    }

    /// [`Self::mod_entry`] as the next of a run of updates: `last` is what the
    /// previous update of the run found the table it wrote to be, and is
    /// updated to this one's. An update to the same validated table as the
    /// previous one skips looking the table up again; any other (another
    /// table, ordinary memory) looks it up. See [`LastTable`] for why this is
    /// exact.
    pub fn mod_entry_after(
        &mut self,
        last: &mut LastTable,
        table: Mfn,
        index: usize,
        new: u64,
    ) -> Result<Flush, MmError> {
        if index >= ENTRIES {
            return Err(MmError::Misaligned);
        }
        let at = entry_addr(table, index);
        let level = match last.0 {
            Some((t, level)) if t == table => level,
            _ => {
                last.0 = None;
                let pfn = self.pfn(table)?;
                let i = self.type_info(pfn);
                match i.ty.level() {
                    Some(l) if i.validated => {
                        last.0 = Some((table, l));
                        l
                    }
                    _ => {
                        // Ordinary memory: the same write the guest could do
                        // through a writable mapping, allowed only if the frame
                        // could have one.
                        self.get_type_at(pfn, table, PageType::Writable)?;
                        self.mem.write_u64(at, new);
                        self.put_type_at(pfn, table);
                        return Ok(Flush::None);
                    }
                }
            }
        };
        let old = self.mem.read_u64(at);
        if new & PTE_P != 0 {
            self.get_entry_ref(new, level)?;
        }
        self.mem.write_u64(at, new);
        if old & PTE_P != 0 {
            self.put_entry_ref(old, level);
        }
        Ok(flush_for(old, new))
    }

    /// Release everything the guest holds: every pin, then the base. Afterwards
    /// every count of the domain is zero (there are no cycles: see the module
    /// docs). Returns the number of frames whose counts are not (a bug if
    /// non-zero; the caller reports it).
    pub fn release_all(&mut self, base: Option<Mfn>) -> u64 {
        for p in 0..self.ft.nr_pages() {
            if self.type_info(Pfn(p)).pinned {
                if let Some(m) = self.ft.mfn(&*self.mem, Pfn(p)) {
                    let _ = self.unpin(m);
                }
            }
        }
        if let Some(b) = base {
            self.drop_base(b);
        }
        (0..self.ft.nr_pages())
            .filter(|&p| {
                let i = self.info(Pfn(p));
                i.type_count != 0 || i.ref_count != 0 || i.pinned || i.validated
            })
            .count() as u64
    }
}

/// The table the previous update of a run of updates ([`Mm::mod_entry_after`])
/// wrote to, when it was a validated table: its frame and level.
///
/// Why the next update to the same frame may take the level from here instead
/// of the frame table: the frame was a validated `Table(level)` with a non-zero
/// type count when the previous update looked, and an update of a table never
/// changes that table's type word. Its new entry takes a plain reference, a
/// `Writable` reference or a `Table(level - 1)` reference on its target; on the
/// table itself the last two are refused (the table's type is in use as
/// another), and a plain reference touches only the reference count. Its old
/// entry drops references taken while the table was `Table(level)` in its
/// current validation, so not a type reference on the table itself; dropping
/// one may devalidate the target, which recurses only downwards (entries of
/// lower levels, which hold no type reference on a table of this level either).
/// An update of *another* table could devalidate this one (dropping its last
/// reference), which is why only the immediately previous update counts: every
/// update through a `LastTable` replaces it, and a run must not do anything
/// else between its updates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastTable(Option<(Mfn, Level)>);

/// Whether replacing `old` by `new` needs a TLB flush: whenever a present entry
/// changes in anything but its accessed/dirty bits (a permission or a mapping
/// removed, or a frame or memory type changed). Flushing on every such change
/// (not only on removals) also spares the guest spurious faults on stale
/// read-only translations.
pub const fn flush_for(old: u64, new: u64) -> Flush {
    if old & PTE_P != 0 && (old & !(PTE_A | PTE_D)) != (new & !(PTE_A | PTE_D)) {
        Flush::All
    } else {
        Flush::None
    }
}

#[cfg(test)]
mod tests;
