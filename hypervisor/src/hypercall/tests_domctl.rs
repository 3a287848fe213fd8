//! `domctl` through the hypercall path: the ABI gate, the envelope's copies,
//! and the policy reached through the peers.

use super::tests::{World, DATA};
use super::Outcome;
use crate::domain::elf::testimg::typical_declaring;
use crate::domain::DomainId;
use crate::domctl::{Action, Directory, Summary};
extern crate std;
use crate::peers::{DomctlDone, Peers};
use crate::sched::{Scheduler, DEFAULT_WEIGHT};
use keel_abi::domctl::*;
use keel_abi::event::Pod;
use keel_abi::hypercall::Hypercall;
use keel_abi::version::AbiVersion;
use keel_abi::Errno;

fn previewing() -> World {
    let w = World::with_image_id(
        typical_declaring(AbiVersion::V1_1, Some(AbiVersion::V1_0)),
        DomainId(1),
    );
    assert!(w.dom.serves(AbiVersion::V1_1));
    w
}

fn ret(e: Errno) -> Outcome {
    Outcome::Return(e.as_return())
}

fn envelope(w: &mut World, cmd: u32, domain: u16) {
    let mut b = [0u8; XenDomctl::SIZE];
    XenDomctl {
        cmd,
        domain,
        ..Default::default()
    }
    .encode(&mut b);
    w.poke(DATA, &b);
}

/// Domain 1 (the caller, the control domain) and domain 2, as the run loop
/// shows them, with what was done.
struct Two {
    sched: Scheduler<4>,
    done: std::vec::Vec<Action>,
}

struct Dir<'x>((DomainId, Summary), &'x Scheduler<4>);

impl Directory for Dir<'_> {
    fn control(&self) -> Option<DomainId> {
        Some(DomainId(1))
    }
    fn first_from(&self, from: u16) -> Option<(DomainId, Summary)> {
        let mut other = self.0 .1;
        other.name = *b"peer\0\0\0\0\0\0\0\0\0\0\0\0";
        other.max_pages = 1024;
        [(DomainId(1), self.0 .1), (DomainId(2), other)]
            .into_iter()
            .find(|(d, _)| d.0 >= from && self.1.vcpu(*d).is_some())
    }
}

impl Peers for Two {
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
    fn domctl(
        &mut self,
        caller: DomainId,
        me: Summary,
        op: &mut XenDomctl,
    ) -> Result<DomctlDone, Errno> {
        let a = crate::domctl::domctl(&Dir((caller, me), &self.sched), &self.sched, caller, op)?;
        self.done.push(a);
        Ok(match a {
            Action::None => DomctlDone::Answered,
            Action::Pause(d) => {
                self.sched.pause(d, 0);
                DomctlDone::Scheduled
            }
            Action::Unpause(d) => {
                self.sched.unpause(d);
                DomctlDone::Scheduled
            }
            Action::Destroy(_) => DomctlDone::Destroying,
        })
    }
}

fn two() -> Two {
    let mut sched = Scheduler::<4>::new(1000);
    sched.add(DomainId(1), DEFAULT_WEIGHT);
    sched.add(DomainId(2), DEFAULT_WEIGHT);
    Two {
        sched,
        done: std::vec::Vec::new(),
    }
}

#[test]
fn an_image_of_a_released_version_gets_enosys() {
    let mut w = World::new();
    assert!(!w.dom.serves(AbiVersion::V1_1));
    envelope(&mut w, XEN_DOMCTL_GETDOMAININFO, 0);
    let mut t = two();
    for va in [DATA, 0, 0x10] {
        assert_eq!(
            w.call_with_peers(Hypercall::DOMCTL, [va, 0, 0, 0, 0], &mut t),
            ret(Errno::ENOSYS)
        );
    }
    assert!(t.done.is_empty());
}

#[test]
fn the_envelope_is_read_first_then_the_caller_checked() {
    let mut w = previewing();
    let mut t = two();
    for va in [0, 0x10, 0xffff_8000_0000_0000, DATA + 4096 * 64] {
        assert_eq!(
            w.call_with_peers(Hypercall::DOMCTL, [va, 0, 0, 0, 0], &mut t),
            ret(Errno::EFAULT),
            "{va:#x}"
        );
    }
    // No control domain (one domain alone): nobody may.
    envelope(&mut w, XEN_DOMCTL_GETDOMAININFO, 0);
    assert_eq!(
        w.call(Hypercall::DOMCTL, [DATA, 0, 0, 0, 0]),
        ret(Errno::EPERM)
    );
    assert!(t.done.is_empty());
}

#[test]
fn getdomaininfo_is_written_back_and_the_others_are_carried_out() {
    let mut w = previewing();
    let mut t = two();
    envelope(&mut w, XEN_DOMCTL_GETDOMAININFO, 2);
    assert_eq!(
        w.call_with_peers(Hypercall::DOMCTL, [DATA, 0, 0, 0, 0], &mut t),
        Outcome::Return(0)
    );
    let b: [u8; XenDomctl::SIZE] = w.peek(DATA);
    let info = XenDomctlGetdomaininfo::decode(&b[16..]);
    assert_eq!(info.domain, 2);
    assert_eq!(&info.handle[..5], b"peer\0");
    assert_eq!(info.max_pages, 1024);
    // Ourselves: our own pages and shared_info frame.
    envelope(&mut w, XEN_DOMCTL_GETDOMAININFO, 0);
    w.call_with_peers(Hypercall::DOMCTL, [DATA, 0, 0, 0, 0], &mut t);
    let b: [u8; XenDomctl::SIZE] = w.peek(DATA);
    let info = XenDomctlGetdomaininfo::decode(&b[16..]);
    assert_eq!(info.domain, 1);
    assert_eq!(info.max_pages, 64);
    assert_eq!(info.tot_pages, w.dom.owned_pages());
    assert_eq!(info.shared_info_frame, w.ev.shared.unwrap().get());

    // A pause leaves the envelope as it was (no write-back).
    envelope(&mut w, XEN_DOMCTL_PAUSEDOMAIN, 2);
    let before: [u8; XenDomctl::SIZE] = w.peek(DATA);
    assert_eq!(
        w.call_with_peers(Hypercall::DOMCTL, [DATA, 0, 0, 0, 0], &mut t),
        Outcome::Return(0)
    );
    assert_eq!(w.peek::<{ XenDomctl::SIZE }>(DATA), before);
    assert_eq!(t.sched.vcpu(DomainId(2)).map(|v| v.pauses), Some(1));
    envelope(&mut w, XEN_DOMCTL_UNPAUSEDOMAIN, 2);
    w.call_with_peers(Hypercall::DOMCTL, [DATA, 0, 0, 0, 0], &mut t);
    assert_eq!(t.sched.vcpu(DomainId(2)).map(|v| v.pauses), Some(0));
    // Destroy: 0, and the CPU to the run loop.
    envelope(&mut w, XEN_DOMCTL_DESTROYDOMAIN, 2);
    assert_eq!(
        w.call_with_peers(Hypercall::DOMCTL, [DATA, 0, 0, 0, 0], &mut t),
        Outcome::Yield
    );
    assert_eq!(t.done.last(), Some(&Action::Destroy(DomainId(2))));
    // Unknown commands and the wrong version.
    envelope(&mut w, 1, 2);
    assert_eq!(
        w.call_with_peers(Hypercall::DOMCTL, [DATA, 0, 0, 0, 0], &mut t),
        ret(Errno::ENOSYS)
    );
    let mut b = [0u8; XenDomctl::SIZE];
    XenDomctl {
        cmd: XEN_DOMCTL_GETDOMAININFO,
        interface_version: 0x14,
        ..Default::default()
    }
    .encode(&mut b);
    w.poke(DATA, &b);
    assert_eq!(
        w.call_with_peers(Hypercall::DOMCTL, [DATA, 0, 0, 0, 0], &mut t),
        ret(Errno::EACCES)
    );
}
