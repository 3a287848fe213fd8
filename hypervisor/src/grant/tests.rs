//! The grant policy against a model of the rest of the hypervisor: frames with
//! owners, reference and type counts, the mappers' page-table entries, the
//! table frames' bytes, and a log of the order of effects.

extern crate std;

use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use super::entry::{self, CMPXCHG_TRIES};
use super::ops::{self, release_mappings, unmap_grant_refs};
use super::table::GrantState;
use super::{FrameRefusal, GrantStatus, GrantWorld};
use crate::addr::{GuestVirt, Mfn, PAGE_SIZE};
use crate::domain::DomainId;
use keel_abi::event::DOMID_SELF;
use keel_abi::grant_table::*;
use proptest::prelude::*;

const F: usize = 2;
const M: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    None,
    Writable,
    PageTable,
}

#[derive(Clone, Debug)]
struct Frame {
    owner: DomainId,
    refs: u64,
    ty: Ty,
    type_count: u32,
    bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Flush(DomainId),
    PutPage(Mfn),
    Remove(DomainId, GuestVirt),
}

#[derive(Default)]
struct World {
    alive: Vec<bool>,
    frames: BTreeMap<u64, Frame>,
    ptes: BTreeMap<(u16, u64), (Mfn, bool)>,
    freed: Vec<Mfn>,
    log: Vec<Ev>,
    next_table: u64,
    /// The granter rewrites this word between the hypervisor's read and its
    /// exchange, this many times.
    race: u32,
    cmpxchgs: u32,
}

impl World {
    fn new(domains: usize) -> Self {
        World {
            alive: vec![true; domains],
            next_table: 0x9000,
            ..Default::default()
        }
    }
    fn frame(&mut self, owner: u16, mfn: u64) -> Mfn {
        self.frames.insert(
            mfn,
            Frame {
                owner: DomainId(owner),
                refs: 0,
                ty: Ty::None,
                type_count: 0,
                bytes: vec![0; PAGE_SIZE as usize],
            },
        );
        Mfn::new(mfn)
    }
    fn make_page_table(&mut self, mfn: Mfn) -> bool {
        let f = self.frames.get_mut(&mfn.get()).unwrap();
        if f.type_count != 0 && f.ty != Ty::PageTable {
            return false;
        }
        f.ty = Ty::PageTable;
        f.type_count += 1;
        true
    }
    /// Domain `d` is gone: its frames are freed, but those in `keep` (still
    /// mapped by others: they outlive it).
    fn kill(&mut self, d: u16, keep: &[Mfn]) {
        self.alive[d as usize] = false;
        let dead: Vec<u64> = self
            .frames
            .iter()
            .filter(|(m, f)| f.owner == DomainId(d) && !keep.contains(&Mfn::new(**m)))
            .map(|(m, _)| *m)
            .collect();
        for m in dead {
            self.frames.remove(&m);
            self.freed.push(Mfn::new(m));
        }
    }
    /// A frame that outlived its owner is freed (its last use ended).
    fn free_orphan(&mut self, mfn: Mfn) {
        let f = self
            .frames
            .remove(&mfn.get())
            .expect("an orphan freed twice or unknown");
        assert!(
            !self.alive(f.owner),
            "a live domain's frame freed as an orphan"
        );
        assert_eq!((f.refs, f.type_count), (0, 0));
        self.freed.push(mfn);
    }
    fn refs(&self, mfn: Mfn) -> u64 {
        self.frames.get(&mfn.get()).map_or(0, |f| f.refs)
    }
    fn type_count(&self, mfn: Mfn) -> u32 {
        self.frames.get(&mfn.get()).map_or(0, |f| f.type_count)
    }
    fn word(&self, frame: Mfn, off: u64) -> u64 {
        let b = &self.frames[&frame.get()].bytes[off as usize..off as usize + 8];
        u64::from_le_bytes(b.try_into().unwrap())
    }
    fn set_word(&mut self, frame: Mfn, off: u64, v: u64) {
        let b = &mut self.frames.get_mut(&frame.get()).unwrap().bytes;
        b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    }
}

impl GrantWorld for World {
    fn alive(&self, d: DomainId) -> bool {
        self.alive.get(d.0 as usize).copied().unwrap_or(false)
    }
    fn get_page(&mut self, owner: DomainId, mfn: Mfn) -> Result<(), FrameRefusal> {
        let alive = self.alive(owner);
        match self.frames.get_mut(&mfn.get()) {
            Some(f) if f.owner == owner && alive => {
                f.refs += 1;
                Ok(())
            }
            _ => Err(FrameRefusal::NotOwned),
        }
    }
    fn put_page(&mut self, owner: DomainId, mfn: Mfn) {
        self.log.push(Ev::PutPage(mfn));
        assert!(self.alive(owner), "a dead owner's accounting touched");
        let f = self
            .frames
            .get_mut(&mfn.get())
            .expect("put_page of an unknown frame");
        assert_eq!(f.owner, owner);
        assert!(f.refs > 0, "reference count underflow");
        f.refs -= 1;
    }
    fn get_writable(&mut self, owner: DomainId, mfn: Mfn) -> Result<(), FrameRefusal> {
        match self.frames.get_mut(&mfn.get()) {
            Some(f) if f.owner == owner => {
                if f.type_count != 0 && f.ty != Ty::Writable {
                    return Err(FrameRefusal::WrongType);
                }
                f.ty = Ty::Writable;
                f.type_count += 1;
                Ok(())
            }
            _ => Err(FrameRefusal::NotOwned),
        }
    }
    fn put_writable(&mut self, owner: DomainId, mfn: Mfn) {
        assert!(self.alive(owner), "a dead owner's accounting touched");
        let f = self
            .frames
            .get_mut(&mfn.get())
            .expect("put_writable of an unknown frame");
        assert_eq!(f.owner, owner);
        assert!(
            f.ty == Ty::Writable && f.type_count > 0,
            "type count underflow"
        );
        f.type_count -= 1;
    }
    fn install_mapping(
        &mut self,
        mapper: DomainId,
        va: GuestVirt,
        mfn: Mfn,
        writable: bool,
    ) -> Result<(), GrantStatus> {
        if va.get() >= 0x8000_0000 || self.ptes.contains_key(&(mapper.0, va.get())) {
            return Err(GrantStatus::BadVirtAddr);
        }
        self.ptes.insert((mapper.0, va.get()), (mfn, writable));
        Ok(())
    }
    fn remove_mapping(
        &mut self,
        mapper: DomainId,
        va: GuestVirt,
        mfn: Mfn,
    ) -> Result<(), GrantStatus> {
        match self.ptes.get(&(mapper.0, va.get())) {
            Some((m, _)) if *m == mfn => {
                self.ptes.remove(&(mapper.0, va.get()));
                self.log.push(Ev::Remove(mapper, va));
                Ok(())
            }
            _ => Err(GrantStatus::GeneralError),
        }
    }
    fn flush_tlb(&mut self, mapper: DomainId) {
        self.log.push(Ev::Flush(mapper));
    }
    fn alloc_table_frame(&mut self, d: DomainId) -> Option<Mfn> {
        self.next_table += 1;
        let m = self.next_table;
        let f = self.frame(d.0, m);
        // The table holds its frames until the domain's grant state is dropped.
        self.frames.get_mut(&m).unwrap().refs = 1;
        Some(f)
    }
    fn read_u64(&self, frame: Mfn, offset: u64) -> u64 {
        self.word(frame, offset)
    }
    fn cmpxchg_u32(&mut self, frame: Mfn, offset: u64, old: u32, new: u32) -> u32 {
        self.cmpxchgs += 1;
        let w = self.word(frame, offset);
        if self.race > 0 {
            // The granter toggles a bit it may change (GTF_PWT) under us.
            self.race -= 1;
            let raced = w ^ 0x20;
            self.set_word(frame, offset, raced);
            return raced as u32;
        }
        if w as u32 == old {
            self.set_word(frame, offset, (w & !0xffff_ffff) | u64::from(new));
        }
        w as u32
    }
    fn clear_bits_u16(&mut self, frame: Mfn, offset: u64, bits: u16) {
        let w = self.word(frame, offset);
        self.set_word(frame, offset, w & !u64::from(bits));
    }
    fn copy_bytes(&mut self, src: Mfn, src_off: u16, dst: Mfn, dst_off: u16, len: u16) {
        let s = self.frames[&src.get()].bytes[src_off as usize..][..len as usize].to_vec();
        self.frames.get_mut(&dst.get()).unwrap().bytes[dst_off as usize..][..len as usize]
            .copy_from_slice(&s);
    }
}

struct Sys {
    st: Vec<GrantState<F, M>>,
    w: World,
}

const D1: DomainId = DomainId(1);
const D2: DomainId = DomainId(2);
const D3: DomainId = DomainId(3);
const VA: u64 = 0x40_0000;

impl Sys {
    /// Domains 1, 2, 3 (0 unused), each with a one-frame table.
    fn new() -> Self {
        let mut s = Sys {
            st: (0..4).map(|_| GrantState::new()).collect(),
            w: World::new(4),
        };
        for d in 1..4 {
            ops::setup_table(&mut s.st, &mut s.w, DomainId(d), DOMID_SELF, 1).unwrap();
        }
        s
    }
    /// Granter `g` writes entry `gref`: `frame` for `to`, with `flags`.
    fn grant(&mut self, g: DomainId, gref: u32, to: DomainId, frame: Mfn, flags: u16) {
        let (f, off) = entry::locate(self.st[g.0 as usize].table.frames(), gref).unwrap();
        let v = u64::from(flags) | u64::from(to.0) << 16 | frame.get() << 32;
        self.w.set_word(f, off, v);
    }
    fn flags(&self, g: DomainId, gref: u32) -> u16 {
        let (f, off) = entry::locate(self.st[g.0 as usize].table.frames(), gref).unwrap();
        self.w.word(f, off) as u16
    }
    fn map(
        &mut self,
        me: DomainId,
        g: DomainId,
        gref: u32,
        va: u64,
        flags: u32,
    ) -> Result<u32, GrantStatus> {
        let op = GnttabMapGrantRef {
            host_addr: va,
            flags,
            gref,
            dom: g.0,
            ..Default::default()
        };
        ops::map_grant_ref(&mut self.st, &mut self.w, me, &op)
    }
    fn unmap(&mut self, me: DomainId, handle: u32, va: u64) -> i16 {
        let mut op = [GnttabUnmapGrantRef {
            host_addr: va,
            handle,
            ..Default::default()
        }];
        unmap_grant_refs(&mut self.st, &mut self.w, me, &mut op);
        op[0].status
    }
    fn copy(&mut self, me: DomainId, op: GnttabCopy) -> Result<(), GrantStatus> {
        ops::copy(&mut self.st, &mut self.w, me, &op)
    }
    /// Domain `d` ends, in the hypervisor's order: the mappings it holds go,
    /// the uses others make of its grants leave its accounting, its frames
    /// are freed but those still mapped, then whatever can be reaped is.
    fn end(&mut self, d: u16) {
        let id = DomainId(d);
        let mut c = 0;
        while let Some(n) = release_mappings(&mut self.st, &mut self.w, id, c, 4) {
            c = n;
        }
        let outlived = ops::orphan_grants(&mut self.st, &mut self.w, id);
        let t = &self.st[d as usize].table;
        let keep: Vec<Mfn> = (0..t.entries())
            .filter_map(|g| t.active(g).filter(|a| a.pinned()).map(|a| a.mfn))
            .collect();
        assert_eq!(outlived, !keep.is_empty());
        for f in self.st[d as usize].table.frames().to_vec() {
            self.w.put_page(id, f);
        }
        // The teardown check: every count of the domain's frames back to zero.
        for (m, f) in &self.w.frames {
            // (A page-table type is the domain's own, dropped by its paging.)
            if f.owner == id && f.ty != Ty::PageTable {
                assert_eq!((f.refs, f.type_count), (0, 0), "frame {m:#x} at teardown");
            }
        }
        if !outlived {
            self.st[d as usize].reset();
        }
        self.w.kill(d, &keep);
        self.reap();
    }
    fn reap(&mut self) {
        let w = &mut self.w;
        ops::reap(&mut self.st, |m| w.free_orphan(m));
    }
}

const RW: u32 = GNTMAP_HOST_MAP;
const RO: u32 = GNTMAP_HOST_MAP | GNTMAP_READONLY;
const PERMIT: u16 = GTF_PERMIT_ACCESS;

#[test]
fn setup_and_query() {
    let mut s = Sys::new();
    assert_eq!(
        ops::query_size(&mut s.st, &s.w, D1, DOMID_SELF),
        Ok((1, F as u32))
    );
    ops::setup_table(&mut s.st, &mut s.w, D1, 1, 2).unwrap();
    assert_eq!(ops::query_size(&mut s.st, &s.w, D1, 1), Ok((2, 2)));
    // Never shrinks; the same frames are listed again.
    let frames = s.st[1].table.frames().to_vec();
    ops::setup_table(&mut s.st, &mut s.w, D1, DOMID_SELF, 1).unwrap();
    assert_eq!(s.st[1].table.frames(), &frames[..]);
    assert_eq!(
        ops::setup_table(&mut s.st, &mut s.w, D1, DOMID_SELF, F as u32 + 1),
        Err(GrantStatus::GeneralError)
    );
    assert_eq!(
        ops::setup_table(&mut s.st, &mut s.w, D1, 2, 1),
        Err(GrantStatus::PermissionDenied)
    );
    assert_eq!(
        ops::query_size(&mut s.st, &s.w, D1, 9),
        Err(GrantStatus::BadDomain)
    );
    assert_eq!(
        ops::query_size(&mut s.st, &s.w, D1, 2),
        Err(GrantStatus::PermissionDenied)
    );
}

#[test]
fn map_and_unmap_writable() {
    let mut s = Sys::new();
    let f = s.w.frame(1, 0x100);
    s.grant(D1, 5, D2, f, PERMIT);
    let h = s.map(D2, D1, 5, VA, RW).unwrap();
    assert_eq!(s.flags(D1, 5), PERMIT | GTF_READING | GTF_WRITING);
    assert_eq!((s.w.refs(f), s.w.type_count(f)), (1, 1));
    assert_eq!(s.w.ptes[&(2, VA)], (f, true));
    // While mapped the frame cannot become a page table of its owner.
    assert!(!s.w.make_page_table(f));
    assert_eq!(s.unmap(D2, h, VA), GNTST_OKAY);
    assert_eq!(s.flags(D1, 5), PERMIT);
    assert_eq!((s.w.refs(f), s.w.type_count(f)), (0, 0));
    assert!(s.w.ptes.is_empty());
    assert!(s.st.iter().all(|x| x.quiescent()));
    assert!(s.w.make_page_table(f));
}

#[test]
fn read_only_grants_map_read_only_only() {
    let mut s = Sys::new();
    let f = s.w.frame(1, 0x100);
    s.grant(D1, 1, D2, f, PERMIT | GTF_READONLY);
    assert_eq!(s.map(D2, D1, 1, VA, RW), Err(GrantStatus::GeneralError));
    assert_eq!(s.flags(D1, 1), PERMIT | GTF_READONLY);
    assert_eq!(s.w.refs(f), 0);
    let h = s.map(D2, D1, 1, VA, RO).unwrap();
    assert_eq!(s.flags(D1, 1), PERMIT | GTF_READONLY | GTF_READING);
    assert_eq!(s.w.ptes[&(2, VA)], (f, false));
    // A read-only mapping holds the writable type too: no page table meanwhile.
    assert!(!s.w.make_page_table(f));
    assert_eq!(s.unmap(D2, h, VA), GNTST_OKAY);
    assert_eq!(s.flags(D1, 1), PERMIT | GTF_READONLY);
}

#[test]
fn every_refusal_of_map_leaves_nothing_behind() {
    let mut s = Sys::new();
    let f = s.w.frame(1, 0x100);
    let pt = s.w.frame(1, 0x101);
    assert!(s.w.make_page_table(pt));
    let other = s.w.frame(3, 0x102);
    s.grant(D1, 1, D2, f, PERMIT);
    s.grant(D1, 2, D2, pt, PERMIT);
    s.grant(D1, 3, D2, other, PERMIT);
    s.grant(D1, 4, D3, f, PERMIT);
    s.grant(D1, 6, D2, f, 0);
    let cases: &[(u16, u32, u32, u64, GrantStatus)] = &[
        (1, 1, 0, VA, GrantStatus::BadGntref),         // no host_map
        (1, 1, RW | 1, VA, GrantStatus::GeneralError), // device_map
        (1, 1, RW | 1 << 3, VA, GrantStatus::GeneralError), // application_map
        (9, 1, RW, VA, GrantStatus::BadDomain),        // no such domain
        (DOMID_SELF, 1, RW, VA, GrantStatus::BadDomain), // Xen's rule
        (1, 512, RW, VA, GrantStatus::BadGntref),      // beyond the table
        (1, u32::MAX, RW, VA, GrantStatus::BadGntref),
        (1, 2, RW, VA, GrantStatus::GeneralError), // a page table, writable
        (1, 2, RO, VA, GrantStatus::GeneralError), // a page table, read-only
        (1, 3, RW, VA, GrantStatus::BadPage),      // not the granter's frame
        (1, 4, RW, VA, GrantStatus::GeneralError), // granted to another domain
        (1, 6, RW, VA, GrantStatus::GeneralError), // not a grant
        (1, 7, RW, VA, GrantStatus::GeneralError), // an empty entry
        (1, 1, RW, VA + 1, GrantStatus::BadVirtAddr), // misaligned
        (1, 1, RW, 0, GrantStatus::BadVirtAddr),   // null
        (1, 1, RW, 0x8000_0000_0000, GrantStatus::BadVirtAddr), // non-canonical
        (1, 1, RW, 0x9000_0000, GrantStatus::BadVirtAddr), // the world refuses it
    ];
    for &(dom, gref, flags, va, want) in cases {
        assert_eq!(
            s.map(D2, DomainId(dom), gref, va, flags),
            Err(want),
            "dom {dom} ref {gref} flags {flags:#x} va {va:#x}"
        );
        for g in 1..8 {
            assert_eq!(
                s.flags(D1, g) & (GTF_READING | GTF_WRITING),
                0,
                "ref {g} left in use"
            );
        }
        assert_eq!((s.w.refs(f), s.w.type_count(f)), (0, 0));
        assert_eq!(s.w.refs(pt), 0);
        assert!(s.st.iter().all(|x| x.quiescent()), "a handle leaked");
    }
    // The same without the table: every reference is out of bounds.
    s.st[1] = GrantState::new();
    assert_eq!(s.map(D2, D1, 0, VA, RW), Err(GrantStatus::BadGntref));
}

#[test]
fn revoked_or_rewritten_references_are_refused_while_mapped() {
    let mut s = Sys::new();
    let f = s.w.frame(1, 0x100);
    let g = s.w.frame(1, 0x101);
    s.grant(D1, 1, D2, f, PERMIT);
    let h = s.map(D2, D1, 1, VA, RO).unwrap();
    // Revoked (the granter wrote the entry regardless of GTF_reading).
    s.grant(D1, 1, D2, f, GTF_READING);
    assert_eq!(
        s.map(D2, D1, 1, VA + PAGE_SIZE, RO),
        Err(GrantStatus::GeneralError)
    );
    // Re-granted with another frame while mapped: no reuse.
    s.grant(D1, 1, D2, g, PERMIT | GTF_READING);
    assert_eq!(
        s.map(D2, D1, 1, VA + PAGE_SIZE, RO),
        Err(GrantStatus::GeneralError)
    );
    assert_eq!(s.w.refs(g), 0);
    // Re-granted to a third domain while mapped: refused to it.
    s.grant(D1, 1, D3, f, PERMIT | GTF_READING);
    assert_eq!(s.map(D3, D1, 1, VA, RO), Err(GrantStatus::GeneralError));
    // The existing mapping is intact and unmaps cleanly.
    assert_eq!(s.w.ptes[&(2, VA)], (f, false));
    assert_eq!(s.unmap(D2, h, VA), GNTST_OKAY);
    assert_eq!((s.w.refs(f), s.w.type_count(f)), (0, 0));
    assert!(s.st.iter().all(|x| x.quiescent()));
}

#[test]
fn a_second_mapping_of_a_pinned_reference_shares_its_frame() {
    let mut s = Sys::new();
    let f = s.w.frame(1, 0x100);
    s.grant(D1, 1, D2, f, PERMIT);
    let a = s.map(D2, D1, 1, VA, RO).unwrap();
    let b = s.map(D2, D1, 1, VA + PAGE_SIZE, RW).unwrap();
    assert_eq!(s.flags(D1, 1), PERMIT | GTF_READING | GTF_WRITING);
    assert_eq!(s.w.refs(f), 2);
    assert_eq!(s.unmap(D2, b, VA + PAGE_SIZE), GNTST_OKAY);
    // The writable use ended; the read-only one goes on.
    assert_eq!(s.flags(D1, 1), PERMIT | GTF_READING);
    assert_eq!(s.unmap(D2, a, VA), GNTST_OKAY);
    assert_eq!(s.flags(D1, 1), PERMIT);
}

#[test]
fn maptrack_exhaustion_and_handle_reuse() {
    let mut s = Sys::new();
    let f = s.w.frame(1, 0x100);
    s.grant(D1, 1, D2, f, PERMIT);
    let hs: Vec<u32> = (0..M as u64)
        .map(|i| s.map(D2, D1, 1, VA + i * PAGE_SIZE, RO).unwrap())
        .collect();
    assert_eq!(hs, (0..M as u32).collect::<Vec<_>>());
    assert_eq!(
        s.map(D2, D1, 1, 0x7000_0000, RO),
        Err(GrantStatus::NoDeviceSpace)
    );
    assert_eq!(s.unmap(D2, 3, VA + 3 * PAGE_SIZE), GNTST_OKAY);
    assert_eq!(s.map(D2, D1, 1, 0x7000_0000, RO), Ok(3));
}

#[test]
fn unmap_refusals_and_the_flush_comes_before_the_frame_is_released() {
    let mut s = Sys::new();
    let f = s.w.frame(1, 0x100);
    s.grant(D1, 1, D2, f, PERMIT);
    let h = s.map(D2, D1, 1, VA, RW).unwrap();
    assert_eq!(s.unmap(D2, h + 1, VA), GNTST_BAD_HANDLE);
    assert_eq!(s.unmap(D2, u32::MAX, VA), GNTST_BAD_HANDLE);
    assert_eq!(s.unmap(D2, h, 0), GNTST_GENERAL_ERROR);
    assert_eq!(s.unmap(D2, h, VA + PAGE_SIZE), GNTST_GENERAL_ERROR);
    assert_eq!(s.unmap(D1, h, VA), GNTST_BAD_HANDLE); // not D1's mapping
    s.w.log.clear();
    let mut ops = [
        GnttabUnmapGrantRef {
            host_addr: VA,
            handle: h,
            ..Default::default()
        },
        GnttabUnmapGrantRef {
            host_addr: VA,
            handle: h,
            ..Default::default()
        },
    ];
    unmap_grant_refs(&mut s.st, &mut s.w, D2, &mut ops);
    assert_eq!(
        (ops[0].status, ops[1].status),
        (GNTST_OKAY, GNTST_BAD_HANDLE)
    );
    assert_eq!(
        s.w.log,
        vec![
            Ev::Remove(D2, GuestVirt::new(VA)),
            Ev::Flush(D2),
            Ev::PutPage(f)
        ]
    );
    assert_eq!(s.unmap(D2, h, VA), GNTST_BAD_HANDLE);
}

#[test]
fn a_mapped_frame_outlives_its_owner_and_is_freed_at_unmap() {
    let mut s = Sys::new();
    let f = s.w.frame(1, 0x100);
    let g = s.w.frame(1, 0x101);
    s.grant(D1, 1, D2, f, PERMIT);
    // The same frame under two references, and a second frame.
    s.grant(D1, 2, D3, f, PERMIT | GTF_READONLY);
    s.grant(D1, 3, D2, g, PERMIT);
    let h1 = s.map(D2, D1, 1, VA, RW).unwrap();
    let h2 = s.map(D3, D1, 2, VA, RO).unwrap();
    let h3 = s.map(D2, D1, 3, VA + PAGE_SIZE, RW).unwrap();
    s.w.set_word(f, 0, 0x5a5a);
    s.end(1);
    assert!(
        !s.w.freed.contains(&f) && !s.w.freed.contains(&g),
        "freed while mapped"
    );
    assert!(
        s.st[1].table.orphaned(),
        "the dead granter's state is still needed"
    );
    // The mappings still reach the data; the granter's table is no longer
    // written (its frames are gone).
    assert_eq!(s.w.word(f, 0), 0x5a5a);
    // No new use of a dead domain's grants.
    assert_eq!(
        s.map(D2, D1, 1, VA + 2 * PAGE_SIZE, RW),
        Err(GrantStatus::BadDomain)
    );
    assert_eq!(s.unmap(D2, h1, VA), GNTST_OKAY);
    s.reap();
    assert!(
        !s.w.freed.contains(&f),
        "freed while another reference maps it"
    );
    assert_eq!(s.unmap(D3, h2, VA), GNTST_OKAY);
    s.reap();
    assert!(s.w.freed.contains(&f), "the last unmap frees the frame");
    assert!(!s.w.freed.contains(&g));
    // The mapper's end releases the last one.
    let _ = h3;
    s.end(2);
    assert!(s.w.freed.contains(&g));
    assert_eq!(s.w.freed.iter().filter(|m| **m == f).count(), 1);
    assert!(
        s.st[1].quiescent() && !s.st[1].table.orphaned(),
        "reset once nothing refers to it"
    );
}

#[test]
fn a_dying_mapper_releases_everything_within_its_budget() {
    let mut s = Sys::new();
    let f = s.w.frame(1, 0x100);
    s.grant(D1, 1, D2, f, PERMIT);
    for i in [0u64, 2, 5, 7] {
        s.map(D2, D1, 1, VA + i * PAGE_SIZE, RW).unwrap();
    }
    s.w.kill(2, &[]);
    let mut cursor = 0;
    let mut calls = 0;
    while let Some(next) = release_mappings(&mut s.st, &mut s.w, D2, cursor, 3) {
        assert!(next > cursor && next - cursor <= 3);
        cursor = next;
        calls += 1;
    }
    assert_eq!(calls, (M - 1) / 3);
    assert!(s.st.iter().all(|x| x.quiescent()));
    assert_eq!((s.w.refs(f), s.w.type_count(f)), (0, 0));
    assert_eq!(s.flags(D1, 1), PERMIT);
    assert!(s.w.ptes.is_empty());
}

fn gref_end(dom: DomainId, gref: u32, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr {
        u: u64::from(gref),
        domid: dom.0,
        offset,
    }
}
fn own_end(mfn: Mfn, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr {
        u: mfn.get(),
        domid: DOMID_SELF,
        offset,
    }
}

#[test]
fn copy_through_grants_both_ways() {
    let mut s = Sys::new();
    let theirs = s.w.frame(1, 0x100);
    let mine = s.w.frame(2, 0x200);
    s.w.frames.get_mut(&0x100).unwrap().bytes[16..20].copy_from_slice(b"keel");
    s.grant(D1, 1, D2, theirs, PERMIT | GTF_READONLY);
    s.grant(D1, 2, D2, theirs, PERMIT);
    let op = GnttabCopy {
        source: gref_end(D1, 1, 16),
        dest: own_end(mine, 100),
        len: 4,
        flags: GNTCOPY_SOURCE_GREF,
        status: 0,
    };
    s.copy(D2, op).unwrap();
    assert_eq!(&s.w.frames[&0x200].bytes[100..104], b"keel");
    assert_eq!(s.flags(D1, 1), PERMIT | GTF_READONLY);
    // Back, into the writable grant.
    let back = GnttabCopy {
        source: own_end(mine, 100),
        dest: gref_end(D1, 2, 4000),
        len: 4,
        flags: GNTCOPY_DEST_GREF,
        status: 0,
    };
    s.copy(D2, back).unwrap();
    assert_eq!(&s.w.frames[&0x100].bytes[4000..4004], b"keel");
    assert_eq!(s.flags(D1, 2), PERMIT);
    assert_eq!(
        (s.w.refs(theirs), s.w.refs(mine), s.w.type_count(mine)),
        (0, 0, 0)
    );
    // A copy leaves a mapping's in-use flags alone.
    let h = s.map(D2, D1, 2, VA, RO).unwrap();
    s.copy(D2, back).unwrap();
    assert_eq!(s.flags(D1, 2), PERMIT | GTF_READING);
    assert_eq!(s.unmap(D2, h, VA), GNTST_OKAY);
}

#[test]
fn copy_refusals() {
    let mut s = Sys::new();
    let theirs = s.w.frame(1, 0x100);
    let mine = s.w.frame(2, 0x200);
    let my_pt = s.w.frame(2, 0x201);
    assert!(s.w.make_page_table(my_pt));
    s.grant(D1, 1, D2, theirs, PERMIT | GTF_READONLY);
    let base = GnttabCopy {
        source: gref_end(D1, 1, 0),
        dest: own_end(mine, 0),
        len: 8,
        flags: GNTCOPY_SOURCE_GREF,
        status: 0,
    };
    let cases = [
        (GnttabCopy { len: 4097, ..base }, GrantStatus::BadCopyArg),
        (
            GnttabCopy {
                dest: own_end(mine, 4090),
                ..base
            },
            GrantStatus::BadCopyArg,
        ),
        (
            GnttabCopy {
                source: gref_end(D1, 1, 4089),
                ..base
            },
            GrantStatus::BadCopyArg,
        ),
        (GnttabCopy { flags: 4, ..base }, GrantStatus::GeneralError),
        (
            GnttabCopy {
                source: gref_end(DomainId(9), 1, 0),
                ..base
            },
            GrantStatus::BadDomain,
        ),
        (
            GnttabCopy {
                source: gref_end(D1, 600, 0),
                ..base
            },
            GrantStatus::BadGntref,
        ),
        // Into a read-only grant.
        (
            GnttabCopy {
                source: own_end(mine, 0),
                dest: gref_end(D1, 1, 0),
                flags: GNTCOPY_DEST_GREF,
                ..base
            },
            GrantStatus::GeneralError,
        ),
        // Another domain's frame without a grant.
        (
            GnttabCopy {
                source: GnttabCopyPtr {
                    u: 0x100,
                    domid: 1,
                    offset: 0,
                },
                flags: 0,
                ..base
            },
            GrantStatus::PermissionDenied,
        ),
        (
            GnttabCopy {
                source: own_end(theirs, 0),
                flags: 0,
                ..base
            },
            GrantStatus::BadPage,
        ),
        (
            GnttabCopy {
                dest: own_end(theirs, 0),
                ..base
            },
            GrantStatus::BadPage,
        ),
        // Never into one's own page table.
        (
            GnttabCopy {
                dest: own_end(my_pt, 0),
                ..base
            },
            GrantStatus::GeneralError,
        ),
    ];
    for (op, want) in cases {
        assert_eq!(s.copy(D2, op), Err(want), "{op:?}");
        assert_eq!(s.flags(D1, 1), PERMIT | GTF_READONLY);
        assert_eq!(
            (s.w.refs(theirs), s.w.refs(mine), s.w.type_count(mine)),
            (0, 0, 0)
        );
        assert!(s.st.iter().all(|x| x.quiescent()));
    }
}

#[test]
fn a_racing_granter_is_retried_then_refused() {
    let mut s = Sys::new();
    let f = s.w.frame(1, 0x100);
    s.grant(D1, 1, D2, f, PERMIT);
    s.w.race = CMPXCHG_TRIES - 1;
    let h = s.map(D2, D1, 1, VA, RW).unwrap();
    assert_eq!(s.unmap(D2, h, VA), GNTST_OKAY);
    s.w.race = u32::MAX;
    s.w.cmpxchgs = 0;
    assert_eq!(s.map(D2, D1, 1, VA, RW), Err(GrantStatus::GeneralError));
    assert_eq!(s.w.cmpxchgs, CMPXCHG_TRIES);
    assert_eq!(s.w.refs(f), 0);
}

#[derive(Clone, Debug)]
enum Op {
    Grant {
        g: u16,
        gref: u32,
        to: u16,
        frame: u8,
        ro: bool,
    },
    Revoke {
        g: u16,
        gref: u32,
    },
    Map {
        me: u16,
        g: u16,
        gref: u32,
        slot: u8,
        ro: bool,
    },
    Unmap {
        me: u16,
        handle: u32,
        slot: u8,
    },
    Copy {
        me: u16,
        g: u16,
        gref: u32,
        into: bool,
    },
    Kill {
        d: u16,
    },
    PageTable {
        frame: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let d = 1u16..4;
    prop_oneof![
        (d.clone(), 0u32..4, d.clone(), 0u8..6, any::<bool>()).prop_map(
            |(g, gref, to, frame, ro)| Op::Grant {
                g,
                gref,
                to,
                frame,
                ro
            }
        ),
        (d.clone(), 0u32..4).prop_map(|(g, gref)| Op::Revoke { g, gref }),
        (d.clone(), d.clone(), 0u32..5, 0u8..6, any::<bool>()).prop_map(
            |(me, g, gref, slot, ro)| Op::Map {
                me,
                g,
                gref,
                slot,
                ro
            }
        ),
        (d.clone(), 0u32..10, 0u8..6).prop_map(|(me, handle, slot)| Op::Unmap { me, handle, slot }),
        (d.clone(), d.clone(), 0u32..4, any::<bool>()).prop_map(|(me, g, gref, into)| Op::Copy {
            me,
            g,
            gref,
            into
        }),
        d.prop_map(|d| Op::Kill { d }),
        (0u8..6).prop_map(|frame| Op::PageTable { frame }),
    ]
}

/// Frames 0..6: two per domain (0x1000 + 16 * d + i).
fn frame_of(i: u8) -> Mfn {
    Mfn::new(0x1000 + 16 * u64::from(i / 2 + 1) + u64::from(i % 2))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Whatever the domains do, every reference and type count on a frame is
    /// exactly the uses the grant state records, no page table is ever
    /// mapped through a grant, and once every domain has died and its
    /// mappings are released, everything is back to zero and freed.
    #[test]
    fn accounting_always_matches_the_mappings(ops in proptest::collection::vec(op(), 1..60)) {
        let mut s = Sys::new();
        for i in 0..6 {
            let m = frame_of(i);
            s.w.frame(u16::from(i / 2 + 1), m.get());
        }
        for o in ops {
            match o {
                Op::Grant { g, gref, to, frame, ro } => {
                    if s.w.alive(DomainId(g)) {
                        // The Linux protocol: only an entry not in use is rewritten.
                        let busy = s.flags(DomainId(g), gref) & (GTF_READING | GTF_WRITING);
                        if busy == 0 {
                            let fl = PERMIT | if ro { GTF_READONLY } else { 0 };
                            s.grant(DomainId(g), gref, DomainId(to), frame_of(frame), fl);
                        }
                    }
                }
                Op::Revoke { g, gref } => {
                    if s.w.alive(DomainId(g)) && s.flags(DomainId(g), gref) & (GTF_READING | GTF_WRITING) == 0 {
                        s.grant(DomainId(g), gref, DomainId(0), Mfn::new(0), 0);
                    }
                }
                Op::Map { me, g, gref, slot, ro } => {
                    if s.w.alive(DomainId(me)) {
                        let _ = s.map(DomainId(me), DomainId(g), gref, VA + u64::from(slot) * PAGE_SIZE, if ro { RO } else { RW });
                    }
                }
                Op::Unmap { me, handle, slot } => {
                    let _ = s.unmap(DomainId(me), handle, VA + u64::from(slot) * PAGE_SIZE);
                    s.reap();
                }
                Op::Copy { me, g, gref, into } => {
                    let mine = frame_of(((me - 1) * 2) as u8);
                    let op = if into {
                        GnttabCopy { source: own_end(mine, 0), dest: gref_end(DomainId(g), gref, 8), len: 8, flags: GNTCOPY_DEST_GREF, status: 0 }
                    } else {
                        GnttabCopy { source: gref_end(DomainId(g), gref, 8), dest: own_end(mine, 0), len: 8, flags: GNTCOPY_SOURCE_GREF, status: 0 }
                    };
                    if s.w.alive(DomainId(me)) {
                        let _ = s.copy(DomainId(me), op);
                    }
                }
                Op::Kill { d } => {
                    if s.w.alive(DomainId(d)) {
                        s.end(d);
                    }
                }
                Op::PageTable { frame } => {
                    // Only a live owner pins page tables: an ended domain owns
                    // no frame any more (every lookup in it fails), so a frame
                    // that outlived it can never take a page-table type.
                    let owner = s.w.frames.get(&frame_of(frame).get()).map(|f| f.owner);
                    if owner.is_some_and(|o| s.w.alive(o)) {
                        let _ = s.w.make_page_table(frame_of(frame));
                    }
                }
            }
            // Invariants: per frame, references and writable type uses equal
            // the mappings of it; no mapped frame is a page table.
            let mut uses: BTreeMap<u64, u64> = BTreeMap::new();
            for (d, st) in s.st.iter().enumerate() {
                for h in 0..M as u32 {
                    if let Some(m) = st.maptrack.get(h) {
                        *uses.entry(m.mfn.get()).or_default() += 1;
                        prop_assert_eq!(s.w.ptes.get(&(d as u16, m.va.get())).map(|p| p.0), Some(m.mfn));
                    }
                }
            }
            for i in 0..6 {
                let m = frame_of(i);
                let n = uses.get(&m.get()).copied().unwrap_or(0);
                if n > 0 {
                    prop_assert!(!s.w.freed.contains(&m), "frame {} freed while mapped", i);
                }
                if let Some(f) = s.w.frames.get(&m.get()) {
                    if !s.w.alive(f.owner) {
                        // It outlived its owner: only while mapped.
                        prop_assert!(n > 0, "frame {} of a dead owner kept unmapped", i);
                        continue;
                    }
                    prop_assert_eq!(f.refs, n);
                    if n > 0 {
                        prop_assert_eq!(f.ty, Ty::Writable);
                        prop_assert_eq!(u64::from(f.type_count), n);
                    }
                }
            }
            prop_assert_eq!(s.w.ptes.len() as u64, uses.values().sum::<u64>());
        }
        for d in 1..4 {
            if s.w.alive(DomainId(d)) {
                s.end(d);
            }
        }
        prop_assert!(s.st.iter().all(|x| x.quiescent()));
        prop_assert!(s.w.ptes.is_empty());
        for i in 0..6 {
            prop_assert!(s.w.freed.contains(&frame_of(i)), "frame {} not freed", i);
        }
    }
}

/// The grant rows claim 1.1 (served to images that know 1.1), unknown
/// commands have no row, and no row claims a version beyond the current one.
#[test]
fn the_grant_rows_claim_1_1() {
    use crate::hypercall::{lookup, TABLE};
    use keel_abi::hypercall::Hypercall;
    use keel_abi::version::AbiVersion;
    for cmd in [
        GNTTABOP_MAP_GRANT_REF,
        GNTTABOP_UNMAP_GRANT_REF,
        GNTTABOP_SETUP_TABLE,
        GNTTABOP_COPY,
        GNTTABOP_QUERY_SIZE,
    ] {
        let row = lookup(Hypercall::GRANT_TABLE_OP.0, cmd);
        assert_eq!(row.map(|r| r.since), Some(AbiVersion::V1_1), "{cmd}");
    }
    for cmd in [3, 4, 7, 8, 9, 10, 11, 12] {
        assert!(lookup(Hypercall::GRANT_TABLE_OP.0, cmd).is_none(), "{cmd}");
    }
    // `domctl`'s command is in the envelope: every RDI finds its row.
    assert_eq!(
        lookup(Hypercall::DOMCTL.0, 0x1234).map(|r| r.since),
        Some(AbiVersion::V1_1)
    );
    assert_eq!(
        lookup(
            Hypercall::EVENT_CHANNEL_OP.0,
            keel_abi::event::EVTCHNOP_BIND_INTERDOMAIN
        )
        .map(|r| r.since),
        Some(AbiVersion::V1_1)
    );
    assert!(TABLE
        .iter()
        .all(|r| r.since <= AbiVersion::CURRENT || Some(r.since) == keel_abi::layout::IN_PROGRESS));
}

/// A world and guest memory as one (what `grant_table_op` takes).
struct Pair<'a> {
    w: &'a mut World,
    m: &'a mut Mem,
}

impl GrantWorld for Pair<'_> {
    fn alive(&self, d: DomainId) -> bool {
        self.w.alive(d)
    }
    fn get_page(&mut self, owner: DomainId, mfn: Mfn) -> Result<(), FrameRefusal> {
        self.w.get_page(owner, mfn)
    }
    fn put_page(&mut self, owner: DomainId, mfn: Mfn) {
        self.w.put_page(owner, mfn)
    }
    fn get_writable(&mut self, owner: DomainId, mfn: Mfn) -> Result<(), FrameRefusal> {
        self.w.get_writable(owner, mfn)
    }
    fn put_writable(&mut self, owner: DomainId, mfn: Mfn) {
        self.w.put_writable(owner, mfn)
    }
    fn install_mapping(
        &mut self,
        mapper: DomainId,
        va: GuestVirt,
        mfn: Mfn,
        writable: bool,
    ) -> Result<(), GrantStatus> {
        self.w.install_mapping(mapper, va, mfn, writable)
    }
    fn remove_mapping(
        &mut self,
        mapper: DomainId,
        va: GuestVirt,
        mfn: Mfn,
    ) -> Result<(), GrantStatus> {
        self.w.remove_mapping(mapper, va, mfn)
    }
    fn flush_tlb(&mut self, mapper: DomainId) {
        self.w.flush_tlb(mapper)
    }
    fn alloc_table_frame(&mut self, d: DomainId) -> Option<Mfn> {
        self.w.alloc_table_frame(d)
    }
    fn read_u64(&self, frame: Mfn, offset: u64) -> u64 {
        self.w.read_u64(frame, offset)
    }
    fn cmpxchg_u32(&mut self, frame: Mfn, offset: u64, old: u32, new: u32) -> u32 {
        self.w.cmpxchg_u32(frame, offset, old, new)
    }
    fn clear_bits_u16(&mut self, frame: Mfn, offset: u64, bits: u16) {
        self.w.clear_bits_u16(frame, offset, bits)
    }
    fn copy_bytes(&mut self, src: Mfn, src_off: u16, dst: Mfn, dst_off: u16, len: u16) {
        self.w.copy_bytes(src, src_off, dst, dst_off, len)
    }
}

impl super::batch::OpMemory for Pair<'_> {
    fn read<T: keel_abi::event::Pod>(
        &mut self,
        base: GuestVirt,
        i: u32,
    ) -> Result<T, keel_abi::Errno> {
        self.m.read(base, i)
    }
    fn write<T: keel_abi::event::Pod>(
        &mut self,
        base: GuestVirt,
        i: u32,
        v: &T,
    ) -> Result<(), keel_abi::Errno> {
        self.m.write(base, i, v)
    }
    fn write_words(&mut self, at: GuestVirt, words: &[u64]) -> Result<(), keel_abi::Errno> {
        self.m.write_words(at, words)
    }
}

/// Guest memory for the batch tests: one flat buffer at `BASE`; anything
/// outside it faults.
struct Mem(Vec<u8>);
const BASE: u64 = 0x10_0000;

impl super::batch::OpMemory for Mem {
    fn read<T: keel_abi::event::Pod>(
        &mut self,
        base: GuestVirt,
        i: u32,
    ) -> Result<T, keel_abi::Errno> {
        let at = (base.get() + u64::from(i) * T::SIZE as u64)
            .checked_sub(BASE)
            .ok_or(keel_abi::Errno::EFAULT)?;
        let b = self
            .0
            .get(at as usize..at as usize + T::SIZE)
            .ok_or(keel_abi::Errno::EFAULT)?;
        Ok(T::decode(b))
    }
    fn write<T: keel_abi::event::Pod>(
        &mut self,
        base: GuestVirt,
        i: u32,
        v: &T,
    ) -> Result<(), keel_abi::Errno> {
        let at = (base.get() + u64::from(i) * T::SIZE as u64)
            .checked_sub(BASE)
            .ok_or(keel_abi::Errno::EFAULT)?;
        let b = self
            .0
            .get_mut(at as usize..at as usize + T::SIZE)
            .ok_or(keel_abi::Errno::EFAULT)?;
        v.encode(b);
        Ok(())
    }
    fn write_words(&mut self, at: GuestVirt, words: &[u64]) -> Result<(), keel_abi::Errno> {
        let off = at.get().checked_sub(BASE).ok_or(keel_abi::Errno::EFAULT)? as usize;
        let b = self
            .0
            .get_mut(off..off + 8 * words.len())
            .ok_or(keel_abi::Errno::EFAULT)?;
        for (c, w) in b.chunks_mut(8).zip(words) {
            c.copy_from_slice(&w.to_le_bytes());
        }
        Ok(())
    }
}

#[test]
fn batches_are_bounded_preemptible_and_fault_cleanly() {
    use super::batch::{grant_table_op, Batch, OpMemory};
    use keel_abi::event::Pod;
    use keel_abi::Errno;
    let mut s = Sys::new();
    let mut mem = Mem(vec![0; 4096]);
    let uop = GuestVirt::new(BASE);
    let run = |s: &mut Sys, mem: &mut Mem, cmd, count, start, units| {
        grant_table_op(
            &mut s.st,
            &mut Pair {
                w: &mut s.w,
                m: mem,
            },
            D2,
            cmd,
            uop,
            count,
            start,
            units,
        )
    };
    // Bounds of the batch.
    assert_eq!(
        run(
            &mut s,
            &mut mem,
            GNTTABOP_MAP_GRANT_REF,
            KEEL_GNTTAB_BATCH_MAX + 1,
            0,
            8
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        run(&mut s, &mut mem, GNTTABOP_MAP_GRANT_REF, 2, 3, 8),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        run(&mut s, &mut mem, GNTTABOP_SETUP_TABLE, 2, 0, 8),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        run(&mut s, &mut mem, GNTTABOP_QUERY_SIZE, 0, 0, 8),
        Err(Errno::EINVAL)
    );
    for cmd in [3, 4, 7, 8, 9, 10, 11, 12, 99] {
        assert_eq!(
            run(&mut s, &mut mem, cmd, 1, 0, 8),
            Err(Errno::ENOSYS),
            "cmd {cmd}"
        );
    }
    // setup_table writes the frame list; a bad list is GNTST_bad_virt_addr.
    let setup = GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: 2,
        status: 0,
        frame_list: BASE + 2048,
    };
    mem.write(uop, 0, &setup).unwrap();
    assert_eq!(
        run(&mut s, &mut mem, GNTTABOP_SETUP_TABLE, 1, 0, 8),
        Ok(Batch::Done)
    );
    let back: GnttabSetupTable = mem.read(uop, 0).unwrap();
    assert_eq!(back.status, GNTST_OKAY);
    let frames = s.st[2].table.frames().to_vec();
    assert_eq!(&mem.0[2048..2056], &frames[0].get().to_le_bytes());
    assert_eq!(&mem.0[2056..2064], &frames[1].get().to_le_bytes());
    mem.write(
        uop,
        0,
        &GnttabSetupTable {
            frame_list: 0x10,
            ..setup
        },
    )
    .unwrap();
    run(&mut s, &mut mem, GNTTABOP_SETUP_TABLE, 1, 0, 8).unwrap();
    assert_eq!(
        mem.read::<GnttabSetupTable>(uop, 0).unwrap().status,
        GNTST_BAD_VIRT_ADDR
    );
    // Three maps, two units an exit: a continuation, then the rest.
    let f = s.w.frame(1, 0x100);
    s.grant(D1, 1, D2, f, PERMIT);
    for i in 0..3u32 {
        let op = GnttabMapGrantRef {
            host_addr: VA + u64::from(i) * PAGE_SIZE,
            flags: RO,
            gref: 1,
            dom: 1,
            ..Default::default()
        };
        mem.write(uop, i, &op).unwrap();
    }
    assert_eq!(
        run(&mut s, &mut mem, GNTTABOP_MAP_GRANT_REF, 3, 0, 2),
        Ok(Batch::Preempted { done: 2 })
    );
    assert_eq!(s.w.refs(f), 2);
    assert_eq!(
        run(&mut s, &mut mem, GNTTABOP_MAP_GRANT_REF, 3, 2, 2),
        Ok(Batch::Done)
    );
    let handles: Vec<(i16, u32)> = (0..3)
        .map(|i| {
            let m: GnttabMapGrantRef = mem.read(uop, i).unwrap();
            (m.status, m.handle)
        })
        .collect();
    assert_eq!(handles, vec![(0, 0), (0, 1), (0, 2)]);
    // Unmap them, the last one's operation out of reach: -EFAULT, the first
    // two done.
    let far = GuestVirt::new(BASE + 4096 - 2 * GnttabUnmapGrantRef::SIZE as u64);
    for i in 0..2u32 {
        let op = GnttabUnmapGrantRef {
            host_addr: VA + u64::from(i) * PAGE_SIZE,
            handle: i,
            ..Default::default()
        };
        mem.write(far, i, &op).unwrap();
    }
    let r = grant_table_op(
        &mut s.st,
        &mut Pair {
            w: &mut s.w,
            m: &mut mem,
        },
        D2,
        GNTTABOP_UNMAP_GRANT_REF,
        far,
        3,
        0,
        64,
    );
    assert_eq!(r, Err(Errno::EFAULT));
    // The whole chunk is read before any unmap: nothing was undone.
    assert_eq!(s.w.refs(f), 3);
    let r = grant_table_op(
        &mut s.st,
        &mut Pair {
            w: &mut s.w,
            m: &mut mem,
        },
        D2,
        GNTTABOP_UNMAP_GRANT_REF,
        far,
        2,
        0,
        64,
    );
    assert_eq!(r, Ok(Batch::Done));
    assert_eq!(s.w.refs(f), 1);
}

proptest! {
    /// The maptrack's free stack (stored XOR its initial value, so an empty
    /// maptrack is all zeroes) behaves as a plain stack of free handles with
    /// the lowest on top: every insert, remove, detach and free of a detached
    /// handle answers what that model answers, and `len` counts taken handles.
    #[test]
    fn maptrack_is_a_stack_of_free_handles(ops in proptest::collection::vec((0u8..4, 0u32..10), 1..200)) {
        use super::table::{Mapping, Maptrack};
        const N: usize = 8;
        let mut mt = Maptrack::<N>::new();
        let mut free: Vec<u32> = (0..N as u32).rev().collect();
        let mut used: BTreeMap<u32, Mapping> = BTreeMap::new();
        let mut detached: Vec<u32> = Vec::new();
        for (i, (op, h)) in ops.into_iter().enumerate() {
            let m = Mapping {
                granter: DomainId(1),
                gref: i as u32,
                va: GuestVirt::new(0x1000 * i as u64),
                mfn: Mfn::new(i as u64),
                readonly: i % 2 == 0,
            };
            match op {
                0 => {
                    let want = free.pop();
                    prop_assert_eq!(mt.insert(m), want);
                    if let Some(w) = want {
                        used.insert(w, m);
                    }
                }
                1 => {
                    let want = used.remove(&h);
                    prop_assert_eq!(mt.remove(h), want);
                    if want.is_some() {
                        free.push(h);
                    }
                }
                2 => {
                    let want = used.remove(&h);
                    prop_assert_eq!(mt.detach(h), want);
                    if want.is_some() {
                        detached.push(h);
                    }
                }
                _ => {
                    mt.free_detached(h);
                    if let Some(p) = detached.iter().position(|&d| d == h) {
                        detached.swap_remove(p);
                        free.push(h);
                    }
                }
            }
            prop_assert_eq!(mt.len(), N - free.len());
            for (&k, v) in &used {
                prop_assert_eq!(mt.get(k), Some(*v));
            }
        }
    }
}
