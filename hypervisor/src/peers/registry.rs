//! # The registry: each domain's frame accounting, reachable from every CPU
//!
//! A grant operation reaches the other domain only through its frame
//! accounting: a reference and a writable type reference on the granted
//! frame, taken and dropped with compare-and-exchange on the frame table's
//! words in machine memory (`crate::paging`, "Several CPUs"). That needs the
//! domain's frame table (a handle on machine memory: where its P2M and M2P
//! are) and whether the domain is still one a grant may name. Nothing else of
//! the domain, and nothing its own CPU changes while it runs.
//!
//! So each domain's [`FrameRecord`](crate::domain::FrameRecord) is published
//! here when its CPU starts it, with how far it can be reached ([`Reach`]),
//! and a grant hypercall on any CPU looks its peers up here instead of
//! borrowing them from the CPU that runs them (which would stop that CPU:
//! `crate::vmx::lend`). Xen's counterpart is `rcu_lock_domain_by_id` plus
//! the page's owner field.
//!
//! **Why a looked-up record stays valid for one hypercall.** What a record
//! says changes only when its domain's life does: it is published before the
//! domain first runs, its reach drops to [`Reach::Holder`] when the domain
//! ends, and it is withdrawn when the teardown has released the domain's
//! grants. On several CPUs every teardown step is a cross-CPU operation
//! (`crate::vmx::lend`), which runs only while every other CPU is between
//! exits, so a hypercall that looked a record up finishes before the
//! teardown moves on. A domain that ends (on its CPU) while another CPU's
//! hypercall maps its grant is the map that came just before the end: its
//! teardown, later, undoes it as any other.
//!
//! Plain safe Rust: one lock per domain id, held only to copy a record in or
//! out. [`Lookups`] keeps what one hypercall looked up, so that it asks each
//! domain once.

use crate::domain::DomainId;
use core::cell::OnceCell;

/// How far a published domain can be reached by grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// A live domain: new grant operations may name it (`Peers::peer`).
    Peer,
    /// An ended domain whose teardown has not released its grants yet: only
    /// references taken earlier are dropped through it (`Peers::holder`).
    Holder,
}

/// One record per domain id below `N`.
pub struct Registry<T, const N: usize> {
    slots: [spin::Mutex<Option<(T, Reach)>>; N],
}

impl<T: Clone, const N: usize> Registry<T, N> {
    /// Nothing published.
    pub const fn new() -> Self {
        Self {
            slots: [const { spin::Mutex::new(None) }; N],
        }
    }

    fn slot(&self, d: DomainId) -> Option<&spin::Mutex<Option<(T, Reach)>>> {
        self.slots.get(usize::from(d.0))
    }

    /// Domain `d` starts: reachable as a peer from now on. An id past the
    /// registry's is never published (grants refuse such a domain anyway).
    pub fn publish(&self, d: DomainId, record: T) {
        if let Some(s) = self.slot(d) {
            *s.lock() = Some((record, Reach::Peer));
        }
    }

    /// Domain `d` ended: reachable as a holder only.
    pub fn ended(&self, d: DomainId) {
        if let Some(s) = self.slot(d) {
            if let Some((_, reach)) = s.lock().as_mut() {
                *reach = Reach::Holder;
            }
        }
    }

    /// Domain `d`'s grants are released: not reachable any more.
    pub fn withdraw(&self, d: DomainId) {
        if let Some(s) = self.slot(d) {
            *s.lock() = None;
        }
    }

    /// Domain `d`'s record and reach, if it is published.
    pub fn lookup(&self, d: DomainId) -> Option<(T, Reach)> {
        self.slot(d)?.lock().clone()
    }
}

impl<T: Clone, const N: usize> Default for Registry<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The lookups of one hypercall: each domain's record is copied out of the
/// registry the first time the hypercall asks for it, and answers every
/// later question of the same hypercall (so a batch of operations takes each
/// lock once).
pub struct Lookups<'r, T, const N: usize> {
    registry: &'r Registry<T, N>,
    seen: [OnceCell<Option<(T, Reach)>>; N],
}

impl<'r, T: Clone, const N: usize> Lookups<'r, T, N> {
    /// Nothing looked up yet.
    pub fn new(registry: &'r Registry<T, N>) -> Self {
        Self {
            registry,
            seen: [const { OnceCell::new() }; N],
        }
    }

    fn get(&self, d: DomainId) -> Option<&(T, Reach)> {
        self.seen
            .get(usize::from(d.0))?
            .get_or_init(|| self.registry.lookup(d))
            .as_ref()
    }

    /// Domain `d`'s record if it is a live peer.
    pub fn peer(&self, d: DomainId) -> Option<&T> {
        self.get(d)
            .filter(|(_, r)| *r == Reach::Peer)
            .map(|(t, _)| t)
    }

    /// Domain `d`'s record if it is a peer or a holder.
    pub fn holder(&self, d: DomainId) -> Option<&T> {
        self.get(d).map(|(t, _)| t)
    }
}

/// The hypervisor's registry, over the domain ids grants serve.
pub static REGISTRY: Registry<crate::domain::FrameRecord, { crate::grant::MAX_DOMAINS }> =
    Registry::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_lives_from_publish_to_withdraw() {
        let r: Registry<u32, 4> = Registry::new();
        let d = DomainId(2);
        assert_eq!(r.lookup(d), None);
        r.publish(d, 7);
        assert_eq!(r.lookup(d), Some((7, Reach::Peer)));
        r.ended(d);
        assert_eq!(r.lookup(d), Some((7, Reach::Holder)));
        r.withdraw(d);
        assert_eq!(r.lookup(d), None);
        // Ending a domain never published publishes nothing.
        r.ended(d);
        assert_eq!(r.lookup(d), None);
    }

    #[test]
    fn ids_past_the_registry_are_never_reached() {
        let r: Registry<u32, 4> = Registry::new();
        r.publish(DomainId(4), 1);
        r.publish(DomainId(u16::MAX), 1);
        assert_eq!(r.lookup(DomainId(4)), None);
        let l = Lookups::new(&r);
        assert_eq!(l.peer(DomainId(4)), None);
        assert_eq!(l.holder(DomainId(u16::MAX)), None);
    }

    #[test]
    fn a_holder_is_not_a_peer() {
        let r: Registry<u32, 4> = Registry::new();
        r.publish(DomainId(1), 10);
        r.publish(DomainId(3), 30);
        r.ended(DomainId(3));
        let l = Lookups::new(&r);
        assert_eq!(l.peer(DomainId(1)), Some(&10));
        assert_eq!(l.holder(DomainId(1)), Some(&10));
        assert_eq!(l.peer(DomainId(3)), None);
        assert_eq!(l.holder(DomainId(3)), Some(&30));
        assert_eq!(l.holder(DomainId(2)), None);
    }

    #[test]
    fn one_hypercall_sees_one_answer_per_domain() {
        let r: Registry<u32, 4> = Registry::new();
        r.publish(DomainId(1), 10);
        let l = Lookups::new(&r);
        assert_eq!(l.peer(DomainId(1)), Some(&10));
        // A change after the first look is not seen by this hypercall (the
        // registry's contract: it cannot happen during one, see the module
        // documentation), and is seen by the next.
        r.withdraw(DomainId(1));
        assert_eq!(l.peer(DomainId(1)), Some(&10));
        assert_eq!(Lookups::new(&r).peer(DomainId(1)), None);
    }
}
