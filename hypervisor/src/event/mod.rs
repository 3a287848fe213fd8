//! # Event channels (Xen's 2-level ABI)
//!
//! An event channel is a port: a small integer naming a source of notifications.
//! The *state* of each port (free, unbound, bound to a VIRQ, an IPI) is the
//! hypervisor's and lives here, in [`Channels`]; the *pending and mask bits* are
//! shared with the guest and live in its `shared_info` page, reached through the
//! [`EventBits`] trait, so the same state machine runs against machine memory in
//! the hypervisor ([`SharedPage`]) and against a plain array in the tests.
//!
//! The one rule that makes events lossless and cheap is the order in which
//! "pending" is published (Xen's `evtchn_2l_set_pending`): the port's bit first,
//! then, unless the port is masked, its word's bit in `evtchn_pending_sel`, then
//! `evtchn_upcall_pending`. The guest clears them in the opposite order, so it can
//! never clear a selector bit while a port under it is still pending unseen. A
//! port that is already pending is not published again (no duplicate upcall);
//! a masked port stays pending and [`Channels::unmask`] publishes it later (no
//! loss).
//!
//! Single vCPU, and the guest is not running while the hypervisor handles an
//! exit, so a plain read-modify-write of a shared word is atomic with respect to
//! the guest.

pub mod advance;
pub mod interdomain;
pub mod shared;
pub mod state;
pub mod timer;

pub use shared::SharedPage;
pub(crate) use state::{on_page, with_page};
pub use state::{Blocked, EventState, Page, Poll};

use keel_abi::event::{
    EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_IPI, EVTCHNSTAT_UNBOUND, EVTCHNSTAT_VIRQ,
    KEEL_NR_EVTCHN_PORTS, NR_VIRQS, VIRQ_DEBUG, VIRQ_TIMER,
};
use keel_abi::Errno;

use crate::domain::DomainId;
use interdomain::Endpoint;

/// Ports per domain (port 0 is reserved).
pub const NR_PORTS: usize = KEEL_NR_EVTCHN_PORTS as usize;
/// Virtual IRQs.
pub const NR_VIRQ: usize = NR_VIRQS as usize;
/// Bits per word of the pending/mask arrays.
pub const BITS_PER_WORD: u32 = 64;

/// Access to the bits the guest shares with the hypervisor (`shared_info`):
/// the pending and mask bitmaps and vCPU 0's `vcpu_info` flags.
pub trait EventBits {
    /// Set port `p`'s pending bit; returns whether it was set before.
    fn test_and_set_pending(&mut self, p: u32) -> bool;
    /// Clear port `p`'s pending bit.
    fn clear_pending(&mut self, p: u32);
    /// Whether port `p` is pending.
    fn is_pending(&self, p: u32) -> bool;
    /// Whether port `p` is masked.
    fn is_masked(&self, p: u32) -> bool;
    /// Clear port `p`'s mask bit; returns whether it was set.
    fn test_and_clear_mask(&mut self, p: u32) -> bool;
    /// Set bit `w` of `evtchn_pending_sel`; returns whether it was set before.
    fn test_and_set_sel(&mut self, w: u32) -> bool;
    /// Set `evtchn_upcall_pending`.
    fn set_upcall_pending(&mut self);
    /// `evtchn_upcall_pending`.
    fn upcall_pending(&self) -> bool;
    /// `evtchn_upcall_mask`.
    fn upcall_mask(&self) -> bool;
    /// Write `evtchn_upcall_mask`.
    fn set_upcall_mask(&mut self, masked: bool);
}

/// Xen's `evtchn_2l_set_pending`: publish port `p` in the right order. Returns
/// whether `evtchn_upcall_pending` was newly raised by this call.
pub fn set_pending(bits: &mut impl EventBits, p: u32) -> bool {
    if bits.test_and_set_pending(p) {
        return false;
    }
    if !bits.is_masked(p) && !bits.test_and_set_sel(p / BITS_PER_WORD) {
        bits.set_upcall_pending();
        return true;
    }
    false
}

/// Whether an upcall should be delivered now (Xen's `local_events_need_delivery`):
/// an event is pending and the guest has not masked events.
pub fn need_delivery(bits: &impl EventBits) -> bool {
    bits.upcall_pending() && !bits.upcall_mask()
}

/// What to do before a VM entry when an upcall is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpcallAction {
    /// Inject the vector now.
    Inject,
    /// The guest cannot take an interrupt yet: exit when it can (interrupt-window
    /// exiting).
    WaitForWindow,
}

/// The injection rule (SDM 26.3.1.1 and 27.6): an external interrupt can be
/// injected only when the guest's RFLAGS.IF is 1, it is in no STI or MOV-SS
/// interrupt shadow, and no other event is already being injected at this entry.
pub const fn upcall_action(rflags_if: bool, in_shadow: bool, injecting: bool) -> UpcallAction {
    if rflags_if && !in_shadow && !injecting {
        UpcallAction::Inject
    } else {
        UpcallAction::WaitForWindow
    }
}

/// What a port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PortState {
    /// Free.
    #[default]
    Free,
    /// Port 0: never allocated (Xen's `ECS_RESERVED`).
    Reserved,
    /// Allocated, waiting for `remote` to bind (Keel: only the domain itself).
    Unbound {
        /// The domain that may bind it.
        remote: u16,
    },
    /// Connected to `port` of domain `remote` (`interdomain`'s rules).
    Interdomain {
        /// The peer domain.
        remote: u16,
        /// The peer's port.
        port: u32,
    },
    /// Bound to a virtual IRQ.
    Virq(u8),
    /// An IPI port of this domain.
    Ipi,
}

/// One port: its state and the vCPU it notifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Port {
    /// State.
    pub state: PortState,
    /// The vCPU notified.
    pub vcpu: u32,
}

/// The answer of `EVTCHNOP_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// `EVTCHNSTAT_*`.
    pub status: u32,
    /// The vCPU notified.
    pub vcpu: u32,
    /// The union: remote domain (unbound) or VIRQ number.
    pub u: u32,
}

/// Whether a VIRQ is global (bindable on vCPU 0 only, re-targetable with
/// bind_vcpu) or per vCPU (Xen's `virq_is_global`).
pub const fn virq_is_global(virq: u32) -> bool {
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG)
}

/// A domain's event-channel table. One vCPU (0).
#[derive(Clone, Debug)]
pub struct Channels {
    ports: [Port; NR_PORTS],
    virq_to_port: [u32; NR_VIRQ],
    /// The domain's own id (accepted as well as `DOMID_SELF`).
    pub domid: u16,
}

/// The vCPUs a Keel domain has.
pub const NR_VCPUS: u32 = 1;

impl Channels {
    /// An empty table: port 0 reserved, everything else free.
    pub fn new(domid: u16) -> Self {
        let mut ports = [Port::default(); NR_PORTS];
        ports[0].state = PortState::Reserved;
        Channels {
            ports,
            virq_to_port: [0; NR_VIRQ],
            domid,
        }
    }

    fn port(&self, p: u32) -> Result<&Port, Errno> {
        self.ports.get(p as usize).ok_or(Errno::EINVAL)
    }
    fn port_mut(&mut self, p: u32) -> Result<&mut Port, Errno> {
        self.ports.get_mut(p as usize).ok_or(Errno::EINVAL)
    }

    /// The state of port `p` (`None` outside the table).
    pub fn get(&self, p: u32) -> Option<Port> {
        self.ports.get(p as usize).copied()
    }

    /// Whether `dom` names this domain (`DOMID_SELF` or its id).
    pub fn is_self(&self, dom: u16) -> bool {
        dom == keel_abi::event::DOMID_SELF || dom == self.domid
    }

    fn alloc(
        &mut self,
        state: PortState,
        vcpu: u32,
        bits: &mut impl EventBits,
    ) -> Result<u32, Errno> {
        let p = self
            .ports
            .iter()
            .position(|x| x.state == PortState::Free)
            .ok_or(Errno::ENOSPC)?;
        let slot = self.ports.get_mut(p).ok_or(Errno::ENOSPC)?;
        *slot = Port { state, vcpu };
        // A fresh port starts not pending (Xen clears it when the port is freed;
        // clearing here as well keeps a guest's stray write from leaking in).
        bits.clear_pending(p as u32);
        Ok(p as u32)
    }

    /// `EVTCHNOP_alloc_unbound`.
    pub fn alloc_unbound(
        &mut self,
        dom: u16,
        remote: u16,
        bits: &mut impl EventBits,
    ) -> Result<u32, Errno> {
        if !self.is_self(dom) || !self.is_self(remote) {
            return Err(Errno::ESRCH);
        }
        let remote = self.domid;
        self.alloc(PortState::Unbound { remote }, 0, bits)
    }

    /// `EVTCHNOP_bind_virq`.
    pub fn bind_virq(
        &mut self,
        virq: u32,
        vcpu: u32,
        bits: &mut impl EventBits,
    ) -> Result<u32, Errno> {
        if virq >= NR_VIRQS {
            return Err(Errno::EINVAL);
        }
        if virq_is_global(virq) && vcpu != 0 {
            return Err(Errno::EINVAL);
        }
        if vcpu >= NR_VCPUS {
            return Err(Errno::ENOENT);
        }
        let slot = self
            .virq_to_port
            .get(virq as usize)
            .copied()
            .ok_or(Errno::EINVAL)?;
        if slot != 0 {
            return Err(Errno::EEXIST);
        }
        let p = self.alloc(PortState::Virq(virq as u8), vcpu, bits)?;
        if let Some(s) = self.virq_to_port.get_mut(virq as usize) {
            *s = p;
        }
        Ok(p)
    }

    /// `EVTCHNOP_bind_ipi`.
    pub fn bind_ipi(&mut self, vcpu: u32, bits: &mut impl EventBits) -> Result<u32, Errno> {
        if vcpu >= NR_VCPUS {
            return Err(Errno::ENOENT);
        }
        self.alloc(PortState::Ipi, vcpu, bits)
    }

    /// `EVTCHNOP_close`.
    pub fn close(&mut self, p: u32, bits: &mut impl EventBits) -> Result<(), Errno> {
        let port = *self.port(p)?;
        match port.state {
            PortState::Free | PortState::Reserved => return Err(Errno::EINVAL),
            PortState::Virq(v) => {
                if let Some(s) = self.virq_to_port.get_mut(usize::from(v)) {
                    *s = 0;
                }
            }
            PortState::Unbound { .. } | PortState::Interdomain { .. } | PortState::Ipi => {}
        }
        *self.port_mut(p)? = Port::default();
        bits.clear_pending(p);
        Ok(())
    }

    /// `EVTCHNOP_send`. Returns whether an upcall was newly raised.
    pub fn send(&mut self, p: u32, bits: &mut impl EventBits) -> Result<bool, Errno> {
        match self.port(p)?.state {
            PortState::Ipi => Ok(set_pending(bits, p)),
            // Xen: "silently drop" a send on an unbound port.
            PortState::Unbound { .. } => Ok(false),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Raise a VIRQ (Xen's `send_guest_vcpu_virq`): nothing if it is not bound.
    /// Returns whether an upcall was newly raised.
    pub fn raise_virq(&mut self, virq: u32, bits: &mut impl EventBits) -> bool {
        match self.virq_to_port.get(virq as usize).copied() {
            Some(p) if p != 0 => set_pending(bits, p),
            _ => false,
        }
    }

    /// `EVTCHNOP_status` (the caller checked `dom`).
    pub fn status(&self, p: u32) -> Result<Status, Errno> {
        let port = self.port(p)?;
        let (status, u) = match port.state {
            PortState::Free | PortState::Reserved => (EVTCHNSTAT_CLOSED, 0),
            PortState::Unbound { remote } => (EVTCHNSTAT_UNBOUND, u32::from(remote)),
            PortState::Interdomain { remote, .. } => (EVTCHNSTAT_INTERDOMAIN, u32::from(remote)),
            PortState::Virq(v) => (EVTCHNSTAT_VIRQ, u32::from(v)),
            PortState::Ipi => (EVTCHNSTAT_IPI, 0),
        };
        Ok(Status {
            status,
            vcpu: port.vcpu,
            u,
        })
    }

    /// `EVTCHNOP_unmask` (Xen's `evtchn_2l_unmask`): clear the mask and, if the
    /// port is pending, publish it. Returns whether an upcall was newly raised.
    pub fn unmask(&mut self, p: u32, bits: &mut impl EventBits) -> Result<bool, Errno> {
        self.port(p)?;
        if bits.test_and_clear_mask(p)
            && bits.is_pending(p)
            && !bits.test_and_set_sel(p / BITS_PER_WORD)
        {
            bits.set_upcall_pending();
            return Ok(true);
        }
        Ok(false)
    }

    /// `EVTCHNOP_bind_vcpu`.
    pub fn bind_vcpu(&mut self, p: u32, vcpu: u32) -> Result<(), Errno> {
        if vcpu >= NR_VCPUS {
            return Err(Errno::ENOENT);
        }
        let port = self.port_mut(p)?;
        match port.state {
            PortState::Virq(v) if virq_is_global(u32::from(v)) => port.vcpu = vcpu,
            PortState::Unbound { .. } => port.vcpu = vcpu,
            _ => return Err(Errno::EINVAL),
        }
        Ok(())
    }

    /// Port `p` as the interdomain rules see it (`None` outside the table).
    pub fn endpoint(&self, p: u32) -> Option<Endpoint> {
        Some(match self.get(p)?.state {
            PortState::Free => Endpoint::Free,
            PortState::Reserved => Endpoint::Reserved,
            PortState::Unbound { remote } => Endpoint::Unbound {
                remote: DomainId(remote),
            },
            PortState::Interdomain { remote, port } => Endpoint::Interdomain {
                remote: DomainId(remote),
                port,
            },
            PortState::Virq(_) | PortState::Ipi => Endpoint::Local,
        })
    }

    /// Set port `p` by the interdomain rules: a port that becomes free loses
    /// its vCPU binding; [`Endpoint::Local`] is never set here (the local
    /// kinds are bound through this table's own calls), nor is port 0.
    pub fn set_endpoint(&mut self, p: u32, e: Endpoint) {
        let state = match e {
            Endpoint::Free => PortState::Free,
            Endpoint::Unbound { remote } => PortState::Unbound { remote: remote.0 },
            Endpoint::Interdomain { remote, port } => PortState::Interdomain {
                remote: remote.0,
                port,
            },
            Endpoint::Reserved | Endpoint::Local => return,
        };
        if p == 0 {
            return;
        }
        if let Ok(slot) = self.port_mut(p) {
            if matches!(slot.state, PortState::Virq(_) | PortState::Ipi) {
                return;
            }
            *slot = match state {
                PortState::Free => Port::default(),
                _ => Port {
                    state,
                    vcpu: slot.vcpu,
                },
            };
        }
    }

    /// The lowest free port (`-ENOSPC` when none is left).
    pub fn free_port(&self) -> Result<u32, Errno> {
        self.ports
            .iter()
            .position(|x| x.state == PortState::Free)
            .map(|p| p as u32)
            .ok_or(Errno::ENOSPC)
    }

    /// Whether port `p` is a valid port number (for `SCHEDOP_poll`).
    pub fn valid(&self, p: u32) -> bool {
        (p as usize) < NR_PORTS
    }
}

#[cfg(test)]
pub(crate) mod tests;
