//! Event channels (`event_channel_op`, hypercall 32) and the upcall vector
//! (`hvm_op` / `HVMOP_set_param` / `HVM_PARAM_CALLBACK_IRQ`, hypercall 34):
//! `xen/include/public/event_channel.h`, `hvm/params.h`, `hvm/hvm_op.h`.
//!
//! An event channel is a port number; sending on it sets the port's bit in
//! `shared_info.evtchn_pending`. Keel implements Xen's 2-level ABI: the bit, then
//! (unless the port is masked in `shared_info.evtchn_mask`) the port's word in
//! `vcpu_info.evtchn_pending_sel`, then `vcpu_info.evtchn_upcall_pending`; the
//! guest learns of it by an interrupt on the vector it registered with
//! `HVMOP_set_param(HVM_PARAM_CALLBACK_IRQ)` of the vector type, delivered only
//! while `vcpu_info.evtchn_upcall_mask` is 0 and RFLAGS.IF is 1. No EOI is needed.
//! Reference: `docs/abi/events.md`.
//!
//! Bare-metal difference: there is no interrupt controller to program or
//! acknowledge; masking is a bit in shared memory, so it costs no exit.

use crate::layout::{keel, xen, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Event, since: AbiVersion::V1_0;
    /// `EVTCHNOP_bind_virq`: bind a virtual IRQ to a new port; [`EvtchnBindVirq`].
    EVTCHNOP_BIND_VIRQ: u64 = 1 => xen("EVTCHNOP_bind_virq");
    /// `EVTCHNOP_close`: close a port; [`EvtchnPort`].
    EVTCHNOP_CLOSE: u64 = 3 => xen("EVTCHNOP_close");
    /// `EVTCHNOP_send`: notify the port's remote end; [`EvtchnPort`].
    EVTCHNOP_SEND: u64 = 4 => xen("EVTCHNOP_send");
    /// `EVTCHNOP_status`: describe a port; [`EvtchnStatus`].
    EVTCHNOP_STATUS: u64 = 5 => xen("EVTCHNOP_status");
    /// `EVTCHNOP_alloc_unbound`: allocate a port for a remote domain; [`EvtchnAllocUnbound`].
    EVTCHNOP_ALLOC_UNBOUND: u64 = 6 => xen("EVTCHNOP_alloc_unbound");
    /// `EVTCHNOP_bind_ipi`: a port that notifies a vCPU of this domain; [`EvtchnBindIpi`].
    EVTCHNOP_BIND_IPI: u64 = 7 => xen("EVTCHNOP_bind_ipi");
    /// `EVTCHNOP_bind_vcpu`: choose the vCPU a port notifies; [`EvtchnBindVcpu`].
    EVTCHNOP_BIND_VCPU: u64 = 8 => xen("EVTCHNOP_bind_vcpu");
    /// `EVTCHNOP_unmask`: clear the mask bit and re-deliver if pending; [`EvtchnPort`].
    EVTCHNOP_UNMASK: u64 = 9 => xen("EVTCHNOP_unmask");
    /// Per-vCPU virtual timer (raised by `set_timer_op` and the `VCPUOP_*` timers).
    VIRQ_TIMER: u32 = 0 => xen("VIRQ_TIMER");
    /// Per-vCPU debug request (Keel: bindable; nothing raises it yet).
    VIRQ_DEBUG: u32 = 1 => xen("VIRQ_DEBUG");
    /// Global console interrupt (Keel: bindable; nothing raises it yet).
    VIRQ_CONSOLE: u32 = 2 => xen("VIRQ_CONSOLE");
    /// Number of virtual IRQs.
    NR_VIRQS: u32 = 24 => xen("NR_VIRQS");
    /// `EVTCHNSTAT_closed`: the port is free (or reserved: port 0).
    EVTCHNSTAT_CLOSED: u32 = 0 => xen("EVTCHNSTAT_closed");
    /// `EVTCHNSTAT_unbound`: waiting for a remote domain to bind.
    EVTCHNSTAT_UNBOUND: u32 = 1 => xen("EVTCHNSTAT_unbound");
    /// `EVTCHNSTAT_interdomain`: connected to a port of another domain (ABI 1.1).
    EVTCHNSTAT_INTERDOMAIN: u32 = 2 => xen("EVTCHNSTAT_interdomain");
    /// `EVTCHNSTAT_pirq` (Keel: no physical IRQs).
    EVTCHNSTAT_PIRQ: u32 = 3 => xen("EVTCHNSTAT_pirq");
    /// `EVTCHNSTAT_virq`: bound to a virtual IRQ.
    EVTCHNSTAT_VIRQ: u32 = 4 => xen("EVTCHNSTAT_virq");
    /// `EVTCHNSTAT_ipi`: an IPI port.
    EVTCHNSTAT_IPI: u32 = 5 => xen("EVTCHNSTAT_ipi");
    /// `DOMID_SELF`: "the calling domain" in a `domid_t` field.
    DOMID_SELF: u16 = 0x7ff0 => xen("DOMID_SELF");
    /// The number of ports of the 2-level ABI on x86_64 (64 words of 64 bits).
    EVTCHN_2L_NR_CHANNELS: u32 = 4096 => xen("EVTCHN_2L_NR_CHANNELS");
    /// The ports a Keel domain may use: 0 (reserved) to 1023. Xen sizes this per
    /// domain (`max_evtchn_port`); a port at or above it is `-EINVAL`.
    KEEL_NR_EVTCHN_PORTS: u32 = 1024 => keel();
    /// `HVMOP_set_param`: set an HVM parameter; [`XenHvmParam`].
    HVMOP_SET_PARAM: u64 = 0 => xen("HVMOP_set_param");
    /// `HVMOP_get_param` (Keel: `-ENOSYS`).
    HVMOP_GET_PARAM: u64 = 1 => xen("HVMOP_get_param");
    /// `HVM_PARAM_CALLBACK_IRQ`: how events reach the vCPU.
    HVM_PARAM_CALLBACK_IRQ: u32 = 0 => xen("HVM_PARAM_CALLBACK_IRQ");
    /// The callback type in bits 63:56 of the parameter value: 2 = a vector;
    /// bits 7:0 are the vector (0x10 ..= 0xff). Keel accepts only this type (and 0,
    /// "no callback").
    HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2 => xen("HVM_PARAM_CALLBACK_TYPE_VECTOR");
    /// Bit position of the callback type in the parameter value.
    HVM_PARAM_CALLBACK_TYPE_SHIFT: u32 = 56 => keel();
    /// The lowest upcall vector `HVM_PARAM_CALLBACK_IRQ` accepts (vectors 0..=15
    /// are exceptions or reserved: `-EINVAL`); the highest is 0xff.
    HVM_CALLBACK_VECTOR_MIN: u8 = 0x10 => keel();
}

abi_consts! {
    family: Family::Event, since: AbiVersion::V1_1, list: INTERDOMAIN_CONSTS;
    /// `EVTCHNOP_bind_interdomain` (ABI 1.1, in progress: served to images that
    /// declare 1.1, `-ENOSYS` to others): connect a new local port to a remote
    /// domain's port that was allocated unbound for the caller;
    /// [`EvtchnBindInterdomain`].
    EVTCHNOP_BIND_INTERDOMAIN: u64 = 0 => xen("EVTCHNOP_bind_interdomain");
    /// Global virtual IRQ of the control domain: another domain ended (ABI 1.1,
    /// in progress: raised only in a control domain that declares 1.1).
    VIRQ_DOM_EXC: u32 = 3 => xen("VIRQ_DOM_EXC");
}

/// `struct evtchn_bind_interdomain` (ABI 1.1, in progress): `local_port` is
/// written back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    /// The domain that allocated the unbound port.
    pub remote_dom: u16,
    /// That port (unbound, allocated for the caller).
    pub remote_port: u32,
    /// OUT: the caller's new port, connected to it.
    pub local_port: u32,
}

impl Pod for EvtchnBindInterdomain {
    const SIZE: usize = 12;
    fn decode(b: &[u8]) -> Self {
        Self {
            remote_dom: rd16(b, 0),
            remote_port: rd32(b, 4),
            local_port: rd32(b, 8),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.remote_dom.to_le_bytes());
        wr(o, 2, &[0, 0]);
        wr(o, 4, &self.remote_port.to_le_bytes());
        wr(o, 8, &self.local_port.to_le_bytes());
    }
}

/// `struct evtchn_alloc_unbound`: `dom` and `remote_dom` are `DOMID_SELF` or the
/// caller's id; `port` is written back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// The domain allocating (must be the caller).
    pub dom: u16,
    /// The domain that may bind it (Keel: only the caller itself).
    pub remote_dom: u16,
    /// OUT: the new port.
    pub port: u32,
}

/// `struct evtchn_bind_virq`: `port` is written back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    /// The virtual IRQ (`VIRQ_*`).
    pub virq: u32,
    /// The vCPU (0: Keel domains have one).
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}

/// `struct evtchn_bind_ipi`: `port` is written back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindIpi {
    /// The vCPU to notify.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}

/// `struct evtchn_send`, `evtchn_close` and `evtchn_unmask`: one port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnPort {
    /// The port.
    pub port: u32,
}

/// `struct evtchn_status`: `dom` and `port` in; `status`, `vcpu` and the union out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatus {
    /// The domain (`DOMID_SELF` or the caller's id).
    pub dom: u16,
    /// The port.
    pub port: u32,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: the vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: the union `u`: `unbound.dom` (u16) for unbound ports, `virq` (u32) for
    /// VIRQ ports, 0 otherwise.
    pub u: [u32; 2],
}

/// `struct evtchn_bind_vcpu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVcpu {
    /// The port.
    pub port: u32,
    /// The vCPU it should notify.
    pub vcpu: u32,
}

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmParam {
    /// `DOMID_SELF` or the caller's id.
    pub domid: u16,
    /// `HVM_PARAM_*`.
    pub index: u32,
    /// The value.
    pub value: u64,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<EvtchnAllocUnbound>() == 8 && offset_of!(EvtchnAllocUnbound, port) == 4);
    assert!(size_of::<EvtchnBindVirq>() == 12 && offset_of!(EvtchnBindVirq, port) == 8);
    assert!(size_of::<EvtchnBindIpi>() == 8 && offset_of!(EvtchnBindIpi, port) == 4);
    assert!(size_of::<EvtchnPort>() == 4);
    assert!(size_of::<EvtchnStatus>() == 24);
    assert!(offset_of!(EvtchnStatus, port) == 4 && offset_of!(EvtchnStatus, status) == 8);
    assert!(offset_of!(EvtchnStatus, vcpu) == 12 && offset_of!(EvtchnStatus, u) == 16);
    assert!(size_of::<EvtchnBindVcpu>() == 8);
    assert!(size_of::<EvtchnBindInterdomain>() == 12);
    assert!(offset_of!(EvtchnBindInterdomain, remote_port) == 4);
    assert!(size_of::<XenHvmParam>() == 16);
    assert!(offset_of!(XenHvmParam, index) == 4 && offset_of!(XenHvmParam, value) == 8);
};

/// Byte encoding of the plain-old-data argument structures (little endian, the
/// layout above, padding zero).
pub trait Pod: Sized + Copy {
    /// Size in guest memory.
    const SIZE: usize;
    /// Decode from at least `SIZE` bytes (missing bytes read as 0).
    fn decode(b: &[u8]) -> Self;
    /// Encode into at least `SIZE` bytes.
    fn encode(&self, out: &mut [u8]);
}

pub(crate) fn rd16(b: &[u8], o: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(o..o + 2) {
        x.copy_from_slice(s);
    }
    u16::from_le_bytes(x)
}
pub(crate) fn rd32(b: &[u8], o: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(o..o + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}
pub(crate) fn rd64(b: &[u8], o: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(o..o + 8) {
        x.copy_from_slice(s);
    }
    u64::from_le_bytes(x)
}
pub(crate) fn wr(out: &mut [u8], o: usize, v: &[u8]) {
    if let Some(s) = out.get_mut(o..o + v.len()) {
        s.copy_from_slice(v);
    }
}

impl Pod for EvtchnAllocUnbound {
    const SIZE: usize = 8;
    fn decode(b: &[u8]) -> Self {
        Self {
            dom: rd16(b, 0),
            remote_dom: rd16(b, 2),
            port: rd32(b, 4),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.dom.to_le_bytes());
        wr(o, 2, &self.remote_dom.to_le_bytes());
        wr(o, 4, &self.port.to_le_bytes());
    }
}
impl Pod for EvtchnBindVirq {
    const SIZE: usize = 12;
    fn decode(b: &[u8]) -> Self {
        Self {
            virq: rd32(b, 0),
            vcpu: rd32(b, 4),
            port: rd32(b, 8),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.virq.to_le_bytes());
        wr(o, 4, &self.vcpu.to_le_bytes());
        wr(o, 8, &self.port.to_le_bytes());
    }
}
impl Pod for EvtchnBindIpi {
    const SIZE: usize = 8;
    fn decode(b: &[u8]) -> Self {
        Self {
            vcpu: rd32(b, 0),
            port: rd32(b, 4),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.vcpu.to_le_bytes());
        wr(o, 4, &self.port.to_le_bytes());
    }
}
impl Pod for EvtchnPort {
    const SIZE: usize = 4;
    fn decode(b: &[u8]) -> Self {
        Self { port: rd32(b, 0) }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.port.to_le_bytes());
    }
}
impl Pod for EvtchnStatus {
    const SIZE: usize = 24;
    fn decode(b: &[u8]) -> Self {
        Self {
            dom: rd16(b, 0),
            port: rd32(b, 4),
            status: rd32(b, 8),
            vcpu: rd32(b, 12),
            u: [rd32(b, 16), rd32(b, 20)],
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.dom.to_le_bytes());
        wr(o, 2, &[0, 0]);
        wr(o, 4, &self.port.to_le_bytes());
        wr(o, 8, &self.status.to_le_bytes());
        wr(o, 12, &self.vcpu.to_le_bytes());
        wr(o, 16, &self.u[0].to_le_bytes());
        wr(o, 20, &self.u[1].to_le_bytes());
    }
}
impl Pod for EvtchnBindVcpu {
    const SIZE: usize = 8;
    fn decode(b: &[u8]) -> Self {
        Self {
            port: rd32(b, 0),
            vcpu: rd32(b, 4),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.port.to_le_bytes());
        wr(o, 4, &self.vcpu.to_le_bytes());
    }
}
impl Pod for XenHvmParam {
    const SIZE: usize = 16;
    fn decode(b: &[u8]) -> Self {
        Self {
            domid: rd16(b, 0),
            index: rd32(b, 4),
            value: rd64(b, 8),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.domid.to_le_bytes());
        wr(o, 2, &[0, 0]);
        wr(o, 4, &self.index.to_le_bytes());
        wr(o, 8, &self.value.to_le_bytes());
    }
}

/// The `HVM_PARAM_CALLBACK_IRQ` value that selects upcalls on `vector`.
pub const fn callback_vector(vector: u8) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_VECTOR << HVM_PARAM_CALLBACK_TYPE_SHIFT) | vector as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut b = [0u8; 24];
        let s = EvtchnStatus {
            dom: DOMID_SELF,
            port: 7,
            status: EVTCHNSTAT_VIRQ,
            vcpu: 0,
            u: [VIRQ_CONSOLE, 0],
        };
        s.encode(&mut b);
        assert_eq!(EvtchnStatus::decode(&b), s);
        assert_eq!(&b[..8], &[0xf0, 0x7f, 0, 0, 7, 0, 0, 0]);
        let p = XenHvmParam {
            domid: DOMID_SELF,
            index: HVM_PARAM_CALLBACK_IRQ,
            value: callback_vector(0xf3),
        };
        let mut b = [0u8; 16];
        p.encode(&mut b);
        assert_eq!(XenHvmParam::decode(&b), p);
        assert_eq!(b[15], 2);
        assert_eq!(b[8], 0xf3);
    }
}
