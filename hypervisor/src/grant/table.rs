//! Per-domain grant state: the domain's own table (its frames and the active
//! entries other domains have mapped) and its maptrack table (the mappings it
//! holds of other domains' grants). Fixed size, no heap: the hypervisor keeps
//! one [`GrantState`] per domain.

use crate::addr::{GuestVirt, Mfn};
use crate::domain::DomainId;
use keel_abi::grant_table::GrantHandle;

/// Entries per table frame (`PAGE_SIZE / size_of::<GrantEntryV1>()`).
pub const PER_FRAME: usize = 512;
const _: () = assert!(PER_FRAME as u32 == keel_abi::grant_table::entries_per_frame());

/// What the hypervisor remembers of one reference of a domain's table while
/// it is mapped (Xen's active entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Active {
    /// Read-only mappings of it.
    pub pins_ro: u32,
    /// Writable mappings of it.
    pub pins_rw: u32,
    /// The domain mapping it (one at a time: the entry names one grantee).
    pub mapper: DomainId,
    /// The frame it was mapped with: later maps must find the same frame.
    pub mfn: Mfn,
    /// The granter has ended, this was the last use of `mfn`, and the frame
    /// waits to be scrubbed and freed (`GrantTable::take_reaped`).
    pub reap: bool,
}

impl Active {
    /// Not mapped.
    pub const IDLE: Active = Active {
        pins_ro: 0,
        pins_rw: 0,
        mapper: DomainId(0),
        mfn: Mfn::new(0),
        reap: false,
    };
    /// Whether any mapping uses it.
    pub const fn pinned(&self) -> bool {
        self.pins_ro != 0 || self.pins_rw != 0
    }
}

/// A domain's own grant table: up to `FRAMES` frames of entries.
#[derive(Clone, Debug)]
pub struct GrantTable<const FRAMES: usize> {
    frames: [Mfn; FRAMES],
    nr_frames: usize,
    active: [[Active; PER_FRAME]; FRAMES],
    pinned: u32,
    /// The domain has ended while others still map some of its references:
    /// those frames are no longer its (its accounting dropped them), its
    /// table frames are gone, and each frame is freed when its last use ends.
    orphaned: bool,
    /// Entries marked [`Active::reap`].
    reap: u32,
}

impl<const FRAMES: usize> Default for GrantTable<FRAMES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const FRAMES: usize> GrantTable<FRAMES> {
    /// No frames yet (`setup_table` grows it).
    pub const fn new() -> Self {
        GrantTable {
            frames: [Mfn::new(0); FRAMES],
            nr_frames: 0,
            active: [[Active::IDLE; PER_FRAME]; FRAMES],
            pinned: 0,
            orphaned: false,
            reap: 0,
        }
    }
    /// The largest size, in frames.
    pub const fn max_frames(&self) -> usize {
        FRAMES
    }
    /// The table's frames.
    pub fn frames(&self) -> &[Mfn] {
        self.frames.get(..self.nr_frames).unwrap_or(&[])
    }
    /// The number of entries (references `0..entries()` are valid).
    pub const fn entries(&self) -> u32 {
        (self.nr_frames * PER_FRAME) as u32
    }
    /// Add a frame; `false` when the table is at its largest.
    pub fn push_frame(&mut self, mfn: Mfn) -> bool {
        match self.frames.get_mut(self.nr_frames) {
            Some(slot) => {
                *slot = mfn;
                self.nr_frames += 1;
                true
            }
            None => false,
        }
    }
    /// The active entry of `gref` (`None` outside the table).
    pub fn active(&self, gref: u32) -> Option<&Active> {
        if gref >= self.entries() {
            return None;
        }
        let g = gref as usize;
        self.active.get(g / PER_FRAME)?.get(g % PER_FRAME)
    }
    /// The active entry of `gref`, to change it.
    pub fn active_mut(&mut self, gref: u32) -> Option<&mut Active> {
        if gref >= self.entries() {
            return None;
        }
        let g = gref as usize;
        self.active.get_mut(g / PER_FRAME)?.get_mut(g % PER_FRAME)
    }
    /// Count a reference becoming pinned or idle (for [`GrantState::quiescent`]).
    pub(super) fn note_pin(&mut self, was: bool, now: bool) {
        match (was, now) {
            (false, true) => self.pinned += 1,
            (true, false) => self.pinned = self.pinned.saturating_sub(1),
            _ => {}
        }
    }
    /// How many references are mapped by someone.
    pub const fn pinned_refs(&self) -> u32 {
        self.pinned
    }
    /// Whether the domain has ended with references still mapped.
    pub const fn orphaned(&self) -> bool {
        self.orphaned
    }
    /// The domain has ended; mapped references outlive it.
    pub(super) fn orphan(&mut self) {
        self.orphaned = true;
    }
    /// Whether a mapped reference other than `except` uses `mfn` (at most
    /// every entry of the table: called once per last use of an orphan).
    pub(super) fn frame_in_use(&self, mfn: Mfn, except: u32) -> bool {
        self.active
            .iter()
            .flatten()
            .take(self.entries() as usize)
            .enumerate()
            .any(|(g, a)| g as u32 != except && a.pinned() && a.mfn == mfn)
    }
    /// Mark `gref`'s frame for freeing.
    pub(super) fn mark_reap(&mut self, gref: u32) {
        if let Some(a) = self.active_mut(gref) {
            if !a.reap {
                a.reap = true;
                self.reap += 1;
            }
        }
    }
    /// Frames waiting to be freed.
    pub const fn reap_pending(&self) -> u32 {
        self.reap
    }
    /// Hand each frame waiting to be freed to `free`, and forget it.
    pub(super) fn take_reaped(&mut self, mut free: impl FnMut(Mfn)) {
        if self.reap == 0 {
            return;
        }
        for a in self.active.iter_mut().flatten() {
            if a.reap {
                free(a.mfn);
                *a = Active::IDLE;
            }
        }
        self.reap = 0;
    }
}

/// One mapping a domain holds (Xen's `grant_mapping`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The granting domain.
    pub granter: DomainId,
    /// The reference in its table.
    pub gref: u32,
    /// Where it is mapped.
    pub va: GuestVirt,
    /// The frame.
    pub mfn: Mfn,
    /// Mapped read-only.
    pub readonly: bool,
}

impl Mapping {
    /// A free slot's contents (meaningless; all zeroes).
    const NONE: Mapping = Mapping {
        granter: DomainId(0),
        gref: 0,
        va: GuestVirt::new(0),
        mfn: Mfn::new(0),
        readonly: false,
    };
}

/// What one maptrack slot holds. `Free` is the zero value, so an empty
/// maptrack is all zeroes (`.bss` in the hypervisor's image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free = 0,
    /// A mapping held (the slot's [`Mapping`]).
    Used,
    /// Being unmapped: the entry is gone, the references not yet dropped; the
    /// handle is neither usable nor free.
    Detached,
}

/// The mappings a domain holds: at most `N`; handles are indices, allocated
/// and freed in O(1) from a stack of free handles.
///
/// Every field's empty value is zero (the hypervisor's store is a static whose
/// bytes would otherwise all be in its image): the slot states are separate
/// from the mappings (an enum around `Mapping` would use `readonly`'s spare
/// values, not zero, for a free slot), the count is of taken handles, and the
/// free stack holds each entry XOR its initial value (`stack_bias`).
#[derive(Clone, Debug)]
pub struct Maptrack<const N: usize> {
    state: [SlotState; N],
    maps: [Mapping; N],
    free: [u16; N],
    taken: usize,
}

impl<const N: usize> Default for Maptrack<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Maptrack<N> {
    const FITS: () = assert!(N <= u16::MAX as usize + 1);

    /// Empty.
    pub const fn new() -> Self {
        let () = Self::FITS;
        Maptrack {
            state: [SlotState::Free; N],
            maps: [Mapping::NONE; N],
            free: [0; N],
            taken: 0,
        }
    }
    /// The handle at position `i` of the free stack when it is full: the
    /// lowest handle on top, handed out first. Entries are stored XOR this.
    const fn stack_bias(i: usize) -> u16 {
        (N - 1 - i) as u16
    }
    /// Back to [`Self::new`], in place.
    fn clear(&mut self) {
        self.state.fill(SlotState::Free);
        self.maps.fill(Mapping::NONE);
        self.free.fill(0);
        self.taken = 0;
    }
    /// Take a handle for `m`; `None` when all `N` are in use.
    pub fn insert(&mut self, m: Mapping) -> Option<GrantHandle> {
        // The free stack has `N - taken` entries; its top is the last.
        let top = (N - self.taken).checked_sub(1)?;
        let h = *self.free.get(top)? ^ Self::stack_bias(top);
        let i = usize::from(h);
        *self.state.get_mut(i)? = SlotState::Used;
        *self.maps.get_mut(i)? = m;
        self.taken += 1;
        Some(GrantHandle::from(h))
    }
    /// The slot of handle `h`, if it is in `want` state.
    fn slot(&self, h: GrantHandle, want: SlotState) -> Option<usize> {
        let i = h as usize;
        (self.state.get(i) == Some(&want)).then_some(i)
    }
    /// The mapping of handle `h`.
    pub fn get(&self, h: GrantHandle) -> Option<Mapping> {
        self.maps.get(self.slot(h, SlotState::Used)?).copied()
    }
    /// Change the mapping of handle `h`.
    pub fn set(&mut self, h: GrantHandle, m: Mapping) -> bool {
        match self
            .slot(h, SlotState::Used)
            .and_then(|i| self.maps.get_mut(i))
        {
            Some(slot) => {
                *slot = m;
                true
            }
            None => false,
        }
    }
    /// Mark slot `i` free and push its handle on the free stack.
    fn release(&mut self, i: usize) {
        let at = N - self.taken;
        if let (Some(s), Some(f)) = (self.state.get_mut(i), self.free.get_mut(at)) {
            *s = SlotState::Free;
            *f = (i as u16) ^ Self::stack_bias(at);
            self.taken -= 1;
        }
    }
    /// Free handle `h`; its mapping.
    pub fn remove(&mut self, h: GrantHandle) -> Option<Mapping> {
        let i = self.slot(h, SlotState::Used)?;
        let m = *self.maps.get(i)?;
        self.release(i);
        Some(m)
    }
    /// Take the mapping of `h` out but keep the handle taken: a second unmap
    /// of it in the same batch finds no mapping.
    pub fn detach(&mut self, h: GrantHandle) -> Option<Mapping> {
        let i = self.slot(h, SlotState::Used)?;
        let m = *self.maps.get(i)?;
        *self.state.get_mut(i)? = SlotState::Detached;
        Some(m)
    }
    /// Free a handle [`Maptrack::detach`] kept.
    pub fn free_detached(&mut self, h: GrantHandle) {
        if let Some(i) = self.slot(h, SlotState::Detached) {
            self.release(i);
        }
    }
    /// Handles taken (mappings held, and any being unmapped).
    pub const fn len(&self) -> usize {
        self.taken
    }
    /// Whether none is taken.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The handle of some mapping held, scanning from slot `from` and at most
    /// `budget` slots: `Ok(None)` when there is none at or after `from`,
    /// `Err(next)` when the budget ran out first.
    pub fn find_from(&self, from: usize, budget: usize) -> Result<Option<GrantHandle>, usize> {
        let end = from.saturating_add(budget).min(N);
        for i in from..end {
            if self.state.get(i) == Some(&SlotState::Used) {
                return Ok(Some(i as GrantHandle));
            }
        }
        if end < N {
            Err(end)
        } else {
            Ok(None)
        }
    }
}

/// Everything about grants one domain has: its table (`FRAMES` frames at
/// most) and its maptrack (`MAPS` mappings at most).
#[derive(Clone, Debug, Default)]
pub struct GrantState<const FRAMES: usize, const MAPS: usize> {
    /// The domain as granter.
    pub table: GrantTable<FRAMES>,
    /// The domain as mapper.
    pub maptrack: Maptrack<MAPS>,
}

impl<const FRAMES: usize, const MAPS: usize> GrantState<FRAMES, MAPS> {
    /// Fresh state.
    pub const fn new() -> Self {
        GrantState {
            table: GrantTable::new(),
            maptrack: Maptrack::new(),
        }
    }
    /// Back to [`Self::new`], in place (the state is too large to build on a
    /// hypervisor stack).
    pub fn reset(&mut self) {
        self.table.nr_frames = 0;
        self.table.pinned = 0;
        self.table.orphaned = false;
        self.table.reap = 0;
        for f in self.table.frames.iter_mut() {
            *f = Mfn::new(0);
        }
        for frame in self.table.active.iter_mut() {
            for a in frame.iter_mut() {
                *a = Active::IDLE;
            }
        }
        self.maptrack.clear();
    }

    /// Nothing refers to this state any more: no mapping held, none of its
    /// references mapped. A dead domain's state may be dropped only then.
    pub const fn quiescent(&self) -> bool {
        self.maptrack.is_empty() && self.table.pinned_refs() == 0
    }
}
