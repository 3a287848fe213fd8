//! The MSR policy row by row, the bitmap, and properties over all indices and values.

use super::*;
use proptest::prelude::*;

const ENV: MsrEnv = MsrEnv {
    rdtscp: true,
    load_efer: true,
    load_pat: true,
    debug_controls: true,
    platform_info: 0x1a00,
};
const LONG: u64 = Efer::SCE.bits() | Efer::LME.bits() | Efer::LMA.bits() | Efer::NXE.bits();

#[test]
fn table_sorted_unique() {
    for w in MSRS.windows(2) {
        assert!(w[0].index < w[1].index, "{} / {}", w[0].name, w[1].name);
    }
}

#[test]
fn unknown_msrs_fault() {
    for i in [
        0,
        0x3b,
        0x480,
        0x48b,
        0x1a2,
        0x200,
        0x2fe,
        0xc000_0104,
        0xffff_ffff,
    ] {
        assert_eq!(read(i, &ENV), Err(GpFault), "{i:#x}");
        assert_eq!(write(i, 0, || 0, &ENV), Err(GpFault), "{i:#x}");
    }
}

#[test]
fn emulated() {
    assert_eq!(read(index::FEATURE_CONTROL, &ENV), Ok(ReadOp::Value(1)));
    assert_eq!(write(index::FEATURE_CONTROL, 1, || 0, &ENV), Err(GpFault));
    assert_eq!(write(index::FEATURE_CONTROL, 5, || 0, &ENV), Err(GpFault));
    assert_eq!(read(index::APIC_BASE, &ENV), Ok(ReadOp::Value(0xfee0_0100)));
    assert_eq!(
        write(index::APIC_BASE, 0xfee0_0100, || 0, &ENV),
        Ok(WriteOp::Ignore)
    );
    assert_eq!(
        write(index::APIC_BASE, 0xfee0_0900, || 0, &ENV),
        Err(GpFault)
    );
    assert_eq!(read(index::PLATFORM_INFO, &ENV), Ok(ReadOp::Value(0x1a00)));
    assert_eq!(
        write(index::PLATFORM_INFO, 0x1a00, || 0, &ENV),
        Err(GpFault)
    );
    assert_eq!(
        write(index::BIOS_SIGN_ID, 0, || 0, &ENV),
        Ok(WriteOp::Ignore)
    );
    assert_eq!(read(index::BIOS_SIGN_ID, &ENV), Ok(ReadOp::Value(1 << 32)));
    assert_eq!(read(0x26f, &ENV), Ok(ReadOp::Value(MTRR_FIXED_WB)));
    assert_eq!(write(0x26f, 0, || 0, &ENV), Err(GpFault));
    assert_eq!(
        write(index::MTRRCAP, MTRRCAP_VALUE, || 0, &ENV),
        Err(GpFault)
    );
    assert_eq!(MsrEnv::platform_info_from_base_mhz(2600), 0x1a00);
    assert_eq!(MsrEnv::platform_info_from_base_mhz(0), 0);
}

#[test]
fn efer_rules() {
    let w = |v| write(index::EFER, v, || LONG, &ENV);
    assert_eq!(w(LONG), Ok(WriteOp::Vmcs(VmcsMsr::Efer, LONG)));
    assert_eq!(
        w(LONG & !Efer::SCE.bits()),
        Ok(WriteOp::Vmcs(VmcsMsr::Efer, LONG & !Efer::SCE.bits()))
    );
    // LMA is read-only: a write without it keeps it.
    assert_eq!(
        w(LONG & !Efer::LMA.bits()),
        Ok(WriteOp::Vmcs(VmcsMsr::Efer, LONG))
    );
    assert_eq!(
        w(LONG & !Efer::LME.bits()),
        Err(GpFault),
        "LME with paging on"
    );
    assert_eq!(w(LONG & !Efer::NXE.bits()), Err(GpFault), "NXE is fixed");
    assert_eq!(w(LONG | 1 << 1), Err(GpFault), "reserved bit 1");
    assert_eq!(w(LONG | 1 << 63), Err(GpFault), "reserved bit 63");
    // Without EFER switching: SCE only, into the shared host register.
    let no = MsrEnv {
        load_efer: false,
        ..ENV
    };
    assert_eq!(read(index::EFER, &no), Ok(ReadOp::Host));
    assert_eq!(
        write(index::EFER, LONG, || LONG, &no),
        Ok(WriteOp::Host(LONG))
    );
    assert_eq!(
        write(index::EFER, LONG & !Efer::SCE.bits(), || LONG, &no),
        Ok(WriteOp::Host(LONG & !Efer::SCE.bits()))
    );
    assert_eq!(
        write(index::EFER, LONG & !Efer::NXE.bits(), || LONG, &no),
        Err(GpFault)
    );
    // A domain without NX: NXE stays clear.
    let old = LONG & !Efer::NXE.bits();
    assert_eq!(write(index::EFER, LONG, || old, &ENV), Err(GpFault));
    assert_eq!(
        write(index::EFER, old, || old, &ENV),
        Ok(WriteOp::Vmcs(VmcsMsr::Efer, old))
    );
}

#[test]
fn vmcs_checks() {
    let pat = 0x0007_0406_0007_0406;
    assert_eq!(
        write(index::PAT, pat, || 0, &ENV),
        Ok(WriteOp::Vmcs(VmcsMsr::Pat, pat))
    );
    assert_eq!(
        write(index::PAT, (pat & !0xff) | 2, || 0, &ENV),
        Err(GpFault),
        "type 2"
    );
    assert_eq!(write(index::PAT, pat | 8 << 56, || 0, &ENV), Err(GpFault));
    assert_eq!(
        write(index::SYSENTER_EIP, 1 << 47, || 0, &ENV),
        Err(GpFault)
    );
    assert_eq!(
        write(index::SYSENTER_EIP, 0xffff_8000_0000_0000, || 0, &ENV),
        Ok(WriteOp::Vmcs(VmcsMsr::SysenterEip, 0xffff_8000_0000_0000))
    );
    assert_eq!(write(index::SYSENTER_CS, 1 << 32, || 0, &ENV), Err(GpFault));
    assert_eq!(
        write(index::DEBUGCTL, 2, || 0, &ENV),
        Ok(WriteOp::Vmcs(VmcsMsr::DebugCtl, 2))
    );
    assert_eq!(write(index::DEBUGCTL, 1, || 0, &ENV), Err(GpFault), "LBR");
    assert_eq!(
        read(index::FS_BASE, &ENV),
        Ok(ReadOp::Vmcs(VmcsMsr::FsBase))
    );
}

#[test]
fn pass_through() {
    assert_eq!(read(index::LSTAR, &ENV), Ok(ReadOp::Host));
    assert_eq!(write(index::LSTAR, 1 << 47, || 0, &ENV), Err(GpFault));
    assert_eq!(write(index::SFMASK, 1 << 32, || 0, &ENV), Err(GpFault));
    assert_eq!(write(index::STAR, !0, || 0, &ENV), Ok(WriteOp::Host(!0)));
    assert_eq!(write(index::TSC, 0, || 0, &ENV), Err(GpFault));
    let no = MsrEnv {
        rdtscp: false,
        ..ENV
    };
    assert_eq!(read(index::TSC_AUX, &no), Err(GpFault));
    assert!(bitmap_passes(&no).all(|(i, _, _)| i != index::TSC_AUX));
    assert!(initial_values(&no).all(|(i, _)| i != index::TSC_AUX));
    let passes: std::vec::Vec<_> = bitmap_passes(&ENV).collect();
    assert!(passes.contains(&(index::TSC, true, false)));
    assert!(passes.contains(&(index::KERNEL_GS_BASE, true, true)));
    assert!(passes.contains(&(index::TSC_AUX, true, false)));
    // FMASK's writes exit so that Keel, not whatever is beneath it, checks them.
    assert!(passes.contains(&(index::SFMASK, true, false)));
    assert_eq!(
        write(index::SFMASK, 0x4700, || 0, &ENV),
        Ok(WriteOp::Host(0x4700))
    );
    assert!(initial_values(&ENV).any(|(i, v)| i == index::SFMASK && v == 0));
    assert!(!passes.iter().any(|&(i, _, _)| i == index::EFER));
    assert_eq!(initial_values(&ENV).count(), 6);
}

#[test]
fn bitmap_agrees_with_the_handler() {
    // What the bitmap lets through without an exit is exactly what the exit
    // handler would have done natively anyway (so a CPU without MSR bitmaps
    // behaves the same), and nothing else passes.
    for env in [
        ENV,
        MsrEnv {
            rdtscp: false,
            ..ENV
        },
    ] {
        for (i, r, w) in bitmap_passes(&env) {
            assert!(r, "{i:#x}: a write-only pass-through makes no sense");
            assert!(matches!(
                read(i, &env),
                Ok(ReadOp::Host | ReadOp::Vmcs(VmcsMsr::FsBase | VmcsMsr::GsBase))
            ));
            if w {
                assert!(matches!(
                    write(i, 0, || 0, &env),
                    Ok(WriteOp::Host(0) | WriteOp::Vmcs(VmcsMsr::FsBase | VmcsMsr::GsBase, 0))
                ));
            } else if matches!(
                lookup(i, &env).map(|m| m.kind),
                Some(Kind::WriteChecked { .. })
            ) {
                // The write exits only to be checked, then goes to the register.
                assert_eq!(write(i, 0, || 0, &env), Ok(WriteOp::Host(0)), "{i:#x}");
            } else {
                assert_eq!(write(i, 0, || 0, &env), Err(GpFault), "{i:#x}");
            }
            assert!(
                bitmap_position(i, false).is_some(),
                "{i:#x} outside the bitmap"
            );
        }
        for m in MSRS {
            let passes = bitmap_passes(&env).any(|(i, _, _)| i == m.index);
            let exits = matches!(m.kind, Kind::Vmcs(..) | Kind::Emulated(..));
            assert!(!(passes && exits), "{} both passes and is emulated", m.name);
        }
    }
}

#[test]
fn bitmap_positions() {
    assert_eq!(bitmap_position(0, false), Some((0, 0)));
    assert_eq!(bitmap_position(0x1fff, true), Some((2048 + 1023, 7)));
    assert_eq!(bitmap_position(0xc000_0102, false), Some((1024 + 32, 2)));
    assert_eq!(bitmap_position(0xc000_0102, true), Some((3072 + 32, 2)));
    assert_eq!(bitmap_position(0x2000, false), None);
    assert_eq!(bitmap_position(0xc000_2000, false), None);
}

proptest! {
    /// No index and value panic; an index outside the table always faults; an
    /// accepted EFER write never clears LME or changes NXE.
    #[test]
    fn total(i in any::<u32>(), v in any::<u64>(), cur in any::<u64>()) {
        let r = read(i, &ENV);
        let w = write(i, v, || cur, &ENV);
        if MSRS.iter().all(|m| m.index != i) {
            prop_assert_eq!(r, Err(GpFault));
            prop_assert_eq!(w, Err(GpFault));
        }
        if let Ok(WriteOp::Vmcs(VmcsMsr::Efer, nv)) = write(index::EFER, v, || LONG, &ENV) {
            prop_assert_eq!(nv & (Efer::LME.bits() | Efer::LMA.bits() | Efer::NXE.bits()), LONG & (Efer::LME.bits() | Efer::LMA.bits() | Efer::NXE.bits()));
        }
        if let Some((b, bit)) = bitmap_position(i, v & 1 == 1) {
            prop_assert!(b < 4096 && bit < 8);
        }
    }
}
