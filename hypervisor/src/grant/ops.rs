//! The `grant_table_op` sub-commands, one operation at a time (the hypercall
//! layer copies each operation in and out and bounds the batch).
//!
//! The order of the checks, and so which status an operation with several
//! faults gets, is Xen's (`xen/common/grant_table.c`); where Keel is stricter
//! the function says so.

use super::entry::{self, Access};
use super::table::{GrantState, Mapping};
use super::{FrameRefusal, GrantStatus, GrantWorld};
use crate::addr::{GuestVirt, Mfn, PAGE_SIZE};
use crate::domain::DomainId;
use keel_abi::event::DOMID_SELF;
use keel_abi::grant_table::{
    CopyFlags, GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabUnmapGrantRef, GrantFlags,
    GrantHandle, MapFlags, GNTMAP_GUEST_AVAIL_MASK, GNTMAP_READONLY,
};

/// The map flags Keel refuses (`GNTMAP_device_map`, `application_map`,
/// `contains_pte`: no device, no user-mode or by-PTE mappings).
pub const MAP_REFUSED: u32 = (1 << 0) | (1 << 3) | (1 << 4);

/// Per-domain grant state for every domain, indexed by domain id.
pub type States<const F: usize, const M: usize> = [GrantState<F, M>];

fn state<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    d: DomainId,
) -> Option<&mut GrantState<F, M>> {
    st.get_mut(usize::from(d.0))
}

/// The domain an operation on "my own table" names: `DOMID_SELF` or the
/// caller's id. Another live domain is `GNTST_permission_denied` (Xen lets a
/// privileged toolstack act for others; Keel has no toolstack), anything else
/// `GNTST_bad_domain`.
pub fn own_domain(
    world: &impl GrantWorld,
    caller: DomainId,
    dom: u16,
) -> Result<DomainId, GrantStatus> {
    if dom == DOMID_SELF || dom == caller.0 {
        Ok(caller)
    } else if world.alive(DomainId(dom)) {
        Err(GrantStatus::PermissionDenied)
    } else {
        Err(GrantStatus::BadDomain)
    }
}

/// `GNTTABOP_setup_table`: grow the caller's table to `nr_frames` frames (it
/// never shrinks). The frames are then `st[caller].table.frames()`, which the
/// hypercall copies to `frame_list` (the first `nr_frames`).
pub fn setup_table<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    caller: DomainId,
    dom: u16,
    nr_frames: u32,
) -> Result<(), GrantStatus> {
    let d = own_domain(world, caller, dom)?;
    let s = state(st, d).ok_or(GrantStatus::BadDomain)?;
    if nr_frames as usize > s.table.max_frames() {
        return Err(GrantStatus::GeneralError);
    }
    while s.table.frames().len() < nr_frames as usize {
        let mfn = world
            .alloc_table_frame(d)
            .ok_or(GrantStatus::GeneralError)?;
        if !s.table.push_frame(mfn) {
            return Err(GrantStatus::GeneralError);
        }
    }
    Ok(())
}

/// `GNTTABOP_query_size`: `(nr_frames, max_nr_frames)`.
pub fn query_size<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &impl GrantWorld,
    caller: DomainId,
    dom: u16,
) -> Result<(u32, u32), GrantStatus> {
    let d = own_domain(world, caller, dom)?;
    let s = state(st, d).ok_or(GrantStatus::BadDomain)?;
    Ok((s.table.frames().len() as u32, s.table.max_frames() as u32))
}

/// The in-use flags to clear when a use of `access` that failed or ended
/// leaves `pins_ro`/`pins_rw` behind.
fn flags_to_clear(access: Access, pins_ro: u32, pins_rw: u32) -> GrantFlags {
    let mut f = GrantFlags::empty();
    if access == Access::Write && pins_rw == 0 {
        f |= GrantFlags::WRITING;
    }
    if pins_ro == 0 && pins_rw == 0 {
        f |= GrantFlags::READING;
    }
    f
}

/// Take `caller`'s use of `granter`'s reference `gref`: check the entry, set
/// its in-use flags, take a reference and a writable type reference on the
/// frame, and count the pin. Returns the frame.
fn grab<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    granter: DomainId,
    gref: u32,
    caller: DomainId,
    access: Access,
) -> Result<Mfn, GrantStatus> {
    let s = state(st, granter).ok_or(GrantStatus::BadDomain)?;
    let at = entry::locate(s.table.frames(), gref).ok_or(GrantStatus::BadGntref)?;
    let act = *s.table.active(gref).ok_or(GrantStatus::BadGntref)?;
    if act.pinned() && act.mapper != caller {
        return Err(GrantStatus::GeneralError);
    }
    let e = entry::acquire(world, at, caller, access)?;
    let mfn = Mfn::new(u64::from(e.frame));
    let undo = flags_to_clear(access, act.pins_ro, act.pins_rw);
    // A reference in use keeps its frame: an entry rewritten to grant another
    // frame while mapped is refused (reuse of a mapped reference).
    if act.pinned() && act.mfn != mfn {
        entry::release(world, at, undo);
        return Err(GrantStatus::GeneralError);
    }
    if world.get_page(granter, mfn).is_err() {
        entry::release(world, at, undo);
        return Err(GrantStatus::BadPage);
    }
    // Every use of a grant, read-only too, holds the frame's writable type:
    // a page table is never used through a grant, and a granted frame cannot
    // become a page table while in use.
    if let Err(why) = world.get_writable(granter, mfn) {
        world.put_page(granter, mfn);
        entry::release(world, at, undo);
        return Err(match why {
            FrameRefusal::NotOwned => GrantStatus::BadPage,
            FrameRefusal::WrongType => GrantStatus::GeneralError,
        });
    }
    let s = state(st, granter).ok_or(GrantStatus::BadDomain)?;
    let Some(a) = s.table.active_mut(gref) else {
        return Err(GrantStatus::BadGntref);
    };
    let was = a.pinned();
    a.mapper = caller;
    a.mfn = mfn;
    match access {
        Access::Read => a.pins_ro += 1,
        Access::Write => a.pins_rw += 1,
    }
    s.table.note_pin(was, true);
    Ok(mfn)
}

/// End one use taken by [`grab`].
fn drop_grab<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    granter: DomainId,
    gref: u32,
    access: Access,
) {
    let Some(s) = state(st, granter) else {
        return;
    };
    let at = entry::locate(s.table.frames(), gref);
    let Some(a) = s.table.active_mut(gref) else {
        return;
    };
    match access {
        Access::Read => a.pins_ro = a.pins_ro.saturating_sub(1),
        Access::Write => a.pins_rw = a.pins_rw.saturating_sub(1),
    }
    let (mfn, ro, rw) = (a.mfn, a.pins_ro, a.pins_rw);
    let now = a.pinned();
    s.table.note_pin(true, now);
    if s.table.orphaned() {
        // The granter has ended: its accounting already let the frame go
        // and its table frames are freed. The last use frees the frame.
        if !now && !s.table.frame_in_use(mfn, gref) {
            s.table.mark_reap(gref);
        }
        return;
    }
    world.put_writable(granter, mfn);
    world.put_page(granter, mfn);
    if let Some(at) = at {
        entry::release(world, at, flags_to_clear(access, ro, rw));
    }
}

/// Domain `dying` (a granter) ends while other domains may still map some
/// of its references: each such use is dropped from its frame accounting
/// (so its teardown check finds every count at zero), and its table is
/// marked orphaned, so that those frames are freed when their last use ends
/// ([`reap`]) instead of with the domain. Returns whether any reference was
/// still mapped (if none, the state can be reset at once). At most every
/// entry of the table.
pub fn orphan_grants<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    dying: DomainId,
) -> bool {
    let Some(s) = state(st, dying) else {
        return false;
    };
    if s.table.pinned_refs() == 0 {
        return false;
    }
    for gref in 0..s.table.entries() {
        let Some(a) = s.table.active(gref) else {
            continue;
        };
        for _ in 0..a.pins_ro.saturating_add(a.pins_rw) {
            world.put_writable(dying, a.mfn);
            world.put_page(dying, a.mfn);
        }
    }
    s.table.orphan();
    true
}

/// Free the frames of ended granters whose last use has ended (each handed
/// to `free`, which scrubs and returns it), and reset the state of an ended
/// granter nothing refers to any more. At most every entry of every table.
pub fn reap<const F: usize, const M: usize>(st: &mut States<F, M>, mut free: impl FnMut(Mfn)) {
    for s in st.iter_mut() {
        if !s.table.orphaned() {
            continue;
        }
        s.table.take_reaped(&mut free);
        if s.quiescent() {
            s.reset();
        }
    }
}

/// Whether `va` can hold a grant mapping at all: page-aligned, canonical, not 0.
pub fn mappable_address(va: GuestVirt) -> bool {
    va.get() != 0 && va.get().is_multiple_of(PAGE_SIZE) && va.is_canonical()
}

/// `GNTTABOP_map_grant_ref`: the new mapping's handle.
pub fn map_grant_ref<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    caller: DomainId,
    op: &GnttabMapGrantRef,
) -> Result<GrantHandle, GrantStatus> {
    let flags = MapFlags::from_bits_retain(op.flags & !GNTMAP_GUEST_AVAIL_MASK);
    if !flags.contains(MapFlags::HOST_MAP) {
        // Xen's answer for a map that asks for neither host nor device mapping.
        return Err(GrantStatus::BadGntref);
    }
    if op.flags & MAP_REFUSED != 0 {
        return Err(GrantStatus::GeneralError);
    }
    let granter = DomainId(op.dom);
    if !world.alive(granter) || state(st, granter).is_none() {
        return Err(GrantStatus::BadDomain);
    }
    let readonly = op.flags & GNTMAP_READONLY != 0;
    let access = if readonly {
        Access::Read
    } else {
        Access::Write
    };
    let va = GuestVirt::new(op.host_addr);
    // The handle first (Xen's order): a full maptrack is reported before a bad
    // reference.
    let mine = state(st, caller).ok_or(GrantStatus::BadDomain)?;
    let placeholder = Mapping {
        granter,
        gref: op.gref,
        va,
        mfn: Mfn::new(0),
        readonly,
    };
    let handle = mine
        .maptrack
        .insert(placeholder)
        .ok_or(GrantStatus::NoDeviceSpace)?;
    let release_handle = |st: &mut States<F, M>| {
        if let Some(s) = state(st, caller) {
            s.maptrack.remove(handle);
        }
    };
    let mfn = match grab(st, world, granter, op.gref, caller, access) {
        Ok(m) => m,
        Err(e) => {
            release_handle(st);
            return Err(e);
        }
    };
    let installed = if mappable_address(va) {
        world.install_mapping(caller, va, mfn, !readonly)
    } else {
        Err(GrantStatus::BadVirtAddr)
    };
    if let Err(e) = installed {
        drop_grab(st, world, granter, op.gref, access);
        release_handle(st);
        return Err(e);
    }
    if let Some(s) = state(st, caller) {
        s.maptrack.set(handle, Mapping { mfn, ..placeholder });
    }
    Ok(handle)
}

/// How many unmaps share one TLB flush.
pub const UNMAP_CHUNK: usize = 32;

/// `GNTTABOP_unmap_grant_ref` for a batch: each operation's status is written
/// to it. The entries go first, then one TLB flush, and only then are the
/// frame references dropped, so no frame can be reused while a stale
/// translation of it may exist.
///
/// `host_addr` must be the address the handle mapped (Xen answers
/// `GNTST_okay` for 0 and leaves the mapping in place; Keel refuses it with
/// `GNTST_general_error`: a mapping is undone at its address).
pub fn unmap_grant_refs<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    caller: DomainId,
    ops: &mut [GnttabUnmapGrantRef],
) {
    for chunk in ops.chunks_mut(UNMAP_CHUNK) {
        let mut removed: [Option<(GrantHandle, Mapping)>; UNMAP_CHUNK] = [None; UNMAP_CHUNK];
        let mut any = false;
        for (op, slot) in chunk.iter_mut().zip(removed.iter_mut()) {
            let r = detach(st, world, caller, op.handle, GuestVirt::new(op.host_addr));
            op.status = match r {
                Ok(m) => {
                    *slot = Some((op.handle, m));
                    any = true;
                    GrantStatus::Okay.code()
                }
                Err(e) => e.code(),
            };
        }
        if any {
            world.flush_tlb(caller);
        }
        for (h, m) in removed.iter().flatten() {
            finish_unmap(st, world, caller, *h, *m);
        }
    }
}

/// First half of an unmap: check the handle and address and clear the
/// page-table entry. The handle stays taken (and unusable) until
/// [`finish_unmap`].
fn detach<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    caller: DomainId,
    handle: GrantHandle,
    va: GuestVirt,
) -> Result<Mapping, GrantStatus> {
    let s = state(st, caller).ok_or(GrantStatus::BadHandle)?;
    let m = s.maptrack.get(handle).ok_or(GrantStatus::BadHandle)?;
    if m.va != va {
        return Err(GrantStatus::GeneralError);
    }
    world.remove_mapping(caller, m.va, m.mfn)?;
    s.maptrack.detach(handle);
    Ok(m)
}

/// Second half: drop the frame references, clear the in-use flags, free the
/// handle.
fn finish_unmap<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    caller: DomainId,
    handle: GrantHandle,
    m: Mapping,
) {
    let access = if m.readonly {
        Access::Read
    } else {
        Access::Write
    };
    drop_grab(st, world, m.granter, m.gref, access);
    if let Some(s) = state(st, caller) {
        s.maptrack.free_detached(handle);
    }
}

/// Tear down the mappings `dying` holds, continuing at maptrack slot
/// `cursor` and looking at no more than `budget` slots: `Some(next cursor)`
/// while slots remain, `None` when every mapping is gone. Each mapping is
/// unmapped as by `unmap_grant_ref` (entry cleared, TLB flushed, references
/// dropped), so the frames of other domains it mapped are released (and freed,
/// if their owner has gone).
pub fn release_mappings<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    dying: DomainId,
    cursor: usize,
    budget: usize,
) -> Option<usize> {
    let end = cursor.saturating_add(budget.max(1)).min(M);
    let mut detached: [Option<(GrantHandle, Mapping)>; UNMAP_CHUNK] = [None; UNMAP_CHUNK];
    let mut i = cursor;
    while i < end {
        let mut n = 0;
        while i < end && n < UNMAP_CHUNK {
            let h = i as GrantHandle;
            if let Some(s) = state(st, dying) {
                if let Some(m) = s.maptrack.get(h) {
                    // The address space is going away; the entry is cleared
                    // so its page-table teardown never meets a foreign frame.
                    let _ = world.remove_mapping(dying, m.va, m.mfn);
                    s.maptrack.detach(h);
                    if let Some(slot) = detached.get_mut(n) {
                        *slot = Some((h, m));
                    }
                    n += 1;
                }
            }
            i += 1;
        }
        if n > 0 {
            world.flush_tlb(dying);
        }
        for slot in detached.iter_mut().take(n) {
            if let Some((h, m)) = slot.take() {
                finish_unmap(st, world, dying, h, m);
            }
        }
    }
    if end < M {
        Some(end)
    } else {
        None
    }
}

/// One end of a copy, once resolved.
#[derive(Clone, Copy, Debug)]
struct End {
    owner: DomainId,
    mfn: Mfn,
    /// `(granter, reference, use)` when the end is a grant.
    grant: Option<(DomainId, u32, Access)>,
    /// A writable type reference is held (own destination frame).
    typed: bool,
}

fn take_end<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    caller: DomainId,
    p: &GnttabCopyPtr,
    by_gref: bool,
    access: Access,
) -> Result<End, GrantStatus> {
    if by_gref {
        let granter = if p.domid == DOMID_SELF {
            caller
        } else {
            DomainId(p.domid)
        };
        if !world.alive(granter) || state(st, granter).is_none() {
            return Err(GrantStatus::BadDomain);
        }
        let gref = p.u as u32;
        let mfn = grab(st, world, granter, gref, caller, access)?;
        return Ok(End {
            owner: granter,
            mfn,
            grant: Some((granter, gref, access)),
            typed: false,
        });
    }
    // By frame: only the caller's own (Xen: "only allow copy-by-mfn for DOMID_SELF").
    if p.domid != DOMID_SELF {
        return Err(GrantStatus::PermissionDenied);
    }
    let mfn = Mfn::new(p.u);
    world
        .get_page(caller, mfn)
        .map_err(|_| GrantStatus::BadPage)?;
    if access == Access::Write {
        if let Err(why) = world.get_writable(caller, mfn) {
            world.put_page(caller, mfn);
            return Err(match why {
                FrameRefusal::NotOwned => GrantStatus::BadPage,
                FrameRefusal::WrongType => GrantStatus::GeneralError,
            });
        }
    }
    Ok(End {
        owner: caller,
        mfn,
        grant: None,
        typed: access == Access::Write,
    })
}

fn put_end<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    e: End,
) {
    match e.grant {
        Some((granter, gref, access)) => drop_grab(st, world, granter, gref, access),
        None => {
            if e.typed {
                world.put_writable(e.owner, e.mfn);
            }
            world.put_page(e.owner, e.mfn);
        }
    }
}

/// `GNTTABOP_copy`: copy `len` bytes; each end is a grant of another domain
/// (its `GNTCOPY_*_gref` flag) or the caller's own frame.
pub fn copy<const F: usize, const M: usize>(
    st: &mut States<F, M>,
    world: &mut impl GrantWorld,
    caller: DomainId,
    op: &GnttabCopy,
) -> Result<(), GrantStatus> {
    let flags = CopyFlags::from_bits_retain(op.flags);
    if !(CopyFlags::SOURCE_GREF | CopyFlags::DEST_GREF).contains(flags) {
        return Err(GrantStatus::GeneralError);
    }
    let fits = |p: &GnttabCopyPtr| u64::from(p.offset) + u64::from(op.len) <= PAGE_SIZE;
    if !fits(&op.source) || !fits(&op.dest) {
        return Err(GrantStatus::BadCopyArg);
    }
    let src = take_end(
        st,
        world,
        caller,
        &op.source,
        flags.contains(CopyFlags::SOURCE_GREF),
        Access::Read,
    )?;
    let dst = match take_end(
        st,
        world,
        caller,
        &op.dest,
        flags.contains(CopyFlags::DEST_GREF),
        Access::Write,
    ) {
        Ok(d) => d,
        Err(e) => {
            put_end(st, world, src);
            return Err(e);
        }
    };
    world.copy_bytes(src.mfn, op.source.offset, dst.mfn, op.dest.offset, op.len);
    put_end(st, world, dst);
    put_end(st, world, src);
    Ok(())
}
