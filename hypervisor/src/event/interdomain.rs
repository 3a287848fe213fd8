//! # Interdomain event channels: the state machine
//!
//! Xen's rules (`common/event_channel.c`) for ports that connect two domains,
//! as a pure state machine over [`PortWorld`], the per-domain port tables:
//!
//! - `alloc_unbound(dom, remote_dom)`: a port of the caller, *unbound*, that
//!   only `remote_dom` may bind (`remote_dom` need not exist yet, as in Xen);
//! - `bind_interdomain(remote_dom, remote_port)`: consent is the unbound port:
//!   it must be unbound **for the caller**; both ends become *interdomain*,
//!   each naming the other, and the new local port is set pending (a
//!   notification sent before the bind is not lost);
//! - `send` on an interdomain port sets the remote port pending;
//! - `close` of either end frees it and puts the other end back to unbound,
//!   for the closer (it may bind again); a domain that ends closes every port
//!   ([`close_all`], bounded per call);
//! - `status` reports `EVTCHNSTAT_interdomain` with the remote domain and port.
//!
//! The invariant every operation keeps (and the proptest checks): an
//! interdomain end `(d, p) -> (r, q)` always has its peer `(r, q) -> (d, p)`.
//!
//! The local kinds of port (VIRQ, IPI) stay with [`super::Channels`]; a port of
//! such a kind is [`Endpoint::Local`] here, and the operations answer
//! [`Handled::Local`] for it so the caller applies the local rules.

use crate::domain::DomainId;
use keel_abi::errno::Errno;
use keel_abi::event::{DOMID_SELF, EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND};

/// What a port is, as far as connections between domains go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Free.
    Free,
    /// Port 0: never allocated.
    Reserved,
    /// Waiting for `remote` to bind it.
    Unbound {
        /// The only domain that may bind it.
        remote: DomainId,
    },
    /// Connected to `port` of `remote`.
    Interdomain {
        /// The peer domain.
        remote: DomainId,
        /// The peer's port.
        port: u32,
    },
    /// A port of a local kind (VIRQ, IPI): [`super::Channels`]' business.
    Local,
}

/// The per-domain port tables, as the state machine needs them.
pub trait PortWorld {
    /// Whether `d` exists and is not ending.
    fn alive(&self, d: DomainId) -> bool;
    /// Port `p` of `d`; `None` when `d` has no such port (out of range).
    fn endpoint(&self, d: DomainId, p: u32) -> Option<Endpoint>;
    /// Set port `p` of `d` (which exists).
    fn set_endpoint(&mut self, d: DomainId, p: u32, e: Endpoint);
    /// The lowest free port of `d` (`-ENOSPC` when none is left); it stays free
    /// until [`PortWorld::set_endpoint`].
    fn free_port(&self, d: DomainId) -> Result<u32, Errno>;
    /// Set port `p` of `d` pending (the 2-level steps); whether an upcall was
    /// newly raised in `d`.
    fn set_pending(&mut self, d: DomainId, p: u32) -> bool;
    /// Clear port `p`'s pending bit in `d` (a freed port starts clean).
    fn clear_pending(&mut self, d: DomainId, p: u32);
    /// The number of ports a domain has (for [`close_all`]).
    fn nr_ports(&self) -> u32;
}

/// Whether the rules here applied, or the port is a local kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled<T> {
    /// Done, with this result.
    Done(T),
    /// A VIRQ or IPI port: the local table's rules apply.
    Local,
}

/// The answer of `EVTCHNOP_status` for the kinds handled here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// `EVTCHNSTAT_*`.
    pub status: u32,
    /// The union `u` as two words: unbound: `[remote domain, 0]`;
    /// interdomain: `[remote domain, remote port]`.
    pub u: [u32; 2],
}

/// Whom a send notified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Port `port` of `dom` became pending; `upcall`: an upcall was newly
    /// raised there (the scheduler should wake it).
    To {
        /// The receiving domain.
        dom: DomainId,
        /// Its port.
        port: u32,
        /// Whether that domain now has an upcall to take.
        upcall: bool,
    },
    /// An unbound port: dropped, as Xen.
    Dropped,
}

fn resolve(caller: DomainId, dom: u16) -> DomainId {
    if dom == DOMID_SELF {
        caller
    } else {
        DomainId(dom)
    }
}

/// Ports of `dom` may be managed only by `dom` itself: another live domain is
/// `-EPERM`, one that does not exist `-ESRCH`.
fn own(world: &impl PortWorld, caller: DomainId, dom: u16) -> Result<DomainId, Errno> {
    let d = resolve(caller, dom);
    if d == caller {
        Ok(caller)
    } else if world.alive(d) {
        Err(Errno::EPERM)
    } else {
        Err(Errno::ESRCH)
    }
}

/// `EVTCHNOP_alloc_unbound`: a new port of the caller that `remote_dom` may bind.
pub fn alloc_unbound(
    world: &mut impl PortWorld,
    caller: DomainId,
    dom: u16,
    remote_dom: u16,
) -> Result<u32, Errno> {
    let d = own(world, caller, dom)?;
    let p = world.free_port(d)?;
    world.set_endpoint(
        d,
        p,
        Endpoint::Unbound {
            remote: resolve(caller, remote_dom),
        },
    );
    world.clear_pending(d, p);
    Ok(p)
}

/// `EVTCHNOP_bind_interdomain`: connect a new port of the caller to
/// `remote_port` of `remote_dom`, which must be unbound for the caller.
pub fn bind_interdomain(
    world: &mut impl PortWorld,
    caller: DomainId,
    remote_dom: u16,
    remote_port: u32,
) -> Result<u32, Errno> {
    let rd = resolve(caller, remote_dom);
    if !world.alive(rd) {
        return Err(Errno::ESRCH);
    }
    let lp = world.free_port(caller)?;
    match world.endpoint(rd, remote_port) {
        Some(Endpoint::Unbound { remote }) if remote == caller => {}
        _ => return Err(Errno::EINVAL),
    }
    world.set_endpoint(
        caller,
        lp,
        Endpoint::Interdomain {
            remote: rd,
            port: remote_port,
        },
    );
    world.set_endpoint(
        rd,
        remote_port,
        Endpoint::Interdomain {
            remote: caller,
            port: lp,
        },
    );
    world.clear_pending(caller, lp);
    world.set_pending(caller, lp);
    Ok(lp)
}

/// `EVTCHNOP_send` for an interdomain or unbound port.
pub fn send(world: &mut impl PortWorld, caller: DomainId, p: u32) -> Result<Handled<Sent>, Errno> {
    match world.endpoint(caller, p).ok_or(Errno::EINVAL)? {
        Endpoint::Interdomain { remote, port } => {
            let upcall = world.set_pending(remote, port);
            Ok(Handled::Done(Sent::To {
                dom: remote,
                port,
                upcall,
            }))
        }
        Endpoint::Unbound { .. } => Ok(Handled::Done(Sent::Dropped)),
        Endpoint::Local => Ok(Handled::Local),
        Endpoint::Free | Endpoint::Reserved => Err(Errno::EINVAL),
    }
}

/// `EVTCHNOP_close` for an interdomain or unbound port: the peer of an
/// interdomain port goes back to unbound, for the caller.
pub fn close(world: &mut impl PortWorld, caller: DomainId, p: u32) -> Result<Handled<()>, Errno> {
    match world.endpoint(caller, p).ok_or(Errno::EINVAL)? {
        Endpoint::Interdomain { remote, port } => {
            if world.endpoint(remote, port)
                == Some(Endpoint::Interdomain {
                    remote: caller,
                    port: p,
                })
            {
                world.set_endpoint(remote, port, Endpoint::Unbound { remote: caller });
            }
        }
        Endpoint::Unbound { .. } => {}
        Endpoint::Local => return Ok(Handled::Local),
        Endpoint::Free | Endpoint::Reserved => return Err(Errno::EINVAL),
    }
    world.set_endpoint(caller, p, Endpoint::Free);
    world.clear_pending(caller, p);
    Ok(Handled::Done(()))
}

/// `EVTCHNOP_status` for a port of `dom` (the caller's own only).
pub fn status(
    world: &impl PortWorld,
    caller: DomainId,
    dom: u16,
    p: u32,
) -> Result<Handled<Status>, Errno> {
    let d = own(world, caller, dom)?;
    let s = match world.endpoint(d, p).ok_or(Errno::EINVAL)? {
        Endpoint::Free | Endpoint::Reserved => Status {
            status: EVTCHNSTAT_CLOSED,
            u: [0, 0],
        },
        Endpoint::Unbound { remote } => Status {
            status: EVTCHNSTAT_UNBOUND,
            u: [u32::from(remote.0), 0],
        },
        Endpoint::Interdomain { remote, port } => Status {
            status: EVTCHNSTAT_INTERDOMAIN,
            u: [u32::from(remote.0), port],
        },
        Endpoint::Local => return Ok(Handled::Local),
    };
    Ok(Handled::Done(s))
}

/// Close the interdomain and unbound ports of `dying`, from port `cursor`, at
/// most `budget` ports per call: `Some(next cursor)` while ports remain,
/// `None` when done. Each peer end goes back to unbound (for `dying`, which
/// will never bind it: the peer sees `EVTCHNSTAT_unbound` and may close it).
pub fn close_all(
    world: &mut impl PortWorld,
    dying: DomainId,
    cursor: u32,
    budget: u32,
) -> Option<u32> {
    let end = cursor.saturating_add(budget.max(1)).min(world.nr_ports());
    for p in cursor..end {
        if matches!(
            world.endpoint(dying, p),
            Some(Endpoint::Interdomain { .. } | Endpoint::Unbound { .. })
        ) {
            let _ = close(world, dying, p);
        }
    }
    if end < world.nr_ports() {
        Some(end)
    } else {
        None
    }
}

#[cfg(test)]
#[path = "interdomain_tests.rs"]
mod tests;
