//! # The hypercall table
//!
//! A guest traps in with `VMCALL`; the VMX exit handler packs RAX and the argument
//! registers into [`HypercallArgs`] and calls [`dispatch`], which looks the call up
//! in [`TABLE`] and puts the [`Outcome`] back into RAX (or ends the domain).
//!
//! The table is data: one [`Row`] per implemented hypercall *and sub-command*
//! (`console_io` / `CONSOLEIO_write` is a row; `CONSOLEIO_read` is not, so it is
//! `-ENOSYS`). Everything not in the table answers `-ENOSYS`, as Xen does for
//! hypercalls it does not implement. Because the table is data, the tests check it
//! against the ABI crate's "implemented since" list, and [`write_markdown`] renders
//! it for `docs/` so documentation cannot drift from the code.
//!
//! All three 0.1 hypercalls take the sub-command in the first argument (RDI) and a
//! guest pointer or value in the second (RSI), as on Xen. Keel compares the full
//! 64-bit register where Xen's C prototypes truncate to `int`/`unsigned int`; a
//! guest that sets the upper half gets `-ENOSYS`/`-EINVAL` instead of an alias.
//! Every guest pointer goes through [`crate::paging::guest_mem`].

use crate::addr::{GuestVirt, MachineAddr, Mfn, PAGE_SIZE};
use crate::domain::Domain;
use crate::domain::Level;
use crate::event::EventState;
use crate::mem::{Console, PhysMem};
use crate::paging::guest_mem::{self, Access};
use crate::paging::{Flush, LastTable};
use crate::preempt::{Budget, Progress, CHECK_EVERY};
use keel_abi::console::{CONSOLEIO_WRITE, CONSOLEIO_WRITE_MAX};
use keel_abi::event::{
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VCPU, EVTCHNOP_BIND_VIRQ,
    EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_STATUS, EVTCHNOP_UNMASK, HVMOP_SET_PARAM,
};
use keel_abi::hypercall::Hypercall;
pub use keel_abi::hypercall::HypercallArgs;
use keel_abi::mmu::{
    MmuUpdate, MmuextOp, MulticallEntry, DOMID_SELF, MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL,
    MMUEXT_INVLPG_MULTI, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE,
    MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL,
    MMUEXT_TLB_FLUSH_MULTI, MMUEXT_UNPIN_TABLE, MMU_NORMAL_PT_UPDATE,
};
use keel_abi::sched::{
    shutdown_reason_name, SchedShutdown, SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN,
    SCHEDOP_YIELD,
};
use keel_abi::time::{
    VCPUOP_SET_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_PERIODIC_TIMER,
    VCPUOP_STOP_SINGLESHOT_TIMER,
};
use keel_abi::version::{
    features, AbiVersion, XenFeatureInfo, EXTRAVERSION, XENVER_EXTRAVERSION, XENVER_GET_FEATURES,
    XENVER_PAGESIZE, XENVER_VERSION,
};
use keel_abi::Errno;

/// What the exit handler does after a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Put this value in RAX and resume the guest.
    Return(i64),
    /// The domain asked to shut down with this `SHUTDOWN_*` reason (a known one:
    /// unknown reasons are refused with `-EINVAL`). Its partial console line has
    /// been flushed.
    Shutdown(u32),
    /// Put 0 in RAX, move past the VMCALL, and block the vCPU until what
    /// `EventState::blocked` describes (`SCHEDOP_block`, `SCHEDOP_poll`).
    Block,
    /// The call did a bounded piece of its work and must be executed again
    /// ([`crate::preempt`]): put this progress word in the count register (RSI),
    /// leave RAX and RIP (on the VMCALL) as they are, and deliver whatever is
    /// due before the guest re-executes it.
    Preempted(u64),
    /// A continuation completed: put `ret` in RAX as [`Outcome::Return`] does,
    /// and the count the guest passed back in RSI (which held progress words
    /// between the pieces), so that the guest's registers are as after one
    /// uninterrupted call.
    Resumed {
        /// The result.
        ret: i32,
        /// The original count (argument 2).
        count: u32,
    },
}

impl Outcome {
    fn err(e: Errno) -> Outcome {
        Outcome::Return(e.as_return())
    }
}

/// Everything a hypercall handler may touch: the calling domain, machine memory
/// (only through [`crate::paging::guest_mem`] and the domain's own methods), the console,
/// and the guest's current CR3 (the root of the tables guest pointers are
/// translated with).
pub struct HypercallCtx<'a, M: PhysMem + ?Sized, C: Console + ?Sized> {
    /// The calling domain.
    pub dom: &'a mut Domain,
    /// Machine memory.
    pub mem: &'a mut M,
    /// The hypervisor console guest output goes to.
    pub console: &'a mut C,
    /// The guest's CR3 at the time of the call, as a frame: the caller takes
    /// bits 12..51 of the VMCS guest CR3 (dropping PWT/PCD/PCID). Guest pointers
    /// are translated through the tables rooted here.
    pub cr3: Mfn,
    /// The domain's event channels, timers and clock.
    pub ev: &'a mut EventState,
    /// Reads the TSC: "now" for the timer hypercalls (system time is derived
    /// from it). A function rather than a value read at every exit, so that only
    /// the handlers that need the time pay for reading it (issue 8: the null
    /// hypercall's budget has no room for an RDTSC it does not use). The exit
    /// handler passes the CPU's RDTSC; tests pass a fake clock.
    pub now: &'a dyn Fn() -> u64,
    /// The work this exit has done so far ([`crate::preempt`]): the exit
    /// handler passes `Budget::new()`; a `multicall` shares it with its calls.
    pub work: Budget,
}

impl<M: PhysMem + ?Sized, C: Console + ?Sized> HypercallCtx<'_, M, C> {
    /// The TSC now (see [`Self::now`]).
    pub fn tsc(&self) -> u64 {
        (self.now)()
    }
}

/// The context handlers see: type-erased so that the table can be a `static`.
pub type DynCtx<'a> = HypercallCtx<'a, dyn PhysMem + 'a, dyn Console + 'a>;

/// A handler: the context and the raw arguments in, the outcome out.
pub type Handler = fn(&mut DynCtx<'_>, &HypercallArgs) -> Outcome;

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
    /// The implementation.
    pub handler: Handler,
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
        handler: console_write,
    },
    Row {
        nr: Hypercall::XEN_VERSION,
        sub: XENVER_VERSION,
        name: "xen_version / XENVER_version",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "xen_version(XENVER_version, _): the ABI version, (major << 16) | minor",
        handler: version_version,
    },
    Row {
        nr: Hypercall::XEN_VERSION,
        sub: XENVER_EXTRAVERSION,
        name: "xen_version / XENVER_extraversion",
        whole: false,
        since: AbiVersion::V0_1,
        doc:
            "xen_version(XENVER_extraversion, char[16]): writes \"-keel\" NUL-padded; 0 or -EFAULT",
        handler: version_extraversion,
    },
    Row {
        nr: Hypercall::XEN_VERSION,
        sub: XENVER_GET_FEATURES,
        name: "xen_version / XENVER_get_features",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "xen_version(XENVER_get_features, xen_feature_info*): submap 0 is Keel's feature \
              bits; another submap_idx is -EINVAL (as Xen); 0 or -EFAULT",
        handler: version_get_features,
    },
    Row {
        nr: Hypercall::XEN_VERSION,
        sub: XENVER_PAGESIZE,
        name: "xen_version / XENVER_pagesize",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "xen_version(XENVER_pagesize, NULL): 4096; a non-NULL argument is -EINVAL (as Xen)",
        handler: version_pagesize,
    },
    Row {
        nr: Hypercall::SCHED_OP,
        sub: SCHEDOP_YIELD,
        name: "sched_op / SCHEDOP_yield",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "sched_op(SCHEDOP_yield, _): 0 (one vCPU: returns at once)",
        handler: sched_yield,
    },
    Row {
        nr: Hypercall::SCHED_OP,
        sub: SCHEDOP_SHUTDOWN,
        name: "sched_op / SCHEDOP_shutdown",
        whole: false,
        since: AbiVersion::V0_1,
        doc: "sched_op(SCHEDOP_shutdown, sched_shutdown*): ends the domain with the reason; \
              does not return; -EFAULT, or -EINVAL for an unknown reason",
        handler: sched_shutdown,
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
        handler: mmu_update,
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
        handler: multicall,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_PIN_L1_TABLE as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_PIN_L1_TABLE",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_PIN_L1_TABLE: pin arg1 as an L1 (validated); -EINVAL if refused or already pinned",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_PIN_L2_TABLE as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_PIN_L2_TABLE",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_PIN_L2_TABLE: pin arg1 as an L2 (validating the L1s below)",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_PIN_L3_TABLE as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_PIN_L3_TABLE",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_PIN_L3_TABLE: pin arg1 as an L3",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_PIN_L4_TABLE as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_PIN_L4_TABLE",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_PIN_L4_TABLE: pin arg1 as an L4",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_UNPIN_TABLE as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_UNPIN_TABLE",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_UNPIN_TABLE: drop the pin on arg1 (-EINVAL if not pinned); the last reference devalidates",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_NEW_BASEPTR as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_NEW_BASEPTR",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_NEW_BASEPTR: switch CR3 to arg1, a pinned validated L4 (-EINVAL otherwise); full TLB flush",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_TLB_FLUSH_LOCAL as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_TLB_FLUSH_LOCAL",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_TLB_FLUSH_LOCAL: flush this vCPU's TLB",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_INVLPG_LOCAL as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_INVLPG_LOCAL",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_INVLPG_LOCAL: flush the translation of linear address arg1",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_TLB_FLUSH_MULTI as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_TLB_FLUSH_MULTI",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_TLB_FLUSH_MULTI: flush if bit 0 (vCPU 0) of the bitmap at arg2 is set; -EFAULT if unreadable",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_INVLPG_MULTI as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_INVLPG_MULTI",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_INVLPG_MULTI: flush arg1 if bit 0 of the bitmap at arg2 is set; -EFAULT if unreadable",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_TLB_FLUSH_ALL as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_TLB_FLUSH_ALL",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_TLB_FLUSH_ALL: flush every vCPU's TLB (the one vCPU)",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::MMUEXT_OP,
        sub: MMUEXT_INVLPG_ALL as u64,
        whole: true,
        name: "mmuext_op / MMUEXT_INVLPG_ALL",
        since: AbiVersion::V1_0,
        doc: "mmuext_op(ops, count, success_count, foreigndom), cmd MMUEXT_INVLPG_ALL: flush arg1 on every vCPU (the one vCPU)",
        handler: mmuext_op,
    },
    Row {
        nr: Hypercall::SCHED_OP,
        sub: SCHEDOP_BLOCK,
        whole: false,
        name: "sched_op / SCHEDOP_block",
        since: AbiVersion::V1_0,
        doc: "sched_op(SCHEDOP_block, _): clears evtchn_upcall_mask and blocks until an event needs delivery (0 at once if one does); a vCPU that could never wake is killed",
        handler: events::sched_block,
    },
    Row {
        nr: Hypercall::SCHED_OP,
        sub: SCHEDOP_POLL,
        whole: false,
        name: "sched_op / SCHEDOP_poll",
        since: AbiVersion::V1_0,
        doc: "sched_op(SCHEDOP_poll, sched_poll*): blocks until a listed port is pending, an event needs delivery or the timeout; 0, -EFAULT, -EINVAL (> 128 ports, bad port)",
        handler: events::sched_poll,
    },
    Row {
        nr: Hypercall::SET_TIMER_OP,
        sub: 0,
        whole: true,
        name: "set_timer_op / set_timer_op",
        since: AbiVersion::V1_0,
        doc: "set_timer_op(timeout_ns): arms the single-shot timer (absolute system time; 0 stops it; a past deadline fires at once; negative or more than 2^50 ns ahead: 100 ms from now, as Xen); 0",
        handler: events::set_timer_op,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_BIND_VIRQ,
        whole: false,
        name: "event_channel_op / EVTCHNOP_bind_virq",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_bind_virq, arg*): bind a VIRQ: 0 and port, -EINVAL, -ENOENT, -EEXIST, -ENOSPC, -EFAULT",
        handler: events::evtchn_bind_virq,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_CLOSE,
        whole: false,
        name: "event_channel_op / EVTCHNOP_close",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_close, arg*): close a port: 0, -EINVAL, -EFAULT",
        handler: events::evtchn_close,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_SEND,
        whole: false,
        name: "event_channel_op / EVTCHNOP_send",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_send, arg*): send on an IPI (pending) or unbound (dropped) port: 0, -EINVAL, -EFAULT",
        handler: events::evtchn_send,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_STATUS,
        whole: false,
        name: "event_channel_op / EVTCHNOP_status",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_status, arg*): port status: 0, -ESRCH, -EINVAL, -EFAULT",
        handler: events::evtchn_status,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_ALLOC_UNBOUND,
        whole: false,
        name: "event_channel_op / EVTCHNOP_alloc_unbound",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_alloc_unbound, arg*): unbound port for DOMID_SELF: 0 and port, -ESRCH, -ENOSPC, -EFAULT",
        handler: events::evtchn_alloc_unbound,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_BIND_IPI,
        whole: false,
        name: "event_channel_op / EVTCHNOP_bind_ipi",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_bind_ipi, arg*): IPI port: 0 and port, -ENOENT, -ENOSPC, -EFAULT",
        handler: events::evtchn_bind_ipi,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_BIND_VCPU,
        whole: false,
        name: "event_channel_op / EVTCHNOP_bind_vcpu",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_bind_vcpu, arg*): notify vCPU: 0, -ENOENT, -EINVAL, -EFAULT",
        handler: events::evtchn_bind_vcpu,
    },
    Row {
        nr: Hypercall::EVENT_CHANNEL_OP,
        sub: EVTCHNOP_UNMASK,
        whole: false,
        name: "event_channel_op / EVTCHNOP_unmask",
        since: AbiVersion::V1_0,
        doc: "event_channel_op(EVTCHNOP_unmask, arg*): clear the mask, re-deliver if pending: 0, -EINVAL, -EFAULT",
        handler: events::evtchn_unmask,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_SET_PERIODIC_TIMER,
        whole: false,
        name: "vcpu_op / VCPUOP_set_periodic_timer",
        since: AbiVersion::V1_0,
        doc: "vcpu_op(VCPUOP_set_periodic_timer, vcpu, arg*): VIRQ_TIMER every period_ns (1 ms to 2^62 - 1 ns, else -EINVAL); -ENOENT for a vCPU but 0; -EFAULT",
        handler: events::vcpu_set_periodic,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_STOP_PERIODIC_TIMER,
        whole: false,
        name: "vcpu_op / VCPUOP_stop_periodic_timer",
        since: AbiVersion::V1_0,
        doc: "vcpu_op(VCPUOP_stop_periodic_timer, vcpu, arg*): stop the periodic timer; -ENOENT",
        handler: events::vcpu_stop_periodic,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_SET_SINGLESHOT_TIMER,
        whole: false,
        name: "vcpu_op / VCPUOP_set_singleshot_timer",
        since: AbiVersion::V1_0,
        doc: "vcpu_op(VCPUOP_set_singleshot_timer, vcpu, arg*): single-shot deadline (absolute ns); -ETIME if VCPU_SSHOTTMR_future and past; -ENOENT; -EFAULT",
        handler: events::vcpu_set_singleshot,
    },
    Row {
        nr: Hypercall::VCPU_OP,
        sub: VCPUOP_STOP_SINGLESHOT_TIMER,
        whole: false,
        name: "vcpu_op / VCPUOP_stop_singleshot_timer",
        since: AbiVersion::V1_0,
        doc: "vcpu_op(VCPUOP_stop_singleshot_timer, vcpu, arg*): stop the single-shot timer; -ENOENT",
        handler: events::vcpu_stop_singleshot,
    },
    Row {
        nr: Hypercall::HVM_OP,
        sub: HVMOP_SET_PARAM,
        whole: false,
        name: "hvm_op / HVMOP_set_param",
        since: AbiVersion::V1_0,
        doc: "hvm_op(HVMOP_set_param, xen_hvm_param*): HVM_PARAM_CALLBACK_IRQ of the vector type (vector >= 0x10) or 0; -ESRCH, -EINVAL, -EFAULT",
        handler: events::hvm_set_param,
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
/// Why: every hypercall is looked up on every call. A scan of the whole table
/// made each call pay for every row before its own (and an `-ENOSYS` answer for
/// all of them), so the cost grew with each hypercall added (issue 8 measures
/// it: `bench_exits/enosys`). With the index a call scans only its own number's
/// rows, an unimplemented number none, and compares only the sub-command.
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
/// (a null hypercall has a budget of 200 instructions in all, issue 8). A
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

/// Handle one hypercall from `ctx.dom`. Counts it, looks it up, runs it.
pub fn dispatch<M: PhysMem, C: Console>(
    ctx: &mut HypercallCtx<'_, M, C>,
    args: &HypercallArgs,
) -> Outcome {
    let mut dyn_ctx: DynCtx<'_> = HypercallCtx {
        dom: &mut *ctx.dom,
        mem: &mut *ctx.mem,
        console: &mut *ctx.console,
        cr3: ctx.cr3,
        ev: &mut *ctx.ev,
        now: ctx.now,
        work: ctx.work,
    };
    let out = dispatch_dyn(&mut dyn_ctx, args);
    ctx.work = dyn_ctx.work;
    // NEW_BASEPTR changed the tables later pointers are translated with.
    ctx.cr3 = dyn_ctx.cr3;
    out
}

/// Count, look up and run one call (also each call of a `multicall`).
fn dispatch_dyn(ctx: &mut DynCtx<'_>, args: &HypercallArgs) -> Outcome {
    ctx.dom.count_hypercall(args.nr);
    match lookup(args.nr, args.args[0]) {
        Some(row) => (row.handler)(ctx, args),
        None => Outcome::err(Errno::ENOSYS),
    }
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

// ---------------------------------------------------------------------------
// console_io

/// Translate the guest's buffer (at most two pages: `count <= 4096`), then
/// feed its bytes, read in place, to the domain's line buffer. Every page is
/// translated before the first byte is printed, so a bad buffer prints nothing;
/// the text is printed through the console ring, which never waits for the
/// serial line unless the ring is full (`crate::console`).
fn console_write(ctx: &mut DynCtx<'_>, a: &HypercallArgs) -> Outcome {
    let (count, buf) = (a.args[1], GuestVirt(a.args[2]));
    if count > CONSOLEIO_WRITE_MAX {
        return Outcome::err(Errno::EINVAL);
    }
    // count <= 4096, so this cannot truncate.
    let count = count as usize;
    // On the hypervisor's direct map as its concrete type: the page walk's
    // word accesses are inlined.
    #[cfg(target_os = "none")]
    if let Some(dm) = ctx.mem.as_direct_map() {
        return console_write_on(ctx.dom, &*dm, &mut *ctx.console, ctx.cr3, buf, count);
    }
    console_write_on(ctx.dom, &*ctx.mem, &mut *ctx.console, ctx.cr3, buf, count)
}

fn console_write_on<M: PhysMem + ?Sized>(
    dom: &mut Domain,
    mem: &M,
    console: &mut (dyn Console + '_),
    cr3: Mfn,
    buf: GuestVirt,
    count: usize,
) -> Outcome {
    if count == 0 {
        return Outcome::Return(0);
    }
    if buf.checked_add(count as u64 - 1).is_none() {
        return Outcome::err(Errno::EFAULT);
    }
    // The pieces: the rest of the first page, then what is left (at most a
    // page, since count <= 4096).
    let first = (crate::paging::entry::bytes_to_page_end(buf) as usize).min(count);
    let second_va = GuestVirt(buf.0.wrapping_add(first as u64));
    let pieces = [(buf, first), (second_va, count - first)];
    let mut machine = [MachineAddr(0); 2];
    // The first page through the domain's console cache (a guest prints from
    // the same buffer, call after call), the rest with a walk.
    let mut cache = dom.console_cache;
    let first_ma = cache.translate(dom, mem, cr3, buf);
    dom.console_cache = cache;
    match first_ma {
        Ok(m) => machine[0] = m,
        Err(e) => return Outcome::err(e),
    }
    if pieces[1].1 > 0 {
        match guest_mem::translate(dom, mem, cr3, second_va, Access::Read) {
            Ok(m) => machine[1] = m,
            Err(e) => return Outcome::err(e),
        }
    }
    for ((_, len), ma) in pieces.iter().zip(machine) {
        if *len > 0 {
            mem.read_with(ma, *len, &mut |bytes| dom.console_write(console, bytes));
        }
    }
    Outcome::Return(0)
}

// ---------------------------------------------------------------------------
// xen_version

/// The version the domain is told (`Domain::abi_version`: the hypervisor's, or
/// 0.2 for a guest built before 1.0).
fn version_version(ctx: &mut DynCtx<'_>, _: &HypercallArgs) -> Outcome {
    Outcome::Return(i64::from(ctx.dom.abi_version_encoded()))
}

/// Writes [`EXTRAVERSION`] (`"-keel"`, NUL-padded to 16 bytes).
fn version_extraversion(ctx: &mut DynCtx<'_>, a: &HypercallArgs) -> Outcome {
    let va = GuestVirt(a.args[1]);
    match guest_mem::copy_to_guest(ctx.dom, ctx.mem, ctx.cr3, va, &EXTRAVERSION.0) {
        Ok(()) => Outcome::Return(0),
        Err(e) => Outcome::err(e),
    }
}

/// Xen semantics: read the whole `xen_feature_info`, answer submap 0, refuse any
/// other index with -EINVAL (guests loop over submaps until the call fails), and
/// write the whole struct back.
fn version_get_features(ctx: &mut DynCtx<'_>, a: &HypercallArgs) -> Outcome {
    let va = GuestVirt(a.args[1]);
    let mut fi = match guest_mem::read_bytes(ctx.dom, ctx.mem, ctx.cr3, va) {
        Ok(b) => XenFeatureInfo::decode(&b),
        Err(e) => return Outcome::err(e),
    };
    fi.submap = match fi.submap_idx {
        0 => features::SUBMAP0,
        _ => return Outcome::err(Errno::EINVAL),
    };
    match guest_mem::copy_to_guest(ctx.dom, ctx.mem, ctx.cr3, va, &fi.encode()) {
        Ok(()) => Outcome::Return(0),
        Err(e) => Outcome::err(e),
    }
}

fn version_pagesize(_: &mut DynCtx<'_>, a: &HypercallArgs) -> Outcome {
    if a.args[1] != 0 {
        return Outcome::err(Errno::EINVAL);
    }
    Outcome::Return(PAGE_SIZE as i64)
}

// ---------------------------------------------------------------------------
// sched_op

fn sched_yield(_: &mut DynCtx<'_>, _: &HypercallArgs) -> Outcome {
    Outcome::Return(0)
}

fn sched_shutdown(ctx: &mut DynCtx<'_>, a: &HypercallArgs) -> Outcome {
    let va = GuestVirt(a.args[1]);
    let reason = match guest_mem::read_bytes(ctx.dom, ctx.mem, ctx.cr3, va) {
        Ok(b) => SchedShutdown::decode(&b).reason,
        Err(e) => return Outcome::err(e),
    };
    if shutdown_reason_name(reason).is_none() {
        return Outcome::err(Errno::EINVAL);
    }
    // The guest's last words must not be lost in the line buffer.
    ctx.dom.console_flush(ctx.console);
    Outcome::Shutdown(reason)
}

// ---------------------------------------------------------------------------
// The PV MMU (ABI 1.0): mmu_update, mmuext_op, multicall. The rules are in
// `crate::paging`; these handlers only copy requests in and results out.

/// What the batched MMU requests work on: the calling domain, machine memory
/// and the guest's current root, and what preemption needs (the exit's work so
/// far, the clock, the timers). Generic over the memory so that the batches
/// run on the hypervisor's direct map as its concrete type ([`run_mmu_batch`]).
struct MmuCtx<'a, M: PhysMem + ?Sized> {
    dom: &'a mut Domain,
    mem: &'a mut M,
    cr3: Mfn,
    work: &'a mut Budget,
    now: &'a dyn Fn() -> u64,
    ev: &'a EventState,
}

/// A batched MMU hypercall, written once for any memory type.
trait MmuBatch {
    fn run<M: PhysMem + ?Sized>(c: &mut MmuCtx<'_, M>, a: &HypercallArgs) -> Outcome;
}

/// Run batch `B` on `ctx`. On the hypervisor's direct map (what hypercalls get
/// on hardware) it runs on the concrete type: every frame-table and page-table
/// word is then an inlined load or store instead of a virtual call through
/// `dyn PhysMem`, and a request costs several of them. Any other memory (the
/// host tests') runs the same code through the trait object. The root the batch
/// leaves (NEW_BASEPTR) becomes the context's.
fn run_mmu_batch<B: MmuBatch>(ctx: &mut DynCtx<'_>, a: &HypercallArgs) -> Outcome {
    #[cfg(target_os = "none")]
    if let Some(dm) = ctx.mem.as_direct_map() {
        let mut c = MmuCtx {
            dom: &mut *ctx.dom,
            mem: dm,
            cr3: ctx.cr3,
            work: &mut ctx.work,
            now: ctx.now,
            ev: &*ctx.ev,
        };
        let out = B::run(&mut c, a);
        ctx.cr3 = c.cr3;
        return out;
    }
    let mut c = MmuCtx {
        dom: &mut *ctx.dom,
        mem: &mut *ctx.mem,
        cr3: ctx.cr3,
        work: &mut ctx.work,
        now: ctx.now,
        ev: &*ctx.ev,
    };
    let out = B::run(&mut c, a);
    ctx.cr3 = c.cr3;
    out
}

/// The outcome of a batch call that completed with `ret`: a continuation
/// (`reg`, the count register it was called with, has the flag) puts the
/// guest's count back.
fn completed(reg: u64, count: u32, ret: i64) -> Outcome {
    if Progress::resumed(reg) {
        // Batch results are 0 or a negated errno: they fit.
        Outcome::Resumed {
            ret: ret as i32,
            count,
        }
    } else {
        Outcome::Return(ret)
    }
}

/// Stop a batch at `done` (it started this exit at `start`): charge the work,
/// and the continuation. Out of line, so that the loop does not keep the
/// progress word up to date on every request.
#[cold]
#[inline(never)]
fn preempted(work: &mut Budget, count: u32, start: u64, done: u64) -> Outcome {
    work.charge(u32::try_from(done - start).unwrap_or(u32::MAX));
    let left = Progress {
        count,
        done: u32::try_from(done).unwrap_or(u32::MAX),
        in_entry: false,
    };
    Outcome::Preempted(left.encode())
}

/// The TSC for a check point. On the hypervisor it is the RDTSC that the exit
/// handler passes as `now` anyway, read inline: a check point is then a few
/// instructions, not a call through a trait object (the checks come every few
/// requests, and a request costs little more than a hundred instructions).
#[inline(always)]
fn tsc(now: &dyn Fn() -> u64) -> u64 {
    #[cfg(target_os = "none")]
    {
        let _ = now;
        crate::arch::timer::rdtsc()
    }
    #[cfg(not(target_os = "none"))]
    now()
}

/// `foreigndom` must name the caller: Keel runs one domain and has no privileged
/// one, so there is no other domain to act on (`-ESRCH`, as Xen for an unknown id).
fn check_foreigndom(dom: &Domain, fd: u64) -> Result<(), Errno> {
    if fd == DOMID_SELF || fd == u64::from(dom.id.0) {
        Ok(())
    } else {
        Err(Errno::ESRCH)
    }
}

/// Write the number of requests done to `*pdone` (a C `unsigned int`), unless NULL.
fn write_done<M: PhysMem + ?Sized>(
    c: &mut MmuCtx<'_, M>,
    pdone: u64,
    done: u64,
) -> Result<(), Errno> {
    if pdone == 0 {
        return Ok(());
    }
    let v = u32::try_from(done).unwrap_or(u32::MAX);
    guest_mem::copy_to_guest(c.dom, c.mem, c.cr3, GuestVirt(pdone), &v.to_le_bytes())
}

/// Run `count` requests of `N` bytes from `list`, `one_fn` per request; stop at
/// the first error; write the count done back. The shape both `mmu_update` and
/// `mmuext_op` share (Xen's `do_mmu_update`/`do_mmuext_op` loops).
///
/// Each request is read just before it runs, through a [`guest_mem::PageReader`]:
/// one page walk per page of requests rather than one per request (the walk
/// costs several times what a small request does). `writes(req)` names the
/// guest page-table entry a request may write, if any, so that the reader
/// forgets a translation the request could change. A request that cannot be
/// read ends the batch with `-EFAULT` after the ones before it have run, as
/// Xen's loop does.
fn batch<M: PhysMem + ?Sized, const N: usize>(
    c: &mut MmuCtx<'_, M>,
    a: &HypercallArgs,
    writes: impl Fn(&[u8; N]) -> Option<MachineAddr>,
    mut one_fn: impl FnMut(&mut MmuCtx<'_, M>, &[u8; N]) -> Result<(), Errno>,
) -> Outcome {
    let (list, pdone, fd) = (a.args[0], a.args[2], a.args[3]);
    if let Err(e) = check_foreigndom(c.dom, fd) {
        return Outcome::err(e);
    }
    let p = match Progress::decode(a.args[1], false) {
        Ok(p) => p,
        Err(e) => return Outcome::err(e),
    };
    let count = u64::from(p.count);
    let mut reader = guest_mem::PageReader::new();
    let mut done = u64::from(p.done);
    let mut rc = Ok(());
    // Check points ([`crate::preempt`]) come every CHECK_EVERY requests (by
    // index), never before this exit's first. The requests between two run
    // in an inner loop that tests nothing more than before; at a check point
    // the clock is read and compared with the deadline (read once) and the
    // exit's bound.
    let ev = c.ev;
    let deadline = c.work.deadline(|| ev.wake_deadline_tsc());
    let start = done;
    // Every piece does at least one request.
    let limit = start + u64::from(c.work.room().max(1));
    let every = u64::from(CHECK_EVERY);
    let mut stop = count.min((start / every + 1) * every).min(limit);
    loop {
        while done < stop {
            let va = GuestVirt(list.wrapping_add(done.wrapping_mul(N as u64)));
            let req = match reader.read::<N, _>(c.dom, c.mem, c.cr3, va) {
                Ok(r) => r,
                Err(e) => {
                    rc = Err(e);
                    break;
                }
            };
            if let Some(at) = writes(&req) {
                reader.wrote_entry(at);
            }
            if let Err(e) = one_fn(c, &req) {
                rc = Err(e);
                break;
            }
            done += 1;
        }
        if done >= count || rc.is_err() {
            break;
        }
        if done >= limit || tsc(c.now) >= deadline {
            return preempted(c.work, p.count, start, done);
        }
        stop = count.min(done + every).min(limit);
    }
    c.work
        .charge(u32::try_from(done - start).unwrap_or(u32::MAX));
    let wrote = write_done(c, pdone, done);
    let ret = match rc.and(wrote) {
        Ok(()) => 0,
        Err(e) => e.as_return(),
    };
    completed(a.args[1], p.count, ret)
}

fn mm_err(e: crate::paging::MmError) -> Errno {
    log::debug!("mmu: refused: {e}");
    Errno::EINVAL
}

fn mmu_update(ctx: &mut DynCtx<'_>, a: &HypercallArgs) -> Outcome {
    run_mmu_batch::<MmuUpdateBatch>(ctx, a)
}

struct MmuUpdateBatch;

impl MmuBatch for MmuUpdateBatch {
    fn run<M: PhysMem + ?Sized>(c: &mut MmuCtx<'_, M>, a: &HypercallArgs) -> Outcome {
        // The only guest memory a request writes is the entry it names
        // (whatever its command bits; a misaligned one is refused unwritten).
        let writes = |b: &[u8; MmuUpdate::SIZE]| Some(MachineAddr(MmuUpdate::decode(b).ptr & !7));
        // The requests of a batch are a run of updates with nothing between
        // them: consecutive ones to the same table look it up once.
        let mut last = LastTable::default();
        batch::<M, { MmuUpdate::SIZE }>(c, a, writes, |c, b| {
            let req = MmuUpdate::decode(b);
            match req.ptr & 3 {
                MMU_NORMAL_PT_UPDATE => {
                    // Bits 0..1 are the command; the entry address is 8-byte
                    // aligned, so bit 2 must be clear (checked by update_entry).
                    let ma = MachineAddr(req.ptr & !3);
                    c.dom
                        .update_entry_after(c.mem, &mut last, ma, req.val)
                        .map_err(mm_err)
                }
                _ => Err(Errno::ENOSYS),
            }
        })
    }
}

fn mmuext_op(ctx: &mut DynCtx<'_>, a: &HypercallArgs) -> Outcome {
    run_mmu_batch::<MmuextBatch>(ctx, a)
}

struct MmuextBatch;

impl MmuBatch for MmuextBatch {
    fn run<M: PhysMem + ?Sized>(c: &mut MmuCtx<'_, M>, a: &HypercallArgs) -> Outcome {
        // No command writes guest memory (NEW_BASEPTR changes the root, which
        // the reader checks on every read).
        batch::<M, { MmuextOp::SIZE }>(
            c,
            a,
            |_| None,
            |c, b| {
                let op = MmuextOp::decode(b);
                let mfn = Mfn(op.arg1);
                let pin =
                    |c: &mut MmuCtx<'_, M>, level| c.dom.pin(c.mem, mfn, level).map_err(mm_err);
                match op.cmd {
                    MMUEXT_PIN_L1_TABLE => pin(c, Level::L1),
                    MMUEXT_PIN_L2_TABLE => pin(c, Level::L2),
                    MMUEXT_PIN_L3_TABLE => pin(c, Level::L3),
                    MMUEXT_PIN_L4_TABLE => pin(c, Level::L4),
                    MMUEXT_UNPIN_TABLE => c.dom.unpin(c.mem, mfn).map_err(mm_err),
                    MMUEXT_NEW_BASEPTR => {
                        c.dom.new_baseptr(c.mem, mfn).map_err(mm_err)?;
                        c.cr3 = c.dom.base();
                        Ok(())
                    }
                    MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_ALL => {
                        c.dom.request_flush(Flush::All);
                        Ok(())
                    }
                    MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_ALL => {
                        c.dom.request_flush(Flush::Page(op.arg1));
                        Ok(())
                    }
                    MMUEXT_TLB_FLUSH_MULTI | MMUEXT_INVLPG_MULTI => {
                        // The vCPU bitmap is a guest pointer; Keel has vCPU 0 only.
                        let mask =
                            guest_mem::read_bytes::<8, _>(c.dom, c.mem, c.cr3, GuestVirt(op.arg2))?;
                        if u64::from_le_bytes(mask) & 1 != 0 {
                            c.dom.request_flush(if op.cmd == MMUEXT_TLB_FLUSH_MULTI {
                                Flush::All
                            } else {
                                Flush::Page(op.arg1)
                            });
                        }
                        Ok(())
                    }
                    _ => Err(Errno::ENOSYS),
                }
            },
        )
    }
}

/// Read a `multicall_entry` through `reader`; on the hypervisor's direct map
/// on the concrete type (eight word loads, inlined), as [`run_mmu_batch`] does.
fn read_entry(
    reader: &mut guest_mem::PageReader,
    ctx: &mut DynCtx<'_>,
    va: GuestVirt,
) -> Result<[u8; MulticallEntry::SIZE], Errno> {
    #[cfg(target_os = "none")]
    if let Some(dm) = ctx.mem.as_direct_map() {
        return reader.read(ctx.dom, dm, ctx.cr3, va);
    }
    reader.read(ctx.dom, ctx.mem, ctx.cr3, va)
}

/// Write a `result` (or a progress word) through `writer`, likewise.
fn write_result(
    writer: &mut guest_mem::PageWriter,
    ctx: &mut DynCtx<'_>,
    at: GuestVirt,
    v: [u8; 8],
) -> Result<(), Errno> {
    #[cfg(target_os = "none")]
    if let Some(dm) = ctx.mem.as_direct_map() {
        return writer.write(ctx.dom, dm, ctx.cr3, at, &v);
    }
    writer.write(ctx.dom, ctx.mem, ctx.cr3, at, &v)
}

fn multicall(ctx: &mut DynCtx<'_>, a: &HypercallArgs) -> Outcome {
    let list = a.args[0];
    let p = match Progress::decode(a.args[1], true) {
        Ok(p) => p,
        Err(e) => return Outcome::err(e),
    };
    let fail = |e: Errno| completed(a.args[1], p.count, e.as_return());
    let (first, count) = (u64::from(p.done), u64::from(p.count));
    // The list is read and the results written with one translation per page
    // (not three walks per entry); a call that may change page tables or
    // page types makes both translate again.
    let mut reader = guest_mem::PageReader::new();
    let mut writer = guest_mem::PageWriter::new();
    for i in first..count {
        // Preempted between entries, never before the first of a piece: every
        // piece makes progress.
        let ev = &*ctx.ev;
        let now = ctx.now;
        if i > first && ctx.work.stop_here(|| tsc(now), || ev.wake_deadline_tsc()) {
            let left = Progress {
                count: p.count,
                done: i as u32,
                in_entry: false,
            };
            return Outcome::Preempted(left.encode());
        }
        ctx.work.charge(1);
        let va = GuestVirt(list.wrapping_add(i.wrapping_mul(MulticallEntry::SIZE as u64)));
        let e = match read_entry(&mut reader, ctx, va) {
            Ok(b) => MulticallEntry::decode(&b),
            Err(e) => return fail(e),
        };
        let at = GuestVirt(va.0.wrapping_add(MulticallEntry::RESULT_OFFSET));
        let result = if e.op == Hypercall::MULTICALL.0 {
            // No nesting: a batch inside a batch would make the work per
            // hypercall unbounded in the depth of the nesting.
            ctx.dom.count_hypercall(e.op);
            Errno::EINVAL.as_return()
        } else {
            let mut args = HypercallArgs {
                nr: e.op,
                args: [e.args[0], e.args[1], e.args[2], e.args[3], e.args[4]],
            };
            if i == first && p.in_entry {
                // The entry was preempted part way: its progress word.
                args.args[1] = e.result;
            }
            // A blocking call is refused below, and a refused call changes
            // nothing: SCHEDOP_block's unmasking is undone.
            let mask = if e.op == Hypercall::SCHED_OP.0 {
                events::upcall_mask(ctx)
            } else {
                None
            };
            let out = dispatch_dyn(ctx, &args);
            match Hypercall(e.op) {
                Hypercall::SET_TIMER_OP | Hypercall::VCPU_OP => ctx.work.timers_changed(),
                Hypercall::MMU_UPDATE | Hypercall::MMUEXT_OP => {
                    reader = guest_mem::PageReader::new();
                    writer.forget();
                }
                _ => {}
            }
            match out {
                Outcome::Return(v) => v,
                Outcome::Resumed { ret, .. } => i64::from(ret),
                Outcome::Shutdown(r) => return Outcome::Shutdown(r),
                // A batch cannot sleep half-way: blocking calls in a multicall
                // are refused (their state is undone).
                Outcome::Block => {
                    events::refuse_block(ctx, mask);
                    Errno::EINVAL.as_return()
                }
                // The entry's own progress goes where its result will be
                // (the guest's list is not otherwise changed), and this call
                // resumes inside it.
                Outcome::Preempted(word) => {
                    if let Err(e) = write_result(&mut writer, ctx, at, word.to_le_bytes()) {
                        return fail(e);
                    }
                    let left = Progress {
                        count: p.count,
                        done: i as u32,
                        in_entry: true,
                    };
                    return Outcome::Preempted(left.encode());
                }
            }
        };
        if let Err(e) = write_result(&mut writer, ctx, at, result.to_le_bytes()) {
            return fail(e);
        }
    }
    completed(a.args[1], p.count, 0)
}

mod events;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_events;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_preempt;
#[cfg(test)]
mod xen_docs_tests;
