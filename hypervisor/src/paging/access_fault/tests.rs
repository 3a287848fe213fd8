//! Host tests of access faults: what the CPU would report for a guest access
//! the hypervisor makes, checked against built domains.

extern crate std;
use super::*;
use crate::domain::elf::testimg::typical;
use crate::domain::elf::GuestImage;
use crate::domain::{build, DomainConfig, DomainId};
use crate::mem::fake::{FakeFrames, FakeMem};
use crate::paging::entry::{entry_addr, EntryMem, PteFlags};

fn setup() -> (Domain, FakeMem) {
    let bytes = typical();
    let img = GuestImage::parse(&bytes).unwrap();
    let mut mem = FakeMem::default();
    let mut frames = FakeFrames::new(0x1000, 200);
    let cfg = DomainConfig {
        nr_pages: 64,
        ..DomainConfig::new(DomainId(1))
    };
    let dom = build(&img, &bytes, &cfg, &mut mem, &mut frames).unwrap();
    (dom, mem)
}

/// The machine address of the L1 entry that maps `va` (bootstrap tables).
fn l1_slot(dom: &Domain, mem: &FakeMem, va: u64) -> crate::addr::MachineAddr {
    let mut table = dom.base();
    for shift in [39u32, 30, 21] {
        let e = mem.read_pte(entry_addr(table, ((va >> shift) & 511) as usize));
        table = e.frame();
    }
    entry_addr(table, ((va >> 12) & 511) as usize)
}

/// The guest-virtual address of `pfn` in the bootstrap mapping.
fn va(dom: &Domain, pfn: crate::addr::Pfn) -> u64 {
    dom.layout().virt_base.get() + pfn.get() * 4096
}

fn pf(cr2: u64, error_code: u32) -> Option<AccessFault> {
    Some(AccessFault::PageFault {
        cr2: GuestVirt::new(cr2),
        error_code,
    })
}

#[test]
fn accessible_ranges_have_no_fault() {
    let (dom, mem) = setup();
    let base = dom.layout().virt_base.get();
    let free = va(&dom, dom.layout().first_free);
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(base),
            3 * 4096,
            Access::Read,
            Mode::Supervisor
        ),
        None
    );
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(free + 100),
            4096,
            Access::Write,
            Mode::Supervisor
        ),
        None,
        "two writable pages"
    );
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(0),
            0,
            Access::Write,
            Mode::Supervisor
        ),
        None,
        "an empty range touches nothing"
    );
}

#[test]
fn not_present_pages() {
    let (dom, mem) = setup();
    let end = dom.layout().virt_base.get() + 64 * 4096;
    // Starts 4 bytes before the end of the mapped region: the fault is at
    // the first unmapped page, not at the start of the range.
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(end - 4),
            8,
            Access::Read,
            Mode::Supervisor
        ),
        pf(end, 0)
    );
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(end - 4),
            8,
            Access::Write,
            Mode::Supervisor
        ),
        pf(end, PF_WRITE)
    );
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(0x10),
            1,
            Access::Read,
            Mode::Supervisor
        ),
        pf(0x10, 0),
        "NULL"
    );
}

#[test]
fn protection_and_reserved_bit_faults() {
    let (dom, mut mem) = setup();
    // The bootstrap page tables are mapped read-only.
    let pt = va(&dom, dom.layout().page_tables);
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(pt + 8),
            8,
            Access::Write,
            Mode::Supervisor
        ),
        pf(pt + 8, PF_PRESENT | PF_WRITE)
    );
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(pt + 8),
            8,
            Access::Read,
            Mode::Supervisor
        ),
        None
    );
    // A writable page, edited in its L1 entry (a direct write of the fake
    // memory: the test plays the validated update).
    let data = va(&dom, dom.layout().first_free);
    let slot = l1_slot(&dom, &mem, data);
    let e = mem.read_pte(slot);
    assert!(e.contains(PteFlags::WRITABLE));
    mem.write_pte(slot, e.without(PteFlags::WRITABLE));
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(data),
            1,
            Access::Write,
            Mode::Supervisor
        ),
        pf(data, PF_PRESENT | PF_WRITE)
    );
    mem.write_pte(slot, e.without(PteFlags::PRESENT));
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(data),
            1,
            Access::Read,
            Mode::Supervisor
        ),
        pf(data, 0)
    );
    // A reserved bit: NX without EFER.NXE.
    mem.write_pte(slot, e.with(PteFlags::NO_EXECUTE));
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(data),
            1,
            Access::Read,
            Mode::Supervisor
        ),
        pf(data, PF_PRESENT | PF_RSVD)
    );
}

#[test]
fn user_mode_needs_us_at_every_level_and_sets_u() {
    let (dom, mut mem) = setup();
    let cr3 = dom.base();
    let data = va(&dom, dom.layout().first_free);
    // The builder leaves U/S clear everywhere: a user access is a
    // protection fault with U set, a supervisor one is fine.
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(data),
            1,
            Access::Read,
            Mode::User
        ),
        pf(data, PF_PRESENT | PF_USER)
    );
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(data),
            1,
            Access::Write,
            Mode::User
        ),
        pf(data, PF_PRESENT | PF_WRITE | PF_USER)
    );
    // U/S on the leaf only: still not a user page (the CPU ANDs the levels).
    let slot = l1_slot(&dom, &mem, data);
    let e = mem.read_pte(slot);
    mem.write_pte(slot, e.with(PteFlags::USER));
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(data),
            1,
            Access::Read,
            Mode::User
        ),
        pf(data, PF_PRESENT | PF_USER)
    );
    // U/S at every level: accessible from user mode.
    let mut table = cr3;
    for shift in [39u32, 30, 21] {
        let at = entry_addr(table, ((data >> shift) & 511) as usize);
        let e = mem.read_pte(at);
        mem.write_pte(at, e.with(PteFlags::USER));
        table = e.frame();
    }
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(data),
            8,
            Access::Write,
            Mode::User
        ),
        None
    );
    // A not-present page from user mode: U set, P clear.
    let end = dom.layout().virt_base.get() + 64 * 4096;
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(end),
            1,
            Access::Write,
            Mode::User
        ),
        pf(end, PF_WRITE | PF_USER)
    );
}

#[test]
fn non_canonical_is_gp() {
    let (dom, mem) = setup();
    for (va, len) in [
        (0x0000_8000_0000_0000u64, 1u64),
        (0x8000_0000_0040_0000, 8),
        // Runs off the top of the lower half.
        (0x0000_7fff_ffff_fffc, 8),
        // Wraps past 2^64.
        (u64::MAX - 3, 8),
    ] {
        let f = first_fault(
            &dom,
            &mem,
            GuestVirt::new(va),
            len,
            Access::Read,
            Mode::Supervisor,
        );
        match f {
            Some(AccessFault::GeneralProtection { at }) => {
                assert!(!at.is_canonical());
                assert!(at.get().wrapping_sub(va) < len, "inside the range");
            }
            // The first page may be unmapped before the range leaves the
            // canonical space: a #PF there is what the CPU raises first.
            Some(AccessFault::PageFault { cr2, .. }) => assert!(cr2.is_canonical()),
            None => panic!("{va:#x}+{len}: no fault"),
        }
    }
    assert_eq!(
        first_fault(
            &dom,
            &mem,
            GuestVirt::new(0x0000_8000_0000_0000),
            1,
            Access::Write,
            Mode::Supervisor
        ),
        Some(AccessFault::GeneralProtection {
            at: GuestVirt::new(0x0000_8000_0000_0000)
        })
    );
}
