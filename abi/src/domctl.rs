//! The control domain's interface to the others (`domctl`, hypercall 36):
//! `xen/include/public/domctl.h`, the subset a dom0less control domain needs.
//!
//! **ABI 1.1, in progress.** Every item here is staged for 1.1
//! (`layout::IN_PROGRESS`); `domctl` is served to images that declare 1.1 and
//! answers `-ENOSYS` to others. Reference: `docs/abi/domains.md`.
//!
//! Keel builds every domain at boot from the boot line (Xen's dom0less model),
//! so there is no `createdomain`: the control domain lists the others
//! (`getdomaininfo`), pauses and unpauses them, and destroys them. It learns that
//! another domain ended from `VIRQ_DOM_EXC` ([`crate::event::VIRQ_DOM_EXC`]).
//! A domain that is not the control domain gets `-EPERM` for every command.
//!
//! Bare-metal difference: none applies (there is no other domain on bare metal).

use crate::event::{rd16, rd32, rd64, wr, Pod};
use crate::layout::{keel, xen, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Domctl, since: AbiVersion::V1_1;
    /// The version of the `domctl` interface a caller must put in
    /// `interface_version` (`-EACCES` otherwise, as Xen). Xen changes it with
    /// its releases; Keel keeps the value it adopted.
    XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x15 => xen("XEN_DOMCTL_INTERFACE_VERSION");
    /// `XEN_DOMCTL_destroydomain`: end a domain (its frames return to the
    /// allocator once no other domain maps them); no argument.
    XEN_DOMCTL_DESTROYDOMAIN: u32 = 2 => xen("XEN_DOMCTL_destroydomain");
    /// `XEN_DOMCTL_pausedomain`: stop scheduling a domain; no argument.
    XEN_DOMCTL_PAUSEDOMAIN: u32 = 3 => xen("XEN_DOMCTL_pausedomain");
    /// `XEN_DOMCTL_unpausedomain`: undo one pause; no argument.
    XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4 => xen("XEN_DOMCTL_unpausedomain");
    /// `XEN_DOMCTL_getdomaininfo`: the state of the first domain whose id is at
    /// least `domain`; [`XenDomctlGetdomaininfo`].
    XEN_DOMCTL_GETDOMAININFO: u32 = 5 => xen("XEN_DOMCTL_getdomaininfo");
    /// Info flag: the domain is being torn down.
    XEN_DOMINF_DYING: u32 = 1 << 0 => xen("XEN_DOMINF_dying");
    /// Info flag: the domain has shut down (the reason in bits 16..=23).
    XEN_DOMINF_SHUTDOWN: u32 = 1 << 2 => xen("XEN_DOMINF_shutdown");
    /// Info flag: paused by the control domain.
    XEN_DOMINF_PAUSED: u32 = 1 << 3 => xen("XEN_DOMINF_paused");
    /// Info flag: every vCPU is blocked waiting for an event.
    XEN_DOMINF_BLOCKED: u32 = 1 << 4 => xen("XEN_DOMINF_blocked");
    /// Info flag: a vCPU is running now.
    XEN_DOMINF_RUNNING: u32 = 1 << 5 => xen("XEN_DOMINF_running");
    /// The mask of the shutdown reason (`SHUTDOWN_*`) after shifting.
    XEN_DOMINF_SHUTDOWNMASK: u32 = 255 => xen("XEN_DOMINF_shutdownmask");
    /// Where the shutdown reason sits in `flags`.
    XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16 => xen("XEN_DOMINF_shutdownshift");
    /// The most domains Keel builds at boot (ids 0 ..= 63); the id space is Xen's
    /// (`domid_t`, ids below `DOMID_FIRST_RESERVED`).
    KEEL_MAX_DOMAINS: u32 = 64 => keel();
}

/// `struct xen_domctl`: the envelope of every command.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenDomctl {
    /// `XEN_DOMCTL_*`.
    pub cmd: u32,
    /// Must be [`XEN_DOMCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The target domain.
    pub domain: u16,
    /// Zero.
    pub pad: [u16; 3],
    /// The union `u`: the command's argument (128 bytes; for
    /// `getdomaininfo`, a [`XenDomctlGetdomaininfo`] at offset 0).
    pub u: [u64; 16],
}

impl Default for XenDomctl {
    fn default() -> Self {
        Self {
            cmd: 0,
            interface_version: XEN_DOMCTL_INTERFACE_VERSION,
            domain: 0,
            pad: [0; 3],
            u: [0; 16],
        }
    }
}

/// `struct xen_domctl_getdomaininfo`: every field is written by the hypervisor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlGetdomaininfo {
    /// The domain described (the first id at or above the one asked for).
    pub domain: u16,
    /// Zero.
    pub pad1: u16,
    /// `XEN_DOMINF_*`, with the shutdown reason in bits 16..=23.
    pub flags: u32,
    /// Frames the domain owns now.
    pub tot_pages: u64,
    /// Frames it was built with (Keel domains do not grow).
    pub max_pages: u64,
    /// Zero (no claims).
    pub outstanding_pages: u64,
    /// Zero (no page sharing).
    pub shr_pages: u64,
    /// Zero (no paging).
    pub paged_pages: u64,
    /// The machine frame of its `shared_info`.
    pub shared_info_frame: u64,
    /// Nanoseconds of CPU time it has used.
    pub cpu_time: u64,
    /// 1 (one vCPU per domain), 0 once it is dying.
    pub nr_online_vcpus: u32,
    /// 0.
    pub max_vcpu_id: u32,
    /// Zero (no security labels).
    pub ssidref: u32,
    /// The domain's handle: Keel puts the domain's name from the boot line,
    /// zero-padded (Xen: a UUID chosen by the toolstack).
    pub handle: [u8; 16],
    /// Zero (one CPU pool).
    pub cpupool: u32,
    /// 52 (machine addresses; no guest-physical space under direct paging).
    pub gpaddr_bits: u8,
    /// Zero.
    pub pad2: [u8; 7],
    /// Zero: the architecture configuration (`xen_arch_domainconfig`: no
    /// emulated devices).
    pub arch_config: [u32; 2],
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<XenDomctl>() == 144 && offset_of!(XenDomctl, u) == 16);
    assert!(size_of::<XenDomctlGetdomaininfo>() == 112);
    assert!(offset_of!(XenDomctlGetdomaininfo, nr_online_vcpus) == 64);
    assert!(offset_of!(XenDomctlGetdomaininfo, handle) == 76);
    assert!(offset_of!(XenDomctlGetdomaininfo, arch_config) == 104);
};

impl Pod for XenDomctl {
    const SIZE: usize = 144;
    fn decode(b: &[u8]) -> Self {
        let mut u = [0u64; 16];
        for (i, w) in u.iter_mut().enumerate() {
            *w = rd64(b, 16 + 8 * i);
        }
        Self {
            cmd: rd32(b, 0),
            interface_version: rd32(b, 4),
            domain: rd16(b, 8),
            pad: [rd16(b, 10), rd16(b, 12), rd16(b, 14)],
            u,
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.cmd.to_le_bytes());
        wr(o, 4, &self.interface_version.to_le_bytes());
        wr(o, 8, &self.domain.to_le_bytes());
        for (i, p) in self.pad.iter().enumerate() {
            wr(o, 10 + 2 * i, &p.to_le_bytes());
        }
        for (i, w) in self.u.iter().enumerate() {
            wr(o, 16 + 8 * i, &w.to_le_bytes());
        }
    }
}

impl Pod for XenDomctlGetdomaininfo {
    const SIZE: usize = 112;
    fn decode(b: &[u8]) -> Self {
        let mut handle = [0u8; 16];
        if let Some(s) = b.get(76..92) {
            handle.copy_from_slice(s);
        }
        let mut pad2 = [0u8; 7];
        if let Some(s) = b.get(97..104) {
            pad2.copy_from_slice(s);
        }
        Self {
            domain: rd16(b, 0),
            pad1: rd16(b, 2),
            flags: rd32(b, 4),
            tot_pages: rd64(b, 8),
            max_pages: rd64(b, 16),
            outstanding_pages: rd64(b, 24),
            shr_pages: rd64(b, 32),
            paged_pages: rd64(b, 40),
            shared_info_frame: rd64(b, 48),
            cpu_time: rd64(b, 56),
            nr_online_vcpus: rd32(b, 64),
            max_vcpu_id: rd32(b, 68),
            ssidref: rd32(b, 72),
            handle,
            cpupool: rd32(b, 92),
            gpaddr_bits: b.get(96).copied().unwrap_or(0),
            pad2,
            arch_config: [rd32(b, 104), rd32(b, 108)],
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.domain.to_le_bytes());
        wr(o, 2, &self.pad1.to_le_bytes());
        wr(o, 4, &self.flags.to_le_bytes());
        let words = [
            self.tot_pages,
            self.max_pages,
            self.outstanding_pages,
            self.shr_pages,
            self.paged_pages,
            self.shared_info_frame,
            self.cpu_time,
        ];
        for (i, w) in words.iter().enumerate() {
            wr(o, 8 + 8 * i, &w.to_le_bytes());
        }
        wr(o, 64, &self.nr_online_vcpus.to_le_bytes());
        wr(o, 68, &self.max_vcpu_id.to_le_bytes());
        wr(o, 72, &self.ssidref.to_le_bytes());
        wr(o, 76, &self.handle);
        wr(o, 92, &self.cpupool.to_le_bytes());
        wr(o, 96, &[self.gpaddr_bits]);
        wr(o, 97, &self.pad2);
        wr(o, 104, &self.arch_config[0].to_le_bytes());
        wr(o, 108, &self.arch_config[1].to_le_bytes());
    }
}

/// The `flags` word of `getdomaininfo` for a domain that shut down with `reason`.
pub const fn dominf_shutdown(reason: u32) -> u32 {
    XEN_DOMINF_SHUTDOWN | (reason & XEN_DOMINF_SHUTDOWNMASK) << XEN_DOMINF_SHUTDOWNSHIFT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getdomaininfo_round_trips_and_shutdown_reason_packs() {
        let mut i = XenDomctlGetdomaininfo {
            domain: 3,
            flags: dominf_shutdown(crate::sched::SHUTDOWN_CRASH),
            tot_pages: 0x800,
            gpaddr_bits: 52,
            ..Default::default()
        };
        i.handle[..4].copy_from_slice(b"ring");
        let mut b = [0u8; 112];
        i.encode(&mut b);
        assert_eq!(XenDomctlGetdomaininfo::decode(&b), i);
        assert_eq!(
            (i.flags >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK,
            3
        );
        let d = XenDomctl {
            cmd: XEN_DOMCTL_GETDOMAININFO,
            domain: 1,
            ..Default::default()
        };
        let mut b = [0u8; 144];
        d.encode(&mut b);
        assert_eq!(XenDomctl::decode(&b), d);
        assert_eq!(b[4], 0x15);
    }
}
