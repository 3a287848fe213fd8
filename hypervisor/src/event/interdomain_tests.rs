extern crate std;

use std::vec;
use std::vec::Vec;

use super::*;
use proptest::prelude::*;

const PORTS: u32 = 8;

/// Three domains (ids 0..3) of `PORTS` ports each; port 0 reserved, port 7 an
/// IPI (a local kind).
struct World {
    alive: Vec<bool>,
    ports: Vec<Vec<Endpoint>>,
    pending: Vec<Vec<bool>>,
}

impl World {
    fn new() -> Self {
        let mut ports = vec![vec![Endpoint::Free; PORTS as usize]; 3];
        for t in &mut ports {
            t[0] = Endpoint::Reserved;
            t[7] = Endpoint::Local;
        }
        World {
            alive: vec![true; 3],
            ports,
            pending: vec![vec![false; PORTS as usize]; 3],
        }
    }
    fn pending(&self, d: DomainId, p: u32) -> bool {
        self.pending[d.0 as usize][p as usize]
    }
    /// Every interdomain end has its peer pointing back.
    fn paired(&self) -> Result<(), std::string::String> {
        for (d, t) in self.ports.iter().enumerate() {
            for (p, e) in t.iter().enumerate() {
                if let Endpoint::Interdomain { remote, port } = *e {
                    let back = self.endpoint(remote, port);
                    let want = Some(Endpoint::Interdomain {
                        remote: DomainId(d as u16),
                        port: p as u32,
                    });
                    if back != want {
                        return Err(std::format!(
                            "({d},{p}) -> ({remote:?},{port}) but back is {back:?}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl PortWorld for World {
    fn alive(&self, d: DomainId) -> bool {
        self.alive.get(d.0 as usize).copied().unwrap_or(false)
    }
    fn endpoint(&self, d: DomainId, p: u32) -> Option<Endpoint> {
        self.ports.get(d.0 as usize)?.get(p as usize).copied()
    }
    fn set_endpoint(&mut self, d: DomainId, p: u32, e: Endpoint) {
        self.ports[d.0 as usize][p as usize] = e;
    }
    fn free_port(&self, d: DomainId) -> Result<u32, Errno> {
        self.ports[d.0 as usize]
            .iter()
            .position(|e| *e == Endpoint::Free)
            .map(|p| p as u32)
            .ok_or(Errno::ENOSPC)
    }
    fn set_pending(&mut self, d: DomainId, p: u32) -> bool {
        let was = self.pending[d.0 as usize][p as usize];
        self.pending[d.0 as usize][p as usize] = true;
        !was
    }
    fn clear_pending(&mut self, d: DomainId, p: u32) {
        self.pending[d.0 as usize][p as usize] = false;
    }
    fn nr_ports(&self) -> u32 {
        PORTS
    }
}

const A: DomainId = DomainId(1);
const B: DomainId = DomainId(2);
const C: DomainId = DomainId(0);

#[test]
fn connect_send_both_ways_and_close_from_either_end() {
    let mut w = World::new();
    let pa = alloc_unbound(&mut w, A, DOMID_SELF, B.0).unwrap();
    assert_eq!(
        status(&w, A, DOMID_SELF, pa),
        Ok(Handled::Done(Status {
            status: EVTCHNSTAT_UNBOUND,
            u: [2, 0]
        }))
    );
    // A send on the unbound port is dropped.
    assert_eq!(send(&mut w, A, pa), Ok(Handled::Done(Sent::Dropped)));
    let pb = bind_interdomain(&mut w, B, A.0, pa).unwrap();
    // The binder's new port starts pending (nothing sent before is lost).
    assert!(w.pending(B, pb));
    w.clear_pending(B, pb);
    assert_eq!(
        status(&w, B, B.0, pb),
        Ok(Handled::Done(Status {
            status: EVTCHNSTAT_INTERDOMAIN,
            u: [1, pa]
        }))
    );
    assert_eq!(
        send(&mut w, A, pa),
        Ok(Handled::Done(Sent::To {
            dom: B,
            port: pb,
            upcall: true
        }))
    );
    assert!(w.pending(B, pb) && !w.pending(A, pa));
    assert_eq!(
        send(&mut w, B, pb),
        Ok(Handled::Done(Sent::To {
            dom: A,
            port: pa,
            upcall: true
        }))
    );
    // B closes: A's end is unbound again, for B, and B may bind it again.
    assert_eq!(close(&mut w, B, pb), Ok(Handled::Done(())));
    assert!(!w.pending(B, pb));
    assert_eq!(w.endpoint(A, pa), Some(Endpoint::Unbound { remote: B }));
    let pb2 = bind_interdomain(&mut w, B, A.0, pa).unwrap();
    // A closes: B's end is unbound, for A.
    assert_eq!(close(&mut w, A, pa), Ok(Handled::Done(())));
    assert_eq!(w.endpoint(B, pb2), Some(Endpoint::Unbound { remote: A }));
    assert_eq!(w.endpoint(A, pa), Some(Endpoint::Free));
    w.paired().unwrap();
}

#[test]
fn binding_needs_the_remote_domains_consent() {
    let mut w = World::new();
    let for_b = alloc_unbound(&mut w, A, DOMID_SELF, B.0).unwrap();
    // C is not the domain A allocated the port for.
    assert_eq!(bind_interdomain(&mut w, C, A.0, for_b), Err(Errno::EINVAL));
    // Not an unbound port: free, reserved, local, out of range.
    for p in [5, 0, 7, PORTS, u32::MAX] {
        assert_eq!(
            bind_interdomain(&mut w, B, A.0, p),
            Err(Errno::EINVAL),
            "port {p}"
        );
    }
    // No such domain, or a dead one.
    assert_eq!(bind_interdomain(&mut w, B, 9, for_b), Err(Errno::ESRCH));
    w.alive[1] = false;
    assert_eq!(bind_interdomain(&mut w, B, A.0, for_b), Err(Errno::ESRCH));
    w.alive[1] = true;
    // Once bound, nobody else (nor B again) can bind it.
    bind_interdomain(&mut w, B, A.0, for_b).unwrap();
    assert_eq!(bind_interdomain(&mut w, B, A.0, for_b), Err(Errno::EINVAL));
    assert_eq!(bind_interdomain(&mut w, C, A.0, for_b), Err(Errno::EINVAL));
    // Refusals allocated nothing.
    assert_eq!(
        w.ports[0].iter().filter(|e| **e != Endpoint::Free).count(),
        2
    );
    w.paired().unwrap();
}

#[test]
fn ports_are_managed_only_by_their_domain() {
    let mut w = World::new();
    assert_eq!(alloc_unbound(&mut w, A, B.0, A.0), Err(Errno::EPERM));
    assert_eq!(alloc_unbound(&mut w, A, 9, A.0), Err(Errno::ESRCH));
    // The remote need not exist yet (Xen).
    assert!(alloc_unbound(&mut w, A, A.0, 9).is_ok());
    assert_eq!(status(&w, A, B.0, 1), Err(Errno::EPERM));
    assert_eq!(status(&w, A, A.0, PORTS), Err(Errno::EINVAL));
    // Local kinds are left to the local table.
    assert_eq!(status(&w, A, A.0, 7), Ok(Handled::Local));
    assert_eq!(send(&mut w, A, 7), Ok(Handled::Local));
    assert_eq!(close(&mut w, A, 7), Ok(Handled::Local));
    assert_eq!(send(&mut w, A, 5), Err(Errno::EINVAL));
    assert_eq!(close(&mut w, A, 0), Err(Errno::EINVAL));
}

#[test]
fn loopback_and_exhaustion() {
    let mut w = World::new();
    let p = alloc_unbound(&mut w, A, DOMID_SELF, DOMID_SELF).unwrap();
    let q = bind_interdomain(&mut w, A, DOMID_SELF, p).unwrap();
    assert_ne!(p, q);
    assert_eq!(
        send(&mut w, A, q),
        Ok(Handled::Done(Sent::To {
            dom: A,
            port: p,
            upcall: true
        }))
    );
    w.paired().unwrap();
    while alloc_unbound(&mut w, B, DOMID_SELF, A.0).is_ok() {}
    assert_eq!(
        alloc_unbound(&mut w, B, DOMID_SELF, A.0),
        Err(Errno::ENOSPC)
    );
    let target = alloc_unbound(&mut w, C, DOMID_SELF, B.0).unwrap();
    assert_eq!(bind_interdomain(&mut w, B, C.0, target), Err(Errno::ENOSPC));
    assert_eq!(w.endpoint(C, target), Some(Endpoint::Unbound { remote: B }));
}

#[test]
fn an_ending_domain_unbinds_its_peers_within_its_budget() {
    let mut w = World::new();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let p = alloc_unbound(&mut w, A, DOMID_SELF, B.0).unwrap();
        peers.push(bind_interdomain(&mut w, B, A.0, p).unwrap());
    }
    w.alive[1] = false;
    let mut cursor = 0;
    let mut calls = 0;
    while let Some(n) = close_all(&mut w, A, cursor, 3) {
        assert!(n > cursor && n - cursor <= 3);
        cursor = n;
        calls += 1;
    }
    assert_eq!(calls, 2);
    for p in peers {
        assert_eq!(w.endpoint(B, p), Some(Endpoint::Unbound { remote: A }));
        assert_eq!(send(&mut w, B, p), Ok(Handled::Done(Sent::Dropped)));
    }
    assert!(w.ports[1]
        .iter()
        .all(|e| matches!(e, Endpoint::Free | Endpoint::Reserved | Endpoint::Local)));
    w.paired().unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(u16, u16),
    Bind(u16, u16, u32),
    Send(u16, u32),
    Close(u16, u32),
    Kill(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u16..3, 0u16..4).prop_map(|(d, r)| Op::Alloc(d, r)),
        (0u16..3, 0u16..3, 0u32..9).prop_map(|(d, r, p)| Op::Bind(d, r, p)),
        (0u16..3, 0u32..9).prop_map(|(d, p)| Op::Send(d, p)),
        (0u16..3, 0u32..9).prop_map(|(d, p)| Op::Close(d, p)),
        (0u16..3).prop_map(Op::Kill),
    ]
}

proptest! {
    /// Whatever the domains do: every interdomain end's peer points back; a
    /// bind succeeds exactly when the remote port was unbound for the binder;
    /// a send reaches exactly the peer; no port refers to an ended domain once
    /// its ports are closed.
    #[test]
    fn connections_stay_symmetric_and_consented(ops in proptest::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        for o in ops {
            match o {
                Op::Alloc(d, r) => {
                    if w.alive(DomainId(d)) {
                        let _ = alloc_unbound(&mut w, DomainId(d), DOMID_SELF, r);
                    }
                }
                Op::Bind(d, r, p) => {
                    if w.alive(DomainId(d)) {
                        let before = w.endpoint(DomainId(r), p);
                        let consent = before == Some(Endpoint::Unbound { remote: DomainId(d) })
                            && w.alive(DomainId(r));
                        let room = w.free_port(DomainId(d)).is_ok();
                        let got = bind_interdomain(&mut w, DomainId(d), r, p);
                        prop_assert_eq!(got.is_ok(), consent && room);
                        if got.is_err() {
                            prop_assert_eq!(w.endpoint(DomainId(r), p), before);
                        }
                    }
                }
                Op::Send(d, p) => {
                    if w.alive(DomainId(d)) {
                        let e = w.endpoint(DomainId(d), p);
                        match send(&mut w, DomainId(d), p) {
                            Ok(Handled::Done(Sent::To { dom, port, .. })) => {
                                prop_assert_eq!(e, Some(Endpoint::Interdomain { remote: dom, port }));
                                prop_assert!(w.pending(dom, port));
                            }
                            Ok(Handled::Done(Sent::Dropped)) => {
                                let unbound = matches!(e, Some(Endpoint::Unbound { .. }));
                                prop_assert!(unbound);
                            }
                            _ => {
                                let connected = matches!(e, Some(Endpoint::Interdomain { .. }));
                                prop_assert!(!connected);
                            }
                        }
                    }
                }
                Op::Close(d, p) => {
                    if w.alive(DomainId(d)) {
                        let _ = close(&mut w, DomainId(d), p);
                    }
                }
                Op::Kill(d) => {
                    if w.alive(DomainId(d)) {
                        w.alive[d as usize] = false;
                        let mut c = 0;
                        while let Some(n) = close_all(&mut w, DomainId(d), c, 2) { c = n; }
                        for t in &w.ports {
                            for e in t {
                                let refers = matches!(*e, Endpoint::Interdomain { remote, .. } if remote == DomainId(d));
                                prop_assert!(!refers);
                            }
                        }
                    }
                }
            }
            if let Err(e) = w.paired() {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
