//! Helpers for programs that build page tables through the PV MMU (the
//! `mmu_*` tests, `bench_mmu`, ...): frames taken from the top of guest
//! memory, the L1 slot that maps an address, and one-request wrappers around
//! `mmu_update` / `mmuext_op` (docs/abi/mmu.md).
//!
//! Everything goes through the hypervisor or the library's fault probes: a frame
//! the test turns into a page table is first made read-only (`mmu_update` of its
//! own L1 entry), then filled with `MMU_NORMAL_PT_UPDATE`s while it is still
//! ordinary memory, then pinned.

use crate::abi::grant_table::{GnttabMapGrantRef, GnttabUnmapGrantRef};
use crate::abi::guest::{gnttab_map, gnttab_unmap, mmu_update, mmuext_op};
use crate::abi::mmu::{MmuUpdate, MmuextOp, MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE};
use crate::pagetable::{cr3_mfn, read_entry, Pte, PteFlags};
use crate::prelude::*;
use crate::start::{pfn_to_mfn, pfn_to_va};
use core::sync::atomic::{AtomicU64, Ordering};

/// A frame of the domain's, taken from the top of memory (which the bootstrap
/// tables map writable and nothing else uses).
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// Its PFN.
    pub pfn: Pfn,
    /// Its machine frame.
    pub mfn: Mfn,
    /// Where the bootstrap tables map it.
    pub va: GuestVirt,
}

static TAKEN: AtomicU64 = AtomicU64::new(0);

/// The next free frame from the top of memory, zeroed. The shared_info page
/// (the hypervisor's, at the top since ABI 1.0) is never taken.
pub fn take_frame() -> Frame {
    let shared = crate::events::shared_info();
    let mut pfn;
    loop {
        let i = TAKEN.fetch_add(1, Ordering::Relaxed);
        pfn = Pfn::new(start_info().nr_pages - 1 - i);
        if Some(pfn_to_va(pfn)) != shared {
            break;
        }
    }
    let mfn = match pfn_to_mfn(pfn) {
        Ok(m) => m,
        Err(f) => crate::report::crash(format_args!("frame list unreadable: {f}")),
    };
    let f = Frame {
        pfn,
        mfn,
        va: pfn_to_va(pfn),
    };
    for i in 0..512 {
        if let Err(e) = fault::write_u64(GuestVirt::new(f.va.get() + i * 8), 0) {
            crate::report::crash(format_args!("zeroing a free frame: {e}"));
        }
    }
    f
}

/// The machine address of entry `i` of table `t` (what `mmu_update` takes).
pub const fn slot(t: Mfn, i: usize) -> u64 {
    (t.get() << 12) + (i as u64) * 8
}

/// An entry for `mfn` with `flags`.
pub const fn entry(mfn: Mfn, flags: PteFlags) -> Pte {
    Pte::new(mfn, flags)
}

/// The L1 table and index that map `va` in the current tables.
pub fn l1_of(va: GuestVirt) -> (Mfn, usize) {
    let mut t = cr3_mfn();
    for level in [4u32, 3, 2] {
        match read_entry(t, va.table_index(level)) {
            Ok(e) if e.is_present() => t = e.frame(),
            other => crate::report::crash(format_args!(
                "no L{level} entry for {:#x}: {other:?}",
                va.get()
            )),
        }
    }
    (t, va.table_index(1))
}

/// The current L1 entry mapping `va`.
pub fn leaf(va: GuestVirt) -> Pte {
    let (t, i) = l1_of(va);
    read_entry(t, i).unwrap_or(Pte::EMPTY)
}

/// One `MMU_NORMAL_PT_UPDATE`.
pub fn update(ptr: u64, val: Pte) -> Result<(), Errno> {
    mmu_update(&[MmuUpdate {
        ptr,
        val: val.raw(),
    }])
    .1
}

/// Set the L1 entry that maps `va` to `val`.
pub fn set_leaf(va: GuestVirt, val: Pte) -> Result<(), Errno> {
    let (t, i) = l1_of(va);
    update(slot(t, i), val)
}

/// Drop RW from the mapping of `va` (so its frame may become a table).
pub fn make_readonly(va: GuestVirt) -> Result<(), Errno> {
    set_leaf(va, leaf(va).without(PteFlags::WRITABLE))
}

/// Give the mapping of `va` RW again.
pub fn make_writable(va: GuestVirt) -> Result<(), Errno> {
    set_leaf(va, leaf(va).with(PteFlags::WRITABLE))
}

/// A frame ready to be a page table: taken, made read-only.
pub fn table_frame() -> Frame {
    let f = take_frame();
    if let Err(e) = make_readonly(f.va) {
        crate::report::crash(format_args!(
            "making frame {:#x} read-only: {e}",
            f.mfn.get()
        ));
    }
    f
}

/// Write entry `i` of a frame that is not (yet) a validated table.
pub fn fill(f: &Frame, i: usize, val: Pte) -> Result<(), Errno> {
    update(slot(f.mfn, i), val)
}

/// One `mmuext_op` with an MFN argument.
pub fn ext(cmd: u32, mfn: Mfn) -> Result<(), Errno> {
    mmuext_op(&[MmuextOp {
        cmd,
        pad: 0,
        arg1: mfn.get(),
        arg2: 0,
    }])
    .1
}

/// Pin `mfn` as a table of `level` (1..=4).
pub fn pin(level: u32, mfn: Mfn) -> Result<(), Errno> {
    ext(MMUEXT_PIN_L1_TABLE + level - 1, mfn)
}

/// Unpin `mfn`.
pub fn unpin(mfn: Mfn) -> Result<(), Errno> {
    ext(MMUEXT_UNPIN_TABLE, mfn)
}

/// A page-aligned address whose L1 entry is not present (a frame taken and
/// its mapping removed): where a grant mapping can go.
pub fn free_va() -> GuestVirt {
    let f = take_frame();
    if let Err(e) = set_leaf(f.va, Pte::EMPTY) {
        crate::report::crash(format_args!("unmapping a spare frame: {e:?}"));
    }
    f.va
}

/// `GNTTABOP_map_grant_ref` of reference `gref` of domain `dom` at `va` with
/// `flags`: `(status, handle)`. A failure of the call itself is checked
/// (`check!`) and gives status `i16::MIN`.
pub fn grant_map(dom: u16, gref: u32, flags: u32, va: GuestVirt) -> (i16, u32) {
    let mut op = [GnttabMapGrantRef {
        host_addr: va.get(),
        flags,
        gref,
        dom,
        status: 1,
        ..Default::default()
    }];
    match gnttab_map(&mut op) {
        Ok(()) => (op[0].status, op[0].handle),
        Err(e) => {
            check!(false, "map_grant_ref {gref}: the call failed: {e:?}");
            (i16::MIN, 0)
        }
    }
}

/// `GNTTABOP_unmap_grant_ref` of `handle` at `va`: its status (`i16::MIN`
/// when the call itself failed, which is checked).
pub fn grant_unmap(handle: u32, va: GuestVirt) -> i16 {
    let mut op = [GnttabUnmapGrantRef {
        host_addr: va.get(),
        handle,
        status: 1,
        ..Default::default()
    }];
    match gnttab_unmap(&mut op) {
        Ok(()) => op[0].status,
        Err(e) => {
            check!(false, "unmap_grant_ref: the call failed: {e:?}");
            i16::MIN
        }
    }
}

/// A copy of the current L4 in a fresh frame (sharing every L3), not pinned.
pub fn copy_of_l4() -> Frame {
    let f = table_frame();
    let l4 = cr3_mfn();
    for i in 0..512 {
        let e = read_entry(l4, i).unwrap_or(Pte::EMPTY);
        if e != Pte::EMPTY {
            if let Err(err) = fill(&f, i, e) {
                crate::report::crash(format_args!("copying L4 entry {i}: {err}"));
            }
        }
    }
    f
}

/// `check!` that `r` is `Err(want)`; `what` names the attempt.
pub fn expect_err(what: core::fmt::Arguments<'_>, r: Result<(), Errno>, want: Errno) -> bool {
    check!(r == Err(want), "{what}: {r:?}, expected {want:?}")
}

/// `check!` that `r` is `Ok`.
pub fn expect_ok(what: core::fmt::Arguments<'_>, r: Result<(), Errno>) -> bool {
    check!(r.is_ok(), "{what}: {r:?}, expected success")
}

/// The aliased request list: `VA` .. `VA + 32 GiB` all read one page of 256
/// identical requests, each rewriting the L1 entry of `target` with the value
/// it already has (a full validated update that changes nothing).
pub struct Aliased {
    /// The list's first byte.
    pub va: u64,
    /// The L4 slot it hangs from (clear it to remove the tree).
    pub l4_slot: usize,
    /// The entry every request rewrites, and its value.
    pub entry_ptr: u64,
    /// The value it has and keeps.
    pub entry_val: Pte,
}

/// Build [`Aliased`]: a request page, and page tables that map it 32 GiB
/// over from a free L4 slot (`None`, after reporting the failure, when a
/// step is refused or no L4 slot is free).
pub fn aliased_requests() -> Option<Aliased> {
    let target = take_frame();
    let (l1, i) = l1_of(target.va);
    let entry_ptr = slot(l1, i);
    let entry_val = leaf(target.va);
    // The request page.
    let reqs = take_frame();
    let req = MmuUpdate {
        ptr: entry_ptr,
        val: entry_val.raw(),
    }
    .encode();
    for k in 0..256u64 {
        for (j, word) in req.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(word);
            let va = GuestVirt::new(reqs.va.get() + k * 16 + 8 * j as u64);
            if fault::write_u64(va, u64::from_le_bytes(b)).is_err() {
                failure!("writing the request page");
                return None;
            }
        }
    }
    // L1 -> the request page (read-only) 512 times; L2 -> that L1 512 times;
    // L3 -> that L2 32 times: 32 GiB of requests.
    let a = table_frame();
    let b = table_frame();
    let c = table_frame();
    for k in 0..512 {
        if !expect_ok(
            format_args!("L1 entry {k}"),
            fill(&a, k, entry(reqs.mfn, PteFlags::PRESENT)),
        ) || !expect_ok(
            format_args!("L2 entry {k}"),
            fill(&b, k, entry(a.mfn, PteFlags::PRESENT)),
        ) {
            return None;
        }
    }
    for k in 0..32 {
        if !expect_ok(
            format_args!("L3 entry {k}"),
            fill(&c, k, entry(b.mfn, PteFlags::PRESENT)),
        ) {
            return None;
        }
    }
    // A free L4 slot in the lower half.
    let l4 = cr3_mfn();
    let Some(l4_slot) = (1..256).find(|&k| read_entry(l4, k) == Ok(Pte::EMPTY)) else {
        failure!("no free L4 slot");
        return None;
    };
    if !expect_ok(
        format_args!("installing the aliased tree"),
        update(slot(l4, l4_slot), entry(c.mfn, PteFlags::PRESENT)),
    ) {
        return None;
    }
    Some(Aliased {
        va: (l4_slot as u64) << 39,
        l4_slot,
        entry_ptr,
        entry_val,
    })
}

/// A four-level tree of page tables for validation work: `l1s` L1 tables,
/// every entry of each mapping one data frame read-only, under as many L2s as
/// they need, one L3 and one L4 (not pinned, not the base). Pinning the L4
/// validates about `512 * (l1s + 1)` entries; unpinning it devalidates as
/// many.
pub struct Tree {
    /// The L4 to pin (mapped read-only where the bootstrap tables map it).
    pub l4: Frame,
    /// How many tables (of every level) the tree has.
    pub tables: u64,
}

/// Build a [`Tree`] of `l1s` L1 tables (at most 512 * 512), each filled by
/// `mmu_update` batches while it is still ordinary memory. Crashes the test
/// if a step is refused.
pub fn tree(l1s: u64) -> Tree {
    let data = take_frame();
    let l2s = l1s.div_ceil(512);
    let l3 = table_frame();
    let mut tables = 2;
    for j in 0..l2s {
        let l2 = table_frame();
        tables += 1;
        for i in 0..(l1s - j * 512).min(512) {
            let l1 = table_frame();
            tables += 1;
            fill_all(&l1, entry(data.mfn, PteFlags::PRESENT));
            if let Err(e) = fill(
                &l2,
                i as usize,
                entry(l1.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
            ) {
                crate::report::crash(format_args!("tree: L2 entry {i}: {e}"));
            }
        }
        if let Err(e) = fill(
            &l3,
            j as usize,
            entry(l2.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
        ) {
            crate::report::crash(format_args!("tree: L3 entry {j}: {e}"));
        }
    }
    let l4 = table_frame();
    if let Err(e) = fill(
        &l4,
        0,
        entry(l3.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
    ) {
        crate::report::crash(format_args!("tree: L4 entry: {e}"));
    }
    Tree { l4, tables }
}

/// Write every entry of `f` (not yet a table) to `val`, 64 requests a call.
fn fill_all(f: &Frame, val: Pte) {
    let mut reqs = [MmuUpdate {
        ptr: 0,
        val: val.raw(),
    }; 64];
    for chunk in 0..8 {
        for (k, r) in reqs.iter_mut().enumerate() {
            r.ptr = slot(f.mfn, chunk * 64 + k);
        }
        if let (_, Err(e)) = mmu_update(&reqs) {
            crate::report::crash(format_args!("tree: filling an L1: {e}"));
        }
    }
}
