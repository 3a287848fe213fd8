//! The operations table (paravirt_ops): one guest image, native or paravirtual.
//!
//! The library reaches the privileged machine through [`ops()`], a table of
//! function pointers grouped as Linux groups `pv_ops`: [`CpuOps`] (CPUID, MSRs,
//! control registers, interrupt flag, halt), [`MmuOps`] (set an entry, load the
//! root, flush one page or all), [`TimeOps`] (read the clock, arm a one-shot
//! timer), [`IrqOps`] (the timer as an interrupt) and [`ConsoleOps`]. Each group
//! has two implementations:
//!
//! | group | native (raw instructions) | Keel PV |
//! |---|---|---|
//! | cpu | CPUID, RDMSR/WRMSR, MOV CR, CLI/STI, STI;HLT | CPUID answered from a per-boot cache (one exit per leaf, ever); MSRs and CRs: the instructions (Keel has no hypercall for them, as Xen PV); `evtchn_upcall_mask` for the interrupt flag; `SCHEDOP_block` |
//! | mmu | an 8-byte store into the table, MOV CR3, INVLPG, MOV CR3 to itself | `mmu_update`, `MMUEXT_NEW_BASEPTR`, `MMUEXT_INVLPG_LOCAL`, `MMUEXT_TLB_FLUSH_LOCAL` |
//! | time | TSC scaled by a PIT calibration; local APIC one-shot timer | pvclock (no exit); `set_timer_op` |
//! | irq | the APIC timer's IDT vector | `VIRQ_TIMER` bound to an event channel, upcall vector |
//! | console | COM1, polled | `console_io(CONSOLEIO_write)` |
//!
//! **Detection** ([`init`], at boot): the Keel CPUID leaves (`0x4000_0000`,
//! "KeelKeelKeel") select PV; their absence selects native (the image then came
//! in through its multiboot1 header: [`crate::native`]).
//!
//! **A la carte**: on Keel the guest command line's `pv=` chooses PV per group
//! (`pv=all`, the default; `pv=none`; `pv=mmu,time`, ...). A group left native on
//! Keel runs its raw instructions and relies on Keel's trap-and-emulate (a direct
//! PTE store, MOV CR3, CPUID, MSRs, HLT, COM1). Two things are the platform's and
//! not the menu's, because bare hardware has no equivalent Keel could emulate:
//! announcing a page table ([`MmuOps::alloc_table`]: Keel needs it read-only and
//! pinned before MOV CR3 may load it; bare hardware needs nothing) and the local
//! APIC (Keel presents none: CPUID.1:EDX.APIC is 0), so on Keel `time` and `irq`
//! stay PV whatever `pv=` says, and [`Choice::forced`] records it. The verdict
//! line and the power-off always use the platform's own channel (console_io and
//! `SCHEDOP_shutdown` on Keel), so the runner reads them the same way whatever
//! the console group is.

use spin::{Mutex, Once};

use crate::abi::guest;
use crate::abi::mmu::{
    MmuUpdate, MmuextOp, MMUEXT_INVLPG_LOCAL, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE,
    MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_UNPIN_TABLE,
};
use crate::abi::{Errno, GuestVirt, Mfn};
use crate::arch;
use crate::cpu::CpuidResult;
use crate::fault::{self, Cr, Fault};
use crate::pagetable::{self, PTE_P, PTE_RW};

/// A group of operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// CPUID, MSRs, control registers, interrupt flag, halt.
    Cpu,
    /// Page-table entries, the root, the TLB.
    Mmu,
    /// The clock and the one-shot timer.
    Time,
    /// The timer as an interrupt.
    Irq,
    /// The console.
    Console,
}

impl Group {
    /// Every group, in table order.
    pub const ALL: [Group; 5] = [
        Group::Cpu,
        Group::Mmu,
        Group::Time,
        Group::Irq,
        Group::Console,
    ];

    /// The name used by `pv=`.
    pub const fn name(self) -> &'static str {
        match self {
            Group::Cpu => "cpu",
            Group::Mmu => "mmu",
            Group::Time => "time",
            Group::Irq => "irq",
            Group::Console => "console",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Which implementation a group uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// Raw instructions (trap-and-emulate under Keel).
    Native,
    /// Keel hypercalls and shared memory.
    Pv,
}

/// The set of groups that use PV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PvSet(u8);

impl PvSet {
    /// Every group PV.
    pub const ALL: PvSet = PvSet(0x1f);
    /// Every group native.
    pub const NONE: PvSet = PvSet(0);

    /// Whether `g` is PV.
    pub const fn has(self, g: Group) -> bool {
        self.0 & g.bit() != 0
    }

    /// This set with `g` added.
    pub const fn with(self, g: Group) -> PvSet {
        PvSet(self.0 | g.bit())
    }

    /// The implementation of `g`.
    pub const fn of(self, g: Group) -> Impl {
        if self.has(g) {
            Impl::Pv
        } else {
            Impl::Native
        }
    }

    /// Parse a `pv=` value: `all`, `none`, or group names separated by commas.
    pub fn parse(s: &str) -> Result<PvSet, &str> {
        match s {
            "all" => return Ok(PvSet::ALL),
            "none" | "" => return Ok(PvSet::NONE),
            _ => {}
        }
        let mut set = PvSet::NONE;
        for w in s.split(',') {
            let g = Group::ALL.into_iter().find(|g| g.name() == w).ok_or(w)?;
            set = set.with(g);
        }
        Ok(set)
    }
}

/// Where the image was entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Keel's domain builder (`_start`, RSI = start_info).
    Keel,
    /// A multiboot1 loader (bare hardware).
    Multiboot,
}

/// The platform under the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Keel (its CPUID leaves are there).
    Keel,
    /// Bare hardware (or a hypervisor that is not Keel, treated as hardware).
    BareMetal,
}

impl Platform {
    /// A name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Platform::Keel => "keel",
            Platform::BareMetal => "bare metal",
        }
    }
}

/// What was chosen at boot, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The platform.
    pub platform: Platform,
    /// The groups that use PV.
    pub pv: PvSet,
    /// Groups asked for native that stay PV because Keel cannot emulate them.
    pub forced: PvSet,
    /// A `pv=` value that did not parse (the word), if any.
    pub bad: Option<&'static str>,
}

/// The groups Keel cannot run natively (no local APIC): they stay PV there.
pub const KEEL_PV_ONLY: PvSet = PvSet::NONE.with(Group::Time).with(Group::Irq);

/// Decide: `keel` from CPUID, `pv_arg` the command line's `pv=` value.
pub fn choose(platform: Platform, pv_arg: Option<&'static str>) -> Choice {
    match platform {
        Platform::BareMetal => Choice {
            platform,
            pv: PvSet::NONE,
            forced: PvSet::NONE,
            bad: None,
        },
        Platform::Keel => {
            let (asked, bad) = match pv_arg.map(PvSet::parse) {
                None => (PvSet::ALL, None),
                Some(Ok(s)) => (s, None),
                Some(Err(w)) => (PvSet::ALL, Some(w)),
            };
            let forced = PvSet(KEEL_PV_ONLY.0 & !asked.0);
            Choice {
                platform,
                pv: PvSet(asked.0 | KEEL_PV_ONLY.0),
                forced,
                bad,
            }
        }
    }
}

/// Why an MMU operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmuError {
    /// The hypervisor refused the hypercall.
    Refused(Errno),
    /// The instruction faulted (a refused trap-and-emulate is the fault itself).
    Fault(Fault),
    /// A table the guest does not own (no address to write it at).
    NotOwned(Mfn),
}

impl core::fmt::Display for MmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MmuError::Refused(e) => write!(f, "refused: {e}"),
            MmuError::Fault(x) => write!(f, "faulted: {x}"),
            MmuError::NotOwned(m) => write!(f, "frame {:#x} not owned", m.get()),
        }
    }
}

/// The cpu group.
#[derive(Clone, Copy)]
pub struct CpuOps {
    /// CPUID.
    pub cpuid: fn(u32, u32) -> CpuidResult,
    /// RDMSR.
    pub read_msr: fn(u32) -> Result<u64, Fault>,
    /// WRMSR.
    pub write_msr: fn(u32, u64) -> Result<(), Fault>,
    /// Read CR0, CR3 or CR4.
    pub read_cr: fn(Cr) -> u64,
    /// Write CR0 or CR4 (CR3 is the mmu group's root).
    pub write_cr: fn(Cr, u64) -> Result<(), Fault>,
    /// Stop interrupts (events).
    pub irq_disable: fn(),
    /// Allow interrupts (events).
    pub irq_enable: fn(),
    /// Allow interrupts and wait for one.
    pub safe_halt: fn(),
}

/// The mmu group. Entries are named by their machine address (`table << 12 |
/// index * 8`), as `mmu_update` names them.
#[derive(Clone, Copy)]
pub struct MmuOps {
    /// Write one entry.
    pub set_pte: fn(u64, u64) -> Result<(), MmuError>,
    /// Load a root (an L4 announced with `alloc_table`).
    pub load_root: fn(Mfn) -> Result<(), MmuError>,
    /// Flush one page's translation.
    pub flush_one: fn(GuestVirt) -> Result<(), MmuError>,
    /// Flush the TLB.
    pub flush_all: fn() -> Result<(), MmuError>,
    /// A frame becomes a table of `level` (the platform's, see the module doc).
    pub alloc_table: fn(u32, Mfn) -> Result<(), MmuError>,
    /// A frame stops being a table (the platform's).
    pub release_table: fn(Mfn) -> Result<(), MmuError>,
}

/// The time group.
#[derive(Clone, Copy)]
pub struct TimeOps {
    /// Nanoseconds of the platform's clock.
    pub clock_ns: fn() -> u64,
    /// Arm the one-shot timer for an absolute time on that clock (0 stops it).
    pub set_timer: fn(u64) -> Result<(), Errno>,
}

/// The irq group.
#[derive(Clone, Copy)]
pub struct IrqOps {
    /// Deliver the timer as an interrupt that calls `handler` (with interrupts
    /// enabled through the cpu group).
    pub bind_timer: fn(fn()) -> Result<(), Errno>,
}

/// The console group.
#[derive(Clone, Copy)]
pub struct ConsoleOps {
    /// Write bytes (a whole line at a time).
    pub write: fn(&[u8]) -> Result<(), Errno>,
}

/// The whole table.
#[derive(Clone, Copy)]
pub struct Ops {
    /// CPU.
    pub cpu: CpuOps,
    /// MMU.
    pub mmu: MmuOps,
    /// Time.
    pub time: TimeOps,
    /// Interrupts.
    pub irq: IrqOps,
    /// Console.
    pub console: ConsoleOps,
}

// ---------------------------------------------------------------------------
// Native.
// ---------------------------------------------------------------------------

/// The native cpu group.
pub const NATIVE_CPU: CpuOps = CpuOps {
    cpuid: arch::cpuid,
    read_msr: fault::rdmsr,
    write_msr: fault::wrmsr,
    read_cr: fault::read_cr,
    write_cr: fault::write_cr,
    irq_disable: arch::cli,
    irq_enable: arch::sti,
    safe_halt: arch::sti_hlt,
};

fn entry_va(ptr: u64) -> Result<GuestVirt, MmuError> {
    let mfn = Mfn::new(ptr >> 12);
    let va = pagetable::frame_va(mfn).map_err(|_| MmuError::NotOwned(mfn))?;
    Ok(GuestVirt::new(va.get() + (ptr & 0xff8)))
}

fn native_set_pte(ptr: u64, val: u64) -> Result<(), MmuError> {
    fault::write_u64(entry_va(ptr)?, val).map_err(MmuError::Fault)
}

fn native_load_root(l4: Mfn) -> Result<(), MmuError> {
    fault::write_cr(Cr::Cr3, l4.get() << 12).map_err(MmuError::Fault)
}

fn native_flush_one(va: GuestVirt) -> Result<(), MmuError> {
    arch::invlpg(va.get());
    Ok(())
}

fn native_flush_all() -> Result<(), MmuError> {
    arch::reload_cr3();
    Ok(())
}

fn nothing_to_announce(_level: u32, _t: Mfn) -> Result<(), MmuError> {
    Ok(())
}

fn nothing_to_release(_t: Mfn) -> Result<(), MmuError> {
    Ok(())
}

/// The native mmu group (bare hardware: tables need no announcing).
pub const NATIVE_MMU: MmuOps = MmuOps {
    set_pte: native_set_pte,
    load_root: native_load_root,
    flush_one: native_flush_one,
    flush_all: native_flush_all,
    alloc_table: nothing_to_announce,
    release_table: nothing_to_release,
};

fn native_set_timer(deadline: u64) -> Result<(), Errno> {
    crate::native::set_timer(deadline);
    Ok(())
}

/// The native time group.
pub const NATIVE_TIME: TimeOps = TimeOps {
    clock_ns: crate::native::clock_ns,
    set_timer: native_set_timer,
};

fn native_bind_timer(h: fn()) -> Result<(), Errno> {
    crate::native::bind_timer(h);
    Ok(())
}

/// The native irq group.
pub const NATIVE_IRQ: IrqOps = IrqOps {
    bind_timer: native_bind_timer,
};

fn native_console(bytes: &[u8]) -> Result<(), Errno> {
    crate::native::uart_write(bytes);
    Ok(())
}

/// The native console group.
pub const NATIVE_CONSOLE: ConsoleOps = ConsoleOps {
    write: native_console,
};

// ---------------------------------------------------------------------------
// Keel PV.
// ---------------------------------------------------------------------------

/// Leaves answered from the cache (CPUID results of a Keel domain never change).
const CPUID_CACHE: usize = 32;
static CPUID_CACHED: Mutex<[Option<(u32, u32, CpuidResult)>; CPUID_CACHE]> =
    Mutex::new([None; CPUID_CACHE]);

fn pv_cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let mut c = CPUID_CACHED.lock();
    if let Some((_, _, r)) = c
        .iter()
        .flatten()
        .find(|(l, s, _)| *l == leaf && *s == subleaf)
    {
        return *r;
    }
    let r = arch::cpuid(leaf, subleaf);
    if let Some(slot) = c.iter_mut().find(|s| s.is_none()) {
        *slot = Some((leaf, subleaf, r));
    }
    r
}

fn pv_irq_disable() {
    crate::events::disable();
}

fn pv_irq_enable() {
    arch::sti();
    crate::events::enable();
}

fn pv_safe_halt() {
    arch::sti();
    // SCHEDOP_block unmasks events and sleeps until one is pending; the upcall
    // follows on the way out.
    let _ = guest::sched_block();
}

/// The Keel PV cpu group.
pub const PV_CPU: CpuOps = CpuOps {
    cpuid: pv_cpuid,
    read_msr: fault::rdmsr,
    write_msr: fault::wrmsr,
    read_cr: fault::read_cr,
    write_cr: fault::write_cr,
    irq_disable: pv_irq_disable,
    irq_enable: pv_irq_enable,
    safe_halt: pv_safe_halt,
};

fn pv_set_pte(ptr: u64, val: u64) -> Result<(), MmuError> {
    guest::mmu_update(&[MmuUpdate { ptr, val }])
        .1
        .map_err(MmuError::Refused)
}

fn ext(cmd: u32, arg1: u64) -> Result<(), MmuError> {
    guest::mmuext_op(&[MmuextOp {
        cmd,
        pad: 0,
        arg1,
        arg2: 0,
    }])
    .1
    .map_err(MmuError::Refused)
}

fn pv_load_root(l4: Mfn) -> Result<(), MmuError> {
    ext(MMUEXT_NEW_BASEPTR, l4.get())
}

fn pv_flush_one(va: GuestVirt) -> Result<(), MmuError> {
    ext(MMUEXT_INVLPG_LOCAL, va.get())
}

fn pv_flush_all() -> Result<(), MmuError> {
    ext(MMUEXT_TLB_FLUSH_LOCAL, 0)
}

/// The machine address of the L1 entry that maps `va` in the current tables.
pub fn l1_slot(va: GuestVirt) -> Result<u64, MmuError> {
    let mut t = pagetable::cr3_mfn();
    for level in [4u32, 3, 2] {
        let e = pagetable::read_entry(t, va.table_index(level)).map_err(|w| match w {
            pagetable::WalkError::Fault(f) => MmuError::Fault(f),
            _ => MmuError::NotOwned(t),
        })?;
        if e & PTE_P == 0 {
            return Err(MmuError::NotOwned(t));
        }
        t = pagetable::pte_mfn(e);
    }
    Ok((t.get() << 12) + va.table_index(1) as u64 * 8)
}

/// Change the RW bit of the domain's own mapping of frame `t`, through the
/// chosen `set_pte` (a hypercall, or a store Keel emulates).
fn remap_own(t: Mfn, writable: bool) -> Result<(), MmuError> {
    let pfn = pagetable::index()
        .map_err(MmuError::Fault)?
        .pfn_of(t)
        .ok_or(MmuError::NotOwned(t))?;
    let slot = l1_slot(crate::start::pfn_to_va(pfn))?;
    let cur = fault::read_u64(entry_va(slot)?).map_err(MmuError::Fault)?;
    let new = if writable {
        cur | PTE_RW
    } else {
        cur & !PTE_RW
    };
    (ops().mmu.set_pte)(slot, new)
}

fn keel_alloc_table(level: u32, t: Mfn) -> Result<(), MmuError> {
    if !(1..=4).contains(&level) {
        return Err(MmuError::Refused(Errno::EINVAL));
    }
    remap_own(t, false)?;
    ext(MMUEXT_PIN_L1_TABLE + level - 1, t.get())
}

fn keel_release_table(t: Mfn) -> Result<(), MmuError> {
    ext(MMUEXT_UNPIN_TABLE, t.get())?;
    remap_own(t, true)
}

/// The Keel PV mmu group.
pub const PV_MMU: MmuOps = MmuOps {
    set_pte: pv_set_pte,
    load_root: pv_load_root,
    flush_one: pv_flush_one,
    flush_all: pv_flush_all,
    alloc_table: keel_alloc_table,
    release_table: keel_release_table,
};

/// Keel's mmu group with the native entries: the platform hooks stay Keel's.
pub const TRAP_MMU: MmuOps = MmuOps {
    alloc_table: keel_alloc_table,
    release_table: keel_release_table,
    ..NATIVE_MMU
};

/// The Keel PV time group.
pub const PV_TIME: TimeOps = TimeOps {
    clock_ns: crate::events::now_ns,
    set_timer: guest::set_timer_op,
};

/// The upcall vector the PV irq group uses.
pub const PV_UPCALL_VECTOR: u8 = 0xf0;
static PV_TIMER_PORT: Once<u32> = Once::new();
static PV_TIMER_HANDLER: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn pv_port_handler(port: u32) {
    if PV_TIMER_PORT.get() == Some(&port) {
        let h = PV_TIMER_HANDLER.load(core::sync::atomic::Ordering::SeqCst);
        if h != 0 {
            arch::fn_from_addr(h)();
        }
    }
}

fn pv_bind_timer(h: fn()) -> Result<(), Errno> {
    PV_TIMER_HANDLER.store(h as usize as u64, core::sync::atomic::Ordering::SeqCst);
    if PV_TIMER_PORT.get().is_none() {
        let port = guest::evtchn_bind_virq(crate::abi::event::VIRQ_TIMER, 0)?;
        PV_TIMER_PORT.call_once(|| port);
        crate::events::set_upcall_handler(PV_UPCALL_VECTOR, pv_port_handler)?;
        guest::evtchn_unmask(port)?;
    }
    // Events reach the vCPU whenever RFLAGS.IF allows (the cpu group's native
    // CLI/STI then gate them; its PV entries use the mask instead).
    crate::events::enable();
    Ok(())
}

/// The Keel PV irq group.
pub const PV_IRQ: IrqOps = IrqOps {
    bind_timer: pv_bind_timer,
};

/// The Keel PV console group.
pub const PV_CONSOLE: ConsoleOps = ConsoleOps {
    write: guest::console_write,
};

/// The table for a choice.
pub fn table(c: &Choice) -> Ops {
    let keel = c.platform == Platform::Keel;
    let pick = |g: Group| c.pv.of(g) == Impl::Pv;
    Ops {
        cpu: if pick(Group::Cpu) { PV_CPU } else { NATIVE_CPU },
        mmu: match (pick(Group::Mmu), keel) {
            (true, _) => PV_MMU,
            (false, true) => TRAP_MMU,
            (false, false) => NATIVE_MMU,
        },
        time: if pick(Group::Time) {
            PV_TIME
        } else {
            NATIVE_TIME
        },
        irq: if pick(Group::Irq) { PV_IRQ } else { NATIVE_IRQ },
        console: if pick(Group::Console) {
            PV_CONSOLE
        } else {
            NATIVE_CONSOLE
        },
    }
}

// ---------------------------------------------------------------------------
// The chosen table.
// ---------------------------------------------------------------------------

static CHOICE: Once<Choice> = Once::new();
static OPS: Once<Ops> = Once::new();

/// The platform, from CPUID: Keel's leaves, or none.
pub fn detect() -> Platform {
    let r = arch::cpuid(0x4000_0000, 0);
    if crate::cpu::signature(&r) == *b"KeelKeelKeel" {
        Platform::Keel
    } else {
        Platform::BareMetal
    }
}

/// Choose the table (called once by the entry, before the test runs).
pub fn init(entry: Entry) {
    let platform = detect();
    let expected = match entry {
        Entry::Keel => Platform::Keel,
        Entry::Multiboot => Platform::BareMetal,
    };
    let pv_arg = crate::start::cmdline_value(crate::start::cmdline(), "pv");
    let c = choose(platform, pv_arg);
    CHOICE.call_once(|| c);
    OPS.call_once(|| table(&c));
    let (d, e, t) = slot_targets(&c);
    arch::slots::IRQ_DISABLE.store(d, core::sync::atomic::Ordering::SeqCst);
    arch::slots::IRQ_ENABLE.store(e, core::sync::atomic::Ordering::SeqCst);
    arch::slots::CLOCK_NS.store(t, core::sync::atomic::Ordering::SeqCst);
    let p = if crate::start::cmdline_value(crate::start::cmdline(), "patch") == Some("no") {
        Patched::default()
    } else {
        patch()
    };
    PATCHED.call_once(|| p);
    if platform != expected {
        crate::report::crash(format_args!(
            "pvops: entered as {entry:?} but CPUID says {}",
            platform.name()
        ));
    }
}

/// What was chosen (before [`init`]: what CPUID says, every group as the
/// platform's default).
pub fn choice() -> Choice {
    match CHOICE.get() {
        Some(c) => *c,
        None => choose(detect(), None),
    }
}

/// The operations table.
pub fn ops() -> &'static Ops {
    OPS.call_once(|| table(&choice()))
}

// ---------------------------------------------------------------------------
// Patched call sites.
// ---------------------------------------------------------------------------

extern "C" fn c_native_irq_disable() {
    arch::cli()
}
extern "C" fn c_native_irq_enable() {
    arch::sti()
}
extern "C" fn c_pv_irq_disable() {
    pv_irq_disable()
}
extern "C" fn c_pv_irq_enable() {
    pv_irq_enable()
}
extern "C" fn c_native_clock_ns() -> u64 {
    crate::native::clock_ns()
}
extern "C" fn c_pv_clock_ns() -> u64 {
    crate::events::now_ns()
}

/// The addresses the slots of the patchable operations get for a choice:
/// (irq_disable, irq_enable, clock_ns).
fn slot_targets(c: &Choice) -> (u64, u64, u64) {
    let cpu_pv = c.pv.has(Group::Cpu);
    let time_pv = c.pv.has(Group::Time);
    let f0 = |f: extern "C" fn()| f as usize as u64;
    (
        if cpu_pv {
            f0(c_pv_irq_disable)
        } else {
            f0(c_native_irq_disable)
        },
        if cpu_pv {
            f0(c_pv_irq_enable)
        } else {
            f0(c_native_irq_enable)
        },
        if time_pv {
            c_pv_clock_ns as *const () as u64
        } else {
            c_native_clock_ns as *const () as u64
        },
    )
}

/// `cpu.irq_disable` through its patched call site (a direct call once
/// [`init`] has patched it).
pub fn irq_disable() {
    arch::site_irq_disable()
}

/// `cpu.irq_enable` through its patched call site.
pub fn irq_enable() {
    arch::site_irq_enable()
}

/// `time.clock_ns` through its patched call site.
pub fn clock_ns() -> u64 {
    arch::site_clock_ns()
}

/// The bytes a site becomes: `cs call rel32` (a segment prefix, ignored in
/// 64-bit mode, pads the five-byte call to the site's six as one instruction),
/// or `None` if the target is out of a rel32's reach.
pub fn direct_call(site: u64, target: u64) -> Option<[u8; 6]> {
    let rel = i32::try_from(target.wrapping_sub(site + 6) as i64).ok()?;
    let r = rel.to_le_bytes();
    Some([0x2e, 0xe8, r[0], r[1], r[2], r[3]])
}

/// `nopl 0(%rax,%rax,1)`: the five-byte NOP after an inlined one-byte instruction.
const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// The native instruction a site becomes instead of a call, where it fits:
/// CLI and STI (the native `irq_disable` and `irq_enable`).
fn inline_native(target: u64) -> Option<[u8; 6]> {
    let one = |b: u8| [b, NOP5[0], NOP5[1], NOP5[2], NOP5[3], NOP5[4]];
    if target == c_native_irq_disable as *const () as u64 {
        Some(one(0xfa))
    } else if target == c_native_irq_enable as *const () as u64 {
        Some(one(0xfb))
    } else {
        None
    }
}

/// The bytes of an unpatched site: `call qword ptr [rip + disp32]` reading `slot`.
pub fn indirect_call(site: u64, slot: u64) -> Option<[u8; 6]> {
    let disp = i32::try_from(slot.wrapping_sub(site + 6) as i64).ok()?;
    let d = disp.to_le_bytes();
    Some([0xff, 0x15, d[0], d[1], d[2], d[3]])
}

/// How patching went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Patched {
    /// Sites rewritten into direct calls.
    pub sites: usize,
    /// Sites left indirect (not the expected bytes, or out of reach).
    pub skipped: usize,
}

static PATCHED: Once<Patched> = Once::new();

/// What [`init`] patched.
pub fn patched() -> Patched {
    PATCHED.get().copied().unwrap_or_default()
}

/// Rewrite every recorded site into a direct call to its slot's target, or into
/// the native instruction itself where it fits (CLI, STI). Text
/// is read-only on Keel: each site's page is mapped writable through the mmu
/// group for the write, then read-only again.
fn patch() -> Patched {
    use core::sync::atomic::Ordering::SeqCst;
    let slot_value = |slot: u64| {
        [
            &arch::slots::IRQ_DISABLE,
            &arch::slots::IRQ_ENABLE,
            &arch::slots::CLOCK_NS,
        ]
        .into_iter()
        .find(|s| s.as_ptr() as u64 == slot)
        .map(|s| s.load(SeqCst))
    };
    let mut p = Patched::default();
    let keel = choice().platform == Platform::Keel;
    for s in arch::pv_sites() {
        let bytes = match (slot_value(s.slot), indirect_call(s.site, s.slot)) {
            (Some(t), Some(old)) if t != 0 && arch::site_bytes(s.site) == old => {
                inline_native(t).or_else(|| direct_call(s.site, t))
            }
            _ => None,
        };
        let Some(bytes) = bytes else {
            p.skipped += 1;
            continue;
        };
        let page = GuestVirt::new(s.site & !0xfff);
        let ok = if keel {
            set_text_writable(page, true).is_ok() && {
                arch::write_site(s.site, bytes);
                set_text_writable(page, false).is_ok()
            }
        } else {
            arch::write_site(s.site, bytes);
            true
        };
        if ok {
            p.sites += 1;
        } else {
            p.skipped += 1;
        }
    }
    p
}

fn set_text_writable(page: GuestVirt, writable: bool) -> Result<(), MmuError> {
    let slot = l1_slot(page)?;
    let cur = fault::read_u64(entry_va(slot)?).map_err(MmuError::Fault)?;
    let new = if writable {
        cur | PTE_RW
    } else {
        cur & !PTE_RW
    };
    (ops().mmu.set_pte)(slot, new)?;
    (ops().mmu.flush_one)(page)
}

/// The platform's own console: the channel the runner reads verdicts on.
pub fn platform_console(bytes: &[u8]) -> Result<(), Errno> {
    match choice().platform {
        Platform::Keel => guest::console_write(bytes),
        Platform::BareMetal => native_console(bytes),
    }
}

/// The platform's power-off with a Xen shutdown reason.
pub fn platform_shutdown(reason: u32) -> Errno {
    match choice().platform {
        Platform::Keel => guest::sched_shutdown(reason),
        Platform::BareMetal => {
            use crate::abi::platform::ExitStatus;
            use crate::abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
            crate::native::power_off(match reason {
                SHUTDOWN_POWEROFF => ExitStatus::Success,
                SHUTDOWN_CRASH => ExitStatus::GuestCrash,
                _ => ExitStatus::GuestOtherShutdown,
            })
        }
    }
}

/// One line saying what was chosen (printed in the test banner).
pub fn describe(c: &Choice, out: &mut impl core::fmt::Write) -> core::fmt::Result {
    write!(out, "platform {}; ops", c.platform.name())?;
    for g in Group::ALL {
        let how = match c.pv.of(g) {
            Impl::Pv => "pv",
            Impl::Native if c.platform == Platform::Keel => "trap",
            Impl::Native => "native",
        };
        write!(out, " {}={}", g.name(), how)?;
    }
    if c.forced != PvSet::NONE {
        write!(out, " (time and irq stay pv on keel: no local APIC)")?;
    }
    if let Some(w) = c.bad {
        write!(out, " (pv= word {w:?} unknown: all pv)")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::String;

    #[test]
    fn pv_values_parse() {
        assert_eq!(PvSet::parse("all"), Ok(PvSet::ALL));
        assert_eq!(PvSet::parse("none"), Ok(PvSet::NONE));
        let s = PvSet::parse("mmu,time").unwrap();
        assert!(s.has(Group::Mmu) && s.has(Group::Time));
        assert!(!s.has(Group::Cpu) && !s.has(Group::Irq) && !s.has(Group::Console));
        assert_eq!(PvSet::parse("mmu,bogus"), Err("bogus"));
        assert_eq!(PvSet::parse("mmu,"), Err(""));
    }

    #[test]
    fn keel_defaults_to_pv_and_keeps_time_and_irq_pv() {
        let c = choose(Platform::Keel, None);
        assert_eq!(c.pv, PvSet::ALL);
        assert_eq!(c.forced, PvSet::NONE);
        let c = choose(Platform::Keel, Some("none"));
        assert_eq!(c.pv, KEEL_PV_ONLY);
        assert_eq!(c.forced, KEEL_PV_ONLY);
        let c = choose(Platform::Keel, Some("mmu,time,irq"));
        assert!(c.pv.has(Group::Mmu) && !c.pv.has(Group::Cpu));
        assert_eq!(c.forced, PvSet::NONE);
        let c = choose(Platform::Keel, Some("nonsense"));
        assert_eq!((c.pv, c.bad), (PvSet::ALL, Some("nonsense")));
    }

    #[test]
    fn bare_metal_is_all_native_whatever_the_command_line() {
        let c = choose(Platform::BareMetal, Some("all"));
        assert_eq!(c.pv, PvSet::NONE);
        let mut s = String::new();
        describe(&c, &mut s).unwrap();
        assert_eq!(
            s,
            "platform bare metal; ops cpu=native mmu=native time=native irq=native console=native"
        );
        let mut s = String::new();
        describe(&choose(Platform::Keel, Some("cpu")), &mut s).unwrap();
        assert_eq!(
            s,
            "platform keel; ops cpu=pv mmu=trap time=pv irq=pv console=trap (time and irq stay pv on keel: no local APIC)"
        );
    }

    #[test]
    fn site_encodings() {
        // call qword ptr [rip + 0x100] at 0x401000: disp from the next insn.
        assert_eq!(
            indirect_call(0x40_1000, 0x40_1106),
            Some([0xff, 0x15, 0x00, 0x01, 0x00, 0x00])
        );
        // cs call 0x401006 from 0x401000: rel32 0; backwards is negative.
        assert_eq!(
            direct_call(0x40_1000, 0x40_1006),
            Some([0x2e, 0xe8, 0, 0, 0, 0])
        );
        assert_eq!(
            direct_call(0x40_1000, 0x40_0006),
            Some([0x2e, 0xe8, 0x00, 0xf0, 0xff, 0xff])
        );
        assert_eq!(
            inline_native(c_native_irq_disable as *const () as u64),
            Some([0xfa, 0x0f, 0x1f, 0x44, 0x00, 0x00])
        );
        assert_eq!(inline_native(c_pv_irq_disable as *const () as u64), None);
        assert_eq!(direct_call(0x40_1000, 0x1_0000_0000_0000), None);
        let c = choose(Platform::Keel, Some("cpu"));
        let (d, _, t) = slot_targets(&c);
        assert_eq!(d, c_pv_irq_disable as *const () as u64);
        assert_eq!(t, c_pv_clock_ns as *const () as u64);
        let (d, _, _) = slot_targets(&choose(Platform::BareMetal, None));
        assert_eq!(d, c_native_irq_disable as *const () as u64);
    }

    #[test]
    fn tables_follow_the_choice() {
        let t = table(&choose(Platform::Keel, Some("mmu")));
        assert!(t.mmu.set_pte as *const () == pv_set_pte as *const ());
        assert!(t.cpu.cpuid as *const () == NATIVE_CPU.cpuid as *const ());
        let t = table(&choose(Platform::Keel, Some("none")));
        assert!(t.mmu.set_pte as *const () == native_set_pte as *const ());
        assert!(t.mmu.alloc_table as *const () == keel_alloc_table as *const ());
        let t = table(&choose(Platform::BareMetal, None));
        assert!(t.mmu.alloc_table as *const () == nothing_to_announce as *const ());
        assert!(t.console.write as *const () == native_console as *const ());
    }
}
