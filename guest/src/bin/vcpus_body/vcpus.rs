//! The body of `vcpus`, `vcpus_4` and `vcpus_spread` (ABI 1.2 preview): a
//! domain's vCPUs, as many as the test's `keel.vcpus=N` asks for, on the
//! CPUs its `keel.vcpu_cpus=` places them (the runner gives the words to
//! the hypervisor: `loader/src/runner.rs`'s `TEST_DOMAIN_WORDS`).
//!
//! vCPU 0 checks the refusals (`-ENOENT` past the domain's count, `-EEXIST`
//! for a vCPU with a context, `-EINVAL` for `VCPUOP_up` before
//! `VCPUOP_initialise` and for contexts Keel refuses), starts every other
//! vCPU on [`worker`] ([`keel_guest::smp`]) and drives them by commands, each
//! posted in the worker's slot and announced by an IPI to it: IPIs between
//! every pair of vCPUs (each seen by the upcall of the vCPU it is bound to
//! and no other), a wake-up loop (the worker blocked in `SCHEDOP_block` or
//! `STI; HLT` after looking at its slot with events masked, woken by the
//! sender's IPI: a lost wake-up is a command never answered), a singleshot
//! timer per vCPU (`VCPUOP_set_singleshot_timer` and `set_timer_op`, each
//! firing on its own vCPU only), run states (a spinning vCPU's running time
//! grows), `VCPUOP_down` and `VCPUOP_up` of a worker (it resumes where it
//! was), the same of a worker that is running, spinning in guest mode (it
//! stops at once, not at its next block), and each worker's return (the
//! vCPU takes itself down).
//!
//! On any hypervisor, vCPU 0 first checks what a domain answers past its
//! count and runs the library's several-vCPU paths alone (its GS base, an
//! IPI to itself); one that gives the domain one vCPU (no `keel.vcpus=` yet:
//! the word is not understood) then makes the test report SKIP with that
//! reason. [`run_spread`] (vCPUs on different CPUs) first proves that each
//! worker placed on another CPU than vCPU 0 runs at the same time as vCPU 0
//! ([`smp::Alongside`]) and reports SKIP when one does not (the hypervisor
//! put it on vCPU 0's CPU: `vcpus` covers that).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use keel_guest::abi::event::VIRQ_TIMER;
use keel_guest::abi::guest;
use keel_guest::abi::time::offsets;
use keel_guest::abi::vcpu::{
    VcpuGuestContext, RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING,
    VCPUOP_DOWN, VCPUOP_INITIALISE, VCPUOP_IS_UP, VCPUOP_UP, VGCF_IN_KERNEL,
};
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;
use keel_guest::smp::{self, MAX_VCPUS};
use keel_guest::start;

const VECTOR: u8 = 0xf3;
/// How long vCPU 0 waits for a worker's answer (system time).
const PATIENCE_NS: u64 = 2_000_000_000;
/// Wake-ups per worker, alternating `SCHEDOP_block` and `STI; HLT`.
const WAKE_ROUNDS: u64 = 100;

const NONE: u32 = u32::MAX;
const N: usize = MAX_VCPUS;

/// Each vCPU's IPI port and `VIRQ_TIMER` port.
static IPI_PORT: [AtomicU32; N] = [const { AtomicU32::new(NONE) }; N];
static TIMER_PORT: [AtomicU32; N] = [const { AtomicU32::new(NONE) }; N];
/// `GOT[v][w]`: upcalls on vCPU `v` that found vCPU `w`'s IPI port pending.
static GOT: [[AtomicU32; N]; N] = [const { [const { AtomicU32::new(0) }; N] }; N];
/// `TIMER_GOT[v][w]`: the same for vCPU `w`'s timer port.
static TIMER_GOT: [[AtomicU32; N]; N] = [const { [const { AtomicU32::new(0) }; N] }; N];
/// The system time at which each vCPU's upcall last saw its timer.
static TIMER_AT: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
/// Each worker's count while vCPU 0 probes whether the two run at once.
static ALONGSIDE: [smp::Alongside; N] = [const { smp::Alongside::new() }; N];
/// Ports the upcall found that are nobody's.
static STRAY: AtomicU32 = AtomicU32::new(0);

/// Workers that entered their function (the shared counter).
static RUNNING: AtomicU32 = AtomicU32::new(0);
/// What each worker found: its argument + 1, `smp::current()` + 1, whether
/// its pvclock record was live, and an error from its binds (0: none).
static ARG: [AtomicU32; N] = [const { AtomicU32::new(0) }; N];
static CURRENT: [AtomicU32; N] = [const { AtomicU32::new(0) }; N];
static CLOCK_LIVE: [AtomicU32; N] = [const { AtomicU32::new(0) }; N];
static BIND_ERR: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
/// Set once a worker's ports are bound and its upcalls unmasked.
static READY: [AtomicU32; N] = [const { AtomicU32::new(0) }; N];

/// Each worker's command slot: `seq << 8 | op`, its argument, the last
/// sequence number it answered and the answer.
static CMD: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static CMD_ARG: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static ACK: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static RESULT: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
/// Turns of each worker's [`OP_RUN`] loop, and what ends it.
static SPINS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static RUN_STOP: [AtomicU32; N] = [const { AtomicU32::new(0) }; N];
/// How a worker waits for its next command: [`IDLE_BLOCK`] or [`IDLE_HLT`].
static IDLE: AtomicU32 = AtomicU32::new(IDLE_BLOCK);
/// [`OP_FACTS`]' readings, per worker: `XENVER_version`, `XENVER_pagesize`,
/// CPUID leaf 0's four registers and leaf `0x4000_0001`'s EAX.
static FACTS: [[AtomicU64; 7]; N] = [const { [const { AtomicU64::new(0) }; 7] }; N];
/// CR4.OSXSAVE, and CPUID.1:ECX.XSAVE / OSXSAVE.
const CR4_OSXSAVE: u64 = 1 << 18;
const XSAVE: u32 = 1 << 26;
const OSXSAVE: u32 = 1 << 27;
const IDLE_BLOCK: u32 = 0;
const IDLE_HLT: u32 = 1;

/// Commands.
const OP_PING: u64 = 1;
/// Send to the IPI port of the vCPU in the argument; the answer is the
/// errno (0: sent).
const OP_SEND: u64 = 2;
/// Arm a singleshot timer the argument's nanoseconds ahead (bit 63: by
/// `set_timer_op`, else `VCPUOP_set_singleshot_timer`) and block until it
/// fires; the answer is the deadline (0: refused).
const OP_TIMER: u64 = 3;
/// Spin for the argument's nanoseconds without blocking.
const OP_SPIN: u64 = 4;
/// Return from the worker's function.
const OP_EXIT: u64 = 5;
/// Count in the worker's [`ALONGSIDE`] until vCPU 0's probe is done.
const OP_COUNT: u64 = 6;
/// Read what the vCPU's CPUID and `xen_version` answer into [`FACTS`]; with
/// a non-zero argument, first set CR4.OSXSAVE (and clear it after). The
/// answer is CPUID.1:ECX.OSXSAVE as the worker saw it (1 or 0), or
/// `u64::MAX` if its MOV CR4 faulted.
const OP_FACTS: u64 = 7;
/// Count in [`SPINS`] until [`RUN_STOP`] is set.
const OP_RUN: u64 = 8;
const BY_SET_TIMER_OP: u64 = 1 << 63;
/// [`OP_TIMER`]'s answer for a timer that did not fire within
/// [`NOT_FIRED_AFTER_NS`] of its deadline.
const NOT_FIRED: u64 = 1;
const NOT_FIRED_AFTER_NS: u64 = 1_000_000_000;

fn on_event(port: u32) {
    let me = smp::current() as usize;
    for w in 0..N {
        if port == IPI_PORT[w].load(SeqCst) {
            GOT[me][w].fetch_add(1, SeqCst);
            return;
        }
        if port == TIMER_PORT[w].load(SeqCst) {
            TIMER_GOT[me][w].fetch_add(1, SeqCst);
            if w == me {
                TIMER_AT[me].store(events::now_ns(), SeqCst);
            }
            return;
        }
    }
    STRAY.fetch_add(1, SeqCst);
}

/// Every vCPU but 0 runs this.
fn worker(id: u32) {
    let me = smp::current();
    let i = id as usize;
    ARG[i].store(id + 1, SeqCst);
    CURRENT[i].store(me + 1, SeqCst);
    RUNNING.fetch_add(1, SeqCst);
    let t = events::time_info();
    let live = t.version > 0 && t.version.is_multiple_of(2) && t.tsc_to_system_mul != 0;
    CLOCK_LIVE[i].store(u32::from(live), SeqCst);
    // Upcalls are masked until the ports are ours (`smp::initialise`).
    match smp::bind_ipi() {
        Ok(p) => IPI_PORT[i].store(p, SeqCst),
        Err(e) => BIND_ERR[i].store(e.0 as u64, SeqCst),
    }
    match smp::bind_virq(VIRQ_TIMER) {
        Ok(p) => TIMER_PORT[i].store(p, SeqCst),
        Err(e) => BIND_ERR[i].store(e.0 as u64, SeqCst),
    }
    events::enable();
    arch::sti();
    READY[i].store(1, SeqCst);

    let mut done = 0u64;
    loop {
        // Look at the slot with events masked, then wait: an IPI sent after
        // the look is pending when the wait starts, and ends it.
        arch::cli();
        events::disable();
        let c = CMD[i].load(SeqCst);
        let seq = c >> 8;
        if seq == done {
            if IDLE.load(SeqCst) == IDLE_HLT {
                events::upcall_mask().store(0, SeqCst);
                arch::sti_hlt();
            } else {
                let _ = guest::sched_block();
                events::enable();
                arch::take_interrupts();
            }
            continue;
        }
        events::enable();
        arch::sti();
        let arg = CMD_ARG[i].load(SeqCst);
        let answer = match c & 0xff {
            OP_PING => 0,
            OP_SEND => {
                let port = IPI_PORT[arg as usize % N].load(SeqCst);
                match guest::evtchn_send(port) {
                    Ok(()) => 0,
                    Err(e) => e.0 as u64,
                }
            }
            OP_TIMER => timer(i, arg),
            OP_SPIN => {
                let end = events::now_ns() + arg;
                while events::now_ns() < end {
                    core::hint::spin_loop();
                }
                0
            }
            OP_RUN => {
                // No clock read: a loop that runs exactly while the vCPU
                // runs (a downed vCPU's time info is not kept up).
                while RUN_STOP[i].load(SeqCst) == 0 {
                    SPINS[i].fetch_add(1, SeqCst);
                    core::hint::spin_loop();
                }
                RUN_STOP[i].store(0, SeqCst);
                0
            }
            OP_EXIT => {
                ACK[i].store(seq, SeqCst);
                return;
            }
            OP_COUNT => {
                ALONGSIDE[i].count();
                0
            }
            OP_FACTS => facts(i, arg != 0),
            _ => u64::MAX,
        };
        done = seq;
        RESULT[i].store(answer, SeqCst);
        ACK[i].store(seq, SeqCst);
    }
}

/// What CPUID and `xen_version` answer on this vCPU (vCPU 0's included).
fn read_facts() -> [u64; 7] {
    let v = guest::hypercall_scalar(
        keel_guest::abi::hypercall::Hypercall::XEN_VERSION,
        [keel_guest::abi::version::XENVER_VERSION, 0, 0, 0, 0],
    );
    let page = guest::hypercall_scalar(
        keel_guest::abi::hypercall::Hypercall::XEN_VERSION,
        [keel_guest::abi::version::XENVER_PAGESIZE, 0, 0, 0, 0],
    );
    let l0 = arch::cpuid(0, 0);
    let abi = arch::cpuid(0x4000_0001, 0).eax;
    [
        v as u64,
        page as u64,
        l0.eax.into(),
        l0.ebx.into(),
        l0.ecx.into(),
        l0.edx.into(),
        abi.into(),
    ]
}

/// [`OP_FACTS`] on worker `i`.
fn facts(i: usize, osxsave: bool) -> u64 {
    for (slot, v) in FACTS[i].iter().zip(read_facts()) {
        slot.store(v, SeqCst);
    }
    let cr4 = keel_guest::fault::read_cr(keel_guest::fault::Cr::Cr4);
    if osxsave
        && keel_guest::fault::write_cr(keel_guest::fault::Cr::Cr4, cr4 | CR4_OSXSAVE).is_err()
    {
        return u64::MAX;
    }
    let seen = u64::from(arch::cpuid(1, 0).ecx & OSXSAVE != 0);
    if osxsave && keel_guest::fault::write_cr(keel_guest::fault::Cr::Cr4, cr4).is_err() {
        return u64::MAX;
    }
    seen
}

/// Each vCPU's CPUID and `xen_version` answers are vCPU 0's, and
/// CPUID.1:ECX.OSXSAVE follows the CR4 of the vCPU that asks, not another
/// vCPU's (a vCPU on another CPU answers these on its CPU alone).
fn own_answers(n: usize) {
    let mine = read_facts();
    check_eq!(mine[1], 4096, "XENVER_pagesize on vCPU 0");
    let xsave = arch::cpuid(1, 0).ecx & XSAVE != 0;
    let cr4 = keel_guest::fault::read_cr(keel_guest::fault::Cr::Cr4);
    let own_set =
        xsave && keel_guest::fault::write_cr(keel_guest::fault::Cr::Cr4, cr4 | CR4_OSXSAVE).is_ok();
    if xsave {
        check!(own_set, "MOV CR4 |= OSXSAVE on vCPU 0");
        check!(
            arch::cpuid(1, 0).ecx & OSXSAVE != 0,
            "CPUID.1:ECX.OSXSAVE on vCPU 0 after it set CR4.OSXSAVE"
        );
    }
    for (w, facts) in FACTS.iter().enumerate().take(n).skip(1) {
        // The worker's own CR4 has OSXSAVE clear, whatever vCPU 0's has.
        check_eq!(
            command(w, OP_FACTS, 0),
            Some(0),
            "vCPU {w}'s CPUID.1:ECX.OSXSAVE with its CR4.OSXSAVE clear"
        );
        let theirs: [u64; 7] = core::array::from_fn(|k| facts[k].load(SeqCst));
        check_eq!(
            theirs,
            mine,
            "vCPU {w}'s CPUID and xen_version answers against vCPU 0's"
        );
        if xsave {
            check_eq!(
                command(w, OP_FACTS, 1),
                Some(1),
                "vCPU {w}'s CPUID.1:ECX.OSXSAVE with its CR4.OSXSAVE set"
            );
        }
    }
    if own_set {
        check!(
            arch::cpuid(1, 0).ecx & OSXSAVE != 0,
            "CPUID.1:ECX.OSXSAVE on vCPU 0 after the others changed theirs"
        );
        check!(
            keel_guest::fault::write_cr(keel_guest::fault::Cr::Cr4, cr4).is_ok(),
            "MOV CR4 back on vCPU 0"
        );
    }
}

/// [`OP_TIMER`] on worker `i`: the deadline, once the timer's upcall came.
fn timer(i: usize, arg: u64) -> u64 {
    let before = TIMER_GOT[i][i].load(SeqCst);
    arch::cli();
    events::disable();
    let deadline = events::now_ns() + (arg & !BY_SET_TIMER_OP);
    let armed = if arg & BY_SET_TIMER_OP != 0 {
        guest::set_timer_op(deadline)
    } else {
        smp::set_singleshot_timer(deadline, 0)
    };
    if armed.is_err() {
        events::enable();
        arch::sti();
        return 0;
    }
    while TIMER_GOT[i][i].load(SeqCst) == before {
        // A timer that never fires: answer once woken a second past it (by
        // vCPU 0's next command), so the commands after it still run.
        if events::now_ns() > deadline + NOT_FIRED_AFTER_NS {
            events::enable();
            arch::sti();
            return NOT_FIRED;
        }
        let _ = guest::sched_block();
        events::enable();
        arch::take_interrupts();
        events::disable();
    }
    events::enable();
    arch::sti();
    deadline
}

/// vCPU `v`'s record in `shared_info`, for a failure's message.
struct Record(usize);

impl core::fmt::Display for Record {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Some(si) = events::shared_info() else {
            return write!(f, "no shared_info");
        };
        let at = |off: usize| si.get() + off as u64;
        write!(
            f,
            "upcall_pending {} mask {} pending_sel {:#x}; upcalls taken by the domain {}",
            arch::shared_u8(at(offsets::upcall_pending(self.0))).load(SeqCst),
            arch::shared_u8(at(offsets::upcall_mask(self.0))).load(SeqCst),
            arch::shared_u64(at(offsets::pending_sel(self.0))).load(SeqCst),
            events::UPCALLS.load(SeqCst)
        )
    }
}

/// Wait (yielding the CPU to the other vCPUs) until `done`, at most
/// [`PATIENCE_NS`].
fn wait_for(done: impl Fn() -> bool) -> bool {
    smp::yield_until(PATIENCE_NS, done)
}

/// Post command `op(arg)` to worker `w`, tell it with an IPI and wait for
/// the answer (`None`: none came).
fn command(w: usize, op: u64, arg: u64) -> Option<u64> {
    let seq = post(w, op, arg)?;
    wait_for(|| ACK[w].load(SeqCst) == seq).then(|| RESULT[w].load(SeqCst))
}

/// Post command `op(arg)` to worker `w` and tell it with an IPI: its
/// sequence number (`None`: the IPI was refused).
fn post(w: usize, op: u64, arg: u64) -> Option<u64> {
    let seq = (CMD[w].load(SeqCst) >> 8) + 1;
    CMD_ARG[w].store(arg, SeqCst);
    CMD[w].store(seq << 8 | op, SeqCst);
    guest::evtchn_send(IPI_PORT[w].load(SeqCst)).ok()?;
    Some(seq)
}

fn snapshot(t: &[[AtomicU32; N]; N]) -> [[u32; N]; N] {
    core::array::from_fn(|v| core::array::from_fn(|w| t[v][w].load(SeqCst)))
}

/// What changed in `t` since `before`, other than entry `[v][w]`.
fn others_changed(t: &[[AtomicU32; N]; N], before: &[[u32; N]; N], v: usize, w: usize) -> u32 {
    let now = snapshot(t);
    let mut n = 0;
    for a in 0..N {
        for b in 0..N {
            if (a, b) != (v, w) {
                n += now[a][b].wrapping_sub(before[a][b]);
            }
        }
    }
    n
}

/// `vcpus` and `vcpus_4`: the domain's vCPUs where the hypervisor puts them.
#[allow(dead_code)]
pub fn run() {
    run_placed(false);
}

/// `vcpus_spread`: the same with vCPU 1 on another CPU than vCPU 0
/// (`keel.vcpu_cpus=`), which it must prove first.
#[allow(dead_code)]
pub fn run_spread() {
    run_placed(true);
}

fn run_placed(spread: bool) {
    let want = smp::requested().unwrap_or(2);
    let n = match smp::count() {
        Ok(n) => n,
        Err(e) => {
            failure!("VCPUOP_is_up(0): {e}");
            return;
        }
    };
    println!("asked for {want} vCPUs; the hypervisor gave {n}");
    beyond_the_count(n);
    if !vcpu0_alone() {
        return;
    }
    if n == 1 {
        skip!("the hypervisor gave this domain 1 vCPU (keel.vcpus={want} asked for more)");
        return;
    }
    if !check_eq!(n, want, "the domain's vCPUs (keel.vcpus={want})") {
        return;
    }
    let n = n as usize;

    refusals(n);
    if !start_all(n) {
        return;
    }
    if spread && !(1..n).all(alongside) {
        return;
    }
    ipis(n);
    own_answers(n);
    wakeups(n);
    timers(n);
    runstates(n);
    down_and_up(n);
    down_while_running(n);
    exits(n);
    check_eq!(
        STRAY.load(SeqCst),
        0,
        "upcalls that found a port of nobody's"
    );
    check_eq!(
        events::UPCALLS_WITH_IF_CLEAR.load(SeqCst),
        0,
        "upcalls delivered with RFLAGS.IF clear"
    );
    success();
}

/// vCPU 0 with the library's several-vCPU paths on (any domain): its GS
/// base names it, and an IPI to itself is drained from its own record.
fn vcpu0_alone() -> bool {
    smp::init();
    if !check_eq!(smp::current(), 0, "smp::current() on vCPU 0") {
        return false;
    }
    if let Err(e) = events::set_upcall_handler(VECTOR, on_event) {
        failure!("callback vector: {e}");
        return false;
    }
    match smp::bind_ipi() {
        Ok(p) => IPI_PORT[0].store(p, SeqCst),
        Err(e) => {
            failure!("EVTCHNOP_bind_ipi(0): {e}");
            return false;
        }
    }
    events::enable();
    arch::sti();
    check_eq!(
        guest::evtchn_send(IPI_PORT[0].load(SeqCst)),
        Ok(()),
        "an IPI from vCPU 0 to itself"
    );
    check!(
        wait_for(|| GOT[0][0].load(SeqCst) == 1),
        "vCPU 0's IPI to itself: {} upcall(s) saw it",
        GOT[0][0].load(SeqCst)
    ) && check_eq!(
        STRAY.load(SeqCst),
        0,
        "upcalls that found a port of nobody's"
    )
}

/// `-ENOENT` for every vCPU id past the domain's count, and vCPU 0's
/// answers: what any domain answers.
fn beyond_the_count(n: u32) {
    let ctx = smp::context_for(1, worker);
    let arg = &ctx as *const _ as u64;
    check_eq!(smp::is_up(0), Ok(true), "is_up(0)");
    check_eq!(
        smp::initialise_with(0, &ctx),
        Err(Errno::EEXIST),
        "initialise(0): vCPU 0 has its boot state"
    );
    for id in [u64::from(n), u64::from(n) + 1, 31, 1 << 32, u64::MAX] {
        for (cmd, name, a) in [
            (VCPUOP_IS_UP, "is_up", 0),
            (VCPUOP_UP, "up", 0),
            (VCPUOP_DOWN, "down", 0),
            (VCPUOP_INITIALISE, "initialise", arg),
        ] {
            check_eq!(
                guest::vcpu_op_raw(cmd, id, a),
                Err(Errno::ENOENT),
                "{name}({id:#x}) of a domain of {n} vCPU(s)"
            );
        }
    }
}

/// A page of ours that is no page table.
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static DATA: Page = Page([0; 4096]);

/// A change that makes a context one Keel refuses (given a data frame).
type Spoil = fn(&mut VcpuGuestContext, u64);

/// Before any vCPU but 0 started: they are down, `up` needs a context,
/// and the contexts Keel refuses change nothing.
fn refusals(n: usize) {
    for id in 1..n as u32 {
        check_eq!(smp::is_up(id), Ok(false), "is_up({id}) before initialise");
        check_eq!(
            smp::up(id),
            Err(Errno::EINVAL),
            "up({id}) before initialise"
        );
        match guest::vcpu_runstate(u64::from(id)) {
            Ok(r) => {
                check_eq!(
                    r.state,
                    RUNSTATE_OFFLINE as i32,
                    "vCPU {id}'s run state before it started"
                );
            }
            Err(e) => failure!("get_runstate_info({id}): {e}"),
        }
    }
    let good = smp::context_for(1, worker);
    let data_mfn = start::va_to_pfn(GuestVirt::new(DATA.0.as_ptr() as u64))
        .and_then(|p| start::pfn_to_mfn(p).ok())
        .map_or(0, |m| m.get());
    let bad: [(&str, Spoil); 6] = [
        ("a non-canonical RIP", |c, _| c.user_regs.rip = 1 << 47),
        ("a non-canonical RSP", |c, _| {
            c.user_regs.rsp = 0x8000_0000_0000_1000
        }),
        ("a CR3 that is a data frame of ours", |c, mfn| {
            c.ctrlreg[3] = mfn << 12
        }),
        ("a CR3 not the domain's (frame 0)", |c, _| c.ctrlreg[3] = 0),
        ("no VGCF_in_kernel", |c, _| c.flags &= !VGCF_IN_KERNEL),
        ("a PV ring-1 stack", |c, _| c.kernel_sp = 0x1000),
    ];
    for (what, spoil) in bad {
        let mut c = good;
        spoil(&mut c, data_mfn);
        check_eq!(
            smp::initialise_with(1, &c),
            Err(Errno::EINVAL),
            "initialise(1) with {what}"
        );
        check_eq!(
            smp::up(1),
            Err(Errno::EINVAL),
            "up(1) after the refused context ({what})"
        );
    }
    check_eq!(smp::is_up(1), Ok(false), "is_up(1) after the refusals");
}

/// Start every worker: initialise (twice: `-EEXIST`), is_up before and
/// after up, and each seen running its function.
fn start_all(n: usize) -> bool {
    for id in 1..n as u32 {
        if !check_eq!(smp::initialise(id, worker), Ok(()), "initialise({id})") {
            return false;
        }
        check_eq!(
            smp::initialise_with(u64::from(id), &smp::context_for(id, worker)),
            Err(Errno::EEXIST),
            "initialise({id}) twice"
        );
        check_eq!(smp::is_up(id), Ok(false), "is_up({id}) before up");
        check_eq!(smp::up(id), Ok(()), "up({id})");
        check_eq!(smp::is_up(id), Ok(true), "is_up({id}) after up");
        let i = id as usize;
        if !check!(
            wait_for(|| READY[i].load(SeqCst) != 0),
            "vCPU {id} did not run its function within {} ms (entered {} time(s); an entry with bad registers: {:?})",
            PATIENCE_NS / 1_000_000,
            smp::entered(id),
            arch::stray_vcpu_entry()
        ) {
            return false;
        }
        check_eq!(smp::up(id), Ok(()), "up({id}) of a running vCPU");
        check_eq!(
            smp::gs_base_as_named(id),
            Some(true),
            "vCPU {id} started with the GS base its context named"
        );
        check_eq!(
            ARG[i].load(SeqCst),
            id + 1,
            "vCPU {id}'s argument (RDI) + 1"
        );
        check_eq!(
            CURRENT[i].load(SeqCst),
            id + 1,
            "smp::current() + 1 on vCPU {id}"
        );
        check_eq!(
            CLOCK_LIVE[i].load(SeqCst),
            1,
            "vCPU {id}'s pvclock record is live"
        );
        check_eq!(BIND_ERR[i].load(SeqCst), 0, "vCPU {id}'s binds (errno)");
    }
    check_eq!(
        RUNNING.load(SeqCst),
        n as u32 - 1,
        "workers that ran their function"
    );
    println!("{} vCPU(s) started and running", n - 1);
    BIND_ERR.iter().all(|e| e.load(SeqCst) == 0)
}

/// Whether worker `w`, if placed on another CPU than vCPU 0, runs while
/// vCPU 0 runs (it counts, vCPU 0 watches); SKIP if not.
fn alongside(w: usize) -> bool {
    if smp::share_a_cpu(0, w as u32) {
        return true;
    }
    let Some(seq) = post(w, OP_COUNT, 0) else {
        failure!("the IPI that starts vCPU {w}'s count was refused");
        return false;
    };
    match ALONGSIDE[w].probe(PATIENCE_NS) {
        None => {
            failure!(
                "vCPU {w} did not start counting within {} ms",
                PATIENCE_NS / 1_000_000
            );
            return false;
        }
        Some(false) if w == 1 => {
            skip!("{}", smp::SHARED_CPU);
            return false;
        }
        Some(false) => {
            skip!("vCPU {w} did not run while vCPU 0 ran without exits: they share a CPU (does the hypervisor honour keel.vcpu_cpus?)");
            return false;
        }
        Some(true) => println!("vCPU {w} runs while vCPU 0 runs: on different CPUs"),
    }
    check!(
        wait_for(|| ACK[w].load(SeqCst) == seq),
        "vCPU {w} did not stop counting"
    )
}

/// Every pair: an IPI from `src` to `dst` is seen by `dst`'s upcall only.
fn ipis(n: usize) {
    let (mut pairs, mut good) = (0u32, 0u32);
    for src in 0..n {
        for dst in 0..n {
            if src == dst {
                continue;
            }
            let before = snapshot(&GOT);
            let r = if src == 0 {
                guest::evtchn_send(IPI_PORT[dst].load(SeqCst)).map_err(|e| e.0 as u64)
            } else {
                match command(src, OP_SEND, dst as u64) {
                    Some(0) => Ok(()),
                    Some(e) => Err(e),
                    None => Err(u64::MAX),
                }
            };
            if !check!(r.is_ok(), "vCPU {src}'s send to vCPU {dst}: {r:?}") {
                continue;
            }
            let seen = wait_for(|| GOT[dst][dst].load(SeqCst) > before[dst][dst]);
            let port = IPI_PORT[dst].load(SeqCst);
            let seen = check!(
                seen,
                "vCPU {src}'s IPI never reached vCPU {dst}'s upcall (port {port} pending {}; vCPU {dst}'s {})",
                events::is_pending(port),
                Record(dst)
            );
            // The command's own IPI to `src` is expected; nothing else.
            let mut extra = others_changed(&GOT, &before, dst, dst);
            if src != 0 {
                extra -= GOT[src][src].load(SeqCst) - before[src][src];
            }
            let alone = check_eq!(
                extra,
                0,
                "upcalls elsewhere for vCPU {src}'s IPI to vCPU {dst}"
            );
            pairs += 1;
            good += u32::from(seen && alone);
        }
    }
    if good == pairs {
        println!("IPIs: {pairs} sends between {n} vCPUs, each seen on its vCPU only");
    }
}

/// Each worker woken [`WAKE_ROUNDS`] times from a wait it entered after
/// looking at its slot: none lost.
fn wakeups(n: usize) {
    let mut lost = None;
    'rounds: for round in 0..WAKE_ROUNDS {
        IDLE.store(if round % 2 == 0 { IDLE_BLOCK } else { IDLE_HLT }, SeqCst);
        for w in 1..n {
            if command(w, OP_PING, 0).is_none() {
                lost = Some((round, w));
                break 'rounds;
            }
        }
    }
    IDLE.store(IDLE_BLOCK, SeqCst);
    match lost {
        Some((round, w)) => failure!(
            "wake-up {round} of vCPU {w} ({}) lost: no answer in {} ms",
            if round % 2 == 0 {
                "SCHEDOP_block"
            } else {
                "STI; HLT"
            },
            PATIENCE_NS / 1_000_000
        ),
        None => println!(
            "wake-ups: {WAKE_ROUNDS} per worker (SCHEDOP_block and STI; HLT in turn), none lost"
        ),
    }
}

/// A 2 ms singleshot timer on each worker, by each interface: it fires on
/// that vCPU, after its deadline, and nowhere else.
fn timers(n: usize) {
    let mut good = 0u32;
    for w in 1..n {
        for (how, flag) in [
            ("VCPUOP_set_singleshot_timer", 0),
            ("set_timer_op", BY_SET_TIMER_OP),
        ] {
            let before = snapshot(&TIMER_GOT);
            let Some(deadline) = command(w, OP_TIMER, 2_000_000 | flag) else {
                failure!(
                    "vCPU {w}'s {how} timer: no answer (never fired?); vCPU {w}'s {}",
                    Record(w)
                );
                continue;
            };
            if !check!(deadline != 0, "vCPU {w}: {how} refused") {
                continue;
            }
            if deadline == NOT_FIRED {
                failure!(
                    "vCPU {w}'s {how} timer never fired; vCPU {w}'s {}",
                    Record(w)
                );
                continue;
            }
            let once = check_eq!(
                TIMER_GOT[w][w].load(SeqCst) - before[w][w],
                1,
                "vCPU {w}'s {how} timer seen on vCPU {w}"
            );
            let alone = check_eq!(
                others_changed(&TIMER_GOT, &before, w, w),
                0,
                "timer upcalls elsewhere for vCPU {w}'s {how} timer"
            );
            let at = TIMER_AT[w].load(SeqCst);
            // The hypervisor's clock and the pvclock read may round a
            // nanosecond apart.
            let timely = check!(
                at + 16 >= deadline,
                "vCPU {w}'s {how} timer seen at {at} ns, before its deadline {deadline} ns"
            );
            good += u32::from(once && alone && timely);
        }
    }
    if good == 2 * (n as u32 - 1) {
        println!("timers: each worker's fired on it alone, by either interface");
    }
}

/// A worker's running time grows while it spins; while vCPU 0 runs, a worker
/// on vCPU 0's CPU is runnable or blocked, and one on another CPU may still
/// be running (between its answer and its `SCHEDOP_block`, which vCPU 0 does
/// not wait for); either then blocks, waiting for the next command; each
/// vCPU's times add up to system time.
fn runstates(n: usize) {
    for w in 1..n {
        let id = w as u64;
        let Ok(r0) = guest::vcpu_runstate(id) else {
            failure!("get_runstate_info({w})");
            continue;
        };
        if command(w, OP_SPIN, 5_000_000).is_none() {
            failure!("vCPU {w} did not answer after a 5 ms spin");
            continue;
        }
        let Ok(r1) = guest::vcpu_runstate(id) else {
            failure!("get_runstate_info({w})");
            continue;
        };
        let now = events::now_ns();
        let grew = r1.time[RUNSTATE_RUNNING as usize] - r0.time[RUNSTATE_RUNNING as usize];
        println!(
            "vCPU {w}: state {}, running +{grew} ns across a 5 ms spin; running {} runnable {} blocked {} offline {} ns",
            r1.state, r1.time[0], r1.time[1], r1.time[2], r1.time[3]
        );
        // vCPU 0's turns while it waits (it yields at once) come out of
        // the spin's 5 ms of system time.
        let elapsed = r1.time.iter().sum::<u64>() - r0.time.iter().sum::<u64>();
        check!(
            (2_500_000..=elapsed).contains(&grew),
            "vCPU {w}'s running time grew by {grew} ns across a 5 ms spin, in {elapsed} ns"
        );
        // One CPU runs one vCPU at a time: while vCPU 0 runs, a worker that
        // shares its CPU cannot. A worker on a CPU of its own answered and
        // is on its way to block, on its own CPU, unordered with vCPU 0's
        // look: running is right for it too.
        let shares = smp::share_a_cpu(0, w as u32);
        let state = r1.state as u32;
        let ok = state == RUNSTATE_RUNNABLE
            || state == RUNSTATE_BLOCKED
            || (!shares && state == RUNSTATE_RUNNING);
        check!(
            ok,
            "vCPU {w} is in state {} while vCPU 0 runs ({} expected: it {} vCPU 0's CPU)",
            r1.state,
            if shares {
                "runnable or blocked"
            } else {
                "running, runnable or blocked"
            },
            if shares { "shares" } else { "does not share" }
        );
        check!(
            wait_for(|| guest::vcpu_runstate(id).is_ok_and(|r| r.state == RUNSTATE_BLOCKED as i32)),
            "vCPU {w} did not block, waiting for its next command, within {} ms",
            PATIENCE_NS / 1_000_000
        );
        let sum: u64 = r1.time.iter().sum();
        check!(
            sum <= now + 16 && sum + 50_000_000 >= now,
            "vCPU {w}'s times add up to {sum} ns at system time {now} ns"
        );
    }
    match guest::vcpu_runstate(0) {
        Ok(r) => {
            check_eq!(r.state, RUNSTATE_RUNNING as i32, "vCPU 0 runs");
        }
        Err(e) => failure!("get_runstate_info(0): {e}"),
    }
}

/// `VCPUOP_down` of a worker: down, offline, not running its commands; up
/// again, it resumes where it was and answers.
fn down_and_up(n: usize) {
    let w = n - 1;
    let id = w as u32;
    let seq = (CMD[w].load(SeqCst) >> 8) + 1;
    check_eq!(smp::down(id), Ok(()), "down({id})");
    check_eq!(smp::is_up(id), Ok(false), "is_up({id}) after down");
    match guest::vcpu_runstate(u64::from(id)) {
        Ok(r) => {
            check_eq!(
                r.state,
                RUNSTATE_OFFLINE as i32,
                "vCPU {id}'s state when down"
            );
        }
        Err(e) => failure!("get_runstate_info({id}): {e}"),
    }
    CMD[w].store(seq << 8 | OP_PING, SeqCst);
    check_eq!(
        guest::evtchn_send(IPI_PORT[w].load(SeqCst)),
        Ok(()),
        "an IPI to the downed vCPU {id}"
    );
    check!(
        !smp::yield_until(20_000_000, || ACK[w].load(SeqCst) == seq),
        "the downed vCPU {id} answered a command"
    );
    check_eq!(
        smp::initialise_with(u64::from(id), &smp::context_for(id, worker)),
        Err(Errno::EEXIST),
        "initialise({id}) of a downed vCPU (it keeps its context)"
    );
    check_eq!(smp::up(id), Ok(()), "up({id}) again");
    check_eq!(smp::is_up(id), Ok(true), "is_up({id}) after up again");
    check!(
        wait_for(|| ACK[w].load(SeqCst) == seq),
        "vCPU {id}, up again, did not answer the command sent while it was down"
    );
    check_eq!(
        smp::entered(id),
        1,
        "vCPU {id} resumed (its entry ran once)"
    );
}

/// How long a downed vCPU may go on running (its CPU takes it out of its
/// guest at the IPI that follows `VCPUOP_down`: microseconds).
const STOP_NS: u64 = 20_000_000;
/// How long its spin count must then stand still.
const STILL_NS: u64 = 50_000_000;

/// `VCPUOP_down` of a worker that is running (counting in [`OP_RUN`], in
/// guest mode, on another CPU when the domain is spread): it stops running
/// at once, not at its next block; up again, it finishes its command.
///
/// What this cannot see: on Keel, a remote vCPU left in its guest after
/// the down (its CPU not ending its run at the wake that says so) does not
/// count either, as the domain's CPU asks again at each of its run loop's
/// turns and the requests keep it exiting; checked by making that so. The
/// count catches a vCPU that runs on unasked.
fn down_while_running(n: usize) {
    let w = n - 1;
    let id = w as u32;
    let before = SPINS[w].load(SeqCst);
    let Some(seq) = post(w, OP_RUN, 0) else {
        failure!("an IPI to vCPU {id} was refused");
        return;
    };
    if !check!(
        wait_for(|| SPINS[w].load(SeqCst) > before),
        "vCPU {id} started spinning"
    ) {
        return;
    }
    check_eq!(smp::down(id), Ok(()), "down({id}) while it spins");
    // Waits with no hypercall: each of vCPU 0's yields would make the
    // hypervisor tell the downed vCPU again, and a vCPU kept exiting so
    // would count nothing even if it were left running.
    spin_ns(STOP_NS);
    let a = SPINS[w].load(SeqCst);
    spin_ns(STILL_NS);
    let b = SPINS[w].load(SeqCst);
    println!(
        "down while running: vCPU {id} counted {} turns until {} ms after VCPUOP_down, {} in the {} ms after that",
        a.saturating_sub(before),
        STOP_NS / 1_000_000,
        b - a,
        STILL_NS / 1_000_000
    );
    check_eq!(
        b - a,
        0,
        "turns of vCPU {id}'s spin loop after VCPUOP_down (it went on running)"
    );
    RUN_STOP[w].store(1, SeqCst);
    check_eq!(smp::up(id), Ok(()), "up({id}) again");
    check!(
        wait_for(|| ACK[w].load(SeqCst) == seq),
        "vCPU {id}, up again, did not finish its command"
    );
}

/// Spin `ns` of system time without a hypercall, RFLAGS.IF set and upcalls
/// masked (under Bochs a guest spinning with IF clear takes no
/// external-interrupt exit, which other CPUs' requests need:
/// docs/platforms.md).
fn spin_ns(ns: u64) {
    events::disable();
    arch::sti();
    let end = events::now_ns().saturating_add(ns);
    while events::now_ns() < end {
        core::hint::spin_loop();
    }
    events::enable();
}

/// Each worker returns from its function: its vCPU takes itself down.
fn exits(n: usize) {
    for w in 1..n {
        let id = w as u32;
        let seq = (CMD[w].load(SeqCst) >> 8) + 1;
        CMD[w].store(seq << 8 | OP_EXIT, SeqCst);
        let _ = guest::evtchn_send(IPI_PORT[w].load(SeqCst));
        check!(
            wait_for(|| smp::is_up(id) == Ok(false)),
            "vCPU {id} still up after its function returned"
        );
        check_eq!(ACK[w].load(SeqCst), seq, "vCPU {id} saw its exit command");
    }
    check_eq!(smp::is_up(0), Ok(true), "vCPU 0 still up");
}
