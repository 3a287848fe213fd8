//! # A domain's end while the others run: the teardown as resumable steps
//!
//! When one of several domains shuts down or crashes, the others go on, so
//! its teardown must not stop the CPU for long: it is a sequence of phases,
//! each done a bounded piece at a time ([`Teardown::step`]), between which the
//! scheduler runs the other domains. In order:
//!
//! 1. **Off the CPU**: the scheduler forgets the vCPU (done by the caller when
//!    it starts the teardown), and the control domain gets `VIRQ_DOM_EXC`.
//! 2. **Ports**: every interdomain and unbound port is closed
//!    ([`crate::event::interdomain::close_all`]): the peers' ends become
//!    unbound.
//! 3. **Mappings**: every mapping the domain holds of another domain's grants
//!    is undone ([`crate::grant::ops::release_mappings`]): those frames go back
//!    to their owners (or to the allocator, if their owner has ended too).
//! 4. **Frames**: every frame of the domain is scrubbed and freed, and its
//!    counts checked, *except* those another domain still maps through a
//!    grant: each of those is freed by the unmap that drops its last
//!    reference (the grant world's `put_page`).
//! 5. **Grant state**: the domain's grant table and its record stay until no
//!    other domain maps any of its references (its grant state is quiescent);
//!    then the slot is free. Waiting costs nothing: the step just reports it.
//!
//! The run loop (`vmx::run`) drives it: one [`Teardown::step`] before each
//! scheduling decision (and instead of idling), its world the ended domain's
//! vCPU and the live domains. When the last domain has ended, the machine
//! powers off with a status that sums up how each ended ([`machine_status`]:
//! the run loop leaves service domains and domains the control domain
//! destroyed out).

use crate::domain::DomainId;
use keel_abi::platform::ExitStatus;

/// How a domain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// `SHUTDOWN_poweroff`.
    PowerOff,
    /// `SHUTDOWN_crash`, or killed by the hypervisor for a fault.
    Crash,
    /// Destroyed by the control domain.
    Destroyed,
    /// Any other shutdown reason (reboot, suspend, watchdog, soft reset).
    Other,
}

/// The parts of the hypervisor a teardown drives, one bounded piece at a time.
pub trait TeardownWorld {
    /// Raise `VIRQ_DOM_EXC` in the control domain, if there is one.
    fn notify_control(&mut self, ended: DomainId);
    /// Close ports of `d` from `cursor`, at most `budget`: the next cursor
    /// while some remain.
    fn close_ports(&mut self, d: DomainId, cursor: u32, budget: u32) -> Option<u32>;
    /// Undo mappings `d` holds, from maptrack slot `cursor`, at most `budget`
    /// slots: the next cursor while some remain.
    fn release_mappings(&mut self, d: DomainId, cursor: usize, budget: u32) -> Option<usize>;
    /// Scrub and free frames of `d` from index `cursor`, at most `budget`,
    /// leaving those another domain maps (freed later by their last unmap):
    /// the next cursor while some remain.
    fn free_frames(&mut self, d: DomainId, cursor: u64, budget: u32) -> Option<u64>;
    /// Whether no other domain maps any reference of `d`'s grant table.
    fn grants_quiescent(&self, d: DomainId) -> bool;
}

/// Where a teardown is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Tell the control domain.
    Notify,
    /// Closing ports, from this one.
    Ports(u32),
    /// Undoing mappings, from this maptrack slot.
    Mappings(usize),
    /// Freeing frames, from this index.
    Frames(u64),
    /// Waiting for other domains to unmap this domain's grants.
    Grants,
    /// Finished: the slot may be reused.
    Done,
}

/// One domain's teardown in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Teardown {
    /// The domain.
    pub dom: DomainId,
    /// How it ended.
    pub end: End,
    /// Where the teardown is.
    pub phase: Phase,
}

impl Teardown {
    /// Start tearing `dom` down (after the scheduler has dropped its vCPU).
    pub const fn new(dom: DomainId, end: End) -> Self {
        Teardown {
            dom,
            end,
            phase: Phase::Notify,
        }
    }

    /// Do one bounded piece (at most `budget` units of one phase); whether the
    /// teardown is finished.
    pub fn step(&mut self, w: &mut impl TeardownWorld, budget: u32) -> bool {
        let d = self.dom;
        self.phase = match self.phase {
            Phase::Notify => {
                w.notify_control(d);
                Phase::Ports(0)
            }
            Phase::Ports(c) => match w.close_ports(d, c, budget) {
                Some(next) => Phase::Ports(next),
                None => Phase::Mappings(0),
            },
            Phase::Mappings(c) => match w.release_mappings(d, c, budget) {
                Some(next) => Phase::Mappings(next),
                None => Phase::Frames(0),
            },
            Phase::Frames(c) => match w.free_frames(d, c, budget) {
                Some(next) => Phase::Frames(next),
                None => Phase::Grants,
            },
            Phase::Grants if w.grants_quiescent(d) => Phase::Done,
            Phase::Grants => Phase::Grants,
            Phase::Done => Phase::Done,
        };
        self.phase == Phase::Done
    }
}

/// The power-off status once every domain has ended: success only if every
/// domain powered off; a crash anywhere makes it a guest crash; otherwise
/// (another shutdown reason, or a domain the control domain destroyed on
/// purpose) another shutdown. The console line before it names each domain's
/// end.
pub fn machine_status(ends: &[(DomainId, End)]) -> ExitStatus {
    if ends.iter().any(|(_, e)| *e == End::Crash) {
        ExitStatus::GuestCrash
    } else if ends.iter().all(|(_, e)| *e == End::PowerOff) {
        ExitStatus::Success
    } else {
        ExitStatus::GuestOtherShutdown
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[derive(Default)]
    struct W {
        log: Vec<&'static str>,
        ports: u32,
        maps: usize,
        frames: u64,
        foreign_maps: u32,
    }
    impl TeardownWorld for W {
        fn notify_control(&mut self, _: DomainId) {
            self.log.push("virq");
        }
        fn close_ports(&mut self, _: DomainId, c: u32, b: u32) -> Option<u32> {
            self.log.push("ports");
            let n = c + b;
            (n < self.ports).then_some(n)
        }
        fn release_mappings(&mut self, _: DomainId, c: usize, b: u32) -> Option<usize> {
            self.log.push("maps");
            let n = c + b as usize;
            (n < self.maps).then_some(n)
        }
        fn free_frames(&mut self, _: DomainId, c: u64, b: u32) -> Option<u64> {
            self.log.push("frames");
            let n = c + u64::from(b);
            (n < self.frames).then_some(n)
        }
        fn grants_quiescent(&self, _: DomainId) -> bool {
            self.foreign_maps == 0
        }
    }

    #[test]
    fn phases_in_order_bounded_and_waiting_for_foreign_unmaps() {
        let mut w = W {
            ports: 5,
            maps: 3,
            frames: 7,
            foreign_maps: 1,
            ..Default::default()
        };
        let mut t = Teardown::new(DomainId(2), End::Crash);
        let mut steps = 0;
        while !t.step(&mut w, 2) {
            steps += 1;
            if t.phase == Phase::Grants && steps > 20 {
                // Another domain unmaps the last grant of the dead one.
                w.foreign_maps = 0;
            }
            assert!(steps < 100);
        }
        let expect: Vec<&str> = ["virq"]
            .into_iter()
            .chain(["ports"; 3])
            .chain(["maps"; 2])
            .chain(["frames"; 4])
            .collect();
        assert_eq!(w.log, expect);
        assert!(steps > 20, "finished before the foreign mapping went");
        assert!(t.step(&mut w, 2), "done stays done");
    }

    #[test]
    fn the_machine_status_sums_up_every_end() {
        use End::*;
        let d = |n| DomainId(n);
        assert_eq!(
            machine_status(&[(d(1), PowerOff), (d(2), PowerOff)]),
            ExitStatus::Success
        );
        assert_eq!(
            machine_status(&[(d(1), PowerOff), (d(2), Other)]),
            ExitStatus::GuestOtherShutdown
        );
        assert_eq!(
            machine_status(&[(d(1), Other), (d(2), Crash)]),
            ExitStatus::GuestCrash
        );
        assert_eq!(
            machine_status(&[(d(1), PowerOff), (d(2), Destroyed)]),
            ExitStatus::GuestOtherShutdown
        );
        assert_eq!(machine_status(&[(d(1), PowerOff)]), ExitStatus::Success);
    }
}
