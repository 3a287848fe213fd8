//! The controls derived for every CPU model, and the refusals.

use super::super::caps::fixtures::{model, MODELS};
use super::super::caps::{AllowedBits, VmxCaps};
use super::*;
use bitflags::Flags;
use proptest::prelude::*;

/// A self-consistent capability MSR: a must-be-1 bit is always allowed to be 1.
fn fix<F: Flags<Bits = u32> + Copy>(v: u64) -> AllowedBits<F> {
    let a = AllowedBits::<F>::from_msr(v);
    AllowedBits {
        must_be_one: a.must_be_one.intersection(a.may_be_one),
        may_be_one: a.may_be_one,
    }
}

fn legal(c: &Controls, caps: &VmxCaps) {
    assert!(caps.pin.allows(c.pin), "pin {:#x}", c.pin);
    assert!(caps.proc.allows(c.proc), "proc {:#x}", c.proc);
    if c.proc
        .contains(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS)
    {
        assert!(caps.proc2.allows(c.proc2), "proc2 {:#x}", c.proc2);
    } else {
        assert!(c.proc2.is_empty());
    }
    assert!(caps.exit.allows(c.exit), "exit {:#x}", c.exit);
    assert!(caps.entry.allows(c.entry), "entry {:#x}", c.entry);
}

#[test]
fn every_model_derives_legal_controls() {
    for m in MODELS {
        let caps = m.caps();
        let c = derive(&caps).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        legal(&c, &caps);
        assert!(c.has_proc(PrimaryControls::HLT_EXITING));
        assert!(c.has_proc(PrimaryControls::CR3_LOAD_EXITING));
        assert!(c.has_proc(PrimaryControls::UNCONDITIONAL_IO_EXITING));
        assert!(c.exit.contains(ExitControls::HOST_ADDRESS_SPACE_SIZE));
        assert!(c.entry.contains(EntryControls::IA32E_MODE_GUEST));
        assert!(!c.has_proc2(SecondaryControls::ENABLE_EPT));
        assert!(!c.has_proc2(SecondaryControls::UNRESTRICTED_GUEST));
        // TRUE controls on every Bochs model: CR3-store exiting is optional and off.
        assert!(
            !c.has_proc(PrimaryControls::CR3_STORE_EXITING),
            "{}",
            m.name
        );
    }
}

#[test]
fn skylake_uses_vpid_efer_pat() {
    let c = derive(&model("corei7_skylake_x").caps()).unwrap();
    assert!(c.vpid && c.has_proc2(SecondaryControls::ENABLE_VPID));
    assert_eq!(c.tlb_flush, TlbFlush::InvvpidSingleContextRetainingGlobals);
    assert!(c.load_efer && c.load_pat && c.msr_bitmaps && c.rdtscp);
    assert!(c.exit.contains(ExitControls::ACK_INTERRUPT_ON_EXIT));
}

#[test]
fn penryn_works_without_vpid_efer_pat() {
    let caps = model("core2_penryn_t9600").caps();
    let c = derive(&caps).unwrap();
    assert!(!c.vpid);
    assert_eq!(c.tlb_flush, TlbFlush::VmTransition);
    assert!(!c.load_efer && !c.load_pat);
    assert!(!c
        .entry
        .intersects(EntryControls::LOAD_EFER | EntryControls::LOAD_PAT));
    // Nothing Keel wants is in Penryn's secondary controls: leave them inactive.
    assert!(!c.has_proc(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS));
    assert!(!c.rdtscp);
}

#[test]
fn no_secondary_at_all() {
    let mut caps = model("corei7_skylake_x").caps();
    caps.proc.may_be_one &= !PrimaryControls::ACTIVATE_SECONDARY_CONTROLS;
    caps.proc2 = AllowedBits::none();
    caps.ept_vpid = Default::default();
    let c = derive(&caps).unwrap();
    legal(&c, &caps);
    assert!(!c.vpid && c.proc2.is_empty());
}

#[test]
fn missing_required_is_named() {
    let base = model("corei7_sandy_bridge_2600k").caps();
    type Mutation = fn(&mut VmxCaps);
    let cases: &[(Mutation, &str)] = &[
        (
            |c| c.proc.may_be_one &= !PrimaryControls::HLT_EXITING,
            "HLT exiting",
        ),
        (
            |c| c.proc.may_be_one &= !PrimaryControls::CR3_LOAD_EXITING,
            "CR3-load exiting",
        ),
        (
            |c| c.exit.may_be_one &= !ExitControls::HOST_ADDRESS_SPACE_SIZE,
            "host address-space size",
        ),
        (
            |c| c.entry.may_be_one &= !EntryControls::IA32E_MODE_GUEST,
            "IA-32e mode guest",
        ),
        (
            |c| c.pin.may_be_one &= !PinbasedControls::EXTERNAL_INTERRUPT_EXITING,
            "external-interrupt exiting",
        ),
        (
            |c| {
                c.proc.may_be_one &=
                    !(PrimaryControls::UNCONDITIONAL_IO_EXITING | PrimaryControls::USE_IO_BITMAPS)
            },
            "unconditional I/O exiting (or use I/O bitmaps)",
        ),
    ];
    for (mutate, name) in cases {
        let mut caps = base;
        mutate(&mut caps);
        match derive(&caps) {
            Err(e @ ControlError::Required { name: n, .. }) => {
                assert_eq!(n, *name);
                assert!(e.to_string().contains(name));
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn io_bitmap_fallback() {
    let mut caps = model("corei7_skylake_x").caps();
    caps.proc.may_be_one &= !PrimaryControls::UNCONDITIONAL_IO_EXITING;
    let c = derive(&caps).unwrap();
    assert!(c.io_bitmaps && c.has_proc(PrimaryControls::USE_IO_BITMAPS));
}

#[test]
fn no_msr_bitmaps_is_fine() {
    let mut caps = model("corei7_skylake_x").caps();
    caps.proc.may_be_one &= !PrimaryControls::USE_MSR_BITMAPS;
    let c = derive(&caps).unwrap();
    assert!(!c.msr_bitmaps && !c.has_proc(PrimaryControls::USE_MSR_BITMAPS));
}

#[test]
fn vpid_needs_invvpid() {
    let mut caps = model("corei7_skylake_x").caps();
    caps.ept_vpid.raw &= !(1 << 32);
    let c = derive(&caps).unwrap();
    assert!(!c.vpid && !c.has_proc2(SecondaryControls::ENABLE_VPID));
    let mut caps = model("corei7_skylake_x").caps();
    caps.ept_vpid.raw &= !((1 << 43) | (1 << 41));
    assert_eq!(
        derive(&caps).unwrap().tlb_flush,
        TlbFlush::InvvpidAllContext
    );
}

#[test]
fn forced_ept_is_refused() {
    let mut caps = model("corei7_skylake_x").caps();
    caps.proc2.must_be_one |= SecondaryControls::ENABLE_EPT;
    assert!(matches!(
        derive(&caps),
        Err(ControlError::MustBeZero {
            name: "enable EPT",
            ..
        })
    ));
}

#[test]
fn legacy_msrs_force_cr3_store_exiting() {
    let mut caps = model("corei7_skylake_x").caps();
    caps.proc = AllowedBits::from_msr(0xF7F9_FFFE_0401_E172);
    let c = derive(&caps).unwrap();
    legal(&c, &caps);
    assert!(c.has_proc(PrimaryControls::CR3_STORE_EXITING));
}

proptest! {
    /// Whatever the CPU reports, a successful derivation is legal for it and
    /// honours the required controls.
    #[test]
    fn derived_controls_are_always_legal(
        pin in any::<u64>(), procv in any::<u64>(), proc2v in any::<u64>(),
        exitv in any::<u64>(), entryv in any::<u64>(), cap in any::<u64>(),
    ) {
        let mut caps = model("corei7_skylake_x").caps();
        caps.pin = fix(pin);
        caps.proc = fix(procv);
        caps.proc2 = fix(proc2v);
        caps.exit = fix(exitv);
        caps.entry = fix(entryv);
        caps.ept_vpid.raw = cap;
        if let Ok(c) = derive(&caps) {
            prop_assert!(caps.pin.allows(c.pin));
            prop_assert!(caps.proc.allows(c.proc));
            if c.proc.contains(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS) {
                prop_assert!(caps.proc2.allows(c.proc2));
            }
            prop_assert!(caps.exit.allows(c.exit));
            prop_assert!(caps.entry.allows(c.entry));
            prop_assert!(c.has_proc(PrimaryControls::HLT_EXITING) && c.has_proc(PrimaryControls::CR3_LOAD_EXITING));
            prop_assert!(!c.has_proc2(SecondaryControls::ENABLE_EPT));
            prop_assert!(!c.vpid || c.tlb_flush != TlbFlush::VmTransition);
        }
    }
}
