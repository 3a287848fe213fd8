//! Several vCPUs in one domain, on a built domain in fake memory: a vCPU's
//! root takes its type reference at `VCPUOP_initialise` and gives it back at
//! the teardown; IPI ports notify their vCPU, whose `vcpu_info` (in
//! `shared_info` or where it was placed) is told; each vCPU's timers raise
//! its own `VIRQ_TIMER`.

extern crate std;

#[allow(unused_imports)]
use super::tests::imports::*;
use super::tests::{World, DATA};
use super::*;
use crate::domain::elf::testimg::typical_declaring;
use crate::domain::vcpus::VcpuTable;
use crate::domain::{DomainId, Level};
use crate::event::{EventBits, VcpuEvents};
use keel_abi::event::{EvtchnBindIpi, EvtchnBindVirq, EvtchnPort, Pod, VIRQ_TIMER};
use keel_abi::time::offsets;
use keel_abi::vcpu::*;

fn ret(e: Errno) -> Outcome {
    Outcome::Return(e.as_return())
}

/// A domain declaring 1.2 with `n` vCPUs (as `keel.vcpus=n` makes it).
fn with_vcpus(n: u8) -> World {
    let mut w = World::with_image(typical_declaring(
        AbiVersion::V1_2,
        Some(AbiVersion::CURRENT),
    ));
    w.dom.vcpus = VcpuTable::new(n, 0);
    w.ev.chans.set_vcpus(u32::from(n));
    w
}

impl World {
    fn op(&mut self, cmd: u64, vcpu: u64, arg: u64) -> Outcome {
        self.call(Hypercall::VCPU_OP, [cmd, vcpu, arg, 0, 0])
    }
    /// `VCPUOP_initialise` of `vcpu` with `c` (written at `DATA`).
    fn initialise(&mut self, vcpu: u64, c: &VcpuGuestContext) -> Outcome {
        let mut b = std::vec![0u8; VcpuGuestContext::SIZE];
        c.encode(&mut b);
        self.poke(DATA, &b);
        self.op(VCPUOP_INITIALISE, vcpu, DATA)
    }
    fn event_op<T: Pod>(&mut self, cmd: u64, s: T) -> (Outcome, T) {
        let mut b = [0u8; 32];
        s.encode(&mut b);
        self.poke(DATA, &b[..T::SIZE]);
        let r = self.call(Hypercall::EVENT_CHANNEL_OP, [cmd, DATA, 0, 0, 0]);
        let back: [u8; 32] = self.peek(DATA);
        (r, T::decode(&back[..T::SIZE]))
    }
    fn bind_ipi(&mut self, vcpu: u32) -> Result<u32, Outcome> {
        match self.event_op(EVTCHNOP_BIND_IPI, EvtchnBindIpi { vcpu, port: 0 }) {
            (Outcome::Return(0), s) => Ok(s.port),
            (r, _) => Err(r),
        }
    }
    fn send(&mut self, port: u32) -> Outcome {
        self.event_op(EVTCHNOP_SEND, EvtchnPort { port }).0
    }
    /// vCPU `v`'s `evtchn_upcall_pending` and `evtchn_pending_sel` in
    /// `shared_info`'s `vcpu_info[v]`.
    fn told(&self, v: usize) -> (u8, u64) {
        let base = self.ev.shared.unwrap().addr().get();
        let mut b = [0u8; 1];
        self.mem.read(
            MachineAddr::new(base + offsets::upcall_pending(v) as u64),
            &mut b,
        );
        let sel = self
            .mem
            .read_u64(MachineAddr::new(base + offsets::pending_sel(v) as u64));
        (b[0], sel)
    }
    fn type_count(&self, mfn: Mfn) -> u32 {
        self.dom.page_info(&self.mem, mfn).unwrap().type_count
    }
}

/// A context Keel accepts, on the domain's L4.
fn context(l4: Mfn) -> VcpuGuestContext {
    let mut c = VcpuGuestContext {
        flags: VGCF_IN_KERNEL,
        ..Default::default()
    };
    c.user_regs.rip = 0x40_0000;
    c.user_regs.rsp = DATA + 0x800;
    c.ctrlreg[3] = l4.get() << 12;
    c
}

#[test]
fn initialise_takes_the_roots_reference_and_teardown_gives_it_back() {
    let mut w = with_vcpus(3);
    let l4 = w.dom.base();
    assert_eq!(
        w.op(VCPUOP_UP, 1, 0),
        ret(Errno::EINVAL),
        "up before initialise"
    );
    // Not an L4: refused, nothing taken.
    let data = guest_mem::translate(&w.dom, &w.mem, GuestVirt::new(DATA), Access::Write)
        .unwrap()
        .frame();
    let info = w.dom.page_info(&w.mem, data);
    assert_eq!(w.initialise(1, &context(data)), ret(Errno::EINVAL));
    assert_eq!(w.dom.page_info(&w.mem, data), info);
    // An L4 validated (the base) but not pinned: NEW_BASEPTR's rule refuses
    // it, and the vCPU stays offline.
    w.dom.unpin(&mut w.mem, l4).unwrap();
    let unpinned = w.type_count(l4);
    assert_eq!(w.initialise(1, &context(l4)), ret(Errno::EINVAL));
    assert_eq!(w.type_count(l4), unpinned);
    assert_eq!(w.op(VCPUOP_UP, 1, 0), ret(Errno::EINVAL));
    w.dom.pin(&mut w.mem, l4, Level::L4).unwrap();
    let pinned = w.type_count(l4);
    let mut bad = context(l4);
    bad.user_regs.rip = 1 << 63;
    assert_eq!(w.initialise(1, &bad), ret(Errno::EINVAL), "bad context");
    assert_eq!(w.type_count(l4), pinned);
    assert_eq!(w.initialise(1, &context(l4)), Outcome::Return(0));
    assert_eq!(w.type_count(l4), pinned + 1);
    assert_eq!(w.dom.vcpu_base(1), Some(l4));
    assert_eq!(w.initialise(1, &context(l4)), ret(Errno::EEXIST));
    assert_eq!(w.type_count(l4), pinned + 1);
    assert_eq!(w.initialise(3, &context(l4)), ret(Errno::ENOENT));
    // Up and down of a vCPU that changes state yield (0 in RAX): the run
    // loop starts it or takes it off the scheduler when the caller leaves.
    assert_eq!(w.op(VCPUOP_UP, 1, 0), Outcome::Yield);
    assert_eq!(w.op(VCPUOP_UP, 1, 0), Outcome::Return(0), "up already");
    assert_eq!(w.op(VCPUOP_IS_UP, 1, 0), Outcome::Return(1));
    assert_eq!(w.op(VCPUOP_DOWN, 1, 0), Outcome::Yield);
    assert_eq!(w.op(VCPUOP_DOWN, 1, 0), Outcome::Return(0), "down already");
    assert_eq!(w.op(VCPUOP_IS_UP, 1, 0), Outcome::Return(0));
    // Down keeps the context and the root: up again at once.
    assert_eq!(w.op(VCPUOP_UP, 1, 0), Outcome::Yield);
    assert_eq!(w.initialise(2, &context(l4)), Outcome::Return(0));
    assert_eq!(w.type_count(l4), pinned + 2);
    assert_eq!(w.dom.release_mm(&mut w.mem), 0, "every count back to zero");
}

#[test]
fn an_ipi_tells_its_vcpu_only() {
    let mut w = with_vcpus(3);
    assert_eq!(w.bind_ipi(3), Err(ret(Errno::ENOENT)));
    let p2 = w.bind_ipi(2).unwrap();
    let p0 = w.bind_ipi(0).unwrap();
    assert_eq!(w.send(p2), Outcome::Return(0));
    assert_eq!(w.told(2), (1, 1 << (p2 / 64)));
    assert_eq!(w.told(0), (0, 0));
    assert_eq!(w.told(1), (0, 0));
    assert_eq!(w.send(p0), Outcome::Return(0));
    assert_eq!(w.told(0), (1, 1 << (p0 / 64)));
    // A one-vCPU domain has no vCPU 1 (the 1.0 answer).
    let mut one = with_vcpus(1);
    assert_eq!(one.bind_ipi(1), Err(ret(Errno::ENOENT)));
}

#[test]
fn a_placed_vcpu_info_is_told_there() {
    let mut w = with_vcpus(2);
    let data = guest_mem::translate(&w.dom, &w.mem, GuestVirt::new(DATA), Access::Write)
        .unwrap()
        .frame();
    let mut b = [0u8; 16];
    VcpuRegisterVcpuInfo {
        mfn: data.get(),
        offset: 128,
        rsvd: 0,
    }
    .encode(&mut b);
    w.poke(DATA + 2048, &b);
    // vCPU 0 places vCPU 1's record (it is not up): the record moves there,
    // every selector bit and the upcall flag set (the guest rescans).
    assert_eq!(
        w.op(VCPUOP_REGISTER_VCPU_INFO, 1, DATA + 2048),
        Outcome::Return(0)
    );
    let at = |off: usize| MachineAddr::new(data.addr().get() + 128 + off as u64);
    let flags = |w: &World| {
        let mut b = [0u8; 2];
        w.mem.read(at(offsets::upcall_pending(0)), &mut b);
        (b, w.mem.read_u64(at(offsets::pending_sel(0))))
    };
    assert_eq!(flags(&w), ([1, 0], u64::MAX), "moved, unmasked as it was");
    // The guest takes the flags; an IPI for vCPU 1 is told there.
    w.mem.write(at(offsets::upcall_pending(0)), &[0]);
    w.mem.write_u64(at(offsets::pending_sel(0)), 0);
    let p1 = w.bind_ipi(1).unwrap();
    assert_eq!(w.send(p1), Outcome::Return(0));
    assert_eq!(w.told(1), (0, 0), "not in shared_info");
    assert_eq!(flags(&w), ([1, 0], 1 << (p1 / 64)));
}

#[test]
fn each_loaded_vcpu_has_its_own_timers_and_virq_timer() {
    let mut w = with_vcpus(2);
    let bind = |w: &mut World, vcpu| {
        let (r, s) = w.event_op(
            EVTCHNOP_BIND_VIRQ,
            EvtchnBindVirq {
                virq: VIRQ_TIMER,
                vcpu,
                port: 0,
            },
        );
        assert_eq!(r, Outcome::Return(0));
        s.port
    };
    let t0 = bind(&mut w, 0);
    let t1 = bind(&mut w, 1);
    // vCPU 0 arms a timer; vCPU 1 is loaded with none.
    w.ev.timers.set_oneshot(5_000);
    let parked0 = w.ev.load_vcpu(&w.dom, 1, VcpuEvents::default());
    assert_eq!(parked0.timers.next_deadline(), Some(5_000));
    assert_eq!(w.ev.timers.next_deadline(), None);
    w.ev.timers.set_oneshot(1_000);
    // The clock runs at 2 GHz from TSC 1000: 1 µs is 2000 ticks later.
    w.ev.expire_timers(&w.dom, &mut w.mem, 1000 + 2_000);
    assert_eq!(w.told(1), (1, 1 << (t1 / 64)));
    assert!(!w.ev.page(&w.dom, &mut w.mem).unwrap().is_pending(t0));
    // The page opened for the loaded vCPU reads its own flags.
    assert!(w.ev.page(&w.dom, &mut w.mem).unwrap().upcall_pending());
    // vCPU 0 back, its timer kept; vCPU 1's record keeps its flags.
    let parked1 = w.ev.load_vcpu(&w.dom, 0, parked0);
    assert_eq!(parked1.timers.next_deadline(), None, "fired");
    assert!(!w.ev.page(&w.dom, &mut w.mem).unwrap().upcall_pending());
    w.ev.expire_timers(&w.dom, &mut w.mem, 1000 + 10_000);
    assert_eq!(w.told(0), (1, 1 << (t0 / 64)));
}

#[test]
fn timer_operations_name_the_calling_vcpu() {
    use keel_abi::time::VCPUOP_STOP_SINGLESHOT_TIMER;
    let mut w = with_vcpus(2);
    // vCPU 0 runs: its own timer only (Xen's `v != current`: -EINVAL), and
    // -ENOENT beyond the count, as for one vCPU.
    assert_eq!(w.op(VCPUOP_STOP_SINGLESHOT_TIMER, 0, 0), Outcome::Return(0));
    assert_eq!(w.op(VCPUOP_STOP_SINGLESHOT_TIMER, 1, 0), ret(Errno::EINVAL));
    assert_eq!(w.op(VCPUOP_STOP_SINGLESHOT_TIMER, 2, 0), ret(Errno::ENOENT));
    // vCPU 1 loaded: now its own.
    let parked = w.ev.load_vcpu(&w.dom, 1, VcpuEvents::default());
    assert_eq!(w.op(VCPUOP_STOP_SINGLESHOT_TIMER, 1, 0), Outcome::Return(0));
    assert_eq!(w.op(VCPUOP_STOP_SINGLESHOT_TIMER, 0, 0), ret(Errno::EINVAL));
    w.ev.load_vcpu(&w.dom, 0, parked);
}

/// A test double of the other domains that records the siblings woken.
#[derive(Default)]
struct Woken(std::vec::Vec<(DomainId, u32)>);

impl crate::peers::Peers for Woken {
    fn peer(&self, _: DomainId) -> Option<&crate::domain::Domain> {
        None
    }
    fn endpoint(&self, _: DomainId, _: u32) -> Option<crate::event::interdomain::Endpoint> {
        None
    }
    fn set_endpoint(&mut self, _: DomainId, _: u32, _: crate::event::interdomain::Endpoint) {}
    fn notify(&mut self, _: DomainId, _: u32) -> bool {
        false
    }
    fn wake_vcpu(&mut self, d: DomainId, vcpu: u32) {
        self.0.push((d, vcpu));
    }
}

#[test]
fn a_send_to_a_siblings_port_wakes_that_vcpu_only() {
    let mut w = with_vcpus(3);
    let p2 = w.bind_ipi(2).unwrap();
    let p0 = w.bind_ipi(0).unwrap();
    let id = w.dom.id;
    let mut peers = Woken::default();
    let send = |w: &mut World, port: u32, peers: &mut Woken| {
        let mut b = [0u8; 4];
        EvtchnPort { port }.encode(&mut b);
        w.poke(DATA, &b);
        w.call_with_peers(
            Hypercall::EVENT_CHANNEL_OP,
            [EVTCHNOP_SEND, DATA, 0, 0, 0],
            peers,
        )
    };
    assert_eq!(send(&mut w, p2, &mut peers), Outcome::Return(0));
    assert_eq!(peers.0, [(id, 2)]);
    // The caller's own port: nobody else to wake.
    assert_eq!(send(&mut w, p0, &mut peers), Outcome::Return(0));
    assert_eq!(peers.0, [(id, 2)]);
    // vCPU 2 loaded, sending to vCPU 0's port: vCPU 0 is the sibling now.
    let parked = w.ev.load_vcpu(&w.dom, 2, VcpuEvents::default());
    assert_eq!(send(&mut w, p0, &mut peers), Outcome::Return(0));
    assert_eq!(peers.0, [(id, 2), (id, 0)]);
    w.ev.load_vcpu(&w.dom, 0, parked);
}

/// A copy of the domain's L4 in its last frame (unmapped first, so that it
/// is not writable), pinned: an L4 a vCPU may run on, sharing every L3.
fn pinned_copy_of_base(w: &mut World) -> Mfn {
    use crate::paging::entry::entry_addr;
    use crate::paging::walk::walk;
    let l4 = w.dom.base();
    let last = crate::addr::Pfn::new(w.dom.nr_pages() - 1);
    let va = w.dom.layout().va(last);
    let wk = walk(&w.mem, l4, va, false, |_, _| true).unwrap();
    let ptr = entry_addr(wk.tables[3], va.table_index(1));
    w.dom
        .update_entry(&mut w.mem, ptr, crate::paging::entry::Pte::EMPTY)
        .unwrap();
    let spare = w.dom.mfn_of(&w.mem, last).unwrap();
    for i in 0..512 {
        let e = w.mem.read_u64(entry_addr(l4, i));
        w.mem.write_u64(entry_addr(spare, i), e);
    }
    w.dom.pin(&mut w.mem, spare, Level::L4).unwrap();
    spare
}

/// vCPU 0 switches to another root with a devalidation of the old one left
/// part way (one entry's work a piece); then vCPU 1 is loaded.
fn a_job_of_vcpu_0_part_way(w: &mut World) -> (Mfn, crate::paging::job::Origin) {
    use crate::paging::job::Entries;
    let spare = pinned_copy_of_base(w);
    assert_eq!(w.initialise(1, &context(spare)), Outcome::Return(0));
    assert_eq!(w.op(VCPUOP_UP, 1, 0), Outcome::Yield);
    // Unpinned, the first L4 holds only the base's type reference: leaving
    // it devalidates it, stopped after its first entry.
    let l4 = w.dom.base();
    w.dom.unpin(&mut w.mem, l4).unwrap();
    assert_eq!(
        w.dom.new_baseptr_in(&mut w.mem, spare, &mut Entries(1)),
        None
    );
    let origin = w.dom.mm_job_origin();
    assert_eq!(origin, crate::paging::job::Origin::NewBase(spare));
    assert!(w.dom.load_vcpu(1));
    (spare, origin)
}

#[test]
fn another_vcpus_mmu_request_waits_for_a_job_part_way() {
    use crate::paging::job::Entries;
    let mut w = with_vcpus(2);
    let (spare, origin) = a_job_of_vcpu_0_part_way(&mut w);
    // vCPU 1's MMU hypercalls neither undo nor take vCPU 0's job: each is
    // preempted before its first request, its progress word as it came.
    assert!(w.dom.mm_waits());
    let (l1, _) = {
        use crate::paging::walk::walk;
        let wk = walk(&w.mem, spare, GuestVirt::new(DATA), false, |_, _| true).unwrap();
        (wk.tables[3], ())
    };
    let upd = keel_abi::mmu::MmuUpdate {
        ptr: l1.get() << 12,
        val: w
            .mem
            .read_u64(crate::addr::MachineAddr::new(l1.get() << 12)),
    }
    .encode();
    w.poke(DATA, &upd);
    let o = w.call(Hypercall::MMU_UPDATE, [DATA, 1, 0, DOMID_SELF, 0]);
    assert_eq!(o, Outcome::Preempted(1), "mmu_update");
    let pin = keel_abi::mmu::MmuextOp {
        cmd: keel_abi::mmu::MMUEXT_UNPIN_TABLE,
        pad: 0,
        arg1: spare.get(),
        arg2: 0,
    }
    .encode();
    w.poke(DATA, &pin);
    let o = w.call(Hypercall::MMUEXT_OP, [DATA, 1, 0, DOMID_SELF, 0]);
    assert_eq!(o, Outcome::Preempted(1), "mmuext_op");
    assert_eq!(w.dom.mm_job_origin(), origin, "vCPU 0's job untouched");
    // vCPU 0 goes on with its request and finishes it; vCPU 1's go through.
    assert!(w.dom.load_vcpu(0));
    assert!(!w.dom.mm_waits());
    let mut done = None;
    for _ in 0..1_000 {
        done = w.dom.new_baseptr_in(&mut w.mem, spare, &mut Entries(64));
        if done.is_some() {
            break;
        }
    }
    assert_eq!(done, Some(Ok(())));
    assert!(w.dom.load_vcpu(1));
    assert!(!w.dom.mm_waits());
    assert_eq!(w.dom.unpin(&mut w.mem, spare), Ok(()));
    assert!(w.dom.load_vcpu(0));
    assert_eq!(w.dom.release_mm(&mut w.mem), 0, "every count back to zero");
}

#[test]
fn a_job_whose_vcpu_blocked_or_went_down_is_settled_by_another() {
    for how in ["blocked", "down"] {
        let mut w = with_vcpus(2);
        let (spare, _) = a_job_of_vcpu_0_part_way(&mut w);
        if how == "blocked" {
            w.dom.vcpus.enter_runstate(0, RUNSTATE_BLOCKED, 0);
        } else {
            assert!(w.dom.load_vcpu(0));
            assert_eq!(w.op(VCPUOP_DOWN, 0, 0), Outcome::Yield);
            assert!(w.dom.load_vcpu(1));
        }
        // Nothing waits for a vCPU that may never come back to its request:
        // vCPU 1's request settles the job (finishes the devalidation) and
        // is done.
        assert!(!w.dom.mm_waits(), "{how}");
        assert_eq!(w.dom.unpin(&mut w.mem, spare), Ok(()), "{how}");
        assert_eq!(w.dom.mm_job_origin(), crate::paging::job::Origin::None);
        assert!(w.dom.load_vcpu(0));
        assert_eq!(w.dom.release_mm(&mut w.mem), 0, "{how}: counts");
    }
}

#[test]
fn a_multi_flush_naming_any_vcpu_of_the_domain_flushes() {
    use crate::paging::Flush;
    let mut w = with_vcpus(2);
    let l4 = w.dom.base();
    assert_eq!(w.initialise(1, &context(l4)), Outcome::Return(0));
    assert!(w.dom.load_vcpu(1));
    // vCPU 1 names itself only (bit 1), then a vCPU the domain does not
    // have (bit 2): the first flushes, the second names nothing.
    for (mask, want) in [(2u64, Flush::All), (4, Flush::None)] {
        w.poke(DATA + 0x900, &mask.to_le_bytes());
        let op = keel_abi::mmu::MmuextOp {
            cmd: keel_abi::mmu::MMUEXT_TLB_FLUSH_MULTI,
            pad: 0,
            arg1: 0,
            arg2: DATA + 0x900,
        }
        .encode();
        w.poke(DATA, &op);
        let o = w.call(Hypercall::MMUEXT_OP, [DATA, 1, 0, DOMID_SELF, 0]);
        assert_eq!(o, Outcome::Return(0), "mask {mask:#x}");
        assert_eq!(w.dom.take_flush(), want, "mask {mask:#x}");
    }
    assert!(w.dom.load_vcpu(0));
}
