//! [`GrantWorld`] on the real machine: the domains' frame tables, their page
//! tables and machine memory.
//!
//! - **Frame accounting** is each frame's owner's: a reference and a writable
//!   type reference on a granted frame go into the *granter's* frame table, so
//!   the granter's own page-table rules see them (a frame with a writable
//!   reference cannot be pinned or validated as a table; a table cannot take
//!   one).
//! - **A mapping** is an L1 entry of the mapper's current tables naming the
//!   granter's frame. The mapper's own accounting never counts it: its frame
//!   table does not know the frame, so validation refuses such an entry and
//!   devalidation or an overwrite through `mmu_update` skips it (the grant's
//!   references stay held until `unmap_grant_ref` or the mapper's teardown).
//!   That is why a domain may not map a grant of its own frames: the entry
//!   would name a frame its own accounting counts, and an `mmu_update` of it
//!   would drop references the grant holds.
//! - **The table frames** are the frames past the domain's memory
//!   ([`crate::domain::GRANT_TABLE_FRAMES`]); each holds a reference and a
//!   writable type reference from `setup_table` until the domain's teardown,
//!   so it never becomes a page table and the hypervisor's updates of an entry
//!   never land in one.
//! - **Atomicity.** The entry updates are locked instructions on machine
//!   memory (`PhysMem::cmpxchg_u32`, `fetch_and_u32`: `LOCK CMPXCHG`, `LOCK
//!   AND` on the direct map), so they stay right when the granter runs on
//!   another CPU while the hypervisor updates its entry.

use super::{FrameRefusal, GrantStatus, GrantWorld, Store};
use crate::addr::{GuestVirt, MachineAddr, Mfn, Pfn, PAGE_SIZE};
use crate::domain::{Domain, DomainId, FrameOwner, PageType, GRANT_TABLE_FRAMES};
use crate::mem::{FrameSource, PhysMem};
use crate::paging::entry::{entry_addr, EntryMem, Level, Pte, PteFlags};
use crate::paging::{guest_mem, Flush, MmError};
use core::sync::atomic::{AtomicBool, Ordering};

pub use crate::peers::{Alone, Peers};

/// The world of one grant hypercall: the caller (whose page tables a mapping
/// goes into and whose TLB an unmap flushes), the other domains, memory.
pub struct DomainWorld<'a, M: PhysMem + ?Sized, P: Peers + ?Sized> {
    /// The calling domain.
    pub me: &'a mut Domain,
    /// The others.
    pub peers: &'a P,
    /// Machine memory.
    pub mem: &'a mut M,
    /// How many table frames the caller's table has (the next one
    /// `alloc_table_frame` hands out is the next of its reserved frames).
    pub table_frames: usize,
}

fn refusal(e: MmError) -> FrameRefusal {
    match e {
        MmError::NotOwned(_) => FrameRefusal::NotOwned,
        _ => FrameRefusal::WrongType,
    }
}

impl<M: PhysMem + ?Sized, P: Peers + ?Sized> DomainWorld<'_, M, P> {
    /// The frame accounting of domain `owner` (the caller or a peer) and
    /// machine memory, borrowed apart so that the counts can be updated
    /// through memory.
    fn owner_and_mem(&mut self, owner: DomainId) -> (Option<FrameOwner<'_>>, &mut M) {
        let d = if owner == self.me.id {
            Some(self.me.frame_owner())
        } else {
            self.peers.owner(owner)
        };
        (d, &mut *self.mem)
    }

    /// [`Self::owner_and_mem`], also for a domain that ended and has not
    /// released its grants yet ([`Peers::holder`]): for dropping references.
    fn holder_and_mem(&mut self, owner: DomainId) -> (Option<FrameOwner<'_>>, &mut M) {
        let d = if owner == self.me.id {
            Some(self.me.frame_owner())
        } else {
            self.peers.holder_owner(owner)
        };
        (d, &mut *self.mem)
    }

    /// The machine address of the L1 entry that maps `va` in the caller's
    /// current tables: every upper entry present and no superpage, and the
    /// last table a validated L1 of the caller's.
    fn l1_slot(&self, va: GuestVirt) -> Option<MachineAddr> {
        let mut table = self.me.base();
        for level in [Level::L4, Level::L3, Level::L2] {
            let e = self
                .mem
                .read_pte(entry_addr(table, va.table_index(level.number())));
            if !e.is_present() || e.contains(PteFlags::PAGE_SIZE) {
                return None;
            }
            table = e.frame();
        }
        let info = self.me.page_info(&*self.mem, table)?;
        if info.ty != PageType::Table(Level::L1) || !info.validated {
            return None;
        }
        Some(entry_addr(table, va.table_index(1)))
    }
}

impl<M: PhysMem + ?Sized, P: Peers + ?Sized> GrantWorld for DomainWorld<'_, M, P> {
    fn alive(&self, d: DomainId) -> bool {
        d == self.me.id || self.peers.owner(d).is_some()
    }

    fn get_page(&mut self, owner: DomainId, mfn: Mfn) -> Result<(), FrameRefusal> {
        let (d, mem) = self.owner_and_mem(owner);
        d.ok_or(FrameRefusal::NotOwned)?
            .get_page(mem, mfn)
            .map_err(refusal)
    }

    fn put_page(&mut self, owner: DomainId, mfn: Mfn) {
        let (d, mem) = self.holder_and_mem(owner);
        if let Some(d) = d {
            d.put_page(mem, mfn);
        }
    }

    fn get_writable(&mut self, owner: DomainId, mfn: Mfn) -> Result<(), FrameRefusal> {
        let (d, mem) = self.owner_and_mem(owner);
        d.ok_or(FrameRefusal::NotOwned)?
            .get_writable(mem, mfn)
            .map_err(refusal)
    }

    fn put_writable(&mut self, owner: DomainId, mfn: Mfn) {
        let (d, mem) = self.holder_and_mem(owner);
        if let Some(d) = d {
            d.put_writable(mem, mfn);
        }
    }

    fn install_mapping(
        &mut self,
        mapper: DomainId,
        va: GuestVirt,
        mfn: Mfn,
        writable: bool,
    ) -> Result<(), GrantStatus> {
        if mapper != self.me.id {
            return Err(GrantStatus::BadVirtAddr);
        }
        // A grant of the caller's own frame: see the module documentation.
        if self.me.owns(&*self.mem, mfn) {
            return Err(GrantStatus::BadDomain);
        }
        let at = self.l1_slot(va).ok_or(GrantStatus::BadVirtAddr)?;
        if self.mem.read_pte(at).is_present() {
            return Err(GrantStatus::BadVirtAddr);
        }
        // Data of another domain: never executable where NX exists. A and D
        // preset, as the builder does, so the CPU need not set them.
        let mut flags = PteFlags::PRESENT | PteFlags::ACCESSED;
        if writable {
            flags |= PteFlags::WRITABLE | PteFlags::DIRTY;
        }
        if self.me.nx_enabled() {
            flags |= PteFlags::NO_EXECUTE;
        }
        // A not-present entry is never cached: no flush is owed.
        self.mem.write_pte(at, Pte::new(mfn, flags));
        Ok(())
    }

    fn remove_mapping(
        &mut self,
        mapper: DomainId,
        va: GuestVirt,
        mfn: Mfn,
    ) -> Result<(), GrantStatus> {
        if mapper != self.me.id {
            return Err(GrantStatus::GeneralError);
        }
        let at = self.l1_slot(va).ok_or(GrantStatus::GeneralError)?;
        let e = self.mem.read_pte(at);
        if !e.is_present() || e.frame() != mfn {
            return Err(GrantStatus::GeneralError);
        }
        self.mem.write_pte(at, Pte::EMPTY);
        Ok(())
    }

    fn flush_tlb(&mut self, mapper: DomainId) {
        // The caller's vCPU is the only one that can hold its translations,
        // and it runs again only after the flush owed here (the VMX layer
        // performs it before the next entry). A dying domain never runs again.
        if mapper == self.me.id {
            self.me.request_flush(Flush::All);
        }
    }

    fn alloc_table_frame(&mut self, d: DomainId) -> Option<Mfn> {
        if d != self.me.id {
            return None;
        }
        let k = self.table_frames as u64;
        if k >= GRANT_TABLE_FRAMES {
            return None;
        }
        let pfn = Pfn::new(self.me.layout().nr_pages + k);
        let mfn = self.me.mfn_of(&*self.mem, pfn)?;
        // Held until teardown (`release_table_frames`): the frame stays
        // ordinary memory, never a page table.
        self.me.grant_get_page(self.mem, mfn).ok()?;
        if self.me.grant_get_writable(self.mem, mfn).is_err() {
            self.me.grant_put_page(self.mem, mfn);
            return None;
        }
        self.mem.zero_frame(mfn);
        self.table_frames += 1;
        Some(mfn)
    }

    fn read_u64(&self, frame: Mfn, offset: u64) -> u64 {
        if offset + 8 > PAGE_SIZE {
            return 0;
        }
        self.mem
            .read_u64(MachineAddr::new(frame.addr().get() + offset))
    }

    fn cmpxchg_u32(&mut self, frame: Mfn, offset: u64, old: u32, new: u32) -> u32 {
        // `frame` is a table frame (the policy names no other), which holds
        // a writable type reference for the table's life: never a page table.
        if !offset.is_multiple_of(4) || offset + 4 > PAGE_SIZE {
            return !old;
        }
        self.mem
            .cmpxchg_u32(MachineAddr::new(frame.addr().get() + offset), old, new)
    }

    fn clear_bits_u16(&mut self, frame: Mfn, offset: u64, bits: u16) {
        if !offset.is_multiple_of(4) || offset + 4 > PAGE_SIZE {
            return;
        }
        let at = MachineAddr::new(frame.addr().get() + offset);
        self.mem.fetch_and_u32(at, !u32::from(bits));
    }

    fn copy_bytes(&mut self, src: Mfn, src_off: u16, dst: Mfn, dst_off: u16, len: u16) {
        // The ranges are inside their frames (checked by the policy); the
        // machine's copy moves the bytes once, without a bounce buffer.
        let at = |f: Mfn, off: u16| MachineAddr::new(f.addr().get() + u64::from(off));
        let len = usize::from(len).min(PAGE_SIZE as usize);
        self.mem.copy(at(src, src_off), at(dst, dst_off), len);
    }
}

/// Release everything `dom` holds through grants, at its end and before its
/// frame accounting is checked: every mapping it holds of another domain's
/// grant (entry cleared, references dropped), and the references on its own
/// table frames. Its own references other domains still map outlive it
/// ([`super::ops::orphan_grants`]): those uses leave its accounting, and their
/// frames are kept out of its teardown until the last use ends ([`reap`]).
/// Otherwise the state is fresh for the next domain with this id.
pub fn release_domain<M: PhysMem + ?Sized, P: Peers + ?Sized>(
    store: &Store,
    dom: &mut Domain,
    mem: &mut M,
    peers: &P,
) {
    let mut cursor = 0;
    while let Some(next) = release_mappings_from(store, dom, mem, peers, cursor, 64) {
        cursor = next;
    }
    release_own(store, dom, mem, peers);
}

/// The first part of [`release_domain`], a bounded piece at a time: undo the
/// mappings `dom` holds of other domains' grants from maptrack slot `cursor`,
/// at most `budget` slots; the next cursor while some remain.
pub fn release_mappings_from<M: PhysMem + ?Sized, P: Peers + ?Sized>(
    store: &Store,
    dom: &mut Domain,
    mem: &mut M,
    peers: &P,
    cursor: usize,
    budget: usize,
) -> Option<usize> {
    let mut st = store.lock();
    let id = dom.id;
    let n = st.get(usize::from(id.0)).map_or(0, |s| {
        s.table.frames().len().min(GRANT_TABLE_FRAMES as usize)
    });
    let mut world = DomainWorld {
        me: &mut *dom,
        peers,
        mem: &mut *mem,
        table_frames: n,
    };
    super::ops::release_mappings(&mut st[..], &mut world, id, cursor, budget)
}

/// The rest of [`release_domain`], once its mappings are undone: its own
/// references other domains still map outlive it, the references on its
/// table frames go. Bounded by its table's entries.
pub fn release_own<M: PhysMem + ?Sized, P: Peers + ?Sized>(
    store: &Store,
    dom: &mut Domain,
    mem: &mut M,
    peers: &P,
) {
    let mut st = store.lock();
    let id = dom.id;
    let Some(mine) = st.get(usize::from(id.0)) else {
        return;
    };
    let mut frames = [Mfn::new(0); GRANT_TABLE_FRAMES as usize];
    let n = mine.table.frames().len().min(frames.len());
    for (slot, f) in frames.iter_mut().zip(mine.table.frames()) {
        *slot = *f;
    }
    let mut world = DomainWorld {
        me: &mut *dom,
        peers,
        mem: &mut *mem,
        table_frames: n,
    };
    let outlived = super::ops::orphan_grants(&mut st[..], &mut world, id);
    for f in frames.iter().take(n) {
        dom.grant_put_writable(mem, *f);
        dom.grant_put_page(mem, *f);
    }
    let Some(mine) = st.get_mut(usize::from(id.0)) else {
        return;
    };
    if outlived {
        let t = &mine.table;
        for gref in 0..t.entries() {
            if let Some(a) = t.active(gref).filter(|a| a.pinned()) {
                dom.grant_keep_frame(mem, a.mfn);
            }
        }
    } else {
        mine.reset();
    }
}

/// Whether no other domain uses any grant of `d` any more (nothing of its
/// left for [`reap`] to free).
pub fn quiescent(store: &Store, d: crate::domain::DomainId) -> bool {
    let st = store.lock();
    st.get(usize::from(d.0))
        .is_none_or(|s| s.quiescent() && s.table.reap_pending() == 0)
}

/// Set when a grant operation left a frame of an ended domain to free: the
/// run loop calls [`reap`] only then (it would run at every switch otherwise).
pub static REAP_HINT: AtomicBool = AtomicBool::new(false);

/// Note, after a batch of grant operations, whether [`reap`] has work.
pub fn note_reap(st: &[super::DomainGrants]) {
    if st.iter().any(|s| s.table.reap_pending() > 0) {
        REAP_HINT.store(true, Ordering::Relaxed);
    }
}

/// Scrub and free the frames of ended domains whose last grant use has
/// ended ([`super::ops::reap`]). Bounded by the entries of every table; the
/// run loop calls it after a domain's exits and at each domain's end.
pub fn reap<M: PhysMem + ?Sized, F: FrameSource + ?Sized>(
    store: &Store,
    mem: &mut M,
    frames: &mut F,
) {
    REAP_HINT.store(false, Ordering::Relaxed);
    let mut st = store.lock();
    let mut n = 0u32;
    super::ops::reap(&mut st[..], |mfn| {
        mem.zero_frame(mfn);
        frames.free_frame(mfn);
        n += 1;
    });
    if n > 0 {
        log::info!(
            "grant: {n} frames of ended domains scrubbed and freed (their last mapping went)"
        );
    }
}

impl<M: PhysMem + ?Sized, P: Peers + ?Sized> super::batch::OpMemory for DomainWorld<'_, M, P> {
    fn read<T: keel_abi::event::Pod>(
        &mut self,
        base: GuestVirt,
        i: u32,
    ) -> Result<T, keel_abi::Errno> {
        let mut b = [0u8; 64];
        let part = b.get_mut(..T::SIZE).ok_or(keel_abi::Errno::EFAULT)?;
        let va = base
            .get()
            .wrapping_add(u64::from(i).wrapping_mul(T::SIZE as u64));
        guest_mem::copy_from_guest(&*self.me, &*self.mem, GuestVirt::new(va), part)?;
        Ok(T::decode(part))
    }

    fn write<T: keel_abi::event::Pod>(
        &mut self,
        base: GuestVirt,
        i: u32,
        v: &T,
    ) -> Result<(), keel_abi::Errno> {
        let mut b = [0u8; 64];
        let part = b.get_mut(..T::SIZE).ok_or(keel_abi::Errno::EFAULT)?;
        v.encode(part);
        let va = base
            .get()
            .wrapping_add(u64::from(i).wrapping_mul(T::SIZE as u64));
        guest_mem::copy_to_guest(&*self.me, self.mem, GuestVirt::new(va), part)
    }

    fn write_words(&mut self, at: GuestVirt, words: &[u64]) -> Result<(), keel_abi::Errno> {
        for (k, w) in words.iter().enumerate() {
            let va = at.get().wrapping_add(8 * k as u64);
            guest_mem::copy_to_guest(&*self.me, self.mem, GuestVirt::new(va), &w.to_le_bytes())?;
        }
        Ok(())
    }
}
