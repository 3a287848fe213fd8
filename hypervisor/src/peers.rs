//! # Peers: the other domains one hypercall may reach
//!
//! While the hypervisor handles an exit of one domain, a grant or event
//! operation may name another: map its granted frame, bind its unbound port,
//! notify it. [`Peers`] is everything such an operation may do to a domain
//! other than the caller, and nothing more: read its record (frame table,
//! memory layout), read and set one of its event-channel ports, make one of
//! its ports pending and wake its vCPU. The caller's own state goes through
//! the hypercall context as before; a peer is reached only through this trait.
//!
//! **On one CPU** (today) the run loop (`vmx::run`) implements it over the
//! vCPUs it keeps, split around the running one: no other vCPU runs while an
//! exit is handled, so plain borrows are the whole synchronisation, and a
//! wake is a call into the one scheduler.
//!
//! **On several CPUs** a hypercall that reaches another CPU's domains
//! borrows them while that CPU waits (`crate::vmx::lend`, the run loop's
//! `Cluster`), except a grant hypercall and an interdomain send. A grant
//! reaches a peer only through its frame accounting ([`Peers::owner`]),
//! which [`registry`] publishes for every CPU; a send only makes a port of
//! the peer pending ([`Peers::notify`]), which [`inbox`] posts to the
//! peer's CPU. Both are handled on the caller's CPU alone. The rest is to
//! follow the same way (design B in `docs/architecture.md`): a global table
//! of domains behind locks, and each method takes what it touches:
//! [`Peers::peer`] a reference that keeps the domain from being torn down
//! (Xen's `rcu_lock_domain_by_id`) rather than a borrow of a vCPU slot;
//! [`Peers::endpoint`] and [`Peers::set_endpoint`] the peer's event lock,
//! taken with the caller's in domain-id order (Xen's `double_evtchn_lock`) so
//! that a bind or a close changes both ends atomically ([`Peers::notify`]
//! already reaches another CPU's domain by a post and an IPI, as Xen's
//! `vcpu_kick`). The trait's shape does not change: every method names one
//! domain, and none hands out a peer's state for longer than the call.

use crate::domain::{Domain, DomainId, FrameOwner};
use crate::event::interdomain::{Endpoint, PortWorld};
use crate::event::{Channels, EventBits, NR_PORTS};
use keel_abi::Errno;

/// The live domains other than the caller, as one hypercall reaches them.
pub trait Peers {
    /// Domain `d`, if it is a peer (not the caller), exists and is not being
    /// torn down.
    fn peer(&self, d: DomainId) -> Option<&Domain>;
    /// Domain `d`'s record for dropping the references a mapping of its grant
    /// held: a peer, or a domain that has ended but whose teardown has not
    /// yet released its grants (until then its frames keep their counts, and
    /// an unmap must drop what the map took). No new operation reaches it.
    fn holder(&self, d: DomainId) -> Option<&Domain> {
        self.peer(d)
    }
    /// Whether `d` is a peer (as [`Peers::peer`] finds it).
    fn is_peer(&self, d: DomainId) -> bool {
        self.peer(d).is_some()
    }
    /// The frame accounting of peer `d` (as [`Peers::peer`] finds it): all a
    /// grant reaches of it.
    fn owner(&self, d: DomainId) -> Option<FrameOwner<'_>> {
        self.peer(d).map(Domain::frame_owner)
    }
    /// The frame accounting of `d` as [`Peers::holder`] finds it.
    fn holder_owner(&self, d: DomainId) -> Option<FrameOwner<'_>> {
        self.holder(d).map(Domain::frame_owner)
    }
    /// Port `p` of peer `d`, as the interdomain rules see it; `None` when
    /// there is no such peer or port.
    fn endpoint(&self, d: DomainId, p: u32) -> Option<Endpoint>;
    /// Set port `p` of peer `d` (one [`Peers::endpoint`] answered for).
    fn set_endpoint(&mut self, d: DomainId, p: u32, e: Endpoint);
    /// Make port `p` of peer `d` pending (Xen's 2-level order) and, if its
    /// vCPU is blocked, wake it so it looks at its events; whether an upcall
    /// was newly raised there.
    fn notify(&mut self, d: DomainId, p: u32) -> bool;

    /// vCPU `vcpu` of domain `d` (on this CPU, the domain's) was made an
    /// event by a sibling: wake it if it is blocked (it looks again when
    /// picked). Nothing where vCPUs are not scheduled (the tests).
    fn wake_vcpu(&mut self, d: DomainId, vcpu: u32) {
        let _ = (d, vcpu);
    }
    /// `domctl` from `caller` (`me`: what `getdomaininfo` reports of it), over
    /// every domain: checked by the policy (`crate::domctl`), which fills
    /// `getdomaininfo` into `op`; the pause, unpause or destroy it decides is
    /// carried out here (a destroyed domain is torn down by the run loop once
    /// the caller leaves the CPU, see [`DomctlDone`]). Without a control domain
    /// (one domain alone), `-EPERM`.
    fn domctl(
        &mut self,
        caller: DomainId,
        me: crate::domctl::Summary,
        op: &mut keel_abi::domctl::XenDomctl,
    ) -> Result<DomctlDone, Errno> {
        let _ = (caller, me, op);
        Err(Errno::EPERM)
    }
}

/// What a successful [`Peers::domctl`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomctlDone {
    /// It answered in the envelope (`getdomaininfo`): copy it back.
    Answered,
    /// It paused or unpaused a domain.
    Scheduled,
    /// It marked a domain for destruction: the caller should leave the CPU so
    /// that the run loop tears it down.
    Destroying,
}

/// No other domain: the caller is alone (a single domain, and the host tests
/// of one domain).
pub struct Alone;

impl Peers for Alone {
    fn peer(&self, _: DomainId) -> Option<&Domain> {
        None
    }
    fn endpoint(&self, _: DomainId, _: u32) -> Option<Endpoint> {
        None
    }
    fn set_endpoint(&mut self, _: DomainId, _: u32, _: Endpoint) {}
    fn notify(&mut self, _: DomainId, _: u32) -> bool {
        false
    }
}

/// One domain's ports and the ports of its peers, as the interdomain rules
/// (`crate::event::interdomain`) see them: the caller's through its own
/// channel table and shared page, a peer's through [`Peers`].
pub struct Ports<'x, B: EventBits> {
    /// The calling domain.
    pub me: DomainId,
    /// Its channel table.
    pub chans: &'x mut Channels,
    /// Its pending and mask bits (its shared page).
    pub bits: &'x mut B,
    /// The others.
    pub peers: &'x mut dyn Peers,
}

impl<B: EventBits> PortWorld for Ports<'_, B> {
    fn alive(&self, d: DomainId) -> bool {
        d == self.me || self.peers.is_peer(d)
    }

    fn endpoint(&self, d: DomainId, p: u32) -> Option<Endpoint> {
        if d == self.me {
            self.chans.endpoint(p)
        } else {
            self.peers.endpoint(d, p)
        }
    }

    fn set_endpoint(&mut self, d: DomainId, p: u32, e: Endpoint) {
        if let Endpoint::Interdomain { remote, .. } = e {
            links::LINKS.link(d, remote);
        }
        if d == self.me {
            self.chans.set_endpoint(p, e);
        } else {
            self.peers.set_endpoint(d, p, e);
        }
    }

    fn free_port(&self, d: DomainId) -> Result<u32, Errno> {
        // The rules allocate only the caller's ports.
        if d == self.me {
            self.chans.free_port()
        } else {
            Err(Errno::ENOSPC)
        }
    }

    fn set_pending(&mut self, d: DomainId, p: u32) -> bool {
        if d == self.me {
            self.chans.set_pending(p, self.bits)
        } else {
            self.peers.notify(d, p)
        }
    }

    fn clear_pending(&mut self, d: DomainId, p: u32) {
        // The rules clear only ports of the caller they just freed or took.
        if d == self.me {
            self.bits.clear_pending(p);
        }
    }

    fn nr_ports(&self) -> u32 {
        NR_PORTS as u32
    }
}

pub mod inbox;
pub mod links;
pub mod registry;

#[cfg(test)]
mod tests;
