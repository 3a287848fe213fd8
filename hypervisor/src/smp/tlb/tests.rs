use super::*;
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
    assert_eq!(set(&[0, 3, 31, 32]).mask32(), 1 | 1 << 3 | 1 << 31);
}

#[test]
fn the_shootdown_reaches_the_domains_other_cpus_only() {
    let p = placed(1, [3, 3, 2]);
    assert_eq!(p, set(&[1, 2, 3]));
    assert_eq!(shootdown(p, 1), set(&[2, 3]), "from the home CPU");
    assert_eq!(shootdown(p, 3), set(&[1, 2]), "from a remote vCPU's CPU");
    assert_eq!(shootdown(placed(0, []), 0), CpuSet::EMPTY, "one CPU");
    // A CPU outside the placement (running other domains) asks them all.
    assert_eq!(shootdown(p, 0), p);
}

#[test]
fn the_epoch_flushes_once_per_change() {
    let mut seen = 0;
    assert!(!due(0, &mut seen));
    assert!(due(2, &mut seen));
    assert_eq!(seen, 2);
    assert!(!due(2, &mut seen));
}

const CPUS: usize = 4;
const VCPUS: usize = 3;
const ENTRIES: usize = 3;

#[derive(Clone, Copy, Debug)]
enum Step {
    /// vCPU `v` enters its guest on its CPU (which leaves whatever vCPU it
    /// ran) and caches every current translation there.
    Enter(usize),
    /// CPU `c` leaves its guest (an exit, a block, another domain's turn).
    Exit(usize),
    /// vCPU `v`, in an exit on its CPU, removes a permission from entry `e`.
    Change(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..VCPUS).prop_map(Step::Enter),
        (0..CPUS).prop_map(Step::Exit),
        (0..VCPUS, 0..ENTRIES).prop_map(|(v, e)| Step::Change(v, e)),
    ]
}

/// One domain on a machine of [`CPUS`]: where each vCPU is placed, each
/// CPU's cached translations (entry, version, vCPU tag: its VPID), which
/// vCPU each CPU is in, what epoch each CPU last flushed each vCPU at.
struct Model {
    place: [usize; VCPUS],
    tlb: [Vec<(usize, u32, usize)>; CPUS],
    version: [u32; ENTRIES],
    epoch: u64,
    seen: [[u64; VCPUS]; CPUS],
    in_guest: [Option<usize>; CPUS],
    targets: fn(CpuSet, usize) -> CpuSet,
}

impl Model {
    fn new(place: [usize; VCPUS], targets: fn(CpuSet, usize) -> CpuSet) -> Model {
        Model {
            place,
            tlb: Default::default(),
            version: [0; ENTRIES],
            epoch: 0,
            seen: [[0; VCPUS]; CPUS],
            in_guest: [None; CPUS],
            targets,
        }
    }

    fn apply(&mut self, s: Step) {
        match s {
            Step::Enter(v) => {
                let c = self.place[v];
                if due(self.epoch, &mut self.seen[c][v]) {
                    self.tlb[c].retain(|&(_, _, tag)| tag != v);
                }
                self.in_guest[c] = Some(v);
                for e in 0..ENTRIES {
                    let ver = self.version[e];
                    self.tlb[c].push((e, ver, v));
                }
            }
            Step::Exit(c) => self.in_guest[c] = None,
            Step::Change(v, e) => {
                let this = self.place[v];
                // The change is made in an exit of `v` on its CPU.
                self.in_guest[this] = None;
                self.version[e] += 1;
                self.epoch += 1;
                let placed = placed(self.place[0], self.place[1..].iter().copied());
                for c in (self.targets)(placed, this).iter() {
                    // Asked to lend: it leaves its guest until the change
                    // is complete.
                    if let Some(x) = self.in_guest.get_mut(c) {
                        *x = None;
                    }
                }
            }
        }
    }

    /// A CPU in a vCPU that can use a translation older than a completed
    /// change: (CPU, vCPU, entry).
    fn stale(&self) -> Option<(usize, usize, usize)> {
        (0..CPUS).find_map(|c| {
            let v = self.in_guest[c]?;
            self.tlb[c]
                .iter()
                .find(|&&(e, ver, tag)| tag == v && ver < self.version[e])
                .map(|&(e, _, _)| (c, v, e))
        })
    }
}

fn placement() -> impl Strategy<Value = [usize; VCPUS]> {
    // vCPU 0 runs on the home CPU; the others on it or on a CPU of their own.
    (0..CPUS, 0..CPUS, 0..CPUS).prop_map(|(h, a, b)| [h, a, b])
}

proptest! {
    /// Whatever ran where, no vCPU runs with a translation older than a
    /// change that completed: the shootdown set, the epoch and the flush
    /// before entry together leave nothing stale.
    #[test]
    fn no_vcpu_runs_with_a_stale_translation(
        place in placement(),
        steps in proptest::collection::vec(step(), 1..80),
    ) {
        let mut m = Model::new(place, shootdown);
        for s in steps {
            m.apply(s);
            prop_assert_eq!(m.stale(), None, "after {:?} (placement {:?})", s, place);
        }
    }
}

/// The model catches a shootdown that misses a CPU of the domain: the
/// home CPU's change reaches only itself while vCPU 1 runs on CPU 1.
#[test]
fn a_missed_cpu_is_caught() {
    let mut m = Model::new([0, 1, 0], |_, _| CpuSet::EMPTY);
    for s in [Step::Enter(1), Step::Enter(0), Step::Change(0, 2)] {
        m.apply(s);
    }
    assert_eq!(m.stale(), Some((1, 1, 2)));
    // With the shootdown, CPU 1 left its guest and flushes on entry.
    let mut m = Model::new([0, 1, 0], shootdown);
    for s in [
        Step::Enter(1),
        Step::Enter(0),
        Step::Change(0, 2),
        Step::Enter(1),
    ] {
        m.apply(s);
        assert_eq!(m.stale(), None);
    }
    // Without the flush before entry the shootdown is not enough: the
    // epoch is what makes CPU 1 drop the entry when it enters again.
    let mut m = Model::new([0, 1, 0], shootdown);
    for s in [Step::Enter(1), Step::Change(1, 0)] {
        m.apply(s);
    }
    m.seen[1][1] = m.epoch;
    m.apply(Step::Enter(1));
    assert_eq!(m.stale(), Some((1, 1, 0)));
}
