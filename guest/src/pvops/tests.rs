use super::*;
extern crate std;
use std::string::String;

#[test]
fn pv_values_parse() {
    assert_eq!(PvSet::parse("all"), Ok(PvSet::ALL));
    assert_eq!(PvSet::parse("none"), Ok(PvSet::NONE));
    let s = PvSet::parse("mmu,time").unwrap();
    assert!(s.has(Group::Mmu) && s.has(Group::Time));
    assert!(!s.has(Group::Cpu) && !s.has(Group::Irq) && !s.has(Group::Console));
    assert_eq!(PvSet::parse("mmu,bogus"), Err("bogus"));
    assert_eq!(PvSet::parse("mmu,"), Err(""));
}

#[test]
fn keel_defaults_to_pv_and_keeps_time_and_irq_pv() {
    let c = choose(Platform::Keel, None);
    assert_eq!(c.pv, PvSet::ALL);
    assert_eq!(c.forced, PvSet::NONE);
    let c = choose(Platform::Keel, Some("none"));
    assert_eq!(c.pv, KEEL_PV_ONLY);
    assert_eq!(c.forced, KEEL_PV_ONLY);
    let c = choose(Platform::Keel, Some("mmu,time,irq"));
    assert!(c.pv.has(Group::Mmu) && !c.pv.has(Group::Cpu));
    assert_eq!(c.forced, PvSet::NONE);
    let c = choose(Platform::Keel, Some("nonsense"));
    assert_eq!((c.pv, c.bad), (PvSet::ALL, Some("nonsense")));
}

#[test]
fn bare_metal_is_all_native_whatever_the_command_line() {
    let c = choose(Platform::BareMetal, Some("all"));
    assert_eq!(c.pv, PvSet::NONE);
    let mut s = String::new();
    describe(&c, &mut s).unwrap();
    assert_eq!(
        s,
        "platform bare metal; ops cpu=native mmu=native time=native irq=native console=native"
    );
    let mut s = String::new();
    describe(&choose(Platform::Keel, Some("cpu")), &mut s).unwrap();
    assert_eq!(
        s,
        "platform keel; ops cpu=pv mmu=trap time=pv irq=pv console=trap (time and irq stay pv on keel: no local APIC)"
    );
}

#[test]
fn site_encodings() {
    // call qword ptr [rip + 0x100] at 0x401000: disp from the next insn.
    assert_eq!(
        indirect_call(0x40_1000, 0x40_1106),
        Some([0xff, 0x15, 0x00, 0x01, 0x00, 0x00])
    );
    // cs call 0x401006 from 0x401000: rel32 0; backwards is negative.
    assert_eq!(
        direct_call(0x40_1000, 0x40_1006),
        Some([0x2e, 0xe8, 0, 0, 0, 0])
    );
    assert_eq!(
        direct_call(0x40_1000, 0x40_0006),
        Some([0x2e, 0xe8, 0x00, 0xf0, 0xff, 0xff])
    );
    assert_eq!(
        inline_native(c_native_irq_disable as *const () as u64),
        Some([0xfa, 0x0f, 0x1f, 0x44, 0x00, 0x00])
    );
    assert_eq!(inline_native(c_pv_irq_disable as *const () as u64), None);
    assert_eq!(direct_call(0x40_1000, 0x1_0000_0000_0000), None);
    let c = choose(Platform::Keel, Some("cpu"));
    let (d, _, t) = slot_targets(&c);
    assert_eq!(d, c_pv_irq_disable as *const () as u64);
    assert_eq!(t, c_pv_clock_ns as *const () as u64);
    let (d, _, _) = slot_targets(&choose(Platform::BareMetal, None));
    assert_eq!(d, c_native_irq_disable as *const () as u64);
}

#[test]
fn tables_follow_the_choice() {
    let t = table(&choose(Platform::Keel, Some("mmu")));
    assert!(t.mmu.set_pte as *const () == pv_set_pte as *const ());
    assert!(t.cpu.cpuid as *const () == NATIVE_CPU.cpuid as *const ());
    let t = table(&choose(Platform::Keel, Some("none")));
    assert!(t.mmu.set_pte as *const () == native_set_pte as *const ());
    assert!(t.mmu.alloc_table as *const () == keel_alloc_table as *const ());
    let t = table(&choose(Platform::BareMetal, None));
    assert!(t.mmu.alloc_table as *const () == nothing_to_announce as *const ());
    assert!(t.console.write as *const () == native_console as *const ());
}
