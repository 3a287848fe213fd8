//! # Running the domains
//!
//! [`run_domains`] builds each domain's VMCS (`setup`), checks it in software
//! (`checks`, on what `readback` reads), starts time and events, and runs the
//! domains on this CPU, each with a [`Vcpu`] handling its exits (`stub`,
//! `exit`), the scheduler (`crate::sched`) choosing which runs. It returns when
//! every domain has ended, each with its VMCS cleared and its frames given
//! back (or, for a domain alone, its counts checked).

use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8};

use super::bitmaps::{build_msr_bitmap, ones_frame};
use super::checks::check_vm_entry;
use super::control_bits::PinbasedControls;
use super::controls::TlbFlush;
use super::exit::{exit_reason, init_vmcs_exits, msr_env, GiveUp, Vcpu, VcpuParked, Visitor};
use super::frame::{DomainEnd, ExitEnv, FastExit, GuestGprs};
use super::insn::{invvpid, vm_result, InvvpidType};
use super::lend::{self, Lent};
use super::names::ExitReason;
use super::percpu::{self, PerCpu, VmxCpu, COUNTED_EXIT_REASONS};
use super::readback::read_state;
use super::setup::{
    clear_vmcs, host_efer_for_guest, load_vmcs, make_current, setup_vmcs, start_vcpu,
    SwitchedState, VmcsFrames,
};
use super::stub::{launch, Leave};
use crate::arch::timer;
use crate::domain::vcpus::MAX_VCPUS;
use crate::domain::{Domain, DomainId, FrameOwner, FrameRecord};
use crate::domctl::{Action, Directory, Summary};
use crate::event::interdomain::Endpoint;
use crate::lifecycle::{End, Phase, Teardown, TeardownWorld};
use crate::mem::{Console, FrameSource, PhysMem};
use crate::peers::inbox::{Posted, INBOX};
use crate::peers::registry::{Lookups, REGISTRY};
use crate::peers::{DomctlDone, Peers};
use crate::sched::slots::VcpuSlots;
use crate::sched::{Next, Scheduler, DEFAULT_WEIGHT, UNBOUNDED};
use crate::smp::{remote, tlb};
use keel_abi::domctl::XenDomctl;
use keel_abi::event::VIRQ_DOM_EXC;
use keel_abi::Errno;

mod visit;

/// The most domains Keel runs at once (domain ids 1 to `MAX_DOMAINS`), one
/// per boot module.
pub const MAX_DOMAINS: usize = crate::boot::MAX_MODULES;

/// Domain slots: one per domain id, 0 unused.
const DOM_SLOTS: usize = MAX_DOMAINS + 1;

/// The scheduler's slots: one per vCPU (`crate::sched::slots`; vCPU 0's is
/// the domain id).
type Slots = VcpuSlots<DOM_SLOTS>;
const SCHED_SLOTS: usize = Slots::SLOTS;

/// The CPU each domain runs on (index: domain id), set before any runs.
static PLACED: [AtomicU8; DOM_SLOTS] = [const { AtomicU8::new(0) }; DOM_SLOTS];
/// Domains the control domain destroyed (index: domain id): never entered
/// again, ended by their CPU's run loop at its next decision.
static DESTROYED: [AtomicBool; DOM_SLOTS] = [const { AtomicBool::new(false) }; DOM_SLOTS];
/// Per CPU: a domain of its was destroyed since its run loop last looked.
static DESTROY_PENDING: [AtomicBool; crate::arch::percpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; crate::arch::percpu::MAX_CPUS];
/// Domains that keep the machine on (not service domains) and have not ended,
/// on every CPU; and whether any domain has ended.
static LIVE_NON_SERVICE: AtomicU32 = AtomicU32::new(0);
static ENDED_ANY: AtomicBool = AtomicBool::new(false);

/// The machine's clock and the wall-clock time at its zero, calibrated once
/// by the first CPU that runs domains.
static TIME: spin::Once<(crate::time::Clock, u64)> = spin::Once::new();

/// How many domains keep the machine on (not service domains): set once,
/// before any CPU runs domains.
pub fn set_live_domains(n: u32) {
    LIVE_NON_SERVICE.store(n, Release);
}

/// A domain ended (or could not start): once the last domain that keeps the
/// machine on has, every CPU looks at its service domains again.
fn domain_ended(service: bool) {
    ENDED_ANY.store(true, Release);
    if service {
        return;
    }
    let before = LIVE_NON_SERVICE.fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
    if before == Ok(1) {
        lend::kick_others();
    }
}

/// Domain `d` runs on CPU `cpu` (set for every domain before any CPU runs).
pub fn place(d: DomainId, cpu: usize) {
    if let Some(p) = PLACED.get(usize::from(d.0)) {
        p.store(cpu as u8, Release);
    }
}

/// The CPU domain `d` runs on.
fn cpu_of(d: DomainId) -> Option<usize> {
    PLACED
        .get(usize::from(d.0))
        .map(|p| usize::from(p.load(Relaxed)))
}

/// Whether the control domain destroyed domain `d`.
fn destroyed(d: DomainId) -> bool {
    DESTROYED
        .get(usize::from(d.0))
        .is_some_and(|x| x.load(Acquire))
}

/// Hypercalls whose handlers may reach another domain (`Ctx::peers`).
/// A superset is only slower; a number missing here would see the domains of
/// other CPUs as absent.
fn reaches_peers(nr: u64) -> bool {
    use keel_abi::hypercall::Hypercall as H;
    [
        H::EVENT_CHANNEL_OP,
        H::GRANT_TABLE_OP,
        H::DOMCTL,
        H::MULTICALL,
    ]
    .iter()
    .any(|h| h.0 == nr)
}

/// Whether a spread domain `d`'s hypercall `nr` (`cmd` in RDI) reaches no
/// CPU but the domain's own `home`: an event-channel operation that
/// [`events_stay_here`] answers, for a domain whose channels all lead to
/// domains of `home` (its vCPUs on other CPUs are told by wake request).
pub(super) fn spread_events_at_home(d: DomainId, home: usize, nr: u64, cmd: u64) -> bool {
    nr == keel_abi::hypercall::Hypercall::EVENT_CHANNEL_OP.0
        && events_stay_here(cmd)
        && links_here(d, home)
}

/// Whether event-channel operation `cmd` reaches other domains only
/// through the caller's interdomain ports: every command but the two that
/// name a domain (`alloc_unbound`, `bind_interdomain`) and those Keel does
/// not implement. With [`Placement::Home`], this CPU's view answers it
/// and no other CPU stops (a loopback channel, VIRQs, IPIs, a peer on the
/// same CPU).
fn events_stay_here(cmd: u64) -> bool {
    use keel_abi::event as ev;
    matches!(
        cmd,
        ev::EVTCHNOP_SEND
            | ev::EVTCHNOP_CLOSE
            | ev::EVTCHNOP_STATUS
            | ev::EVTCHNOP_UNMASK
            | ev::EVTCHNOP_BIND_VIRQ
            | ev::EVTCHNOP_BIND_IPI
            | ev::EVTCHNOP_BIND_VCPU
    )
}

/// Whether domain `d`'s event channels lead only to domains on CPU `cpu`
/// (`crate::peers::links`). Asked when a run starts and after a lend, each
/// time only if a link was made since the last answer: a binding is made
/// in a cross-CPU operation only, so only a lend can change it.
fn links_here(d: DomainId, cpu: usize) -> bool {
    crate::peers::links::LINKS.all(d, |x| cpu_of(x) == Some(cpu))
}

/// A domain's vCPU and everything the run loop keeps for it between its runs.
pub struct Guest<'a, M: PhysMem, C: Console> {
    vcpu: Vcpu<'a, M, C>,
    vf: VmcsFrames,
    /// The guest's registers while another domain runs.
    gprs: GuestGprs,
    /// The VMCS has been launched (the next entry is a VMRESUME).
    launched: bool,
    /// The state VMX does not switch, when other domains share the CPU.
    switched: Option<SwitchedState>,
    /// Does not keep the machine on: destroyed once every other domain ended.
    service: bool,
    /// The domain's page tables use NX (its EFER.NXE).
    nx: bool,
    /// It has ended and is being torn down, a bounded piece per run-loop
    /// iteration (`crate::lifecycle`): never entered again, not a peer.
    dying: Option<Dying>,
    /// The domain's other vCPUs, each with its VMCS once it was first
    /// brought up: where in this CPU's pool ([`Parked`]) each is (index:
    /// vCPU number; [`NO_PARKED`] for none; the loaded vCPU's state is
    /// `vcpu`, `vf`, `gprs`, `launched`, `switched`).
    parked: [u8; MAX_VCPUS],
    /// The vCPUs that have a scheduler slot (bit `v`: vCPU `v`).
    scheduled: u8,
    /// The domain has several vCPUs (the run loop looks at their states
    /// after each of its runs).
    multi: bool,
    /// The domain's flush epoch this CPU last flushed the loaded vCPU at
    /// (a domain with vCPUs on other CPUs: `visit`, step 4).
    seen: u64,
    /// Every domain its event channels lead to runs on this CPU
    /// (`crate::peers::links`), as found when `LINKS.made()` was
    /// `links_made`.
    links_here: bool,
    /// See `links_here`.
    links_made: u64,
}

/// No parked vCPU (`Guest::parked`).
const NO_PARKED: u8 = u8::MAX;

/// The parked vCPUs one CPU keeps, of all its domains (a pool apart from
/// the [`Guest`]s, so that the table of every CPU's domains does not hold
/// room for every domain's vCPUs): 16, two domains of 8 vCPUs or five of
/// 4. Each place is held for one vCPU from its domain's start (`hold_places`,
/// in the order the domains were built); a vCPU that got none is refused
/// by `VCPUOP_up` (`-ENOMEM`). Kept small: the pools are part of the
/// image's `.bss`, which must end below 8 MiB.
pub const PARKED_PER_CPU: usize = 16;

/// A place in a CPU's pool of parked vCPUs, held for one vCPU of a domain
/// from the domain's start to its end.
// Every entry of the pool (a static array) has the size of the larger
// variant whatever it holds, and there is no heap to box it in.
#[allow(clippy::large_enum_variant)]
pub enum Place {
    /// The vCPU has not run yet: what it will run with, taken when its
    /// domain started, so that `VCPUOP_up` cannot fail for want of it later.
    Held(Held),
    /// The vCPU, started, while another of its domain is loaded.
    Parked(Parked),
}

/// The frames of a vCPU that has not run yet: its VMCS region and bitmaps,
/// and its register save area.
pub struct Held {
    vf: VmcsFrames,
    area: crate::addr::Mfn,
}

/// A vCPU of a domain while another is loaded (`Guest::parked`): what the
/// run loop keeps for one vCPU, as it keeps for the loaded one.
pub struct Parked {
    vf: VmcsFrames,
    gprs: GuestGprs,
    launched: bool,
    switched: Option<SwitchedState>,
    exit: VcpuParked,
}

impl<M: PhysMem, C: Console> Guest<'_, M, C> {
    /// The vCPU of scheduler slot `slot` is the loaded one, or is loaded now
    /// ([`Self::switch_to`]); false if it cannot run, and then it has no
    /// slot any more (out of line: the run loop of a one-vCPU domain never
    /// comes here).
    #[inline(never)]
    fn load_slot(&mut self, slot: DomainId, pool: &mut [Option<Place>]) -> bool {
        let (_, vcpu) = Slots::vcpu_of(slot);
        if vcpu == self.vcpu.loaded_vcpu() || self.switch_to(vcpu, pool) {
            return true;
        }
        self.scheduled &= !(1u8 << vcpu);
        false
    }

    /// Load vCPU `v` (up, with a VMCS, parked in `pool`): the loaded one is
    /// parked in its place. False if it cannot run (down, or never started).
    fn switch_to(&mut self, v: u32, pool: &mut [Option<Place>]) -> bool {
        use core::mem::replace;
        if !self.vcpu.domain().vcpus.up_at(v) {
            return false;
        }
        let from = self.vcpu.loaded_vcpu() as usize;
        let Some(&at) = self.parked.get(v as usize) else {
            return false;
        };
        let Some(entry) = pool.get_mut(usize::from(at)) else {
            return false;
        };
        // A place still held has no VMCS yet: its vCPU was never started.
        if !matches!(entry, Some(Place::Parked(_))) {
            return false;
        }
        let Some(Place::Parked(next)) = entry.take() else {
            return false;
        };
        let exit = self.vcpu.switch_vcpu(v, next.exit);
        *entry = Some(Place::Parked(Parked {
            vf: replace(&mut self.vf, next.vf),
            gprs: replace(&mut self.gprs, next.gprs),
            launched: replace(&mut self.launched, next.launched),
            switched: replace(&mut self.switched, next.switched),
            exit,
        }));
        if let Some(p) = self.parked.get_mut(from) {
            *p = at;
        }
        if let Some(p) = self.parked.get_mut(v as usize) {
            *p = NO_PARKED;
        }
        true
    }

    /// Free every parked vCPU's VMCS and register save area (the domain
    /// ended), and its place in `pool`, and the frames of those never
    /// started.
    fn free_parked(
        &mut self,
        pc: &PerCpu,
        pool: &mut [Option<Place>],
        frames: &mut impl FrameSource,
    ) {
        let taken = self.parked.iter_mut().filter_map(|i| {
            let at = core::mem::replace(i, NO_PARKED);
            pool.get_mut(usize::from(at)).and_then(Option::take)
        });
        for place in taken {
            let p = match place {
                Place::Held(h) => {
                    h.free(frames);
                    continue;
                }
                Place::Parked(p) => p,
            };
            if make_current(pc, p.vf.vmcs).is_ok() && clear_vmcs(pc).is_ok() {
                p.vf.free(frames);
            } else {
                log::error!("vmx: cannot clear a parked vCPU's VMCS; leaking its frame");
            }
            if let Some(s) = p.switched {
                frames.free_frame(s.area());
            }
        }
    }
}

/// A domain's teardown in progress.
struct Dying {
    t: Teardown,
    /// How it ended (recorded once the teardown is done).
    end: DomainEnd,
    /// Frames its teardown has given back so far.
    returned: u64,
    /// Its counts did not all come back to zero.
    leaked: bool,
}

/// Units of one teardown step (ports closed, maptrack slots looked at,
/// frames scrubbed): 64 frames is 256 KiB of scrubbing between two
/// scheduling decisions.
const TEARDOWN_BUDGET: u32 = 64;

/// The live domains on this CPU other than one (the running one, or one that
/// is ending), for that one's hypercalls (`crate::peers`): the vCPU slots
/// before and after its own, and the scheduler that wakes them. No other
/// vCPU runs while an exit is handled, so these borrows are the whole
/// synchronisation (`crate::peers` says what changes on several CPUs).
struct OnCpu<'r, 'a, M: PhysMem, C: Console> {
    /// The CPU these domains run on.
    cpu: usize,
    /// Slots `0..skip`.
    before: &'r mut [Option<Guest<'a, M, C>>],
    /// Slots `skip + 1..`.
    after: &'r mut [Option<Guest<'a, M, C>>],
    /// The slot left out.
    skip: usize,
    sched: &'r mut Scheduler<SCHED_SLOTS>,
    /// The control domain (`keel.control`), if any.
    control: Option<DomainId>,
    /// The running vCPU's run must end here (another CPU woke a domain of
    /// this one while it was lent): applied by this CPU when given back.
    rearm: Option<u64>,
    /// A second slot left out for one operation ([`NO_HOLE`]: none): the
    /// domain a vCPU of which another CPU runs (`visit::op`); the slots
    /// after it, up to `skip` or to the end, are in `split`.
    hole: usize,
    split: &'r mut [Option<Guest<'a, M, C>>],
}

/// No second slot left out (`OnCpu::hole`).
const NO_HOLE: usize = usize::MAX;

impl<'a, M: PhysMem, C: Console> OnCpu<'_, 'a, M, C> {
    /// Domain `d`'s slot index (ids start at 1), unless it is the one left out.
    fn index(&self, d: DomainId) -> Option<usize> {
        let i = usize::from(d.0).checked_sub(1)?;
        (i != self.skip).then_some(i)
    }

    /// Where slot `i` is: which part, at which index.
    fn part(&self, i: usize) -> Option<(u8, usize)> {
        if i == self.skip || i == self.hole {
            return None;
        }
        let in_split =
            self.hole != NO_HOLE && i > self.hole && (i < self.skip) == (self.hole < self.skip);
        Some(if in_split {
            (2, i - self.hole - 1)
        } else if i < self.skip {
            (0, i)
        } else {
            (1, i - self.skip - 1)
        })
    }

    fn slot(&self, d: DomainId) -> Option<&Option<Guest<'a, M, C>>> {
        let (p, j) = self.part(self.index(d)?)?;
        match p {
            0 => self.before.get(j),
            1 => self.after.get(j),
            _ => self.split.get(j),
        }
    }

    fn slot_mut(&mut self, d: DomainId) -> Option<&mut Option<Guest<'a, M, C>>> {
        let (p, j) = self.part(self.index(d)?)?;
        match p {
            0 => self.before.get_mut(j),
            1 => self.after.get_mut(j),
            _ => self.split.get_mut(j),
        }
    }

    fn guest(&self, d: DomainId) -> Option<&Guest<'a, M, C>> {
        self.slot(d)?.as_ref()
    }

    fn guest_mut(&mut self, d: DomainId) -> Option<&mut Guest<'a, M, C>> {
        self.slot_mut(d)?.as_mut()
    }

    /// What `getdomaininfo` reports of a live domain other than the caller.
    fn summary(&self, d: DomainId) -> Option<Summary> {
        let g = self.guest(d)?;
        let dom = g.vcpu.domain();
        Some(Summary {
            tot_pages: dom.owned_pages(),
            max_pages: dom.nr_pages(),
            shared_info_frame: g.vcpu.shared_frame(),
            name: dom.name(),
            shutdown: None,
            dying: destroyed(d) || g.dying.is_some(),
        })
    }

    /// A domain became runnable during the running vCPU's hypercall: if that
    /// vCPU had the CPU alone, with no slice, its run now ends a slice after
    /// it was picked (`Scheduler::rearm`; the VMCALL exit arms it).
    fn rearm_running(&mut self) {
        if let Some(until) = self.sched.rearm(timer::rdtsc()) {
            if self.cpu == percpu::this().index() {
                percpu::this().set_slice_rearm(until);
            } else {
                self.rearm = Some(until);
            }
        }
    }

    /// Domain `ended` has ended: raise `VIRQ_DOM_EXC` in the control domain
    /// (if it is another, lives, and is served ABI 1.1), waking it if it waits.
    fn notify_control(&mut self, ended: DomainId) {
        let Some(c) = self.control.filter(|c| *c != ended) else {
            return;
        };
        let Some(g) = self.guest_mut(c).filter(|g| g.dying.is_none()) else {
            return;
        };
        if !g.vcpu.domain().serves(keel_abi::version::AbiVersion::V1_1) {
            return;
        }
        g.vcpu.raise_virq(VIRQ_DOM_EXC);
        // Whichever of its vCPUs the VIRQ notifies: the others, woken for
        // nothing, block again when picked.
        for s in Slots::of_domain(c) {
            self.sched.wake(s);
        }
    }
}

/// A CPU's scheduler as `domctl` sees it: a domain's record sums its
/// vCPUs' slots (`crate::sched::slots`).
struct DomainSched<'s>(&'s Scheduler<SCHED_SLOTS>);

impl crate::domctl::SchedView for DomainSched<'_> {
    fn sched_vcpu(&self, d: DomainId) -> Option<crate::sched::Vcpu> {
        self.0.domain_now(Slots::of_domain(d), None)
    }
}

/// Every domain as `domctl` sees it: the caller (not in [`OnCpu`]'s slots)
/// and the others.
struct Listing<'x, 'r, 'a, M: PhysMem, C: Console> {
    me: (DomainId, Summary),
    on: &'x OnCpu<'r, 'a, M, C>,
}

impl<M: PhysMem, C: Console> Directory for Listing<'_, '_, '_, M, C> {
    fn control(&self) -> Option<DomainId> {
        self.on.control
    }

    fn first_from(&self, from: u16) -> Option<(DomainId, Summary)> {
        // At most MAX_DOMAINS ids to look at.
        (from..=MAX_DOMAINS as u16).find_map(|id| {
            let d = DomainId(id);
            if d == self.me.0 {
                Some(self.me)
            } else {
                self.on.summary(d).map(|s| (d, s))
            }
        })
    }
}

impl<M: PhysMem, C: Console> Peers for OnCpu<'_, '_, M, C> {
    fn domctl(
        &mut self,
        caller: DomainId,
        me: Summary,
        op: &mut XenDomctl,
    ) -> Result<DomctlDone, Errno> {
        let action = {
            let listing = Listing {
                me: (caller, me),
                on: &*self,
            };
            crate::domctl::domctl(&listing, &DomainSched(&*self.sched), caller, op)?
        };
        Ok(match action {
            Action::None => DomctlDone::Answered,
            Action::Pause(d) => {
                self.sched.pause_all(Slots::of_domain(d), timer::rdtsc());
                DomctlDone::Scheduled
            }
            Action::Unpause(d) => {
                self.sched.unpause_all(Slots::of_domain(d));
                self.rearm_running();
                DomctlDone::Scheduled
            }
            Action::Destroy(d) => {
                mark_destroyed(d);
                // Never entered again: the run loop ends it first thing.
                self.sched.pause_all(Slots::of_domain(d), timer::rdtsc());
                DomctlDone::Destroying
            }
        })
    }

    fn peer(&self, d: DomainId) -> Option<&Domain> {
        self.guest(d)
            .filter(|g| g.dying.is_none() && !destroyed(g.vcpu.domain_id()))
            .map(|g| g.vcpu.domain())
    }

    fn holder(&self, d: DomainId) -> Option<&Domain> {
        self.guest(d)
            .filter(|g| {
                g.dying.as_ref().is_none_or(|x| {
                    matches!(
                        x.t.phase,
                        Phase::Notify | Phase::Ports(_) | Phase::Mappings(_)
                    )
                })
            })
            .map(|g| g.vcpu.domain())
    }

    fn endpoint(&self, d: DomainId, p: u32) -> Option<Endpoint> {
        self.guest(d)?.vcpu.endpoint(p)
    }

    fn set_endpoint(&mut self, d: DomainId, p: u32, e: Endpoint) {
        if let Some(g) = self.guest_mut(d) {
            g.vcpu.set_endpoint(p, e);
        }
    }

    fn wake_vcpu(&mut self, d: DomainId, vcpu: u32) {
        // A vCPU on another CPU: that CPU's scheduler wakes it.
        if let Some(c) = remote::request_wake(d, vcpu) {
            lend::kick(c);
            return;
        }
        if let Some(s) = Slots::slot(d, vcpu) {
            self.sched.wake(s);
            self.rearm_running();
        }
    }

    fn notify(&mut self, d: DomainId, p: u32) -> bool {
        let Some(g) = self.guest_mut(d) else {
            return false;
        };
        let raised = g.vcpu.notify(p);
        // The run loop asks the vCPU whether it really wakes (a poll may wait
        // for other ports) when the scheduler picks it.
        if !g.multi {
            if g.vcpu.is_blocked() {
                self.sched.wake(d);
                self.rearm_running();
            }
            return raised;
        }
        // A sibling's state is its slot's (woken only if blocked there).
        let v = g.vcpu.notify_vcpu(p);
        if v != g.vcpu.loaded_vcpu() || g.vcpu.is_blocked() {
            self.wake_vcpu(d, v);
        }
        raised
    }
}

/// Mark domain `d` destroyed and tell its CPU's run loop.
fn mark_destroyed(d: DomainId) {
    if let Some(x) = DESTROYED.get(usize::from(d.0)) {
        x.store(true, Release);
    }
    if let Some(p) = cpu_of(d).and_then(|c| DESTROY_PENDING.get(c)) {
        p.store(true, Release);
    }
}

/// What a CPU lends for a cross-CPU operation (`vmx::lend`): its domains as
/// its run loop holds them at that moment, with the vCPU whose exit it was
/// about to handle, if any (that one's slot is not in `on`).
struct CpuView<'v, 'r, 'a, M: PhysMem, C: Console> {
    on: &'v mut OnCpu<'r, 'a, M, C>,
    running: Option<&'v mut Vcpu<'a, M, C>>,
}

impl<'a, M: PhysMem, C: Console> CpuView<'_, '_, 'a, M, C> {
    /// The running vCPU, if it is domain `d`'s.
    fn running(&self, d: DomainId) -> Option<&Vcpu<'a, M, C>> {
        self.running.as_deref().filter(|v| v.domain_id() == d)
    }

    fn running_mut(&mut self, d: DomainId) -> Option<&mut Vcpu<'a, M, C>> {
        self.running.as_deref_mut().filter(|v| v.domain_id() == d)
    }

    fn summary(&self, d: DomainId) -> Option<Summary> {
        match self.running(d) {
            Some(v) => {
                let dom = v.domain();
                Some(Summary {
                    tot_pages: dom.owned_pages(),
                    max_pages: dom.nr_pages(),
                    shared_info_frame: v.shared_frame(),
                    name: dom.name(),
                    shutdown: None,
                    dying: destroyed(d),
                })
            }
            None => self.on.summary(d),
        }
    }

    fn peer(&self, d: DomainId) -> Option<&Domain> {
        match self.running(d) {
            Some(v) => (!destroyed(d)).then(|| v.domain()),
            None => self.on.peer(d),
        }
    }

    fn holder(&self, d: DomainId) -> Option<&Domain> {
        match self.running(d) {
            Some(v) => Some(v.domain()),
            None => self.on.holder(d),
        }
    }

    fn endpoint(&self, d: DomainId, p: u32) -> Option<Endpoint> {
        match self.running(d) {
            Some(v) => v.endpoint(p),
            None => self.on.endpoint(d, p),
        }
    }

    fn set_endpoint(&mut self, d: DomainId, p: u32, e: Endpoint) {
        match self.running_mut(d) {
            Some(v) => v.set_endpoint(p, e),
            None => self.on.set_endpoint(d, p, e),
        }
    }

    fn notify(&mut self, d: DomainId, p: u32) -> bool {
        match self.running_mut(d) {
            // Running (its exit waits for the lend to end): it sees the event
            // before it enters again; another vCPU of it is woken.
            Some(v) => {
                let raised = v.notify(p);
                let w = v.notify_vcpu(p);
                if w != v.loaded_vcpu() {
                    self.on.wake_vcpu(d, w);
                }
                raised
            }
            None => self.on.notify(d, p),
        }
    }

    fn notify_control(&mut self, ended: DomainId) {
        let Some(c) = self.on.control.filter(|c| *c != ended) else {
            return;
        };
        match self.running_mut(c) {
            Some(v) => {
                if v.domain().serves(keel_abi::version::AbiVersion::V1_1) {
                    v.raise_virq(VIRQ_DOM_EXC);
                }
            }
            None => self.on.notify_control(ended),
        }
    }
}

/// Every domain on every CPU, for one operation of CPU `me`: its own (less
/// the vCPU the operation is for) and the views the other CPUs lent.
struct Cluster<'x, 'l, 'v, 'w, 'r, 'a, M: PhysMem, C: Console> {
    me: usize,
    own: &'x mut OnCpu<'r, 'a, M, C>,
    lent: &'x mut Lent<'l, CpuView<'v, 'w, 'a, M, C>>,
}

/// Where a domain's state is, for a [`Cluster`].
enum At {
    /// On this CPU.
    Own,
    /// On CPU n, lent.
    Lent(usize),
}

impl<'v, 'w, 'a, M: PhysMem, C: Console> Cluster<'_, '_, 'v, 'w, '_, 'a, M, C> {
    fn at(&self, d: DomainId) -> Option<At> {
        match cpu_of(d)? {
            c if c == self.me => Some(At::Own),
            c => Some(At::Lent(c)),
        }
    }

    fn view(&self, c: usize) -> Option<&CpuView<'v, 'w, 'a, M, C>> {
        self.lent.get(c)
    }

    fn view_mut(&mut self, c: usize) -> Option<&mut CpuView<'v, 'w, 'a, M, C>> {
        self.lent.get_mut(c)
    }

    fn summary(&self, d: DomainId) -> Option<Summary> {
        match self.at(d)? {
            At::Own => self.own.summary(d),
            At::Lent(c) => self.view(c)?.summary(d),
        }
    }

    fn notify_control(&mut self, ended: DomainId) {
        let Some(c) = self.own.control.filter(|c| *c != ended) else {
            return;
        };
        match self.at(c) {
            Some(At::Own) => self.own.notify_control(ended),
            Some(At::Lent(cpu)) => {
                if let Some(v) = self.view_mut(cpu) {
                    v.notify_control(ended);
                }
            }
            None => {}
        }
    }

    /// Domain `d`'s CPU's scheduler.
    fn sched_mut(&mut self, d: DomainId) -> Option<&mut Scheduler<SCHED_SLOTS>> {
        match self.at(d)? {
            At::Own => Some(&mut *self.own.sched),
            At::Lent(c) => Some(&mut *self.view_mut(c)?.on.sched),
        }
    }
}

impl<M: PhysMem, C: Console> crate::domctl::SchedView for Cluster<'_, '_, '_, '_, '_, '_, M, C> {
    fn sched_vcpu(&self, d: DomainId) -> Option<crate::sched::Vcpu> {
        match self.at(d)? {
            At::Own => self.own.sched.domain_now(Slots::of_domain(d), None),
            // It may be running there now: its time so far counts.
            At::Lent(c) => self
                .view(c)?
                .on
                .sched
                .domain_now(Slots::of_domain(d), Some(timer::rdtsc())),
        }
    }
}

/// Every domain on every CPU as `domctl` sees it.
struct ClusterListing<'x, 'c, 'l, 'v, 'w, 'r, 'a, M: PhysMem, C: Console> {
    me: (DomainId, Summary),
    cl: &'x Cluster<'c, 'l, 'v, 'w, 'r, 'a, M, C>,
}

impl<M: PhysMem, C: Console> Directory for ClusterListing<'_, '_, '_, '_, '_, '_, '_, M, C> {
    fn control(&self) -> Option<DomainId> {
        self.cl.own.control
    }

    fn first_from(&self, from: u16) -> Option<(DomainId, Summary)> {
        (from..=MAX_DOMAINS as u16).find_map(|id| {
            let d = DomainId(id);
            if d == self.me.0 {
                Some(self.me)
            } else {
                self.cl.summary(d).map(|s| (d, s))
            }
        })
    }
}

impl<M: PhysMem, C: Console> Peers for Cluster<'_, '_, '_, '_, '_, '_, M, C> {
    fn domctl(
        &mut self,
        caller: DomainId,
        me: Summary,
        op: &mut XenDomctl,
    ) -> Result<DomctlDone, Errno> {
        let action = {
            let listing = ClusterListing {
                me: (caller, me),
                cl: &*self,
            };
            crate::domctl::domctl(&listing, &*self, caller, op)?
        };
        let now = timer::rdtsc();
        Ok(match action {
            Action::None => DomctlDone::Answered,
            Action::Pause(d) => {
                if let Some(s) = self.sched_mut(d) {
                    s.pause_all(Slots::of_domain(d), now);
                }
                // Running on its CPU: its run ends there at once.
                if let Some(At::Lent(c)) = self.at(d) {
                    if let Some(v) = self.view_mut(c).and_then(|v| v.running_mut(d)) {
                        v.end_slice_now();
                    }
                }
                DomctlDone::Scheduled
            }
            Action::Unpause(d) => {
                match self.at(d) {
                    Some(At::Own) => {
                        self.own.sched.unpause_all(Slots::of_domain(d));
                        self.own.rearm_running();
                    }
                    Some(At::Lent(c)) => {
                        if let Some(v) = self.view_mut(c) {
                            v.on.sched.unpause_all(Slots::of_domain(d));
                            v.on.rearm_running();
                        }
                    }
                    None => {}
                }
                DomctlDone::Scheduled
            }
            Action::Destroy(d) => {
                mark_destroyed(d);
                if let Some(s) = self.sched_mut(d) {
                    s.pause_all(Slots::of_domain(d), now);
                }
                if let Some(At::Lent(c)) = self.at(d) {
                    if let Some(v) = self.view_mut(c).and_then(|v| v.running_mut(d)) {
                        v.end_slice_now();
                    }
                }
                DomctlDone::Destroying
            }
        })
    }

    fn peer(&self, d: DomainId) -> Option<&Domain> {
        match self.at(d)? {
            At::Own => self.own.peer(d),
            At::Lent(c) => self.view(c)?.peer(d),
        }
    }

    fn holder(&self, d: DomainId) -> Option<&Domain> {
        match self.at(d)? {
            At::Own => self.own.holder(d),
            At::Lent(c) => self.view(c)?.holder(d),
        }
    }

    fn endpoint(&self, d: DomainId, p: u32) -> Option<Endpoint> {
        match self.at(d)? {
            At::Own => self.own.endpoint(d, p),
            At::Lent(c) => self.view(c)?.endpoint(d, p),
        }
    }

    fn set_endpoint(&mut self, d: DomainId, p: u32, e: Endpoint) {
        match self.at(d) {
            Some(At::Own) => self.own.set_endpoint(d, p, e),
            Some(At::Lent(c)) => {
                if let Some(v) = self.view_mut(c) {
                    v.set_endpoint(d, p, e);
                }
            }
            None => {}
        }
    }

    fn wake_vcpu(&mut self, d: DomainId, vcpu: u32) {
        match self.at(d) {
            Some(At::Own) => self.own.wake_vcpu(d, vcpu),
            Some(At::Lent(c)) => {
                if let Some(v) = self.view_mut(c) {
                    v.on.wake_vcpu(d, vcpu);
                }
            }
            None => {}
        }
    }

    fn notify(&mut self, d: DomainId, p: u32) -> bool {
        match self.at(d) {
            Some(At::Own) => self.own.notify(d, p),
            Some(At::Lent(c)) => self.view_mut(c).is_some_and(|v| v.notify(d, p)),
            None => false,
        }
    }
}

/// The peers of a hypercall handled on this CPU alone while others run
/// domains too (`Running::here_exit`), so that no other CPU is stopped for
/// it: a grant hypercall, which reaches another domain only through its
/// frame accounting (`crate::grant::world`), answered from the registry
/// (`crate::peers::registry`); and `EVTCHNOP_send`, which reaches a domain
/// on another CPU by posting the port to it (`crate::peers::inbox`).
/// Everything else is as this CPU's view answers it: the rest of the exit
/// (its own vCPU's events and timers) reaches only this CPU.
struct HerePeers<'x, P: Peers> {
    on: &'x mut P,
    /// This CPU.
    me: usize,
    seen: Lookups<'static, FrameRecord, { crate::grant::MAX_DOMAINS }>,
}

impl<P: Peers> Peers for HerePeers<'_, P> {
    fn peer(&self, d: DomainId) -> Option<&Domain> {
        self.on.peer(d)
    }
    fn holder(&self, d: DomainId) -> Option<&Domain> {
        self.on.holder(d)
    }
    fn is_peer(&self, d: DomainId) -> bool {
        self.owner(d).is_some()
    }
    fn owner(&self, d: DomainId) -> Option<FrameOwner<'_>> {
        if destroyed(d) {
            return None;
        }
        self.seen.peer(d).map(FrameRecord::owner)
    }
    fn holder_owner(&self, d: DomainId) -> Option<FrameOwner<'_>> {
        self.seen.holder(d).map(FrameRecord::owner)
    }
    fn endpoint(&self, d: DomainId, p: u32) -> Option<Endpoint> {
        self.on.endpoint(d, p)
    }
    fn set_endpoint(&mut self, d: DomainId, p: u32, e: Endpoint) {
        self.on.set_endpoint(d, p, e);
    }
    /// A domain on another CPU: the port is posted to it and its CPU is
    /// kicked to take it, unless the port was still waiting there from an
    /// earlier send, whose kick is on its way (`crate::peers::inbox`).
    /// Whether that raises an upcall is known only there: `false`, which
    /// callers take as "no new upcall here" (nothing but tests reads it).
    fn notify(&mut self, d: DomainId, p: u32) -> bool {
        match cpu_of(d) {
            Some(c) if c == self.me => self.on.notify(d, p),
            Some(c) => {
                if INBOX.post(d, p) == Posted::New {
                    remote::request_events(c);
                    lend::kick(c);
                }
                false
            }
            None => false,
        }
    }
    fn wake_vcpu(&mut self, d: DomainId, vcpu: u32) {
        self.on.wake_vcpu(d, vcpu);
    }
    fn domctl(
        &mut self,
        caller: DomainId,
        me: Summary,
        op: &mut XenDomctl,
    ) -> Result<DomctlDone, Errno> {
        self.on.domctl(caller, me, op)
    }
}

/// Make every port posted to a domain of this CPU (`crate::peers::inbox`)
/// pending there, with its domains as the run loop holds them at its top.
fn take_posted<M: PhysMem, C: Console>(me: usize, on: &mut OnCpu<'_, '_, M, C>) {
    take_posted_in(me, &mut CpuView { on, running: None });
}

/// [`take_posted`] with this CPU's domains as `view` holds them (in an
/// exit: the running vCPU apart).
fn take_posted_in<M: PhysMem, C: Console>(me: usize, view: &mut CpuView<'_, '_, '_, M, C>) {
    for d in INBOX.posted().filter(|&d| cpu_of(d) == Some(me)) {
        INBOX.take(d, |p| {
            view.notify(d, p);
        });
    }
}

/// Make every posted port pending, with every CPU's domains lent: at the
/// start of a cross-CPU operation that may change a binding, so that a send
/// posted before it is delivered before it, as if handled at once
/// (`crate::peers::inbox`). No post is made while the operation runs: every
/// other CPU is between exits.
fn take_all_posted<'v, 'r, 'a, M: PhysMem, C: Console>(
    me: usize,
    own: &mut CpuView<'v, 'r, 'a, M, C>,
    lent: &mut Lent<'_, CpuView<'v, 'r, 'a, M, C>>,
) {
    for d in INBOX.posted() {
        let Some(c) = cpu_of(d) else { continue };
        let view = if c == me {
            Some(&mut *own)
        } else {
            lent.get_mut(c)
        };
        if let Some(v) = view {
            INBOX.take(d, |p| {
                v.notify(d, p);
            });
        }
    }
}

/// The running vCPU and its peers: what the exit stub calls.
/// `SHARED`: other CPUs run domains too, so each exit first serves their
/// requests and a cross-CPU hypercall borrows their domains (`vmx::lend`);
/// a separate instance of the exit path, so that one CPU pays nothing for it.
struct Running<'r, 'a, M: PhysMem, C: Console, const SHARED: bool> {
    vcpu: &'r mut Vcpu<'a, M, C>,
    peers: OnCpu<'r, 'a, M, C>,
    /// Where the domain's other vCPUs are, and what that decides.
    place: Placement,
}

/// Where a running domain's vCPUs are (one field of [`Running`], as cheap to
/// set up as the flag it replaced: the one-CPU exit path pays nothing for
/// what only the several-CPU one reads).
#[derive(Clone, Copy)]
enum Placement {
    /// All on this CPU. `events_here`: every domain its event channels lead
    /// to runs on this CPU too, so its event-channel operations that reach
    /// others only through its ports need no other CPU (`events_stay_here`),
    /// as found when `LINKS.made()` was `links_made`.
    Home { events_here: bool, links_made: u64 },
    /// Some on other CPUs (`visit`): a flush it is owed reaches them.
    /// `seen`: the domain's flush epoch this CPU last flushed the vCPU at.
    Spread { seen: u64 },
}

impl<M: PhysMem, C: Console, const SHARED: bool> Running<'_, '_, M, C, SHARED> {
    /// Another CPU asked for this CPU's domains: lend them now, or, if the
    /// last lend ended less than `lend::GUEST_TICKS` ago, end this vCPU's run
    /// then (its run loop lends at its top): a domain that asks for lends back
    /// to back slows its own CPU down, not the guests of the others.
    #[inline(never)]
    fn asked(&mut self) {
        let me = self.peers.cpu;
        if lend::kicked(me) {
            self.kicked();
        }
        if !lend::lend_asked(me) {
            return;
        }
        match lend::next_lend(me, timer::rdtsc()) {
            None => self.serve(),
            Some(at) => self.vcpu.end_slice_by(at),
        }
    }

    /// Another CPU kicked this one. Events posted to its domains
    /// (`crate::peers::inbox`) are made pending now, the running vCPU's
    /// included, and its run goes on. Other requests (`smp::remote`) wait
    /// for the run loop's top: this run ends, and the kick stays for it.
    #[inline(never)]
    fn kicked(&mut self) {
        let me = self.peers.cpu;
        if remote::pending(me) || remote::woken(me) {
            self.vcpu.end_slice_now();
            return;
        }
        lend::looked(me);
        if remote::take_events(me) {
            let mut view = CpuView {
                on: &mut self.peers,
                running: Some(&mut *self.vcpu),
            };
            take_posted_in(me, &mut view);
            // Another domain of this CPU woken by one: this run gets an end
            // (`OnCpu::rearm_running` keeps it per CPU, as in a hypercall).
            if let Some(until) = percpu::this().take_slice_rearm() {
                self.vcpu.set_slice_end(until);
            }
        }
        // A request that came before `looked` cleared its kick is seen
        // here (its flag was set before the kick).
        if remote::pending(me) || remote::woken(me) {
            lend::rekick(me);
            self.vcpu.end_slice_now();
        }
    }

    /// Lend this CPU's domains, this vCPU included, before this exit is
    /// looked at (`vmx::lend`).
    fn serve(&mut self) {
        let me = self.peers.cpu;
        let mut view = CpuView {
            on: &mut self.peers,
            running: Some(&mut *self.vcpu),
        };
        lend::serve(me, &mut view);
        self.apply_rearm();
        if self.spread() {
            self.catch_up();
        }
    }

    /// A flush its domain was owed since this CPU last flushed the vCPU:
    /// flush it here; whether there was one.
    fn catch_up(&mut self) -> bool {
        let Placement::Spread { seen } = &mut self.place else {
            return false;
        };
        let due = remote::flush_due(self.vcpu.domain_id(), seen);
        if due {
            self.vcpu.flush_tlb();
        }
        due
    }

    /// An exit of a domain with vCPUs on other CPUs, then its shootdown
    /// (out of line: other domains' exits pay one test for it).
    #[inline(never)]
    fn spread_fast_exit(&mut self, gprs: &mut GuestGprs) -> FastExit {
        let out = if reaches_peers(gprs.rax) {
            self.peer_exit(gprs)
        } else {
            self.vcpu.fast_exit(gprs, &mut self.peers)
        };
        self.shootdown();
        out
    }

    /// [`Self::spread_fast_exit`] for the full path.
    #[inline(never)]
    fn spread_handle_exit(&mut self, gprs: &mut GuestGprs) -> Option<DomainEnd> {
        let end = self.vcpu.handle_exit(gprs);
        self.shootdown();
        end
    }

    /// After an exit of a domain with vCPUs on other CPUs: a flush it was
    /// owed reaches them before this vCPU runs on (`visit`, step 4). The
    /// empty cross-CPU operation takes the domain's other CPUs out of their
    /// guests (`smp::tlb::shootdown`); each flushes before it enters one of
    /// the domain's vCPUs again.
    #[inline(never)]
    fn shootdown(&mut self) {
        if self.catch_up() {
            let me = self.peers.cpu;
            let d = self.vcpu.domain_id();
            let mask = tlb::shootdown(remote::placed(d, me), me).mask32();
            let mut view = CpuView {
                on: &mut self.peers,
                running: Some(&mut *self.vcpu),
            };
            lend::cross_some(me, &mut view, mask, |_, _| ());
            self.apply_rearm();
        }
    }

    /// A domain of this CPU woke while it was lent: the running vCPU's run
    /// gets an end.
    fn apply_rearm(&mut self) {
        if let Some(until) = self.peers.rearm.take() {
            self.vcpu.set_slice_end(until);
        }
        if let Placement::Home {
            events_here,
            links_made,
        } = &mut self.place
        {
            let made = crate::peers::links::LINKS.made();
            if made != *links_made {
                *links_made = made;
                *events_here = links_here(self.vcpu.domain_id(), self.peers.cpu);
            }
        }
    }

    /// The domain has vCPUs on other CPUs.
    #[inline(always)]
    fn spread(&self) -> bool {
        matches!(self.place, Placement::Spread { .. })
    }

    /// An exit that left the number of a hypercall reaching other domains in
    /// RAX: a cross-CPU operation if it is that hypercall. Any other exit
    /// leaves RAX as the guest had it; taken for a hypercall, every exit of a
    /// guest that kept such a number in RAX was a cross-CPU operation, and
    /// two CPUs whose exits were each one took turns asking each other out of
    /// their guests (the other's operation's IPI was the next exit) while
    /// neither guest ran (`vcpus_spread_rax`).
    #[inline(never)]
    fn peer_exit(&mut self, gprs: &mut GuestGprs) -> FastExit {
        use keel_abi::hypercall::Hypercall as H;
        let reason = exit_reason();
        if reason != ExitReason::VMCALL {
            return self.vcpu.fast_exit_as(reason, gprs, &mut self.peers);
        }
        let nr = gprs.rax;
        let events_here = matches!(
            self.place,
            Placement::Home {
                events_here: true,
                ..
            }
        );
        // An event-channel operation that reaches no other CPU's domain is
        // made here, with this CPU's view alone; a spread domain's too: its
        // vCPUs elsewhere are told by wake request (`remote::request_wake`),
        // and the event bits they share with it change by atomic bit
        // operations.
        let events_at_home = if self.spread() {
            spread_events_at_home(self.vcpu.domain_id(), self.peers.cpu, nr, gprs.rdi)
        } else {
            events_here && nr == H::EVENT_CHANNEL_OP.0 && events_stay_here(gprs.rdi)
        };
        if events_at_home {
            self.vcpu.fast_exit_as(reason, gprs, &mut self.peers)
        } else if !self.spread()
            && (nr == H::GRANT_TABLE_OP.0
                || (nr == H::EVENT_CHANNEL_OP.0 && gprs.rdi == keel_abi::event::EVTCHNOP_SEND))
        {
            self.here_exit(gprs, reason)
        } else {
            self.cross_exit(gprs, reason)
        }
    }

    /// A grant hypercall, or an event-channel send, while other CPUs run
    /// domains: handled on this CPU alone (`HerePeers`). The other CPUs go
    /// on running their guests; a grant of theirs and their own page-table
    /// changes meet this one in the frame table's compare-and-exchange
    /// (`crate::paging`, "Several CPUs"), and a send to one of their
    /// domains is posted to it. A domain with vCPUs on other CPUs takes the
    /// cross-CPU path instead, as for every hypercall that changes its
    /// state (`visit`).
    fn here_exit(&mut self, gprs: &mut GuestGprs, reason: ExitReason) -> FastExit {
        let mut peers = HerePeers {
            me: self.peers.cpu,
            on: &mut self.peers,
            seen: Lookups::new(&REGISTRY),
        };
        self.vcpu.fast_exit_as(reason, gprs, &mut peers)
    }

    /// A hypercall that may reach domains on other CPUs, handled with theirs
    /// lent.
    fn cross_exit(&mut self, gprs: &mut GuestGprs, reason: ExitReason) -> FastExit {
        let me = self.peers.cpu;
        let mut view = CpuView {
            on: &mut self.peers,
            running: Some(&mut *self.vcpu),
        };
        let out = lend::cross(me, &mut view, |own, lent| {
            take_all_posted(me, own, lent);
            let CpuView { on, running } = own;
            let Some(vcpu) = running.as_deref_mut() else {
                return FastExit::Full;
            };
            let mut cl = Cluster {
                me,
                own: &mut **on,
                lent,
            };
            vcpu.fast_exit_as(reason, gprs, &mut cl)
        });
        self.apply_rearm();
        out
    }
}

impl<M: PhysMem, C: Console, const SHARED: bool> ExitEnv for Running<'_, '_, M, C, SHARED> {
    #[inline(always)]
    fn fast_exit(&mut self, gprs: &mut GuestGprs) -> FastExit {
        if SHARED {
            if lend::asked(self.peers.cpu) {
                self.asked();
            }
            if self.spread() {
                return self.spread_fast_exit(gprs);
            }
            if reaches_peers(gprs.rax) {
                return self.peer_exit(gprs);
            }
        }
        self.vcpu.fast_exit(gprs, &mut self.peers)
    }

    #[inline(always)]
    fn handle_exit(&mut self, gprs: &mut GuestGprs) -> Option<DomainEnd> {
        if SHARED && self.spread() {
            return self.spread_handle_exit(gprs);
        }
        self.vcpu.handle_exit(gprs)
    }

    fn take_switch(&mut self) -> bool {
        self.vcpu.take_switch()
    }
}

/// A domain for [`run_domains`]: its record, the machine and console its
/// vCPU uses, and whether it is a service domain (see [`Guest`]).
pub struct ToRun<'a, M, C> {
    /// The domain, built.
    pub dom: &'a mut Domain,
    /// The machine, as its vCPU reaches it.
    pub mem: &'a mut M,
    /// The console its output goes to.
    pub console: &'a mut C,
    /// A service domain: ended when every other domain has.
    pub service: bool,
}

/// The tables one CPU's run loop keeps its domains in (too large for the
/// stack): a [`Guest`] per domain (slot `id - 1`), and the pool of parked
/// vCPUs of its domains of several vCPUs.
pub struct CpuTables<'t, 'a, M: PhysMem, C: Console> {
    /// One slot per domain.
    pub guests: &'t mut [Option<Guest<'a, M, C>>],
    /// [`PARKED_PER_CPU`] slots.
    pub parked: &'t mut [Option<Place>],
}

/// How each domain ended, in the order they ended.
pub struct Ends {
    /// `(domain, how it ended)`.
    pub ends: [(DomainId, DomainEnd); MAX_DOMAINS],
    /// How many of `ends` are filled.
    pub n: usize,
    /// A domain's teardown found counts not back at zero (a Keel bug).
    pub accounting_bug: bool,
}

/// Run several domains on this CPU until every one has ended: each gets a
/// VMCS of its own (VPID = its id), the scheduler (`crate::sched`) decides who
/// runs, for a slice the VMX-preemption timer (or the APIC timer) enforces;
/// a vCPU that blocks, yields or is preempted leaves to this loop, which saves
/// the state VMX does not switch and enters the next one. When every vCPU is
/// blocked the CPU halts until the earliest deadline. A domain that ends is
/// torn down at once (its frames scrubbed and freed, its counts checked) while
/// the others go on. `several`: more than one domain shares the CPU (else the
/// one domain idles in its own exit handler, nothing is switched, and at its
/// end only its counts are checked: the machine powers off next).
///
/// `tables` holds the vCPUs (too large for the stack): one slot per domain,
/// and the parked vCPUs of domains of several.
pub fn run_domains<'a, M: PhysMem, C: Console>(
    cpu: &VmxCpu,
    doms: impl Iterator<Item = ToRun<'a, M, C>>,
    tables: CpuTables<'_, 'a, M, C>,
    idle_console: &mut impl Console,
    frames: &mut impl FrameSource,
    several: bool,
    control: Option<DomainId>,
) -> Ends {
    // A domain of several vCPUs switches between them as between domains.
    let mut list: [Option<ToRun<'a, M, C>>; MAX_DOMAINS] = [const { None }; MAX_DOMAINS];
    for (slot, d) in list.iter_mut().zip(doms) {
        *slot = Some(d);
    }
    let me = percpu::this().index();
    // Remote vCPUs of other CPUs' domains this CPU runs (`visit`).
    let hosts = remote::hosted(me).next().is_some();
    let mut visitors: [Option<visit::Visiting>; visit::VISITORS] =
        [const { None }; visit::VISITORS];
    let shared = several || hosts || list.iter().flatten().any(|d| d.dom.vcpus.count() > 1);
    let CpuTables {
        guests,
        parked: pool,
    } = tables;
    let mut ends = Ending {
        pc: percpu::this(),
        frames,
        out: Ends {
            ends: [(DomainId(0), DomainEnd::EntryFailed); MAX_DOMAINS],
            n: 0,
            accounting_bug: false,
        },
        tear_down: several,
        control,
        dying: 0,
        pool,
    };
    let pc = ends.pc;
    // One clock for the machine: the first CPU to get here calibrates it.
    let (clock, wall) = *TIME.call_once(|| start_time(cpu));
    let slice = (clock.hz / 1000).max(1);
    let mut sched: Scheduler<SCHED_SLOTS> = Scheduler::new(slice);
    if shared {
        prepare_host_for_switching();
    }
    for d in list.into_iter().flatten() {
        let id = d.dom.id;
        let service = d.service;
        match prepare(cpu, pc, d, ends.frames, clock, wall, shared) {
            Ok(mut g) => {
                hold_places(cpu, &mut g, ends.pool, ends.frames);
                // The slot of domain id n is n - 1 (`OnCpu::index`).
                if let Some(slot) = guests.get_mut(usize::from(id.0).wrapping_sub(1)) {
                    *slot = Some(g);
                    sched.add(id, DEFAULT_WEIGHT);
                }
            }
            Err(end) => {
                ends.record(id, end);
                domain_ended(service);
            }
        }
    }

    // The run loop: one iteration per entry into a guest, or per idle period,
    // each after at most one bounded step of a teardown.
    loop {
        // Another CPU's cross-CPU operation waits for this CPU's domains.
        // Another CPU's cross-CPU operation waits for this CPU's domains, or
        // another CPU has requests about remote vCPUs (`smp::remote`): one
        // load when neither.
        if lend::asked(me) {
            if lend::kicked(me) {
                lend::looked(me);
                // Both flags taken (`|`, not `||`): the requests walk takes
                // every kind.
                if remote::take_pending(me) | remote::take_woken(me) {
                    requests(
                        cpu,
                        pc,
                        &mut ends,
                        guests,
                        &mut sched,
                        &mut visitors,
                        control,
                    );
                }
                if remote::take_events(me) {
                    take_posted(me, &mut others(&mut *guests, &mut sched, control));
                }
            }
            let mut on = others(&mut *guests, &mut sched, control);
            lend::serve(
                me,
                &mut CpuView {
                    on: &mut on,
                    running: None,
                },
            );
        }
        // Domains the control domain destroyed stop before anything else runs.
        if DESTROY_PENDING
            .get(me)
            .is_some_and(|p| p.load(Relaxed) && p.swap(false, AcqRel))
        {
            ends.end_each(
                guests,
                &mut sched,
                |g| destroyed(g.vcpu.domain_id()),
                DomainEnd::DestroyedByControl,
                None,
            );
        }
        // One step of a teardown; `tearing`: one has work it can do now (not
        // only waiting for other domains to unmap its grants).
        let tearing = ends.dying > 0 && ends.step_teardown(guests, &mut sched);
        if guests.iter().all(Option::is_none)
            && visitors.iter().all(Option::is_none)
            && remote::hosted(me).next().is_none()
        {
            break;
        }
        // Only service domains are left running, on every CPU (and another
        // has ended: a machine of service domains alone runs them).
        let mut running = guests.iter().flatten().filter(|g| g.dying.is_none());
        let ended = ENDED_ANY.load(Acquire) && LIVE_NON_SERVICE.load(Acquire) == 0;
        if ended && running.clone().next().is_some() && running.all(|g| g.service) {
            ends.end_each(guests, &mut sched, |_| true, DomainEnd::Destroyed, None);
            continue;
        }
        let now = timer::rdtsc();
        let (slot, until) = match sched.schedule(now) {
            // A vCPU alone runs without a slice, but not while a teardown
            // here waits for its next step.
            Next::Run { dom, until } if until == UNBOUNDED && ends.dying > 0 => {
                (dom, now.saturating_add(slice))
            }
            Next::Run { dom, until } => (dom, until),
            // A teardown goes on instead of idling.
            Next::Idle { .. } if tearing => continue,
            Next::Idle { until: Some(until) } => {
                idle_console.drain_until(until);
                timer::idle_until(until);
                continue;
            }
            // With domains on other CPUs, one of them may still wake these:
            // wait for an IPI (an event, a cross-CPU operation), unless every
            // CPU is in this state.
            Next::Idle { until: None } if lend::several_cpus() && !lend::all_stuck() => {
                if !lend::stuck(|| !remote::any_pending()) {
                    // No deadline to drain the console up to: the CPUs that
                    // run guests drain it.
                    timer::idle_until(u64::MAX);
                    lend::unstuck();
                }
                continue;
            }
            Next::Idle { until: None } => {
                // Every domain waits for an event only another could send, and
                // none can: each would sleep forever.
                ends.end_each(
                    guests,
                    &mut sched,
                    |_| true,
                    DomainEnd::Crashed,
                    Some("blocked with no event source, like every other domain: killed"),
                );
                continue;
            }
        };
        let id = Slots::domain_of(slot);
        let idx = usize::from(id.0).wrapping_sub(1);
        if !matches!(guests.get(idx), Some(Some(g)) if g.dying.is_none()) {
            if let Some(i) = visitors
                .iter()
                .position(|x| matches!(x, Some(x) if x.slot() == Some(slot)))
            {
                run_visitor(
                    cpu,
                    pc,
                    &mut ends,
                    guests,
                    &mut sched,
                    &mut visitors,
                    control,
                    i,
                    until,
                );
            } else {
                sched.remove(slot);
            }
            continue;
        }
        let (before, rest) = guests.split_at_mut(idx);
        let Some((Some(g), after)) = rest.split_first_mut() else {
            continue;
        };
        // Another vCPU of the domain: load it (one that went down meanwhile
        // leaves the scheduler). A domain of one vCPU has vCPU 0's slot only.
        if g.multi && !g.load_slot(slot, ends.pool) {
            sched.remove(slot);
            continue;
        }
        if g.vcpu.is_blocked() {
            if g.vcpu.poll_wake(now) {
                g.vcpu.woken();
            } else {
                sched.block(g.vcpu.wake_deadline(), now);
                continue;
            }
        }
        if let Err(e) = make_current(pc, g.vf.vmcs) {
            log::error!("vmx: VMPTRLD of domain {}'s VMCS failed: {e}", id.0);
            ends.end_slot(guests, &mut sched, idx, DomainEnd::EntryFailed);
            continue;
        }
        if let Some(s) = &g.switched {
            s.restore();
            if !cpu.controls.load_efer {
                host_efer_for_guest(g.nx);
            }
            g.vcpu
                .resume_with_slice((until != UNBOUNDED).then_some(until));
        }
        let peers = OnCpu {
            cpu: me,
            before,
            after,
            skip: idx,
            sched: &mut sched,
            control,
            rearm: None,
            hole: NO_HOLE,
            split: &mut [],
        };
        // Other CPUs become active only before any runs: a run that starts
        // alone stays alone.
        let spread = g.multi && remote::spread(id);
        if spread && remote::flush_due(id, &mut g.seen) {
            g.vcpu.flush_tlb();
        }
        let leave = if lend::several_cpus() {
            let made = crate::peers::links::LINKS.made();
            if made != g.links_made {
                g.links_made = made;
                g.links_here = links_here(id, me);
            }
            let place = if spread {
                Placement::Spread { seen: g.seen }
            } else {
                Placement::Home {
                    events_here: g.links_here,
                    links_made: made,
                }
            };
            let mut running = Running::<'_, '_, M, C, true> {
                vcpu: &mut g.vcpu,
                peers,
                place,
            };
            let leave = launch(pc, &mut running, g.gprs, g.launched);
            if let Placement::Spread { seen } = running.place {
                g.seen = seen;
            }
            leave
        } else {
            let mut running = Running::<'_, '_, M, C, false> {
                vcpu: &mut g.vcpu,
                peers,
                place: Placement::Home {
                    events_here: false,
                    links_made: 0,
                },
            };
            launch(pc, &mut running, g.gprs, g.launched)
        };
        g.launched = true;
        if let Some(s) = &mut g.switched {
            s.save();
        }
        let end = match leave {
            Leave::Switch(gprs) => {
                g.gprs = gprs;
                g.vcpu.reap_grants(ends.frames);
                let now = timer::rdtsc();
                match g.vcpu.take_give_up() {
                    // Its timer may have fired since it decided to block
                    // (the exit's last work expires timers): then it runs on.
                    Some(GiveUp::Block) if g.vcpu.poll_wake(now) => g.vcpu.woken(),
                    Some(GiveUp::Block) => sched.block(g.vcpu.wake_deadline(), now),
                    Some(GiveUp::Yield) => sched.yield_now(now),
                    Some(GiveUp::Preempted) | None => {}
                }
                if g.multi {
                    sync_vcpus(cpu, pc, g, &mut sched, ends.pool);
                }
                continue;
            }
            Leave::DomainEnded(end) => end,
            leave @ (Leave::LaunchFailed(rflags) | Leave::ResumeFailed(rflags)) => {
                report_entry_failure(cpu, leave, rflags);
                DomainEnd::EntryFailed
            }
            Leave::Unexpected(code) => {
                log::error!("vmx: unexpected return {code} from the VM-entry path");
                DomainEnd::Crashed
            }
        };
        ends.end_slot(guests, &mut sched, idx, end);
    }
    // No domain left here: no more lending (other CPUs may still ask until
    // this CPU is out of their set).
    let mut on = others(&mut *guests, &mut sched, control);
    lend::deactivate(
        me,
        &mut CpuView {
            on: &mut on,
            running: None,
        },
    );
    ends.out
}

/// What ending domains needs, and how each ended so far.
struct Ending<'x, F: FrameSource> {
    pc: &'static PerCpu,
    frames: &'x mut F,
    out: Ends,
    /// Scrub and free an ended domain's frames (else only check its counts:
    /// a domain alone, the machine powers off next).
    tear_down: bool,
    control: Option<DomainId>,
    /// Teardowns in progress (the run loop looks for them only if any).
    dying: usize,
    /// This CPU's parked vCPUs.
    pool: &'x mut [Option<Place>],
}

impl<F: FrameSource> Ending<'_, F> {
    fn record(&mut self, id: DomainId, end: DomainEnd) {
        kick_cpus(remote::set_dead(id));
        if let Some(e) = self.out.ends.get_mut(self.out.n) {
            *e = (id, end);
            self.out.n += 1;
        }
    }

    /// End the domain in slot `idx` (if any, and not ending already) as
    /// `end`: off the scheduler, its VMCS and register save area freed (a
    /// constant amount of work), and its teardown started; a domain alone
    /// (no teardown) is only checked, at once.
    fn end_slot<'a, M: PhysMem, C: Console>(
        &mut self,
        guests: &mut [Option<Guest<'a, M, C>>],
        sched: &mut Scheduler<SCHED_SLOTS>,
        idx: usize,
        end: DomainEnd,
    ) {
        let Some(g) = guests.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if g.dying.is_some() {
            return;
        }
        domain_ended(g.service);
        let id = g.vcpu.domain_id();
        // Its vCPUs on other CPUs stop there (its teardown waits for them).
        kick_cpus(remote::set_dead(id));
        // No new grant reaches it; those it granted are still undone
        // through it.
        REGISTRY.ended(id);
        sched.remove_all(Slots::of_domain(id));
        g.free_parked(self.pc, self.pool, self.frames);
        if !self.tear_down {
            let Some(guest) = guests.get_mut(idx).and_then(Option::take) else {
                return;
            };
            let end = end_guest(
                self.pc,
                guest,
                self.frames,
                end,
                &mut self.out.accounting_bug,
                others(guests, sched, self.control),
            );
            REGISTRY.withdraw(id);
            self.record(id, end);
            return;
        }
        if make_current(self.pc, g.vf.vmcs).is_ok() {
            // The VMCS frame is freed: the record keeps its number only.
            let none = VmcsFrames {
                vmcs: g.vf.vmcs,
                msr_bitmap: None,
                io_bitmaps: None,
            };
            let vf = core::mem::replace(&mut g.vf, none);
            finish(self.pc, vf, self.frames, end);
        } else {
            log::error!(
                "vmx: cannot load the VMCS of an ended domain to clear it; leaking its frame"
            );
        }
        if let Some(s) = g.switched.take() {
            self.frames.free_frame(s.area());
        }
        self.dying += 1;
        g.dying = Some(Dying {
            t: Teardown::new(id, lifecycle_end(end)),
            end,
            returned: 0,
            leaked: false,
        });
    }

    /// One bounded step of the first teardown in progress
    /// ([`Teardown::step`]); when it finishes, the slot is free and the end
    /// recorded. Whether a teardown has work it can do now. Kept out of the
    /// run loop's body (`inline(never)`): the switch path stays as short as
    /// without teardowns (`bench_switch_*`).
    #[inline(never)]
    fn step_teardown<'a, M: PhysMem, C: Console>(
        &mut self,
        guests: &mut [Option<Guest<'a, M, C>>],
        sched: &mut Scheduler<SCHED_SLOTS>,
    ) -> bool {
        let waiting = |g: &Option<Guest<'a, M, C>>| matches!(g, Some(g) if g.dying.as_ref().is_some_and(|d| d.t.phase != Phase::Grants));
        let idx = match guests.iter().position(waiting) {
            Some(i) => i,
            // Only teardowns waiting for others' unmaps: look at each once.
            None => match guests
                .iter()
                .position(|g| matches!(g, Some(g) if g.dying.is_some()))
            {
                Some(i) => i,
                None => return false,
            },
        };
        // A CPU may still run one of its vCPUs: nothing of it is freed yet.
        if let Some(Some(g)) = guests.get(idx) {
            if remote::any_held(g.vcpu.domain_id()) {
                return false;
            }
        }
        let me = self.pc.index();
        let control = self.control;
        let frames = &mut *self.frames;
        // The step reaches the ended domain's peers (its ports' other ends,
        // the grants it mapped, the control domain): on several CPUs, with
        // theirs lent, and with this CPU's lent whole (the ended domain
        // included: an unmap of its grants reaches it) while it waits.
        let stepped = if lend::several_cpus() {
            let mut on = others(&mut *guests, &mut *sched, control);
            lend::cross(
                me,
                &mut CpuView {
                    on: &mut on,
                    running: None,
                },
                |own, lent| {
                    take_all_posted(me, own, lent);
                    let on = &mut *own.on;
                    step_at(
                        &mut *on.before,
                        idx,
                        &mut *on.sched,
                        control,
                        me,
                        frames,
                        Some(lent),
                    )
                },
            )
        } else {
            step_at(guests, idx, sched, control, me, frames, None)
        };
        let Some((done, waited)) = stepped else {
            return false;
        };
        let Some(g) = guests.get_mut(idx).and_then(Option::as_mut) else {
            return false;
        };
        let id = g.vcpu.domain_id();
        let Some(d) = g.dying.as_mut() else {
            return false;
        };
        if !done {
            return !waited;
        }
        let (_, mem) = g.vcpu.parts_mut();
        crate::grant::world::reap(&crate::grant::STORE, mem, &mut *self.frames);
        let (end, returned, leaked) = (d.end, d.returned, d.leaked);
        if leaked {
            self.out.accounting_bug = true;
        } else {
            log::info!(
                "domain {}: torn down, every count back to zero; {returned} frames scrubbed and returned",
                id.0
            );
        }
        if let Some(slot) = guests.get_mut(idx) {
            *slot = None;
        }
        self.dying -= 1;
        self.record(id, end);
        true
    }

    /// End every live domain `which` picks, each as `end` (saying `why`).
    fn end_each<'a, M: PhysMem, C: Console>(
        &mut self,
        guests: &mut [Option<Guest<'a, M, C>>],
        sched: &mut Scheduler<SCHED_SLOTS>,
        which: impl Fn(&Guest<'a, M, C>) -> bool,
        end: DomainEnd,
        why: Option<&str>,
    ) {
        for i in 0..guests.len() {
            let Some(g) = guests.get(i).and_then(Option::as_ref).filter(|g| which(g)) else {
                continue;
            };
            if g.dying.is_some() {
                continue;
            }
            if let Some(why) = why {
                log::error!("domain {}: {why}", g.vcpu.domain_id().0);
            }
            self.end_slot(guests, sched, i, end);
        }
    }
}

/// Wake the CPUs of `set` (bit per CPU).
fn kick_cpus(set: u32) {
    for c in 0..32 {
        if set & (1 << c) != 0 {
            lend::kick(c);
        }
    }
}

/// This CPU's requests from the others (`smp::remote`): for its domains,
/// the ends their remote vCPUs decided and their vCPUs' changes of state;
/// for the remote vCPUs it runs, their starts, wake-ups and their domains'
/// ends. Out of line: a CPU without remote vCPUs never comes here.
#[inline(never)]
fn requests<'a, M: PhysMem, C: Console, F: FrameSource>(
    cpu: &VmxCpu,
    pc: &PerCpu,
    ends: &mut Ending<'_, F>,
    guests: &mut [Option<Guest<'a, M, C>>],
    sched: &mut Scheduler<SCHED_SLOTS>,
    visitors: &mut [Option<visit::Visiting>],
    control: Option<DomainId>,
) {
    let me = pc.index();
    for id in 1..=MAX_DOMAINS as u16 {
        let d = DomainId(id);
        let idx = usize::from(id) - 1;
        if cpu_of(d) == Some(me) {
            if let Some(code) = remote::take_end(d) {
                ends.end_slot(guests, sched, idx, visit::end_of(code));
            }
            if remote::take_sync(d) {
                if let Some(Some(g)) = guests.get_mut(idx) {
                    if g.dying.is_none() && g.multi {
                        sync_vcpus(cpu, pc, g, sched, ends.pool);
                    }
                }
            }
        }
        // Its vCPUs here: dropped once it is dead, else started and woken.
        if remote::dead(d) {
            for x in visitors.iter_mut() {
                if x.as_ref().is_some_and(|x| x.domain() == d) {
                    if let Some(x) = x.take() {
                        visit::drop_visitor(pc, x, sched, ends.frames);
                    }
                }
            }
            let _ = (remote::take_up(d, me), remote::take_wake(d, me));
            continue;
        }
        // This CPU's vCPUs' requests only: the others' stay for their CPUs.
        let ups = remote::take_up(d, me);
        let wakes = remote::take_wake(d, me);
        for v in 0..MAX_VCPUS as u32 {
            if remote::vcpu_cpu(d, v) != Some(me) {
                continue;
            }
            let Some(slot) = Slots::slot(d, v) else {
                continue;
            };
            let here = visitors.iter().any(|x| matches!(x, Some(x) if x.is(d, v)));
            if ups & (1 << v) != 0 && !remote::started(d, v) {
                if !here {
                    let free = visitors.iter().position(Option::is_none);
                    let mut on = others(&mut *guests, &mut *sched, control);
                    let room = free.is_some();
                    let Some(x) = visit::start(cpu, pc, &mut on, d, v, room, ends.frames) else {
                        continue;
                    };
                    if let Some(e) = free.and_then(|f| visitors.get_mut(f)) {
                        *e = Some(x);
                    }
                }
                sched.add(slot, DEFAULT_WEIGHT);
                remote::set_started(d, v, true);
            } else if wakes & (1 << v) != 0 && here {
                sched.wake(slot);
            }
        }
    }
}

/// One run of the remote vCPU `visitors[i]` until `until` (`visit::run`),
/// and what its scheduler makes of it.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn run_visitor<'a, M: PhysMem, C: Console, F: FrameSource>(
    cpu: &VmxCpu,
    pc: &PerCpu,
    ends: &mut Ending<'_, F>,
    guests: &mut [Option<Guest<'a, M, C>>],
    sched: &mut Scheduler<SCHED_SLOTS>,
    visitors: &mut [Option<visit::Visiting>],
    control: Option<DomainId>,
    i: usize,
    until: u64,
) {
    let Some(Some(x)) = visitors.get_mut(i) else {
        return;
    };
    let Some(slot) = x.slot() else { return };
    let mut on = others(&mut *guests, &mut *sched, control);
    let (before, after) = visit::run(cpu, pc, &mut on, x, until, ends.frames);
    let now = timer::rdtsc();
    let gone = match before {
        visit::Before::Gone => true,
        visit::Before::Down => {
            sched.remove(slot);
            remote::set_started(x.domain(), Slots::vcpu_of(slot).1, false);
            false
        }
        visit::Before::Blocked(deadline) => {
            sched.block(deadline, now);
            false
        }
        visit::Before::Enter => match after {
            visit::After::Ran => false,
            visit::After::Yielded => {
                sched.yield_now(now);
                false
            }
            visit::After::Blocked(deadline) => {
                sched.block(deadline, now);
                false
            }
            visit::After::Gone => true,
        },
    };
    if gone {
        if let Some(x) = visitors.get_mut(i).and_then(Option::take) {
            visit::drop_visitor(pc, x, sched, ends.frames);
        }
    }
}

/// Every domain of this CPU's table, none left out: what it lends at the
/// top of its run loop, what a teardown step or a remote vCPU's operation
/// sees of it, and the peers of a domain that ends (its slot already empty).
fn others<'r, 'a, M: PhysMem, C: Console>(
    guests: &'r mut [Option<Guest<'a, M, C>>],
    sched: &'r mut Scheduler<SCHED_SLOTS>,
    control: Option<DomainId>,
) -> OnCpu<'r, 'a, M, C> {
    let skip = guests.len();
    OnCpu {
        cpu: crate::vmx::percpu::this().index(),
        before: guests,
        after: &mut [],
        skip,
        sched,
        control,
        rearm: None,
        hole: NO_HOLE,
        split: &mut [],
    }
}

/// The failed VMLAUNCH/VMRESUME, named; after a failed VMLAUNCH, which check
/// the CPU applied that Keel's software does not.
fn report_entry_failure(cpu: &VmxCpu, leave: Leave, rflags: u64) {
    let what = if matches!(leave, Leave::LaunchFailed(_)) {
        "VMLAUNCH"
    } else {
        "VMRESUME"
    };
    match vm_result(rflags) {
        Err(e) => log::error!("vmx: {what} failed: {e}"),
        Ok(()) => log::error!("vmx: {what} failed with RFLAGS {rflags:#x}"),
    }
    if matches!(leave, Leave::LaunchFailed(_)) {
        let again = read_state(cpu);
        match check_vm_entry(&again, &cpu.caps) {
            Ok(()) => log::error!("vmx: the software VM-entry checks pass: the CPU applied a check Keel does not model"),
            Err(f) => log::error!("vmx: VM-entry check now fails: {f}"),
        }
    }
}

/// Set the host up for saving guest state between domains: CR4.OSFXSR, so
/// that FXSAVE/FXRSTOR include the SSE registers. Before any VMCS takes the
/// host CR4 (every exit loads it). The host itself never uses SSE.
fn prepare_host_for_switching() {
    super::setup::enable_host_fxsr();
}

/// A domain's VMCS (allocated, loaded, written, checked in software) and its
/// vCPU; on failure, how the domain ends.
fn prepare<'a, M: PhysMem, C: Console>(
    cpu: &VmxCpu,
    pc: &PerCpu,
    d: ToRun<'a, M, C>,
    frames: &mut impl FrameSource,
    clock: crate::time::Clock,
    wall: u64,
    shared: bool,
) -> Result<Guest<'a, M, C>, DomainEnd> {
    let ToRun {
        dom,
        mem,
        console,
        service,
    } = d;
    // --- The VMCS region, VMCLEARed (which also initializes its launch state)
    // and made current.
    let Some(vf) = vmcs_frames(cpu, frames, mem) else {
        log::error!("vmx: no free frames for the VMCS and its MSR/I/O bitmaps");
        return Err(DomainEnd::EntryFailed);
    };
    let vmcs = vf.vmcs;
    if let Err(e) = load_vmcs(pc, vmcs) {
        log::error!(
            "vmx: VMCLEAR/VMPTRLD of the VMCS at {:#x} failed: {e}",
            vmcs.addr().get()
        );
        vf.free(frames);
        return Err(DomainEnd::EntryFailed);
    }

    // VPID: the domain id (0 would mean "no VPID", so domain 0 would get 0xffff).
    let vpid = if dom.id.0 == 0 { 0xffff } else { dom.id.0 };

    if !cpu.controls.load_efer {
        host_efer_for_guest(dom.nx_enabled());
    }

    if let Err((field, e)) = setup_vmcs(pc, cpu, dom, vpid, &vf) {
        log::error!("vmx: VMWRITE of VMCS field {field:#x} failed: {e}");
        return Err(finish(pc, vf, frames, DomainEnd::EntryFailed));
    }

    // --- The software VM-entry checks, on what the CPU actually holds.
    let state = read_state(cpu);
    if let Err(f) = check_vm_entry(&state, &cpu.caps) {
        log::error!("vmx: VM-entry check failed: {f}");
        return Err(finish(pc, vf, frames, DomainEnd::EntryFailed));
    }
    log::info!(
        "vmx: VMCS for domain {} passes the software VM-entry checks (pin {:#x} proc {:#x} proc2 {:#x} exit {:#x} entry {:#x}; host CR0 {:#x} CR4 {:#x})",
        dom.id.0,
        state.pin,
        state.proc,
        state.proc2,
        state.exit,
        state.entry,
        state.host_cr0,
        state.host_cr4
    );

    // An earlier domain may have used this VPID: drop its translations.
    if cpu.controls.vpid {
        let ty = match cpu.controls.tlb_flush {
            TlbFlush::InvvpidAllContext => InvvpidType::AllContext,
            _ if cpu.caps.ept_vpid.invvpid_single_context() => InvvpidType::SingleContext,
            _ => InvvpidType::AllContext,
        };
        if let Err(e) = invvpid(ty, vpid, 0) {
            log::error!("vmx: INVVPID before the first entry failed: {e}");
            return Err(finish(pc, vf, frames, DomainEnd::EntryFailed));
        }
    }

    let switched = if shared {
        let Some(area) = frames.alloc_frame() else {
            log::error!(
                "vmx: no free frame for domain {}'s register save area",
                dom.id.0
            );
            return Err(finish(pc, vf, frames, DomainEnd::EntryFailed));
        };
        let xsave = crate::arch::cpu::read_cr4() & crate::arch::bits::cr4::OSXSAVE != 0;
        Some(SwitchedState::new(area, mem, &msr_env(cpu), xsave))
    } else {
        None
    };
    let (entry, start_info) = (dom.boot.entry.get(), dom.boot.start_info.get());
    let ev = events_for(dom, mem, clock, wall);
    let (id, nx) = (dom.id.0, dom.nx_enabled());
    let multi = dom.vcpus.count() > 1;
    // Grants of domains on other CPUs reach it from now on.
    REGISTRY.publish(dom.id, dom.frame_record());
    let mut vcpu = Vcpu::new(cpu, dom, mem, console, vpid, ev);
    if shared {
        vcpu.share_cpu();
    }
    log::info!("vmx: domain {id} enters at {entry:#x}");
    Ok(Guest {
        vcpu,
        vf,
        gprs: GuestGprs {
            rsi: start_info,
            ..GuestGprs::ZERO
        },
        launched: false,
        switched,
        service,
        nx,
        dying: None,
        parked: [NO_PARKED; MAX_VCPUS],
        scheduled: 1,
        multi,
        seen: 0,
        links_here: false,
        links_made: u64::MAX,
    })
}

/// After a run of a vCPU of a domain of several: each vCPU brought up since
/// (`VCPUOP_up`, which leaves to this loop) gets a scheduler slot, and its
/// VMCS made the first time (in the frames its place holds: `VCPUOP_up`
/// refused a vCPU without one); each brought down (`VCPUOP_down`) leaves
/// the scheduler. All on this CPU, the domain's (the policy:
/// `docs/architecture.md`).
#[inline(never)]
fn sync_vcpus<M: PhysMem, C: Console>(
    cpu: &VmxCpu,
    pc: &PerCpu,
    g: &mut Guest<'_, M, C>,
    sched: &mut Scheduler<SCHED_SLOTS>,
    pool: &mut [Option<Place>],
) {
    let d = g.vcpu.domain_id();
    for v in 0..u32::from(g.vcpu.domain().vcpus.count()) {
        let up = g.vcpu.domain().vcpus.up_at(v);
        let bit = 1u8 << v;
        let Some(slot) = Slots::slot(d, v) else {
            continue;
        };
        // A vCPU on another CPU: that CPU starts it, or takes it off its
        // scheduler (woken, it finds itself down).
        if remote::vcpu_cpu(d, v).is_some() {
            let asked = match (up, remote::started(d, v)) {
                (true, false) => remote::request_up(d, v),
                (false, true) => remote::request_wake(d, v),
                _ => None,
            };
            if let Some(c) = asked {
                lend::kick(c);
            }
            continue;
        }
        if up && g.scheduled & bit == 0 {
            if v != g.vcpu.loaded_vcpu() && !start_held(cpu, pc, g, v, pool) {
                // Up but unable to run: down again, not claimed up.
                let now = timer::rdtsc();
                g.vcpu.parts_mut().0.vcpus.start_failed(v, now);
                continue;
            }
            sched.add(slot, DEFAULT_WEIGHT);
            g.scheduled |= bit;
        } else if !up && g.scheduled & bit != 0 {
            sched.remove(slot);
            g.scheduled &= !bit;
        }
    }
}

/// vCPU `v` of `g`'s domain (not the loaded one) can run: started already,
/// or started now in the place held for it. False (logged: a Keel defect)
/// if it has no place or its VMCS cannot be made.
fn start_held<M: PhysMem, C: Console>(
    cpu: &VmxCpu,
    pc: &PerCpu,
    g: &mut Guest<'_, M, C>,
    v: u32,
    pool: &mut [Option<Place>],
) -> bool {
    let at = g.parked.get(v as usize).copied().unwrap_or(NO_PARKED);
    let Some(entry) = pool.get_mut(usize::from(at)) else {
        log::error!(
            "vmx: vCPU {v} of domain {} is up without a place",
            g.vcpu.domain_id().0
        );
        return false;
    };
    match entry.take() {
        Some(Place::Held(h)) => match start_sibling(cpu, pc, &mut g.vcpu, v, h) {
            Ok(p) => {
                *entry = Some(Place::Parked(p));
                true
            }
            Err(h) => {
                *entry = Some(Place::Held(h));
                false
            }
        },
        other => {
            let started = other.is_some();
            *entry = other;
            started
        }
    }
}

/// Hold a place in `pool`, with its frames, for each vCPU of `g`'s domain
/// beyond vCPU 0, as its domain starts on this CPU and while the pool and
/// the frames last; the domain's vCPU table learns which vCPUs have one
/// (`VCPUOP_up` refuses the others: `-ENOMEM`). Held until the domain
/// ends, as Xen creates a domain's vCPUs with it, so that no other domain
/// can take them meanwhile.
fn hold_places<M: PhysMem, C: Console>(
    cpu: &VmxCpu,
    g: &mut Guest<'_, M, C>,
    pool: &mut [Option<Place>],
    frames: &mut impl FrameSource,
) {
    let count = u32::from(g.vcpu.domain().vcpus.count());
    let id = g.vcpu.domain_id().0;
    for v in 1..count {
        // A vCPU on another CPU takes its frames there when it starts
        // (`visit::start`).
        if remote::vcpu_cpu(g.vcpu.domain_id(), v).is_some() {
            g.vcpu.parts_mut().0.vcpus.give_place(v);
            continue;
        }
        let (Some(free), Some(mark)) = (
            pool.iter().position(Option::is_none),
            g.parked.get_mut(v as usize),
        ) else {
            log::warn!(
                "vmx: domain {id}: no parked place on this CPU for vCPUs {v}-{} (VCPUOP_up refuses them)",
                count - 1
            );
            return;
        };
        let (dom, mem) = g.vcpu.parts_mut();
        let Some(h) = Held::alloc(cpu, frames, mem) else {
            log::warn!(
                "vmx: domain {id}: no free frames for vCPUs {v}-{} (VCPUOP_up refuses them)",
                count - 1
            );
            return;
        };
        if let Some(e) = pool.get_mut(free) {
            *e = Some(Place::Held(h));
            *mark = free as u8;
            dom.vcpus.give_place(v);
        }
    }
}

impl Held {
    /// A VMCS region and bitmaps, and a register save area; `None`, with
    /// every frame given back, if the frames ran out.
    fn alloc(cpu: &VmxCpu, frames: &mut impl FrameSource, mem: &mut impl PhysMem) -> Option<Self> {
        let vf = vmcs_frames(cpu, frames, mem)?;
        let Some(area) = frames.alloc_frame() else {
            vf.free(frames);
            return None;
        };
        Some(Held { vf, area })
    }

    /// Give the frames back.
    fn free(self, frames: &mut impl FrameSource) {
        self.vf.free(frames);
        frames.free_frame(self.area);
    }
}

/// A vCPU's VMCS region (a zeroed frame starting with the revision
/// identifier) and the MSR and I/O bitmaps the CPU's controls use; `None`,
/// with every frame it took given back, if the frames ran out.
fn vmcs_frames(
    cpu: &VmxCpu,
    frames: &mut impl FrameSource,
    mem: &mut impl PhysMem,
) -> Option<VmcsFrames> {
    let vmcs = frames.alloc_frame()?;
    mem.zero_frame(vmcs);
    mem.write(vmcs.addr(), &cpu.caps.revision_id.to_le_bytes());
    let mut vf = VmcsFrames {
        vmcs,
        msr_bitmap: None,
        io_bitmaps: None,
    };
    if cpu.controls.msr_bitmaps {
        vf.msr_bitmap = build_msr_bitmap(frames, mem, &msr_env(cpu));
    }
    if cpu.controls.io_bitmaps {
        vf.io_bitmaps = ones_frame(frames, mem).zip(ones_frame(frames, mem));
    }
    if (cpu.controls.msr_bitmaps && vf.msr_bitmap.is_none())
        || (cpu.controls.io_bitmaps && vf.io_bitmaps.is_none())
    {
        vf.free(frames);
        return None;
    }
    Some(vf)
}

/// The VMCS and register save area of vCPU `v` of `g`'s domain, its first
/// time up, in the frames held for it: as vCPU 0's (`prepare`), started
/// where `VCPUOP_initialise` said (`setup::start_vcpu`), with VPID
/// `id + 256 * v`. The frames back (logged) if a VMX instruction fails: the
/// vCPU stays without a slot.
fn start_sibling<M: PhysMem, C: Console>(
    cpu: &VmxCpu,
    pc: &PerCpu,
    vcpu: &mut Vcpu<'_, M, C>,
    v: u32,
    held: Held,
) -> Result<Parked, Held> {
    let (dom, mem) = vcpu.parts_mut();
    let id = dom.id.0;
    let (Some(start), Some(root)) = (
        dom.vcpus.get(u64::from(v)).ok().and_then(|s| s.start),
        dom.vcpu_base(v),
    ) else {
        log::error!("vmx: vCPU {v} of domain {id} is up without a context");
        return Err(held);
    };
    let vmcs = held.vf.vmcs;
    let vpid = id.wrapping_add((v as u16) << 8);
    let made = load_vmcs(pc, vmcs)
        .map_err(|e| (0, e))
        .and_then(|()| setup_vmcs(pc, cpu, dom, vpid, &held.vf))
        .and_then(|()| start_vcpu(&start));
    if let Err((field, e)) = made {
        log::error!("vmx: VMCS of vCPU {v} of domain {id}: field {field:#x}: {e}");
        let _ = clear_vmcs(pc);
        return Err(held);
    }
    init_vmcs_exits();
    if let Err(f) = check_vm_entry(&read_state(cpu), &cpu.caps) {
        log::error!("vmx: vCPU {v} of domain {id}: VM-entry check failed: {f}");
        let _ = clear_vmcs(pc);
        return Err(held);
    }
    let Held { vf, area } = held;
    if cpu.controls.vpid {
        let _ = invvpid(InvvpidType::AllContext, vpid, 0);
    }
    let xsave = crate::arch::cpu::read_cr4() & crate::arch::bits::cr4::OSXSAVE != 0;
    let switched = SwitchedState::new(area, mem, &msr_env(cpu), xsave);
    let r = start.gprs;
    // `cpu_user_regs` order: R15, R14, R13, R12, RBP, RBX, R11, R10, R9,
    // R8, RAX, RCX, RDX, RSI, RDI.
    let gprs = GuestGprs {
        r15: r[0],
        r14: r[1],
        r13: r[2],
        r12: r[3],
        rbp: r[4],
        rbx: r[5],
        r11: r[6],
        r10: r[7],
        r9: r[8],
        r8: r[9],
        rax: r[10],
        rcx: r[11],
        rdx: r[12],
        rsi: r[13],
        rdi: r[14],
    };
    log::info!(
        "vmx: vCPU {v} of domain {id} starts at {:#x} (VPID {vpid})",
        start.rip
    );
    Ok(Parked {
        vf,
        gprs,
        launched: false,
        switched: Some(switched),
        exit: VcpuParked::start(vpid, root),
    })
}

/// A domain alone has ended: its VMCS cleared and freed and its counts
/// checked (the machine powers off next, so its frames are not scrubbed;
/// several domains are torn down a step at a time instead, `Ending`).
/// Returns how it ended.
fn end_guest<M: PhysMem, C: Console>(
    pc: &PerCpu,
    g: Guest<'_, M, C>,
    frames: &mut impl FrameSource,
    end: DomainEnd,
    accounting_bug: &mut bool,
    mut peers: OnCpu<'_, '_, M, C>,
) -> DomainEnd {
    let Guest {
        mut vcpu,
        vf,
        switched,
        ..
    } = g;
    vcpu.close_ports(&mut peers);
    if make_current(pc, vf.vmcs).is_ok() {
        finish(pc, vf, frames, end);
    } else {
        log::error!("vmx: cannot load the VMCS of an ended domain to clear it; leaking its frame");
    }
    if let Some(s) = switched {
        frames.free_frame(s.area());
    }
    let (dom, mem) = vcpu.into_parts();
    let id = dom.id.0;
    // What it holds through grants first: those references are not its page
    // tables', and the check below counts them.
    crate::grant::world::release_domain(&crate::grant::STORE, dom, mem, &peers);
    let leaked = dom.release_mm(mem);
    if leaked != 0 {
        log::error!(
            "domain {id}: {leaked} frames kept type or reference counts after teardown: accounting bug"
        );
        *accounting_bug = true;
    } else {
        log::info!("domain {id}: torn down, every count back to zero");
    }
    crate::grant::world::reap(&crate::grant::STORE, mem, frames);
    peers.notify_control(dom.id);
    end
}

/// The live domains as an ending domain's teardown reaches them: its peers,
/// and the control domain to tell.
trait Survivors: Peers {
    /// Raise `VIRQ_DOM_EXC` in the control domain for `ended`.
    fn notify_control(&mut self, ended: DomainId);
}

impl<M: PhysMem, C: Console> Survivors for OnCpu<'_, '_, M, C> {
    fn notify_control(&mut self, ended: DomainId) {
        OnCpu::notify_control(self, ended);
    }
}

impl<M: PhysMem, C: Console> Survivors for Cluster<'_, '_, '_, '_, '_, '_, M, C> {
    fn notify_control(&mut self, ended: DomainId) {
        Cluster::notify_control(self, ended);
    }
}

/// One bounded step of the teardown of the ended domain in slot `idx` of
/// `guests`, the others its peers (with `lent`, those of other CPUs too):
/// whether it is done, and whether it was waiting for others' unmaps.
#[allow(clippy::too_many_arguments)]
fn step_at<'a, M: PhysMem, C: Console>(
    guests: &mut [Option<Guest<'a, M, C>>],
    idx: usize,
    sched: &mut Scheduler<SCHED_SLOTS>,
    control: Option<DomainId>,
    me: usize,
    frames: &mut impl FrameSource,
    lent: Option<&mut Lent<'_, CpuView<'_, '_, 'a, M, C>>>,
) -> Option<(bool, bool)> {
    let (before, rest) = guests.split_at_mut(idx);
    let (Some(g), after) = rest.split_first_mut()? else {
        return None;
    };
    let d = g.dying.as_mut()?;
    let waited = d.t.phase == Phase::Grants;
    let mut peers = OnCpu {
        cpu: me,
        before,
        after,
        skip: idx,
        sched,
        control,
        rearm: None,
        hole: NO_HOLE,
        split: &mut [],
    };
    let done = match lent {
        Some(lent) => {
            let mut cl = Cluster {
                me,
                own: &mut peers,
                lent,
            };
            teardown_step(&mut g.vcpu, &mut cl, frames, d)
        }
        None => teardown_step(&mut g.vcpu, &mut peers, frames, d),
    };
    Some((done, waited))
}

/// One bounded step of the teardown `d` of `vcpu`'s domain; whether it is done.
fn teardown_step<M: PhysMem, C: Console, P: Survivors>(
    vcpu: &mut Vcpu<'_, M, C>,
    peers: &mut P,
    frames: &mut impl FrameSource,
    d: &mut Dying,
) -> bool {
    let mut w = TeardownOnCpu {
        vcpu,
        peers,
        frames,
        dying: d,
    };
    // Waiting for its grants: their frames may be free to reap now (an
    // unmap or another teardown released them).
    if crate::grant::world::REAP_HINT.load(Relaxed) || w.dying.t.phase == Phase::Grants {
        let (_, mem) = w.vcpu.parts_mut();
        crate::grant::world::reap(&crate::grant::STORE, mem, &mut *w.frames);
    }
    let mut t = w.dying.t;
    let done = t.step(&mut w, TEARDOWN_BUDGET);
    w.dying.t = t;
    // Its grants are released: the registry forgets it (as
    // `OnCpu::holder` does).
    if !matches!(
        t.phase,
        Phase::Notify | Phase::Ports(_) | Phase::Mappings(_)
    ) {
        REGISTRY.withdraw(t.dom);
    }
    done
}

/// A teardown's phases (`crate::lifecycle`) on this CPU: the ended domain's
/// vCPU (its ports, its record, the machine) and the live domains.
struct TeardownOnCpu<'x, 'a, M: PhysMem, C: Console, P: Survivors, F: FrameSource> {
    vcpu: &'x mut Vcpu<'a, M, C>,
    peers: &'x mut P,
    frames: &'x mut F,
    dying: &'x mut Dying,
}

impl<M: PhysMem, C: Console, P: Survivors, F: FrameSource> TeardownWorld
    for TeardownOnCpu<'_, '_, M, C, P, F>
{
    fn notify_control(&mut self, ended: DomainId) {
        self.peers.notify_control(ended);
    }

    fn close_ports(&mut self, _: DomainId, cursor: u32, budget: u32) -> Option<u32> {
        self.vcpu.close_ports_from(&mut *self.peers, cursor, budget)
    }

    fn release_mappings(&mut self, _: DomainId, cursor: usize, budget: u32) -> Option<usize> {
        let (dom, mem) = self.vcpu.parts_mut();
        let store = &crate::grant::STORE;
        let next = crate::grant::world::release_mappings_from(
            store,
            dom,
            mem,
            &*self.peers,
            cursor,
            budget as usize,
        );
        if next.is_none() {
            // Its own grants others still map outlive it; its table frames'
            // references go (bounded by its table's entries).
            crate::grant::world::release_own(store, dom, mem, &*self.peers);
        }
        next
    }

    /// Cursor 0: drop every pin and the base, and check that every count is
    /// back to zero (the teardown check); then cursor `n + 1`: scrub and free
    /// from PFN `n`.
    fn free_frames(&mut self, _: DomainId, cursor: u64, budget: u32) -> Option<u64> {
        let (dom, mem) = self.vcpu.parts_mut();
        let Some(from) = cursor.checked_sub(1) else {
            let leaked = dom.release_mm(mem);
            if leaked != 0 {
                log::error!(
                    "domain {}: {leaked} frames kept type or reference counts after teardown: accounting bug",
                    dom.id.0
                );
                self.dying.leaked = true;
            }
            return Some(1);
        };
        let before = self.frames.free_count();
        let next = dom.free_frames_from(mem, &mut *self.frames, from, u64::from(budget));
        self.dying.returned += self.frames.free_count().saturating_sub(before);
        next.map(|n| n + 1)
    }

    fn grants_quiescent(&self, d: DomainId) -> bool {
        crate::grant::world::quiescent(&crate::grant::STORE, d)
    }
}

/// How the lifecycle sees a domain's end.
pub fn lifecycle_end(end: DomainEnd) -> End {
    match end {
        DomainEnd::Shutdown(keel_abi::sched::SHUTDOWN_POWEROFF) => End::PowerOff,
        DomainEnd::Shutdown(keel_abi::sched::SHUTDOWN_CRASH)
        | DomainEnd::Crashed
        | DomainEnd::EntryFailed => End::Crash,
        DomainEnd::Shutdown(_) | DomainEnd::Destroyed => End::Other,
        DomainEnd::DestroyedByControl => End::Destroyed,
    }
}

/// The hardware set-up before the first entry: mask the PIC, calibrate the
/// TSC against the PIT, read the RTC, enable the local APIC and its timer.
/// Returns the clock and the wall-clock time at its zero.
fn start_time(cpu: &VmxCpu) -> (crate::time::Clock, u64) {
    use crate::arch::timer;
    timer::mask_pic();
    // 50 ms of PIT ticks.
    let pit = (timer::PIT_HZ / 20) as u16;
    let (tsc_ticks, pit_ticks) = timer::calibrate_tsc(pit);
    let hz = crate::time::calibrate(tsc_ticks, pit_ticks, timer::PIT_HZ).unwrap_or(1_000_000_000);
    crate::arch::serial::set_tsc_hz(hz);
    let tsc0 = timer::rdtsc();
    let clock = crate::time::Clock::new(tsc0, hz);
    let rtc = timer::read_rtc();
    let wall = crate::time::rtc_to_unix(rtc).unwrap_or(0);
    let deadline = timer::init_lapic();
    log::info!(
        "time: TSC {} kHz (PIT, 50 ms), scale mul {:#x} shift {}; wall clock {} ({:04}-{:02}-{:02} {:02}:{:02}:{:02} RTC); local APIC timer {}; guest timers via {}",
        hz / 1000,
        clock.scale.mul,
        clock.scale.shift,
        wall,
        rtc.year,
        rtc.month,
        rtc.day,
        rtc.hour,
        rtc.min,
        rtc.sec,
        if deadline { "TSC-deadline" } else { "one-shot" },
        if cpu.caps.pin.can_set(PinbasedControls::PREEMPTION_TIMER) {
            "the VMX-preemption timer"
        } else {
            "the local APIC timer (no VMX-preemption timer)"
        }
    );
    (clock, wall)
}

/// A domain's event state (shared_info page, pvclock, wall clock).
fn events_for(
    dom: &Domain,
    mem: &mut impl PhysMem,
    clock: crate::time::Clock,
    wall: u64,
) -> crate::event::EventState {
    let ev = crate::event::EventState::new(dom, mem, clock, wall);
    match ev.shared {
        Some(m) => log::info!("events: shared_info at machine {:#x}", m.addr().get()),
        None => log::warn!(
            "events: domain {} has no free frame for shared_info: no events",
            dom.id.0
        ),
    }
    ev
}

/// VMCLEAR the VMCS (writes its state back to memory and makes it not current),
/// give its frames back, and report how the run ended.
fn finish(pc: &PerCpu, vf: VmcsFrames, frames: &mut impl FrameSource, end: DomainEnd) -> DomainEnd {
    if let Err(e) = clear_vmcs(pc) {
        // Do not reuse a frame the CPU may still cache.
        log::error!("vmx: VMCLEAR at domain end failed: {e}; leaking the VMCS frame");
        return end;
    }
    vf.free(frames);
    log::info!(
        "vmx: {} exits, {} VMREADs, {} VMWRITEs",
        pc.stats.total_exits(),
        pc.stats.vmreads.load(Relaxed),
        pc.stats.vmwrites.load(Relaxed)
    );
    // By reason, so a benchmark can be checked for the exits it should (not) cause,
    // e.g. that a pass-through WRMSR never exits.
    for (basic, c) in pc.stats.exits.iter().enumerate() {
        let n = c.load(Relaxed);
        if n != 0 {
            let basic = basic as u16;
            log::info!(
                "vmx:   {n} exits for reason {basic} ({}{})",
                super::names::exit_reason_name(basic),
                if usize::from(basic) == COUNTED_EXIT_REASONS - 1 {
                    " or higher"
                } else {
                    ""
                }
            );
        }
    }
    end
}
