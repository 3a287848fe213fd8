//! The VM-entry checks against every CPU model's state and its mutations.

use super::super::caps::fixtures::{model, MODELS};
use super::super::controls::derive;
use super::*;
use proptest::prelude::*;

/// The state Keel sets up, for a given model.
fn good(caps: &VmxCaps) -> VmcsState {
    let c = derive(caps).unwrap();
    VmcsState {
        maxphyaddr: 40,
        pin: c.pin,
        proc: c.proc,
        proc2: c.proc2,
        exit: c.exit,
        entry: c.entry,
        msr_bitmap: 0x1234_5000,
        io_bitmap_a: 0x1234_6000,
        io_bitmap_b: 0x1234_7000,
        vpid: if c.vpid { 1 } else { 0 },
        host_cr0: 0x8000_0033,
        host_cr3: 0x10_0000,
        host_cr4: 0x2020,
        host_cs: 0x08,
        host_ss: 0x10,
        host_ds: 0x10,
        host_es: 0x10,
        host_tr: 0x18,
        host_tr_base: 0x20_0000,
        host_gdtr_base: 0x20_1000,
        host_idtr_base: 0x20_2000,
        host_pat: 0x0007_0406_0007_0406,
        host_efer: 0xd01,
        host_rip: 0xffff_ffff_8010_0000,
        // Exactly what `vmx::hw` writes: the contract's values through the CR policy.
        guest_cr0: super::super::cr::CrPolicy::new(caps)
            .real_cr0(super::super::cr::GUEST_CR0_INITIAL)
            .unwrap(),
        guest_cr3: 0x40_0000,
        guest_cr4: super::super::cr::CrPolicy::new(caps)
            .real_cr4(super::super::cr::GUEST_CR4_INITIAL)
            .unwrap(),
        guest_dr7: 0x400,
        guest_pat: 0x0007_0406_0007_0406,
        guest_efer: 0xd01,
        guest_cs: guest_layout::CS,
        guest_ss: guest_layout::DATA,
        guest_ds: guest_layout::DATA,
        guest_es: guest_layout::DATA,
        guest_fs: guest_layout::DATA,
        guest_gs: guest_layout::DATA,
        guest_ldtr: guest_layout::LDTR,
        guest_tr: guest_layout::TR,
        guest_rip: 0x40_1000,
        guest_rflags: 2,
        link_pointer: u64::MAX,
        ..Default::default()
    }
}

#[test]
fn known_good_state_passes_on_every_model() {
    for m in MODELS {
        let caps = m.caps();
        assert_eq!(check_vm_entry(&good(&caps), &caps), Ok(()), "{}", m.name);
    }
}

/// Each mutation must break exactly the named check (the first failure reported
/// is the one the mutation targets).
#[test]
fn each_mutation_names_its_check() {
    type M = fn(&mut VmcsState);
    let cases: &[(M, &str, &str)] = &[
        // 27.2.1.1
        (|s| s.pin.remove(PinbasedControls::from_bits_retain(1 << 1)), "pin-based VM-execution controls: a bit violates IA32_VMX_(TRUE_)PINBASED_CTLS", "27.2.1.1"),
        (|s| s.pin.insert(PinbasedControls::from_bits_retain(1 << 20)), "pin-based VM-execution controls: a bit violates IA32_VMX_(TRUE_)PINBASED_CTLS", "27.2.1.1"),
        (|s| s.proc.remove(PrimaryControls::from_bits_retain(1 << 1)), "primary processor-based VM-execution controls: a bit violates IA32_VMX_(TRUE_)PROCBASED_CTLS", "27.2.1.1"),
        (|s| s.proc2.insert(SecondaryControls::from_bits_retain(1 << 30)), "secondary processor-based VM-execution controls: a bit violates IA32_VMX_PROCBASED_CTLS2", "27.2.1.1"),
        (|s| s.cr3_target_count = 5, "CR3-target count exceeds IA32_VMX_MISC[24:16]", "27.2.1.1"),
        (|s| s.msr_bitmap |= 8, "MSR-bitmap address not 4-KiB aligned or beyond the physical-address width", "27.2.1.1"),
        (|s| s.msr_bitmap = 1 << 45, "MSR-bitmap address not 4-KiB aligned or beyond the physical-address width", "27.2.1.1"),
        (|s| { s.proc |= PrimaryControls::USE_IO_BITMAPS; s.io_bitmap_a |= 1 }, "I/O bitmap A address not 4-KiB aligned or beyond the physical-address width", "27.2.1.1"),
        (|s| { s.proc |= PrimaryControls::USE_IO_BITMAPS; s.io_bitmap_b = 1 << 50 }, "I/O bitmap B address not 4-KiB aligned or beyond the physical-address width", "27.2.1.1"),
        (|s| s.vpid = 0, "\"enable VPID\" set but the VPID is 0", "27.2.1.1"),
        (|s| { s.pin &= !PinbasedControls::NMI_EXITING; s.pin |= PinbasedControls::VIRTUAL_NMIS }, "\"virtual NMIs\" set without \"NMI exiting\"", "27.2.1.1"),
        (|s| s.proc |= PrimaryControls::NMI_WINDOW_EXITING, "\"NMI-window exiting\" set without \"virtual NMIs\"", "27.2.1.1"),
        (|s| s.proc2 |= SecondaryControls::ENABLE_EPT, "an EPT-dependent or VMCS-shadowing control is set (Keel uses direct paging: no EPT pointer, no shadow VMCS)", "27.2.1.1"),
        (|s| s.proc2 |= SecondaryControls::VIRTUAL_INTERRUPT_DELIVERY, "x2APIC/APIC-register virtualization or virtual-interrupt delivery without \"use TPR shadow\"", "27.2.1.1"),
        (|s| { s.proc |= PrimaryControls::USE_TPR_SHADOW; s.proc &= !(PrimaryControls::CR8_LOAD_EXITING | PrimaryControls::CR8_STORE_EXITING); s.virtual_apic = 0x1001 }, "virtual-APIC address not 4-KiB aligned or beyond the physical-address width", "27.2.1.1"),
        // 27.2.1.2
        (|s| s.exit.remove(ExitControls::from_bits_retain(1)), "VM-exit controls: a bit violates IA32_VMX_(TRUE_)EXIT_CTLS", "27.2.1.2"),
        (|s| s.exit |= ExitControls::SAVE_PREEMPTION_TIMER, "\"save VMX-preemption timer value\" set without \"activate VMX-preemption timer\"", "27.2.1.2"),
        (|s| { s.exit_msr_store_count = 1; s.exit_msr_store_addr = 0x1008 }, "VM-exit MSR-store address not 16-byte aligned", "27.2.1.2"),
        (|s| { s.exit_msr_load_count = 2; s.exit_msr_load_addr = (1 << 40) - 16 }, "VM-exit MSR-load area extends beyond the physical-address width", "27.2.1.2"),
        // 27.2.1.3
        (|s| s.entry.insert(EntryControls::from_bits_retain(1 << 31)), "VM-entry controls: a bit violates IA32_VMX_(TRUE_)ENTRY_CTLS", "27.2.1.3"),
        (|s| s.entry_intr_info = (1 << 31) | (1 << 8) | 13, "VM-entry interruption information: reserved interruption type 1", "27.2.1.3"),
        (|s| s.entry_intr_info = (1 << 31) | (2 << 8) | 3, "VM-entry interruption information: NMI with a vector other than 2", "27.2.1.3"),
        (|s| s.entry_intr_info = (1 << 31) | (3 << 8) | 32, "VM-entry interruption information: hardware exception with a vector above 31", "27.2.1.3"),
        (|s| s.entry_intr_info = (1 << 31) | (3 << 8) | 13, "VM-entry interruption information: deliver-error-code clear for an exception that has an error code", "27.2.1.3"),
        (|s| s.entry_intr_info = (1 << 31) | (1 << 11) | (3 << 8) | 6, "VM-entry interruption information: deliver-error-code set for an event without an error code", "27.2.1.3"),
        (|s| { s.entry_intr_info = (1 << 31) | (1 << 11) | (3 << 8) | 13; s.entry_exception_error_code = 1 << 16 }, "VM-entry exception error code: bits 31:16 not 0", "27.2.1.3"),
        (|s| s.entry_intr_info = (1 << 31) | (1 << 12) | (3 << 8) | 6, "VM-entry interruption information: reserved bits 30:12 not 0", "27.2.1.3"),
        (|s| { s.entry_intr_info = (1 << 31) | (4 << 8) | 0x80; s.entry_instruction_len = 16 }, "VM-entry instruction length out of range for a software event", "27.2.1.3"),
        (|s| { s.entry_msr_load_count = 1; s.entry_msr_load_addr = 4 }, "VM-entry MSR-load address not 16-byte aligned", "27.2.1.3"),
        // 27.2.2
        (|s| s.host_cr0 &= !(1 << 5), "host CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear", "27.2.2"),
        (|s| s.host_cr4 &= !(1 << 13), "host CR4: violates IA32_VMX_CR4_FIXED0/FIXED1", "27.2.2"),
        (|s| s.host_cr3 = 1 << 41, "host CR3: bits beyond the physical-address width are set", "27.2.2"),
        (|s| s.host_sysenter_esp = 1 << 47, "host IA32_SYSENTER_ESP not canonical", "27.2.2"),
        (|s| s.host_sysenter_eip = 1 << 50, "host IA32_SYSENTER_EIP not canonical", "27.2.2"),
        (|s| s.host_efer &= !(1 << 10), "host IA32_EFER: LMA/LME differ from \"host address-space size\"", "27.2.2"),
        (|s| s.host_efer |= 1 << 2, "host IA32_EFER: reserved bits set", "27.2.2"),
        (|s| s.host_pat = 2, "host IA32_PAT: an entry is not a valid memory type", "27.2.2"),
        // 27.2.3
        (|s| s.host_cs |= 3, "host CS selector: RPL or TI not 0", "27.2.3"),
        (|s| s.host_ds |= 4, "host DS selector: RPL or TI not 0", "27.2.3"),
        (|s| s.host_tr |= 1, "host TR selector: RPL or TI not 0", "27.2.3"),
        (|s| s.host_cs = 0, "host CS selector is 0", "27.2.3"),
        (|s| s.host_tr = 0, "host TR selector is 0", "27.2.3"),
        (|s| s.host_gs_base = 1 << 48, "host GS base not canonical", "27.2.3"),
        (|s| s.host_idtr_base = 0x8000_0000_0000_0000, "host IDTR base not canonical", "27.2.3"),
        // 27.2.4
        (|s| s.host_cr4 &= !CR4_PAE, "host CR4.PAE clear with a 64-bit host", "27.2.4"),
        (|s| s.host_rip = 0x0000_8000_0000_0000, "host RIP not canonical", "27.2.4"),
        // 27.3.1.1
        (|s| s.guest_cr0 &= !(1 << 5), "guest CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear", "27.3.1.1"),
        (|s| s.guest_cr0 &= !CR0_PE, "guest CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear", "27.3.1.1"),
        (|s| s.guest_cr4 &= !(1 << 13), "guest CR4: violates IA32_VMX_CR4_FIXED0/FIXED1", "27.3.1.1"),
        (|s| s.guest_cr4 &= !CR4_PAE, "\"IA-32e mode guest\" set but guest CR4.PAE clear", "27.3.1.1"),
        (|s| s.guest_cr3 = 1 << 45, "guest CR3: bits beyond the physical-address width are set", "27.3.1.1"),
        (|s| s.guest_dr7 = 1 << 32, "guest DR7: bits 63:32 not 0", "27.3.1.1"),
        (|s| s.guest_debugctl = 1 << 2, "guest IA32_DEBUGCTL: reserved bits set", "27.3.1.1"),
        (|s| s.guest_sysenter_esp = 1 << 63, "guest IA32_SYSENTER_ESP not canonical", "27.3.1.1"),
        (|s| s.guest_pat = 0x08, "guest IA32_PAT: an entry is not a valid memory type", "27.3.1.1"),
        (|s| s.guest_efer &= !(1 << 10), "guest IA32_EFER.LMA differs from \"IA-32e mode guest\"", "27.3.1.1"),
        (|s| s.guest_efer &= !(1 << 8), "guest IA32_EFER: LMA differs from LME while CR0.PG is set", "27.3.1.1"),
        (|s| s.guest_efer |= 1 << 9, "guest IA32_EFER: reserved bits set", "27.3.1.1"),
        // 27.3.1.2
        (|s| s.guest_tr.selector |= 4, "guest TR selector: TI flag set", "27.3.1.2"),
        (|s| { s.guest_ldtr.access = 0x82; s.guest_ldtr.selector = 0x24 }, "guest LDTR selector: TI flag set", "27.3.1.2"),
        (|s| s.guest_ss.selector |= 3, "guest SS selector RPL differs from CS selector RPL", "27.3.1.2"),
        (|s| s.guest_tr.base = 1 << 47, "guest TR base not canonical", "27.3.1.2"),
        (|s| s.guest_fs.base = 1 << 47, "guest FS base not canonical", "27.3.1.2"),
        (|s| s.guest_gs.base = 1 << 47, "guest GS base not canonical", "27.3.1.2"),
        (|s| s.guest_cs.base = 1 << 32, "guest CS base bits 63:32 not 0", "27.3.1.2"),
        (|s| s.guest_ds.base = 1 << 32, "guest DS base bits 63:32 not 0", "27.3.1.2"),
        (|s| s.guest_cs.access &= !1, "guest CS access rights: type is not an accessed code segment (9, 11, 13, 15)", "27.3.1.2"),
        (|s| s.guest_cs.access &= !ar::S, "guest CS access rights: S (descriptor type) clear", "27.3.1.2"),
        (|s| s.guest_cs.access |= 3 << 5, "guest CS access rights: non-conforming code DPL differs from SS DPL", "27.3.1.2"),
        (|s| s.guest_cs.access &= !ar::P, "guest CS access rights: P (present) clear", "27.3.1.2"),
        (|s| s.guest_cs.access |= 1 << 8, "guest CS access rights: reserved bits set", "27.3.1.2"),
        (|s| s.guest_cs.access |= ar::DB, "guest CS access rights: both L and D/B set in IA-32e mode", "27.3.1.2"),
        (|s| s.guest_cs.limit = 0xfff0_0000, "guest CS: limit and G (granularity) inconsistent", "27.3.1.2"),
        (|s| s.guest_ss.access = (s.guest_ss.access & !0xf) | 1, "guest SS access rights: type is not a read/write accessed data segment (3, 7)", "27.3.1.2"),
        (|s| s.guest_ss.access &= !ar::P, "guest SS access rights: P (present) clear", "27.3.1.2"),
        (|s| { s.guest_ss.access |= 3 << 5; s.guest_cs.access = (s.guest_cs.access & !0xf) | 15 }, "guest SS access rights: DPL differs from the SS selector's RPL", "27.3.1.2"),
        (|s| s.guest_ds.access &= !1, "guest DS access rights: not accessed, or an unreadable code segment", "27.3.1.2"),
        (|s| s.guest_es.access = (s.guest_es.access & !0xf) | 9, "guest ES access rights: not accessed, or an unreadable code segment", "27.3.1.2"),
        (|s| s.guest_fs.access &= !ar::S, "guest FS access rights: S (descriptor type) clear", "27.3.1.2"),
        (|s| s.guest_gs.selector |= 3, "guest GS access rights: DPL below the selector's RPL", "27.3.1.2"),
        (|s| s.guest_gs.access &= !ar::P, "guest GS access rights: P (present) clear", "27.3.1.2"),
        (|s| s.guest_ds.access |= 1 << 20, "guest DS access rights: reserved bits set", "27.3.1.2"),
        (|s| s.guest_es.limit = 0xffff_f000, "guest ES: limit and G (granularity) inconsistent", "27.3.1.2"),
        (|s| s.guest_tr.access = (s.guest_tr.access & !0xf) | 9, "guest TR access rights: type is not a busy 64-bit TSS (11) in IA-32e mode", "27.3.1.2"),
        (|s| s.guest_tr.access |= ar::S, "guest TR access rights: S (descriptor type) set", "27.3.1.2"),
        (|s| s.guest_tr.access &= !ar::P, "guest TR access rights: P (present) clear", "27.3.1.2"),
        (|s| s.guest_tr.limit = 0x10_0000, "guest TR: limit and G (granularity) inconsistent", "27.3.1.2"),
        (|s| s.guest_tr.access |= ar::UNUSABLE, "guest TR is marked unusable", "27.3.1.2"),
        (|s| s.guest_ldtr.access = 0x83, "guest LDTR access rights: type is not LDT (2)", "27.3.1.2"),
        (|s| s.guest_ldtr.access = 0x02, "guest LDTR access rights: P (present) clear", "27.3.1.2"),
        // 27.3.1.3
        (|s| s.guest_gdtr_base = 1 << 47, "guest GDTR base not canonical", "27.3.1.3"),
        (|s| s.guest_idtr_base = 1 << 47, "guest IDTR base not canonical", "27.3.1.3"),
        (|s| s.guest_gdtr_limit = 0x10000, "guest GDTR limit bits 31:16 not 0", "27.3.1.3"),
        (|s| s.guest_idtr_limit = 0x10000, "guest IDTR limit bits 31:16 not 0", "27.3.1.3"),
        // 27.3.1.4
        (|s| s.guest_rip = 0x0000_8000_0000_0000, "guest RIP not canonical (64-bit code)", "27.3.1.4"),
        (|s| s.guest_rflags |= 1 << 3, "guest RFLAGS: reserved bits (63:22, 15, 5, 3) set", "27.3.1.4"),
        (|s| s.guest_rflags |= 1 << 22, "guest RFLAGS: reserved bits (63:22, 15, 5, 3) set", "27.3.1.4"),
        (|s| s.guest_rflags = 0, "guest RFLAGS: reserved bit 1 clear", "27.3.1.4"),
        (|s| s.guest_rflags |= RFLAGS_VM, "guest RFLAGS.VM set in IA-32e mode or with CR0.PE clear", "27.3.1.4"),
        (|s| s.entry_intr_info = (1 << 31) | 0x30, "guest RFLAGS.IF clear while injecting an external interrupt", "27.3.1.4"),
        // 27.3.1.5
        (|s| s.activity_state = 4, "guest activity state not supported (IA32_VMX_MISC[8:6])", "27.3.1.5"),
        (|s| { s.activity_state = activity::HLT; s.interruptibility = 2 }, "guest activity state not active while blocking by STI or MOV SS", "27.3.1.5"),
        (|s| s.interruptibility = 1 << 5, "guest interruptibility state: reserved bits (31:4) set", "27.3.1.5"),
        (|s| { s.interruptibility = 3; s.guest_rflags |= RFLAGS_IF }, "guest interruptibility state: blocking by STI and by MOV SS both set", "27.3.1.5"),
        (|s| s.interruptibility = 1, "guest interruptibility state: blocking by STI with RFLAGS.IF clear", "27.3.1.5"),
        (|s| { s.interruptibility = 1; s.guest_rflags |= RFLAGS_IF; s.entry_intr_info = (1 << 31) | 0x30 }, "guest interruptibility state: STI/MOV SS blocking while injecting an external interrupt", "27.3.1.5"),
        (|s| { s.interruptibility = 2; s.entry_intr_info = (1 << 31) | (2 << 8) | 2 }, "guest interruptibility state: MOV SS blocking while injecting an NMI", "27.3.1.5"),
        (|s| s.interruptibility = 4, "guest interruptibility state: blocking by SMI set outside SMM", "27.3.1.5"),
        (|s| s.pending_dbg = 1 << 4, "guest pending debug exceptions: reserved bits set", "27.3.1.5"),
        (|s| { s.interruptibility = 2; s.guest_rflags |= RFLAGS_TF }, "guest pending debug exceptions: BS clear with RFLAGS.TF set and DEBUGCTL.BTF clear while blocked/halted", "27.3.1.5"),
        (|s| { s.activity_state = activity::HLT; s.pending_dbg = 1 << 14 }, "guest pending debug exceptions: BS set with RFLAGS.TF clear or DEBUGCTL.BTF set while blocked/halted", "27.3.1.5"),
        (|s| s.link_pointer = 0x1000, "VMCS link pointer is not FFFFFFFF_FFFFFFFFH and Keel provides no linked VMCS", "27.3.1.5"),
    ];
    let caps = model("corei7_skylake_x").caps();
    for (mutate, what, section) in cases {
        let mut s = good(&caps);
        mutate(&mut s);
        let err = check_vm_entry(&s, &caps).expect_err(what);
        assert_eq!((err.what, err.section), (*what, *section));
        assert!(err.to_string().contains(&std::format!("SDM {section}")));
    }
}

#[test]
fn guest_mode_mismatches() {
    let caps = model("corei7_skylake_x").caps();
    // IA-32e guest with paging off: the fixed-0 PG bit catches it first; with a
    // hypothetical CPU that frees PG, the IA-32e rule still does.
    let mut caps_free = caps;
    caps_free.cr0_fixed0 &= !CR0_PG;
    let mut s = good(&caps);
    s.guest_cr0 &= !CR0_PG;
    assert_eq!(
        check_vm_entry(&s, &caps).unwrap_err().what,
        "guest CR0: a bit required by IA32_VMX_CR0_FIXED0 is clear"
    );
    assert_eq!(
        check_vm_entry(&s, &caps_free).unwrap_err().what,
        "\"IA-32e mode guest\" set but guest CR0.PG clear"
    );
    // PG without PE on that CPU.
    caps_free.cr0_fixed0 &= !CR0_PE;
    let mut s = good(&caps);
    s.guest_cr0 &= !CR0_PE;
    assert_eq!(
        check_vm_entry(&s, &caps_free).unwrap_err().what,
        "guest CR0: PG set but PE clear"
    );
}

#[test]
fn penryn_without_efer_loading_passes_and_skips_efer_checks() {
    let caps = model("core2_penryn_t9600").caps();
    let mut s = good(&caps);
    s.guest_efer = 0xdead; // not loaded: not checked
    s.host_efer = 0xd01; // the CPU's current EFER
    assert_eq!(check_vm_entry(&s, &caps), Ok(()));
}

proptest! {
    /// Any random guest RFLAGS passes exactly when it satisfies the three rules.
    #[test]
    fn rflags_rule(rf in any::<u64>()) {
        let caps = model("corei7_skylake_x").caps();
        let mut s = good(&caps);
        s.guest_rflags = rf;
        let ok = rf & RFLAGS_RESERVED_ZERO == 0 && rf & 2 != 0 && rf & RFLAGS_VM == 0;
        let r = check_vm_entry(&s, &caps);
        if ok {
            // TF alone is harmless with no blocking; IF alone is harmless.
            prop_assert_eq!(r, Ok(()));
        } else {
            prop_assert_eq!(r.unwrap_err().section, "27.3.1.4");
        }
    }

    /// The checks never panic, whatever the state.
    #[test]
    fn never_panics(a in any::<u64>(), b in any::<u64>(), c in any::<u32>(), d in any::<u32>(), sel in any::<u16>()) {
        let caps = model("tigerlake").caps();
        let mut s = good(&caps);
        s.guest_cr0 = a; s.guest_cr4 = b; s.guest_cs.access = c; s.guest_tr.limit = d;
        s.guest_ss.selector = sel; s.entry_intr_info = c ^ d; s.exit_msr_load_count = d;
        s.exit_msr_load_addr = a; s.maxphyaddr = (b & 0x7f) as u8;
        let _ = check_vm_entry(&s, &caps);
    }

    /// Canonical iff sign-extension of bit 47.
    #[test]
    fn canonical(a in any::<u64>()) {
        prop_assert_eq!(is_canonical(a), ((a << 16) as i64 >> 16) as u64 == a);
    }
}
