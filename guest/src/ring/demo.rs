//! The split-driver demo's protocol: what `ring_front`, `ring_back` and
//! `bench_ring` put on the ring, and how the two domains meet
//! (`docs/abi/domains.md`, "Finding each other").
//!
//! The front end (the granting domain) initialises the ring page, grants it
//! to the back end as its grant reference [`RING_GREF`], and offers the back
//! end its first event channel ([`RING_PORT`]); the back end maps the grant
//! and binds the port, retrying while either is not offered yet. Both ends
//! keep upcalls masked and sleep in `SCHEDOP_poll` on the port ([`Evtchn`]).
//!
//! A request is 16 bytes ([`Request`]: a sequence number, an [`Op`] and a
//! payload), and so is a response ([`Response`]), so the page holds 128
//! entries. The back end answers [`Op::Echo`] with [`echo`] of the payload,
//! [`Op::Stats`] with what it counted since the last `Stats`, and
//! [`Op::Probe`] honestly and then with a hostile `rsp_prod` (the front end
//! must refuse it: [`super::ResponseOverflow`]).

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

use crate::abi::event::{Pod, EVTCHNSTAT_INTERDOMAIN};
use crate::abi::grant_table::*;
use crate::abi::guest;
use crate::abi::{Errno, GuestVirt, Mfn};
use crate::events;
use crate::mmu::{entry, set_leaf, take_frame};
use crate::pagetable::{Pte, PteFlags};

use super::{run_front, Channel, Front, FrontError, MappedPage, Page};

/// The front end's grant reference for the ring page.
pub const RING_GREF: u32 = 0;
/// The front end's port offered to the back end (its first allocation).
pub const RING_PORT: u32 = 1;
/// How long either end waits for the other to meet, in system time.
pub const MEET_NS: u64 = 10_000_000_000;
/// How long either end waits for any one notification, in system time.
pub const PATIENCE_NS: u64 = 60_000_000_000;

/// What a request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Answer with [`echo`] of the payload.
    Echo,
    /// Answer with the back end's counts since the previous `Stats`
    /// (notifications sent in the low 32 bits of `value`, sleeps in the high).
    Stats,
    /// Answer honestly, then publish a `rsp_prod` far beyond the requests
    /// (and garbage in every slot), notify, and end.
    Probe,
    /// Anything else (answered with [`Response::status`] [`STATUS_BAD_OP`]).
    Unknown(u32),
}

impl Op {
    /// The wire value.
    pub const fn raw(self) -> u32 {
        match self {
            Op::Echo => 1,
            Op::Stats => 2,
            Op::Probe => 3,
            Op::Unknown(v) => v,
        }
    }
    /// From the wire value.
    pub const fn from_raw(v: u32) -> Self {
        match v {
            1 => Op::Echo,
            2 => Op::Stats,
            3 => Op::Probe,
            v => Op::Unknown(v),
        }
    }
}

/// A response's status: done.
pub const STATUS_OK: u32 = 0;
/// A response's status: the op was not understood.
pub const STATUS_BAD_OP: u32 = 1;
/// How far beyond the honest `rsp_prod` the probe's bogus one lies.
pub const PROBE_OVERRUN: u32 = 0x1000;

/// A request: 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The front end's sequence number (0, 1, ...).
    pub seq: u32,
    /// What it asks.
    pub op: Op,
    /// Data for [`Op::Echo`].
    pub payload: u64,
}

/// A response: 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request's sequence number.
    pub seq: u32,
    /// [`STATUS_OK`] or [`STATUS_BAD_OP`].
    pub status: u32,
    /// The answer.
    pub value: u64,
}

fn rd32(b: &[u8], o: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(o..o + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}

fn rd64(b: &[u8], o: usize) -> u64 {
    u64::from(rd32(b, o)) | u64::from(rd32(b, o + 4)) << 32
}

fn wr(o: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = o.get_mut(at..at + v.len()) {
        d.copy_from_slice(v);
    }
}

impl Pod for Request {
    const SIZE: usize = 16;
    fn decode(b: &[u8]) -> Self {
        Request {
            seq: rd32(b, 0),
            op: Op::from_raw(rd32(b, 4)),
            payload: rd64(b, 8),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.seq.to_le_bytes());
        wr(o, 4, &self.op.raw().to_le_bytes());
        wr(o, 8, &self.payload.to_le_bytes());
    }
}

impl Pod for Response {
    const SIZE: usize = 16;
    fn decode(b: &[u8]) -> Self {
        Response {
            seq: rd32(b, 0),
            status: rd32(b, 4),
            value: rd64(b, 8),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.seq.to_le_bytes());
        wr(o, 4, &self.status.to_le_bytes());
        wr(o, 8, &self.value.to_le_bytes());
    }
}

/// The payload of request `seq` (a mix of its bits: neighbours differ
/// everywhere, so a response answering the wrong request shows).
pub const fn payload(seq: u32) -> u64 {
    let mut z = (seq as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The back end's transformation of an echo's payload (not the identity,
/// so that a front end reading its own request back does not pass).
pub const fn echo(seq: u32, payload: u64) -> u64 {
    payload.rotate_left(17) ^ !(seq as u64)
}

/// An echo request `seq`.
pub const fn echo_request(seq: u32) -> Request {
    Request {
        seq,
        op: Op::Echo,
        payload: payload(seq),
    }
}

/// Whether `r` is the right answer to [`echo_request`]`(seq)`.
pub const fn echo_ok(seq: u32, r: &Response) -> bool {
    r.seq == seq && r.status == STATUS_OK && r.value == echo(seq, payload(seq))
}

/// The ring of the demo.
pub type Geometry = super::Geometry<Request, Response>;

/// The back end's counts since its previous `Stats` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackCounts {
    /// Notifications it sent.
    pub notifies: u32,
    /// Times it slept.
    pub waits: u32,
}

impl BackCounts {
    /// The counts packed in a `Stats` answer's value.
    pub const fn pack(self) -> u64 {
        self.notifies as u64 | (self.waits as u64) << 32
    }
    /// The counts a `Stats` answer's value holds.
    pub const fn unpack(v: u64) -> Self {
        Self {
            notifies: v as u32,
            waits: (v >> 32) as u32,
        }
    }
}

/// One `Stats` round trip as request `seq` (the front end's loop, window 1):
/// the back end's counts since its previous one.
pub fn fetch_stats<P: Page>(
    front: &mut Front<P, Request, Response>,
    chan: &Evtchn,
    seq: u32,
) -> Result<BackCounts, FrontError> {
    let mut got = None;
    run_front(
        front,
        &mut &*chan,
        1,
        1,
        |_| Request {
            seq,
            op: Op::Stats,
            payload: 0,
        },
        |_, r| {
            got = Some(BackCounts::unpack(r.value));
            r.seq == seq && r.status == STATUS_OK
        },
    )?;
    got.ok_or(FrontError::WrongResponse(0))
}

/// The event channel between the ends, upcalls masked: a notification is a
/// send, a wait is `SCHEDOP_poll` until the port is pending (then cleared).
/// Counted, so that a loop's handler can read the counts while the loop
/// holds the channel (it is shared: `&Evtchn` is the [`Channel`]).
#[derive(Debug)]
pub struct Evtchn {
    port: u32,
    sent: AtomicU32,
    waits: AtomicU32,
    polls: AtomicU32,
}

impl Evtchn {
    /// The channel on our port `port`.
    pub const fn new(port: u32) -> Self {
        Self {
            port,
            sent: AtomicU32::new(0),
            waits: AtomicU32::new(0),
            polls: AtomicU32::new(0),
        }
    }
    /// Our port.
    pub const fn port(&self) -> u32 {
        self.port
    }
    /// Notifications sent.
    pub fn sent(&self) -> u32 {
        self.sent.load(SeqCst)
    }
    /// Waits.
    pub fn waits(&self) -> u32 {
        self.waits.load(SeqCst)
    }
    /// `SCHEDOP_poll` calls (a wait whose notification had already arrived
    /// makes none).
    pub fn polls(&self) -> u32 {
        self.polls.load(SeqCst)
    }
    /// Clear the port's pending bit; whether it was set.
    pub fn take_pending(&self) -> bool {
        let p = self.port;
        let was = events::pending_word((p / 64) as usize).fetch_and(!(1u64 << (p % 64)), SeqCst);
        // Nothing else is bound, and upcalls are masked: the summary flags
        // only say "this port".
        events::pending_sel().store(0, SeqCst);
        events::upcall_pending().store(0, SeqCst);
        was & 1u64 << (p % 64) != 0
    }
}

impl Channel for &Evtchn {
    fn notify(&mut self) {
        if let Err(e) = guest::evtchn_send(self.port) {
            crate::report::crash(format_args!("ring: EVTCHNOP_send: {e}"));
        }
        self.sent.fetch_add(1, SeqCst);
    }
    fn wait(&mut self) {
        self.waits.fetch_add(1, SeqCst);
        let end = events::now_ns().saturating_add(PATIENCE_NS);
        while !self.take_pending() {
            if events::now_ns() >= end {
                crate::report::crash(format_args!(
                    "ring: no notification from the other end in {} s",
                    PATIENCE_NS / 1_000_000_000
                ));
            }
            self.polls.fetch_add(1, SeqCst);
            if let Err(e) = guest::sched_poll(&[self.port], end) {
                crate::report::crash(format_args!("ring: SCHEDOP_poll: {e}"));
            }
        }
    }
}

/// Why an end could not set the ring up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// A hypercall failed: what, and its error.
    Call(&'static str, Errno),
    /// A hypercall answered a status other than `GNTST_okay`.
    Status(&'static str, i16),
    /// The other end did not come within [`MEET_NS`].
    NoPeer,
}

/// The front end's side, set up.
#[derive(Debug)]
pub struct Offered {
    /// The ring page (ours, granted).
    pub page: MappedPage,
    /// The channel to the back end.
    pub chan: Evtchn,
}

/// The front end: grant a fresh ring page initialised by `init` to `peer`
/// and offer it a port, then wait for the back end to bind it (at most
/// [`MEET_NS`]). Returns what `init` made of the page (the front end's ring)
/// beside the page and the channel.
pub fn offer<T>(peer: u16, init: impl FnOnce(MappedPage) -> T) -> Result<(Offered, T), SetupError> {
    let mut list = [0u64; 1];
    match guest::gnttab_setup_table(&mut list) {
        Ok(GNTST_OKAY) => {}
        Ok(st) => return Err(SetupError::Status("setup_table", st)),
        Err(e) => return Err(SetupError::Call("setup_table", e)),
    }
    let table = take_frame();
    set_leaf(
        table.va,
        entry(Mfn::new(list[0]), PteFlags::PRESENT | PteFlags::WRITABLE),
    )
    .map_err(|e| SetupError::Call("map the grant table", e))?;
    let ring = take_frame();
    let page = MappedPage::new(ring.va.get());
    let made = init(page);
    // The entry's frame first, then its flags: the back end's map succeeds
    // only once the page is initialised and the entry whole.
    let at = table.va.get() + 8 * u64::from(RING_GREF);
    crate::arch::shared_u32(at + 4).store(ring.mfn.get() as u32, SeqCst);
    crate::arch::shared_u32(at).store(u32::from(GTF_PERMIT_ACCESS) | u32::from(peer) << 16, SeqCst);
    let port =
        guest::evtchn_alloc_unbound_for(peer).map_err(|e| SetupError::Call("alloc_unbound", e))?;
    let end = events::now_ns().saturating_add(MEET_NS);
    while guest::evtchn_status(port).map(|s| s.status) != Ok(EVTCHNSTAT_INTERDOMAIN) {
        if events::now_ns() >= end {
            return Err(SetupError::NoPeer);
        }
        let _ = guest::sched_yield();
    }
    Ok((
        Offered {
            page,
            chan: Evtchn::new(port),
        },
        made,
    ))
}

/// The back end's side, set up.
#[derive(Debug)]
pub struct Attached {
    /// The ring page (the front end's, mapped by grant).
    pub page: MappedPage,
    /// The grant handle of that mapping.
    pub handle: u32,
    /// Where it is mapped.
    pub va: GuestVirt,
    /// The channel to the front end.
    pub chan: Evtchn,
}

/// The back end: map `peer`'s ring grant and bind its port, retrying (by
/// yielding) while either is not offered yet, for at most [`MEET_NS`].
pub fn attach(peer: u16) -> Result<Attached, SetupError> {
    let end = events::now_ns().saturating_add(MEET_NS);
    let spare = take_frame();
    set_leaf(spare.va, Pte::EMPTY).map_err(|e| SetupError::Call("free an L1 entry", e))?;
    let handle = loop {
        let mut op = [GnttabMapGrantRef {
            host_addr: spare.va.get(),
            flags: GNTMAP_HOST_MAP,
            gref: RING_GREF,
            dom: peer,
            status: 1,
            ..Default::default()
        }];
        match guest::gnttab_map(&mut op) {
            Ok(()) if op[0].status == GNTST_OKAY => break op[0].handle,
            Ok(()) => {}
            Err(e) => return Err(SetupError::Call("map_grant_ref", e)),
        }
        if events::now_ns() >= end {
            return Err(SetupError::NoPeer);
        }
        let _ = guest::sched_yield();
    };
    let port = loop {
        match guest::evtchn_bind_interdomain(peer, RING_PORT) {
            Ok(p) => break p,
            Err(Errno::EINVAL) if events::now_ns() < end => {
                let _ = guest::sched_yield();
            }
            Err(Errno::EINVAL) => return Err(SetupError::NoPeer),
            Err(e) => return Err(SetupError::Call("bind_interdomain", e)),
        }
    };
    let chan = Evtchn::new(port);
    // A port that binds starts pending: not a notification.
    chan.take_pending();
    Ok(Attached {
        page: MappedPage::new(spare.va.get()),
        handle,
        va: spare.va,
        chan,
    })
}

/// The back end's teardown: unmap the ring and close the port.
pub fn detach(a: &Attached) -> Result<(), SetupError> {
    let mut op = [GnttabUnmapGrantRef {
        host_addr: a.va.get(),
        handle: a.handle,
        status: 1,
        ..Default::default()
    }];
    match guest::gnttab_unmap(&mut op) {
        Ok(()) if op[0].status == GNTST_OKAY => {}
        Ok(()) => return Err(SetupError::Status("unmap_grant_ref", op[0].status)),
        Err(e) => return Err(SetupError::Call("unmap_grant_ref", e)),
    }
    guest::evtchn_close(a.chan.port()).map_err(|e| SetupError::Call("close", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_16_bytes_and_128_fit() {
        assert_eq!(Geometry::ENTRY, 16);
        assert_eq!(Geometry::SIZE, 128);
    }

    #[test]
    fn requests_and_responses_round_trip() {
        for op in [Op::Echo, Op::Stats, Op::Probe, Op::Unknown(77)] {
            let r = Request {
                seq: 0x0102_0304,
                op,
                payload: 0x1122_3344_5566_7788,
            };
            let mut b = [0u8; 16];
            r.encode(&mut b);
            assert_eq!(Request::decode(&b), r);
        }
        let r = Response {
            seq: 9,
            status: STATUS_BAD_OP,
            value: u64::MAX - 3,
        };
        let mut b = [0u8; 16];
        r.encode(&mut b);
        assert_eq!(Response::decode(&b), r);
    }

    #[test]
    fn an_echo_checks_its_sequence_number_and_payload() {
        let good = Response {
            seq: 5,
            status: STATUS_OK,
            value: echo(5, payload(5)),
        };
        assert!(echo_ok(5, &good));
        assert!(!echo_ok(6, &good), "another request's answer");
        assert!(!echo_ok(5, &Response { seq: 6, ..good }));
        assert!(!echo_ok(5, &Response { status: 1, ..good }));
        // The request read back is not an answer.
        assert!(!echo_ok(
            5,
            &Response {
                value: payload(5),
                ..good
            }
        ));
        assert_ne!(payload(1), payload(2));
    }
}
