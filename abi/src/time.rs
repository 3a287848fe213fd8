//! Time and timers: the `shared_info` page, `vcpu_info`, `vcpu_time_info`
//! (pvclock), `set_timer_op` (hypercall 15) and the `vcpu_op` timers (hypercall
//! 24): `xen/include/public/xen.h`, `vcpu.h`, `arch-x86/xen-x86_64.h`.
//!
//! The hypervisor publishes, per vCPU, a `vcpu_time_info`: system time in
//! nanoseconds at a TSC value, and the scale from TSC ticks to nanoseconds. The
//! guest reads the time with no exit:
//!
//! ```text
//! do { v = version; (read the fields) } while (v odd || v != version)
//! d = rdtsc() - tsc_timestamp
//! d = tsc_shift >= 0 ? d << tsc_shift : d >> -tsc_shift
//! now = system_time + ((d * tsc_to_system_mul) >> 32)
//! ```
//!
//! Timers take absolute system time in nanoseconds and raise `VIRQ_TIMER`.
//! Reference: `docs/abi/time.md`.
//!
//! Bare-metal difference: no PIT, HPET, local APIC timer or TSC frequency to
//! discover; a clock and a timer expressed in nanoseconds instead.

use crate::event::{rd32, rd64, wr, Pod};
use crate::layout::{keel, xen, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Time, since: AbiVersion::V1_0;
    /// `VCPUOP_set_periodic_timer`: [`VcpuSetPeriodicTimer`]; a period under 1 ms is `-EINVAL`.
    VCPUOP_SET_PERIODIC_TIMER: u64 = 6 => xen("VCPUOP_set_periodic_timer");
    /// `VCPUOP_stop_periodic_timer`.
    VCPUOP_STOP_PERIODIC_TIMER: u64 = 7 => xen("VCPUOP_stop_periodic_timer");
    /// `VCPUOP_set_singleshot_timer`: [`VcpuSetSingleshotTimer`].
    VCPUOP_SET_SINGLESHOT_TIMER: u64 = 8 => xen("VCPUOP_set_singleshot_timer");
    /// `VCPUOP_stop_singleshot_timer`.
    VCPUOP_STOP_SINGLESHOT_TIMER: u64 = 9 => xen("VCPUOP_stop_singleshot_timer");
    /// `VCPU_SSHOTTMR_future`: fail with `-ETIME` if the deadline has passed.
    VCPU_SSHOTTMR_FUTURE: u32 = 1 => xen("VCPU_SSHOTTMR_future");
    /// `XEN_PVCLOCK_TSC_STABLE_BIT` in `vcpu_time_info.flags`: the TSC is constant
    /// and the same on every CPU (Keel: always set).
    XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 => xen("XEN_PVCLOCK_TSC_STABLE_BIT");
    /// `XEN_LEGACY_MAX_VCPUS`: entries of `shared_info.vcpu_info`.
    XEN_LEGACY_MAX_VCPUS: usize = 32 => xen("XEN_LEGACY_MAX_VCPUS");
    /// The shortest period `VCPUOP_set_periodic_timer` accepts, in ns (Xen's `MILLISECS(1)`).
    PERIODIC_TIMER_MIN_NS: u64 = 1_000_000 => keel();
}

/// `struct vcpu_time_info` (pvclock).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    /// Odd while the hypervisor updates the record; changes on every update.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// The TSC at which `system_time` was taken.
    pub tsc_timestamp: u64,
    /// Nanoseconds since the hypervisor started, at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC-to-nanoseconds multiplier, a 32.32 fixed-point fraction.
    pub tsc_to_system_mul: u32,
    /// Shift applied to TSC deltas before the multiplication (negative: right).
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}

/// `struct arch_vcpu_info` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchVcpuInfo {
    /// CR2 of a PV page fault (Keel: unused, 0).
    pub cr2: u64,
    /// Padding.
    pub pad: u64,
}

/// `struct vcpu_info`: one per vCPU, at the start of `shared_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Set by the hypervisor when an event is pending; the guest clears it.
    pub evtchn_upcall_pending: u8,
    /// While nonzero, no upcall is delivered (the guest's cheap "cli").
    pub evtchn_upcall_mask: u8,
    /// One bit per word of `evtchn_pending` with a newly pending, unmasked port.
    pub evtchn_pending_sel: u64,
    /// Architecture-specific state.
    pub arch: ArchVcpuInfo,
    /// This vCPU's pvclock.
    pub time: VcpuTimeInfo,
}

/// `struct arch_shared_info` (x86_64; Keel leaves it zero).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchSharedInfo {
    /// Highest PFN (PV P2M; 0).
    pub max_pfn: u64,
    /// PV P2M frame list list (0).
    pub pfn_to_mfn_frame_list_list: u64,
    /// NMI reason (0).
    pub nmi_reason: u64,
    /// PV P2M CR3 (0).
    pub p2m_cr3: u64,
    /// PV P2M virtual address (0).
    pub p2m_vaddr: u64,
    /// PV P2M generation (0).
    pub p2m_generation: u64,
}

/// `struct shared_info`: the page shared by the hypervisor and the domain. Its
/// machine address is `start_info.shared_info`; it is one of the domain's own
/// frames, mapped writable in the bootstrap address space.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SharedInfo {
    /// Per-vCPU state (Keel domains use entry 0).
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// One bit per port: an event is pending.
    pub evtchn_pending: [u64; 64],
    /// One bit per port: the port is masked.
    pub evtchn_mask: [u64; 64],
    /// Wall-clock version (odd while updated).
    pub wc_version: u32,
    /// Wall-clock seconds since the Unix epoch at system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// Wall-clock nanoseconds at system time 0.
    pub wc_nsec: u32,
    /// High 32 bits of the wall-clock seconds.
    pub wc_sec_hi: u32,
    /// Architecture-specific state.
    pub arch: ArchSharedInfo,
}

/// `struct vcpu_set_periodic_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetPeriodicTimer {
    /// The period in nanoseconds (at least [`PERIODIC_TIMER_MIN_NS`]).
    pub period_ns: u64,
}

/// `struct vcpu_set_singleshot_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// The deadline, absolute system time in nanoseconds.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<VcpuTimeInfo>() == 32);
    assert!(offset_of!(VcpuTimeInfo, tsc_timestamp) == 8);
    assert!(offset_of!(VcpuTimeInfo, system_time) == 16);
    assert!(offset_of!(VcpuTimeInfo, tsc_to_system_mul) == 24);
    assert!(offset_of!(VcpuTimeInfo, tsc_shift) == 28);
    assert!(offset_of!(VcpuTimeInfo, flags) == 29);
    assert!(size_of::<VcpuInfo>() == 64);
    assert!(offset_of!(VcpuInfo, evtchn_upcall_mask) == 1);
    assert!(offset_of!(VcpuInfo, evtchn_pending_sel) == 8);
    assert!(offset_of!(VcpuInfo, arch) == 16);
    assert!(offset_of!(VcpuInfo, time) == 32);
    assert!(size_of::<SharedInfo>() == 3136);
    assert!(offset_of!(SharedInfo, evtchn_pending) == 2048);
    assert!(offset_of!(SharedInfo, evtchn_mask) == 2560);
    assert!(offset_of!(SharedInfo, wc_version) == 3072);
    assert!(offset_of!(SharedInfo, wc_sec) == 3076);
    assert!(offset_of!(SharedInfo, wc_nsec) == 3080);
    assert!(offset_of!(SharedInfo, wc_sec_hi) == 3084);
    assert!(offset_of!(SharedInfo, arch) == 3088);
    assert!(size_of::<VcpuSetPeriodicTimer>() == 8);
    assert!(size_of::<VcpuSetSingleshotTimer>() == 16);
    assert!(offset_of!(VcpuSetSingleshotTimer, flags) == 8);
};

/// Byte offsets in the `shared_info` page, for code that reads and writes it in
/// place (the hypervisor through machine memory, the guest through volatile
/// accesses).
pub mod offsets {
    use super::{SharedInfo, VcpuInfo, VcpuTimeInfo};
    use core::mem::{offset_of, size_of};
    /// `vcpu_info[v]`.
    pub const fn vcpu_info(v: usize) -> usize {
        offset_of!(SharedInfo, vcpu_info) + v * size_of::<VcpuInfo>()
    }
    /// `vcpu_info[v].evtchn_upcall_pending`.
    pub const fn upcall_pending(v: usize) -> usize {
        vcpu_info(v) + offset_of!(VcpuInfo, evtchn_upcall_pending)
    }
    /// `vcpu_info[v].evtchn_upcall_mask`.
    pub const fn upcall_mask(v: usize) -> usize {
        vcpu_info(v) + offset_of!(VcpuInfo, evtchn_upcall_mask)
    }
    /// `vcpu_info[v].evtchn_pending_sel`.
    pub const fn pending_sel(v: usize) -> usize {
        vcpu_info(v) + offset_of!(VcpuInfo, evtchn_pending_sel)
    }
    /// `vcpu_info[v].time`.
    pub const fn time(v: usize) -> usize {
        vcpu_info(v) + offset_of!(VcpuInfo, time)
    }
    /// `vcpu_info[v].time.<field at off>`.
    pub const fn time_field(v: usize, off: usize) -> usize {
        time(v) + off
    }
    /// `evtchn_pending[word]`.
    pub const fn pending_word(word: usize) -> usize {
        offset_of!(SharedInfo, evtchn_pending) + word * 8
    }
    /// `evtchn_mask[word]`.
    pub const fn mask_word(word: usize) -> usize {
        offset_of!(SharedInfo, evtchn_mask) + word * 8
    }
    /// `wc_version`.
    pub const fn wc_version() -> usize {
        offset_of!(SharedInfo, wc_version)
    }
    /// `wc_sec`.
    pub const fn wc_sec() -> usize {
        offset_of!(SharedInfo, wc_sec)
    }
    /// `wc_nsec`.
    pub const fn wc_nsec() -> usize {
        offset_of!(SharedInfo, wc_nsec)
    }
    /// `wc_sec_hi`.
    pub const fn wc_sec_hi() -> usize {
        offset_of!(SharedInfo, wc_sec_hi)
    }
    /// `arch` (the `arch_shared_info`).
    pub const fn arch() -> usize {
        offset_of!(SharedInfo, arch)
    }
    /// Size of a `vcpu_time_info`.
    pub const fn time_size() -> usize {
        size_of::<VcpuTimeInfo>()
    }
}

impl VcpuTimeInfo {
    /// Nanoseconds of system time at TSC value `tsc` by this record (the guest's
    /// computation; the hypervisor uses the same function).
    pub const fn system_time_at(&self, tsc: u64) -> u64 {
        let d = tsc.wrapping_sub(self.tsc_timestamp);
        let d = if self.tsc_shift >= 0 {
            d << self.tsc_shift
        } else {
            d >> (-(self.tsc_shift as i32))
        };
        let ns = ((d as u128 * self.tsc_to_system_mul as u128) >> 32) as u64;
        self.system_time.wrapping_add(ns)
    }
}

impl Pod for VcpuTimeInfo {
    const SIZE: usize = 32;
    fn decode(b: &[u8]) -> Self {
        let mut p = [0u8; 4];
        if let Some(s) = b.get(28..32) {
            p.copy_from_slice(s);
        }
        Self {
            version: rd32(b, 0),
            pad0: rd32(b, 4),
            tsc_timestamp: rd64(b, 8),
            system_time: rd64(b, 16),
            tsc_to_system_mul: rd32(b, 24),
            tsc_shift: p[0] as i8,
            flags: p[1],
            pad1: [p[2], p[3]],
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.version.to_le_bytes());
        wr(o, 4, &self.pad0.to_le_bytes());
        wr(o, 8, &self.tsc_timestamp.to_le_bytes());
        wr(o, 16, &self.system_time.to_le_bytes());
        wr(o, 24, &self.tsc_to_system_mul.to_le_bytes());
        wr(
            o,
            28,
            &[self.tsc_shift as u8, self.flags, self.pad1[0], self.pad1[1]],
        );
    }
}
impl Pod for ArchVcpuInfo {
    const SIZE: usize = 16;
    fn decode(b: &[u8]) -> Self {
        Self {
            cr2: rd64(b, 0),
            pad: rd64(b, 8),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.cr2.to_le_bytes());
        wr(o, 8, &self.pad.to_le_bytes());
    }
}
impl Pod for VcpuInfo {
    const SIZE: usize = 64;
    fn decode(b: &[u8]) -> Self {
        let sub = |o: usize, n: usize| b.get(o..o + n).unwrap_or(&[]);
        Self {
            evtchn_upcall_pending: b.first().copied().unwrap_or(0),
            evtchn_upcall_mask: b.get(1).copied().unwrap_or(0),
            evtchn_pending_sel: rd64(b, 8),
            arch: ArchVcpuInfo::decode(sub(16, ArchVcpuInfo::SIZE)),
            time: VcpuTimeInfo::decode(sub(32, VcpuTimeInfo::SIZE)),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &[self.evtchn_upcall_pending, self.evtchn_upcall_mask]);
        wr(o, 2, &[0; 6]);
        wr(o, 8, &self.evtchn_pending_sel.to_le_bytes());
        if let Some(a) = o.get_mut(16..16 + ArchVcpuInfo::SIZE) {
            self.arch.encode(a);
        }
        if let Some(t) = o.get_mut(32..32 + VcpuTimeInfo::SIZE) {
            self.time.encode(t);
        }
    }
}
impl Pod for ArchSharedInfo {
    const SIZE: usize = 48;
    fn decode(b: &[u8]) -> Self {
        Self {
            max_pfn: rd64(b, 0),
            pfn_to_mfn_frame_list_list: rd64(b, 8),
            nmi_reason: rd64(b, 16),
            p2m_cr3: rd64(b, 24),
            p2m_vaddr: rd64(b, 32),
            p2m_generation: rd64(b, 40),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.max_pfn.to_le_bytes());
        wr(o, 8, &self.pfn_to_mfn_frame_list_list.to_le_bytes());
        wr(o, 16, &self.nmi_reason.to_le_bytes());
        wr(o, 24, &self.p2m_cr3.to_le_bytes());
        wr(o, 32, &self.p2m_vaddr.to_le_bytes());
        wr(o, 40, &self.p2m_generation.to_le_bytes());
    }
}
/// The whole page, placed by the [`offsets`] the hypervisor and the guest use to
/// read and write it in place (so the golden sample freezes those offsets too).
impl Pod for SharedInfo {
    const SIZE: usize = core::mem::size_of::<SharedInfo>();
    fn decode(b: &[u8]) -> Self {
        let sub = |o: usize, n: usize| b.get(o..o + n).unwrap_or(&[]);
        let mut vcpu_info = [VcpuInfo::default(); XEN_LEGACY_MAX_VCPUS];
        for (v, vi) in vcpu_info.iter_mut().enumerate() {
            *vi = VcpuInfo::decode(sub(offsets::vcpu_info(v), VcpuInfo::SIZE));
        }
        let mut evtchn_pending = [0u64; 64];
        let mut evtchn_mask = [0u64; 64];
        for w in 0..64 {
            evtchn_pending[w] = rd64(b, offsets::pending_word(w));
            evtchn_mask[w] = rd64(b, offsets::mask_word(w));
        }
        Self {
            vcpu_info,
            evtchn_pending,
            evtchn_mask,
            wc_version: rd32(b, offsets::wc_version()),
            wc_sec: rd32(b, offsets::wc_sec()),
            wc_nsec: rd32(b, offsets::wc_nsec()),
            wc_sec_hi: rd32(b, offsets::wc_sec_hi()),
            arch: ArchSharedInfo::decode(sub(offsets::arch(), ArchSharedInfo::SIZE)),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        for (v, vi) in self.vcpu_info.iter().enumerate() {
            if let Some(s) = o.get_mut(offsets::vcpu_info(v)..offsets::vcpu_info(v + 1)) {
                vi.encode(s);
            }
        }
        for w in 0..64 {
            wr(
                o,
                offsets::pending_word(w),
                &self.evtchn_pending[w].to_le_bytes(),
            );
            wr(o, offsets::mask_word(w), &self.evtchn_mask[w].to_le_bytes());
        }
        wr(o, offsets::wc_version(), &self.wc_version.to_le_bytes());
        wr(o, offsets::wc_sec(), &self.wc_sec.to_le_bytes());
        wr(o, offsets::wc_nsec(), &self.wc_nsec.to_le_bytes());
        wr(o, offsets::wc_sec_hi(), &self.wc_sec_hi.to_le_bytes());
        if let Some(a) = o.get_mut(offsets::arch()..offsets::arch() + ArchSharedInfo::SIZE) {
            self.arch.encode(a);
        }
    }
}
impl Pod for VcpuSetPeriodicTimer {
    const SIZE: usize = 8;
    fn decode(b: &[u8]) -> Self {
        Self {
            period_ns: rd64(b, 0),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.period_ns.to_le_bytes());
    }
}
impl Pod for VcpuSetSingleshotTimer {
    const SIZE: usize = 16;
    fn decode(b: &[u8]) -> Self {
        Self {
            timeout_abs_ns: rd64(b, 0),
            flags: rd32(b, 8),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.timeout_abs_ns.to_le_bytes());
        wr(o, 8, &self.flags.to_le_bytes());
        wr(o, 12, &[0; 4]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvclock_formula() {
        // 2 GHz TSC: 0.5 ns per tick = mul 2^31, shift 0.
        let t = VcpuTimeInfo {
            tsc_timestamp: 1000,
            system_time: 5,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 0,
            ..Default::default()
        };
        assert_eq!(t.system_time_at(3000), 5 + 1000);
        let t = VcpuTimeInfo { tsc_shift: -1, ..t };
        assert_eq!(t.system_time_at(3000), 5 + 500);
        let mut b = [0u8; 32];
        t.encode(&mut b);
        assert_eq!(VcpuTimeInfo::decode(&b), t);
        assert_eq!(b[28], 0xff);
    }

    #[test]
    fn shared_info_round_trips_through_the_offsets() {
        let mut si = SharedInfo {
            vcpu_info: [VcpuInfo::default(); XEN_LEGACY_MAX_VCPUS],
            evtchn_pending: [0; 64],
            evtchn_mask: [0; 64],
            wc_version: 2,
            wc_sec: 3,
            wc_nsec: 4,
            wc_sec_hi: 5,
            arch: ArchSharedInfo {
                p2m_generation: 6,
                ..Default::default()
            },
        };
        si.vcpu_info[0].evtchn_upcall_mask = 1;
        si.vcpu_info[0].time.tsc_shift = -3;
        si.vcpu_info[31].evtchn_pending_sel = 1 << 63;
        si.evtchn_pending[63] = 7;
        si.evtchn_mask[1] = 8;
        let mut b = std::vec![0u8; SharedInfo::SIZE];
        si.encode(&mut b);
        let back = SharedInfo::decode(&b);
        assert_eq!(back.vcpu_info, si.vcpu_info);
        assert_eq!(back.evtchn_pending, si.evtchn_pending);
        assert_eq!(back.evtchn_mask, si.evtchn_mask);
        assert_eq!(
            (back.wc_version, back.wc_sec, back.wc_nsec, back.wc_sec_hi),
            (2, 3, 4, 5)
        );
        assert_eq!(back.arch, si.arch);
        assert_eq!(b[offsets::upcall_mask(0)], 1);
        assert_eq!(b[offsets::time_field(0, 28)], (-3i8) as u8);
        assert_eq!(b[offsets::pending_sel(31) + 7], 0x80);
    }
}
