//! The interdomain rules over [`Ports`]: one domain's own table and shared
//! bits, its peers through a fake [`Peers`] that records wake-ups.

extern crate std;

use std::vec::Vec;

use super::*;
use crate::event::interdomain::{self, Handled, Sent};
use crate::event::tests::Bits;
use crate::event::Channels;
use keel_abi::event::{DOMID_SELF, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND};

/// One domain as the fake sees it.
struct Dom {
    chans: Channels,
    bits: Bits,
    alive: bool,
    blocked: bool,
    woken: u32,
}

/// Domains 1..=n; `caller` is the one whose state is lent to [`Ports`].
struct Machine {
    doms: Vec<Option<Dom>>,
}

/// The fake peers: every domain but the caller (whose slot is empty while it
/// calls).
struct Fake<'m> {
    doms: &'m mut Vec<Option<Dom>>,
}

impl Fake<'_> {
    fn get(&self, d: DomainId) -> Option<&Dom> {
        self.doms
            .get(usize::from(d.0).checked_sub(1)?)?
            .as_ref()
            .filter(|x| x.alive)
    }
    fn get_mut(&mut self, d: DomainId) -> Option<&mut Dom> {
        self.doms
            .get_mut(usize::from(d.0).checked_sub(1)?)?
            .as_mut()
            .filter(|x| x.alive)
    }
}

impl Peers for Fake<'_> {
    fn peer(&self, _: DomainId) -> Option<&Domain> {
        None
    }
    fn is_peer(&self, d: DomainId) -> bool {
        self.get(d).is_some()
    }
    fn endpoint(&self, d: DomainId, p: u32) -> Option<Endpoint> {
        self.get(d)?.chans.endpoint(p)
    }
    fn set_endpoint(&mut self, d: DomainId, p: u32, e: Endpoint) {
        if let Some(x) = self.get_mut(d) {
            x.chans.set_endpoint(p, e);
        }
    }
    fn notify(&mut self, d: DomainId, p: u32) -> bool {
        let Some(x) = self.get_mut(d) else {
            return false;
        };
        let raised = x.chans.set_pending(p, &mut x.bits);
        if x.blocked {
            x.blocked = false;
            x.woken += 1;
        }
        raised
    }
}

impl Machine {
    fn new(n: u16) -> Self {
        Machine {
            doms: (1..=n)
                .map(|id| {
                    Some(Dom {
                        chans: Channels::new(id),
                        bits: Bits::default(),
                        alive: true,
                        blocked: false,
                        woken: 0,
                    })
                })
                .collect(),
        }
    }

    fn dom(&self, d: u16) -> &Dom {
        self.doms[usize::from(d) - 1].as_ref().unwrap()
    }

    fn dom_mut(&mut self, d: u16) -> &mut Dom {
        self.doms[usize::from(d) - 1].as_mut().unwrap()
    }

    /// Run `f` as domain `d`.
    fn as_dom<R>(&mut self, d: u16, f: impl FnOnce(&mut Ports<'_, Bits>) -> R) -> R {
        let i = usize::from(d) - 1;
        let mut me = self.doms[i].take().unwrap();
        let mut fake = Fake {
            doms: &mut self.doms,
        };
        let r = {
            let mut ports = Ports {
                me: DomainId(d),
                chans: &mut me.chans,
                bits: &mut me.bits,
                peers: &mut fake,
            };
            f(&mut ports)
        };
        self.doms[i] = Some(me);
        r
    }

    /// Domain `a` offers a port to `b`, which binds it: (a's port, b's port).
    fn connect(&mut self, a: u16, b: u16) -> (u32, u32) {
        let pa = self
            .as_dom(a, |w| {
                interdomain::alloc_unbound(w, DomainId(a), DOMID_SELF, b)
            })
            .unwrap();
        let pb = self
            .as_dom(b, |w| interdomain::bind_interdomain(w, DomainId(b), a, pa))
            .unwrap();
        (pa, pb)
    }
}

#[test]
fn a_send_reaches_the_peer_and_wakes_it() {
    let mut m = Machine::new(2);
    let (pa, pb) = m.connect(1, 2);
    assert_eq!(
        m.dom(1).chans.endpoint(pa),
        Some(Endpoint::Interdomain {
            remote: DomainId(2),
            port: pb
        })
    );
    // The binder's new port starts pending (Xen: nothing sent before is lost).
    assert!(m.dom(2).bits.is_pending(pb));
    m.dom_mut(2).bits.clear_pending(pb);
    m.dom_mut(2).bits.upcall_pending = false;
    m.dom_mut(2).bits.sel = 0;
    m.dom_mut(2).blocked = true;
    let sent = m.as_dom(1, |w| interdomain::send(w, DomainId(1), pa));
    assert_eq!(
        sent,
        Ok(Handled::Done(Sent::To {
            dom: DomainId(2),
            port: pb,
            upcall: true
        }))
    );
    assert!(m.dom(2).bits.is_pending(pb));
    assert!(m.dom(2).bits.upcall_pending);
    assert_eq!(m.dom(2).woken, 1);
    // Nothing landed in the sender.
    assert!(!m.dom(1).bits.is_pending(pa));
}

#[test]
fn close_from_either_end_leaves_the_other_unbound() {
    let mut m = Machine::new(2);
    let (pa, pb) = m.connect(1, 2);
    assert_eq!(
        m.as_dom(2, |w| interdomain::close(w, DomainId(2), pb)),
        Ok(Handled::Done(()))
    );
    assert_eq!(
        m.as_dom(1, |w| interdomain::status(w, DomainId(1), DOMID_SELF, pa)),
        Ok(Handled::Done(interdomain::Status {
            status: EVTCHNSTAT_UNBOUND,
            u: [2, 0]
        }))
    );
    // The other end may bind it again; then close from the first end.
    let pb = m
        .as_dom(2, |w| interdomain::bind_interdomain(w, DomainId(2), 1, pa))
        .unwrap();
    assert_eq!(
        m.as_dom(2, |w| interdomain::status(w, DomainId(2), DOMID_SELF, pb)),
        Ok(Handled::Done(interdomain::Status {
            status: EVTCHNSTAT_INTERDOMAIN,
            u: [1, pa]
        }))
    );
    m.as_dom(1, |w| interdomain::close(w, DomainId(1), pa))
        .unwrap();
    assert_eq!(
        m.dom(2).chans.endpoint(pb),
        Some(Endpoint::Unbound {
            remote: DomainId(1)
        })
    );
}

#[test]
fn binding_needs_consent_and_a_live_domain() {
    let mut m = Machine::new(3);
    let pa = m
        .as_dom(1, |w| {
            interdomain::alloc_unbound(w, DomainId(1), DOMID_SELF, 2)
        })
        .unwrap();
    // Domain 3 was not offered the port.
    assert_eq!(
        m.as_dom(3, |w| interdomain::bind_interdomain(w, DomainId(3), 1, pa)),
        Err(Errno::EINVAL)
    );
    // Nor is a port that is not unbound consent.
    assert_eq!(
        m.as_dom(2, |w| interdomain::bind_interdomain(
            w,
            DomainId(2),
            1,
            pa + 1
        )),
        Err(Errno::EINVAL)
    );
    // Managing another domain's ports is not allowed.
    assert_eq!(
        m.as_dom(3, |w| interdomain::alloc_unbound(w, DomainId(3), 1, 3)),
        Err(Errno::EPERM)
    );
    // A dead domain's port cannot be bound.
    m.dom_mut(1).alive = false;
    assert_eq!(
        m.as_dom(2, |w| interdomain::bind_interdomain(w, DomainId(2), 1, pa)),
        Err(Errno::ESRCH)
    );
    assert_eq!(
        m.as_dom(2, |w| interdomain::bind_interdomain(w, DomainId(2), 9, 1)),
        Err(Errno::ESRCH)
    );
}

#[test]
fn a_dying_domain_leaves_its_peers_unbound() {
    let mut m = Machine::new(3);
    let (_, p2) = m.connect(1, 2);
    let (_, p3) = m.connect(1, 3);
    m.as_dom(1, |w| {
        let mut c = 0;
        while let Some(n) = interdomain::close_all(w, DomainId(1), c, 7) {
            c = n;
        }
    });
    for (d, p) in [(2, p2), (3, p3)] {
        assert_eq!(
            m.dom(d).chans.endpoint(p),
            Some(Endpoint::Unbound {
                remote: DomainId(1)
            })
        );
    }
}

#[test]
fn alone_reaches_nobody() {
    let mut c = Channels::new(1);
    let mut b = Bits::default();
    let mut w = Ports {
        me: DomainId(1),
        chans: &mut c,
        bits: &mut b,
        peers: &mut Alone,
    };
    let p = interdomain::alloc_unbound(&mut w, DomainId(1), DOMID_SELF, 2).unwrap();
    assert_eq!(
        interdomain::send(&mut w, DomainId(1), p),
        Ok(Handled::Done(Sent::Dropped))
    );
    assert_eq!(
        interdomain::bind_interdomain(&mut w, DomainId(1), 2, 1),
        Err(Errno::ESRCH)
    );
}
