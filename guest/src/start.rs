//! The start of day: `start_info`, the command line, and the bootstrap layout.
//!
//! The hypervisor passes the guest-virtual address of the `start_info` page in RSI.
//! [`crate::arch`] decodes it (through the `abi` crate's byte-exact decoder) once,
//! before the test runs, and keeps the copy here. The layout rules it relies on are
//! in `abi::start_info`: every frame of the domain is mapped at
//! `virt_base + pfn * 4096` with `virt_base` the image's link address.

use spin::Once;

use crate::abi::start_info::StartInfo;
use crate::abi::{GuestVirt, Mfn, Pfn, PAGE_SIZE};

/// What the entry recorded.
#[derive(Clone, Copy)]
pub struct Boot {
    /// The decoded start_info.
    pub info: StartInfo,
    /// Where the hypervisor put it.
    pub va: GuestVirt,
    /// The image's first byte: the domain's `virt_base` (PFN 0).
    pub virt_base: GuestVirt,
    /// The first byte after the image (end of `.bss`, page aligned).
    pub image_end: GuestVirt,
}

static BOOT: Once<Boot> = Once::new();

/// Record the boot information (called once by the entry code).
pub fn init(boot: Boot) {
    BOOT.call_once(|| boot);
}

/// The boot information. Panics (CRASH) if called before the entry recorded it,
/// which can only happen from code running before `_start`.
pub fn boot() -> &'static Boot {
    BOOT.get()
        .expect("keel-guest: start_info used before the entry recorded it")
}

/// The start_info page the hypervisor passed.
pub fn start_info() -> &'static StartInfo {
    &boot().info
}

/// The guest command line (from start_info), or `""` if it is not UTF-8.
pub fn cmdline() -> &'static str {
    core::str::from_utf8(start_info().cmd_line_bytes()).unwrap_or("")
}

/// The guest-virtual address where PFN `pfn` is mapped in the bootstrap region.
pub fn pfn_to_va(pfn: Pfn) -> GuestVirt {
    GuestVirt::new(boot().virt_base.get() + pfn.get() * PAGE_SIZE)
}

/// The PFN a bootstrap-region address belongs to, if it is inside the region.
pub fn va_to_pfn(va: GuestVirt) -> Option<Pfn> {
    let b = boot();
    let off = va.get().checked_sub(b.virt_base.get())?;
    let pfn = off / PAGE_SIZE;
    (pfn < b.info.nr_pages).then_some(Pfn::new(pfn))
}

/// The machine frame of `pfn`, read from `mfn_list` (through a fault probe, so a bad
/// `mfn_list` pointer is an `Err`, not a crash).
pub fn pfn_to_mfn(pfn: Pfn) -> Result<Mfn, crate::Fault> {
    let va = GuestVirt::new(start_info().mfn_list.get() + pfn.get() * 8);
    crate::fault::read_u64(va).map(Mfn::new)
}

/// The value of `key=value` in a command line, if present (first occurrence).
pub fn cmdline_value<'a>(cmd: &'a str, key: &str) -> Option<&'a str> {
    cmd.split_ascii_whitespace().find_map(|w| {
        let (k, v) = w.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// Parse a number: decimal, or hexadecimal with `0x`.
pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_values() {
        let c = "console=keel seed=1234 x seed=9 hex=0x10";
        assert_eq!(cmdline_value(c, "seed"), Some("1234"));
        assert_eq!(cmdline_value(c, "x"), None);
        assert_eq!(cmdline_value(c, "missing"), None);
        assert_eq!(parse_u64("1234"), Some(1234));
        assert_eq!(cmdline_value(c, "hex").and_then(parse_u64), Some(16));
        assert_eq!(parse_u64("zz"), None);
        assert_eq!(cmdline_value("", "seed"), None);
    }
}
