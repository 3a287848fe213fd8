//! ACPI: what Keel needs from the firmware's tables, through the `acpi` crate.
//!
//! - the RSDP: from the multiboot2 tag if the loader passed one (GRUB copies it
//!   into the boot information; the copy is a valid RSDP at a known machine
//!   address), else the BIOS scan of the EBDA's first KiB and 0xE0000-0xFFFFF
//!   (what multiboot1 loaders leave us with);
//! - the MADT: the CPUs (the local APIC ID of each enabled one, for bring-up in
//!   `smp`), and the local APIC's address;
//! - the FADT: the PM1a/PM1b control blocks and the SMI command port, plus the
//!   DSDT's `\_S5` package (found by `arch::aml`) — everything ACPI S5 power-off
//!   needs, handed to `arch::power` at boot so the power-off path never parses.
//!
//! The crate's `AcpiHandler` "maps" a physical region; for Keel that is the direct
//! map, so mapping is address arithmetic and unmapping does nothing.

use super::aml::{find_s5, SleepTypes};
use super::mem::direct_map_top;
use super::power::{set_s5, S5Info};
use crate::addr::MachineAddr;
use crate::boot::RsdpLocation;
use acpi::address::AddressSpace;
use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiError, AcpiHandler, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;

/// `AcpiHandler` over the direct map.
#[derive(Clone, Copy, Debug)]
pub struct DirectMapHandler;

impl AcpiHandler for DirectMapHandler {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        // The crate only asks for regions the firmware's tables point to. A pointer
        // outside the direct map is corrupt firmware data; we cannot return an
        // error from here, so it is a (reported) hypervisor panic.
        let end = (physical_address as u64).saturating_add(size as u64);
        assert!(
            physical_address != 0 && end <= direct_map_top().get(),
            "ACPI table at {physical_address:#x}+{size:#x} is outside the direct map"
        );
        let Some(virt) = NonNull::new(physical_address as *mut T) else {
            unreachable!("checked non-zero above")
        };
        // SAFETY: identity mapping: the virtual address is the physical one, mapped
        // (checked above) for `size` bytes; the crate reads firmware tables only.
        unsafe { PhysicalMapping::new(physical_address, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// What the boot log reports about ACPI.
#[derive(Clone, Copy, Debug)]
pub struct AcpiInfo {
    /// Where the RSDP was found.
    pub rsdp: MachineAddr,
    /// `"multiboot2"` or `"BIOS scan"`.
    pub rsdp_source: &'static str,
    /// ACPI revision from the RSDP (0: ACPI 1.0).
    pub revision: u8,
    /// Enabled (or online-capable) processors in the MADT.
    pub cpus: u32,
    /// The local APIC IDs of the enabled processors, in MADT order (the first
    /// [`MADT_IDS_KEPT`]; `enabled` says how many there are in all).
    pub apic_ids: [u32; MADT_IDS_KEPT],
    /// Enabled processors in the MADT (online-capable ones are not started).
    pub enabled: u32,
    /// The local APIC's machine address.
    pub local_apic: u64,
    /// What S5 power-off will use, if the FADT and DSDT provided it.
    pub s5: Option<S5Info>,
    /// Why S5 is unavailable, when it is.
    pub s5_missing: Option<&'static str>,
}

/// How many enabled processors' APIC IDs [`AcpiInfo`] keeps.
pub const MADT_IDS_KEPT: usize = 64;

impl AcpiInfo {
    /// The APIC IDs of the enabled processors that were kept.
    pub fn apic_ids(&self) -> &[u32] {
        let n = (self.enabled as usize).min(MADT_IDS_KEPT);
        &self.apic_ids[..n]
    }
}

/// Find and read the ACPI tables; record S5 for `arch::power`.
pub fn init(hint: Option<RsdpLocation>) -> Result<AcpiInfo, AcpiError> {
    let h = DirectMapHandler;
    // SAFETY (both calls): the multiboot2 RSDP copy is inside the boot information
    // block, which is mapped and reserved; the BIOS scan reads the EBDA pointer and
    // the BIOS area, mapped and reserved (first MiB). Keel boots from BIOS
    // multiboot loaders, where the scan is the documented way to find the RSDP.
    let (tables, rsdp, source) = match hint {
        Some(loc) => (
            unsafe { AcpiTables::from_rsdp(h, loc.addr.get() as usize)? },
            loc.addr,
            "multiboot2",
        ),
        None => {
            let mapping = unsafe { acpi::rsdp::Rsdp::search_for_on_bios(h)? };
            let addr = MachineAddr::new(mapping.physical_start() as u64);
            // SAFETY: `search_for_on_bios` validated the RSDP.
            (
                unsafe { AcpiTables::from_validated_rsdp(h, mapping)? },
                addr,
                "BIOS scan",
            )
        }
    };

    let madt = tables.find_table::<Madt>()?;
    let mut local_apic = u64::from(madt.get().local_apic_address);
    let mut cpus = 0u32;
    let mut apic_ids = [0u32; MADT_IDS_KEPT];
    let mut enabled = 0u32;
    let mut keep = |id: u32, flags: u32| {
        // Flags bit 0: enabled; bit 1: online capable (can be enabled later).
        if flags & 1 != 0 {
            if let Some(slot) = apic_ids.get_mut(enabled as usize) {
                *slot = id;
            }
            enabled += 1;
        }
    };
    for e in madt.get().entries() {
        match e {
            MadtEntry::LocalApic(l) if l.flags & 0b11 != 0 => {
                cpus += 1;
                keep(u32::from(l.apic_id), l.flags);
            }
            MadtEntry::LocalX2Apic(l) if l.flags & 0b11 != 0 => {
                cpus += 1;
                keep(l.x2apic_id, l.flags);
            }
            MadtEntry::LocalApicAddressOverride(o) => local_apic = o.local_apic_address,
            _ => {}
        }
    }
    drop(madt);

    let (s5, s5_missing) = match s5_info(&tables) {
        Ok(s5) => {
            set_s5(s5);
            (Some(s5), None)
        }
        Err(why) => (None, Some(why)),
    };

    Ok(AcpiInfo {
        rsdp,
        rsdp_source: source,
        revision: tables.revision(),
        cpus,
        apic_ids,
        enabled,
        local_apic,
        s5,
        s5_missing,
    })
}

fn s5_info(tables: &AcpiTables<DirectMapHandler>) -> Result<S5Info, &'static str> {
    let fadt = tables.find_table::<Fadt>().map_err(|_| "no FADT")?;
    let io_port = |ga: acpi::address::GenericAddress| -> Option<u16> {
        (ga.address_space == AddressSpace::SystemIo && ga.address != 0 && ga.address <= 0xffff)
            .then_some(ga.address as u16)
    };
    let pm1a_cnt = fadt
        .pm1a_control_block()
        .ok()
        .and_then(io_port)
        .ok_or("PM1a control block is not an I/O port")?;
    let pm1b_cnt = fadt.pm1b_control_block().ok().flatten().and_then(io_port);
    let smi_cmd = { fadt.smi_cmd_port };
    let acpi_enable = { fadt.acpi_enable };
    drop(fadt);

    let dsdt = tables.dsdt().map_err(|_| "no DSDT")?;
    let end = (dsdt.address as u64).saturating_add(u64::from(dsdt.length));
    if dsdt.address == 0 || end > direct_map_top().get() {
        return Err("DSDT outside the direct map");
    }
    // SAFETY: the DSDT body is firmware memory (ACPI region: reserved from the
    // frame allocator), mapped (checked above), and only read.
    let aml =
        unsafe { core::slice::from_raw_parts(dsdt.address as *const u8, dsdt.length as usize) };
    let SleepTypes { a, b } = find_s5(aml).ok_or("no \\_S5 package in the DSDT")?;
    Ok(S5Info {
        pm1a_cnt,
        pm1b_cnt,
        slp_typa: a,
        slp_typb: b,
        smi_cmd: u16::try_from(smi_cmd).unwrap_or(0),
        acpi_enable,
    })
}
