//! Multiboot1 (Multiboot Specification 0.6.96, section 3.3): a fixed 116-byte
//! structure whose fields are 32-bit physical pointers to the memory map, the
//! command line, the module list and each module's command line, all read through
//! [`BootMemory`].

use super::{le_u32, le_u64, BootMemory};
use super::{BootInfo, BootInfoError, FixedStr, MachineRange, Protocol, RegionKind, MAX_MODULES};
use crate::addr::MachineAddr;

const MB1_INFO_SIZE: usize = 116;

bitflags::bitflags! {
    /// The information structure's `flags` word: which of its fields are valid.
    /// Bits not named here (a.out/ELF symbols, drives, APM, VBE, framebuffer)
    /// are kept and ignored.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct Mb1Flags: u32 {
        /// `mem_lower` and `mem_upper`.
        const MEM = 1 << 0;
        /// `cmdline`.
        const CMDLINE = 1 << 2;
        /// `mods_count` and `mods_addr`.
        const MODS = 1 << 3;
        /// `mmap_length` and `mmap_addr`.
        const MMAP = 1 << 6;
        /// `boot_loader_name`.
        const LOADER_NAME = 1 << 9;
        const _ = !0;
    }
}
const MB1_MOD_ENTRY_SIZE: usize = 16;
/// Strings are read up to this many bytes looking for their NUL.
const CSTR_SCAN_MAX: usize = 4096;

/// Copy the NUL-terminated string at `addr` (at most `CSTR_SCAN_MAX` bytes) and
/// return it with the number of bytes it occupies (NUL included).
fn read_cstr(mem: &impl BootMemory, addr: u64) -> Option<(&[u8], u64)> {
    // Read in growing chunks: a string near the end of readable memory must not
    // fail just because a fixed-size read would run past it.
    let mut len = 0usize;
    while len < CSTR_SCAN_MAX {
        let chunk = mem.bytes(addr.checked_add(len as u64)?, 1)?;
        if chunk[0] == 0 {
            let s = mem.bytes(addr, len)?;
            return Some((s, len as u64 + 1));
        }
        len += 1;
    }
    // No NUL within the scan limit: keep what we saw (truncated by the copy).
    Some((mem.bytes(addr, len)?, len as u64))
}

/// Parse a multiboot1 information structure at `info_addr`.
pub fn parse_multiboot1(info_addr: u64, mem: &impl BootMemory) -> Result<BootInfo, BootInfoError> {
    let info = mem
        .bytes(info_addr, MB1_INFO_SIZE)
        .ok_or(BootInfoError::Unreadable {
            what: "multiboot1 information structure",
            addr: info_addr,
        })?;
    let rd32 = |off: usize| le_u32(info, off).unwrap_or(0);
    let mut bi = BootInfo::empty(Protocol::Multiboot1);
    bi.push_boot_data(info_addr, MB1_INFO_SIZE as u64);
    let flags = Mb1Flags::from_bits_retain(rd32(0));

    if flags.contains(Mb1Flags::CMDLINE) {
        let addr = u64::from(rd32(16));
        if let Some((s, used)) = read_cstr(mem, addr) {
            bi.cmdline = FixedStr::from_bytes(s);
            bi.push_boot_data(addr, used);
        } else {
            return Err(BootInfoError::Unreadable {
                what: "command line",
                addr,
            });
        }
    }

    if flags.contains(Mb1Flags::LOADER_NAME) {
        let addr = u64::from(rd32(64));
        if let Some((s, used)) = read_cstr(mem, addr) {
            bi.loader_name = FixedStr::from_bytes(s);
            bi.push_boot_data(addr, used);
        }
    }

    if flags.contains(Mb1Flags::MODS) {
        let count = rd32(20) as usize;
        let addr = u64::from(rd32(24));
        // Do not trust `count` for the size of a read: walk the list entry by entry.
        for i in 0..count.min(MAX_MODULES + 1) {
            let e_addr = addr + (i * MB1_MOD_ENTRY_SIZE) as u64;
            let e = mem
                .bytes(e_addr, MB1_MOD_ENTRY_SIZE)
                .ok_or(BootInfoError::Unreadable {
                    what: "module list",
                    addr: e_addr,
                })?;
            let start = u64::from(le_u32(e, 0).unwrap_or(0));
            let end = u64::from(le_u32(e, 4).unwrap_or(0));
            let cmd_addr = u64::from(le_u32(e, 8).unwrap_or(0));
            let (cmd, used) = if cmd_addr != 0 {
                read_cstr(mem, cmd_addr).unwrap_or((&[], 0))
            } else {
                (&[][..], 0)
            };
            bi.push_boot_data(cmd_addr, used);
            bi.push_module(
                MachineRange {
                    start: MachineAddr::new(start),
                    end: MachineAddr::new(end.max(start)),
                },
                cmd,
            );
        }
        if count > MAX_MODULES + 1 {
            bi.dropped += (count - MAX_MODULES - 1) as u32;
        }
        bi.push_boot_data(
            addr,
            (count.min(MAX_MODULES + 1) * MB1_MOD_ENTRY_SIZE) as u64,
        );
    }

    if flags.contains(Mb1Flags::MMAP) {
        let len = u64::from(rd32(44));
        let addr = u64::from(rd32(48));
        bi.push_boot_data(addr, len);
        // Entries: `size: u32` then `size` bytes of {base: u64, length: u64, type: u32};
        // `size` does not count itself, and may be larger than 20 in later versions.
        let mut off = 0u64;
        while off + 4 <= len {
            let e_addr = addr + off;
            let size_b = mem.bytes(e_addr, 4).ok_or(BootInfoError::Unreadable {
                what: "memory map",
                addr: e_addr,
            })?;
            let size = u64::from(le_u32(size_b, 0).unwrap_or(0));
            if size < 20 || off + 4 + size > len {
                // A malformed entry ends the walk: what came before is still good.
                bi.dropped += 1;
                break;
            }
            let e = mem.bytes(e_addr + 4, 20).ok_or(BootInfoError::Unreadable {
                what: "memory map",
                addr: e_addr,
            })?;
            let base = le_u64(e, 0).unwrap_or(0);
            let length = le_u64(e, 8).unwrap_or(0);
            let kind = RegionKind::from_raw(le_u32(e, 16).unwrap_or(0));
            bi.push_region(base, length, kind);
            off += 4 + size;
        }
    } else if flags.contains(Mb1Flags::MEM) {
        // No map: synthesize one from mem_lower (KiB from 0) and mem_upper (KiB from 1 MiB).
        bi.push_region(0, u64::from(rd32(4)) * 1024, RegionKind::Usable);
        bi.push_region(0x10_0000, u64::from(rd32(8)) * 1024, RegionKind::Usable);
    }
    Ok(bi)
}
