//! Patched call sites: the hot operations, patched once the table is chosen.

use super::*;

pub(super) extern "C" fn c_native_irq_disable() {
    arch::cli()
}
pub(super) extern "C" fn c_native_irq_enable() {
    arch::sti()
}
pub(super) extern "C" fn c_pv_irq_disable() {
    pv_irq_disable()
}
pub(super) extern "C" fn c_pv_irq_enable() {
    pv_irq_enable()
}
pub(super) extern "C" fn c_native_clock_ns() -> u64 {
    crate::native::clock_ns()
}
pub(super) extern "C" fn c_pv_clock_ns() -> u64 {
    crate::events::now_ns()
}

/// The addresses the slots of the patchable operations get for a choice:
/// (irq_disable, irq_enable, clock_ns).
pub(super) fn slot_targets(c: &Choice) -> (u64, u64, u64) {
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
pub(super) const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// The native instruction a site becomes instead of a call, where it fits:
/// CLI and STI (the native `irq_disable` and `irq_enable`).
pub(super) fn inline_native(target: u64) -> Option<[u8; 6]> {
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

pub(super) static PATCHED: Once<Patched> = Once::new();

/// What [`init`] patched.
pub fn patched() -> Patched {
    PATCHED.get().copied().unwrap_or_default()
}

/// Rewrite every recorded site into a direct call to its slot's target, or into
/// the native instruction itself where it fits (CLI, STI). Text
/// is read-only on Keel: each site's page is mapped writable through the mmu
/// group for the write, then read-only again.
pub(super) fn patch() -> Patched {
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

pub(super) fn set_text_writable(page: GuestVirt, writable: bool) -> Result<(), MmuError> {
    let slot = l1_slot(page)?;
    let cur = Pte(fault::read_u64(entry_va(slot)?).map_err(MmuError::Fault)?);
    let new = if writable {
        cur.with(PteFlags::WRITABLE)
    } else {
        cur.without(PteFlags::WRITABLE)
    };
    (ops().mmu.set_pte)(slot, new.raw())?;
    (ops().mmu.flush_one)(page)
}
