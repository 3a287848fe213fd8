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
pub use state::{Blocked, EventState, Page, Poll, VcpuEvents};

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
/// the domain's pending and mask bitmaps, and each vCPU's `vcpu_info` flags
/// (Xen's 2-level rules: the pending selector and `evtchn_upcall_pending` are
/// per vCPU, set on the port's notify vCPU). The flags read without a vCPU
/// are those of the vCPU the bits were opened for (the running one).
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
    /// Set bit `w` of vCPU `vcpu`'s `evtchn_pending_sel`; returns whether it
    /// was set before. A vCPU whose `vcpu_info` cannot be written now (its
    /// registered frame is no longer writable) counts as set: the port stays
    /// pending in the shared bitmap and is seen at the next scan.
    fn test_and_set_sel(&mut self, vcpu: u32, w: u32) -> bool;
    /// Set vCPU `vcpu`'s `evtchn_upcall_pending`.
    fn set_upcall_pending(&mut self, vcpu: u32);
    /// `evtchn_upcall_pending`.
    fn upcall_pending(&self) -> bool;
    /// `evtchn_upcall_mask`.
    fn upcall_mask(&self) -> bool;
    /// Write `evtchn_upcall_mask`.
    fn set_upcall_mask(&mut self, masked: bool);
}

/// Xen's `evtchn_2l_set_pending`: publish port `p` in the right order, on
/// its notify vCPU `vcpu`'s selector. Returns whether that vCPU's
/// `evtchn_upcall_pending` was newly raised by this call.
#[inline(never)]
pub fn set_pending(bits: &mut impl EventBits, p: u32, vcpu: u32) -> bool {
    set_pending_on(bits, p, vcpu)
}

/// [`set_pending`] on vCPU 0, compiled for it: on a page opened for vCPU 0
/// with its record in `shared_info` (every event of a one-vCPU domain), the
/// record is found as before there were several vCPUs, with no vCPU to
/// compare.
#[inline(never)]
pub fn set_pending_vcpu0(bits: &mut impl EventBits, p: u32) -> bool {
    set_pending_on(bits, p, 0)
}

#[inline(always)]
fn set_pending_on(bits: &mut impl EventBits, p: u32, vcpu: u32) -> bool {
    if bits.test_and_set_pending(p) {
        return false;
    }
    if !bits.is_masked(p) && !bits.test_and_set_sel(vcpu, p / BITS_PER_WORD) {
        bits.set_upcall_pending(vcpu);
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
/// bind_vcpu) or per vCPU (Xen's `virq_is_global`: each vCPU binds its own
/// port for it).
pub const fn virq_is_global(virq: u32) -> bool {
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG)
}

/// The most vCPUs a domain's table serves (`domain::vcpus::MAX_VCPUS`).
pub const MAX_VCPUS: usize = crate::domain::vcpus::MAX_VCPUS;

/// A domain's event-channel table: per domain, as Xen's `struct domain`'s
/// `evtchn` (each port records the vCPU it notifies), with the VIRQ bindings
/// per vCPU, as Xen's `struct vcpu`'s `virq_to_evtchn` (a global VIRQ is
/// bound in vCPU 0's).
#[derive(Clone, Debug)]
pub struct Channels {
    ports: [Port; NR_PORTS],
    /// vCPU 0's VIRQ bindings (every global VIRQ's), then the others' (index
    /// `vcpu - 1`): vCPU 0's apart, so that a one-vCPU domain's VIRQ costs
    /// one lookup, as before there were several.
    virq_to_port: [u32; NR_VIRQ],
    vcpu_virqs: [[u32; NR_VIRQ]; MAX_VCPUS - 1],
    /// The domain's vCPUs (`keel.vcpus=`): a port may notify vCPUs
    /// `0..nr_vcpus`.
    nr_vcpus: u32,
    /// The domain's own id (accepted as well as `DOMID_SELF`).
    pub domid: u16,
}

impl Channels {
    /// An empty table for a domain of one vCPU: port 0 reserved, everything
    /// else free.
    pub fn new(domid: u16) -> Self {
        let mut ports = [Port::default(); NR_PORTS];
        ports[0].state = PortState::Reserved;
        Channels {
            ports,
            virq_to_port: [0; NR_VIRQ],
            vcpu_virqs: [[0; NR_VIRQ]; MAX_VCPUS - 1],
            nr_vcpus: 1,
            domid,
        }
    }

    /// The domain has `n` vCPUs (1 ..= [`MAX_VCPUS`]; clamped).
    pub fn set_vcpus(&mut self, n: u32) {
        self.nr_vcpus = n.clamp(1, MAX_VCPUS as u32);
    }

    /// How many vCPUs ports may notify.
    pub const fn nr_vcpus(&self) -> u32 {
        self.nr_vcpus
    }

    /// The vCPU port `p` notifies (0 for a port outside the table).
    #[inline(always)]
    pub fn notify_vcpu(&self, p: u32) -> u32 {
        self.ports.get(p as usize).map_or(0, |x| x.vcpu)
    }

    /// Make port `p` pending on its notify vCPU (Xen's
    /// `evtchn_port_set_pending`); whether an upcall was newly raised there.
    #[inline(always)]
    pub fn set_pending(&self, p: u32, bits: &mut impl EventBits) -> bool {
        // A domain of one vCPU: every port notifies vCPU 0 (no port read).
        if self.nr_vcpus == 1 {
            return set_pending_vcpu0(bits, p);
        }
        set_pending(bits, p, self.notify_vcpu(p))
    }

    /// [`set_pending`] of port `p` on vCPU `vcpu`, through
    /// [`set_pending_vcpu0`] for vCPU 0.
    #[inline(always)]
    fn set_pending_to(p: u32, vcpu: u32, bits: &mut impl EventBits) -> bool {
        if vcpu == 0 {
            return set_pending_vcpu0(bits, p);
        }
        set_pending(bits, p, vcpu)
    }

    /// `-ENOENT` for a vCPU the domain does not have.
    fn check_vcpu(&self, vcpu: u32) -> Result<(), Errno> {
        if vcpu >= self.nr_vcpus {
            return Err(Errno::ENOENT);
        }
        Ok(())
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
        self.check_vcpu(vcpu)?;
        let slot = self.virq_slot(virq, vcpu).ok_or(Errno::EINVAL)?;
        if slot != 0 {
            return Err(Errno::EEXIST);
        }
        let p = self.alloc(PortState::Virq(virq as u8), vcpu, bits)?;
        if let Some(s) = self
            .virq_table_mut(vcpu)
            .and_then(|t| t.get_mut(virq as usize))
        {
            *s = p;
        }
        Ok(p)
    }

    /// vCPU `vcpu`'s VIRQ bindings.
    fn virq_table(&self, vcpu: u32) -> Option<&[u32; NR_VIRQ]> {
        match vcpu.checked_sub(1) {
            None => Some(&self.virq_to_port),
            Some(i) => self.vcpu_virqs.get(i as usize),
        }
    }

    fn virq_table_mut(&mut self, vcpu: u32) -> Option<&mut [u32; NR_VIRQ]> {
        match vcpu.checked_sub(1) {
            None => Some(&mut self.virq_to_port),
            Some(i) => self.vcpu_virqs.get_mut(i as usize),
        }
    }

    /// The port VIRQ `virq` is bound to in vCPU `vcpu`'s table (0: none).
    fn virq_slot(&self, virq: u32, vcpu: u32) -> Option<u32> {
        self.virq_table(vcpu)?.get(virq as usize).copied()
    }

    /// `EVTCHNOP_bind_ipi`: a port that notifies vCPU `vcpu`.
    pub fn bind_ipi(&mut self, vcpu: u32, bits: &mut impl EventBits) -> Result<u32, Errno> {
        self.check_vcpu(vcpu)?;
        self.alloc(PortState::Ipi, vcpu, bits)
    }

    /// `EVTCHNOP_close`.
    pub fn close(&mut self, p: u32, bits: &mut impl EventBits) -> Result<(), Errno> {
        let port = *self.port(p)?;
        match port.state {
            PortState::Free | PortState::Reserved => return Err(Errno::EINVAL),
            PortState::Virq(v) => {
                // Bound in one vCPU's table (vCPU 0's for a global VIRQ,
                // wherever it notifies now).
                let tables =
                    core::iter::once(&mut self.virq_to_port).chain(self.vcpu_virqs.iter_mut());
                for t in tables {
                    if let Some(s) = t.get_mut(usize::from(v)).filter(|s| **s == p) {
                        *s = 0;
                    }
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
        let port = *self.port(p)?;
        match port.state {
            PortState::Ipi => Ok(Self::set_pending_to(p, port.vcpu, bits)),
            // Xen: "silently drop" a send on an unbound port.
            PortState::Unbound { .. } => Ok(false),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Raise a global VIRQ (Xen's `send_guest_global_virq`: bound in vCPU
    /// 0's table, delivered to the port's notify vCPU), or a per-vCPU VIRQ of
    /// vCPU 0: nothing if it is not bound. Returns whether an upcall was newly
    /// raised.
    pub fn raise_virq(&mut self, virq: u32, bits: &mut impl EventBits) -> bool {
        match self.virq_to_port.get(virq as usize).copied() {
            Some(p) if p != 0 => self.set_pending(p, bits),
            _ => false,
        }
    }

    /// Raise per-vCPU VIRQ `virq` of vCPU `vcpu` (Xen's
    /// `send_guest_vcpu_virq`: a vCPU's own `VIRQ_TIMER`), bound in its
    /// table to a port that notifies it (a per-vCPU VIRQ's port cannot be
    /// moved to another vCPU: [`Self::bind_vcpu`]).
    #[inline(always)]
    pub fn raise_vcpu_virq(&mut self, virq: u32, vcpu: u32, bits: &mut impl EventBits) -> bool {
        debug_assert!(!virq_is_global(virq));
        match self.virq_slot(virq, vcpu) {
            Some(p) if p != 0 => Self::set_pending_to(p, vcpu, bits),
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
    /// The selector and upcall flag set are the port's notify vCPU's.
    pub fn unmask(&mut self, p: u32, bits: &mut impl EventBits) -> Result<bool, Errno> {
        let v = self.port(p)?.vcpu;
        if bits.test_and_clear_mask(p)
            && bits.is_pending(p)
            && !bits.test_and_set_sel(v, p / BITS_PER_WORD)
        {
            bits.set_upcall_pending(v);
            return Ok(true);
        }
        Ok(false)
    }

    /// `EVTCHNOP_bind_vcpu`: a global VIRQ or an unbound port notifies vCPU
    /// `vcpu` from now on (a per-vCPU VIRQ and an IPI port are bound to their
    /// vCPU: `-EINVAL`; so is an interdomain port, which Xen 4.17 accepts:
    /// Keel's 1.0 answer, kept until an ABI version changes it).
    pub fn bind_vcpu(&mut self, p: u32, vcpu: u32) -> Result<(), Errno> {
        self.check_vcpu(vcpu)?;
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
