//! `vcpu_op`'s vCPU operations (ABI 1.2, in progress): initialise, up, down,
//! is_up, get_runstate_info, register_vcpu_info, on the domain's vCPU table
//! ([`crate::domain::vcpus`], where the policy and its tests are).
//!
//! Served to a domain whose image declares 1.2 (`Domain::serves`); every other
//! gets `-ENOSYS`, as the versions it knows promise. The vCPU number is the
//! second argument (RSI), compared in full: past the domain's count it is
//! `-ENOENT`, before anything else, as Xen checks it.

use super::{Ctx, HcResult, HypercallArgs, Outcome};
use crate::addr::GuestVirt;
use crate::addr::MachineAddr;
use crate::domain::vcpus::{check_context, Down, Power};
use crate::event::on_page;
use crate::event::shared::VCPU_INFO_SIZE;
use crate::event::SharedPage;
use crate::mem::PhysMem;
use keel_abi::event::Pod;
use keel_abi::sched::SHUTDOWN_POWEROFF;
use keel_abi::time::offsets;
use keel_abi::vcpu::{VcpuGuestContext, VcpuRegisterVcpuInfo, VcpuRunstateInfo};
use keel_abi::Errno;

use crate::domain::vcpus::SINCE;

/// The vCPU number of the call, checked against the domain's count.
fn vcpu_id<M: PhysMem>(ctx: &Ctx<'_, M>, a: &HypercallArgs) -> Result<u64, Errno> {
    if !ctx.dom.serves(SINCE) {
        return Err(Errno::ENOSYS);
    }
    let id = a.args[1];
    ctx.dom.vcpus.get(id)?;
    Ok(id)
}

/// `VCPUOP_initialise`: `-ENOENT`, `-EFAULT` (the context unreadable),
/// `-EEXIST`, `-EINVAL` (`domain::vcpus::check_context`, or a CR3 whose type
/// reference cannot be taken: not pinned). The vCPU's root takes its type
/// reference here, as Xen's `arch_set_info_guest` does, and keeps it until
/// the domain's teardown.
#[inline(never)]
pub(super) fn initialise<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let id = vcpu_id(ctx, a)?;
    let mut b = [0u8; VcpuGuestContext::SIZE];
    ctx.copy_from(GuestVirt::new(a.args[2]), &mut b)?;
    let c = VcpuGuestContext::decode(&b);
    // The table's own order (-EEXIST before -EINVAL), then the root's
    // reference, then the table: a refusal changes nothing.
    if id == 0 || ctx.dom.vcpus.get(id)?.power != Power::Offline {
        return Err(Errno::EEXIST);
    }
    let start = {
        let (_, frames) = ctx.dom.vcpus_and_frames(&*ctx.mem);
        check_context(&c, frames)?
    };
    ctx.dom.set_vcpu_base(&mut *ctx.mem, id as u32, start.cr3)?;
    let (vcpus, frames) = ctx.dom.vcpus_and_frames(&*ctx.mem);
    vcpus.initialise(id, &c, frames)?;
    Ok(Outcome::Return(0))
}

/// `VCPUOP_up`: `-ENOENT`, `-EINVAL` (never initialised), `-ENOMEM` (the
/// domain's CPU holds no place for it: `VcpuTable::up`), each changing
/// nothing; 0, the caller yielding so that the run loop starts the vCPU in
/// the place held for it.
#[inline(never)]
pub(super) fn up<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let id = vcpu_id(ctx, a)?;
    let now = ctx.tsc();
    let was_up = ctx.dom.vcpus.is_up(id)?;
    ctx.dom.vcpus.up(id, now)?;
    // The run loop starts it (a VMCS, a scheduler slot) when the caller
    // leaves: the caller yields (0 in RAX), as if its slice ended.
    Ok(if was_up {
        Outcome::Return(0)
    } else {
        Outcome::Yield
    })
}

/// `VCPUOP_down`: `-ENOENT`; the last vCPU up powers the domain off.
#[inline(never)]
pub(super) fn down<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let id = vcpu_id(ctx, a)?;
    let now = ctx.tsc();
    let was_up = ctx.dom.vcpus.is_up(id)?;
    match ctx.dom.vcpus.down(id, now)? {
        // The run loop takes it off the scheduler when the caller leaves
        // (at once: it yields, 0 in RAX), the caller itself included.
        Down::Stopped if was_up => Ok(Outcome::Yield),
        Down::Stopped => Ok(Outcome::Return(0)),
        Down::PowerOff => {
            // As `SCHEDOP_shutdown`: the last words first.
            ctx.dom.console_flush(ctx.console);
            Ok(Outcome::Shutdown(SHUTDOWN_POWEROFF))
        }
    }
}

/// `VCPUOP_is_up`: 1 or 0; `-ENOENT`.
#[inline(never)]
pub(super) fn is_up<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let id = vcpu_id(ctx, a)?;
    Ok(Outcome::Return(i64::from(ctx.dom.vcpus.is_up(id)?)))
}

/// `VCPUOP_get_runstate_info`: the record written at the pointer; `-ENOENT`,
/// `-EFAULT`.
#[inline(never)]
pub(super) fn get_runstate_info<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let id = vcpu_id(ctx, a)?;
    // Kept in TSC ticks (`domain::vcpus`): in nanoseconds for the guest.
    let ticks = ctx.dom.vcpus.runstate(id, ctx.tsc())?;
    let clock = &ctx.ev.clock;
    let info = VcpuRunstateInfo {
        state: ticks.state,
        state_entry_time: clock.ns_at(ticks.state_entry_time),
        time: ticks.time.map(|t| clock.scale.ticks_to_ns(t)),
    };
    let mut b = [0u8; VcpuRunstateInfo::SIZE];
    info.encode(&mut b);
    ctx.copy_to(GuestVirt::new(a.args[2]), &b)?;
    Ok(Outcome::Return(0))
}

/// `VCPUOP_register_vcpu_info`: `-ENOENT`, `-EFAULT`, `-ENXIO`, `-EINVAL`
/// (`VcpuTable::register_vcpu_info`). The record moves: its contents are
/// copied to the new place, every selector bit and the upcall flag are set
/// there (the guest rescans; nothing pending is lost) and the pvclock is
/// published there; from then on events and time go only there. Another
/// vCPU's record (one not up) moves from its entry of `shared_info`.
#[inline(never)]
pub(super) fn register_vcpu_info<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let id = vcpu_id(ctx, a)?;
    let mut b = [0u8; VcpuRegisterVcpuInfo::SIZE];
    ctx.copy_from(GuestVirt::new(a.args[2]), &mut b)?;
    let req = VcpuRegisterVcpuInfo::decode(&b);
    // The record as it is now (Xen: the dummy record, masked, when the vCPU
    // had none; a Keel vCPU always has shared_info's unless the domain has no
    // shared page).
    let old = ctx
        .ev
        .page(&*ctx.dom, &mut *ctx.mem)
        .map(|p| on_page!(p, |p| p.vcpu_info()));
    // The caller is the loaded vCPU (a domain's vCPUs share its CPU).
    let caller = u64::from(ctx.ev.vcpu);
    let (vcpus, frames) = ctx.dom.vcpus_and_frames(&*ctx.mem);
    let place = vcpus.register_vcpu_info(id, caller, &req, frames)?;
    if id != caller {
        // Another vCPU, not up: its record moves from its entry of
        // shared_info (it had no other place) in the same way.
        if let Some(shared) = ctx.ev.shared {
            let entry = shared.addr().get() + offsets::vcpu_info(id as usize) as u64;
            let to = MachineAddr::new(place.mfn.addr().get() + place.offset);
            let mut moved = [0u8; VCPU_INFO_SIZE];
            ctx.mem.read(MachineAddr::new(entry), &mut moved);
            ctx.mem.write(to, &moved);
            let rec = ctx.ev.clock.time_info();
            let mut page = SharedPage::with_vcpu_info(&mut *ctx.mem, shared, to);
            page.mark_all_pending();
            page.publish_time(&rec);
        }
    } else {
        ctx.ev.place_vcpu_info(place);
        let rec = ctx.ev.clock.time_info();
        if let Some(page) = ctx.ev.page(&*ctx.dom, &mut *ctx.mem) {
            let mut moved = old.unwrap_or([0; VCPU_INFO_SIZE]);
            if old.is_none() {
                moved[1] = 1;
            }
            on_page!(page, |page| {
                page.set_vcpu_info(&moved);
                page.mark_all_pending();
                page.publish_time(&rec);
            });
        }
    }
    Ok(Outcome::Return(0))
}
