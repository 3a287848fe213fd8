//! Several vCPUs in one domain (ABI 1.2, in progress; `docs/abi/vcpu.md`):
//! starting vCPU `n` on a function, knowing which vCPU runs, and each vCPU's
//! own events.
//!
//! **Starting a vCPU.** As Linux's and Mini-OS's PV bring-up does: vCPU 0
//! builds a `vcpu_guest_context` ([`context`]) from its own state — the same
//! L4 (CR3), a stack of the vCPU's own, the library's entry as RIP and the
//! vCPU's id, function and GS base in RDI, RSI and RDX — and hands it to
//! `VCPUOP_initialise`, then `VCPUOP_up`. Everything else in the context is
//! zero (the PV mechanisms a Keel guest does not have: virtual IDT, LDT and
//! GDT frames, ring-1 stack, callbacks), which is what Keel's
//! `VCPUOP_initialise` accepts. The new vCPU starts as vCPU 0 did, with empty
//! GDTR and IDTR, so the entry (`arch`) loads a GDT of its own (the boot
//! GDT's entries with its own TSS, so the selectors are the same on every
//! vCPU) and the IDT vCPU 0 built, then runs the function; when the function
//! returns, the vCPU takes itself down (`VCPUOP_down`; brought up again, it
//! takes itself down again).
//!
//! **Which vCPU am I.** The GS base: each vCPU's points at its
//! [`VcpuRecord`], whose first word is the vCPU's id, so [`current`] is one
//! load (`mov gs:[0]`) that holds on any stack and in any handler. The GS
//! base is per vCPU state the hypervisor keeps (the VMCS's, named by the
//! context's `gs_base_kernel`, and `IA32_GS_BASE` is passed through), where
//! a header at the foot of each stack would misname the vCPU on every other
//! stack the library uses (the IST stacks, the user-mode return stack, a
//! test's own). Until [`init`] the library does not read GS at all (a test
//! may use it) and every answer is vCPU 0's.
//!
//! **Events per vCPU** (Xen's 2-level rules): each vCPU has its own
//! `vcpu_info` (`shared_info.vcpu_info[n]`, or where the vCPU placed it), so
//! its own upcall flag, mask and pending selector; the pending and mask
//! bitmaps are the domain's. A port notifies one vCPU, so a vCPU's upcall
//! takes only the pending ports bound to it ([`owned_bits`], as Linux's
//! per-CPU `cpu_evtchn_mask`): the library keeps, per vCPU, the ports bound
//! to it through [`bind_ipi`], [`bind_virq`] and [`bind_vcpu`]; every other
//! port is vCPU 0's, as Xen binds it. `crate::events` reads the running
//! vCPU's `vcpu_info` once [`init`] ran.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};

use crate::abi::guest::{self, vcpu_op_raw};
use crate::abi::time::{offsets, VcpuSetSingleshotTimer};
use crate::abi::vcpu::{
    VcpuGuestContext, VCPUOP_DOWN, VCPUOP_INITIALISE, VCPUOP_IS_UP, VCPUOP_UP, VGCF_IN_KERNEL,
};
use crate::abi::Errno;
use crate::arch;
use crate::fault::Cr;

/// The most vCPUs the library runs in a domain (vCPU 0 included): Keel's
/// per-domain limit (`MAX_VCPUS` of its vCPU table).
pub const MAX_VCPUS: usize = 8;

/// Event-channel words of the 2-level ABI (4,096 ports).
const PORT_WORDS: usize = 64;

/// The selectors a context names (those the library's GDT has on every vCPU:
/// `arch`'s boot GDT). Keel ignores them; Xen checks them, and they are what
/// the vCPU runs with once its entry loaded its GDT.
const SEL_CODE: u16 = 0x08;
const SEL_DATA: u16 = 0x10;

/// `RFLAGS` a context names: only the reserved bit. The hypervisor sets IF
/// (Xen's rule), so the entry's first instruction clears it.
const START_RFLAGS: u64 = 0x2;

/// One vCPU's record, which its GS base points at.
#[repr(C, align(64))]
pub struct VcpuRecord {
    /// The vCPU's id: `gs:[0]` ([`current`]).
    id: u32,
    /// How many times the vCPU reached its entry.
    entered: AtomicU32,
    /// The GS base the vCPU found at its entry (what the hypervisor loaded
    /// from the context's `gs_base_kernel`).
    gs_found: AtomicU64,
    /// Its `vcpu_info` once placed with `VCPUOP_register_vcpu_info` (0:
    /// `shared_info`'s entry).
    vcpu_info_va: AtomicU64,
}

impl VcpuRecord {
    const fn new(id: u32) -> Self {
        VcpuRecord {
            id,
            entered: AtomicU32::new(0),
            gs_found: AtomicU64::new(0),
            vcpu_info_va: AtomicU64::new(0),
        }
    }

    /// Its address: the vCPU's GS base.
    fn addr(&self) -> u64 {
        self as *const Self as u64
    }
}

static RECORDS: [VcpuRecord; MAX_VCPUS] = {
    let mut r = [const { VcpuRecord::new(0) }; MAX_VCPUS];
    let mut i = 0;
    while i < MAX_VCPUS {
        r[i] = VcpuRecord::new(i as u32);
        i += 1;
    }
    r
};

/// Whether [`init`] ran: the GS base names the vCPU.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Per vCPU (1 and up), the ports bound to it; [`AWAY`] is their union, the
/// ports that are not vCPU 0's.
static OWNED: [[AtomicU64; PORT_WORDS]; MAX_VCPUS] =
    [const { [const { AtomicU64::new(0) }; PORT_WORDS] }; MAX_VCPUS];
static AWAY: [AtomicU64; PORT_WORDS] = [const { AtomicU64::new(0) }; PORT_WORDS];

/// Start using several vCPUs, on vCPU 0: its GS base names its record, and
/// the event paths look up the running vCPU's `vcpu_info` from now on.
/// Idempotent.
pub fn init() {
    if ACTIVE.load(SeqCst) {
        return;
    }
    arch::set_gs_base(RECORDS[0].addr());
    ACTIVE.store(true, SeqCst);
    crate::events::vcpus_started();
}

/// Whether [`init`] ran.
#[inline(always)]
pub fn active() -> bool {
    ACTIVE.load(SeqCst)
}

/// The running vCPU's id (0 until [`init`]).
#[inline(always)]
pub fn current() -> u32 {
    if !active() {
        return 0;
    }
    arch::gs_u32()
}

/// The vCPUs the hypervisor gave this domain: the first id `VCPUOP_is_up`
/// calls `-ENOENT` (Xen's answer past the domain's count), at most
/// [`MAX_VCPUS`]. `Err` if `VCPUOP_is_up` itself is refused (`-ENOSYS`: a
/// hypervisor or image without ABI 1.2).
pub fn count() -> Result<u32, Errno> {
    count_from(is_up)
}

/// [`count`] over an `is_up` answer (host-tested).
pub fn count_from(is_up: impl Fn(u32) -> Result<bool, Errno>) -> Result<u32, Errno> {
    is_up(0)?;
    for id in 1..MAX_VCPUS as u32 {
        match is_up(id) {
            Ok(_) => {}
            Err(Errno::ENOENT) => return Ok(id),
            Err(e) => return Err(e),
        }
    }
    Ok(MAX_VCPUS as u32)
}

/// The vCPUs the test's command line asks for (`keel.vcpus=N`, the word the
/// runner gives the hypervisor, which the guest sees too).
pub fn requested() -> Option<u32> {
    requested_in(crate::start::cmdline())
}

/// [`requested`] in command line `cmd` (host-tested).
pub fn requested_in(cmd: &str) -> Option<u32> {
    let n = crate::start::cmdline_value(cmd, "keel.vcpus")?;
    n.parse().ok()
}

/// The CPU the test's command line places vCPU `v` on (`keel.vcpu_cpus=C0,C1,...`,
/// the word the runner gives the hypervisor: vCPU `v` runs on CPU `Cv`);
/// `None` without the word or past its list (the vCPU then runs on the
/// domain's CPU).
pub fn placed_cpu(v: u32) -> Option<u32> {
    placed_cpu_in(crate::start::cmdline(), v)
}

/// [`placed_cpu`] in command line `cmd` (host-tested).
pub fn placed_cpu_in(cmd: &str, v: u32) -> Option<u32> {
    let list = crate::start::cmdline_value(cmd, "keel.vcpu_cpus")?;
    list.split(',').nth(v as usize)?.parse().ok()
}

/// Whether vCPUs `a` and `b` are placed on one CPU ([`placed_cpu`]: a vCPU
/// the command line does not place runs on the domain's CPU).
pub fn share_a_cpu(a: u32, b: u32) -> bool {
    share_a_cpu_in(crate::start::cmdline(), a, b)
}

/// [`share_a_cpu`] in command line `cmd` (host-tested).
pub fn share_a_cpu_in(cmd: &str, a: u32, b: u32) -> bool {
    let home = placed_cpu_in(cmd, 0);
    let cpu = |v| placed_cpu_in(cmd, v).or(home);
    cpu(a) == cpu(b)
}

/// Why a test of vCPUs on several CPUs reports SKIP when [`Alongside::probe`]
/// finds that they share one.
pub const SHARED_CPU: &str = "vCPU 1 did not run while vCPU 0 ran without exits: the vCPUs share a CPU (does the hypervisor honour keel.vcpu_cpus?)";

/// Whether two vCPUs run at the same time (on different CPUs): one counts
/// ([`Alongside::count`]) in a loop that makes no hypercall and takes no
/// exit, the other spins, also without exits, and watches the count
/// ([`Alongside::probe`]). Two vCPUs sharing a CPU run one at a time: the
/// count moves while the prober spins only if the hypervisor switched to the
/// counter in the middle of the spin, at the end of the prober's time slice.
/// The prober's windows are a tenth of Keel's default slice (1 ms) each, in
/// system time, so a switch ends at most one of [`Alongside::WINDOWS`]
/// windows in a row (the prober comes back with a fresh slice); the count
/// must move in every one.
pub struct Alongside {
    count: AtomicU64,
    stop: AtomicBool,
}

impl Alongside {
    /// One window of the prober (system time).
    pub const WINDOW_NS: u64 = 100_000;
    /// Windows in a row in which the count must move.
    pub const WINDOWS: u32 = 3;
    /// Tries of [`Self::WINDOWS`] windows (one may fail when the machine
    /// beneath, nested KVM, does not run the other vCPU for a while). On one
    /// CPU each try costs at most one of the counter's slices.
    pub const TRIES: u32 = 20;

    /// A counter that has not started.
    pub const fn new() -> Self {
        Alongside {
            count: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// On the counting vCPU: count until [`Self::probe`] is done. It spins
    /// with RFLAGS.IF set and upcalls masked (and leaves them so): under
    /// Bochs a vCPU spinning with IF clear takes no external-interrupt exit,
    /// so it is never preempted on a CPU without the VMX-preemption timer,
    /// and its CPU never lends to another's cross-CPU operation
    /// (docs/platforms.md, `bochs-extint-masked-by-guest-if`).
    pub fn count(&self) {
        crate::events::disable();
        crate::arch::sti();
        while !self.stop.load(SeqCst) {
            self.count.fetch_add(1, SeqCst);
            core::hint::spin_loop();
        }
    }

    /// On the probing vCPU, once the other was started on [`Self::count`]:
    /// wait (yielding) up to `ns` of system time for the count to start,
    /// then spin with no hypercall, watching it, and stop the counter.
    /// `Some(true)`: the count moved in each of [`Self::WINDOWS`] windows in
    /// a row (in one of [`Self::TRIES`]), so the two ran at once;
    /// `Some(false)`: they did not; `None`: the count never started.
    pub fn probe(&self, ns: u64) -> Option<bool> {
        let started = yield_until(ns, || self.count.load(SeqCst) > 0);
        let alongside = started && (0..Self::TRIES).any(|_| self.windows_moved());
        self.stop.store(true, SeqCst);
        started.then_some(alongside)
    }

    /// Whether the count moved in each of [`Self::WINDOWS`] windows.
    fn windows_moved(&self) -> bool {
        (0..Self::WINDOWS).all(|_| {
            let before = self.count.load(SeqCst);
            let end = crate::events::now_ns().saturating_add(Self::WINDOW_NS);
            while crate::events::now_ns() < end {
                core::hint::spin_loop();
            }
            self.count.load(SeqCst) != before
        })
    }
}

impl Alongside {
    /// [`Self::probe`], with its outcome reported when the test cannot go
    /// on: FAILURE if the count never started, SKIP ([`SHARED_CPU`]) if the
    /// two vCPUs share a CPU. Whether they run at once.
    pub fn probe_or_report(&self, ns: u64) -> bool {
        match self.probe(ns) {
            None => {
                crate::failure!("vCPU 1 did not start counting in {} s", ns / 1_000_000_000);
                false
            }
            Some(false) => {
                crate::skip!("{}", SHARED_CPU);
                false
            }
            Some(true) => {
                crate::println!("vCPU 1 runs while vCPU 0 runs: on different CPUs");
                true
            }
        }
    }
}

/// Whether the domain has at least `n` vCPUs up or startable
/// ([`count`]); if not, the test is reported SKIP (the hypervisor did not
/// give it `keel.vcpus=n`, or has no vCPU operations).
pub fn need_vcpus(n: u32) -> bool {
    match count() {
        Ok(have) if have >= n => true,
        Ok(have) => {
            crate::skip!(
                "the domain has {have} vCPU(s): this hypervisor does not give it keel.vcpus={n}"
            );
            false
        }
        Err(e) => {
            crate::skip!("VCPUOP_is_up: {e}: no vCPU operations here");
            false
        }
    }
}

impl Default for Alongside {
    fn default() -> Self {
        Self::new()
    }
}

/// `VCPUOP_is_up(id)`.
pub fn is_up(id: u32) -> Result<bool, Errno> {
    vcpu_op_raw(VCPUOP_IS_UP, u64::from(id), 0).map(|v| v != 0)
}

/// `VCPUOP_up(id)`.
pub fn up(id: u32) -> Result<(), Errno> {
    vcpu_op_raw(VCPUOP_UP, u64::from(id), 0).map(|_| ())
}

/// Give the CPU to the domain's other vCPUs (and other domains) with
/// `SCHEDOP_yield` until `done()` holds, for at most `ns` of system time:
/// whether it came to hold. How a vCPU waits for another's answer.
pub fn yield_until(ns: u64, done: impl Fn() -> bool) -> bool {
    let end = crate::events::now_ns().saturating_add(ns);
    loop {
        if done() {
            return true;
        }
        if crate::events::now_ns() > end {
            return false;
        }
        let _ = guest::sched_yield();
    }
}

/// `VCPUOP_down(id)` (of the last vCPU up: the domain powers off).
pub fn down(id: u32) -> Result<(), Errno> {
    vcpu_op_raw(VCPUOP_DOWN, u64::from(id), 0).map(|_| ())
}

/// What a secondary vCPU starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    /// Its first instruction.
    pub entry: u64,
    /// Its initial RSP: the top of its stack ([`stack_top`]).
    pub stack_top: u64,
    /// The machine address of the L4 it runs on (a pinned L4 of the domain:
    /// the running vCPU's CR3).
    pub l4: u64,
    /// Its GS base (its [`VcpuRecord`]).
    pub gs_base: u64,
    /// RDI, RSI and RDX: the entry's three arguments.
    pub args: [u64; 3],
}

/// The `vcpu_guest_context` that starts a vCPU as `s` says, the rest zero
/// (what Keel's `VCPUOP_initialise` reads, `docs/abi/vcpu.md`): in kernel
/// mode (`VGCF_in_kernel`), RIP, RSP, RFLAGS, the three argument registers,
/// the flat selectors of the library's GDT, CR3 as Xen's
/// `xen_pfn_to_cr3(mfn)` and the kernel GS base.
pub fn context(s: &Start) -> VcpuGuestContext {
    let mut c = VcpuGuestContext {
        flags: VGCF_IN_KERNEL,
        ..VcpuGuestContext::default()
    };
    let r = &mut c.user_regs;
    r.rip = s.entry;
    r.rsp = s.stack_top;
    r.rflags = START_RFLAGS;
    [r.rdi, r.rsi, r.rdx] = s.args;
    r.cs = SEL_CODE;
    (r.ss, r.ds, r.es, r.fs, r.gs) = (SEL_DATA, SEL_DATA, SEL_DATA, SEL_DATA, SEL_DATA);
    c.ctrlreg[3] = s.l4 & !0xfff;
    c.gs_base_kernel = s.gs_base;
    c
}

/// The initial RSP of a stack `[base, base + size)`: its top, 16-byte
/// aligned, so that the entry's `call` leaves the called function the
/// System V alignment (RSP + 8 a multiple of 16).
pub const fn stack_top(base: u64, size: u64) -> u64 {
    (base + size) & !15
}

/// The context that starts vCPU `id` on `main` (on the library's stack for
/// it, on the running vCPU's L4), as [`initialise`] gives it; a test may
/// change it to see what `VCPUOP_initialise` refuses ([`initialise_with`]).
pub fn context_for(id: u32, main: fn(u32)) -> VcpuGuestContext {
    let (base, top) = arch::vcpu_stack(id as usize);
    context(&Start {
        entry: arch::vcpu_entry_address(),
        stack_top: stack_top(base, top - base),
        l4: arch::read_cr(Cr::Cr3),
        gs_base: RECORDS[id as usize].addr(),
        args: [
            u64::from(id),
            main as usize as u64,
            RECORDS[id as usize].addr(),
        ],
    })
}

/// `VCPUOP_initialise(id, c)`.
pub fn initialise_with(id: u64, c: &VcpuGuestContext) -> Result<(), Errno> {
    vcpu_op_raw(VCPUOP_INITIALISE, id, c as *const VcpuGuestContext as u64).map(|_| ())
}

/// Give vCPU `id` (1 ..= [`MAX_VCPUS`] - 1) its context to run `main(id)`
/// on its own stack ([`context_for`]); it stays down until [`up`]. Its
/// upcalls are masked in its `vcpu_info` first, so none can come before its
/// entry has an IDT; the function unmasks them when it is ready
/// (`events::enable`). Calls [`init`].
pub fn initialise(id: u32, main: fn(u32)) -> Result<(), Errno> {
    if id == 0 || id as usize >= MAX_VCPUS {
        return Err(Errno::ENOENT);
    }
    init();
    if let Some(si) = crate::events::shared_info() {
        arch::shared_u8(si.get() + offsets::upcall_mask(id as usize) as u64).store(1, SeqCst);
    }
    let c = context_for(id, main);
    initialise_with(u64::from(id), &c)
}

/// [`initialise`], then [`up`].
pub fn start(id: u32, main: fn(u32)) -> Result<(), Errno> {
    initialise(id, main)?;
    up(id)
}

/// How many times vCPU `id` reached its entry.
pub fn entered(id: u32) -> u32 {
    RECORDS
        .get(id as usize)
        .map_or(0, |r| r.entered.load(SeqCst))
}

/// Whether vCPU `id` found at its entry the GS base its context named
/// (`None` before it entered).
pub fn gs_base_as_named(id: u32) -> Option<bool> {
    let r = RECORDS.get(id as usize)?;
    (r.entered.load(SeqCst) > 0).then(|| r.gs_found.load(SeqCst) == r.addr())
}

/// A secondary vCPU, once its tables are loaded (`arch`'s entry): run its
/// function; when it returns, take the vCPU down.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn vcpu_main(id: u32, main: u64, gs_found: u64) -> ! {
    let me = &RECORDS[id as usize];
    me.gs_found.store(gs_found, SeqCst);
    me.entered.fetch_add(1, SeqCst);
    arch::fn_u32_from_addr(main)(id);
    loop {
        arch::cli();
        crate::events::disable();
        if let Err(e) = down(id) {
            crate::report::crash(format_args!("vCPU {id}: VCPUOP_down of itself: {e}"));
        }
    }
}

/// The guest-virtual address of vCPU `id`'s `vcpu_info`, `shared_info`
/// being at `shared`.
pub(crate) fn vcpu_info_va(id: u32, shared: u64) -> u64 {
    match RECORDS
        .get(id as usize)
        .map_or(0, |r| r.vcpu_info_va.load(SeqCst))
    {
        0 => shared + offsets::vcpu_info(id as usize) as u64,
        va => va,
    }
}

/// Record where vCPU `id` placed its `vcpu_info`.
pub(crate) fn set_vcpu_info_va(id: u32, va: u64) {
    if let Some(r) = RECORDS.get(id as usize) {
        r.vcpu_info_va.store(va, SeqCst);
    }
}

/// Record that `port` notifies `vcpu` (the hypervisor was told already).
pub fn own(port: u32, vcpu: u32) {
    let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
    if w >= PORT_WORDS || vcpu as usize >= MAX_VCPUS {
        return;
    }
    let mut away = 0;
    for (v, words) in OWNED.iter().enumerate().skip(1) {
        if v == vcpu as usize {
            words[w].fetch_or(bit, SeqCst);
        } else {
            words[w].fetch_and(!bit, SeqCst);
        }
        away |= words[w].load(SeqCst);
    }
    AWAY[w].store(away, SeqCst);
}

/// Of word `w` of the event bitmaps, the ports bound to `vcpu`.
pub fn owned_bits(vcpu: u32, w: usize) -> u64 {
    if w >= PORT_WORDS {
        return 0;
    }
    match vcpu {
        0 => !AWAY[w].load(SeqCst),
        v => OWNED
            .get(v as usize)
            .map_or(0, |words| words[w].load(SeqCst)),
    }
}

/// Run `f` with the running vCPU's upcalls masked, then restore the mask
/// (delivering what came meanwhile): a port bound in `f` is recorded before
/// its first event can be looked at.
fn masked<T>(f: impl FnOnce() -> T) -> T {
    let mask = crate::events::upcall_mask();
    let was = mask.swap(1, SeqCst);
    let r = f();
    if was == 0 {
        crate::events::enable();
    }
    r
}

/// `EVTCHNOP_bind_ipi` for the running vCPU: a port that notifies it.
pub fn bind_ipi() -> Result<u32, Errno> {
    let me = current();
    masked(|| {
        let p = guest::evtchn_bind_ipi(me)?;
        own(p, me);
        Ok(p)
    })
}

/// `EVTCHNOP_bind_virq(virq)` for the running vCPU (a per-vCPU VIRQ such as
/// `VIRQ_TIMER`).
pub fn bind_virq(virq: u32) -> Result<u32, Errno> {
    let me = current();
    masked(|| {
        let p = guest::evtchn_bind_virq(virq, me)?;
        own(p, me);
        Ok(p)
    })
}

/// `EVTCHNOP_bind_vcpu(port, vcpu)`: `port` notifies `vcpu` from now on.
pub fn bind_vcpu(port: u32, vcpu: u32) -> Result<(), Errno> {
    guest::evtchn_bind_vcpu(port, vcpu)?;
    own(port, vcpu);
    Ok(())
}

/// `VCPUOP_set_singleshot_timer` for the running vCPU (Xen accepts it only
/// for the caller).
pub fn set_singleshot_timer(deadline_ns: u64, flags: u32) -> Result<(), Errno> {
    let a = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags,
    };
    vcpu_op_raw(
        crate::abi::time::VCPUOP_SET_SINGLESHOT_TIMER,
        u64::from(current()),
        &a as *const VcpuSetSingleshotTimer as u64,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests;
