//! `multicall`: a batch of hypercalls in one exit, bounded per exit like the
//! MMU batches ([`crate::preempt`]).

use super::mmu::{completed, tsc};
use super::{dispatch, events, Ctx, HcResult, HypercallArgs, Outcome};
use crate::addr::GuestVirt;
use crate::mem::PhysMem;
use crate::paging::guest_mem;
use crate::preempt::Progress;
use keel_abi::hypercall::Hypercall;
use keel_abi::mmu::MulticallEntry;
use keel_abi::Errno;

/// `multicall(calls, nr_calls)`: each entry dispatched in order, its result
/// written back; preempted between entries (or inside a preempted entry).
#[inline(never)]
pub(super) fn multicall<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let list = a.args[0];
    let p = Progress::decode(a.args[1], true)?;
    let fail = |e: Errno| Ok(completed(a.args[1], p.count, e.as_return()));
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
            return Ok(Outcome::Preempted(left.encode()));
        }
        ctx.work.charge(1);
        let va = GuestVirt::new(list.wrapping_add(i.wrapping_mul(MulticallEntry::SIZE as u64)));
        let e = match reader.read(ctx.dom, ctx.mem, va) {
            Ok(b) => MulticallEntry::decode(&b),
            Err(e) => return fail(e),
        };
        let at = GuestVirt::new(va.get().wrapping_add(MulticallEntry::RESULT_OFFSET));
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
                // The entry was preempted part way: its progress word, in
                // its count argument.
                if e.op == Hypercall::GRANT_TABLE_OP.0 {
                    args.args[2] = e.result;
                } else {
                    args.args[1] = e.result;
                }
            }
            // A blocking call is refused below, and a refused call changes
            // nothing: SCHEDOP_block's unmasking is undone.
            let mask = if e.op == Hypercall::SCHED_OP.0 {
                events::upcall_mask(ctx)
            } else {
                None
            };
            let out = dispatch(ctx, &args);
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
                Outcome::Resumed { ret, .. } | Outcome::ResumedRdx { ret, .. } => i64::from(ret),
                // A yield inside a batch is a no-op: the batch goes on.
                Outcome::Yield => 0,
                Outcome::Shutdown(r) => return Ok(Outcome::Shutdown(r)),
                // A batch cannot sleep half-way: blocking calls in a multicall
                // are refused (their state is undone).
                Outcome::Block => {
                    events::refuse_block(ctx, mask);
                    Errno::EINVAL.as_return()
                }
                // The entry's own progress goes where its result will be
                // (the guest's list is not otherwise changed), and this call
                // resumes inside it.
                Outcome::Preempted(word) | Outcome::PreemptedRdx(word) => {
                    if let Err(e) = writer.write(ctx.dom, ctx.mem, at, &word.to_le_bytes()) {
                        return fail(e);
                    }
                    let left = Progress {
                        count: p.count,
                        done: i as u32,
                        in_entry: true,
                    };
                    return Ok(Outcome::Preempted(left.encode()));
                }
            }
        };
        if let Err(e) = writer.write(ctx.dom, ctx.mem, at, &result.to_le_bytes()) {
            return fail(e);
        }
    }
    Ok(completed(a.args[1], p.count, 0))
}
