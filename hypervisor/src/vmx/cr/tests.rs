//! The CR access decoder and the CR0/CR4 shadow rules.

use super::super::caps::fixtures::{model, MODELS};
use super::*;
use proptest::prelude::*;

fn policy() -> CrPolicy {
    CrPolicy::new(&model("corei7_skylake_x").caps())
}

#[test]
fn initial_values_are_legal_everywhere() {
    for m in MODELS {
        let caps = m.caps();
        let p = CrPolicy::new(&caps);
        let cr0 = p.real_cr0(GUEST_CR0_INITIAL).unwrap();
        let cr4 = p.real_cr4(GUEST_CR4_INITIAL).unwrap();
        assert!(caps.cr0_ok(cr0) && caps.cr4_ok(cr4), "{}", m.name);
        assert!(cr4 & cr4::VMXE != 0);
    }
}

#[test]
fn vmxe_is_invisible() {
    let p = policy();
    let w = p
        .write_cr4(GUEST_CR4_INITIAL, GUEST_CR4_INITIAL | cr4::PGE)
        .unwrap();
    assert_eq!(w.visible & cr4::VMXE, 0);
    assert_ne!(w.real & cr4::VMXE, 0);
    assert!(w.flush_tlb);
    assert_eq!(
        p.write_cr4(GUEST_CR4_INITIAL, GUEST_CR4_INITIAL | cr4::VMXE),
        Err(CrFault::GeneralProtection)
    );
}

#[test]
fn pinned_bits_cannot_be_cleared() {
    let p = policy();
    for bit in [cr0::PE, cr0::PG, cr0::WP] {
        assert_eq!(
            p.write_cr0(GUEST_CR0_INITIAL, GUEST_CR0_INITIAL & !bit),
            Err(CrFault::GeneralProtection)
        );
    }
    assert_eq!(
        p.write_cr4(GUEST_CR4_INITIAL, GUEST_CR4_INITIAL & !cr4::PAE),
        Err(CrFault::GeneralProtection)
    );
    // LMSW cannot clear PE.
    let w = p.lmsw(GUEST_CR0_INITIAL, 0).unwrap();
    assert_ne!(w.visible & cr0::PE, 0);
    assert_eq!(w.visible & (cr0::MP | cr0::EM | cr0::TS), 0);
}

#[test]
fn other_bits() {
    let p = policy();
    // Allowed: TS, EM, MP, AM.
    assert!(p
        .write_cr0(GUEST_CR0_INITIAL, GUEST_CR0_INITIAL | cr0::TS | cr0::AM)
        .is_ok());
    assert_eq!(
        p.clts(GUEST_CR0_INITIAL | cr0::TS).unwrap().visible,
        GUEST_CR0_INITIAL
    );
    // Refused: CD, NW without CD, NE, high bits.
    for v in [
        GUEST_CR0_INITIAL | cr0::CD,
        GUEST_CR0_INITIAL | cr0::NW,
        GUEST_CR0_INITIAL & !cr0::NE,
        GUEST_CR0_INITIAL | (1 << 32),
    ] {
        assert_eq!(
            p.write_cr0(GUEST_CR0_INITIAL, v),
            Err(CrFault::GeneralProtection),
            "{v:#x}"
        );
    }
    // ET stays 1 even if the guest writes 0.
    assert_eq!(
        p.write_cr0(GUEST_CR0_INITIAL, GUEST_CR0_INITIAL & !cr0::ET)
            .unwrap()
            .visible,
        GUEST_CR0_INITIAL
    );
    // CR4: SMEP (20), PCIDE (17), OSXSAVE (18) refused in 0.1.
    for bit in [20, 17, 18] {
        assert!(p
            .write_cr4(GUEST_CR4_INITIAL, GUEST_CR4_INITIAL | (1 << bit))
            .is_err());
    }
}

#[test]
fn cr3_and_cr8() {
    let l = mov_to_cr3(0x1234_5018, 40).unwrap();
    assert_eq!(l.l4, Mfn::new(0x12345));
    assert_eq!(l.real, 0x1234_5018);
    assert_eq!(mov_to_cr3(0x1234_5fe7, 40).unwrap().real, 0x1234_5000);
    assert!(mov_to_cr3(1 << 40, 40).is_err());
    assert!(mov_to_cr3(1 << 63, 52).is_err());
    assert_eq!(mov_to_cr8(15), Ok(15));
    assert!(mov_to_cr8(16).is_err());
    assert_eq!(
        CrAccess::decode(0x0000_0303),
        CrAccess::MovTo { cr: 3, gpr: 3 }
    );
    assert_eq!(
        CrAccess::decode(0x0000_0c18),
        CrAccess::MovFrom { cr: 8, gpr: 12 }
    );
    assert_eq!(CrAccess::decode(0x20), CrAccess::Clts);
    assert_eq!(
        CrAccess::decode(0x000b_0030),
        CrAccess::Lmsw { source: 0xb }
    );
}

proptest! {
    /// Whatever the guest writes, an accepted value keeps the pinned bits, hides
    /// VMXE, and satisfies the VMX fixed bits for real.
    #[test]
    fn accepted_writes_are_safe(v0 in any::<u64>(), v4 in any::<u64>(), src in any::<u16>()) {
        for m in MODELS {
            let caps = m.caps();
            let p = CrPolicy::new(&caps);
            for w in [p.write_cr0(GUEST_CR0_INITIAL, v0), p.lmsw(GUEST_CR0_INITIAL, src)].into_iter().flatten() {
                prop_assert_eq!(w.visible & CR0_PINNED, CR0_PINNED);
                prop_assert!(caps.cr0_ok(w.real));
            }
            if let Ok(w) = p.write_cr4(GUEST_CR4_INITIAL, v4) {
                prop_assert_eq!(w.visible & cr4::VMXE, 0);
                prop_assert_ne!(w.visible & cr4::PAE, 0);
                prop_assert!(caps.cr4_ok(w.real));
            }
            if let Ok(l) = mov_to_cr3(v0, 46) {
                prop_assert!(l.real >> 46 == 0);
            }
        }
    }
}

#[test]
fn osxsave_only_when_offered() {
    let caps = VmxCaps {
        cr4_fixed1: !0,
        ..VmxCaps::default()
    };
    let off = CrPolicy::new(&caps);
    let v = GUEST_CR4_INITIAL;
    assert_eq!(
        off.write_cr4(v, v | cr4::OSXSAVE),
        Err(CrFault::GeneralProtection)
    );
    let on = off.with_osxsave(true);
    let w = on.write_cr4(v, v | cr4::OSXSAVE).unwrap();
    assert_ne!(w.visible & cr4::OSXSAVE, 0);
    assert_ne!(w.real & cr4::OSXSAVE, 0);
    assert_eq!(on.write_cr4(v | cr4::OSXSAVE, v).unwrap().visible, v);
    // The fixed bits still rule: a CPU whose FIXED1 forbids it refuses it.
    let strict = CrPolicy::new(&VmxCaps {
        cr4_fixed1: !cr4::OSXSAVE,
        ..VmxCaps::default()
    })
    .with_osxsave(true);
    assert_eq!(
        strict.write_cr4(v, v | cr4::OSXSAVE),
        Err(CrFault::GeneralProtection)
    );
}
