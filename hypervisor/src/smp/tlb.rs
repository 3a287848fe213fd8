//! # Which CPUs a TLB flush must reach
//!
//! With several CPUs, a translation a vCPU used may stay cached on the CPU
//! it ran on (VPID-tagged entries survive VM exits and entries) until that
//! CPU flushes its VPID. So a change to a domain's page tables that removes
//! a permission (a PTE that loses present, RW or USER, gains NX or moves to
//! another frame; an unpin; a type change; a grant unmap) must reach every
//! CPU that may hold the old translation *before* the frame can be reused,
//! and so must the guest's own flush requests (`MMUEXT_TLB_FLUSH_MULTI`,
//! `INVLPG_MULTI`, `TLB_FLUSH_ALL`, `INVLPG_ALL`).
//!
//! How Keel does it, in three parts (the mechanism: `vmx::run::visit`,
//! step 4):
//!
//! 1. **An epoch.** Each domain with vCPUs on several CPUs counts the
//!    flushes it was owed (`remote::flushed`; any vCPU's change is owed to
//!    the whole domain, as its page tables are shared). Each CPU remembers,
//!    for each vCPU of the domain it runs, the epoch it last flushed that
//!    vCPU's VPID at, and flushes before it enters that vCPU whenever the
//!    epoch moved since ([`due`]). So a CPU that is *not in* one of the
//!    domain's vCPUs when the change is made needs no interrupt: its stale
//!    entries are tagged with a VPID it flushes before it uses it again.
//! 2. **The shootdown set.** A CPU that *is* in one of the domain's vCPUs
//!    must leave it before the change is complete: the CPU that made the
//!    change asks it for its view (`vmx::lend`), which takes it out of its
//!    guest, and gives it back only after the change. Placement is pinned
//!    (`keel.vcpu_cpus=`: a vCPU runs on one CPU, for its life), so the
//!    CPUs that can be in one of the domain's vCPUs are the CPUs it is
//!    placed on ([`placed`]; `remote::placed`), and the set to ask is those but the one
//!    making the change ([`shootdown`]). Any other CPU runs none of the
//!    domain's vCPUs and never held its translations: it goes on running
//!    its guests. (Xen keeps a per-vCPU dirty CPU mask for the same
//!    question because its vCPUs migrate; a migrating placement would need
//!    one here too.)
//! 3. **The local flush.** The CPU that made the change flushes its own
//!    vCPU before that vCPU runs on (the same epoch test).
//!
//! The guest's flush requests go through the same path: Keel's flush is the
//! domain's (every vCPU), so naming any of its vCPUs in a `MULTI` request
//! flushes them all (`docs/abi/mmu.md`). The model test (`tests.rs`) checks
//! the three parts together: whatever ran where, no vCPU ever runs with a
//! translation older than a change that completed.

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
    /// The set as a mask of the first 32 CPUs (`vmx::lend`'s); the machine
    /// runs fewer (`arch::percpu::MAX_CPUS`).
    pub const fn mask32(self) -> u32 {
        self.0 as u32
    }
    /// The set of a mask of the first 32 CPUs.
    pub const fn from_mask32(m: u32) -> CpuSet {
        CpuSet(m as u64)
    }
}

/// The CPUs a domain's vCPUs may run on: its own (`home`, where every vCPU
/// without a CPU of its own runs) and its remote vCPUs' (`remote`;
/// `remote::placed` keeps the same set as one word).
pub fn placed(home: usize, remote: impl IntoIterator<Item = usize>) -> CpuSet {
    remote
        .into_iter()
        .fold(CpuSet::one(home), |s, c| s.union(CpuSet::one(c)))
}

/// The CPUs that must leave the domain's vCPUs before a change CPU `this`
/// made to its page tables is complete, for a domain `placed` so: every
/// CPU of it but `this` (which flushes its own vCPU before it runs on).
pub const fn shootdown(placed: CpuSet, this: usize) -> CpuSet {
    placed.minus(CpuSet::one(this))
}

/// Whether a CPU that last flushed a vCPU at epoch `*seen` must flush it
/// before entering it, with the domain's epoch at `epoch`; `*seen` moves to
/// `epoch`.
pub fn due(epoch: u64, seen: &mut u64) -> bool {
    if epoch == *seen {
        return false;
    }
    *seen = epoch;
    true
}

#[cfg(test)]
mod tests;
