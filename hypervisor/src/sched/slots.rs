//! # Scheduler slots for vCPUs
//!
//! The scheduler schedules vCPUs, one slot each. With `D` domain slots
//! (domain ids `0..D`), vCPU `v` of domain `d` is slot `d + v * D`: vCPU 0's
//! slot is the domain id, so a one-vCPU domain is scheduled exactly as when
//! the scheduler knew domains only, and a domain's slots are found without a
//! table. Weights stay per domain (Xen credit's): each vCPU slot is given its
//! domain's weight, and a domain-wide operation (pause, unpause, remove) is
//! applied to each of its slots.

use super::{Scheduler, Vcpu};
use crate::domain::vcpus::MAX_VCPUS;
use crate::domain::DomainId;

/// The slots of `D` domain slots' vCPUs.
pub struct VcpuSlots<const D: usize>;

impl<const D: usize> VcpuSlots<D> {
    /// Slots in all: `D` per vCPU number.
    pub const SLOTS: usize = D * MAX_VCPUS;

    /// The slot of vCPU `vcpu` of domain `d` (`None` beyond either range).
    pub const fn slot(d: DomainId, vcpu: u32) -> Option<DomainId> {
        if (d.0 as usize) < D && (vcpu as usize) < MAX_VCPUS {
            Some(DomainId(d.0 + (vcpu as u16) * (D as u16)))
        } else {
            None
        }
    }

    /// Whose slot `s` is: the domain and the vCPU.
    #[inline(always)]
    pub const fn vcpu_of(s: DomainId) -> (DomainId, u32) {
        let d = D as u16;
        // vCPU 0 first, with no division: every switch of a one-vCPU domain.
        if s.0 < d {
            return (s, 0);
        }
        (DomainId(s.0 % d), (s.0 / d) as u32)
    }

    /// Whose slot `s` is: the domain ([`Self::vcpu_of`] without the vCPU).
    #[inline(always)]
    pub const fn domain_of(s: DomainId) -> DomainId {
        Self::vcpu_of(s).0
    }

    /// Every slot of domain `d`, vCPU 0's first.
    pub fn of_domain(d: DomainId) -> impl Iterator<Item = DomainId> {
        (0..MAX_VCPUS as u32).filter_map(move |v| Self::slot(d, v))
    }
}

impl<const N: usize> Scheduler<N> {
    /// Pause every vCPU of the domain whose slots are `slots`.
    pub fn pause_all(&mut self, slots: impl Iterator<Item = DomainId>, now: u64) {
        for s in slots {
            self.pause(s, now);
        }
    }

    /// Undo one pause of every vCPU of the domain whose slots are `slots`.
    pub fn unpause_all(&mut self, slots: impl Iterator<Item = DomainId>) {
        for s in slots {
            self.unpause(s);
        }
    }

    /// Remove every vCPU of the domain whose slots are `slots`.
    pub fn remove_all(&mut self, slots: impl Iterator<Item = DomainId>) {
        for s in slots {
            self.remove(s);
        }
    }

    /// The domain whose slots are `slots`, as `getdomaininfo` sees it: vCPU
    /// 0's record (its state and pauses) with the CPU time of all its vCPUs,
    /// the one on the CPU's run so far counted up to `now` if given; `None`
    /// if vCPU 0 has no slot.
    pub fn domain_now(
        &self,
        mut slots: impl Iterator<Item = DomainId>,
        now: Option<u64>,
    ) -> Option<Vcpu> {
        let at = |s: DomainId| match now {
            Some(now) => self.vcpu_now(s, now),
            None => self.vcpu(s).copied(),
        };
        let mut first = at(slots.next()?)?;
        for s in slots {
            if let Some(v) = at(s) {
                first.cpu_time = first.cpu_time.saturating_add(v.cpu_time);
            }
        }
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Next, State, DEFAULT_WEIGHT};
    use super::*;
    use proptest::prelude::*;

    type S = VcpuSlots<5>;

    #[test]
    fn vcpu_0_is_the_domain_id() {
        for d in 0..5 {
            assert_eq!(S::slot(DomainId(d), 0), Some(DomainId(d)));
        }
        assert_eq!(S::slot(DomainId(5), 0), None);
        assert_eq!(S::slot(DomainId(1), MAX_VCPUS as u32), None);
        assert_eq!(S::slot(DomainId(2), 3), Some(DomainId(17)));
        assert_eq!(S::of_domain(DomainId(1)).count(), MAX_VCPUS);
    }

    proptest! {
        /// Slots are one to one with (domain, vCPU) and all below `SLOTS`.
        #[test]
        fn slots_are_one_to_one(d in 0u16..5, v in 0u32..MAX_VCPUS as u32) {
            let s = S::slot(DomainId(d), v).unwrap();
            prop_assert!((s.0 as usize) < S::SLOTS);
            prop_assert_eq!(S::vcpu_of(s), (DomainId(d), v));
        }
    }

    #[test]
    fn a_domains_vcpus_are_scheduled_each_and_paused_together() {
        let mut s: Scheduler<{ S::SLOTS }> = Scheduler::new(1000);
        let (a, b) = (DomainId(1), DomainId(2));
        let a1 = S::slot(a, 1).unwrap();
        s.add(a, DEFAULT_WEIGHT);
        s.add(a1, DEFAULT_WEIGHT);
        s.add(b, DEFAULT_WEIGHT);
        // Round robin over the three vCPUs.
        let mut ran = std::vec::Vec::new();
        let mut now = 0;
        for _ in 0..6 {
            match s.schedule(now) {
                Next::Run { dom, until } => {
                    ran.push(S::vcpu_of(dom));
                    now = until;
                }
                Next::Idle { .. } => panic!("idle"),
            }
        }
        assert_eq!(ran, [(a, 0), (a, 1), (b, 0), (a, 0), (a, 1), (b, 0)]);
        // Pausing the domain pauses both of its vCPUs: b alone runs.
        s.pause_all(S::of_domain(a), now);
        for _ in 0..3 {
            match s.schedule(now) {
                Next::Run { dom, until } => {
                    assert_eq!(dom, b);
                    now = until.min(now + 1000);
                }
                Next::Idle { .. } => panic!("idle"),
            }
        }
        s.unpause_all(S::of_domain(a));
        let info = s.domain_now(S::of_domain(a), None).unwrap();
        assert_eq!(info.cpu_time, 4000, "both vCPUs' time");
        assert_eq!(info.pauses, 0);
        s.remove_all(S::of_domain(a));
        assert_eq!(s.vcpu(a1).unwrap().state, State::Offline);
        assert_eq!(s.vcpu(a).unwrap().state, State::Offline);
    }
}
