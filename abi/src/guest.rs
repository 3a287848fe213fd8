//! Guest-side hypercall wrappers (feature `guest`; the hypervisor never enables it).
//!
//! The raw `VMCALL` sequences are the only `unsafe` code here. The safe wrappers take
//! Rust references, so the pointers they pass are always valid guest-virtual
//! addresses of live, correctly sized objects.

use crate::console::{CONSOLEIO_WRITE, CONSOLEIO_WRITE_MAX};
use crate::errno::Errno;
use crate::hypercall::Hypercall;
use crate::sched::{SchedShutdown, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD};
use crate::version::{AbiVersion, XenExtraversion, XenFeatureInfo};
use crate::version::{XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_VERSION};

/// The raw hypercall instruction sequences.
pub mod raw {
    /// Issue hypercall `nr` with up to five arguments; returns RAX.
    ///
    /// # Safety
    /// The arguments are interpreted by the hypervisor according to `nr`; pointer
    /// arguments must be valid for what that hypercall reads and writes.
    #[inline(always)]
    pub unsafe fn hypercall5(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
        let ret: i64;
        // SAFETY: the caller upholds the hypercall's contract; VMCALL preserves all
        // registers but RAX.
        unsafe {
            core::arch::asm!(
                "vmcall",
                inlateout("rax") nr as i64 => ret,
                in("rdi") a1,
                in("rsi") a2,
                in("rdx") a3,
                in("r10") a4,
                in("r8") a5,
                options(nostack),
            );
        }
        ret
    }
}

/// Issue a hypercall whose arguments are plain integers (no pointers).
///
/// Safe because the hypervisor validates every argument: an integer argument can
/// at worst fail with an error code. Hypercalls that take pointers have typed wrappers.
pub fn hypercall_scalar(nr: Hypercall, args: [u64; 5]) -> i64 {
    // SAFETY: no argument is dereferenced by the guest; the hypervisor checks any
    // argument it interprets as a pointer (that is the point of Keel's copy checks).
    unsafe { raw::hypercall5(nr.0, args[0], args[1], args[2], args[3], args[4]) }
}

/// `console_io(CONSOLEIO_write, len, buf)`: print bytes on the hypervisor console.
pub fn console_write(buf: &[u8]) -> Result<(), Errno> {
    for chunk in buf.chunks(CONSOLEIO_WRITE_MAX as usize) {
        // SAFETY: `chunk` is a live slice of `chunk.len()` bytes the hypervisor only reads.
        let r = unsafe {
            raw::hypercall5(
                Hypercall::CONSOLE_IO.0,
                CONSOLEIO_WRITE,
                chunk.len() as u64,
                chunk.as_ptr() as u64,
                0,
                0,
            )
        };
        Errno::from_return(r)?;
    }
    Ok(())
}

/// `xen_version(XENVER_version, NULL)`: the hypervisor's ABI version.
pub fn xen_version() -> AbiVersion {
    let r = hypercall_scalar(Hypercall::XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0]);
    AbiVersion::decode(r as u32)
}

/// `xen_version(XENVER_extraversion, buf)`.
pub fn xen_extraversion() -> Result<XenExtraversion, Errno> {
    let mut v = XenExtraversion([0; 16]);
    // SAFETY: `v` is a live, writable 16-byte object.
    let r = unsafe {
        raw::hypercall5(
            Hypercall::XEN_VERSION.0,
            XENVER_EXTRAVERSION,
            &mut v as *mut _ as u64,
            0,
            0,
            0,
        )
    };
    Errno::from_return(r).map(|_| v)
}

/// `xen_version(XENVER_get_features, &info)`: feature submap `idx`.
pub fn xen_get_features(idx: u32) -> Result<u32, Errno> {
    let mut info = XenFeatureInfo {
        submap_idx: idx,
        submap: 0,
    };
    // SAFETY: `info` is a live, writable 8-byte object.
    let r = unsafe {
        raw::hypercall5(
            Hypercall::XEN_VERSION.0,
            XENVER_GET_FEATURES,
            &mut info as *mut _ as u64,
            0,
            0,
            0,
        )
    };
    Errno::from_return(r).map(|_| info.submap)
}

/// `xen_version(XENVER_pagesize, NULL)`: the page size (4096).
pub fn xen_pagesize() -> Result<u64, Errno> {
    Errno::from_return(hypercall_scalar(
        Hypercall::XEN_VERSION,
        [crate::version::XENVER_PAGESIZE, 0, 0, 0, 0],
    ))
}

/// `sched_op(SCHEDOP_yield)`.
pub fn sched_yield() -> Result<(), Errno> {
    Errno::from_return(hypercall_scalar(
        Hypercall::SCHED_OP,
        [SCHEDOP_YIELD, 0, 0, 0, 0],
    ))
    .map(|_| ())
}

/// `sched_op(SCHEDOP_shutdown, &{reason})`. Returns only if the hypervisor refused.
pub fn sched_shutdown(reason: u32) -> Errno {
    let arg = SchedShutdown { reason };
    // SAFETY: `arg` is a live 4-byte object the hypervisor only reads.
    let r = unsafe {
        raw::hypercall5(
            Hypercall::SCHED_OP.0,
            SCHEDOP_SHUTDOWN,
            &arg as *const _ as u64,
            0,
            0,
            0,
        )
    };
    match Errno::from_return(r) {
        Err(e) => e,
        Ok(_) => Errno::EINVAL,
    }
}

// ---------------------------------------------------------------------------
// Events, time and timers (since 1.0).

use crate::event::{
    EvtchnAllocUnbound, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq, EvtchnPort, EvtchnStatus,
    XenHvmParam, DOMID_SELF, EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VCPU,
    EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_STATUS, EVTCHNOP_UNMASK,
    HVMOP_SET_PARAM, HVM_PARAM_CALLBACK_IRQ,
};
use crate::sched::{SchedPoll, SCHEDOP_BLOCK, SCHEDOP_POLL};
use crate::time::{
    VcpuSetPeriodicTimer, VcpuSetSingleshotTimer, VCPUOP_SET_PERIODIC_TIMER,
    VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER,
};

/// `hypercall(nr, a1, &mut arg)`: a hypercall whose second argument points at a
/// `#[repr(C)]` structure the hypervisor reads and may write back.
fn with_arg<T>(nr: Hypercall, a1: u64, arg: &mut T) -> Result<u64, Errno> {
    // SAFETY: `arg` is a live, writable object of the size the sub-command uses
    // (every `T` passed here is the `#[repr(C)]` Xen structure of `a1`).
    let r = unsafe { raw::hypercall5(nr.0, a1, arg as *mut T as u64, 0, 0, 0) };
    Errno::from_return(r)
}

/// `EVTCHNOP_alloc_unbound` for `DOMID_SELF`: a new unbound port.
pub fn evtchn_alloc_unbound() -> Result<u32, Errno> {
    let mut a = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: DOMID_SELF,
        port: 0,
    };
    with_arg(Hypercall::EVENT_CHANNEL_OP, EVTCHNOP_ALLOC_UNBOUND, &mut a).map(|_| a.port)
}

/// `EVTCHNOP_alloc_unbound` of a port of domain `dom` (not `DOMID_SELF`:
/// refused unless privileged) that `remote_dom` may bind.
pub fn evtchn_alloc_unbound_in(dom: u16, remote_dom: u16) -> Result<u32, Errno> {
    let mut a = EvtchnAllocUnbound {
        dom,
        remote_dom,
        port: 0,
    };
    with_arg(Hypercall::EVENT_CHANNEL_OP, EVTCHNOP_ALLOC_UNBOUND, &mut a).map(|_| a.port)
}

/// `EVTCHNOP_status` of port `port` of domain `dom`.
pub fn evtchn_status_of(dom: u16, port: u32) -> Result<EvtchnStatus, Errno> {
    let mut a = EvtchnStatus {
        dom,
        port,
        ..Default::default()
    };
    with_arg(Hypercall::EVENT_CHANNEL_OP, EVTCHNOP_STATUS, &mut a).map(|_| a)
}

/// `EVTCHNOP_bind_virq`.
pub fn evtchn_bind_virq(virq: u32, vcpu: u32) -> Result<u32, Errno> {
    let mut a = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    with_arg(Hypercall::EVENT_CHANNEL_OP, EVTCHNOP_BIND_VIRQ, &mut a).map(|_| a.port)
}

/// `EVTCHNOP_bind_ipi`.
pub fn evtchn_bind_ipi(vcpu: u32) -> Result<u32, Errno> {
    let mut a = EvtchnBindIpi { vcpu, port: 0 };
    with_arg(Hypercall::EVENT_CHANNEL_OP, EVTCHNOP_BIND_IPI, &mut a).map(|_| a.port)
}

fn evtchn_port_op(cmd: u64, port: u32) -> Result<(), Errno> {
    let mut a = EvtchnPort { port };
    with_arg(Hypercall::EVENT_CHANNEL_OP, cmd, &mut a).map(|_| ())
}

/// `EVTCHNOP_send`.
pub fn evtchn_send(port: u32) -> Result<(), Errno> {
    evtchn_port_op(EVTCHNOP_SEND, port)
}

/// `EVTCHNOP_close`.
pub fn evtchn_close(port: u32) -> Result<(), Errno> {
    evtchn_port_op(EVTCHNOP_CLOSE, port)
}

/// `EVTCHNOP_unmask`.
pub fn evtchn_unmask(port: u32) -> Result<(), Errno> {
    evtchn_port_op(EVTCHNOP_UNMASK, port)
}

/// `EVTCHNOP_status` of one of this domain's ports.
pub fn evtchn_status(port: u32) -> Result<EvtchnStatus, Errno> {
    let mut a = EvtchnStatus {
        dom: DOMID_SELF,
        port,
        ..Default::default()
    };
    with_arg(Hypercall::EVENT_CHANNEL_OP, EVTCHNOP_STATUS, &mut a).map(|_| a)
}

/// `EVTCHNOP_bind_vcpu`.
pub fn evtchn_bind_vcpu(port: u32, vcpu: u32) -> Result<(), Errno> {
    let mut a = EvtchnBindVcpu { port, vcpu };
    with_arg(Hypercall::EVENT_CHANNEL_OP, EVTCHNOP_BIND_VCPU, &mut a).map(|_| ())
}

/// `HVMOP_set_param(HVM_PARAM_CALLBACK_IRQ, value)` for this domain
/// (`event::callback_vector(v)`, or 0 to turn upcalls off).
pub fn hvm_set_callback_irq(value: u64) -> Result<(), Errno> {
    let mut a = XenHvmParam {
        domid: DOMID_SELF,
        index: HVM_PARAM_CALLBACK_IRQ,
        value,
    };
    with_arg(Hypercall::HVM_OP, HVMOP_SET_PARAM, &mut a).map(|_| ())
}

/// `SCHEDOP_block`: enable events and sleep until one needs delivery.
pub fn sched_block() -> Result<(), Errno> {
    Errno::from_return(hypercall_scalar(
        Hypercall::SCHED_OP,
        [SCHEDOP_BLOCK, 0, 0, 0, 0],
    ))
    .map(|_| ())
}

/// `SCHEDOP_poll` on `ports` until one is pending or system time `timeout_ns`
/// (0: none).
pub fn sched_poll(ports: &[u32], timeout_ns: u64) -> Result<(), Errno> {
    let mut a = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        timeout: timeout_ns,
    };
    with_arg(Hypercall::SCHED_OP, SCHEDOP_POLL, &mut a).map(|_| ())
}

/// `set_timer_op(deadline_ns)` (0 stops the single-shot timer).
pub fn set_timer_op(deadline_ns: u64) -> Result<(), Errno> {
    Errno::from_return(hypercall_scalar(
        Hypercall::SET_TIMER_OP,
        [deadline_ns, 0, 0, 0, 0],
    ))
    .map(|_| ())
}

fn vcpu_op<T>(cmd: u64, arg: Option<&mut T>) -> Result<(), Errno> {
    let p = arg.map_or(0, |a| a as *mut T as u64);
    // SAFETY: `p` is NULL or a live, correctly sized object for `cmd`.
    let r = unsafe { raw::hypercall5(Hypercall::VCPU_OP.0, cmd, 0, p, 0, 0) };
    Errno::from_return(r).map(|_| ())
}

/// `VCPUOP_set_singleshot_timer` for vCPU 0.
pub fn vcpu_set_singleshot_timer(deadline_ns: u64, flags: u32) -> Result<(), Errno> {
    let mut a = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags,
    };
    vcpu_op(VCPUOP_SET_SINGLESHOT_TIMER, Some(&mut a))
}

/// `VCPUOP_stop_singleshot_timer` for vCPU 0.
pub fn vcpu_stop_singleshot_timer() -> Result<(), Errno> {
    vcpu_op::<u64>(VCPUOP_STOP_SINGLESHOT_TIMER, None)
}

/// `VCPUOP_set_periodic_timer` for vCPU 0.
pub fn vcpu_set_periodic_timer(period_ns: u64) -> Result<(), Errno> {
    let mut a = VcpuSetPeriodicTimer { period_ns };
    vcpu_op(VCPUOP_SET_PERIODIC_TIMER, Some(&mut a))
}

/// `VCPUOP_stop_periodic_timer` for vCPU 0.
pub fn vcpu_stop_periodic_timer() -> Result<(), Errno> {
    vcpu_op::<u64>(VCPUOP_STOP_PERIODIC_TIMER, None)
}

/// `vcpu_op(cmd, vcpu, arg)` with a raw argument pointer (0: none): the vCPU
/// operations of ABI 1.2 (`crate::vcpu`). Returns the hypercall's value (the
/// answer of `VCPUOP_is_up`) or its error.
pub fn vcpu_op_raw(cmd: u64, vcpu: u64, arg: u64) -> Result<u64, Errno> {
    // SAFETY: `arg` is a pointer the caller passes as an integer; the
    // hypervisor checks every access through it (copy checks), and the guest
    // dereferences nothing here.
    let r = unsafe { raw::hypercall5(Hypercall::VCPU_OP.0, cmd, vcpu, arg, 0, 0) };
    Errno::from_return(r)
}

/// `VCPUOP_get_runstate_info` for `vcpu` (ABI 1.2).
pub fn vcpu_runstate(vcpu: u64) -> Result<crate::vcpu::VcpuRunstateInfo, Errno> {
    let mut a = crate::vcpu::VcpuRunstateInfo::default();
    vcpu_op_raw(
        crate::vcpu::VCPUOP_GET_RUNSTATE_INFO,
        vcpu,
        &mut a as *mut _ as u64,
    )?;
    Ok(a)
}

/// `VCPUOP_register_vcpu_info` for `vcpu`: its `vcpu_info` at `offset` in frame
/// `mfn` (ABI 1.2).
pub fn vcpu_register_vcpu_info(vcpu: u64, mfn: u64, offset: u32) -> Result<(), Errno> {
    let mut a = crate::vcpu::VcpuRegisterVcpuInfo {
        mfn,
        offset,
        rsvd: 0,
    };
    vcpu_op_raw(
        crate::vcpu::VCPUOP_REGISTER_VCPU_INFO,
        vcpu,
        &mut a as *mut _ as u64,
    )
    .map(|_| ())
}

/// `mmu_update(reqs, count, &done, DOMID_SELF)`: apply `reqs` in order
/// (`docs/abi/mmu.md`). Returns the number done and the result: `Ok(())` when all
/// were applied, otherwise the error of the first refused one.
pub fn mmu_update(reqs: &[crate::mmu::MmuUpdate]) -> (u32, Result<(), Errno>) {
    batch(Hypercall::MMU_UPDATE, reqs)
}

/// `mmuext_op(ops, count, &done, DOMID_SELF)`: pin, unpin, switch base, flush.
/// Returns the number done and the result, as [`mmu_update`].
/// The multi-vCPU flush forms point `arg2` at a bitmap the caller keeps alive
/// (the hypervisor checks that pointer like any other).
pub fn mmuext_op(ops: &[crate::mmu::MmuextOp]) -> (u32, Result<(), Errno>) {
    batch(Hypercall::MMUEXT_OP, ops)
}

/// The shared shape of the two batched MMU hypercalls: `(items, count, &done,
/// DOMID_SELF)`, returning how many were done and the first error.
fn batch<T>(nr: Hypercall, items: &[T]) -> (u32, Result<(), Errno>) {
    let mut done: u32 = 0;
    // SAFETY: `items` is a live array of `#[repr(C)]` requests the hypervisor only
    // reads; `done` is a live u32 it writes.
    let r = unsafe {
        raw::hypercall5(
            nr.0,
            items.as_ptr() as u64,
            items.len() as u64,
            &mut done as *mut u32 as u64,
            crate::mmu::DOMID_SELF,
            0,
        )
    };
    (done, Errno::from_return(r).map(|_| ()))
}

/// One `mmuext_op` with a frame argument (`MMUEXT_PIN_L*_TABLE`,
/// `MMUEXT_UNPIN_TABLE`, `MMUEXT_NEW_BASEPTR`).
pub fn mmuext_mfn(cmd: u32, mfn: crate::addr::Mfn) -> Result<(), Errno> {
    mmuext_op(&[crate::mmu::MmuextOp {
        cmd,
        pad: 0,
        arg1: mfn.get(),
        arg2: 0,
    }])
    .1
}

/// `multicall(calls, n)`: each entry's `result` is filled in.
pub fn multicall(calls: &mut [crate::mmu::MulticallEntry]) -> Result<(), Errno> {
    // SAFETY: `calls` is a live, writable array of `#[repr(C)]` entries; the
    // hypervisor validates the pointers inside each call.
    let r = unsafe {
        raw::hypercall5(
            Hypercall::MULTICALL.0,
            calls.as_mut_ptr() as u64,
            calls.len() as u64,
            0,
            0,
            0,
        )
    };
    Errno::from_return(r).map(|_| ())
}

// ---------------------------------------------------------------------------
// Several domains (ABI 1.1): a hypervisor older than 1.1 answers each of these
// `-ENOSYS` (detect with that, as for every newer interface).

use crate::domctl::XenDomctl;
use crate::event::{EvtchnBindInterdomain, EVTCHNOP_BIND_INTERDOMAIN};
use crate::grant_table::{
    GnttabCopy, GnttabMapGrantRef, GnttabQuerySize, GnttabSetupTable, GnttabUnmapGrantRef,
    GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE,
    GNTTABOP_UNMAP_GRANT_REF,
};

/// `EVTCHNOP_alloc_unbound` for `DOMID_SELF`: a new port only `remote_dom` may bind.
pub fn evtchn_alloc_unbound_for(remote_dom: u16) -> Result<u32, Errno> {
    let mut a = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom,
        port: 0,
    };
    with_arg(Hypercall::EVENT_CHANNEL_OP, EVTCHNOP_ALLOC_UNBOUND, &mut a).map(|_| a.port)
}

/// `EVTCHNOP_bind_interdomain`: a new port connected to `remote_port` of
/// `remote_dom` (which allocated it unbound for this domain).
pub fn evtchn_bind_interdomain(remote_dom: u16, remote_port: u32) -> Result<u32, Errno> {
    let mut a = EvtchnBindInterdomain {
        remote_dom,
        remote_port,
        local_port: 0,
    };
    with_arg(
        Hypercall::EVENT_CHANNEL_OP,
        EVTCHNOP_BIND_INTERDOMAIN,
        &mut a,
    )
    .map(|_| a.local_port)
}

/// `grant_table_op(cmd, ops, ops.len())`: each operation's `status` is filled in.
fn grant_table_op<T>(cmd: u64, ops: &mut [T]) -> Result<(), Errno> {
    // SAFETY: `ops` is a live, writable array of the `#[repr(C)]` structure of
    // `cmd`; the hypervisor checks every pointer inside them.
    let r = unsafe {
        raw::hypercall5(
            Hypercall::GRANT_TABLE_OP.0,
            cmd,
            ops.as_mut_ptr() as u64,
            ops.len() as u64,
            0,
            0,
        )
    };
    Errno::from_return(r).map(|_| ())
}

/// `GNTTABOP_setup_table` for this domain: grow the table to `frames.len()`
/// frames and list their machine frames in `frames`. The result is the
/// operation's `GNTST_*` status.
pub fn gnttab_setup_table(frames: &mut [u64]) -> Result<i16, Errno> {
    let mut op = [GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: frames.len() as u32,
        status: 0,
        frame_list: frames.as_mut_ptr() as u64,
    }];
    grant_table_op(GNTTABOP_SETUP_TABLE, &mut op).map(|_| op[0].status)
}

/// `GNTTABOP_query_size` for this domain.
pub fn gnttab_query_size() -> Result<GnttabQuerySize, Errno> {
    let mut op = [GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    }];
    grant_table_op(GNTTABOP_QUERY_SIZE, &mut op).map(|_| op[0])
}

/// `GNTTABOP_map_grant_ref` for a batch; each `status` and `handle` is filled in.
pub fn gnttab_map(ops: &mut [GnttabMapGrantRef]) -> Result<(), Errno> {
    grant_table_op(GNTTABOP_MAP_GRANT_REF, ops)
}

/// `GNTTABOP_unmap_grant_ref` for a batch; each `status` is filled in.
pub fn gnttab_unmap(ops: &mut [GnttabUnmapGrantRef]) -> Result<(), Errno> {
    grant_table_op(GNTTABOP_UNMAP_GRANT_REF, ops)
}

/// `GNTTABOP_copy` for a batch; each `status` is filled in.
pub fn gnttab_copy(ops: &mut [GnttabCopy]) -> Result<(), Errno> {
    grant_table_op(GNTTABOP_COPY, ops)
}

/// `domctl(op)` (the control domain only).
pub fn domctl(op: &mut XenDomctl) -> Result<(), Errno> {
    // SAFETY: `op` is a live, writable envelope; the hypervisor writes at most
    // its size.
    let r =
        unsafe { raw::hypercall5(Hypercall::DOMCTL.0, op as *mut XenDomctl as u64, 0, 0, 0, 0) };
    Errno::from_return(r).map(|_| ())
}
