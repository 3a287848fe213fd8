//! # The scheduler: weighted round robin, one CPU, one vCPU per domain
//!
//! The policy (documented for guests in `docs/abi/sched.md`):
//!
//! - **Run queue**: the runnable vCPUs in FIFO order; the one at the head runs
//!   next. A vCPU that is preempted, yields or wakes goes to the tail.
//! - **Time slices proportional to weight**: a vCPU runs for
//!   `quantum * weight / DEFAULT_WEIGHT` (at least `quantum / 16`) before it
//!   is preempted, if another vCPU is runnable (the hypervisor arms the VMX
//!   preemption timer or the APIC timer for [`Next::Run::until`]). A vCPU
//!   alone on the CPU has no slice ([`UNBOUNDED`]: no timer, no exit); its
//!   slice starts when another becomes runnable ([`Scheduler::rearm`]). Over any
//!   stretch of time in which a set of vCPUs stays runnable, each gets CPU time
//!   in proportion to its weight, to within one slice each.
//! - **No starvation**: a runnable vCPU waits at most the sum of the slices of
//!   the vCPUs ahead of it, one each, so a domain that spins delays another
//!   by at most its own slice per round.
//! - **Block and poll** (`SCHEDOP_block`, `SCHEDOP_poll`, HLT): the vCPU
//!   leaves the queue until the event code wakes it ([`Scheduler::wake`], when
//!   it raises an upcall or a polled port becomes pending) or its deadline
//!   passes (the poll timeout or its timer), whichever comes first.
//! - **Yield** (`SCHEDOP_yield`): the vCPU gives up the rest of its slice and
//!   goes to the tail; with nobody else runnable it continues at once.
//! - **Pause** (the control domain's `XEN_DOMCTL_pausedomain`): a paused vCPU
//!   is never picked, whatever else it is doing; pauses nest.
//! - **Idle**: when no vCPU is runnable, [`Next::Idle`] says until when the CPU
//!   may halt (the earliest deadline), and the hypervisor executes HLT.
//!
//! **Cost**: every operation is O(1) except those that add or remove a
//! deadline (O(log n), a binary heap indexed by domain); a domain switch with
//! no deadline due does the same steps whether 2, 8 or 32 domains exist (the
//! host test counts them). Nothing allocates: the state is fixed arrays sized
//! by the number of domain slots `N`.

pub mod slots;

#[cfg(test)]
mod tests;

use crate::domain::DomainId;

/// The weight of a domain that asks for nothing else (Xen credit's default).
pub const DEFAULT_WEIGHT: u16 = 256;
/// The end of a slice that has none: the vCPU on the CPU is alone (nothing
/// else runnable), so no timer needs to end its run, and none is armed.
/// A vCPU that becomes runnable meanwhile gives it a slice from then
/// ([`Scheduler::rearm`], or the next [`Scheduler::schedule`]).
pub const UNBOUNDED: u64 = u64::MAX;

/// The default quantum: a default-weight vCPU's slice, in nanoseconds.
pub const DEFAULT_QUANTUM_NS: u64 = 1_000_000;

const NIL: u16 = u16::MAX;

/// Where a vCPU is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No domain in this slot (or it ended).
    Offline,
    /// In the run queue.
    Runnable,
    /// On the CPU.
    Running,
    /// Waiting for an event or its deadline.
    Blocked,
}

/// One vCPU's scheduling state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vcpu {
    /// Where it is.
    pub state: State,
    /// Its weight (1 ..= u16::MAX).
    pub weight: u16,
    /// How many pauses are in force (the vCPU runs only at 0).
    pub pauses: u16,
    /// CPU time used, in nanoseconds.
    pub cpu_time: u64,
    next: u16,
    prev: u16,
    queued: bool,
}

impl Vcpu {
    const OFFLINE: Vcpu = Vcpu {
        state: State::Offline,
        weight: DEFAULT_WEIGHT,
        pauses: 0,
        cpu_time: 0,
        next: NIL,
        prev: NIL,
        queued: false,
    };
}

/// What the CPU does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run `dom` until `until` (system time, ns), then call
    /// [`Scheduler::schedule`] again.
    Run {
        /// The domain to run.
        dom: DomainId,
        /// When its slice ends or a deadline falls due, whichever is first;
        /// [`UNBOUNDED`] when it is alone with no deadline: nothing to arm
        /// ([`Scheduler::rearm`] gives it a slice when another wakes).
        until: u64,
    },
    /// Nothing is runnable: halt until an interrupt, or until `until`.
    Idle {
        /// The earliest deadline of a blocked vCPU, if any.
        until: Option<u64>,
    },
}

/// Deadlines of blocked vCPUs: a binary min-heap of domain slots, with each
/// slot's position so that a deadline can be removed when the vCPU wakes.
#[derive(Clone, Debug)]
struct Deadlines<const N: usize> {
    heap: [u16; N],
    pos: [u16; N],
    key: [u64; N],
    len: usize,
}

impl<const N: usize> Deadlines<N> {
    const fn new() -> Self {
        Deadlines {
            heap: [NIL; N],
            pos: [NIL; N],
            key: [0; N],
            len: 0,
        }
    }
    fn key_at(&self, i: usize) -> u64 {
        self.heap
            .get(i)
            .and_then(|&d| self.key.get(usize::from(d)))
            .copied()
            .unwrap_or(u64::MAX)
    }
    fn swap(&mut self, i: usize, j: usize) {
        self.heap.swap(i, j);
        for k in [i, j] {
            if let Some(&d) = self.heap.get(k) {
                if let Some(p) = self.pos.get_mut(usize::from(d)) {
                    *p = k as u16;
                }
            }
        }
    }
    fn up(&mut self, mut i: usize, steps: &mut u64) {
        while i > 0 {
            *steps += 1;
            let parent = (i - 1) / 2;
            if self.key_at(parent) <= self.key_at(i) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }
    fn down(&mut self, mut i: usize, steps: &mut u64) {
        loop {
            *steps += 1;
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < self.len && self.key_at(l) < self.key_at(m) {
                m = l;
            }
            if r < self.len && self.key_at(r) < self.key_at(m) {
                m = r;
            }
            if m == i {
                break;
            }
            self.swap(i, m);
            i = m;
        }
    }
    fn insert(&mut self, d: u16, at: u64, steps: &mut u64) {
        self.remove(d, steps);
        let (Some(k), Some(slot)) = (
            self.key.get_mut(usize::from(d)),
            self.heap.get_mut(self.len),
        ) else {
            return;
        };
        *k = at;
        *slot = d;
        if let Some(p) = self.pos.get_mut(usize::from(d)) {
            *p = self.len as u16;
        }
        self.len += 1;
        self.up(self.len - 1, steps);
    }
    fn remove(&mut self, d: u16, steps: &mut u64) {
        let Some(&p) = self.pos.get(usize::from(d)) else {
            return;
        };
        if p == NIL {
            return;
        }
        let i = usize::from(p);
        let last = self.len - 1;
        self.swap(i, last);
        self.len = last;
        if let Some(q) = self.pos.get_mut(usize::from(d)) {
            *q = NIL;
        }
        if i < self.len {
            self.down(i, steps);
            self.up(i, steps);
        }
    }
    fn peek(&self) -> Option<(u16, u64)> {
        if self.len == 0 {
            return None;
        }
        let d = *self.heap.first()?;
        Some((d, self.key_at(0)))
    }
}

/// The scheduler of one CPU for up to `N` domains (domain id = slot).
#[derive(Clone, Debug)]
pub struct Scheduler<const N: usize> {
    vcpus: [Vcpu; N],
    head: u16,
    tail: u16,
    current: u16,
    slice_start: u64,
    slice_end: u64,
    quantum: u64,
    deadlines: Deadlines<N>,
    steps: u64,
}

impl<const N: usize> Default for Scheduler<N> {
    fn default() -> Self {
        Self::new(DEFAULT_QUANTUM_NS)
    }
}

impl<const N: usize> Scheduler<N> {
    const FITS: () = assert!(N < NIL as usize);

    /// No domains; a default-weight slice of `quantum` nanoseconds.
    pub const fn new(quantum: u64) -> Self {
        let () = Self::FITS;
        Scheduler {
            vcpus: [Vcpu::OFFLINE; N],
            head: NIL,
            tail: NIL,
            current: NIL,
            slice_start: 0,
            slice_end: 0,
            quantum,
            deadlines: Deadlines::new(),
            steps: 0,
        }
    }

    /// The vCPU of `d`.
    pub fn vcpu(&self, d: DomainId) -> Option<&Vcpu> {
        self.vcpus.get(usize::from(d.0))
    }
    /// Domain `d`'s vCPU with its CPU time up to `now` (the one on the CPU
    /// counts its run so far: another CPU may be asking while it runs).
    pub fn vcpu_now(&self, d: DomainId, now: u64) -> Option<Vcpu> {
        let mut v = *self.vcpu(d)?;
        if self.current == d.0 {
            v.cpu_time = v
                .cpu_time
                .saturating_add(now.saturating_sub(self.slice_start));
        }
        Some(v)
    }
    /// The domain on the CPU.
    pub fn current(&self) -> Option<DomainId> {
        (self.current != NIL).then_some(DomainId(self.current))
    }
    /// Primitive steps taken so far (queue links, heap moves): the cost model
    /// the host tests hold constant.
    pub const fn steps(&self) -> u64 {
        self.steps
    }
    /// The slice of a vCPU of weight `w`.
    pub const fn slice(&self, w: u16) -> u64 {
        let s = self.quantum.saturating_mul(w as u64) / DEFAULT_WEIGHT as u64;
        let min = self.quantum / 16;
        if s > min {
            s
        } else {
            min
        }
    }

    fn get(&mut self, d: u16) -> Option<&mut Vcpu> {
        self.vcpus.get_mut(usize::from(d))
    }

    fn push_tail(&mut self, d: u16) {
        self.steps += 1;
        let tail = self.tail;
        let Some(v) = self.get(d) else { return };
        if v.queued {
            return;
        }
        v.queued = true;
        v.prev = tail;
        v.next = NIL;
        if let Some(t) = self.get(tail) {
            t.next = d;
        } else {
            self.head = d;
        }
        self.tail = d;
    }

    fn unlink(&mut self, d: u16) {
        self.steps += 1;
        let Some(v) = self.get(d) else { return };
        if !v.queued {
            return;
        }
        let (prev, next) = (v.prev, v.next);
        v.queued = false;
        v.prev = NIL;
        v.next = NIL;
        match self.get(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.get(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    /// Whether a vCPU in state `s` with `pauses` may be in the run queue.
    const fn eligible(s: State, pauses: u16) -> bool {
        matches!(s, State::Runnable) && pauses == 0
    }

    /// A domain starts (runnable, at the tail) with weight `weight`.
    pub fn add(&mut self, d: DomainId, weight: u16) -> bool {
        let Some(v) = self.get(d.0) else {
            return false;
        };
        if v.state != State::Offline {
            return false;
        }
        *v = Vcpu {
            state: State::Runnable,
            weight: weight.max(1),
            ..Vcpu::OFFLINE
        };
        self.push_tail(d.0);
        true
    }

    /// A domain ended: off the queue, its deadline forgotten, off the CPU.
    pub fn remove(&mut self, d: DomainId) {
        self.unlink(d.0);
        let mut steps = 0;
        self.deadlines.remove(d.0, &mut steps);
        self.steps += steps;
        if self.current == d.0 {
            self.current = NIL;
        }
        if let Some(v) = self.get(d.0) {
            v.state = State::Offline;
        }
    }

    /// Change a domain's weight (takes effect at its next slice).
    pub fn set_weight(&mut self, d: DomainId, weight: u16) {
        if let Some(v) = self.get(d.0) {
            v.weight = weight.max(1);
        }
    }

    /// Pause a domain: it is not picked until as many unpauses.
    pub fn pause(&mut self, d: DomainId, now: u64) {
        if self.current == d.0 {
            self.account(now);
        }
        let Some(v) = self.get(d.0) else { return };
        if v.state == State::Offline {
            return;
        }
        v.pauses = v.pauses.saturating_add(1);
        self.unlink(d.0);
        if self.current == d.0 {
            // Off the CPU at once; it stays Runnable, to be queued at unpause.
            self.current = NIL;
            if let Some(v) = self.get(d.0) {
                v.state = State::Runnable;
            }
        }
    }

    /// Undo one pause.
    pub fn unpause(&mut self, d: DomainId) {
        let Some(v) = self.get(d.0) else { return };
        if v.pauses == 0 {
            return;
        }
        v.pauses -= 1;
        if Self::eligible(v.state, v.pauses) {
            self.push_tail(d.0);
        }
    }

    /// The current vCPU blocks (`SCHEDOP_block`, `SCHEDOP_poll`, HLT) until
    /// [`Scheduler::wake`] or, if given, `deadline` (system time).
    pub fn block(&mut self, deadline: Option<u64>, now: u64) {
        let d = self.current;
        self.account(now);
        let Some(v) = self.get(d) else { return };
        v.state = State::Blocked;
        self.current = NIL;
        if let Some(at) = deadline {
            let mut steps = 0;
            self.deadlines.insert(d, at, &mut steps);
            self.steps += steps;
        }
    }

    /// Wake a blocked vCPU (an upcall was raised, a polled port became
    /// pending). Nothing for a vCPU that is not blocked.
    pub fn wake(&mut self, d: DomainId) {
        let Some(v) = self.get(d.0) else { return };
        if v.state != State::Blocked {
            return;
        }
        v.state = State::Runnable;
        let pauses = v.pauses;
        let mut steps = 0;
        self.deadlines.remove(d.0, &mut steps);
        self.steps += steps;
        if pauses == 0 {
            self.push_tail(d.0);
        }
    }

    /// The current vCPU yields: the rest of its slice goes to the others.
    pub fn yield_now(&mut self, now: u64) {
        let d = self.current;
        self.account(now);
        let Some(v) = self.get(d) else { return };
        v.state = State::Runnable;
        self.current = NIL;
        self.push_tail(d);
    }

    fn account(&mut self, now: u64) {
        let ran = now.saturating_sub(self.slice_start);
        self.slice_start = now;
        let c = self.current;
        if let Some(v) = self.get(c) {
            v.cpu_time = v.cpu_time.saturating_add(ran);
        }
    }

    /// Wake every vCPU whose deadline is due (at most `N`).
    fn expire(&mut self, now: u64) {
        for _ in 0..N {
            match self.deadlines.peek() {
                Some((d, at)) if at <= now => self.wake(DomainId(d)),
                _ => break,
            }
        }
    }

    /// Decide what runs now: called after every event that may change it (a
    /// slice or deadline timer, block, yield, wake, pause).
    pub fn schedule(&mut self, now: u64) -> Next {
        self.expire(now);
        let deadline = self.deadlines.peek().map(|(_, at)| at);
        let bound = |until: u64| deadline.map_or(until, |d| d.min(until));
        if self.current != NIL {
            if self.head == NIL {
                // Alone: it runs on without a switch, and without a slice
                // (a timer that ends it would only cost an exit).
                self.slice_end = UNBOUNDED;
            } else if self.slice_end == UNBOUNDED {
                // Others became runnable while it ran alone: its slice
                // counts from when it was picked, so one that has run longer
                // than a slice gives way now.
                self.bound_slice();
            }
            if now < self.slice_end {
                return Next::Run {
                    dom: DomainId(self.current),
                    until: bound(self.slice_end),
                };
            }
            // Preempted: to the tail.
            let d = self.current;
            self.account(now);
            if let Some(v) = self.get(d) {
                v.state = State::Runnable;
            }
            self.current = NIL;
            self.push_tail(d);
        }
        let d = self.head;
        if d == NIL {
            self.slice_start = now;
            return Next::Idle { until: deadline };
        }
        self.unlink(d);
        let w = match self.get(d) {
            Some(v) => {
                v.state = State::Running;
                v.weight
            }
            None => DEFAULT_WEIGHT,
        };
        self.current = d;
        self.slice_start = now;
        self.slice_end = if self.head == NIL {
            UNBOUNDED
        } else {
            now.saturating_add(self.slice(w))
        };
        Next::Run {
            dom: DomainId(d),
            until: bound(self.slice_end),
        }
    }

    /// After a wake or an unpause while the vCPU on the CPU ran alone (with
    /// an [`UNBOUNDED`] slice): its slice starts now; the new end of its run
    /// (as [`Next::Run::until`]), which the caller arms. `None` when nothing
    /// changed (it had a slice already, or nobody is queued).
    pub fn rearm(&mut self, now: u64) -> Option<u64> {
        if self.current == NIL || self.head == NIL || self.slice_end != UNBOUNDED {
            return None;
        }
        self.bound_slice();
        let end = self.slice_end.max(now);
        let deadline = self.deadlines.peek().map(|(_, at)| at);
        Some(deadline.map_or(end, |d| d.min(end)))
    }

    /// The vCPU on the CPU, which ran alone, gets the slice it would have had
    /// from when it was picked (or last accounted).
    fn bound_slice(&mut self) {
        let w = self.get(self.current).map_or(DEFAULT_WEIGHT, |v| v.weight);
        self.slice_end = self.slice_start.saturating_add(self.slice(w));
    }

    /// The run queue, head first (for tests and diagnostics; O(n)).
    pub fn queue(&self) -> impl Iterator<Item = DomainId> + '_ {
        let mut at = self.head;
        core::iter::from_fn(move || {
            let v = self.vcpus.get(usize::from(at))?;
            let d = DomainId(at);
            at = v.next;
            Some(d)
        })
        .take(N)
    }
}
