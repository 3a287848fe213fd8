//! `sched_op`: yield and shutdown (block and poll are with the events).

use super::{Ctx, HcResult, HypercallArgs, Outcome};
use crate::addr::GuestVirt;
use crate::mem::PhysMem;
use keel_abi::sched::{shutdown_reason_name, SchedShutdown};
use keel_abi::Errno;

/// Give the rest of the slice to the other domains (the run loop's
/// scheduler); alone on the CPU, the vCPU continues at once.
pub(super) fn yield_now<M: PhysMem>(_: &mut Ctx<'_, M>, _: &HypercallArgs) -> HcResult {
    Ok(Outcome::Yield)
}

/// End the domain with a known `SHUTDOWN_*` reason.
#[inline(never)]
pub(super) fn shutdown<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let reason = SchedShutdown::decode(&ctx.read(GuestVirt::new(a.args[1]))?).reason;
    if shutdown_reason_name(reason).is_none() {
        return Err(Errno::EINVAL);
    }
    // The guest's last words must not be lost in the line buffer.
    ctx.dom.console_flush(ctx.console);
    Ok(Outcome::Shutdown(reason))
}
