use super::*;
use keel_abi::event::{DOMID_SELF, EVTCHNSTAT_UNBOUND, VIRQ_CONSOLE};
use proptest::prelude::*;
use std::vec::Vec;

/// `shared_info` bits as plain memory, recording the order of publication.
pub struct Bits {
    pub pending: [u64; 64],
    pub mask: [u64; 64],
    /// vCPU 0's selector and upcall flag (the vCPU the bits are opened for).
    pub sel: u64,
    pub upcall_pending: bool,
    pub upcall_mask: bool,
    /// The other vCPUs' selectors and upcall flags (index: vCPU; entry 0
    /// unused).
    pub vsel: [u64; MAX_VCPUS],
    pub vupcall: [bool; MAX_VCPUS],
    pub log: Vec<&'static str>,
}

impl Default for Bits {
    fn default() -> Self {
        Bits {
            pending: [0; 64],
            mask: [0; 64],
            sel: 0,
            upcall_pending: false,
            upcall_mask: false,
            vsel: [0; MAX_VCPUS],
            vupcall: [false; MAX_VCPUS],
            log: Vec::new(),
        }
    }
}

impl EventBits for Bits {
    fn test_and_set_pending(&mut self, p: u32) -> bool {
        let (w, m) = ((p / 64) as usize, 1u64 << (p % 64));
        let was = self.pending[w] & m != 0;
        self.pending[w] |= m;
        self.log.push("pending");
        was
    }
    fn clear_pending(&mut self, p: u32) {
        self.pending[(p / 64) as usize] &= !(1u64 << (p % 64));
    }
    fn is_pending(&self, p: u32) -> bool {
        self.pending[(p / 64) as usize] & (1u64 << (p % 64)) != 0
    }
    fn is_masked(&self, p: u32) -> bool {
        self.mask[(p / 64) as usize] & (1u64 << (p % 64)) != 0
    }
    fn test_and_clear_mask(&mut self, p: u32) -> bool {
        let (w, m) = ((p / 64) as usize, 1u64 << (p % 64));
        let was = self.mask[w] & m != 0;
        self.mask[w] &= !m;
        was
    }
    fn test_and_set_sel(&mut self, vcpu: u32, w: u32) -> bool {
        let sel = match vcpu {
            0 => &mut self.sel,
            v => &mut self.vsel[v as usize],
        };
        let was = *sel & (1 << w) != 0;
        *sel |= 1 << w;
        self.log.push("sel");
        was
    }
    fn set_upcall_pending(&mut self, vcpu: u32) {
        match vcpu {
            0 => self.upcall_pending = true,
            v => self.vupcall[v as usize] = true,
        }
        self.log.push("upcall");
    }
    fn upcall_pending(&self) -> bool {
        self.upcall_pending
    }
    fn upcall_mask(&self) -> bool {
        self.upcall_mask
    }
    fn set_upcall_mask(&mut self, m: bool) {
        self.upcall_mask = m;
    }
}

impl Bits {
    /// What a guest upcall handler does: clear upcall_pending, take sel, take and
    /// clear the pending, unmasked bits; returns the ports seen.
    fn guest_drain(&mut self) -> Vec<u32> {
        self.guest_drain_on(0)
    }

    /// [`Self::guest_drain`] as vCPU `v`'s upcall handler does it (its own
    /// selector; the pending bits are the domain's).
    fn guest_drain_on(&mut self, v: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let sel = if v == 0 {
            self.upcall_pending = false;
            core::mem::take(&mut self.sel)
        } else {
            self.vupcall[v] = false;
            core::mem::take(&mut self.vsel[v])
        };
        for w in 0..64u32 {
            if sel & (1 << w) == 0 {
                continue;
            }
            let bits = self.pending[w as usize] & !self.mask[w as usize];
            self.pending[w as usize] &= !bits;
            for b in 0..64 {
                if bits & (1 << b) != 0 {
                    out.push(w * 64 + b);
                }
            }
        }
        out
    }
}

#[test]
fn order_is_pending_sel_upcall() {
    let mut b = Bits::default();
    let mut c = Channels::new(1);
    let p = c.bind_ipi(0, &mut b).unwrap();
    assert_eq!(p, 1, "port 0 is reserved");
    b.log.clear();
    assert_eq!(c.send(p, &mut b), Ok(true));
    assert_eq!(b.log, ["pending", "sel", "upcall"]);
    // Already pending: nothing more is published.
    b.log.clear();
    assert_eq!(c.send(p, &mut b), Ok(false));
    assert_eq!(b.log, ["pending"]);
}

#[test]
fn masked_then_unmask_delivers_once() {
    let mut b = Bits::default();
    let mut c = Channels::new(1);
    let p = c.bind_ipi(0, &mut b).unwrap();
    b.mask[0] |= 1 << p;
    assert_eq!(c.send(p, &mut b), Ok(false));
    assert_eq!(c.send(p, &mut b), Ok(false));
    assert!(!b.upcall_pending && b.sel == 0 && b.is_pending(p));
    assert_eq!(c.unmask(p, &mut b), Ok(true));
    assert_eq!(b.guest_drain(), [p]);
    assert_eq!(c.unmask(p, &mut b), Ok(false));
    assert!(b.guest_drain().is_empty());
}

#[test]
fn xen_error_codes() {
    let mut b = Bits::default();
    let mut c = Channels::new(1);
    assert_eq!(c.close(0, &mut b), Err(Errno::EINVAL), "reserved port");
    assert_eq!(c.close(5, &mut b), Err(Errno::EINVAL), "free port");
    assert_eq!(c.close(NR_PORTS as u32, &mut b), Err(Errno::EINVAL));
    assert_eq!(c.send(u32::MAX, &mut b), Err(Errno::EINVAL));
    assert_eq!(c.unmask(NR_PORTS as u32, &mut b), Err(Errno::EINVAL));
    assert_eq!(c.status(NR_PORTS as u32), Err(Errno::EINVAL));
    assert_eq!(c.bind_virq(NR_VIRQS, 0, &mut b), Err(Errno::EINVAL));
    assert_eq!(
        c.bind_virq(VIRQ_CONSOLE, 1, &mut b),
        Err(Errno::EINVAL),
        "global on vcpu 1"
    );
    assert_eq!(c.bind_virq(VIRQ_TIMER, 1, &mut b), Err(Errno::ENOENT));
    assert_eq!(c.bind_ipi(3, &mut b), Err(Errno::ENOENT));
    assert_eq!(c.alloc_unbound(7, DOMID_SELF, &mut b), Err(Errno::ESRCH));
    assert_eq!(c.alloc_unbound(DOMID_SELF, 9, &mut b), Err(Errno::ESRCH));
    let t = c.bind_virq(VIRQ_TIMER, 0, &mut b).unwrap();
    assert_eq!(c.bind_virq(VIRQ_TIMER, 0, &mut b), Err(Errno::EEXIST));
    assert_eq!(c.send(t, &mut b), Err(Errno::EINVAL), "send on a VIRQ port");
    assert_eq!(c.bind_vcpu(t, 0), Err(Errno::EINVAL), "per-vCPU VIRQ");
    let con = c.bind_virq(VIRQ_CONSOLE, 0, &mut b).unwrap();
    assert_eq!(c.bind_vcpu(con, 0), Ok(()));
    assert_eq!(c.bind_vcpu(con, 1), Err(Errno::ENOENT));
    let i = c.bind_ipi(0, &mut b).unwrap();
    assert_eq!(c.bind_vcpu(i, 0), Err(Errno::EINVAL));
    let u = c.alloc_unbound(DOMID_SELF, 1, &mut b).unwrap();
    assert_eq!(c.send(u, &mut b), Ok(false), "unbound: dropped");
    assert_eq!(
        c.status(u),
        Ok(Status {
            status: EVTCHNSTAT_UNBOUND,
            vcpu: 0,
            u: 1
        })
    );
    assert_eq!(c.status(t).map(|s| s.u), Ok(VIRQ_TIMER));
    assert_eq!(c.status(0).map(|s| s.status), Ok(EVTCHNSTAT_CLOSED));
    // Close frees the VIRQ for rebinding and the port for reuse.
    c.close(t, &mut b).unwrap();
    assert_eq!(c.bind_virq(VIRQ_TIMER, 0, &mut b), Ok(t));
    // Exhaustion.
    let mut n = 0;
    while c.bind_ipi(0, &mut b).is_ok() {
        n += 1;
    }
    assert_eq!(c.bind_ipi(0, &mut b), Err(Errno::ENOSPC));
    assert_eq!(n + 4, NR_PORTS - 1);
}

#[test]
fn raise_virq_only_when_bound() {
    let mut b = Bits::default();
    let mut c = Channels::new(1);
    assert!(!c.raise_virq(VIRQ_TIMER, &mut b));
    let p = c.bind_virq(VIRQ_TIMER, 0, &mut b).unwrap();
    assert!(c.raise_virq(VIRQ_TIMER, &mut b));
    assert_eq!(b.guest_drain(), [p]);
}

#[derive(Clone, Debug)]
enum Op {
    Send(usize),
    Mask(usize),
    Unmask(usize),
    Drain,
    Close(usize),
    Bind,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..8).prop_map(Op::Send),
        1 => (0usize..8).prop_map(Op::Mask),
        2 => (0usize..8).prop_map(Op::Unmask),
        2 => Just(Op::Drain),
        1 => (0usize..8).prop_map(Op::Close),
        1 => Just(Op::Bind),
    ]
}

proptest! {
    /// Against a model: every send on an open IPI port is seen by the guest
    /// exactly once per "pending episode" (never lost while masked, never
    /// duplicated), the upcall flag is raised whenever an unmasked port is
    /// pending and undelivered, and nothing is delivered while masked.
    #[test]
    fn no_loss_no_duplicates(ops in proptest::collection::vec(op(), 1..200)) {
        let mut b = Bits::default();
        let mut c = Channels::new(1);
        let mut open: Vec<u32> = (0..8).map(|_| c.bind_ipi(0, &mut b).unwrap()).collect();
        // Model: per port, pending-and-not-yet-seen.
        let mut owed = std::collections::BTreeSet::new();
        for o in ops {
            match o {
                Op::Send(i) => {
                    if let Some(&p) = open.get(i) {
                        if p != 0 {
                            c.send(p, &mut b).unwrap();
                            owed.insert(p);
                        }
                    }
                }
                Op::Mask(i) => if let Some(&p) = open.get(i) { b.mask[(p / 64) as usize] |= 1 << (p % 64); },
                Op::Unmask(i) => if let Some(&p) = open.get(i) { if p != 0 { c.unmask(p, &mut b).unwrap(); } },
                Op::Drain => {
                    for p in b.guest_drain() {
                        prop_assert!(owed.remove(&p), "port {} delivered twice or never sent", p);
                        prop_assert!(!b.is_masked(p));
                    }
                }
                Op::Close(i) => if let Some(p) = open.get_mut(i) {
                    if *p != 0 {
                        c.close(*p, &mut b).unwrap();
                        owed.remove(p);
                        *p = 0;
                    }
                },
                Op::Bind => {
                    if let Some(slot) = open.iter_mut().find(|p| **p == 0) {
                        *slot = c.bind_ipi(0, &mut b).unwrap();
                    }
                }
            }
            // Every owed, unmasked port is announced: upcall pending with its word selected.
            for &p in &owed {
                prop_assert!(b.is_pending(p));
                if !b.is_masked(p) {
                    prop_assert!(b.upcall_pending && b.sel & (1 << (p / 64)) != 0, "port {} undelivered", p);
                }
            }
        }
        // Unmask everything and drain: everything owed arrives exactly once.
        for &p in open.iter().filter(|p| **p != 0) {
            c.unmask(p, &mut b).unwrap();
        }
        for p in b.guest_drain() {
            prop_assert!(owed.remove(&p));
        }
        prop_assert!(owed.is_empty(), "lost: {:?}", owed);
    }
}

#[test]
fn injection_rule() {
    use UpcallAction::*;
    for ifl in [false, true] {
        for shadow in [false, true] {
            for busy in [false, true] {
                let want = if ifl && !shadow && !busy {
                    Inject
                } else {
                    WaitForWindow
                };
                assert_eq!(upcall_action(ifl, shadow, busy), want);
            }
        }
    }
}

/// The shared page's bits land where Xen's layout puts them.
#[test]
fn shared_page_offsets_are_xens() {
    use crate::addr::{MachineAddr, Mfn};
    use crate::mem::fake::FakeMem;
    use crate::mem::PhysMem;
    let mut mem = FakeMem::default();
    let mfn = Mfn::new(0x42);
    let base = mfn.addr().get();
    {
        let mut p = SharedPage::new(&mut mem, mfn);
        let mut c = Channels::new(1);
        for _ in 0..65 {
            c.bind_ipi(0, &mut p).unwrap();
        }
        // Port 65: word 1, bit 1.
        assert_eq!(c.send(65, &mut p), Ok(true));
        p.set_upcall_mask(true);
    }
    let rd = |off: u64| mem.read_u64(MachineAddr::new(base + off));
    assert_eq!(rd(2048 + 8), 1 << 1, "evtchn_pending[1]");
    assert_eq!(rd(8), 1 << 1, "vcpu_info[0].evtchn_pending_sel");
    let mut b = [0u8; 2];
    mem.read(MachineAddr::new(base), &mut b);
    assert_eq!(b, [1, 1], "evtchn_upcall_pending, evtchn_upcall_mask");
    // Masking is the guest's write to evtchn_mask[1]; unmask clears it.
    mem.write_u64(MachineAddr::new(base + 2560 + 8), 1 << 2);
    let mut p = SharedPage::new(&mut mem, mfn);
    assert!(p.is_masked(66));
    let mut c = Channels::new(1);
    for _ in 0..66 {
        c.bind_ipi(0, &mut p).unwrap();
    }
    assert_eq!(c.send(66, &mut p), Ok(false), "masked: no new upcall");
    assert_eq!(
        c.unmask(66, &mut p),
        Ok(false),
        "selector word 1 already set"
    );
    assert!(!p.is_masked(66));
    // The pvclock record's version protocol: even after a publish.
    let t = crate::time::Clock::new(7, 2_000_000).time_info();
    p.publish_time(&t);
    let v1 = p.time_info().version;
    p.publish_time(&t);
    let v2 = p.time_info().version;
    assert!(v1.is_multiple_of(2) && v2 == v1 + 2);
    assert_eq!(p.time_info().tsc_timestamp, 7);
}

/// Whether vCPU `v` is told about port `p`: its upcall flag and its selector
/// bit for `p`'s word.
fn announced(b: &Bits, v: u32, p: u32) -> bool {
    let w = 1u64 << (p / 64);
    match v {
        0 => b.upcall_pending && b.sel & w != 0,
        v => b.vupcall[v as usize] && b.vsel[v as usize] & w != 0,
    }
}

#[test]
fn ports_notify_their_vcpu() {
    let mut b = Bits::default();
    let mut c = Channels::new(1);
    assert_eq!(c.bind_ipi(1, &mut b), Err(Errno::ENOENT), "one vCPU");
    c.set_vcpus(3);
    assert_eq!(c.nr_vcpus(), 3);
    assert_eq!(
        c.bind_ipi(3, &mut b),
        Err(Errno::ENOENT),
        "beyond the count"
    );
    let p1 = c.bind_ipi(1, &mut b).unwrap();
    let p2 = c.bind_ipi(2, &mut b).unwrap();
    assert_eq!(c.status(p1).unwrap().vcpu, 1);
    assert_eq!(c.send(p1, &mut b), Ok(true));
    assert!(announced(&b, 1, p1));
    assert!(!b.upcall_pending && b.sel == 0, "vCPU 0 is not told");
    assert!(!b.vupcall[2], "nor vCPU 2");
    // vCPU 1's flag is already up: a second port for it raises nothing new.
    let q1 = c.bind_ipi(1, &mut b).unwrap();
    assert_eq!(c.send(q1, &mut b), Ok(false));
    assert_eq!(c.send(p2, &mut b), Ok(true));
    assert!(announced(&b, 2, p2));
    let mut seen = b.guest_drain_on(1);
    seen.sort_unstable();
    // vCPU 1 scans the word it was told about: the ports pending there,
    // whichever vCPU they notify (Xen's 2-level scan).
    assert_eq!(seen, [p1, p2, q1]);
    // Masked, then unmasked: the upcall goes to the port's vCPU.
    b.mask[(p2 / 64) as usize] |= 1 << (p2 % 64);
    b.vsel[2] = 0;
    b.vupcall[2] = false;
    assert_eq!(c.send(p2, &mut b), Ok(false));
    assert!(!b.vupcall[2]);
    assert_eq!(c.unmask(p2, &mut b), Ok(true));
    assert!(announced(&b, 2, p2));
    assert!(!b.upcall_pending && !b.vupcall[1]);
}

#[test]
fn per_vcpu_virqs_and_bind_vcpu() {
    let mut b = Bits::default();
    let mut c = Channels::new(1);
    c.set_vcpus(2);
    // Each vCPU binds its own VIRQ_TIMER.
    let t0 = c.bind_virq(VIRQ_TIMER, 0, &mut b).unwrap();
    let t1 = c.bind_virq(VIRQ_TIMER, 1, &mut b).unwrap();
    assert_ne!(t0, t1);
    assert_eq!(c.bind_virq(VIRQ_TIMER, 1, &mut b), Err(Errno::EEXIST));
    assert_eq!(c.bind_virq(VIRQ_TIMER, 2, &mut b), Err(Errno::ENOENT));
    assert!(c.raise_vcpu_virq(VIRQ_TIMER, 1, &mut b));
    assert!(announced(&b, 1, t1) && !b.is_pending(t0));
    assert!(c.raise_vcpu_virq(VIRQ_TIMER, 0, &mut b));
    assert!(announced(&b, 0, t0));
    assert_eq!(c.bind_vcpu(t1, 0), Err(Errno::EINVAL), "per-vCPU VIRQ");
    // A global VIRQ: bound on vCPU 0, moved to vCPU 1, raised there.
    assert_eq!(c.bind_virq(VIRQ_CONSOLE, 1, &mut b), Err(Errno::EINVAL));
    let con = c.bind_virq(VIRQ_CONSOLE, 0, &mut b).unwrap();
    assert_eq!(c.bind_vcpu(con, 2), Err(Errno::ENOENT));
    assert_eq!(c.bind_vcpu(con, 1), Ok(()));
    b.vsel[1] = 0;
    b.vupcall[1] = false;
    assert!(c.raise_virq(VIRQ_CONSOLE, &mut b));
    assert!(announced(&b, 1, con));
    // Closed, its binding goes wherever it notified from; bound again.
    c.close(con, &mut b).unwrap();
    assert!(!c.raise_virq(VIRQ_CONSOLE, &mut b));
    c.close(t1, &mut b).unwrap();
    assert!(!c.raise_vcpu_virq(VIRQ_TIMER, 1, &mut b));
    assert!(c.bind_virq(VIRQ_CONSOLE, 0, &mut b).is_ok());
    assert!(c.bind_virq(VIRQ_TIMER, 1, &mut b).is_ok());
}

proptest! {
    /// Several vCPUs: ports bound to random vCPUs, sends, masks, unmasks and
    /// each vCPU's upcall handler in any order. Every owed, unmasked port is
    /// announced to its notify vCPU (upcall flag and selector word), and
    /// every send is seen exactly once by some vCPU's scan.
    #[test]
    fn several_vcpus_no_loss_no_duplicates(
        vcpus in proptest::collection::vec(0u32..4, 8),
        ops in proptest::collection::vec((op(), 0usize..4), 1..200),
    ) {
        let mut b = Bits::default();
        let mut c = Channels::new(1);
        c.set_vcpus(4);
        let mut open: Vec<(u32, u32)> = vcpus
            .iter()
            .map(|&v| (c.bind_ipi(v, &mut b).unwrap(), v))
            .collect();
        let mut owed = std::collections::BTreeSet::new();
        for (o, who) in ops {
            match o {
                Op::Send(i) => if let Some(&(p, _)) = open.get(i) {
                    if p != 0 {
                        c.send(p, &mut b).unwrap();
                        owed.insert(p);
                    }
                },
                Op::Mask(i) => if let Some(&(p, _)) = open.get(i) { b.mask[(p / 64) as usize] |= 1 << (p % 64); },
                Op::Unmask(i) => if let Some(&(p, _)) = open.get(i) { if p != 0 { c.unmask(p, &mut b).unwrap(); } },
                Op::Drain => {
                    for p in b.guest_drain_on(who) {
                        prop_assert!(owed.remove(&p), "port {} delivered twice or never sent", p);
                    }
                }
                Op::Close(i) => if let Some(e) = open.get_mut(i) {
                    if e.0 != 0 {
                        c.close(e.0, &mut b).unwrap();
                        owed.remove(&e.0);
                        e.0 = 0;
                    }
                },
                Op::Bind => {
                    if let Some(e) = open.iter_mut().find(|e| e.0 == 0) {
                        *e = (c.bind_ipi(who as u32, &mut b).unwrap(), who as u32);
                    }
                }
            }
            for &(p, v) in open.iter().filter(|e| e.0 != 0) {
                prop_assert_eq!(c.notify_vcpu(p), v);
                if owed.contains(&p) && !b.is_masked(p) {
                    prop_assert!(announced(&b, v, p), "port {} not announced to vCPU {}", p, v);
                }
            }
        }
    }
}

#[test]
fn another_vcpus_event_goes_to_its_vcpu_info() {
    use crate::addr::{MachineAddr, Mfn};
    use crate::mem::fake::FakeMem;
    use crate::mem::PhysMem;
    use keel_abi::time::offsets;
    let mut mem = FakeMem::default();
    let mfn = Mfn::new(0x42);
    let base = mfn.addr().get();
    let port;
    {
        let mut p = SharedPage::new(&mut mem, mfn);
        let mut c = Channels::new(1);
        c.set_vcpus(3);
        port = c.bind_ipi(2, &mut p).unwrap();
        assert_eq!(c.send(port, &mut p), Ok(true));
        assert!(!p.upcall_pending(), "the page is opened for vCPU 0");
    }
    let rd8 = |mem: &FakeMem, off: usize| {
        let mut b = [0u8; 1];
        mem.read(MachineAddr::new(base + off as u64), &mut b);
        b[0]
    };
    assert_eq!(rd8(&mem, offsets::upcall_pending(2)), 1);
    assert_eq!(
        mem.read_u64(MachineAddr::new(base + offsets::pending_sel(2) as u64)),
        1 << (port / 64)
    );
    assert_eq!(rd8(&mem, offsets::upcall_pending(0)), 0);
    assert_eq!(rd8(&mem, offsets::upcall_pending(1)), 0);
}
