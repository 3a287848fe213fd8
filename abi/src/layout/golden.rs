//! Golden samples: the bytes the real encoders produce for fixed arguments.

use super::*;

/// The largest golden sample, in bytes.
pub const GOLDEN_MAX: usize = 8192;

/// A golden sample: the bytes a real encoder produces for a fixed sample argument.
#[derive(Clone, Copy, Debug)]
pub struct Golden {
    /// Name (`"start_info.StartInfo.sample"`).
    pub name: &'static str,
    /// The family it belongs to.
    pub family: Family,
    /// The ABI version that introduced it.
    pub since: AbiVersion,
    /// What the sample is.
    pub doc: &'static str,
    /// Run the encoder: write the bytes into the buffer and return their length.
    pub encode: fn(&mut [u8; GOLDEN_MAX]) -> usize,
}

impl Golden {
    /// Run the encoder and hand the bytes to `f`.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut buf = [0u8; GOLDEN_MAX];
        let n = (self.encode)(&mut buf).min(GOLDEN_MAX);
        f(&buf[..n])
    }
}

/// Every golden sample of the ABI.
pub const GOLDEN: &[Golden] = &[
    Golden {
        name: "start_info.StartInfo.sample",
        family: Family::StartInfo,
        since: V0_1,
        doc: "StartInfo::encode of layout::sample_start_info()",
        encode: |b| put(b, &sample_start_info().encode()),
    },
    Golden {
        name: "sched.SchedShutdown.crash",
        family: Family::Sched,
        since: V0_1,
        doc: "SchedShutdown { reason: SHUTDOWN_CRASH }.encode()",
        encode: |b| {
            put(
                b,
                &SchedShutdown {
                    reason: crate::sched::SHUTDOWN_CRASH,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "version.XenFeatureInfo.sample",
        family: Family::Version,
        since: V0_1,
        doc: "XenFeatureInfo { submap_idx: 0x11223344, submap: 0x55667788 }.encode()",
        encode: |b| {
            put(
                b,
                &XenFeatureInfo {
                    submap_idx: 0x1122_3344,
                    submap: 0x5566_7788,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "version.EXTRAVERSION",
        family: Family::Version,
        since: V0_1,
        doc: "the XENVER_extraversion answer",
        encode: |b| put(b, &crate::version::EXTRAVERSION.0),
    },
    Golden {
        name: "version.AbiVersion.V0_1",
        family: Family::Version,
        since: V0_1,
        doc: "AbiVersion::V0_1.encode() (the XENVER_version result), little endian",
        encode: |b| put(b, &AbiVersion::V0_1.encode().to_le_bytes()),
    },
    Golden {
        name: "note.abi_version_note.V0_1",
        family: Family::Note,
        since: V0_1,
        doc: "note::abi_version_note(AbiVersion::V0_1): the whole ELF note",
        encode: |b| put(b, &note::abi_version_note(AbiVersion::V0_1)),
    },
    Golden {
        name: "version.AbiVersion.V1_0",
        family: Family::Version,
        since: V1_0,
        doc: "AbiVersion::V1_0.encode() (the XENVER_version result), little endian",
        encode: |b| put(b, &AbiVersion::V1_0.encode().to_le_bytes()),
    },
    Golden {
        name: "note.abi_version_note.V1_0",
        family: Family::Note,
        since: V1_0,
        doc: "note::abi_version_note(AbiVersion::V1_0): the whole ELF note",
        encode: |b| put(b, &note::abi_version_note(AbiVersion::V1_0)),
    },
    Golden {
        name: "note.abi_built_note.V1_0",
        family: Family::Note,
        since: V1_0,
        doc: "note::abi_built_note(AbiVersion::V1_0): the whole ELF note",
        encode: |b| put(b, &note::abi_built_note(AbiVersion::V1_0)),
    },
    Golden {
        name: "sched.SchedPoll.sample",
        family: Family::Sched,
        since: V1_0,
        doc: "SchedPoll { ports: 0x7fff_ffff_e000, nr_ports: 8, timeout: 0x1_0000_0010 }.encode()",
        encode: |b| {
            put(
                b,
                &SchedPoll {
                    ports: 0x0000_7fff_ffff_e000,
                    nr_ports: 8,
                    timeout: 0x0000_0001_0000_0010,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "event.EvtchnAllocUnbound.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: 0x7f02, port: 0x304 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnAllocUnbound {
                    dom: crate::event::DOMID_SELF,
                    remote_dom: 0x7f02,
                    port: 0x0304,
                },
            )
        },
    },
    Golden {
        name: "event.EvtchnBindVirq.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnBindVirq { virq: VIRQ_TIMER, vcpu: 0x104, port: 0x208 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnBindVirq {
                    virq: crate::event::VIRQ_TIMER,
                    vcpu: 0x0104,
                    port: 0x0208,
                },
            )
        },
    },
    Golden {
        name: "event.EvtchnBindIpi.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnBindIpi { vcpu: 0x100, port: 0x204 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnBindIpi {
                    vcpu: 0x0100,
                    port: 0x0204,
                },
            )
        },
    },
    Golden {
        name: "event.EvtchnPort.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnPort { port: 0x3ff00 }.encode()",
        encode: |b| put_pod(b, &EvtchnPort { port: 0x0003_ff00 }),
    },
    Golden {
        name: "event.EvtchnStatus.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnStatus { dom: DOMID_SELF, port: 0x104, status: 0x5_0008, vcpu: 0x20c, u: [0x510, 0x614] }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnStatus {
                    dom: crate::event::DOMID_SELF,
                    port: 0x0104,
                    status: 0x0005_0008,
                    vcpu: 0x0000_020c,
                    u: [0x0000_0510, 0x0000_0614],
                },
            )
        },
    },
    Golden {
        name: "event.EvtchnBindVcpu.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnBindVcpu { port: 0x300, vcpu: 0x104 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnBindVcpu {
                    port: 0x0300,
                    vcpu: 0x0104,
                },
            )
        },
    },
    Golden {
        name: "event.XenHvmParam.sample",
        family: Family::Event,
        since: V1_0,
        doc: "XenHvmParam { domid: DOMID_SELF, index: 0x104, value: 0x0200_0000_0000_0008 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &XenHvmParam {
                    domid: crate::event::DOMID_SELF,
                    index: 0x0104,
                    value: 0x0200_0000_0000_0008,
                },
            )
        },
    },
    Golden {
        name: "event.callback_vector.0xf3",
        family: Family::Event,
        since: V1_0,
        doc: "XenHvmParam { DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, callback_vector(0xf3) }.encode(): registering vector 0xf3",
        encode: |b| {
            put_pod(
                b,
                &XenHvmParam {
                    domid: crate::event::DOMID_SELF,
                    index: crate::event::HVM_PARAM_CALLBACK_IRQ,
                    value: crate::event::callback_vector(0xf3),
                },
            )
        },
    },
    Golden {
        name: "time.SharedInfo.sample",
        family: Family::Time,
        since: V1_0,
        doc: "SharedInfo::encode of layout::sample_shared_info() (placed by time::offsets)",
        encode: |b| put_pod(b, &sample_shared_info()),
    },
    Golden {
        name: "time.VcpuInfo.sample",
        family: Family::Time,
        since: V1_0,
        doc: "VcpuInfo::encode of layout::sample_vcpu_info()",
        encode: |b| put_pod(b, &sample_vcpu_info()),
    },
    Golden {
        name: "time.ArchVcpuInfo.sample",
        family: Family::Time,
        since: V1_0,
        doc: "ArchVcpuInfo { cr2: 0x7fff_dead_b000, pad: 0x108 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &ArchVcpuInfo {
                    cr2: 0x0000_7fff_dead_b000,
                    pad: 0x0000_0000_0000_0108,
                },
            )
        },
    },
    Golden {
        name: "time.VcpuTimeInfo.sample",
        family: Family::Time,
        since: V1_0,
        doc: "VcpuTimeInfo::encode of layout::sample_vcpu_time_info()",
        encode: |b| put_pod(b, &sample_vcpu_time_info()),
    },
    Golden {
        name: "time.ArchSharedInfo.sample",
        family: Family::Time,
        since: V1_0,
        doc: "ArchSharedInfo::encode of layout::sample_arch_shared_info()",
        encode: |b| put_pod(b, &sample_arch_shared_info()),
    },
    Golden {
        name: "time.VcpuSetPeriodicTimer.sample",
        family: Family::Time,
        since: V1_0,
        doc: "VcpuSetPeriodicTimer { period_ns: 0x3b9a_ca00 (1 s) }.encode()",
        encode: |b| {
            put_pod(
                b,
                &VcpuSetPeriodicTimer {
                    period_ns: 1_000_000_000,
                },
            )
        },
    },
    Golden {
        name: "time.VcpuSetSingleshotTimer.sample",
        family: Family::Time,
        since: V1_0,
        doc: "VcpuSetSingleshotTimer { timeout_abs_ns: 0x1234_5678_9abc_de00, flags: VCPU_SSHOTTMR_FUTURE << 16 | 8 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &VcpuSetSingleshotTimer {
                    timeout_abs_ns: 0x1234_5678_9abc_de00,
                    flags: crate::time::VCPU_SSHOTTMR_FUTURE << 16 | 0x08,
                },
            )
        },
    },
    Golden {
        name: "mmu.MmuUpdate.sample",
        family: Family::Mmu,
        since: V1_0,
        doc: "MmuUpdate { ptr: 0x12_3456_7000 | MMU_NORMAL_PT_UPDATE, val: 0x8000_0001_2345_6008 }.encode()",
        encode: |b| {
            put(
                b,
                &MmuUpdate {
                    ptr: 0x0000_0012_3456_7000 | crate::mmu::MMU_NORMAL_PT_UPDATE,
                    val: 0x8000_0001_2345_6008,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "mmu.MmuextOp.sample",
        family: Family::Mmu,
        since: V1_0,
        doc: "MmuextOp { cmd: MMUEXT_PIN_L4_TABLE | 0x100, pad: 0x204, arg1: 0xabc_d008, arg2: 0x7fff_0010 }.encode()",
        encode: |b| {
            put(
                b,
                &MmuextOp {
                    cmd: crate::mmu::MMUEXT_PIN_L4_TABLE | 0x0100,
                    pad: 0x0204,
                    arg1: 0x0000_0000_0abc_d008,
                    arg2: 0x0000_0000_7fff_0010,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "mmu.MulticallEntry.sample",
        family: Family::Mmu,
        since: V1_0,
        doc: "MulticallEntry { op: MMUEXT_OP << 8, result: 0x8000_0000_0000_0008, args[i]: (i + 1) << 32 | 16 + 8 i }.encode()",
        encode: |b| {
            let mut args = [0u64; 6];
            for (i, a) in args.iter_mut().enumerate() {
                *a = ((i as u64 + 1) << 32) | (16 + 8 * i as u64);
            }
            put(
                b,
                &MulticallEntry {
                    op: Hypercall::MMUEXT_OP.0 << 8,
                    result: 0x8000_0000_0000_0008,
                    args,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "debug.PerfCounters.sample",
        family: Family::Debug,
        since: V1_0,
        doc: "PerfCounters::encode of layout::sample_perf_counters()",
        encode: |b| {
            let mut out = [0u8; core::mem::size_of::<PerfCounters>()];
            sample_perf_counters().encode(&mut out);
            put(b, &out)
        },
    },

    Golden {
        name: "event.EvtchnBindInterdomain.sample",
        family: Family::Event,
        since: V1_1,
        doc: "EvtchnBindInterdomain { remote_dom: 0x100, remote_port: 0x204, local_port: 0x308 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnBindInterdomain {
                    remote_dom: 0x0100,
                    remote_port: 0x0204,
                    local_port: 0x0308,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GrantEntryV1.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GrantEntryV1 { flags: GTF_PERMIT_ACCESS | GTF_READONLY, domid: 0x102, frame: 0x12_3404 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GrantEntryV1 {
                    flags: crate::grant_table::GTF_PERMIT_ACCESS
                        | crate::grant_table::GTF_READONLY,
                    domid: 0x0102,
                    frame: 0x0012_3404,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabSetupTable.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabSetupTable { dom: DOMID_SELF, nr_frames: 0x204, status: 0x308, frame_list: 0x7fff_ffff_e010 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabSetupTable {
                    dom: crate::event::DOMID_SELF,
                    nr_frames: 0x0204,
                    status: 0x0308,
                    frame_list: 0x0000_7fff_ffff_e010,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabQuerySize.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabQuerySize { dom: DOMID_SELF, nr_frames: 0x104, max_nr_frames: 0x208, status: 0x30c }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabQuerySize {
                    dom: crate::event::DOMID_SELF,
                    nr_frames: 0x0104,
                    max_nr_frames: 0x0208,
                    status: 0x030c,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabMapGrantRef.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabMapGrantRef { host_addr: 0x7f00_0040_0000, flags: 0x100_0008, gref: 0x10c, dom: 0x210, status: 0x312, handle: 0x414, dev_bus_addr: 0x518 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabMapGrantRef {
                    host_addr: 0x0000_7f00_0040_0000,
                    flags: 0x0100_0008,
                    gref: 0x010c,
                    dom: 0x0210,
                    status: 0x0312,
                    handle: 0x0414,
                    dev_bus_addr: 0x0518,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabUnmapGrantRef.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabUnmapGrantRef { host_addr: 0x7f00_0040_0000, dev_bus_addr: 0x108, handle: 0x210, status: 0x314 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabUnmapGrantRef {
                    host_addr: 0x0000_7f00_0040_0000,
                    dev_bus_addr: 0x0108,
                    handle: 0x0210,
                    status: 0x0314,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabCopyPtr.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabCopyPtr { u: 0x1_0000_0000, domid: 0x108, offset: 0x20a }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabCopyPtr {
                    u: 0x0000_0001_0000_0000,
                    domid: 0x0108,
                    offset: 0x020a,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabCopy.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabCopy { source: GnttabCopyPtr sample, dest: { u: 0x2_0000_0010, domid: 0x318, offset: 0x41a }, len: 0x520, flags: 0x622, status: 0x724 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabCopy {
                    source: GnttabCopyPtr {
                        u: 0x0000_0001_0000_0000,
                        domid: 0x0108,
                        offset: 0x020a,
                    },
                    dest: GnttabCopyPtr {
                        u: 0x0000_0002_0000_0010,
                        domid: 0x0318,
                        offset: 0x041a,
                    },
                    len: 0x0520,
                    flags: 0x0622,
                    status: 0x0724,
                },
            )
        },
    },
    Golden {
        name: "domctl.XenDomctl.sample",
        family: Family::Domctl,
        since: V1_1,
        doc: "XenDomctl { cmd: XEN_DOMCTL_getdomaininfo, interface_version: 0x1_0004, domain: 0x108, pad: [0x20a, 0x30c, 0x40e], u[i]: (i + 1) << 32 | 16 + 8 i }.encode()",
        encode: |b| {
            let mut u = [0u64; 16];
            for (i, w) in u.iter_mut().enumerate() {
                *w = ((i as u64 + 1) << 32) | (16 + 8 * i as u64);
            }
            put_pod(
                b,
                &XenDomctl {
                    cmd: crate::domctl::XEN_DOMCTL_GETDOMAININFO,
                    interface_version: 0x0001_0004,
                    domain: 0x0108,
                    pad: [0x020a, 0x030c, 0x040e],
                    u,
                },
            )
        },
    },
    Golden {
        name: "domctl.XenDomctlGetdomaininfo.sample",
        family: Family::Domctl,
        since: V1_1,
        doc: "XenDomctlGetdomaininfo::encode of layout::sample_getdomaininfo()",
        encode: |b| put_pod(b, &sample_getdomaininfo()),
    },
    Golden {
        name: "ring.SringHeader.sample",
        family: Family::Ring,
        since: V1_1,
        doc: "SringHeader { req_prod: 0x100_0000, req_event: 0x104, rsp_prod: 0x208, rsp_event: 0x30c, pvt: [0x10, 0x11, 0x12, 0x13], pad[i]: 0x14 + i }.encode()",
        encode: |b| {
            let mut pad = [0u8; 44];
            for (i, p) in pad.iter_mut().enumerate() {
                *p = 0x14 + i as u8;
            }
            put_pod(
                b,
                &SringHeader {
                    req_prod: 0x0100_0000,
                    req_event: 0x0104,
                    rsp_prod: 0x0208,
                    rsp_event: 0x030c,
                    pvt: [0x10, 0x11, 0x12, 0x13],
                    pad,
                },
            )
        },
    },
    Golden {
        name: "vcpu.VcpuRunstateInfo.sample",
        family: Family::Vcpu,
        since: V1_2,
        doc: "VcpuRunstateInfo { state: RUNSTATE_offline, state_entry_time: 0x1_0000_0008, time: [0x2_0000_0010, 0x3_0000_0018, 0x4_0000_0020, 0x5_0000_0028] }.encode()",
        encode: |b| {
            put_pod(
                b,
                &VcpuRunstateInfo {
                    state: crate::vcpu::RUNSTATE_OFFLINE as i32,
                    state_entry_time: 0x0001_0000_0008,
                    time: [
                        0x0002_0000_0010,
                        0x0003_0000_0018,
                        0x0004_0000_0020,
                        0x0005_0000_0028,
                    ],
                },
            )
        },
    },
    Golden {
        name: "vcpu.VcpuRegisterVcpuInfo.sample",
        family: Family::Vcpu,
        since: V1_2,
        doc: "VcpuRegisterVcpuInfo { mfn: 0x12_3400, offset: 0x108, rsvd: 0x20c }.encode()",
        encode: |b| {
            put_pod(
                b,
                &VcpuRegisterVcpuInfo {
                    mfn: 0x0012_3400,
                    offset: 0x0108,
                    rsvd: 0x020c,
                },
            )
        },
    },
    Golden {
        name: "vcpu.CpuUserRegs.sample",
        family: Family::Vcpu,
        since: V1_2,
        doc: "CpuUserRegs::encode of layout::sample_cpu_user_regs()",
        encode: |b| put_pod(b, &sample_cpu_user_regs()),
    },
    Golden {
        name: "vcpu.TrapInfo.sample",
        family: Family::Vcpu,
        since: V1_2,
        doc: "TrapInfo { vector: 0x0e, flags: 0x01, cs: 0x1002, address: 0xffff_8000_0010_2008 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &TrapInfo {
                    vector: 0x0e,
                    flags: 0x01,
                    cs: 0x1002,
                    address: 0xffff_8000_0010_2008,
                },
            )
        },
    },
    Golden {
        name: "vcpu.VcpuGuestContext.sample",
        family: Family::Vcpu,
        since: V1_2,
        doc: "VcpuGuestContext::encode of layout::sample_guest_context()",
        encode: |b| put_pod(b, &sample_guest_context()),
    },
];
