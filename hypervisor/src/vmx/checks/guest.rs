//! SDM 27.3.1: checks on the guest-state area.

use super::*;

/// SDM 27.3.1.1: guest control registers, debug registers and MSRs.
pub(super) fn check_guest_regs(s: &VmcsState, caps: &VmxCaps) -> Result<(), EntryCheckFailure> {
    let guest64 = s.entry.contains(EntryControls::IA32E_MODE_GUEST);
    // Keel never sets "unrestricted guest", so PE and PG are not exempt.
    fail_if!(
        s.guest_cr0 & caps.cr0_fixed0 != caps.cr0_fixed0,
        S_GUEST_CR,
        "guest CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear",
        s.guest_cr0
    );
    fail_if!(
        s.guest_cr0 & !caps.cr0_fixed1 != 0,
        S_GUEST_CR,
        "guest CR0: a bit forbidden by IA32_VMX_CR0_FIXED1 is set",
        s.guest_cr0
    );
    fail_if!(
        s.guest_cr0 & CR0_PG != 0 && s.guest_cr0 & CR0_PE == 0,
        S_GUEST_CR,
        "guest CR0: PG set but PE clear",
        s.guest_cr0
    );
    fail_if!(
        !caps.cr4_ok(s.guest_cr4),
        S_GUEST_CR,
        "guest CR4: violates IA32_VMX_CR4_FIXED0/FIXED1",
        s.guest_cr4
    );
    if s.entry.contains(EntryControls::LOAD_DEBUG_CONTROLS) {
        fail_if!(
            s.guest_debugctl & !DEBUGCTL_DEFINED != 0,
            S_GUEST_CR,
            "guest IA32_DEBUGCTL: reserved bits set",
            s.guest_debugctl
        );
    }
    if guest64 {
        fail_if!(
            s.guest_cr0 & CR0_PG == 0,
            S_GUEST_CR,
            "\"IA-32e mode guest\" set but guest CR0.PG clear",
            s.guest_cr0
        );
        fail_if!(
            s.guest_cr4 & CR4_PAE == 0,
            S_GUEST_CR,
            "\"IA-32e mode guest\" set but guest CR4.PAE clear",
            s.guest_cr4
        );
    } else {
        fail_if!(
            s.guest_cr4 & CR4_PCIDE != 0,
            S_GUEST_CR,
            "guest CR4.PCIDE set without \"IA-32e mode guest\"",
            s.guest_cr4
        );
    }
    fail_if!(
        !fits_phys(s.guest_cr3, s.maxphyaddr),
        S_GUEST_CR,
        "guest CR3: bits beyond the physical-address width are set",
        s.guest_cr3
    );
    if s.entry.contains(EntryControls::LOAD_DEBUG_CONTROLS) {
        fail_if!(
            s.guest_dr7 >> 32 != 0,
            S_GUEST_CR,
            "guest DR7: bits 63:32 not 0",
            s.guest_dr7
        );
    }
    check_shared_msrs!(
        "guest",
        "entry",
        S_GUEST_CR,
        s.entry,
        EntryControls,
        sysenter: (s.guest_sysenter_esp, s.guest_sysenter_eip),
        pat: s.guest_pat,
        efer: s.guest_efer
    );
    if s.entry.contains(EntryControls::LOAD_EFER) {
        fail_if!(
            (s.guest_efer & EFER_LMA != 0) != guest64,
            S_GUEST_CR,
            "guest IA32_EFER.LMA differs from \"IA-32e mode guest\"",
            s.guest_efer
        );
        fail_if!(
            s.guest_cr0 & CR0_PG != 0
                && (s.guest_efer & EFER_LMA != 0) != (s.guest_efer & EFER_LME != 0),
            S_GUEST_CR,
            "guest IA32_EFER: LMA differs from LME while CR0.PG is set",
            s.guest_efer
        );
    }
    Ok(())
}

/// SDM 27.3.1.2: guest segment registers (Keel's guests are never in virtual-8086
/// mode: RFLAGS.VM is checked to be 0 in 27.3.1.4, so the v8086 rules do not apply).
pub(super) fn check_guest_segments(s: &VmcsState) -> Result<(), EntryCheckFailure> {
    let guest64 = s.entry.contains(EntryControls::IA32E_MODE_GUEST);
    let (cs, ss, tr, ldtr) = (&s.guest_cs, &s.guest_ss, &s.guest_tr, &s.guest_ldtr);

    // Selectors.
    fail_if!(
        tr.selector & 4 != 0,
        S_GUEST_SEG,
        "guest TR selector: TI flag set",
        tr.selector
    );
    fail_if!(
        ldtr.usable() && ldtr.selector & 4 != 0,
        S_GUEST_SEG,
        "guest LDTR selector: TI flag set",
        ldtr.selector
    );
    fail_if!(
        ss.selector & 3 != cs.selector & 3,
        S_GUEST_SEG,
        "guest SS selector RPL differs from CS selector RPL",
        ss.selector
    );

    // Bases.
    fail_if!(
        !is_canonical(tr.base),
        S_GUEST_SEG,
        "guest TR base not canonical",
        tr.base
    );
    fail_if!(
        !is_canonical(s.guest_fs.base),
        S_GUEST_SEG,
        "guest FS base not canonical",
        s.guest_fs.base
    );
    fail_if!(
        !is_canonical(s.guest_gs.base),
        S_GUEST_SEG,
        "guest GS base not canonical",
        s.guest_gs.base
    );
    fail_if!(
        ldtr.usable() && !is_canonical(ldtr.base),
        S_GUEST_SEG,
        "guest LDTR base not canonical",
        ldtr.base
    );
    fail_if!(
        cs.base >> 32 != 0,
        S_GUEST_SEG,
        "guest CS base bits 63:32 not 0",
        cs.base
    );
    for (seg, what) in [
        (ss, "guest SS base bits 63:32 not 0"),
        (&s.guest_ds, "guest DS base bits 63:32 not 0"),
        (&s.guest_es, "guest ES base bits 63:32 not 0"),
    ] {
        fail_if!(
            seg.usable() && seg.base >> 32 != 0,
            S_GUEST_SEG,
            what,
            seg.base
        );
    }

    // Access rights: CS.
    let cs_ty = ar::ty(cs.access);
    fail_if!(
        !matches!(cs_ty, 9 | 11 | 13 | 15),
        S_GUEST_SEG,
        "guest CS access rights: type is not an accessed code segment (9, 11, 13, 15)",
        cs.access
    );
    fail_if!(
        cs.access & ar::S == 0,
        S_GUEST_SEG,
        "guest CS access rights: S (descriptor type) clear",
        cs.access
    );
    if matches!(cs_ty, 9 | 11) {
        fail_if!(
            ar::dpl(cs.access) != ar::dpl(ss.access),
            S_GUEST_SEG,
            "guest CS access rights: non-conforming code DPL differs from SS DPL",
            cs.access
        );
    } else {
        fail_if!(
            ar::dpl(cs.access) > ar::dpl(ss.access),
            S_GUEST_SEG,
            "guest CS access rights: conforming code DPL above SS DPL",
            cs.access
        );
    }
    fail_if!(
        cs.access & ar::P == 0,
        S_GUEST_SEG,
        "guest CS access rights: P (present) clear",
        cs.access
    );
    fail_if!(
        cs.access & ar::RESERVED != 0,
        S_GUEST_SEG,
        "guest CS access rights: reserved bits set",
        cs.access
    );
    fail_if!(
        guest64 && cs.access & ar::L != 0 && cs.access & ar::DB != 0,
        S_GUEST_SEG,
        "guest CS access rights: both L and D/B set in IA-32e mode",
        cs.access
    );
    fail_if!(
        !granularity_ok(cs),
        S_GUEST_SEG,
        "guest CS: limit and G (granularity) inconsistent",
        cs.access
    );
    fail_if!(
        cs.access & ar::UNUSABLE != 0,
        S_GUEST_SEG,
        "guest CS is marked unusable",
        cs.access
    );

    // SS.
    if ss.usable() {
        fail_if!(
            !matches!(ar::ty(ss.access), 3 | 7),
            S_GUEST_SEG,
            "guest SS access rights: type is not a read/write accessed data segment (3, 7)",
            ss.access
        );
        fail_if!(
            ss.access & ar::S == 0,
            S_GUEST_SEG,
            "guest SS access rights: S (descriptor type) clear",
            ss.access
        );
        fail_if!(
            ss.access & ar::P == 0,
            S_GUEST_SEG,
            "guest SS access rights: P (present) clear",
            ss.access
        );
        fail_if!(
            ss.access & ar::RESERVED != 0,
            S_GUEST_SEG,
            "guest SS access rights: reserved bits set",
            ss.access
        );
        fail_if!(
            !granularity_ok(ss),
            S_GUEST_SEG,
            "guest SS: limit and G (granularity) inconsistent",
            ss.access
        );
    }
    fail_if!(
        ar::dpl(ss.access) != u32::from(ss.selector & 3),
        S_GUEST_SEG,
        "guest SS access rights: DPL differs from the SS selector's RPL",
        ss.access
    );

    // DS, ES, FS, GS.
    for (seg, name) in [
        (&s.guest_ds, 0),
        (&s.guest_es, 1),
        (&s.guest_fs, 2),
        (&s.guest_gs, 3),
    ] {
        if !seg.usable() {
            continue;
        }
        const ACC: [&str; 4] = [
            "guest DS access rights: not accessed, or an unreadable code segment",
            "guest ES access rights: not accessed, or an unreadable code segment",
            "guest FS access rights: not accessed, or an unreadable code segment",
            "guest GS access rights: not accessed, or an unreadable code segment",
        ];
        const SBIT: [&str; 4] = [
            "guest DS access rights: S (descriptor type) clear",
            "guest ES access rights: S (descriptor type) clear",
            "guest FS access rights: S (descriptor type) clear",
            "guest GS access rights: S (descriptor type) clear",
        ];
        const DPL: [&str; 4] = [
            "guest DS access rights: DPL below the selector's RPL",
            "guest ES access rights: DPL below the selector's RPL",
            "guest FS access rights: DPL below the selector's RPL",
            "guest GS access rights: DPL below the selector's RPL",
        ];
        const PRES: [&str; 4] = [
            "guest DS access rights: P (present) clear",
            "guest ES access rights: P (present) clear",
            "guest FS access rights: P (present) clear",
            "guest GS access rights: P (present) clear",
        ];
        const RES: [&str; 4] = [
            "guest DS access rights: reserved bits set",
            "guest ES access rights: reserved bits set",
            "guest FS access rights: reserved bits set",
            "guest GS access rights: reserved bits set",
        ];
        const GRAN: [&str; 4] = [
            "guest DS: limit and G (granularity) inconsistent",
            "guest ES: limit and G (granularity) inconsistent",
            "guest FS: limit and G (granularity) inconsistent",
            "guest GS: limit and G (granularity) inconsistent",
        ];
        let ty = ar::ty(seg.access);
        fail_if!(
            ty & 1 == 0 || (ty & 8 != 0 && ty & 2 == 0),
            S_GUEST_SEG,
            ACC[name],
            seg.access
        );
        fail_if!(seg.access & ar::S == 0, S_GUEST_SEG, SBIT[name], seg.access);
        // Data and non-conforming code (types 0-11): DPL >= RPL.
        fail_if!(
            ty <= 11 && ar::dpl(seg.access) < u32::from(seg.selector & 3),
            S_GUEST_SEG,
            DPL[name],
            seg.access
        );
        fail_if!(seg.access & ar::P == 0, S_GUEST_SEG, PRES[name], seg.access);
        fail_if!(
            seg.access & ar::RESERVED != 0,
            S_GUEST_SEG,
            RES[name],
            seg.access
        );
        fail_if!(!granularity_ok(seg), S_GUEST_SEG, GRAN[name], seg.access);
    }

    // TR.
    let tr_ty = ar::ty(tr.access);
    if guest64 {
        fail_if!(
            tr_ty != 11,
            S_GUEST_SEG,
            "guest TR access rights: type is not a busy 64-bit TSS (11) in IA-32e mode",
            tr.access
        );
    } else {
        fail_if!(
            !matches!(tr_ty, 3 | 11),
            S_GUEST_SEG,
            "guest TR access rights: type is not a busy TSS (3, 11)",
            tr.access
        );
    }
    fail_if!(
        tr.access & ar::S != 0,
        S_GUEST_SEG,
        "guest TR access rights: S (descriptor type) set",
        tr.access
    );
    fail_if!(
        tr.access & ar::P == 0,
        S_GUEST_SEG,
        "guest TR access rights: P (present) clear",
        tr.access
    );
    fail_if!(
        tr.access & ar::RESERVED != 0,
        S_GUEST_SEG,
        "guest TR access rights: reserved bits set",
        tr.access
    );
    fail_if!(
        !granularity_ok(tr),
        S_GUEST_SEG,
        "guest TR: limit and G (granularity) inconsistent",
        tr.access
    );
    fail_if!(
        tr.access & ar::UNUSABLE != 0,
        S_GUEST_SEG,
        "guest TR is marked unusable",
        tr.access
    );

    // LDTR.
    if ldtr.usable() {
        fail_if!(
            ar::ty(ldtr.access) != 2,
            S_GUEST_SEG,
            "guest LDTR access rights: type is not LDT (2)",
            ldtr.access
        );
        fail_if!(
            ldtr.access & ar::S != 0,
            S_GUEST_SEG,
            "guest LDTR access rights: S (descriptor type) set",
            ldtr.access
        );
        fail_if!(
            ldtr.access & ar::P == 0,
            S_GUEST_SEG,
            "guest LDTR access rights: P (present) clear",
            ldtr.access
        );
        fail_if!(
            ldtr.access & ar::RESERVED != 0,
            S_GUEST_SEG,
            "guest LDTR access rights: reserved bits set",
            ldtr.access
        );
        fail_if!(
            !granularity_ok(ldtr),
            S_GUEST_SEG,
            "guest LDTR: limit and G (granularity) inconsistent",
            ldtr.access
        );
    }
    Ok(())
}

/// SDM 27.3.1.3 and 27.3.1.4: descriptor-table registers, RIP and RFLAGS.
pub(super) fn check_guest_dt_rip_rflags(s: &VmcsState) -> Result<(), EntryCheckFailure> {
    fail_if!(
        !is_canonical(s.guest_gdtr_base),
        S_GUEST_DT,
        "guest GDTR base not canonical",
        s.guest_gdtr_base
    );
    fail_if!(
        !is_canonical(s.guest_idtr_base),
        S_GUEST_DT,
        "guest IDTR base not canonical",
        s.guest_idtr_base
    );
    fail_if!(
        s.guest_gdtr_limit >> 16 != 0,
        S_GUEST_DT,
        "guest GDTR limit bits 31:16 not 0",
        s.guest_gdtr_limit
    );
    fail_if!(
        s.guest_idtr_limit >> 16 != 0,
        S_GUEST_DT,
        "guest IDTR limit bits 31:16 not 0",
        s.guest_idtr_limit
    );

    let guest64 = s.entry.contains(EntryControls::IA32E_MODE_GUEST);
    if guest64 && s.guest_cs.access & ar::L != 0 {
        fail_if!(
            !is_canonical(s.guest_rip),
            S_GUEST_RIP,
            "guest RIP not canonical (64-bit code)",
            s.guest_rip
        );
    } else {
        fail_if!(
            s.guest_rip >> 32 != 0,
            S_GUEST_RIP,
            "guest RIP bits 63:32 not 0 outside 64-bit code",
            s.guest_rip
        );
    }
    fail_if!(
        s.guest_rflags & RFLAGS_RESERVED_ZERO != 0,
        S_GUEST_RIP,
        "guest RFLAGS: reserved bits (63:22, 15, 5, 3) set",
        s.guest_rflags
    );
    fail_if!(
        s.guest_rflags & 2 == 0,
        S_GUEST_RIP,
        "guest RFLAGS: reserved bit 1 clear",
        s.guest_rflags
    );
    fail_if!(
        (guest64 || s.guest_cr0 & CR0_PE == 0) && s.guest_rflags & RFLAGS_VM != 0,
        S_GUEST_RIP,
        "guest RFLAGS.VM set in IA-32e mode or with CR0.PE clear",
        s.guest_rflags
    );
    let info = s.entry_intr_info;
    fail_if!(
        info & (1 << 31) != 0
            && (info >> 8) & 7 == intr_type::EXTERNAL
            && s.guest_rflags & RFLAGS_IF == 0,
        S_GUEST_RIP,
        "guest RFLAGS.IF clear while injecting an external interrupt",
        s.guest_rflags
    );
    Ok(())
}

/// Guest activity states (SDM 25.4.2).
pub mod activity {
    /// Active.
    pub const ACTIVE: u32 = 0;
    /// HLT.
    pub const HLT: u32 = 1;
    /// Shutdown.
    pub const SHUTDOWN: u32 = 2;
    /// Wait-for-SIPI.
    pub const WAIT_FOR_SIPI: u32 = 3;
}

/// SDM 27.3.1.5: checks on guest non-register state.
pub(super) fn check_guest_nonreg(s: &VmcsState, caps: &VmxCaps) -> Result<(), EntryCheckFailure> {
    let act = s.activity_state;
    let supported = match act {
        activity::ACTIVE => true,
        activity::HLT => caps.misc.activity_hlt(),
        activity::SHUTDOWN => caps.misc.activity_shutdown(),
        activity::WAIT_FOR_SIPI => caps.misc.activity_wait_for_sipi(),
        _ => false,
    };
    fail_if!(
        !supported,
        S_GUEST_NONREG,
        "guest activity state not supported (IA32_VMX_MISC[8:6])",
        act
    );
    fail_if!(
        act == activity::HLT && ar::dpl(s.guest_ss.access) != 0,
        S_GUEST_NONREG,
        "guest activity state HLT with SS.DPL not 0",
        s.guest_ss.access
    );
    let intr = s.interruptibility;
    let sti = intr & 1 != 0;
    let movss = intr & 2 != 0;
    fail_if!(
        (sti || movss) && act != activity::ACTIVE,
        S_GUEST_NONREG,
        "guest activity state not active while blocking by STI or MOV SS",
        act
    );
    // Bit 4 ("enclave interruption") is defined only with SGX, which Keel does not expose.
    fail_if!(
        intr & !0xf != 0,
        S_GUEST_NONREG,
        "guest interruptibility state: reserved bits (31:4) set",
        intr
    );
    fail_if!(
        sti && movss,
        S_GUEST_NONREG,
        "guest interruptibility state: blocking by STI and by MOV SS both set",
        intr
    );
    fail_if!(
        sti && s.guest_rflags & RFLAGS_IF == 0,
        S_GUEST_NONREG,
        "guest interruptibility state: blocking by STI with RFLAGS.IF clear",
        intr
    );
    let info = s.entry_intr_info;
    let injecting = info & (1 << 31) != 0;
    let ty = (info >> 8) & 7;
    fail_if!(
        injecting && ty == intr_type::EXTERNAL && (sti || movss),
        S_GUEST_NONREG,
        "guest interruptibility state: STI/MOV SS blocking while injecting an external interrupt",
        intr
    );
    fail_if!(
        injecting && ty == intr_type::NMI && movss,
        S_GUEST_NONREG,
        "guest interruptibility state: MOV SS blocking while injecting an NMI",
        intr
    );
    fail_if!(
        intr & 4 != 0,
        S_GUEST_NONREG,
        "guest interruptibility state: blocking by SMI set outside SMM",
        intr
    );
    fail_if!(
        injecting
            && ty == intr_type::NMI
            && s.pin.contains(PinbasedControls::VIRTUAL_NMIS)
            && intr & 8 != 0,
        S_GUEST_NONREG,
        "guest interruptibility state: NMI blocking while injecting a virtual NMI",
        intr
    );

    // Pending debug exceptions: bits 11:4, 13, 15 and 63:17 are reserved.
    let pd = s.pending_dbg;
    fail_if!(
        pd & !(0xf | (1 << 12) | (1 << 14) | (1 << 16)) != 0,
        S_GUEST_NONREG,
        "guest pending debug exceptions: reserved bits set",
        pd
    );
    if sti || movss || act == activity::HLT {
        let tf = s.guest_rflags & RFLAGS_TF != 0;
        let btf = s.guest_debugctl & 2 != 0;
        let bs = pd & (1 << 14) != 0;
        fail_if!(
            tf && !btf && !bs,
            S_GUEST_NONREG,
            "guest pending debug exceptions: BS clear with RFLAGS.TF set and DEBUGCTL.BTF clear while blocked/halted",
            pd
        );
        fail_if!(
            (!tf || btf) && bs,
            S_GUEST_NONREG,
            "guest pending debug exceptions: BS set with RFLAGS.TF clear or DEBUGCTL.BTF set while blocked/halted",
            pd
        );
    }

    // VMCS link pointer: Keel uses no shadow VMCS, so it must be all ones; any other
    // value would make the CPU check (and, with shadowing, use) the referenced VMCS.
    fail_if!(
        s.link_pointer != u64::MAX,
        S_GUEST_NONREG,
        "VMCS link pointer is not FFFFFFFF_FFFFFFFFH and Keel provides no linked VMCS",
        s.link_pointer
    );
    // 27.3.1.6 (PDPTEs) applies only to PAE paging outside IA-32e mode, which a
    // Keel guest never uses; require IA-32e mode so that stays true.
    fail_if!(
        !s.entry.contains(EntryControls::IA32E_MODE_GUEST),
        "27.3.1.6",
        "\"IA-32e mode guest\" clear: Keel provides no PAE PDPTEs",
        s.entry.bits()
    );
    Ok(())
}
