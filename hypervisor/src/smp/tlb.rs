//! # Which CPUs a TLB flush must reach
//!
//! With several CPUs, a translation a vCPU used may stay cached on every CPU
//! that vCPU ran on (VPID-tagged entries survive VM exits and entries), until
//! that CPU flushes it. So every change that removes a permission (a PTE that
//! loses present or RW or USER or gains NX or moves to another frame; an
//! unpin; a type change; a grant unmap) must be followed by a flush on every
//! CPU that may still hold the old translation *before* the frame can be
//! reused, and the guest's own flush requests (`MMUEXT_TLB_FLUSH_MULTI`,
//! `INVLPG_MULTI`, `TLB_FLUSH_ALL`, `INVLPG_ALL`) must reach the CPUs of the
//! vCPUs they name. This module decides the set of CPUs; sending the IPIs and
//! waiting for them is the mechanism's job (not wired yet: Keel runs every
//! domain on CPU 0).
//!
//! The model, after Xen's dirty CPU masks and TLB-flush clock:
//!
//! - each vCPU has a **dirty set**: the CPUs it ran on since each last flushed
//!   the domain's translations ([`DirtyMasks::ran`], [`DirtyMasks::flushed`]);
//!   the domain's dirty set is their union. Page tables are shared by a
//!   domain's vCPUs, so a change to them concerns the whole domain's set;
//! - a **flush clock** ([`FlushClock`]) ticks at every full flush on any CPU
//!   and remembers when each CPU last flushed; a frame records the time its
//!   last mapping went away, and before the frame is reused only the CPUs that
//!   have not flushed since then need to ([`FlushClock::stale_since`]).

use crate::paging::Flush;

/// The most CPUs a set holds.
pub const SET_CPUS: usize = 64;

/// A set of physical CPUs (bit `n`: CPU `n`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(u64);

impl CpuSet {
    /// No CPU.
    pub const EMPTY: CpuSet = CpuSet(0);

    /// The set of one CPU (empty if `cpu` is out of range).
    pub const fn one(cpu: usize) -> CpuSet {
        if cpu < SET_CPUS {
            CpuSet(1 << cpu)
        } else {
            CpuSet(0)
        }
    }
    /// Whether `cpu` is in the set.
    pub const fn contains(self, cpu: usize) -> bool {
        cpu < SET_CPUS && self.0 & (1 << cpu) != 0
    }
    /// Both sets.
    pub const fn union(self, o: CpuSet) -> CpuSet {
        CpuSet(self.0 | o.0)
    }
    /// `self` without `o`.
    pub const fn minus(self, o: CpuSet) -> CpuSet {
        CpuSet(self.0 & !o.0)
    }
    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The CPUs in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..SET_CPUS).filter(move |&c| self.contains(c))
    }
}

/// The most vCPUs per domain the masks track.
pub const MAX_VCPUS: usize = 32;

/// A domain's per-vCPU dirty sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirtyMasks {
    vcpu: [CpuSet; MAX_VCPUS],
}

impl DirtyMasks {
    /// vCPU `v` ran on `cpu`: `cpu` may now cache the domain's translations.
    pub fn ran(&mut self, v: usize, cpu: usize) {
        if let Some(m) = self.vcpu.get_mut(v) {
            *m = m.union(CpuSet::one(cpu));
        }
    }
    /// `cpu` flushed every translation of the domain (its VPID, or a CR3 load
    /// without VPID): no vCPU's entries are left there.
    pub fn flushed(&mut self, cpu: usize) {
        for m in &mut self.vcpu {
            *m = m.minus(CpuSet::one(cpu));
        }
    }
    /// vCPU `v`'s dirty set (empty for a vCPU out of range).
    pub fn of(&self, v: usize) -> CpuSet {
        self.vcpu.get(v).copied().unwrap_or_default()
    }
    /// The domain's dirty set: every CPU any of its vCPUs may have entries on.
    pub fn domain(&self) -> CpuSet {
        self.vcpu.iter().fold(CpuSet::EMPTY, |a, &m| a.union(m))
    }
    /// The union of the dirty sets of the vCPUs in `mask` (bit `v`: vCPU `v`;
    /// vCPUs that do not exist add nothing).
    pub fn of_vcpus(&self, mask: u64) -> CpuSet {
        (0..MAX_VCPUS.min(64))
            .filter(|&v| mask & (1 << v) != 0)
            .fold(CpuSet::EMPTY, |a, v| a.union(self.of(v)))
    }
}

/// What asks for a flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A page-table change by the hypervisor (validated update, unpin, type
    /// change, grant unmap), owing `Flush` (`paging::flush_for`).
    TableChange(Flush),
    /// `MMUEXT_TLB_FLUSH_LOCAL` / `MMUEXT_INVLPG_LOCAL`: the calling vCPU's CPU.
    GuestLocal(Flush),
    /// `MMUEXT_TLB_FLUSH_MULTI` / `MMUEXT_INVLPG_MULTI`: the vCPUs in the mask.
    GuestMulti(Flush, u64),
    /// `MMUEXT_TLB_FLUSH_ALL` / `MMUEXT_INVLPG_ALL`: every vCPU of the domain.
    GuestAll(Flush),
}

/// The flush to perform: what, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What to flush on each target.
    pub flush: Flush,
    /// Flush here, before returning to the guest.
    pub local: bool,
    /// The other CPUs to interrupt; the change is complete (the frame may be
    /// reused, the hypercall may return) only once each has flushed.
    pub remote: CpuSet,
}

/// The CPUs `cause`, raised on CPU `this` by vCPU `vcpu` of a domain with
/// `masks`, must flush. A change owing no flush reaches no CPU. A hypervisor
/// change reaches the whole domain's dirty set; the running CPU always
/// flushes locally (its vCPU may hold the entry whether or not the mask has
/// caught up).
pub fn decide(cause: Cause, masks: &DirtyMasks, this: usize, vcpu: usize) -> Decision {
    let (flush, targets) = match cause {
        Cause::TableChange(f) | Cause::GuestAll(f) => (f, masks.domain()),
        Cause::GuestLocal(f) => (f, CpuSet::EMPTY),
        Cause::GuestMulti(f, mask) => (f, masks.of_vcpus(mask)),
    };
    if flush == Flush::None {
        return Decision {
            flush,
            local: false,
            remote: CpuSet::EMPTY,
        };
    }
    let calling_vcpu_named = match cause {
        Cause::GuestMulti(_, mask) => vcpu < 64 && mask & (1 << vcpu) != 0,
        _ => true,
    };
    Decision {
        flush,
        local: calling_vcpu_named || targets.contains(this),
        remote: targets.minus(CpuSet::one(this)),
    }
}

/// The TLB-flush clock: a time that ticks at every full flush, and each CPU's
/// time of its last full flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushClock {
    now: u64,
    last: [u64; SET_CPUS],
}

impl Default for FlushClock {
    fn default() -> Self {
        FlushClock {
            now: 1,
            last: [0; SET_CPUS],
        }
    }
}

impl FlushClock {
    /// The current time: what a frame records when its last mapping goes.
    pub fn now(&self) -> u64 {
        self.now
    }
    /// `cpu` flushed its whole TLB.
    pub fn flushed(&mut self, cpu: usize) {
        if let Some(t) = self.last.get_mut(cpu) {
            self.now += 1;
            *t = self.now;
        }
    }
    /// Of `candidates`, the CPUs that have not fully flushed since time
    /// `stamp` (when the frame's last mapping went away): they may still hold
    /// it, and must flush before the frame is reused.
    pub fn stale_since(&self, candidates: CpuSet, stamp: u64) -> CpuSet {
        candidates
            .iter()
            .filter(|&c| self.last[c] <= stamp)
            .fold(CpuSet::EMPTY, |a, c| a.union(CpuSet::one(c)))
    }
}

#[cfg(test)]
mod tests;
