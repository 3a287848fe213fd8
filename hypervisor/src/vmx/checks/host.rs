//! SDM 27.2.2 - 27.2.4: checks on the host-state area.

use super::*;

/// SDM 27.2.2 - 27.2.4: checks on the host-state area.
pub fn check_host(s: &VmcsState, caps: &VmxCaps) -> Result<(), EntryCheckFailure> {
    // 27.2.2: host control registers and MSRs.
    fail_if!(
        s.host_cr0 & caps.cr0_fixed0 != caps.cr0_fixed0,
        S_HOST_CR,
        "host CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear",
        s.host_cr0
    );
    fail_if!(
        s.host_cr0 & !caps.cr0_fixed1 != 0,
        S_HOST_CR,
        "host CR0: a bit forbidden by IA32_VMX_CR0_FIXED1 is set",
        s.host_cr0
    );
    fail_if!(
        !caps.cr4_ok(s.host_cr4),
        S_HOST_CR,
        "host CR4: violates IA32_VMX_CR4_FIXED0/FIXED1",
        s.host_cr4
    );
    fail_if!(
        !fits_phys(s.host_cr3, s.maxphyaddr),
        S_HOST_CR,
        "host CR3: bits beyond the physical-address width are set",
        s.host_cr3
    );
    check_shared_msrs!(
        "host",
        "exit",
        S_HOST_CR,
        s.exit,
        ExitControls,
        sysenter: (s.host_sysenter_esp, s.host_sysenter_eip),
        pat: s.host_pat,
        efer: s.host_efer
    );
    let host64 = s.exit.contains(ExitControls::HOST_ADDRESS_SPACE_SIZE);
    if s.exit.contains(ExitControls::LOAD_EFER) {
        fail_if!(
            (s.host_efer & EFER_LMA != 0) != host64 || (s.host_efer & EFER_LME != 0) != host64,
            S_HOST_CR,
            "host IA32_EFER: LMA/LME differ from \"host address-space size\"",
            s.host_efer
        );
    }

    // 27.2.3: host segment and descriptor-table registers.
    for (sel, what) in [
        (s.host_es, "host ES selector: RPL or TI not 0"),
        (s.host_cs, "host CS selector: RPL or TI not 0"),
        (s.host_ss, "host SS selector: RPL or TI not 0"),
        (s.host_ds, "host DS selector: RPL or TI not 0"),
        (s.host_fs, "host FS selector: RPL or TI not 0"),
        (s.host_gs, "host GS selector: RPL or TI not 0"),
        (s.host_tr, "host TR selector: RPL or TI not 0"),
    ] {
        fail_if!(sel & 7 != 0, S_HOST_SEG, what, sel);
    }
    fail_if!(
        s.host_cs == 0,
        S_HOST_SEG,
        "host CS selector is 0",
        s.host_cs
    );
    fail_if!(
        s.host_tr == 0,
        S_HOST_SEG,
        "host TR selector is 0",
        s.host_tr
    );
    fail_if!(
        !host64 && s.host_ss == 0,
        S_HOST_SEG,
        "host SS selector is 0 with a 32-bit host",
        s.host_ss
    );
    for (base, what) in [
        (s.host_fs_base, "host FS base not canonical"),
        (s.host_gs_base, "host GS base not canonical"),
        (s.host_gdtr_base, "host GDTR base not canonical"),
        (s.host_idtr_base, "host IDTR base not canonical"),
        (s.host_tr_base, "host TR base not canonical"),
    ] {
        fail_if!(!is_canonical(base), S_HOST_SEG, what, base);
    }

    // 27.2.4: address-space size. Keel's host always runs in IA-32e mode.
    let host_in_ia32e = s.host_efer & EFER_LMA != 0;
    let guest64 = s.entry.contains(EntryControls::IA32E_MODE_GUEST);
    if host_in_ia32e {
        fail_if!(
            !host64,
            S_HOST_ADDR,
            "\"host address-space size\" clear while the CPU is in IA-32e mode",
            s.exit.bits()
        );
    } else {
        fail_if!(
            guest64 || host64,
            S_HOST_ADDR,
            "\"IA-32e mode guest\" or \"host address-space size\" set outside IA-32e mode",
            s.entry.bits()
        );
    }
    if host64 {
        fail_if!(
            s.host_cr4 & CR4_PAE == 0,
            S_HOST_ADDR,
            "host CR4.PAE clear with a 64-bit host",
            s.host_cr4
        );
        fail_if!(
            !is_canonical(s.host_rip),
            S_HOST_ADDR,
            "host RIP not canonical",
            s.host_rip
        );
    } else {
        fail_if!(
            s.host_cr4 & CR4_PCIDE != 0,
            S_HOST_ADDR,
            "host CR4.PCIDE set with a 32-bit host",
            s.host_cr4
        );
        fail_if!(
            s.host_rip >> 32 != 0,
            S_HOST_ADDR,
            "host RIP bits 63:32 not 0 with a 32-bit host",
            s.host_rip
        );
    }
    Ok(())
}
