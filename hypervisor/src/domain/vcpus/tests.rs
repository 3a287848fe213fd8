use super::*;
use keel_abi::vcpu::{
    TrapInfo, RUNSTATE_BLOCKED, VGCF_FAILSAFE_DISABLES_EVENTS, VGCF_I387_VALID,
    VGCF_SYSCALL_DISABLES_EVENTS,
};
use proptest::prelude::*;

const L4: u64 = 0x42;
const DATA: u64 = 0x43;
const TABLE_L1: u64 = 0x44;

/// The domain's frames: one validated L4, one ordinary frame, one L1; the
/// rest another domain's.
fn frames(m: Mfn) -> FrameKind {
    match m.get() {
        L4 => FrameKind::PageTable(Level::L4),
        DATA => FrameKind::Writable,
        TABLE_L1 => FrameKind::PageTable(Level::L1),
        _ => FrameKind::NotOwned,
    }
}

fn good_context() -> VcpuGuestContext {
    let mut c = VcpuGuestContext {
        flags: VGCF_IN_KERNEL,
        ..Default::default()
    };
    c.user_regs.rip = 0xffff_8000_0010_0000;
    c.user_regs.rsp = 0xffff_8000_0020_0000;
    c.user_regs.rdi = 7;
    c.user_regs.r15 = 15;
    c.user_regs.rflags = 0x3002; // IOPL 3, IF clear
    c.ctrlreg[3] = L4 << 12;
    c.fs_base = 0x1000;
    c.gs_base_kernel = 0xffff_8000_0000_0000;
    c.gs_base_user = 0x2000;
    c
}

/// `count` vCPUs created at 0, each with a place held on its CPU (as the
/// run loop gives them while its pool and frames last).
fn placed(count: u8) -> VcpuTable {
    let mut t = VcpuTable::new(count, 0);
    for v in 0..u32::from(count) {
        t.give_place(v);
    }
    t
}

#[test]
fn vcpu_0_starts_up_and_running_the_others_offline() {
    let t = VcpuTable::new(4, 100);
    assert_eq!(t.count(), 4);
    assert_eq!(t.is_up(0), Ok(true));
    for id in 1..4 {
        assert_eq!(t.is_up(id), Ok(false));
        assert_eq!(t.runstate(id, 150).unwrap().state, RUNSTATE_OFFLINE as i32);
    }
    assert_eq!(t.runstate(0, 150).unwrap().time, [50, 0, 0, 0]);
    assert_eq!(t.up_count(), 1);
}

#[test]
fn ids_beyond_the_count_are_enoent_for_every_operation() {
    let mut t = VcpuTable::new(2, 0);
    let req = VcpuRegisterVcpuInfo {
        mfn: DATA,
        ..Default::default()
    };
    for id in [2, 7, 8, 31, 32, u64::from(u32::MAX), u64::MAX] {
        assert_eq!(t.is_up(id), Err(Errno::ENOENT));
        assert_eq!(t.runstate(id, 0), Err(Errno::ENOENT));
        assert_eq!(t.up(id, 0), Err(Errno::ENOENT));
        assert_eq!(t.down(id, 0), Err(Errno::ENOENT));
        assert_eq!(
            t.initialise(id, &good_context(), frames),
            Err(Errno::ENOENT)
        );
        assert_eq!(
            t.register_vcpu_info(id, 0, &req, frames),
            Err(Errno::ENOENT)
        );
    }
}

#[test]
fn the_count_is_clamped_to_the_table() {
    assert_eq!(VcpuTable::new(0, 0).count(), 1);
    assert_eq!(VcpuTable::new(200, 0).count(), MAX_VCPUS as u8);
}

#[test]
fn initialise_then_up_then_down_then_up_again() {
    let mut t = placed(2);
    assert_eq!(t.up(1, 5), Err(Errno::EINVAL), "up needs a context");
    assert_eq!(t.initialise(1, &good_context(), frames), Ok(()));
    assert_eq!(t.is_up(1), Ok(false), "initialise leaves it down");
    assert_eq!(t.initialise(1, &good_context(), frames), Err(Errno::EEXIST));
    let s = t.get(1).unwrap().start.unwrap();
    assert_eq!(s.rip, 0xffff_8000_0010_0000);
    assert_eq!(s.cr3, Mfn::new(L4));
    assert_eq!(s.rflags, 0x0202, "IOPL cleared, IF set");
    assert_eq!(s.gprs[0], 15);
    assert_eq!(s.gprs[14], 7);
    assert_eq!(
        (s.gs_base, s.kernel_gs_base),
        (0xffff_8000_0000_0000, 0x2000)
    );
    assert_eq!(t.up(1, 10), Ok(()));
    assert_eq!(t.is_up(1), Ok(true));
    assert_eq!(t.runstate(1, 10).unwrap().state, RUNSTATE_RUNNABLE as i32);
    assert_eq!(t.up(1, 11), Ok(()), "up of an up vCPU is 0");
    assert_eq!(t.down(1, 20), Ok(Down::Stopped));
    assert_eq!(t.is_up(1), Ok(false));
    assert_eq!(t.runstate(1, 20).unwrap().state, RUNSTATE_OFFLINE as i32);
    assert_eq!(
        t.initialise(1, &good_context(), frames),
        Err(Errno::EEXIST),
        "a downed vCPU keeps its context"
    );
    assert_eq!(t.up(1, 30), Ok(()));
    assert_eq!(t.up_count(), 2);
}

#[test]
fn up_without_a_place_is_enomem_and_changes_nothing() {
    let mut t = VcpuTable::new(3, 0);
    assert!(t.get(0).unwrap().placed, "vCPU 0 always has its place");
    t.initialise(1, &good_context(), frames).unwrap();
    assert_eq!(
        t.up(2, 5),
        Err(Errno::EINVAL),
        "never initialised comes first"
    );
    let before = t;
    assert_eq!(t.up(1, 5), Err(Errno::ENOMEM));
    assert_eq!(t, before, "a refusal changes nothing");
    assert_eq!(t.is_up(1), Ok(false));
    assert_eq!(t.runstate(1, 9).unwrap().state, RUNSTATE_OFFLINE as i32);
    assert_eq!(t.runstate(1, 9).unwrap().time[RUNSTATE_OFFLINE as usize], 9);
    t.give_place(1);
    t.give_place(9); // beyond the count: nothing
    assert_eq!(t.up(1, 10), Ok(()));
    assert_eq!(t.is_up(1), Ok(true));
}

#[test]
fn a_vcpu_that_could_not_start_is_down_again() {
    let mut t = placed(2);
    t.initialise(1, &good_context(), frames).unwrap();
    t.up(1, 10).unwrap();
    t.start_failed(1, 12);
    assert_eq!(t.is_up(1), Ok(false));
    let r = t.runstate(1, 20).unwrap();
    assert_eq!(r.state, RUNSTATE_OFFLINE as i32);
    assert_eq!(r.time[RUNSTATE_RUNNABLE as usize], 2);
    t.start_failed(0, 13);
    t.start_failed(1, 14);
    t.start_failed(5, 14);
    assert_eq!(t.is_up(0), Ok(true), "vCPU 0 is never taken down so");
    assert_eq!(
        t.runstate(1, 20).unwrap().state_entry_time,
        12,
        "a vCPU down stays"
    );
    assert_eq!(t.up(1, 30), Ok(()), "it may be brought up again");
}

#[test]
fn the_last_vcpu_up_going_down_powers_the_domain_off() {
    let mut t = VcpuTable::new(1, 0);
    assert_eq!(t.down(0, 1), Ok(Down::PowerOff));
    assert_eq!(
        t.is_up(0),
        Ok(true),
        "the domain ends; the vCPU is not downed"
    );
    let mut t = VcpuTable::new(2, 0);
    t.initialise(1, &good_context(), frames).unwrap();
    // vCPU 1 is down: vCPU 0 is still the last one up.
    assert_eq!(t.down(0, 1), Ok(Down::PowerOff));
    assert_eq!(t.down(1, 1), Ok(Down::Stopped), "a vCPU already down");
    t.give_place(1);
    t.up(1, 2).unwrap();
    assert_eq!(t.down(0, 3), Ok(Down::Stopped));
    assert_eq!(t.down(1, 4), Ok(Down::PowerOff));
}

#[test]
fn vcpu_0_is_initialised_from_the_boot_state() {
    let mut t = VcpuTable::new(1, 0);
    assert_eq!(t.initialise(0, &good_context(), frames), Err(Errno::EEXIST));
    assert_eq!(t.up(0, 0), Ok(()));
}

#[test]
fn context_checks() {
    assert!(check_context(&good_context(), frames).is_ok());
    assert!(
        check_context(
            &VcpuGuestContext {
                flags: VGCF_IN_KERNEL | VGCF_ONLINE,
                ..good_context()
            },
            frames
        )
        .is_ok(),
        "VGCF_online is accepted"
    );
    type Edit = fn(&mut VcpuGuestContext);
    let refused: &[(&str, Edit)] = &[
        ("non-canonical RIP", |c| c.user_regs.rip = 1 << 47),
        ("non-canonical RSP", |c| {
            c.user_regs.rsp = 0x8000_0000_0000_0000
        }),
        ("non-canonical FS base", |c| c.fs_base = 1 << 50),
        ("non-canonical GS base", |c| c.gs_base_kernel = 1 << 48),
        ("non-canonical user GS base", |c| c.gs_base_user = 1 << 63),
        ("not in kernel", |c| c.flags = 0),
        ("i387 valid", |c| c.flags |= VGCF_I387_VALID),
        ("failsafe flag", |c| {
            c.flags |= VGCF_FAILSAFE_DISABLES_EVENTS
        }),
        ("syscall flag", |c| c.flags |= VGCF_SYSCALL_DISABLES_EVENTS),
        ("an unknown flag", |c| c.flags |= 1 << 6),
        ("a trap handler", |c| {
            c.trap_ctxt[14] = TrapInfo {
                vector: 14,
                flags: 0,
                cs: 0xe033,
                address: 0xffff_8000_0000_1000,
            }
        }),
        ("a non-canonical trap handler", |c| {
            c.trap_ctxt[0].address = 1 << 47
        }),
        ("an LDT", |c| c.ldt_ents = 1),
        ("an LDT base", |c| c.ldt_base = 0x1000),
        ("GDT frames", |c| c.gdt_frames[0] = DATA),
        ("GDT entries", |c| c.gdt_ents = 16),
        ("a ring-1 stack", |c| c.kernel_sp = 0xffff_8000_0000_0000),
        ("a ring-1 stack selector", |c| c.kernel_ss = 0xe02b),
        ("a user page table", |c| c.ctrlreg[1] = L4 << 12),
        ("a debug register", |c| c.debugreg[7] = 0x400),
        ("an event callback", |c| c.event_callback_eip = 0x1000),
        ("a failsafe callback", |c| c.failsafe_callback_eip = 0x1000),
        ("a syscall callback", |c| c.syscall_callback_eip = 0x1000),
        ("vm_assist", |c| c.vm_assist = 1),
        ("CR3 low bits", |c| c.ctrlreg[3] |= 0x18),
        ("CR3 another domain's frame", |c| c.ctrlreg[3] = 0x999 << 12),
        ("CR3 an ordinary frame", |c| c.ctrlreg[3] = DATA << 12),
        ("CR3 an L1", |c| c.ctrlreg[3] = TABLE_L1 << 12),
        ("CR3 past the frame numbers", |c| {
            c.ctrlreg[3] = u64::MAX << 12
        }),
    ];
    for (what, edit) in refused {
        let mut c = good_context();
        edit(&mut c);
        assert_eq!(check_context(&c, frames), Err(Errno::EINVAL), "{what}");
    }
    // Ignored, as vCPU 0's boot values are used.
    let mut c = good_context();
    c.ctrlreg[0] = 0x8005_0033;
    c.ctrlreg[4] = 0x6f0;
    c.user_regs.cs = 0x10;
    c.user_regs.ss = 0x18;
    c.user_regs.saved_upcall_mask = 1;
    c.fpu_ctxt[0] = 0x7f;
    assert!(check_context(&c, frames).is_ok());
}

#[test]
fn register_vcpu_info_follows_xen_4_17() {
    let req = |mfn: u64, offset: u32| VcpuRegisterVcpuInfo {
        mfn,
        offset,
        rsvd: 0,
    };
    let mut t = VcpuTable::new(2, 0);
    assert_eq!(
        t.register_vcpu_info(0, 0, &req(DATA, 4096 - 56), frames),
        Err(Errno::ENXIO),
        "the record must fit in the page"
    );
    assert_eq!(
        t.register_vcpu_info(0, 0, &req(DATA, 4096), frames),
        Err(Errno::ENXIO)
    );
    assert_eq!(
        t.register_vcpu_info(0, 0, &req(DATA, u32::MAX), frames),
        Err(Errno::ENXIO)
    );
    assert_eq!(
        t.register_vcpu_info(0, 0, &req(DATA, 4), frames),
        Err(Errno::ENXIO),
        "8-byte aligned"
    );
    assert_eq!(
        t.register_vcpu_info(0, 0, &req(0x999, 0), frames),
        Err(Errno::EINVAL),
        "another domain's frame"
    );
    assert_eq!(
        t.register_vcpu_info(0, 0, &req(L4, 0), frames),
        Err(Errno::EINVAL),
        "a page table"
    );
    assert_eq!(
        t.register_vcpu_info(0, 0, &req(1 << 40, 0), frames),
        Err(Errno::EINVAL),
        "past the frame numbers"
    );
    assert_eq!(t.get(0).unwrap().vcpu_info, None, "refusals change nothing");
    let place = t
        .register_vcpu_info(0, 0, &req(DATA, 4096 - 64), frames)
        .unwrap();
    assert_eq!((place.mfn, place.offset), (Mfn::new(DATA), 4032));
    assert_eq!(t.get(0).unwrap().vcpu_info, Some(place));
    assert_eq!(
        t.register_vcpu_info(0, 0, &req(DATA, 0), frames),
        Err(Errno::EINVAL),
        "once only"
    );
    // Another vCPU: while it is down, from vCPU 0; not while it is up.
    t.initialise(1, &good_context(), frames).unwrap();
    t.give_place(1);
    t.up(1, 0).unwrap();
    assert_eq!(
        t.register_vcpu_info(1, 0, &req(DATA, 64), frames),
        Err(Errno::EINVAL)
    );
    assert!(t.register_vcpu_info(1, 1, &req(DATA, 64), frames).is_ok());
}

#[test]
fn runstate_accumulates_each_state_and_reports_the_current_one() {
    let mut r = Runstate::new(RUNSTATE_RUNNING, 1000);
    r.enter(RUNSTATE_BLOCKED, 1100);
    r.enter(RUNSTATE_RUNNABLE, 1400);
    r.enter(RUNSTATE_RUNNING, 1450);
    r.enter(RUNSTATE_RUNNING, 1460);
    let i = r.info(1500);
    assert_eq!(i.state, RUNSTATE_RUNNING as i32);
    assert_eq!(i.state_entry_time, 1450);
    assert_eq!(i.time, [150, 50, 300, 0]);
    // A transition dated before the last counts as no time.
    r.enter(RUNSTATE_BLOCKED, 1200);
    assert_eq!(r.info(1450).time, [100, 50, 300, 0]);
    assert_eq!(r.info(1460).time, [100, 50, 310, 0]);
}

proptest! {
    /// Whatever the transitions (and however the times are ordered), the
    /// four times add up to the time since creation (as far as the clock
    /// went), and the current state's time grows with the clock.
    #[test]
    fn runstate_times_add_up_to_the_time_since_creation(
        start in 0u64..1 << 40,
        steps in proptest::collection::vec((0u32..4, 0u64..1 << 20, any::<bool>()), 0..64),
        later in 0u64..1 << 20,
    ) {
        let mut r = Runstate::new(RUNSTATE_RUNNING, start);
        let mut now = start;
        let mut furthest = start;
        for (state, dt, backwards) in steps {
            // Now and then a stale time, as another CPU's clock may give.
            let at = if backwards { now.saturating_sub(dt) } else { now + dt };
            now = at.max(start);
            r.enter(state, now);
            furthest = furthest.max(now);
            let i = r.info(furthest);
            prop_assert_eq!(i.time.iter().sum::<u64>(), furthest - start);
            prop_assert_eq!(i.state, state as i32);
        }
        let end = furthest + later;
        let i = r.info(end);
        prop_assert_eq!(i.time.iter().sum::<u64>(), end - start);
        let before = r.info(furthest).time[r.state() as usize];
        prop_assert_eq!(i.time[r.state() as usize], before + later);
    }

    /// Random operations on a table keep its invariants: at least one vCPU
    /// stays up (the last one's down is a power-off), a vCPU other than 0 is
    /// up only after it was initialised, a vCPU's run state is offline
    /// exactly while it is not up, and ids beyond the count are refused.
    #[test]
    fn table_operations_keep_the_invariants(
        count in 1u8..=MAX_VCPUS as u8,
        ops in proptest::collection::vec((0u8..4, 0u64..10), 0..64),
        places in any::<u8>(),
    ) {
        let mut t = VcpuTable::new(count, 0);
        for v in 0..u32::from(count) {
            if places & (1 << v) != 0 {
                t.give_place(v);
            }
        }
        for (i, (op, id)) in ops.into_iter().enumerate() {
            let now = i as u64;
            let before = t;
            let r = match op {
                0 => t.initialise(id, &good_context(), frames).map(|_| ()),
                1 => t.up(id, now),
                2 => t.down(id, now).map(|_| ()),
                _ => t.is_up(id).map(|_| ()),
            };
            if id >= u64::from(count) {
                prop_assert_eq!(r, Err(Errno::ENOENT));
                prop_assert_eq!(t, before);
            } else if op == 1 && !before.get(id).unwrap().placed {
                // No place: up is refused unless the vCPU is up already
                // (vCPU 0), and a refusal changes nothing.
                if before.is_up(id) == Ok(true) {
                    prop_assert_eq!(r, Ok(()));
                } else {
                    prop_assert!(r == Err(Errno::ENOMEM) || r == Err(Errno::EINVAL));
                    prop_assert_eq!(t, before);
                }
            }
            prop_assert!(t.up_count() >= 1);
            for v in 0..u64::from(count) {
                let s = t.get(v).unwrap();
                if v > 0 {
                    prop_assert_eq!(s.power == Power::Offline, s.start.is_none());
                }
                prop_assert!(s.placed || s.power != Power::Up, "up without a place");
                prop_assert_eq!(
                    s.power == Power::Up,
                    t.runstate(v, now).unwrap().state != RUNSTATE_OFFLINE as i32
                );
            }
        }
    }
}

#[test]
fn up_at_and_each_vcpus_own_run_state() {
    let mut t = placed(3);
    assert!(t.up_at(0));
    assert!(!t.up_at(1), "offline");
    assert!(!t.up_at(3), "beyond the count");
    t.initialise(1, &good_context(), frames).unwrap();
    assert!(!t.up_at(1), "initialised, still down");
    t.up(1, 10).unwrap();
    assert!(t.up_at(1));
    // vCPU 1 runs from 10 to 40: its record only.
    t.enter_runstate(1, RUNSTATE_RUNNING, 10);
    t.enter_runstate(1, RUNSTATE_RUNNABLE, 40);
    t.enter_runstate(7, RUNSTATE_RUNNING, 40); // beyond the count: nothing
    let r1 = t.runstate(1, 50).unwrap();
    assert_eq!(r1.state, RUNSTATE_RUNNABLE as i32);
    assert_eq!(r1.time[RUNSTATE_RUNNING as usize], 30);
    let r0 = t.runstate(0, 50).unwrap();
    assert_eq!(
        r0.time[RUNSTATE_RUNNING as usize], 50,
        "vCPU 0 ran throughout"
    );
    t.down(1, 60).unwrap();
    assert!(!t.up_at(1));
}
