//! Patchable call sites (paravirt_ops' patching, static_call style).

use super::*;

// ---------------------------------------------------------------------------
// Patchable call sites (paravirt_ops' patching, static_call style).
//
// A hot operation is called through a *site*: `call qword ptr [rip + slot]`
// (FF 15 disp32, six bytes), where `slot` holds the chosen implementation's
// address, and the pair (site, slot) is recorded in `.pv_sites`. Once the table
// is chosen, `pvops::patch` rewrites each site into `cs call rel32` (2E E8
// rel32, the same six bytes, one instruction): a direct call, with no load of
// the slot and no indirect branch; or, where the native instruction fits, into
// that instruction and a five-byte NOP (CLI or STI).
// ---------------------------------------------------------------------------

/// One recorded site: the address of its `call` and of its slot.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PvSite {
    /// The call instruction.
    pub site: u64,
    /// The slot it reads.
    pub slot: u64,
}

extern "C" {
    static __pv_sites_start: PvSite;
    static __pv_sites_end: PvSite;
}

/// The recorded sites.
pub fn pv_sites() -> &'static [PvSite] {
    let start = &raw const __pv_sites_start;
    let end = &raw const __pv_sites_end;
    let n = (end as usize - start as usize) / core::mem::size_of::<PvSite>();
    // SAFETY: the linker script brackets `.pv_sites`, which holds only the
    // 16-byte records the sites below emit.
    unsafe { core::slice::from_raw_parts(start, n) }
}

/// The slots of the patchable operations: each holds an `extern "C" fn` address.
pub mod slots {
    use core::sync::atomic::AtomicU64;
    /// `cpu.irq_disable`.
    pub static IRQ_DISABLE: AtomicU64 = AtomicU64::new(0);
    /// `cpu.irq_enable`.
    pub static IRQ_ENABLE: AtomicU64 = AtomicU64::new(0);
    /// `time.clock_ns`.
    pub static CLOCK_NS: AtomicU64 = AtomicU64::new(0);
}

macro_rules! pv_site {
    ($slot:path $(, $($args:tt)*)?) => {
        asm!(
            "2: call qword ptr [rip + {slot}]",
            ".pushsection .pv_sites, \"a\"",
            ".balign 8",
            ".quad 2b, {slot}",
            ".popsection",
            slot = sym $slot,
            $($($args)*,)?
            clobber_abi("C"),
        )
    };
}

/// `cpu.irq_disable` through its patchable site.
pub fn site_irq_disable() {
    // SAFETY: the slot holds an `extern "C" fn()` (set by `pvops::init` before
    // any site runs); the C ABI's caller-saved registers are clobbered.
    unsafe { pv_site!(slots::IRQ_DISABLE) };
}

/// `cpu.irq_enable` through its patchable site.
pub fn site_irq_enable() {
    // SAFETY: as `site_irq_disable`.
    unsafe { pv_site!(slots::IRQ_ENABLE) };
}

/// `time.clock_ns` through its patchable site.
pub fn site_clock_ns() -> u64 {
    let v: u64;
    // SAFETY: as `site_irq_disable`; the slot holds an `extern "C" fn() -> u64`.
    unsafe { pv_site!(slots::CLOCK_NS, out("rax") v) };
    v
}

/// `cpu.irq_disable` through the same instruction as its site, but not
/// recorded: never patched (what every site costs before patching).
pub fn unpatched_irq_disable() {
    // SAFETY: as `site_irq_disable`.
    unsafe {
        asm!("call qword ptr [rip + {slot}]", slot = sym slots::IRQ_DISABLE, clobber_abi("C"))
    };
}

/// The six bytes at a site.
pub fn site_bytes(site: u64) -> [u8; 6] {
    assert!(pv_sites().iter().any(|s| s.site == site));
    // SAFETY: `site` is a recorded call instruction in our own text.
    unsafe { core::ptr::read_volatile(site as *const [u8; 6]) }
}

/// Write `bytes` over a recorded site. The caller has made its page writable;
/// the CPUID after the write serialises, so the new instruction is the one
/// fetched from then on (same CPU: no cross-modifying code).
pub fn write_site(site: u64, bytes: [u8; 6]) {
    assert!(pv_sites().iter().any(|s| s.site == site));
    // SAFETY: `site` is a recorded six-byte call in our own text, mapped
    // writable by the caller; one CPU, interrupts are not taken inside a site
    // being rewritten because no site is running while we patch.
    unsafe { core::ptr::write_volatile(site as *mut [u8; 6], bytes) };
    let _ = cpuid(0, 0);
}
