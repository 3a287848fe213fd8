//! The Keel PV implementations: hypercalls, pvclock, event channels.

use super::*;

/// Leaves answered from the cache (CPUID results of a Keel domain never change).
pub(super) const CPUID_CACHE: usize = 32;
pub(super) static CPUID_CACHED: Mutex<[Option<(u32, u32, CpuidResult)>; CPUID_CACHE]> =
    Mutex::new([None; CPUID_CACHE]);

pub(super) fn pv_cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
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

pub(super) fn pv_irq_disable() {
    crate::events::disable();
}

pub(super) fn pv_irq_enable() {
    arch::sti();
    crate::events::enable();
}

pub(super) fn pv_safe_halt() {
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

pub(super) fn pv_set_pte(ptr: u64, val: u64) -> Result<(), MmuError> {
    guest::mmu_update(&[MmuUpdate { ptr, val }])
        .1
        .map_err(MmuError::Refused)
}

pub(super) fn ext(cmd: u32, arg1: u64) -> Result<(), MmuError> {
    guest::mmuext_op(&[MmuextOp {
        cmd,
        pad: 0,
        arg1,
        arg2: 0,
    }])
    .1
    .map_err(MmuError::Refused)
}

pub(super) fn pv_load_root(l4: Mfn) -> Result<(), MmuError> {
    ext(MMUEXT_NEW_BASEPTR, l4.get())
}

pub(super) fn pv_flush_one(va: GuestVirt) -> Result<(), MmuError> {
    ext(MMUEXT_INVLPG_LOCAL, va.get())
}

pub(super) fn pv_flush_all() -> Result<(), MmuError> {
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
        if !e.is_present() {
            return Err(MmuError::NotOwned(t));
        }
        t = e.frame();
    }
    Ok((t.get() << 12) + va.table_index(1) as u64 * 8)
}

/// Change the RW bit of the domain's own mapping of frame `t`, through the
/// chosen `set_pte` (a hypercall, or a store Keel emulates).
pub(super) fn remap_own(t: Mfn, writable: bool) -> Result<(), MmuError> {
    let pfn = pagetable::index()
        .map_err(MmuError::Fault)?
        .pfn_of(t)
        .ok_or(MmuError::NotOwned(t))?;
    let slot = l1_slot(crate::start::pfn_to_va(pfn))?;
    let cur = Pte(fault::read_u64(entry_va(slot)?).map_err(MmuError::Fault)?);
    let new = if writable {
        cur.with(PteFlags::WRITABLE)
    } else {
        cur.without(PteFlags::WRITABLE)
    };
    (ops().mmu.set_pte)(slot, new.raw())
}

pub(super) fn keel_alloc_table(level: u32, t: Mfn) -> Result<(), MmuError> {
    if !(1..=4).contains(&level) {
        return Err(MmuError::Refused(Errno::EINVAL));
    }
    remap_own(t, false)?;
    ext(MMUEXT_PIN_L1_TABLE + level - 1, t.get())
}

pub(super) fn keel_release_table(t: Mfn) -> Result<(), MmuError> {
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
pub(super) static PV_TIMER_PORT: Once<u32> = Once::new();
pub(super) static PV_TIMER_HANDLER: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(0);

pub(super) fn pv_port_handler(port: u32) {
    if PV_TIMER_PORT.get() == Some(&port) {
        let h = PV_TIMER_HANDLER.load(core::sync::atomic::Ordering::SeqCst);
        if h != 0 {
            arch::fn_from_addr(h)();
        }
    }
}

pub(super) fn pv_bind_timer(h: fn()) -> Result<(), Errno> {
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
