//! # A vCPU on another CPU than its domain's: a *visitor*
//!
//! A domain lives on its home CPU: its record, its one [`Vcpu`] (the state
//! of whichever of its vCPUs is loaded there, `&mut Domain` included) and
//! its scheduler slots are that CPU's run loop's. A vCPU placed on another
//! CPU (`keel.vcpu_cpus=`, `crate::smp::remote`) runs there in guest mode,
//! with a VMCS made and kept on that CPU, while everything it shares with
//! its domain stays home. Read in this order:
//!
//! 1. **Its start.** The home CPU sees it up (`sync_vcpus`) and asks its
//!    CPU ([`remote::request_up`]); that CPU, at the top of its run loop,
//!    makes its VMCS in frames of its own, with the home CPU's view lent
//!    ([`start`]), and gives it a scheduler slot of its own.
//! 2. **Each of its exits** is one cross-CPU operation ([`op`]): with the
//!    home CPU's view lent, and every other CPU's for an exit that may
//!    reach other CPUs' domains ([`Reach`]; `vmx::lend`: they stand still,
//!    guests included), its CPU takes the domain's `Vcpu` out of the home view,
//!    installs the visitor in it (`Vcpu::swap_visitor`: its own state and
//!    its run's trade places with the loaded vCPU's), handles the exit
//!    against its own current VMCS, takes the visitor out again and puts
//!    the `Vcpu` back. So no state is ever reached by two CPUs at once, and
//!    every exit path is the one-CPU code. The price: a stop-the-world per
//!    exit of a visitor. Two kinds of exit are finished on its CPU alone:
//!    another CPU's wake-up IPI (`Visitor::wake_ipi_exit`), and an exit
//!    that needs only the vCPU's own state and its domain's built facts
//!    (`Visitor::own_exit`: CPUID, the constant `xen_version` calls).
//! 3. **Wake-ups** of a visitor go to its CPU through a request
//!    ([`remote::request_wake`]) and an IPI, from wherever they are decided.
//!    A visitor in its guest takes its own in the IPI's exit
//!    ([`remote::take_wake_running`]), which is then made an operation:
//!    its `before_entry` delivers the event that woke it, and its run goes
//!    on (or ends, if the wake said it is down). Any other wake is its
//!    CPU's run loop's: its scheduler makes the vCPU runnable.
//! 4. **TLB shootdown.** A change to the domain's page tables that owes a
//!    flush counts in the domain's flush epoch ([`remote::flushed`]). An
//!    operation that lent only the home CPU asks the domain's other CPUs
//!    before it ends (`lend::Lent::ask`); a CPU that made the change in an
//!    exit of its own (not in an operation) runs an empty cross-CPU
//!    operation over the domain's other CPUs before its vCPU runs on
//!    (`smp::tlb::shootdown`: placement is pinned, so no other CPU can hold
//!    the domain's translations): each leaves its guest, and, before entering
//!    one of the domain's vCPUs again, compares the epoch with the one it
//!    last flushed at and flushes that vCPU's VPID. Nothing of the domain's
//!    runs with a translation older than the change once the operation that
//!    made it returns.
//! 5. **Its end.** A visitor that ends its domain asks the home CPU to end
//!    it ([`remote::request_end`]); a domain that ended (either way) is
//!    dead ([`remote::set_dead`]), and the visitor's CPU drops it: VMCLEAR,
//!    frames back ([`drop_visitor`]). The domain's teardown waits for that
//!    ([`remote::any_held`]): no frame of it is scrubbed while a CPU may
//!    still run one of its vCPUs.

use super::*;
use crate::smp::{remote, tlb};

/// The visitors one CPU runs at most.
pub(super) const VISITORS: usize = 8;

/// A remote vCPU as the CPU that runs it keeps it.
pub(super) struct Visiting {
    d: DomainId,
    v: u32,
    vf: VmcsFrames,
    gprs: GuestGprs,
    launched: bool,
    switched: Option<SwitchedState>,
    vis: Visitor,
    /// The domain's flush epoch this CPU last flushed the visitor's VPID at.
    seen: u64,
    nx: bool,
}

impl Visiting {
    /// Its scheduler slot.
    pub(super) fn slot(&self) -> Option<DomainId> {
        Slots::slot(self.d, self.v)
    }

    /// Of vCPU `v` of `d`.
    pub(super) fn is(&self, d: DomainId, v: u32) -> bool {
        self.d == d && self.v == v
    }

    pub(super) fn domain(&self) -> DomainId {
        self.d
    }
}

/// The domain's vCPUs that are up, as bits.
fn up_mask(dom: &Domain) -> u8 {
    (0..u32::from(dom.vcpus.count()))
        .filter(|&v| dom.vcpus.up_at(v))
        .fold(0u8, |m, v| m | (1 << v))
}

/// Leave domain `d`'s slot out of `on` (its second hole, `OnCpu::hole`)
/// and return it: the rest of `on` stays reachable beside it (the
/// operation's `Cluster`), and the slot is not moved (a `Guest` is about
/// 15 KiB). [`uncarve`] puts it back.
fn carve<'w, 'a, M: PhysMem, C: Console>(
    on: &mut OnCpu<'w, 'a, M, C>,
    d: DomainId,
) -> Option<&'w mut Option<Guest<'a, M, C>>> {
    let i = on.index(d)?;
    if on.hole != NO_HOLE || i == on.skip {
        return None;
    }
    let (part, at) = if i < on.skip {
        (core::mem::take(&mut on.before), i)
    } else {
        (core::mem::take(&mut on.after), i - on.skip - 1)
    };
    if at >= part.len() {
        // Not a slot of this CPU's table: put the part back untouched.
        if i < on.skip {
            on.before = part;
        } else {
            on.after = part;
        }
        return None;
    }
    let (head, rest) = part.split_at_mut(at);
    let (slot, tail) = rest.split_first_mut()?;
    if i < on.skip {
        on.before = head;
    } else {
        on.after = head;
    }
    on.split = tail;
    on.hole = i;
    Some(slot)
}

/// Put back the slot [`carve`] left out of `on`.
#[allow(unsafe_code)]
fn uncarve<'w, 'a, M: PhysMem, C: Console>(
    on: &mut OnCpu<'w, 'a, M, C>,
    slot: &'w mut Option<Guest<'a, M, C>>,
) {
    let below = on.hole < on.skip;
    let head = if below {
        core::mem::take(&mut on.before)
    } else {
        core::mem::take(&mut on.after)
    };
    let tail = core::mem::take(&mut on.split);
    let len = head.len() + 1 + tail.len();
    debug_assert!(core::ptr::eq(head.as_ptr().wrapping_add(head.len()), slot));
    // SAFETY: `head`, `slot` and `tail` are the three consecutive parts
    // `carve` split one slice of `on` into (`split_at_mut`, then
    // `split_first_mut`), each a `&'w mut` taken out of `on` and consumed
    // here: the slice they make again is borrowed by nothing else, for the
    // lifetime `'w` the original had.
    let whole = unsafe { core::slice::from_raw_parts_mut(head.as_mut_ptr(), len) };
    let _ = slot;
    if below {
        on.before = whole;
    } else {
        on.after = whole;
    }
    on.hole = NO_HOLE;
}

/// Which CPUs an operation of a visitor stops ([`op`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reach {
    /// Only the domain's CPU: the exit reaches nothing but the domain and
    /// the domains of that CPU (every exit but a VMCALL of
    /// `reaches_peers`, and an event-channel operation of a domain whose
    /// channels all lead there). Should it owe the domain a TLB flush, the
    /// domain's other CPUs are asked too before the operation ends (its
    /// vCPUs there may hold the old translation).
    Home,
    /// Every CPU: the exit may reach other domains.
    All,
}

/// The [`Reach`] of an exit of `reason` of a visitor of `d`, with `gprs`:
/// a VMCALL that may reach other domains reaches every CPU, unless it is an
/// event-channel operation whose domains are all at home
/// (`super::spread_events_at_home`).
fn reach_of(reason: ExitReason, gprs: &GuestGprs, d: DomainId) -> Reach {
    if reason != ExitReason::VMCALL || !super::reaches_peers(gprs.rax) {
        return Reach::Home;
    }
    match cpu_of(d) {
        Some(home) if super::spread_events_at_home(d, home, gprs.rax, gprs.rdi) => Reach::Home,
        _ => Reach::All,
    }
}

/// Run `f` on the domain's `Vcpu` with visitor `x` installed (module doc,
/// step 2), on this CPU `me` whose own domains are `on`, the CPUs `reach`
/// names lent. `rearm`: the visitor's run ends by then (its CPU has work).
/// `None` if the domain is not there to visit (ended, ending, or its CPU
/// runs no domains any more). A change of which of the domain's vCPUs are
/// up is sent home (`sync_vcpus` runs there).
pub(super) fn op<'r, 'a, M: PhysMem, C: Console, R>(
    me: usize,
    on: &mut OnCpu<'r, 'a, M, C>,
    x: &mut Visiting,
    rearm: Option<u64>,
    reach: Reach,
    f: impl FnOnce(&mut Vcpu<'a, M, C>, &mut dyn Peers) -> R,
) -> Option<R> {
    let d = x.d;
    let home = cpu_of(d)?;
    if remote::dead(d) {
        return None;
    }
    let mask = match reach {
        Reach::Home => 1 << home,
        Reach::All => u32::MAX,
    };
    let mut view = CpuView { on, running: None };
    let (r, changed) = lend::cross_some(me, &mut view, mask, |own, lent| {
        let epoch = remote::flush_epoch(d);
        // Before the domain is carved out of its view (its posts reach it
        // there), and before the exit can change a binding.
        super::take_all_posted(me, own, lent);
        let hv = lent.get_mut(home)?;
        // The domain's `Vcpu`: the one its CPU was running when it lent, or
        // the one in its slot (carved out, so the rest stays reachable).
        let mut running = None;
        let mut slot = None;
        if hv.running(d).is_some() {
            running = hv.running.take();
        } else {
            let s = carve(&mut *hv.on, d)?;
            if !matches!(s, Some(g) if g.dying.is_none()) {
                uncarve(&mut *hv.on, s);
                return None;
            }
            slot = Some(s);
        }
        let vcpu: &mut Vcpu<'a, M, C> = match (&mut running, &mut slot) {
            (Some(v), _) => v,
            (None, Some(Some(g))) => &mut g.vcpu,
            _ => return None,
        };
        let before = up_mask(vcpu.domain());
        vcpu.swap_visitor(&mut x.vis);
        if let Some(until) = rearm {
            vcpu.end_slice_by(until);
        }
        let r = {
            let mut cl = Cluster {
                me,
                own: &mut *own.on,
                lent: &mut *lent,
            };
            f(vcpu, &mut cl)
        };
        vcpu.swap_visitor(&mut x.vis);
        let changed = up_mask(vcpu.domain()) != before;
        match lent.get_mut(home) {
            Some(hv) => {
                if running.is_some() {
                    hv.running = running;
                }
                if let Some(s) = slot {
                    uncarve(&mut *hv.on, s);
                }
            }
            // The view was lent for the whole operation: it is still there.
            None => log::error!("vmx: CPU {home}'s view went away during an operation"),
        }
        // A flush owed to the domain reaches its vCPUs on the CPUs not
        // lent yet before anything of the domain runs again: each leaves
        // its guest now, and flushes before it enters one of them
        // (`catch_up`). Without this, the domain's CPU, given back, could
        // let another vCPU reuse the frame while one of them still held
        // a stale translation of it. The domain's CPUs only
        // (`smp::tlb::shootdown`); asking is a no-op for those lent.
        if remote::flush_epoch(d) != epoch {
            lent.ask(tlb::shootdown(remote::placed(d, home), me).mask32());
        }
        Some((r, changed))
    })?;
    if changed {
        remote::request_sync(d, home);
        lend::kick(home);
    }
    Some(r)
}

/// What the visitor's CPU does before entering it.
pub(super) enum Before {
    /// Enter it.
    Enter,
    /// It is down: off the scheduler.
    Down,
    /// It is blocked, until this deadline if any.
    Blocked(Option<u64>),
    /// Its domain is gone: drop it.
    Gone,
}

/// How a visitor's run ended, for its CPU's scheduler.
pub(super) enum After {
    /// Runnable (its slice ended, or nothing to say).
    Ran,
    Yielded,
    Blocked(Option<u64>),
    /// Its domain ended or is gone: drop it.
    Gone,
}

/// The TSC deadline of a slice that ends at `until` (none if unbounded).
fn slice(until: u64) -> Option<u64> {
    (until != UNBOUNDED).then_some(until)
}

/// Flush the visitor's VPID on this CPU if its domain was owed a flush
/// since this CPU last did (module doc, step 4).
fn catch_up(cpu: &VmxCpu, x: &mut Visiting) {
    if remote::flush_due(x.d, &mut x.seen) {
        flush_vpid(cpu, x.vis.vpid());
    }
}

/// Drop translations tagged `vpid` on this CPU, globals included.
pub(super) fn flush_vpid(cpu: &VmxCpu, vpid: u16) {
    if !cpu.controls.vpid {
        return;
    }
    let ty = if cpu.caps.ept_vpid.invvpid_single_context() {
        InvvpidType::SingleContext
    } else {
        InvvpidType::AllContext
    };
    if let Err(e) = invvpid(ty, vpid, 0) {
        log::error!("vmx: INVVPID of a remote vCPU failed: {e}");
    }
}

/// One run of visitor `x` on this CPU, until `until` (module doc).
#[allow(clippy::too_many_arguments)]
pub(super) fn run<'r, 'a, M: PhysMem, C: Console>(
    cpu: &VmxCpu,
    pc: &PerCpu,
    on: &mut OnCpu<'r, 'a, M, C>,
    x: &mut Visiting,
    until: u64,
    frames: &mut impl FrameSource,
) -> (Before, After) {
    let me = pc.index();
    if make_current(pc, x.vf.vmcs).is_err() {
        log::error!("vmx: VMPTRLD of a remote vCPU's VMCS failed");
        return (Before::Gone, After::Gone);
    }
    let v = x.v;
    let now = timer::rdtsc();
    let before = op(me, on, x, None, Reach::Home, |vcpu, _| {
        if !vcpu.domain().vcpus.up_at(v) {
            return Before::Down;
        }
        if vcpu.is_blocked() {
            if vcpu.poll_wake(now) {
                vcpu.woken();
            } else {
                return Before::Blocked(vcpu.wake_deadline());
            }
        }
        vcpu.publish_time();
        vcpu.resume_with_slice(slice(until));
        Before::Enter
    })
    .unwrap_or(Before::Gone);
    if !matches!(before, Before::Enter) {
        return (before, After::Ran);
    }
    catch_up(cpu, x);
    if let Some(s) = &x.switched {
        s.restore();
        if !cpu.controls.load_efer {
            host_efer_for_guest(x.nx);
        }
    }
    let leave = {
        let (gprs, launched) = (x.gprs, x.launched);
        let mut env = RemoteRun {
            cpu,
            me,
            peers: &mut *on,
            x: &mut *x,
            rearm: None,
            gone: false,
            reach: Reach::All,
            deliver: false,
        };
        launch(pc, &mut env, gprs, launched)
    };
    x.launched = true;
    if let Some(s) = &mut x.switched {
        s.save();
    }
    let after = match leave {
        Leave::Switch(gprs) => {
            x.gprs = gprs;
            let now = timer::rdtsc();
            op(me, on, x, None, Reach::Home, |vcpu, _| {
                vcpu.reap_grants(frames);
                match vcpu.take_give_up() {
                    Some(GiveUp::Block) if vcpu.poll_wake(now) => {
                        vcpu.woken();
                        After::Ran
                    }
                    Some(GiveUp::Block) => After::Blocked(vcpu.wake_deadline()),
                    Some(GiveUp::Yield) => After::Yielded,
                    Some(GiveUp::Preempted) | None => After::Ran,
                }
            })
            .unwrap_or(After::Gone)
        }
        Leave::DomainEnded(end) => {
            if let Some(home) = cpu_of(x.d) {
                remote::request_end(x.d, home, end_code(end));
                lend::kick(home);
            }
            After::Gone
        }
        leave @ (Leave::LaunchFailed(rflags) | Leave::ResumeFailed(rflags)) => {
            report_entry_failure(cpu, leave, rflags);
            if let Some(home) = cpu_of(x.d) {
                remote::request_end(x.d, home, end_code(DomainEnd::EntryFailed));
                lend::kick(home);
            }
            After::Gone
        }
        Leave::Unexpected(code) => {
            log::error!("vmx: unexpected return {code} from the VM-entry path");
            if let Some(home) = cpu_of(x.d) {
                remote::request_end(x.d, home, end_code(DomainEnd::Crashed));
                lend::kick(home);
            }
            After::Gone
        }
    };
    (before, after)
}

/// A domain's end as a non-zero word (`remote::request_end`).
pub(super) fn end_code(end: DomainEnd) -> u64 {
    match end {
        DomainEnd::Shutdown(r) => 1 << 32 | u64::from(r),
        DomainEnd::Crashed => 2 << 32,
        DomainEnd::EntryFailed => 3 << 32,
        DomainEnd::Destroyed => 4 << 32,
        DomainEnd::DestroyedByControl => 5 << 32,
    }
}

/// [`end_code`]'s end.
pub(super) fn end_of(code: u64) -> DomainEnd {
    match code >> 32 {
        1 => DomainEnd::Shutdown(code as u32),
        3 => DomainEnd::EntryFailed,
        4 => DomainEnd::Destroyed,
        5 => DomainEnd::DestroyedByControl,
        _ => DomainEnd::Crashed,
    }
}

/// A visitor's exits, as the exit stub calls them: each an [`op`].
struct RemoteRun<'x, 'r, 'a, M: PhysMem, C: Console> {
    cpu: &'x VmxCpu,
    me: usize,
    peers: &'x mut OnCpu<'r, 'a, M, C>,
    x: &'x mut Visiting,
    /// Its run ends by then (this CPU has work for its run loop).
    rearm: Option<u64>,
    /// Its domain is gone: the exit ends it here.
    gone: bool,
    /// What the exit being handled stops (its fast part decides; its full
    /// part, `handle_exit`, stops the same).
    reach: Reach,
    /// A wake for the visitor came: the exit is an operation (which delivers).
    deliver: bool,
}

impl<M: PhysMem, C: Console> RemoteRun<'_, '_, '_, M, C> {
    /// Lend this CPU's domains if asked, then look at this CPU's requests:
    /// both before the exit is handled.
    fn first(&mut self) {
        // One load when nothing is asked: every request below comes with a
        // kick (`lend::kick`), which stays set until it is looked at (here
        // or at the run loop's top).
        if !lend::asked(self.me) {
            return;
        }
        if lend::lend_asked(self.me) {
            lend::serve(
                self.me,
                &mut CpuView {
                    on: &mut *self.peers,
                    running: None,
                },
            );
            if let Some(u) = self.peers.rearm.take() {
                self.rearm = Some(u);
            }
            catch_up(self.cpu, self.x);
        }
        if !lend::kicked(self.me) {
            return;
        }
        // Requests only the run loop takes: this run ends, and the kick
        // stays set for the loop's top.
        if remote::pending(self.me) {
            self.rearm = Some(timer::rdtsc());
            return;
        }
        // The rest is taken here, and the kick with it (a kick after this
        // is a new one): else every later exit of this run would look
        // again.
        lend::looked(self.me);
        // Events posted to this CPU's own domains: made pending now, the
        // visitor's run going on unless one of them is to run.
        if remote::take_events(self.me) {
            super::take_posted(self.me, self.peers);
            // A domain of this CPU woken by one: the visitor's run gets an
            // end (`OnCpu::rearm_running` keeps it per CPU).
            if let Some(u) = percpu::this().take_slice_rearm() {
                self.rearm = Some(u);
            }
        }
        // A wake for this visitor, in its guest (so not blocked): this exit
        // is made an operation, whose `before_entry` delivers the event
        // that woke it, and its run goes on (ending it would cost two more
        // operations: the run's end and the next one's start). Wakes of
        // other vCPUs of this CPU are for the run loop.
        if remote::woken(self.me) {
            let (mine, others) = remote::take_wake_running(self.me, self.x.d, self.x.v);
            self.deliver = mine;
            if others {
                lend::rekick(self.me);
                self.rearm = Some(timer::rdtsc());
            }
        }
        // A request that came before `looked` cleared its kick is seen
        // here (its flag was set before the kick).
        if remote::pending(self.me) {
            lend::rekick(self.me);
            self.rearm = Some(timer::rdtsc());
        }
    }
}

impl<M: PhysMem, C: Console> ExitEnv for RemoteRun<'_, '_, '_, M, C> {
    fn fast_exit(&mut self, gprs: &mut GuestGprs) -> FastExit {
        self.first();
        let reason = exit_reason();
        let deliver = core::mem::take(&mut self.deliver);
        if self.rearm.is_none() && !deliver {
            // Another CPU's wake-up IPI, and nothing for this CPU to do: no
            // operation (`Visitor::wake_ipi_exit`).
            if self.x.vis.wake_ipi_exit(self.cpu, reason) {
                return FastExit::Resume;
            }
            // An exit that needs only the vCPU's own state and its domain's
            // built facts (CPUID, the version): none either.
            if Visitor::may_be_own(reason) && !remote::dead(self.x.d) {
                if let Some(out) = self.x.vis.own_exit(self.cpu, reason, gprs) {
                    return out;
                }
            }
        }
        let rearm = self.rearm.take();
        self.reach = reach_of(reason, gprs, self.x.d);
        let v = self.x.v;
        let out = op(
            self.me,
            &mut *self.peers,
            self.x,
            rearm,
            self.reach,
            |vcpu, peers| {
                if !deliver {
                    return vcpu.fast_exit_as(reason, gprs, peers);
                }
                // A wake also tells a vCPU taken down (`sync_vcpus`): its
                // run ends, and its next start finds it down.
                if !vcpu.domain().vcpus.up_at(v) {
                    vcpu.end_slice_now();
                }
                // The IPI that brought the wake: delivered in this one
                // operation (else the full path's would be a second).
                if Visitor::is_wake_ipi(reason) {
                    vcpu.wake_ipi_deliver()
                } else {
                    vcpu.fast_exit_as(reason, gprs, peers)
                }
            },
        );
        catch_up(self.cpu, self.x);
        out.unwrap_or_else(|| {
            self.gone = true;
            FastExit::Full
        })
    }

    fn handle_exit(&mut self, gprs: &mut GuestGprs) -> Option<DomainEnd> {
        if self.gone {
            return Some(DomainEnd::Destroyed);
        }
        let out = op(
            self.me,
            &mut *self.peers,
            self.x,
            None,
            self.reach,
            |vcpu, _| vcpu.handle_exit(gprs),
        );
        catch_up(self.cpu, self.x);
        out.unwrap_or(Some(DomainEnd::Destroyed))
    }

    fn take_switch(&mut self) -> bool {
        self.x.vis.run().give_up().is_some()
    }
}

/// Start vCPU `v` of `d` on this CPU (module doc, step 1): its VMCS and
/// register save area in frames of this CPU's, made with the home CPU's view
/// lent. `None` (the vCPU down again, as a local one whose VMCS cannot be
/// made) if this CPU has no `room` for another visitor, the frames ran out
/// or the VMCS could not be made.
#[allow(clippy::too_many_arguments)]
pub(super) fn start<'r, 'a, M: PhysMem, C: Console>(
    cpu: &VmxCpu,
    pc: &PerCpu,
    on: &mut OnCpu<'r, 'a, M, C>,
    d: DomainId,
    v: u32,
    room: bool,
    frames: &mut impl FrameSource,
) -> Option<Visiting> {
    let me = pc.index();
    let home = cpu_of(d)?;
    if remote::dead(d) {
        return None;
    }
    let mut view = CpuView { on, running: None };
    lend::cross(me, &mut view, |_, lent| {
        let hv = lent.get_mut(home)?;
        let (vcpu, nx, dying) = if hv.running(d).is_some() {
            (hv.running_mut(d)?, None, false)
        } else {
            let g = hv.on.guest_mut(d)?;
            (&mut g.vcpu, Some(g.nx), g.dying.is_some())
        };
        if dying || remote::dead(d) || !vcpu.domain().vcpus.up_at(v) {
            return None;
        }
        let nx = nx.unwrap_or_else(|| vcpu.domain().nx_enabled());
        let held = if room {
            let (_, mem) = vcpu.parts_mut();
            Held::alloc(cpu, frames, mem)
        } else {
            log::warn!("vmx: CPU {me} runs {VISITORS} vCPUs of other CPUs' domains already");
            None
        };
        let started = match held {
            Some(h) => match start_sibling(cpu, pc, vcpu, v, h) {
                Ok(p) => Some(p),
                Err(h) => {
                    h.free(frames);
                    None
                }
            },
            None => {
                log::warn!(
                    "vmx: no free frames on CPU {me} for vCPU {v} of domain {}",
                    d.0
                );
                None
            }
        };
        let Some(p) = started else {
            vcpu.parts_mut().0.vcpus.start_failed(v, timer::rdtsc());
            return None;
        };
        remote::held(d, v);
        Some(Visiting {
            d,
            v,
            vf: p.vf,
            gprs: p.gprs,
            launched: false,
            switched: p.switched,
            vis: Visitor::new(v, p.exit, vcpu.own_facts()),
            seen: remote::flush_epoch(d),
            nx,
        })
    })
}

/// Drop visitor `x` (its domain ended, or it could not run): its VMCS
/// cleared on this CPU, its frames back, its slot off `sched`; the home CPU
/// is told (its teardown may be waiting).
pub(super) fn drop_visitor(
    pc: &PerCpu,
    x: Visiting,
    sched: &mut Scheduler<SCHED_SLOTS>,
    frames: &mut impl FrameSource,
) {
    if let Some(s) = x.slot() {
        sched.remove(s);
    }
    if make_current(pc, x.vf.vmcs).is_ok() && clear_vmcs(pc).is_ok() {
        x.vf.free(frames);
    } else {
        log::error!("vmx: cannot clear a remote vCPU's VMCS; leaking its frame");
    }
    if let Some(s) = x.switched {
        frames.free_frame(s.area());
    }
    let home = cpu_of(x.d);
    remote::dropped(x.d, x.v, home);
    if let Some(h) = home {
        lend::kick(h);
    }
    log::info!(
        "vmx: vCPU {} of domain {} left CPU {}",
        x.v,
        x.d.0,
        pc.index()
    );
}
