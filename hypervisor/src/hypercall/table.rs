//! The hypercall table: one [`Row`] per implemented hypercall sub-command, the
//! compile-time indexes the hot path looks calls up in, and the table rendered
//! for the documentation.

use super::{console_io, domctl, events, grant, mmu, multicall, sched, vcpu, xen_version};
use super::{Ctx, HcResult, HypercallArgs};
use crate::mem::PhysMem;
use keel_abi::console::CONSOLEIO_WRITE;
use keel_abi::domctl::{
    XEN_DOMCTL_DESTROYDOMAIN, XEN_DOMCTL_GETDOMAININFO, XEN_DOMCTL_PAUSEDOMAIN,
    XEN_DOMCTL_UNPAUSEDOMAIN,
};
use keel_abi::event::{
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VCPU,
    EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_STATUS, EVTCHNOP_UNMASK,
    HVMOP_SET_PARAM,
};
use keel_abi::grant_table::{
    GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE,
    GNTTABOP_UNMAP_GRANT_REF,
};
use keel_abi::hypercall::Hypercall;
use keel_abi::mmu::{
    MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_MULTI, MMUEXT_NEW_BASEPTR,
    MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE,
    MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI, MMUEXT_UNPIN_TABLE,
    MMU_NORMAL_PT_UPDATE,
};
use keel_abi::sched::{SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD};
use keel_abi::time::{
    VCPUOP_SET_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_PERIODIC_TIMER,
    VCPUOP_STOP_SINGLESHOT_TIMER,
};
use keel_abi::vcpu::{
    VCPUOP_DOWN, VCPUOP_GET_RUNSTATE_INFO, VCPUOP_INITIALISE, VCPUOP_IS_UP,
    VCPUOP_REGISTER_VCPU_INFO, VCPUOP_UP,
};
use keel_abi::version::{
    AbiVersion, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_PAGESIZE, XENVER_VERSION,
};

/// The handler a row names. An enum rather than a function pointer so that the
/// table stays one `static` while every handler runs on the concrete memory type
/// of the caller ([`Ctx`] is generic over it): [`Op::run`] is a `match` the
/// compiler turns into a jump table, once per memory type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `console_io::write`.
    ConsoleWrite,
    /// `xen_version::version`.
    VersionVersion,
    /// `xen_version::extraversion`.
    VersionExtraversion,
    /// `xen_version::get_features`.
    VersionGetFeatures,
    /// `xen_version::pagesize`.
    VersionPagesize,
    /// `sched::yield_now`.
    SchedYield,
    /// `sched::shutdown`.
    SchedShutdown,
    /// `mmu::mmu_update`.
    MmuUpdate,
    /// `multicall::multicall`.
    Multicall,
    /// `mmu::mmuext_op`.
    MmuextOp,
    /// `events::sched_block`.
    SchedBlock,
    /// `events::sched_poll`.
    SchedPoll,
    /// `events::set_timer_op`.
    SetTimerOp,
    /// `events::evtchn_bind_virq`.
    EvtchnBindVirq,
    /// `events::evtchn_close`.
    EvtchnClose,
    /// `events::evtchn_send`.
    EvtchnSend,
    /// `events::evtchn_status`.
    EvtchnStatus,
    /// `events::evtchn_alloc_unbound`.
    EvtchnAllocUnbound,
    /// `events::evtchn_bind_ipi`.
    EvtchnBindIpi,
    /// `events::evtchn_bind_interdomain`.
    EvtchnBindInterdomain,
    /// `events::evtchn_bind_vcpu`.
    EvtchnBindVcpu,
    /// `events::evtchn_unmask`.
    EvtchnUnmask,
    /// `events::vcpu_set_periodic`.
    VcpuSetPeriodic,
    /// `events::vcpu_stop_periodic`.
    VcpuStopPeriodic,
    /// `events::vcpu_set_singleshot`.
    VcpuSetSingleshot,
    /// `events::vcpu_stop_singleshot`.
    VcpuStopSingleshot,
    /// `events::hvm_set_param`.
    HvmSetParam,
    /// `grant::grant_table_op`.
    GrantTableOp,
    /// `domctl::domctl`.
    Domctl,
    /// `vcpu::initialise`.
    VcpuInitialise,
    /// `vcpu::up`.
    VcpuUp,
    /// `vcpu::down`.
    VcpuDown,
    /// `vcpu::is_up`.
    VcpuIsUp,
    /// `vcpu::get_runstate_info`.
    VcpuGetRunstateInfo,
    /// `vcpu::register_vcpu_info`.
    VcpuRegisterVcpuInfo,
}

impl Op {
    /// Run this handler.
    #[inline(always)]
    pub fn run<M: PhysMem>(self, ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
        match self {
            Op::ConsoleWrite => console_io::write(ctx, a),
            Op::VersionVersion => xen_version::version(ctx, a),
            Op::VersionExtraversion => xen_version::extraversion(ctx, a),
            Op::VersionGetFeatures => xen_version::get_features(ctx, a),
            Op::VersionPagesize => xen_version::pagesize(ctx, a),
            Op::SchedYield => sched::yield_now(ctx, a),
            Op::SchedShutdown => sched::shutdown(ctx, a),
            Op::MmuUpdate => mmu::mmu_update(ctx, a),
            Op::Multicall => multicall::multicall(ctx, a),
            Op::MmuextOp => mmu::mmuext_op(ctx, a),
            Op::SchedBlock => events::sched_block(ctx, a),
            Op::SchedPoll => events::sched_poll(ctx, a),
            Op::SetTimerOp => events::set_timer_op(ctx, a),
            Op::EvtchnBindVirq => events::evtchn_bind_virq(ctx, a),
            Op::EvtchnClose => events::evtchn_close(ctx, a),
            Op::EvtchnSend => events::evtchn_send(ctx, a),
            Op::EvtchnStatus => events::evtchn_status(ctx, a),
            Op::EvtchnAllocUnbound => events::evtchn_alloc_unbound(ctx, a),
            Op::EvtchnBindIpi => events::evtchn_bind_ipi(ctx, a),
            Op::EvtchnBindInterdomain => events::evtchn_bind_interdomain(ctx, a),
            Op::EvtchnBindVcpu => events::evtchn_bind_vcpu(ctx, a),
            Op::EvtchnUnmask => events::evtchn_unmask(ctx, a),
            Op::VcpuSetPeriodic => events::vcpu_set_periodic(ctx, a),
            Op::VcpuStopPeriodic => events::vcpu_stop_periodic(ctx, a),
            Op::VcpuSetSingleshot => events::vcpu_set_singleshot(ctx, a),
            Op::VcpuStopSingleshot => events::vcpu_stop_singleshot(ctx, a),
            Op::HvmSetParam => events::hvm_set_param(ctx, a),
            Op::GrantTableOp => grant::grant_table_op(ctx, a),
            Op::Domctl => domctl::domctl(ctx, a),
            Op::VcpuInitialise => vcpu::initialise(ctx, a),
            Op::VcpuUp => vcpu::up(ctx, a),
            Op::VcpuDown => vcpu::down(ctx, a),
            Op::VcpuIsUp => vcpu::is_up(ctx, a),
            Op::VcpuGetRunstateInfo => vcpu::get_runstate_info(ctx, a),
            Op::VcpuRegisterVcpuInfo => vcpu::register_vcpu_info(ctx, a),
        }
    }

    /// Whether the handler may change what the exit path keeps about the vCPU
    /// from one exit to the next: the event state (armed timers, the upcall
    /// vector, blocking), the domain's base pointer, an owed TLB flush. The
    /// handlers named here read the domain and write only guest memory or the
    /// console; every other one, and any added later, is taken to change them.
    #[inline(always)]
    pub const fn may_change_vcpu_state(self) -> bool {
        !matches!(
            self,
            Op::ConsoleWrite
                | Op::VersionVersion
                | Op::VersionExtraversion
                | Op::VersionGetFeatures
                | Op::VersionPagesize
        )
    }
}

/// What a domain was built with and keeps for its whole life: all a call
/// answered by [`own_answer`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltFacts {
    /// `Domain::abi_version_encoded`.
    pub abi_encoded: u32,
}

/// The answer of hypercall `a` if it reads nothing but `facts` and its own
/// arguments, and changes nothing (no guest memory, no event, no vCPU
/// state): `xen_version`'s `XENVER_version` and `XENVER_pagesize`. A vCPU
/// that runs on another CPU than its domain's answers these there alone,
/// stopping no other CPU (`vmx/run/visit.rs`); `None` for every other call.
/// Each answer is the one [`lookup`]'s handler gives (host test
/// `own_answers_agree_with_dispatch`); the caller counts the call.
#[inline(always)]
pub fn own_answer(a: &HypercallArgs, facts: BuiltFacts) -> Option<i64> {
    if a.nr != Hypercall::XEN_VERSION.0 {
        return None;
    }
    match a.args[0] {
        XENVER_VERSION => Some(i64::from(facts.abi_encoded)),
        XENVER_PAGESIZE => Some(xen_version::pagesize_of(a)),
        _ => None,
    }
}

/// One implemented hypercall sub-command.
#[derive(Clone, Copy)]
pub struct Row {
    /// The hypercall number (RAX).
    pub nr: Hypercall,
    /// The sub-command (first argument, RDI); unused when `whole`.
    pub sub: u64,
    /// The command is not in RDI but inside the structures the call points at
    /// (`mmu_update`, `mmuext_op`; `multicall` has none): dispatch is by number
    /// only, and every row of the hypercall names the same handler, which reads
    /// each request's command and answers unknown ones with `-ENOSYS`. The rows
    /// still list each implemented command (`sub` is the command), so the table
    /// equals the ABI's promise (`keel_abi::hypercall::IMPLEMENTED`).
    pub whole: bool,
    /// `hypercall / SUBCOMMAND`, as Xen names them.
    pub name: &'static str,
    /// The ABI version that introduced it.
    pub since: AbiVersion,
    /// What it does, what it returns, its errors: one line for the docs.
    pub doc: &'static str,
    /// The implementation ([`Op::run`]).
    pub handler: Op,
}

impl core::fmt::Debug for Row {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Row({} = {}/{}, since {})",
            self.name, self.nr.0, self.sub, self.since
        )
    }
}

/// Every implemented hypercall sub-command. Anything else is `-ENOSYS`.
pub static TABLE: &[Row] = ROWS;

/// The rows, as a constant so that [`INDEX`] can be computed from them at
/// compile time.
const ROWS: &[Row] = &[
    Row {
        nr: Hypercall::CONSOLE_IO,
        sub: CONSOLEIO_WRITE,
        name: "console_io / CONSOLEIO_write",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "console_io(CONSOLEIO_write, count, buf): print count bytes (<= 4096, else -EINVAL) \
              line by line as `(dN) text`; 0, or -EFAULT (nothing printed) if buf is not readable",
        handler: Op::ConsoleWrite,
    },
    Row {
        nr: Hypercall::XEN_VERSION,
        sub: XENVER_VERSION,
        name: "xen_version / XENVER_version",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "xen_version(XENVER_version, _): the ABI version, (major << 16) | minor",
        handler: Op::VersionVersion,
    },
    Row {
        nr: Hypercall::XEN_VERSION,
        sub: XENVER_EXTRAVERSION,
        name: "xen_version / XENVER_extraversion",
        whole: false,
        since: AbiVersion::V0_1,
        doc:
            "xen_version(XENVER_extraversion, char[16]): writes \"-keel\" NUL-padded; 0 or -EFAULT",
        handler: Op::VersionExtraversion,
    },
    Row {
        nr: Hypercall::XEN_VERSION,
        sub: XENVER_GET_FEATURES,
        name: "xen_version / XENVER_get_features",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "xen_version(XENVER_get_features, xen_feature_info*): submap 0 is Keel's feature \
              bits; another submap_idx is -EINVAL (as Xen); 0 or -EFAULT",
        handler: Op::VersionGetFeatures,
    },
    Row {
        nr: Hypercall::XEN_VERSION,
        sub: XENVER_PAGESIZE,
        name: "xen_version / XENVER_pagesize",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "xen_version(XENVER_pagesize, NULL): 4096; a non-NULL argument is -EINVAL (as Xen)",
        handler: Op::VersionPagesize,
    },
    Row {
        nr: Hypercall::SCHED_OP,
        sub: SCHEDOP_YIELD,
        name: "sched_op / SCHEDOP_yield",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "sched_op(SCHEDOP_yield, _): 0 (one vCPU: returns at once)",
        handler: Op::SchedYield,
    },
    Row {
        nr: Hypercall::SCHED_OP,
        sub: SCHEDOP_SHUTDOWN,
        name: "sched_op / SCHEDOP_shutdown",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "sched_op(SCHEDOP_shutdown, sched_shutdown*): ends the domain with the reason; \
              does not return; -EFAULT, or -EINVAL for an unknown reason",
        handler: Op::SchedShutdown,
    },
    Row {
        nr: Hypercall::MMU_UPDATE,
        sub: MMU_NORMAL_PT_UPDATE,
        whole: true,
        name: "mmu_update / MMU_NORMAL_PT_UPDATE",
        since: AbiVersion::V1_0,
        doc: "mmu_update(reqs, count, success_count, foreigndom): validated *ptr = val per request; stops at the \
              first failure (-EINVAL refused, -EFAULT unreadable, -ENOSYS other commands); the number \
              done goes to *success_count (u32) if not NULL; foreigndom DOMID_SELF or the caller (-ESRCH)",
        handler: Op::MmuUpdate,
    },
    Row {
        nr: Hypercall::MULTICALL,
        sub: 0,
        whole: true,
        name: "multicall / multicall",
        since: AbiVersion::V1_0,
        doc: "multicall(calls, nr_calls): runs each multicall_entry in order, writing its result back; 0, or \
              -EFAULT (entry unreadable, result unwritable); a nested multicall gets -EINVAL; a \
              shutdown ends the batch",
        handler: Op::Multicall,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_PIN_L1_TABLE as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_PIN_L1_TABLE",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_PIN_L1_TABLE: pin arg1 as an L1 (validated); -EINVAL if refused or already pinned",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_PIN_L2_TABLE as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_PIN_L2_TABLE",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_PIN_L2_TABLE: pin arg1 as an L2 (validating the L1s below)",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_PIN_L3_TABLE as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_PIN_L3_TABLE",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_PIN_L3_TABLE: pin arg1 as an L3",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_PIN_L4_TABLE as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_PIN_L4_TABLE",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_PIN_L4_TABLE: pin arg1 as an L4",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_UNPIN_TABLE as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_UNPIN_TABLE",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_UNPIN_TABLE: drop the pin on arg1 (-EINVAL if not pinned); the last reference devalidates",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_NEW_BASEPTR as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_NEW_BASEPTR",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_NEW_BASEPTR: switch CR3 to arg1, a pinned validated L4 (-EINVAL otherwise); full TLB flush",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_TLB_FLUSH_LOCAL as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_TLB_FLUSH_LOCAL",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_TLB_FLUSH_LOCAL: flush this vCPU's TLB",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_INVLPG_LOCAL as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_INVLPG_LOCAL",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_INVLPG_LOCAL: flush the translation of linear address arg1",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_TLB_FLUSH_MULTI as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_TLB_FLUSH_MULTI",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_TLB_FLUSH_MULTI: flush if bit 0 (vCPU 0) of the bitmap at arg2 is set; -EFAULT if unreadable",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_INVLPG_MULTI as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_INVLPG_MULTI",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_INVLPG_MULTI: flush arg1 if bit 0 of the bitmap at arg2 is set; -EFAULT if unreadable",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_TLB_FLUSH_ALL as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_TLB_FLUSH_ALL",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_TLB_FLUSH_ALL: flush every vCPU's TLB (the one vCPU)",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_INVLPG_ALL as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_INVLPG_ALL",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_INVLPG_ALL: flush arg1 on every vCPU (the one vCPU)",
        handler: Op::MmuextOp,
    },
    Row {
        nr: Hypercall::SCHED_OP,
        sub: SCHEDOP_BLOCK,
        whole: false,
        name: "sched_op / SCHEDOP_block",
        since: AbiVersion::V1_0,
        doc: "sched_op(SCHEDOP_block, _): clears evtchn_upcall_mask and blocks until an event needs delivery (0 at once if one does); a vCPU that could never wake is killed",
        handler: Op::SchedBlock,
    },
    Row {
        nr: Hypercall::SCHED_OP,
        sub: SCHEDOP_POLL,
        whole: false,
        name: "sched_op / SCHEDOP_poll",
        since: AbiVersion::V1_0,
        doc: "sched_op(SCHEDOP_poll, sched_poll*): blocks until a listed port is pending, an event needs delivery or the timeout; 0, -EFAULT, -EINVAL (> 128 ports, bad port)",
        handler: Op::SchedPoll,
    },
    Row {
        nr: Hypercall::SET_TIMER_OP,
        sub: 0,
        whole: true,
        name: "set_timer_op / set_timer_op",
        since: AbiVersion::V1_0,
        doc: "set_timer_op(timeout_ns): arms the single-shot timer (absolute system time; 0 stops it; a past deadline fires at once; negative or more than 2^50 ns ahead: 100 ms from now, as Xen); 0",
        handler: Op::SetTimerOp,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_BIND_VIRQ,
        whole: false,
        name: "event_channel_op / EVTCHNOP_bind_virq",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_bind_virq, arg*): bind a VIRQ: 0 and port, -EINVAL, -ENOENT, -EEXIST, -ENOSPC, -EFAULT",
        handler: Op::EvtchnBindVirq,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_CLOSE,
        whole: false,
        name: "event_channel_op / EVTCHNOP_close",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_close, arg*): close a port (an interdomain peer's end becomes unbound for the closer): 0, -EINVAL, -EFAULT",
        handler: Op::EvtchnClose,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_SEND,
        whole: false,
        name: "event_channel_op / EVTCHNOP_send",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_send, arg*): send on an IPI (pending), interdomain (the peer's port pending, its vCPU woken) or unbound (dropped) port: 0, -EINVAL, -EFAULT",
        handler: Op::EvtchnSend,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_STATUS,
        whole: false,
        name: "event_channel_op / EVTCHNOP_status",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_status, arg*): port status (interdomain: remote domain and port): 0, -ESRCH, -EPERM (1.1: another live domain's port), -EINVAL, -EFAULT",
        handler: Op::EvtchnStatus,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_ALLOC_UNBOUND,
        whole: false,
        name: "event_channel_op / EVTCHNOP_alloc_unbound",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_alloc_unbound, arg*): unbound port for DOMID_SELF (1.1 images: for any remote_dom, which need not exist yet): 0 and port, -ESRCH, -EPERM (1.1: dom another live domain), -ENOSPC, -EFAULT",
        handler: Op::EvtchnAllocUnbound,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_BIND_INTERDOMAIN,
        whole: false,
        name: "event_channel_op / EVTCHNOP_bind_interdomain",
        since: AbiVersion::V1_1,
        doc: "event_channel_op(EVTCHNOP_bind_interdomain, arg*): connect a new port to remote_port of remote_dom, which must be unbound for the caller (its consent); the new port starts pending: 0 and local_port, -ESRCH (no such live domain), -EINVAL (not unbound for the caller), -ENOSPC, -EFAULT; docs/abi/events.md",
        handler: Op::EvtchnBindInterdomain,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_BIND_IPI,
        whole: false,
        name: "event_channel_op / EVTCHNOP_bind_ipi",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_bind_ipi, arg*): IPI port: 0 and port, -ENOENT, -ENOSPC, -EFAULT",
        handler: Op::EvtchnBindIpi,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_BIND_VCPU,
        whole: false,
        name: "event_channel_op / EVTCHNOP_bind_vcpu",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_bind_vcpu, arg*): notify vCPU: 0, -ENOENT, -EINVAL, -EFAULT",
        handler: Op::EvtchnBindVcpu,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_UNMASK,
        whole: false,
        name: "event_channel_op / EVTCHNOP_unmask",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_unmask, arg*): clear the mask, re-deliver if pending: 0, -EINVAL, -EFAULT",
        handler: Op::EvtchnUnmask,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_SET_PERIODIC_TIMER,
        whole: false,
        name: "vcpu_op / VCPUOP_set_periodic_timer",
        since: AbiVersion::V1_0,
        doc: "vcpu_op(VCPUOP_set_periodic_timer, vcpu, arg*): VIRQ_TIMER every period_ns (1 ms to 2^62 - 1 ns, else -EINVAL); -ENOENT for a vCPU but 0; -EFAULT",
        handler: Op::VcpuSetPeriodic,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_STOP_PERIODIC_TIMER,
        whole: false,
        name: "vcpu_op / VCPUOP_stop_periodic_timer",
        since: AbiVersion::V1_0,
        doc: "vcpu_op(VCPUOP_stop_periodic_timer, vcpu, arg*): stop the periodic timer; -ENOENT",
        handler: Op::VcpuStopPeriodic,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_SET_SINGLESHOT_TIMER,
        whole: false,
        name: "vcpu_op / VCPUOP_set_singleshot_timer",
        since: AbiVersion::V1_0,
        doc: "vcpu_op(VCPUOP_set_singleshot_timer, vcpu, arg*): single-shot deadline (absolute ns); -ETIME if VCPU_SSHOTTMR_future and past; -ENOENT; -EFAULT",
        handler: Op::VcpuSetSingleshot,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_STOP_SINGLESHOT_TIMER,
        whole: false,
        name: "vcpu_op / VCPUOP_stop_singleshot_timer",
        since: AbiVersion::V1_0,
        doc: "vcpu_op(VCPUOP_stop_singleshot_timer, vcpu, arg*): stop the single-shot timer; -ENOENT",
        handler: Op::VcpuStopSingleshot,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_INITIALISE,
        whole: false,
        name: "vcpu_op / VCPUOP_initialise",
        since: AbiVersion::V1_2,
        doc: "vcpu_op(VCPUOP_initialise, vcpu, vcpu_guest_context*), 1.2 images only: give an offline vCPU its register state (it stays down); -ENOENT (no such vCPU), -EFAULT, -EEXIST (has one: vCPU 0 always), -EINVAL (a context Keel refuses); docs/abi/vcpu.md",
        handler: Op::VcpuInitialise,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_UP,
        whole: false,
        name: "vcpu_op / VCPUOP_up",
        since: AbiVersion::V1_2,
        doc: "vcpu_op(VCPUOP_up, vcpu, NULL), 1.2 images only: let an initialised vCPU run; 0 (also when up), -ENOENT, -EINVAL (never initialised), -ENOMEM (its domain's CPU holds no place for it); docs/abi/vcpu.md",
        handler: Op::VcpuUp,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_DOWN,
        whole: false,
        name: "vcpu_op / VCPUOP_down",
        since: AbiVersion::V1_2,
        doc: "vcpu_op(VCPUOP_down, vcpu, NULL), 1.2 images only: stop a vCPU; the last vCPU up powers the domain off (SHUTDOWN_poweroff, as Xen); 0, -ENOENT",
        handler: Op::VcpuDown,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_IS_UP,
        whole: false,
        name: "vcpu_op / VCPUOP_is_up",
        since: AbiVersion::V1_2,
        doc: "vcpu_op(VCPUOP_is_up, vcpu, NULL), 1.2 images only: 1 if up, else 0; -ENOENT",
        handler: Op::VcpuIsUp,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_GET_RUNSTATE_INFO,
        whole: false,
        name: "vcpu_op / VCPUOP_get_runstate_info",
        since: AbiVersion::V1_2,
        doc: "vcpu_op(VCPUOP_get_runstate_info, vcpu, vcpu_runstate_info*), 1.2 images only: the run state and the ns spent in each; 0, -ENOENT, -EFAULT",
        handler: Op::VcpuGetRunstateInfo,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_REGISTER_VCPU_INFO,
        whole: false,
        name: "vcpu_op / VCPUOP_register_vcpu_info",
        since: AbiVersion::V1_2,
        doc: "vcpu_op(VCPUOP_register_vcpu_info, vcpu, vcpu_register_vcpu_info*), 1.2 images only: move the vcpu_info to mfn + offset (once); 0, -ENOENT, -EFAULT, -ENXIO (offset unaligned or past the page), -EINVAL (again, or not an ordinary writable frame of the domain)",
        handler: Op::VcpuRegisterVcpuInfo,
    },
    Row {
        nr: Hypercall::HVM_OP,
        sub: HVMOP_SET_PARAM,
        whole: false,
        name: "hvm_op / HVMOP_set_param",
        since: AbiVersion::V1_0,
        doc: "hvm_op(HVMOP_set_param, xen_hvm_param*): HVM_PARAM_CALLBACK_IRQ of the vector type (vector >= 0x10) or 0; -ESRCH, -EINVAL, -EFAULT",
        handler: Op::HvmSetParam,
    },
    Row {
        nr: Hypercall::GRANT_TABLE_OP,
        sub: GNTTABOP_MAP_GRANT_REF,
        whole: false,
        name: "grant_table_op / GNTTABOP_map_grant_ref",
        since: AbiVersion::V1_1,
        doc: "grant_table_op(GNTTABOP_map_grant_ref, ops*, count): map another domain's grant at host_addr (GNTMAP_host_map, optionally readonly); handle and GNTST_* per op; 0, -EFAULT, -EINVAL (count > 512); docs/abi/grant.md",
        handler: Op::GrantTableOp,
    },
    Row {
        nr: Hypercall::GRANT_TABLE_OP,
        sub: GNTTABOP_UNMAP_GRANT_REF,
        whole: false,
        name: "grant_table_op / GNTTABOP_unmap_grant_ref",
        since: AbiVersion::V1_1,
        doc: "grant_table_op(GNTTABOP_unmap_grant_ref, ops*, count): undo mappings by handle and host_addr, one TLB flush per 32; GNTST_* per op; 0, -EFAULT, -EINVAL",
        handler: Op::GrantTableOp,
    },
    Row {
        nr: Hypercall::GRANT_TABLE_OP,
        sub: GNTTABOP_SETUP_TABLE,
        whole: false,
        name: "grant_table_op / GNTTABOP_setup_table",
        since: AbiVersion::V1_1,
        doc: "grant_table_op(GNTTABOP_setup_table, op*, 1): grow the caller's table to nr_frames (<= 4) and list its frames; GNTST_*; 0, -EFAULT, -EINVAL (count != 1)",
        handler: Op::GrantTableOp,
    },
    Row {
        nr: Hypercall::GRANT_TABLE_OP,
        sub: GNTTABOP_COPY,
        whole: false,
        name: "grant_table_op / GNTTABOP_copy",
        since: AbiVersion::V1_1,
        doc: "grant_table_op(GNTTABOP_copy, ops*, count): copy len bytes between frames named by grant or own frame, within a page; GNTST_* per op; 0, -EFAULT, -EINVAL",
        handler: Op::GrantTableOp,
    },
    Row {
        nr: Hypercall::GRANT_TABLE_OP,
        sub: GNTTABOP_QUERY_SIZE,
        whole: false,
        name: "grant_table_op / GNTTABOP_query_size",
        since: AbiVersion::V1_1,
        doc: "grant_table_op(GNTTABOP_query_size, op*, 1): the table's frames and the largest size (4); GNTST_*; 0, -EFAULT, -EINVAL",
        handler: Op::GrantTableOp,
    },
    Row {
        nr: Hypercall::DOMCTL,
        sub: XEN_DOMCTL_GETDOMAININFO as u64,
        whole: true,
        name: "domctl / XEN_DOMCTL_getdomaininfo",
        since: AbiVersion::V1_1,
        doc: "domctl(xen_domctl*), control domain only: the first domain whose id is at least domain (name as handle, pages, XEN_DOMINF_* state); 0, -EFAULT, -EPERM (not the control domain), -EACCES (interface_version not 0x15), -ESRCH (none), -ENOSYS (other commands); docs/abi/domains.md",
        handler: Op::Domctl,
    },
    Row {
        nr: Hypercall::DOMCTL,
        sub: XEN_DOMCTL_PAUSEDOMAIN as u64,
        whole: true,
        name: "domctl / XEN_DOMCTL_pausedomain",
        since: AbiVersion::V1_1,
        doc: "domctl(xen_domctl*), control domain only: stop scheduling domain until as many unpauses; 0, -EFAULT, -EPERM, -EACCES, -ESRCH, -EINVAL (itself, a dying domain)",
        handler: Op::Domctl,
    },
    Row {
        nr: Hypercall::DOMCTL,
        sub: XEN_DOMCTL_UNPAUSEDOMAIN as u64,
        whole: true,
        name: "domctl / XEN_DOMCTL_unpausedomain",
        since: AbiVersion::V1_1,
        doc: "domctl(xen_domctl*), control domain only: undo one pause; 0, -EFAULT, -EPERM, -EACCES, -ESRCH, -EINVAL (not paused, itself)",
        handler: Op::Domctl,
    },
    Row {
        nr: Hypercall::DOMCTL,
        sub: XEN_DOMCTL_DESTROYDOMAIN as u64,
        whole: true,
        name: "domctl / XEN_DOMCTL_destroydomain",
        since: AbiVersion::V1_1,
        doc: "domctl(xen_domctl*), control domain only: end domain (torn down before the caller runs again; VIRQ_DOM_EXC to the control domain); 0, -EFAULT, -EPERM, -EACCES, -ESRCH, -EINVAL (itself)",
        handler: Op::Domctl,
    },
];

/// Hypercall numbers covered by [`INDEX`]: Xen's hypercall page has 64 slots.
const INDEXED: usize = 64;

/// [`ROWS`] grouped by hypercall number (a stable sort, done at compile time:
/// [`ROWS`] keeps the order the documentation is rendered in).
static BY_NUMBER: [Row; ROWS.len()] = sort_by_number(ROWS);

/// For each hypercall number below [`INDEXED`], its rows in [`BY_NUMBER`]
/// (empty when it has none), cut out at compile time.
///
/// Why: every hypercall is looked up on every call. With a scan of the whole
/// table each call would pay for every row before its own (and an `-ENOSYS`
/// answer for all of them), a cost growing with each hypercall added
/// (`bench_exits/enosys` measures it). With the index a call scans only its own
/// number's rows, an unimplemented number none, and compares only the
/// sub-command.
static INDEX: [&[Row]; INDEXED] = index(&BY_NUMBER);

const fn sort_by_number<const N: usize>(rows: &[Row]) -> [Row; N] {
    assert!(rows.len() == N);
    let mut out = [rows[0]; N];
    let mut i = 0;
    while i < N {
        out[i] = rows[i];
        i += 1;
    }
    // Insertion sort: stable, and the table is small.
    let mut i = 1;
    while i < N {
        let mut j = i;
        while j > 0 && out[j - 1].nr.0 > out[j].nr.0 {
            let t = out[j - 1];
            out[j - 1] = out[j];
            out[j] = t;
            j -= 1;
        }
        i += 1;
    }
    out
}

const fn index(rows: &'static [Row]) -> [&'static [Row]; INDEXED] {
    let mut idx: [&'static [Row]; INDEXED] = [&[]; INDEXED];
    let mut i = 0;
    while i < rows.len() {
        let nr = rows[i].nr.0;
        assert!(
            (nr as usize) < INDEXED,
            "a row's hypercall number is past the index"
        );
        let mut end = i;
        while end < rows.len() && rows[end].nr.0 == nr {
            end += 1;
        }
        assert!(idx[nr as usize].is_empty(), "rows must be sorted by number");
        let (_, from_i) = rows.split_at(i);
        let (span, _) = from_i.split_at(end - i);
        idx[nr as usize] = span;
        i = end;
    }
    idx
}

/// Sub-commands below this are found with one table read ([`DIRECT`]); every
/// sub-command Keel implements today is (the lookup test covers the others).
const DIRECT_SUBS: usize = 16;
/// "No row" in [`DIRECT`] (past the end of [`ROWS`]).
const NO_ROW: u8 = u8::MAX;

/// For each hypercall number below [`INDEXED`] and sub-command below
/// [`DIRECT_SUBS`], the index in [`ROWS`] of the row that answers it, or
/// [`NO_ROW`]: the hypercall path's lookup is two bounds checks and one read
/// (a null hypercall has a budget of about 200 instructions in all). A
/// `whole` row (the command is inside the request) answers every sub-command of
/// its number.
static DIRECT: [[u8; DIRECT_SUBS]; INDEXED] = direct(ROWS);

const fn direct(rows: &[Row]) -> [[u8; DIRECT_SUBS]; INDEXED] {
    assert!(rows.len() < NO_ROW as usize, "row numbers must fit a u8");
    let mut d = [[NO_ROW; DIRECT_SUBS]; INDEXED];
    // Backwards, so that where two rows answer the same call the first wins,
    // as in a scan of the table.
    let mut i = rows.len();
    while i > 0 {
        i -= 1;
        let r = &rows[i];
        let nr = r.nr.0 as usize;
        assert!(nr < INDEXED, "a row's hypercall number is past the index");
        if r.whole {
            let mut s = 0;
            while s < DIRECT_SUBS {
                d[nr][s] = i as u8;
                s += 1;
            }
        } else if r.sub < DIRECT_SUBS as u64 {
            d[nr][r.sub as usize] = i as u8;
        }
    }
    d
}

/// The row for `nr` / `sub`, if implemented.
pub fn lookup(nr: u64, sub: u64) -> Option<&'static Row> {
    let n = usize::try_from(nr).ok()?;
    if let (Some(subs), Ok(s)) = (DIRECT.get(n), usize::try_from(sub)) {
        if let Some(&row) = subs.get(s) {
            // NO_ROW is past the end: `None`, i.e. -ENOSYS.
            return ROWS.get(usize::from(row));
        }
    }
    // A sub-command past DIRECT_SUBS: scan the number's rows.
    INDEX.get(n)?.iter().find(|r| r.whole || r.sub == sub)
}

/// Render [`TABLE`] as a Markdown table (for `docs/`; a docs test can compare).
pub fn write_markdown(out: &mut impl core::fmt::Write) -> core::fmt::Result {
    writeln!(out, "| nr | sub | hypercall | since | behaviour |")?;
    writeln!(out, "|----|-----|-----------|-------|-----------|")?;
    for r in TABLE {
        if r.whole {
            write!(
                out,
                "| {} | {} (in the request) | `{}` | {} | ",
                r.nr.0, r.sub, r.name, r.since
            )?;
        } else {
            write!(
                out,
                "| {} | {} | `{}` | {} | ",
                r.nr.0, r.sub, r.name, r.since
            )?;
        }
        // A `|` in the text would end the table cell: escape it.
        for (i, part) in r.doc.split('|').enumerate() {
            if i > 0 {
                out.write_str("\\|")?;
            }
            out.write_str(part)?;
        }
        writeln!(out, " |")?;
    }
    writeln!(
        out,
        "\nEvery other hypercall number or sub-command returns -ENOSYS."
    )
}
