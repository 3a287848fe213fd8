use super::*;
use crate::vmx::caps::AllowedBits;
use proptest::prelude::*;

fn usable(start: u64, end: u64) -> MemRegion {
    MemRegion {
        range: MachineRange::from_len(start, end - start),
        kind: RegionKind::Usable,
    }
}

fn reserved(start: u64, end: u64) -> MemRegion {
    MemRegion {
        range: MachineRange::from_len(start, end - start),
        kind: RegionKind::Reserved,
    }
}

#[test]
fn trampoline_takes_the_lowest_free_usable_page() {
    let map = [usable(0, 0x9_fc00), reserved(0x9_fc00, 0xa_0000)];
    assert_eq!(choose_trampoline(&map, &[]), Some(MachineAddr::new(0x8000)));
    // Boot data on 0x8000..0x9800 pushes it to the next whole free page.
    let boot = [MachineRange::from_len(0x8000, 0x1800)];
    assert_eq!(
        choose_trampoline(&map, &boot),
        Some(MachineAddr::new(0xa000))
    );
}

#[test]
fn trampoline_never_leaves_conventional_memory_or_usable_ram() {
    // The last usable page ends at 0x9fc00: page 0x9f000 is not whole.
    let map = [usable(0, 0x9_fc00)];
    let all = [MachineRange::from_len(0x8000, 0x9_f000 - 0x8000)];
    assert_eq!(choose_trampoline(&map, &all), None);
    // Usable RAM only above 1 MiB: nothing.
    assert_eq!(
        choose_trampoline(&[usable(0x10_0000, 0x800_0000)], &[]),
        None
    );
    // Below 0x8000 only: nothing.
    assert_eq!(choose_trampoline(&[usable(0x1000, 0x8000)], &[]), None);
    // A page that straddles two regions is not inside one.
    let split = [usable(0x8000, 0x8800), usable(0x8800, 0x9000)];
    assert_eq!(choose_trampoline(&split, &[]), None);
}

fn caps() -> VmxCaps {
    VmxCaps {
        basic: 0x00da_0400_0000_002b,
        revision_id: 0x2b,
        proc2: AllowedBits::from_msr(0x0000_00ff_0000_0000),
        cr0_fixed0: 0x8000_0021,
        cr0_fixed1: 0xffff_ffff,
        ..VmxCaps::default()
    }
}

#[test]
fn identical_caps_agree_and_the_first_difference_is_named() {
    assert_eq!(caps_mismatch(&caps(), &caps()), None);
    let mut ap = caps();
    ap.proc2 = AllowedBits::from_msr(0x0000_007f_0000_0000);
    assert_eq!(
        caps_mismatch(&caps(), &ap),
        Some("secondary processor-based controls")
    );
    let mut ap = caps();
    ap.cr0_fixed0 = 0x21;
    assert_eq!(caps_mismatch(&caps(), &ap), Some("IA32_VMX_CR0_FIXED0"));
    // A decoded field not named on its own still counts.
    let mut ap = caps();
    ap.ins_outs_info = !ap.ins_outs_info;
    assert_eq!(
        caps_mismatch(&caps(), &ap),
        Some("the rest of the decoded capabilities")
    );
}

fn s(before: u64, ap: u64, after: u64) -> TscSample {
    TscSample { before, ap, after }
}

#[test]
fn tsc_inside_the_window_is_in_sync_outside_is_skew() {
    assert_eq!(
        tsc_check(&[s(100, 150, 200)]),
        Some(TscSync::InSync { window: 100 })
    );
    assert_eq!(
        tsc_check(&[s(100, 100, 100)]),
        Some(TscSync::InSync { window: 0 })
    );
    assert_eq!(tsc_check(&[s(1000, 400, 1200)]), Some(TscSync::Behind(600)));
    assert_eq!(
        tsc_check(&[s(1000, 5000, 1200)]),
        Some(TscSync::Ahead(3800))
    );
    assert_eq!(tsc_check(&[]), None);
}

#[test]
fn the_worst_handshake_decides() {
    let v = tsc_check(&[s(0, 5, 10), s(20, 19, 30), s(40, 45, 50)]);
    assert_eq!(v, Some(TscSync::Behind(1)));
    let v = tsc_check(&[s(0, 5, 10), s(20, 25, 60)]);
    assert_eq!(v, Some(TscSync::InSync { window: 40 }));
}

proptest! {
    /// A constant offset between the two TSCs is reported as skew whenever it
    /// exceeds the window it could hide in, and never invented when there is none.
    #[test]
    fn offsets_larger_than_the_window_are_caught(
        before in 0u64..1 << 40, ap_delay in 0u64..1000, rest in 0u64..1000, offset in -100_000i64..100_000,
    ) {
        let after = before + ap_delay + rest;
        let true_ap = before + ap_delay;
        let seen = true_ap.wrapping_add_signed(offset);
        let v = tsc_check(&[s(before, seen, after)]).unwrap();
        if offset == 0 {
            prop_assert!(matches!(v, TscSync::InSync { .. }), "no offset, yet {:?}", v);
        }
        if offset < -(ap_delay as i64) {
            prop_assert_eq!(v, TscSync::Behind(before - seen));
        }
        if offset > rest as i64 {
            prop_assert_eq!(v, TscSync::Ahead(seen - after));
        }
    }
}

fn features() -> CpuFeatures {
    CpuFeatures {
        max_leaves: [0x16, 0x8000_0008],
        signature: 0x0005_0654,
        leaf1: [0x7ffa_fbbf & !(1 << 27), 0xbfeb_fbff & !(1 << 9)],
        leaf7: [0x029c_6fbf, 0x4000_0000, 0xbc00_0400],
        ext1: [0x121, 0x2c10_0800],
    }
}

#[test]
fn cpuid_features_agree_up_to_the_state_bits() {
    let boot = CpuFeatures {
        leaf1: [features().leaf1[0] | 1 << 27, features().leaf1[1] | 1 << 9],
        leaf7: [
            features().leaf7[0],
            features().leaf7[1] | 1 << 4,
            features().leaf7[2],
        ],
        ..features()
    };
    // CR4.OSXSAVE, the APIC enable and CR4.PKE are set on the boot CPU only.
    assert_eq!(features_mismatch(&boot, &features()), None);
    let mut ap = features();
    ap.leaf1[0] &= !(1 << 26); // no XSAVE
    assert_eq!(features_mismatch(&boot, &ap), Some("CPUID.1 feature bits"));
    let mut ap = features();
    ap.signature += 1;
    assert_eq!(
        features_mismatch(&boot, &ap),
        Some("CPUID.1:EAX (family, model, stepping)")
    );
    let mut ap = features();
    ap.leaf7[0] &= !(1 << 5); // no AVX2
    assert_eq!(
        features_mismatch(&boot, &ap),
        Some("CPUID.7.0 feature bits")
    );
    let mut ap = features();
    ap.ext1[1] &= !(1 << 20); // no NX
    assert_eq!(
        features_mismatch(&boot, &ap),
        Some("CPUID.80000001h feature bits")
    );
    let mut ap = features();
    ap.max_leaves[0] = 0xd;
    assert_eq!(
        features_mismatch(&boot, &ap),
        Some("the highest CPUID leaves")
    );
}

#[test]
fn the_init_wait_is_kept_for_old_processors_only() {
    // Skylake-X (family 6, model 0x55), Core 2 Penryn (6, 0x17): no wait.
    assert_eq!(init_wait_us(0x0005_0654), 0);
    assert_eq!(init_wait_us(0x0001_0676), 0);
    // Family 6 model 0xE (Core Duo), Pentium 4 (family 0xF, no extended
    // family), a 486: the SDM's 10 ms.
    assert_eq!(init_wait_us(0x0000_06e8), 10_000);
    assert_eq!(init_wait_us(0x0000_0f29), 10_000);
    assert_eq!(init_wait_us(0x0000_0480), 10_000);
}

#[test]
fn placement() {
    let online = [0, 1, 2];
    // Default: every domain on run_cpu (0).
    assert_eq!(place(None, 0, &online, 0, false), (0, None));
    assert_eq!(place(None, 5, &online, 0, false), (0, None));
    // run_cpu names another online CPU; a missing one falls back to 0.
    assert_eq!(place(None, 1, &online, 2, false), (2, None));
    assert_eq!(place(None, 1, &online, 5, false).0, 0);
    assert!(place(None, 1, &online, 5, false).1.is_some());
    // spread: the online CPUs in turn.
    let spread: Vec<usize> = (0..5).map(|i| place(None, i, &online, 0, true).0).collect();
    assert_eq!(spread, [0, 1, 2, 0, 1]);
    // keel.cpu= wins when online; otherwise the default, with a reason.
    assert_eq!(place(Some(1), 0, &online, 0, true), (1, None));
    let (c, why) = place(Some(7), 1, &online, 0, true);
    assert_eq!(c, 1);
    assert!(why.is_some());
    // One CPU: everything on it.
    assert_eq!(place(None, 3, &[0], 0, true), (0, None));
}

proptest! {
    /// Wherever it asks, a domain is placed on an online CPU.
    #[test]
    fn placement_is_always_online(
        req in proptest::option::of(0usize..10),
        index in 0usize..40,
        run_cpu in 0usize..10,
        spread: bool,
        extra in proptest::collection::btree_set(1usize..8, 0..7),
    ) {
        let mut online = vec![0];
        online.extend(extra);
        let (c, _) = place(req, index, &online, run_cpu, spread);
        prop_assert!(online.contains(&c));
    }
}
