//! Multiboot2 (Multiboot2 Specification 2.0, section 3.6): one self-contained block
//! of 8-byte-aligned tags (`total_size`, reserved, then `type, size, payload` until
//! an end tag). Every string and the RSDP copy live inside the block, so it parses
//! from one byte slice.

use super::{le_u32, le_u64};
use super::{BootInfo, BootInfoError, FixedStr, MachineRange, Protocol, RegionKind, RsdpLocation};
use crate::addr::MachineAddr;

/// The largest multiboot2 information block we accept (GRUB's are a few KiB).
pub const MB2_MAX_TOTAL_SIZE: u32 = 1 << 20;

pub(super) const MB2_TAG_END: u32 = 0;
pub(super) const MB2_TAG_CMDLINE: u32 = 1;
pub(super) const MB2_TAG_LOADER_NAME: u32 = 2;
pub(super) const MB2_TAG_MODULE: u32 = 3;
pub(super) const MB2_TAG_BASIC_MEMINFO: u32 = 4;
pub(super) const MB2_TAG_MMAP: u32 = 6;
pub(super) const MB2_TAG_ACPI_OLD: u32 = 14;
pub(super) const MB2_TAG_ACPI_NEW: u32 = 15;

/// Parse a multiboot2 information block: `block` holds its bytes, which lie at
/// machine address `base` (needed to give the RSDP copy a machine address).
pub fn parse_multiboot2(base: u64, block: &[u8]) -> Result<BootInfo, BootInfoError> {
    let total = le_u32(block, 0).ok_or(BootInfoError::BadTotalSize(block.len() as u32))?;
    if (total as usize) > block.len() || total < 16 || total % 8 != 0 {
        return Err(BootInfoError::BadTotalSize(total));
    }
    let block = &block[..total as usize];
    let mut bi = BootInfo::empty(Protocol::Multiboot2);
    bi.push_boot_data(base, u64::from(total));
    let mut have_mmap = false;
    let mut basic_mem: Option<(u32, u32)> = None;
    let mut rsdp_new = None;
    let mut rsdp_old = None;

    let mut off = 8usize;
    loop {
        let (tag_type, size) = match (le_u32(block, off), le_u32(block, off + 4)) {
            (Some(t), Some(s)) => (t, s as usize),
            _ => return Err(BootInfoError::MissingEndTag),
        };
        let bad = BootInfoError::BadTag {
            offset: off as u32,
            tag_type,
        };
        if size < 8 {
            return Err(bad);
        }
        let payload = block
            .get(off + 8..off.checked_add(size).ok_or(bad)?)
            .ok_or(bad)?;
        match tag_type {
            MB2_TAG_END => break,
            MB2_TAG_CMDLINE => bi.cmdline = FixedStr::from_bytes(payload),
            MB2_TAG_LOADER_NAME => bi.loader_name = FixedStr::from_bytes(payload),
            MB2_TAG_MODULE => {
                let start = u64::from(le_u32(payload, 0).ok_or(bad)?);
                let end = u64::from(le_u32(payload, 4).ok_or(bad)?);
                bi.push_module(
                    MachineRange {
                        start: MachineAddr::new(start),
                        end: MachineAddr::new(end.max(start)),
                    },
                    payload.get(8..).unwrap_or(&[]),
                );
            }
            MB2_TAG_BASIC_MEMINFO => {
                basic_mem = Some((
                    le_u32(payload, 0).ok_or(bad)?,
                    le_u32(payload, 4).ok_or(bad)?,
                ));
            }
            MB2_TAG_MMAP => {
                let entry_size = le_u32(payload, 0).ok_or(bad)? as usize;
                if entry_size < 24 {
                    return Err(bad);
                }
                have_mmap = true;
                // Entries start after entry_size and entry_version.
                for e in payload.get(8..).unwrap_or(&[]).chunks_exact(entry_size) {
                    let base_addr = le_u64(e, 0).unwrap_or(0);
                    let length = le_u64(e, 8).unwrap_or(0);
                    let kind = RegionKind::from_raw(le_u32(e, 16).unwrap_or(0));
                    bi.push_region(base_addr, length, kind);
                }
            }
            // The payload is a copy of the RSDP; byte 15 is its revision. We need at
            // least the 20-byte ACPI 1.0 part.
            MB2_TAG_ACPI_OLD | MB2_TAG_ACPI_NEW if payload.len() >= 20 => {
                let loc = RsdpLocation {
                    addr: MachineAddr::new(base + off as u64 + 8),
                    revision: payload[15],
                };
                if tag_type == MB2_TAG_ACPI_NEW {
                    rsdp_new = Some(loc);
                } else {
                    rsdp_old = Some(loc);
                }
            }
            _ => {}
        }
        // Tags are padded to 8 bytes.
        off = match off.checked_add((size + 7) & !7) {
            Some(n) if n < block.len() => n,
            _ => return Err(BootInfoError::MissingEndTag),
        };
    }
    // Prefer the ACPI 2.0+ RSDP (XSDT, 64-bit table pointers).
    bi.rsdp = rsdp_new.or(rsdp_old);
    if !have_mmap {
        if let Some((lower, upper)) = basic_mem {
            bi.push_region(0, u64::from(lower) * 1024, RegionKind::Usable);
            bi.push_region(0x10_0000, u64::from(upper) * 1024, RegionKind::Usable);
        }
    }
    Ok(bi)
}
