//! The vCPU operations of `vcpu_op` (ABI 1.2, in progress) on a built
//! one-vCPU domain in fake memory: served only to an image declaring 1.2,
//! each answer for vCPU 0 and beyond the count, and the `vcpu_info` move.

extern crate std;

#[allow(unused_imports)]
use super::tests::imports::*;
use super::tests::{World, DATA};
use super::*;
use crate::domain::elf::testimg::typical_declaring;
use crate::event::EventBits;
use keel_abi::event::{EvtchnBindIpi, EvtchnPort, Pod};
use keel_abi::sched::SHUTDOWN_POWEROFF;
use keel_abi::vcpu::*;

fn ret(e: Errno) -> Outcome {
    Outcome::Return(e.as_return())
}

fn declaring_1_2() -> World {
    let w = World::with_image(typical_declaring(
        AbiVersion::V1_2,
        Some(AbiVersion::CURRENT),
    ));
    assert!(w.dom.serves(AbiVersion::V1_2));
    assert_eq!(w.dom.vcpus.count(), 1);
    w
}

const SUBS: [u64; 6] = [
    VCPUOP_INITIALISE,
    VCPUOP_UP,
    VCPUOP_DOWN,
    VCPUOP_IS_UP,
    VCPUOP_GET_RUNSTATE_INFO,
    VCPUOP_REGISTER_VCPU_INFO,
];

impl World {
    fn vcpu(&mut self, cmd: u64, vcpu: u64, arg: u64) -> Outcome {
        self.call(Hypercall::VCPU_OP, [cmd, vcpu, arg, 0, 0])
    }
    fn mfn_at(&self, va: u64) -> Mfn {
        guest_mem::translate(&self.dom, &self.mem, GuestVirt::new(va), Access::Write)
            .unwrap()
            .frame()
    }
}

#[test]
fn images_not_declaring_1_2_get_enosys() {
    for declared in [AbiVersion::V0_1, AbiVersion::V1_0, AbiVersion::V1_1] {
        let mut w = World::with_image(typical_declaring(declared, Some(AbiVersion::CURRENT)));
        for sub in SUBS {
            assert_eq!(w.vcpu(sub, 0, DATA), ret(Errno::ENOSYS), "{declared} {sub}");
            assert_eq!(w.vcpu(sub, 5, DATA), ret(Errno::ENOSYS), "{declared} {sub}");
        }
    }
}

#[test]
fn ids_beyond_the_count_are_enoent_first() {
    let mut w = declaring_1_2();
    for sub in SUBS {
        for id in [1, 2, 31, 1 << 32, u64::MAX] {
            // Even with a NULL argument: the vCPU is checked first.
            assert_eq!(w.vcpu(sub, id, 0), ret(Errno::ENOENT), "{sub} {id}");
        }
    }
}

#[test]
fn vcpu_0_answers() {
    let mut w = declaring_1_2();
    assert_eq!(w.vcpu(VCPUOP_IS_UP, 0, 0), Outcome::Return(1));
    assert_eq!(w.vcpu(VCPUOP_UP, 0, 0), Outcome::Return(0));
    // initialise: the context is read first (-EFAULT), then -EEXIST.
    assert_eq!(w.vcpu(VCPUOP_INITIALISE, 0, 0), ret(Errno::EFAULT));
    assert_eq!(w.vcpu(VCPUOP_INITIALISE, 0, DATA), ret(Errno::EEXIST));
    // down of the only vCPU: the domain powers off.
    assert_eq!(
        w.vcpu(VCPUOP_DOWN, 0, 0),
        Outcome::Shutdown(SHUTDOWN_POWEROFF)
    );
}

#[test]
fn runstate_is_copied_out_as_every_copy_is() {
    let mut w = declaring_1_2();
    assert_eq!(w.vcpu(VCPUOP_GET_RUNSTATE_INFO, 0, 0), ret(Errno::EFAULT));
    // The text is read-only: a write there is refused.
    assert_eq!(
        w.vcpu(VCPUOP_GET_RUNSTATE_INFO, 0, 0x40_0000),
        ret(Errno::EFAULT)
    );
    // Some time in each state (as the exit handlers record them, in TSC
    // ticks from the clock's start), then ask.
    let clock = w.ev.clock;
    let ns = |tsc: u64| clock.ns_at(tsc);
    w.dom.vcpus.set_created(clock.tsc0);
    let rs = &mut w.dom.vcpus.boot_vcpu_mut().runstate;
    rs.enter(RUNSTATE_BLOCKED, 3000);
    rs.enter(RUNSTATE_RUNNABLE, 7000);
    rs.enter(RUNSTATE_RUNNING, 9000);
    w.tsc = 10_000;
    assert_eq!(
        w.vcpu(VCPUOP_GET_RUNSTATE_INFO, 0, DATA),
        Outcome::Return(0)
    );
    let b: [u8; 48] = w.peek(DATA);
    let r = VcpuRunstateInfo::decode(&b);
    assert_eq!(r.state, RUNSTATE_RUNNING as i32);
    assert_eq!(r.state_entry_time, ns(9000));
    assert_eq!(r.time[RUNSTATE_BLOCKED as usize], ns(7000) - ns(3000));
    assert_eq!(r.time[RUNSTATE_RUNNABLE as usize], ns(9000) - ns(7000));
    // Each part rounded down on its own: the sum within a nanosecond a part.
    let sum = r.time.iter().sum::<u64>();
    assert!(sum <= ns(10_000) && sum + 4 >= ns(10_000), "{sum}");
}

#[test]
fn register_vcpu_info_moves_the_record_and_events_follow() {
    let mut w = declaring_1_2();
    let shared = w.ev.shared.unwrap();
    let data = w.mfn_at(DATA);
    let req = |mfn: Mfn, offset: u32| {
        let mut b = [0u8; 16];
        VcpuRegisterVcpuInfo {
            mfn: mfn.get(),
            offset,
            rsvd: 0,
        }
        .encode(&mut b);
        b
    };
    // The argument is on the second data page; the record goes in the first.
    let arg = DATA + 0x1000;
    assert_eq!(w.vcpu(VCPUOP_REGISTER_VCPU_INFO, 0, 0), ret(Errno::EFAULT));
    w.poke(arg, &req(data, 4));
    assert_eq!(w.vcpu(VCPUOP_REGISTER_VCPU_INFO, 0, arg), ret(Errno::ENXIO));
    w.poke(arg, &req(data, 4096 - 32));
    assert_eq!(w.vcpu(VCPUOP_REGISTER_VCPU_INFO, 0, arg), ret(Errno::ENXIO));
    let l4 = w.dom.base();
    w.poke(arg, &req(l4, 0));
    assert_eq!(
        w.vcpu(VCPUOP_REGISTER_VCPU_INFO, 0, arg),
        ret(Errno::EINVAL),
        "a page table"
    );
    w.poke(arg, &req(Mfn::new(0x7_0000), 0));
    assert_eq!(
        w.vcpu(VCPUOP_REGISTER_VCPU_INFO, 0, arg),
        ret(Errno::EINVAL),
        "not the domain's"
    );
    // A pending event, masked upcalls (as the domain starts).
    let mut b = [0u8; 32];
    EvtchnBindIpi { vcpu: 0, port: 0 }.encode(&mut b);
    w.poke(DATA + 0x800, &b[..8]);
    assert_eq!(
        w.call(
            Hypercall::EVENT_CHANNEL_OP,
            [keel_abi::event::EVTCHNOP_BIND_IPI, DATA + 0x800, 0, 0, 0]
        ),
        Outcome::Return(0)
    );
    let port = EvtchnBindIpi::decode(&w.peek::<8>(DATA + 0x800)).port;
    w.poke(arg, &req(data, 0x100));
    assert_eq!(
        w.vcpu(VCPUOP_REGISTER_VCPU_INFO, 0, arg),
        Outcome::Return(0)
    );
    assert_eq!(
        w.vcpu(VCPUOP_REGISTER_VCPU_INFO, 0, arg),
        ret(Errno::EINVAL),
        "once only"
    );
    // The record moved: masked as before, everything marked pending, the
    // pvclock published there.
    let rec: [u8; 64] = w.peek(DATA + 0x100);
    assert_eq!(rec[1], 1, "the mask came along");
    assert_eq!(rec[0], 1, "upcall pending");
    assert_eq!(&rec[8..16], &[0xff; 8], "every selector bit");
    let t = keel_abi::time::VcpuTimeInfo::decode(&rec[32..64]);
    assert_eq!(t.version % 2, 0);
    assert!(t.version > 0 && t.tsc_to_system_mul != 0);
    // An event sent now is flagged at the new place, not in shared_info.
    let old_pending = MachineAddr::new(shared.addr().get());
    w.mem.write(old_pending, &[0]);
    let mut rec_now = rec;
    rec_now[0] = 0;
    rec_now[8..16].copy_from_slice(&[0; 8]);
    w.poke(DATA + 0x100, &rec_now);
    let mut p = [0u8; 8];
    EvtchnPort { port }.encode(&mut p);
    w.poke(DATA + 0x800, &p[..4]);
    {
        let mut page = w.ev.page(&w.dom, &mut w.mem).unwrap();
        page.clear_pending(port);
    }
    assert_eq!(
        w.call(
            Hypercall::EVENT_CHANNEL_OP,
            [keel_abi::event::EVTCHNOP_SEND, DATA + 0x800, 0, 0, 0]
        ),
        Outcome::Return(0)
    );
    let rec: [u8; 64] = w.peek(DATA + 0x100);
    assert_eq!(rec[0], 1, "upcall pending at the new place");
    assert_ne!(rec[8], 0, "its selector bit at the new place");
    let mut old = [0u8; 1];
    w.mem.read(old_pending, &mut old);
    assert_eq!(old[0], 0, "shared_info's entry is no longer written");
    // Unmasked at the new place, the upcall is wanted (with a vector).
    w.ev.callback_vector = Some(0xf3);
    assert_eq!(w.ev.upcall_wanted(&w.dom, &mut w.mem), None, "masked");
    w.poke(DATA + 0x101, &[0]);
    assert_eq!(w.ev.upcall_wanted(&w.dom, &mut w.mem), Some(0xf3));
    // If the frame becomes unusable the hypervisor stops writing it.
    assert!(w.ev.page(&w.dom, &mut w.mem).unwrap().is_pending(port));
}
