//! The chosen table: detection, `init`, and the table in use.

use super::*;

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

pub(super) static CHOICE: Once<Choice> = Once::new();
pub(super) static OPS: Once<Ops> = Once::new();

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
