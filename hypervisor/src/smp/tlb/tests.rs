use super::*;
use crate::addr::GuestVirt;
use proptest::prelude::*;

fn set(cpus: &[usize]) -> CpuSet {
    cpus.iter()
        .fold(CpuSet::EMPTY, |a, &c| a.union(CpuSet::one(c)))
}

#[test]
fn cpu_sets() {
    let s = set(&[0, 3, 63]);
    assert!(s.contains(0) && s.contains(3) && s.contains(63) && !s.contains(1));
    assert_eq!(s.iter().collect::<Vec<_>>(), [0, 3, 63]);
    assert_eq!(CpuSet::one(64), CpuSet::EMPTY);
    assert!(!s.contains(64));
    assert_eq!(s.minus(set(&[3])), set(&[0, 63]));
}

#[test]
fn dirty_masks_follow_runs_and_flushes() {
    let mut m = DirtyMasks::default();
    m.ran(0, 0);
    m.ran(1, 2);
    m.ran(1, 3);
    assert_eq!(m.domain(), set(&[0, 2, 3]));
    assert_eq!(m.of_vcpus(0b10), set(&[2, 3]));
    assert_eq!(m.of_vcpus(1 << 40), CpuSet::EMPTY);
    m.flushed(2);
    assert_eq!(m.of(1), set(&[3]));
    m.ran(MAX_VCPUS, 1);
    assert_eq!(m.domain(), set(&[0, 3]));
}

#[test]
fn a_table_change_reaches_every_cpu_of_the_domain() {
    let mut m = DirtyMasks::default();
    m.ran(0, 0);
    m.ran(1, 1);
    m.ran(2, 3);
    let d = decide(Cause::TableChange(Flush::All), &m, 0, 0);
    assert_eq!(
        d,
        Decision {
            flush: Flush::All,
            local: true,
            remote: set(&[1, 3])
        }
    );
    // Nothing owed: nothing sent.
    let d = decide(Cause::TableChange(Flush::None), &m, 0, 0);
    assert!(!d.local && d.remote.is_empty());
}

#[test]
fn guest_requests_reach_the_vcpus_they_name() {
    let mut m = DirtyMasks::default();
    m.ran(0, 0);
    m.ran(1, 1);
    m.ran(2, 2);
    let va = Flush::Page(GuestVirt::new(0x40_0000));
    // MULTI naming vCPUs 1 and 2, called by vCPU 0 on CPU 0: not local.
    let d = decide(Cause::GuestMulti(va, 0b110), &m, 0, 0);
    assert_eq!((d.flush, d.local, d.remote), (va, false, set(&[1, 2])));
    // MULTI naming the caller: local too.
    let d = decide(Cause::GuestMulti(va, 0b001), &m, 0, 0);
    assert_eq!((d.local, d.remote), (true, CpuSet::EMPTY));
    // LOCAL: only here, whatever the masks say.
    let d = decide(Cause::GuestLocal(Flush::All), &m, 1, 1);
    assert_eq!((d.local, d.remote), (true, CpuSet::EMPTY));
    // ALL: the whole domain.
    let d = decide(Cause::GuestAll(Flush::All), &m, 2, 2);
    assert_eq!((d.local, d.remote), (true, set(&[0, 1])));
}

#[test]
fn the_clock_spares_cpus_that_flushed_since() {
    let mut c = FlushClock::default();
    c.flushed(1);
    let stamp = c.now();
    c.flushed(2);
    assert_eq!(c.stale_since(set(&[0, 1, 2, 3]), stamp), set(&[0, 1, 3]));
    c.flushed(1);
    assert_eq!(c.stale_since(set(&[0, 1, 2, 3]), stamp), set(&[0, 3]));
}

const CPUS: usize = 4;
const VCPUS: usize = 3;
const ENTRIES: usize = 3;

#[derive(Clone, Debug)]
enum Step {
    /// vCPU runs on a CPU and caches every current translation there.
    Run(usize, usize),
    /// A CPU flushes its whole TLB on its own (a CR3 load, a VPID flush).
    Flush(usize),
    /// The hypervisor removes a permission from entry `e`, on CPU `this`
    /// running vCPU `v`; the decision is applied.
    Remove(usize, usize, usize),
    /// Entry `e` loses its permission with the flush deferred: the frame's
    /// stamp is taken, and the clock decides the flush at reuse time.
    RemoveDeferred(usize),
    /// The frames whose flush was deferred are reused.
    Reuse,
    /// The guest's MULTI flush, from vCPU `v` on CPU `this`, naming `mask`.
    GuestMulti(usize, usize, u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..VCPUS, 0..CPUS).prop_map(|(v, c)| Step::Run(v, c)),
        (0..CPUS).prop_map(Step::Flush),
        (0..ENTRIES, 0..CPUS, 0..VCPUS).prop_map(|(e, c, v)| Step::Remove(e, c, v)),
        (0..ENTRIES).prop_map(Step::RemoveDeferred),
        Just(Step::Reuse),
        (0..VCPUS, 0..CPUS, 0u64..(1 << VCPUS)).prop_map(|(v, c, m)| Step::GuestMulti(v, c, m)),
    ]
}

/// The machine: each CPU's cached translations (entry, version, vCPU that
/// loaded it), each entry's current version.
#[derive(Default)]
struct Model {
    tlb: [Vec<(usize, u32, usize)>; CPUS],
    version: [u32; ENTRIES],
    masks: DirtyMasks,
    clock: FlushClock,
    deferred: Vec<(usize, u32, u64)>,
}

impl Model {
    fn flush(&mut self, cpu: usize) {
        self.tlb[cpu].clear();
        self.masks.flushed(cpu);
        self.clock.flushed(cpu);
    }
    fn apply(&mut self, d: Decision, this: usize) {
        if d.local {
            self.flush(this);
        }
        for c in d.remote.iter() {
            self.flush(c);
        }
    }
    fn stale(&self, e: usize, older_than: u32) -> Option<usize> {
        (0..CPUS).find(|&c| {
            self.tlb[c]
                .iter()
                .any(|&(x, ver, _)| x == e && ver < older_than)
        })
    }
}

proptest! {
    /// Whatever ran where, after a permission-removing change and its decided
    /// flushes no CPU holds the old translation; a frame whose flush was
    /// deferred is clean once the clock's CPUs flushed; a guest's MULTI flush
    /// leaves no translation loaded by a vCPU it named.
    #[test]
    fn no_stale_translation_survives_a_decided_flush(steps in proptest::collection::vec(step(), 1..60)) {
        let mut m = Model::default();
        for s in steps {
            match s {
                Step::Run(v, c) => {
                    m.masks.ran(v, c);
                    for e in 0..ENTRIES {
                        let ver = m.version[e];
                        m.tlb[c].push((e, ver, v));
                    }
                }
                Step::Flush(c) => m.flush(c),
                Step::Remove(e, this, v) => {
                    m.version[e] += 1;
                    let d = decide(Cause::TableChange(Flush::All), &m.masks, this, v);
                    m.apply(d, this);
                    prop_assert_eq!(m.stale(e, m.version[e]), None, "entry {} stale after {:?}", e, d);
                }
                Step::RemoveDeferred(e) => {
                    m.version[e] += 1;
                    m.deferred.push((e, m.version[e], m.clock.now()));
                }
                Step::Reuse => {
                    for (e, ver, stamp) in core::mem::take(&mut m.deferred) {
                        let all = (0..CPUS).fold(CpuSet::EMPTY, |a, c| a.union(CpuSet::one(c)));
                        for c in m.clock.stale_since(all, stamp).iter() {
                            m.flush(c);
                        }
                        prop_assert_eq!(m.stale(e, ver), None, "entry {} reused while cached", e);
                    }
                }
                Step::GuestMulti(v, this, mask) => {
                    let d = decide(Cause::GuestMulti(Flush::All, mask), &m.masks, this, v);
                    m.apply(d, this);
                    for c in 0..CPUS {
                        let named = m.tlb[c].iter().any(|&(_, _, by)| mask & (1 << by) != 0);
                        // The caller's own CPU is flushed when the caller is named.
                        prop_assert!(!named, "CPU {} still holds a named vCPU's entry after {:?}", c, d);
                    }
                }
            }
        }
    }
}
