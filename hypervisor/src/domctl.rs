//! # `domctl`: what the control domain may do to the others (the policy)
//!
//! Keel builds its domains at boot (dom0less); one may be the control domain.
//! It may list the others and read their state (`XEN_DOMCTL_getdomaininfo`),
//! pause and unpause them, and destroy them. Every other command is
//! `-ENOSYS`; a caller that is not the control domain gets `-EPERM`, and an
//! envelope of another interface version `-EACCES` (Xen's order of checks).
//! Reference: `docs/abi/domains.md` (ABI 1.1: served to images that know
//! 1.1, by `hypercall::domctl` through `Peers::domctl`).
//!
//! The decision is pure: [`domctl`] checks the request against a
//! [`Directory`] of the domains and the [`Scheduler`], fills in
//! `getdomaininfo`, and returns the [`Action`] the hypervisor then carries out
//! (pausing in the scheduler, tearing a domain down).

use crate::domain::DomainId;
use crate::sched::{Scheduler, State};
use keel_abi::domctl::{
    dominf_shutdown, XenDomctl, XenDomctlGetdomaininfo, XEN_DOMCTL_DESTROYDOMAIN,
    XEN_DOMCTL_GETDOMAININFO, XEN_DOMCTL_INTERFACE_VERSION, XEN_DOMCTL_PAUSEDOMAIN,
    XEN_DOMCTL_UNPAUSEDOMAIN, XEN_DOMINF_BLOCKED, XEN_DOMINF_DYING, XEN_DOMINF_PAUSED,
    XEN_DOMINF_RUNNING,
};
use keel_abi::errno::Errno;
use keel_abi::event::Pod;

/// What `getdomaininfo` reports of a domain besides its scheduling state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Frames it owns now.
    pub tot_pages: u64,
    /// Frames it was built with.
    pub max_pages: u64,
    /// The machine frame of its `shared_info`.
    pub shared_info_frame: u64,
    /// Its name from the boot line (zero-padded).
    pub name: [u8; 16],
    /// The `SHUTDOWN_*` reason, once it shut down.
    pub shutdown: Option<u32>,
    /// Being torn down.
    pub dying: bool,
}

/// The domains, as `domctl` sees them.
pub trait Directory {
    /// The control domain, if one was named on the boot line.
    fn control(&self) -> Option<DomainId>;
    /// The domain with the lowest id at or above `from`, and its summary
    /// (a dying domain is still listed until it is gone).
    fn first_from(&self, from: u16) -> Option<(DomainId, Summary)>;
}

/// What the hypervisor must do after a successful `domctl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing (`getdomaininfo` wrote its answer into the envelope).
    None,
    /// Pause this domain ([`Scheduler::pause`]).
    Pause(DomainId),
    /// Undo one pause ([`Scheduler::unpause`]).
    Unpause(DomainId),
    /// End this domain as if it crashed (its teardown, `VIRQ_DOM_EXC`).
    Destroy(DomainId),
}

/// What `domctl` reads of a domain's scheduling: its vCPU in the scheduler of
/// the CPU it runs on.
pub trait SchedView {
    /// Domain `d`'s vCPU as its scheduler sees it.
    fn sched_vcpu(&self, d: DomainId) -> Option<crate::sched::Vcpu>;
}

impl<const N: usize> SchedView for Scheduler<N> {
    fn sched_vcpu(&self, d: DomainId) -> Option<crate::sched::Vcpu> {
        self.vcpu(d).copied()
    }
}

/// The `getdomaininfo` answer for `d`.
pub fn domain_info(d: DomainId, s: &Summary, sched: &impl SchedView) -> XenDomctlGetdomaininfo {
    let mut flags = 0;
    let mut cpu_time = 0;
    if let Some(v) = sched.sched_vcpu(d) {
        cpu_time = v.cpu_time;
        if v.pauses > 0 {
            flags |= XEN_DOMINF_PAUSED;
        }
        match v.state {
            State::Running => flags |= XEN_DOMINF_RUNNING,
            State::Blocked => flags |= XEN_DOMINF_BLOCKED,
            State::Runnable | State::Offline => {}
        }
    }
    if let Some(reason) = s.shutdown {
        flags |= dominf_shutdown(reason);
    }
    if s.dying {
        flags |= XEN_DOMINF_DYING;
    }
    XenDomctlGetdomaininfo {
        domain: d.0,
        flags,
        tot_pages: s.tot_pages,
        max_pages: s.max_pages,
        shared_info_frame: s.shared_info_frame,
        cpu_time,
        nr_online_vcpus: u32::from(!s.dying),
        handle: s.name,
        gpaddr_bits: 52,
        ..Default::default()
    }
}

/// Carry out `op` for `caller`: check it, answer `getdomaininfo` in `op.u`,
/// and say what else to do.
pub fn domctl(
    dir: &impl Directory,
    sched: &impl SchedView,
    caller: DomainId,
    op: &mut XenDomctl,
) -> Result<Action, Errno> {
    if dir.control() != Some(caller) {
        return Err(Errno::EPERM);
    }
    if op.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    let target = || match dir.first_from(op.domain) {
        Some((d, s)) if d.0 == op.domain => Ok((d, s)),
        _ => Err(Errno::ESRCH),
    };
    match op.cmd {
        XEN_DOMCTL_GETDOMAININFO => {
            let (d, s) = dir.first_from(op.domain).ok_or(Errno::ESRCH)?;
            let info = domain_info(d, &s, sched);
            let mut bytes = [0u8; XenDomctlGetdomaininfo::SIZE];
            info.encode(&mut bytes);
            op.u = [0; 16];
            for (w, chunk) in op.u.iter_mut().zip(bytes.chunks(8)) {
                let mut b = [0u8; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                *w = u64::from_le_bytes(b);
            }
            op.domain = d.0;
            Ok(Action::None)
        }
        XEN_DOMCTL_PAUSEDOMAIN | XEN_DOMCTL_UNPAUSEDOMAIN | XEN_DOMCTL_DESTROYDOMAIN => {
            let (d, s) = target()?;
            // The control domain cannot stop itself this way (it would have
            // no one to undo it); Xen refuses pausing oneself the same way.
            if d == caller {
                return Err(Errno::EINVAL);
            }
            Ok(match op.cmd {
                XEN_DOMCTL_PAUSEDOMAIN if s.dying => return Err(Errno::EINVAL),
                XEN_DOMCTL_PAUSEDOMAIN => Action::Pause(d),
                XEN_DOMCTL_UNPAUSEDOMAIN => {
                    if sched.sched_vcpu(d).is_none_or(|v| v.pauses == 0) {
                        return Err(Errno::EINVAL);
                    }
                    Action::Unpause(d)
                }
                _ => Action::Destroy(d),
            })
        }
        _ => Err(Errno::ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::sched::DEFAULT_WEIGHT;
    use keel_abi::sched::SHUTDOWN_CRASH;

    struct Dir(std::vec::Vec<(u16, Summary)>, Option<DomainId>);
    impl Directory for Dir {
        fn control(&self) -> Option<DomainId> {
            self.1
        }
        fn first_from(&self, from: u16) -> Option<(DomainId, Summary)> {
            self.0
                .iter()
                .filter(|(d, _)| *d >= from)
                .min_by_key(|(d, _)| *d)
                .map(|(d, s)| (DomainId(*d), *s))
        }
    }

    fn summary(name: &[u8]) -> Summary {
        let mut n = [0u8; 16];
        n[..name.len()].copy_from_slice(name);
        Summary {
            tot_pages: 512,
            max_pages: 512,
            shared_info_frame: 0x1234,
            name: n,
            shutdown: None,
            dying: false,
        }
    }

    fn op(cmd: u32, domain: u16) -> XenDomctl {
        XenDomctl {
            cmd,
            domain,
            ..Default::default()
        }
    }

    fn setup() -> (Dir, Scheduler<8>) {
        let mut crashed = summary(b"ring_back");
        crashed.shutdown = Some(SHUTDOWN_CRASH);
        let dir = Dir(
            std::vec![
                (0, summary(b"ctl")),
                (2, summary(b"ring_front")),
                (5, crashed)
            ],
            Some(DomainId(0)),
        );
        let mut s = Scheduler::<8>::new(1_000_000);
        s.add(DomainId(0), DEFAULT_WEIGHT);
        s.add(DomainId(2), DEFAULT_WEIGHT);
        s.schedule(0);
        (dir, s)
    }

    #[test]
    fn the_control_domain_lists_every_domain_in_order() {
        let (dir, s) = setup();
        let mut seen = std::vec::Vec::new();
        let mut next = 0u16;
        loop {
            let mut o = op(XEN_DOMCTL_GETDOMAININFO, next);
            match domctl(&dir, &s, DomainId(0), &mut o) {
                Ok(Action::None) => {}
                Err(e) => {
                    assert_eq!(e, Errno::ESRCH);
                    break;
                }
                Ok(a) => panic!("{a:?}"),
            }
            let mut b = [0u8; 144];
            o.encode(&mut b);
            let info = XenDomctlGetdomaininfo::decode(&b[16..]);
            assert_eq!(info.domain, o.domain);
            seen.push((info.domain, info.flags, info.handle));
            next = o.domain + 1;
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].1, XEN_DOMINF_RUNNING);
        assert_eq!(seen[1].1, 0, "runnable, not running");
        assert_eq!(&seen[1].2[..10], b"ring_front");
        assert_eq!(seen[2].1, dominf_shutdown(SHUTDOWN_CRASH));
    }

    #[test]
    fn refusals_in_xens_order() {
        let (dir, s) = setup();
        let mut o = op(XEN_DOMCTL_PAUSEDOMAIN, 2);
        assert_eq!(domctl(&dir, &s, DomainId(2), &mut o), Err(Errno::EPERM));
        o.interface_version = 0x14;
        assert_eq!(domctl(&dir, &s, DomainId(2), &mut o), Err(Errno::EPERM));
        assert_eq!(domctl(&dir, &s, DomainId(0), &mut o), Err(Errno::EACCES));
        for cmd in [1, 6, 9, 16, 0xffff_ffff] {
            assert_eq!(
                domctl(&dir, &s, DomainId(0), &mut op(cmd, 2)),
                Err(Errno::ENOSYS)
            );
        }
        assert_eq!(
            domctl(&dir, &s, DomainId(0), &mut op(XEN_DOMCTL_PAUSEDOMAIN, 3)),
            Err(Errno::ESRCH)
        );
        assert_eq!(
            domctl(&dir, &s, DomainId(0), &mut op(XEN_DOMCTL_PAUSEDOMAIN, 0)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            domctl(&dir, &s, DomainId(0), &mut op(XEN_DOMCTL_UNPAUSEDOMAIN, 2)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            domctl(&dir, &s, DomainId(0), &mut op(XEN_DOMCTL_GETDOMAININFO, 6)),
            Err(Errno::ESRCH)
        );
        // No control domain at all: nobody may.
        let none = Dir(std::vec::Vec::new(), None);
        assert_eq!(
            domctl(&none, &s, DomainId(0), &mut op(XEN_DOMCTL_GETDOMAININFO, 0)),
            Err(Errno::EPERM)
        );
    }

    #[test]
    fn pause_unpause_destroy() {
        let (dir, mut s) = setup();
        let ctl = DomainId(0);
        assert_eq!(
            domctl(&dir, &s, ctl, &mut op(XEN_DOMCTL_PAUSEDOMAIN, 2)),
            Ok(Action::Pause(DomainId(2)))
        );
        s.pause(DomainId(2), 1);
        let mut o = op(XEN_DOMCTL_GETDOMAININFO, 2);
        domctl(&dir, &s, ctl, &mut o).unwrap();
        assert_eq!(o.u[0] >> 32, u64::from(XEN_DOMINF_PAUSED));
        assert_eq!(
            domctl(&dir, &s, ctl, &mut op(XEN_DOMCTL_UNPAUSEDOMAIN, 2)),
            Ok(Action::Unpause(DomainId(2)))
        );
        assert_eq!(
            domctl(&dir, &s, ctl, &mut op(XEN_DOMCTL_DESTROYDOMAIN, 5)),
            Ok(Action::Destroy(DomainId(5)))
        );
    }
}
