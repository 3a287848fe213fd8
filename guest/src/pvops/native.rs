//! The native implementations: raw instructions.

use super::*;

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

pub(super) fn entry_va(ptr: u64) -> Result<GuestVirt, MmuError> {
    let mfn = Mfn::new(ptr >> 12);
    let va = pagetable::frame_va(mfn).map_err(|_| MmuError::NotOwned(mfn))?;
    Ok(GuestVirt::new(va.get() + (ptr & 0xff8)))
}

pub(super) fn native_set_pte(ptr: u64, val: u64) -> Result<(), MmuError> {
    fault::write_u64(entry_va(ptr)?, val).map_err(MmuError::Fault)
}

pub(super) fn native_load_root(l4: Mfn) -> Result<(), MmuError> {
    fault::write_cr(Cr::Cr3, l4.get() << 12).map_err(MmuError::Fault)
}

pub(super) fn native_flush_one(va: GuestVirt) -> Result<(), MmuError> {
    arch::invlpg(va.get());
    Ok(())
}

pub(super) fn native_flush_all() -> Result<(), MmuError> {
    arch::reload_cr3();
    Ok(())
}

pub(super) fn nothing_to_announce(_level: u32, _t: Mfn) -> Result<(), MmuError> {
    Ok(())
}

pub(super) fn nothing_to_release(_t: Mfn) -> Result<(), MmuError> {
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

pub(super) fn native_set_timer(deadline: u64) -> Result<(), Errno> {
    crate::native::set_timer(deadline);
    Ok(())
}

/// The native time group.
pub const NATIVE_TIME: TimeOps = TimeOps {
    clock_ns: crate::native::clock_ns,
    set_timer: native_set_timer,
};

pub(super) fn native_bind_timer(h: fn()) -> Result<(), Errno> {
    crate::native::bind_timer(h);
    Ok(())
}

/// The native irq group.
pub const NATIVE_IRQ: IrqOps = IrqOps {
    bind_timer: native_bind_timer,
};

pub(super) fn native_console(bytes: &[u8]) -> Result<(), Errno> {
    crate::native::uart_write(bytes);
    Ok(())
}

/// The native console group.
pub const NATIVE_CONSOLE: ConsoleOps = ConsoleOps {
    write: native_console,
};
