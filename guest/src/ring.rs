//! Split-driver rings for guests: both ends of Xen's `io/ring.h` over one
//! shared page, with the index rules of [`crate::abi::ring`].
//!
//! The page is 1,024 32-bit words ([`Page`]): the header's four indices
//! (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`) and then the entries.
//! The front end ([`Front`]) writes requests and reads responses, the back end
//! ([`Back`]) the reverse. The barriers are ring.h's:
//!
//! - a producer writes its entries, then the producer index (`xen_wmb`: on
//!   x86 stores are not reordered with stores, so a release store suffices),
//!   then a full barrier (`xen_mb`: MFENCE) before it reads the other end's
//!   event index, so that either it sees the other end's request for a
//!   notification or the other end sees the new index
//!   (`RING_PUSH_*_AND_CHECK_NOTIFY`, [`Front::push_requests`]);
//! - a consumer about to sleep writes its event index, a full barrier, and
//!   reads the producer index once more (`RING_FINAL_CHECK_FOR_*`,
//!   [`Back::final_check_for_requests`]).
//!
//! Without either barrier a notification can be lost (x86 may let a load pass
//! an earlier store); the host tests run both ends against a model of the
//! store buffers that finds that.
//!
//! The other end may be hostile: an entry is copied out of the page once and
//! then decoded (never read twice), the back end never consumes more
//! requests than the ring holds, whatever `req_prod` says
//! ([`crate::abi::ring::BackRing::unconsumed_requests`]), and the front end
//! refuses a `rsp_prod` that claims more responses than it has requests
//! outstanding ([`ResponseOverflow`]: the ring is broken, as Linux's
//! `blkfront` treats `RING_RESPONSE_PROD_OVERFLOW`), consuming none of them.
//!
//! [`run_front`] and [`serve`] are the two ends' loops (the demo programs
//! `ring_front` and `ring_back` use them) over a [`Channel`], the event
//! channel between the domains.

pub mod demo;

use core::marker::PhantomData;
use core::sync::atomic::Ordering;

use crate::abi::event::Pod;
use crate::abi::ring::{first_entry_offset, need_notify, ring_size, BackRing, FrontRing, RingIdx};

/// The ring page's size in bytes (one 4 KiB page).
pub const PAGE_BYTES: usize = 4096;
/// The words of the page.
pub const PAGE_WORDS: usize = PAGE_BYTES / 4;
/// Word index of `req_prod`.
pub const REQ_PROD: usize = 0;
/// Word index of `req_event`.
pub const REQ_EVENT: usize = 1;
/// Word index of `rsp_prod`.
pub const RSP_PROD: usize = 2;
/// Word index of `rsp_event`.
pub const RSP_EVENT: usize = 3;
/// The largest entry the ring code copies (a stack buffer holds one).
pub const MAX_ENTRY: usize = 512;

/// The shared page as 32-bit words, as one end sees it.
pub trait Page {
    /// Read word `i` (an acquire load: what the other end wrote before the
    /// store this load sees is visible after it).
    fn load(&self, i: usize) -> u32;
    /// Write word `i` (a release store: ordered after every earlier store).
    fn store(&self, i: usize, v: u32);
    /// A full barrier (`xen_mb`): every store before it is visible to the
    /// other end before any load after it is done.
    fn fence(&self);
}

/// The ring page mapped at a guest-virtual address (a granted frame).
#[derive(Clone, Copy, Debug)]
pub struct MappedPage {
    va: u64,
}

impl MappedPage {
    /// The page mapped at `va` (page-aligned, mapped for as long as the
    /// value is used).
    pub const fn new(va: u64) -> Self {
        Self { va }
    }
    fn word(&self, i: usize) -> &'static core::sync::atomic::AtomicU32 {
        crate::arch::shared_u32(self.va + 4 * (i % PAGE_WORDS) as u64)
    }
}

impl Page for MappedPage {
    fn load(&self, i: usize) -> u32 {
        self.word(i).load(Ordering::Acquire)
    }
    fn store(&self, i: usize, v: u32) {
        self.word(i).store(v, Ordering::Release)
    }
    fn fence(&self) {
        core::sync::atomic::fence(Ordering::SeqCst)
    }
}

/// The geometry of a ring of `Req` requests and `Rsp` responses.
pub struct Geometry<Req, Rsp>(PhantomData<(Req, Rsp)>);

impl<Req: Pod, Rsp: Pod> Geometry<Req, Rsp> {
    /// One entry: the larger of a request and a response, in bytes.
    pub const ENTRY: usize = {
        let e = if Req::SIZE > Rsp::SIZE {
            Req::SIZE
        } else {
            Rsp::SIZE
        };
        assert!(
            e % 4 == 0 && e > 0 && e <= MAX_ENTRY,
            "ring entries are 4..=512 bytes, whole words"
        );
        e
    };
    /// The number of entries (a power of two, `__CONST_RING_SIZE`).
    pub const SIZE: u32 = ring_size(Self::ENTRY, PAGE_BYTES);
    /// The first word of the entry index `idx` refers to.
    pub const fn entry_word(idx: RingIdx) -> usize {
        (first_entry_offset() + (idx & (Self::SIZE - 1)) as usize * Self::ENTRY) / 4
    }
}

fn write_entry<P: Page, T: Pod>(page: &P, first: usize, v: &T) {
    let mut b = [0u8; MAX_ENTRY];
    v.encode(&mut b);
    for (k, w) in b.chunks_exact(4).take(T::SIZE.div_ceil(4)).enumerate() {
        page.store(first + k, u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
}

fn read_entry<P: Page, T: Pod>(page: &P, first: usize) -> T {
    // Copied out once, then decoded: the other end may change the page
    // meanwhile, but the value decoded is one snapshot.
    let mut b = [0u8; MAX_ENTRY];
    for (k, w) in b.chunks_exact_mut(4).take(T::SIZE.div_ceil(4)).enumerate() {
        w.copy_from_slice(&page.load(first + k).to_le_bytes());
    }
    T::decode(&b)
}

/// The front end of a ring: produces requests, consumes responses.
pub struct Front<P, Req, Rsp> {
    page: P,
    idx: FrontRing,
    _t: PhantomData<(Req, Rsp)>,
}

impl<P: Page, Req: Pod, Rsp: Pod> Front<P, Req, Rsp> {
    /// Initialise the shared page and this end (`SHARED_RING_INIT` +
    /// `FRONT_RING_INIT`): every index 0, both event indices 1 (each end
    /// wants to hear of the first entry).
    pub fn init(page: P) -> Self {
        page.store(REQ_PROD, 0);
        page.store(RSP_PROD, 0);
        page.store(REQ_EVENT, 1);
        page.store(RSP_EVENT, 1);
        Self {
            page,
            idx: FrontRing::new(Geometry::<Req, Rsp>::SIZE),
            _t: PhantomData,
        }
    }

    /// The ring's entries.
    pub fn size(&self) -> u32 {
        self.idx.nr_ents
    }

    /// Requests produced whose response has not been consumed.
    pub fn outstanding(&self) -> u32 {
        self.idx.req_prod_pvt.wrapping_sub(self.idx.rsp_cons)
    }

    /// Write `req` into the next free slot (not yet visible to the back end:
    /// [`Front::push_requests`]). `false` when the ring is full.
    pub fn request(&mut self, req: &Req) -> bool {
        let Some(i) = self.idx.next_request() else {
            return false;
        };
        write_entry(&self.page, Geometry::<Req, Rsp>::entry_word(i), req);
        true
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publish the requests written,
    /// and whether the back end asked to be notified of them.
    pub fn push_requests(&mut self) -> bool {
        let old = self.page.load(REQ_PROD);
        let new = self.idx.req_prod_pvt;
        self.page.store(REQ_PROD, new);
        self.page.fence();
        need_notify(old, new, self.page.load(REQ_EVENT))
    }

    /// Responses consumed so far (`rsp_cons`).
    pub fn consumed(&self) -> RingIdx {
        self.idx.rsp_cons
    }

    /// The next response, if the back end has published one. An error, and
    /// nothing consumed, if the published `rsp_prod` claims responses to
    /// requests never made: the back end is broken or hostile, and no entry
    /// of the ring can be trusted any more.
    pub fn response(&mut self) -> Result<Option<Rsp>, ResponseOverflow> {
        let prod = self.page.load(RSP_PROD);
        if self.idx.response_prod_overflow(prod) {
            return Err(ResponseOverflow {
                rsp_prod: prod,
                rsp_cons: self.idx.rsp_cons,
                req_prod: self.idx.req_prod_pvt,
            });
        }
        if self.idx.unconsumed_responses(prod) == 0 {
            return Ok(None);
        }
        let i = self.idx.rsp_cons;
        let r = read_entry(&self.page, Geometry::<Req, Rsp>::entry_word(i));
        self.idx.rsp_cons = i.wrapping_add(1);
        Ok(Some(r))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: whether responses are waiting; if
    /// none, the back end is first asked to notify of the next one, so that
    /// `false` means sleeping until notified loses nothing.
    pub fn final_check_for_responses(&mut self) -> bool {
        if self.idx.unconsumed_responses(self.page.load(RSP_PROD)) > 0 {
            return true;
        }
        self.page
            .store(RSP_EVENT, self.idx.rsp_cons.wrapping_add(1));
        self.page.fence();
        self.idx.unconsumed_responses(self.page.load(RSP_PROD)) > 0
    }
}

/// A `rsp_prod` beyond the requests produced
/// ([`FrontRing::response_prod_overflow`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseOverflow {
    /// What the back end published.
    pub rsp_prod: RingIdx,
    /// The responses this end had consumed.
    pub rsp_cons: RingIdx,
    /// The requests this end had produced.
    pub req_prod: RingIdx,
}

/// The back end of a ring: consumes requests, produces responses.
pub struct Back<P, Req, Rsp> {
    page: P,
    idx: BackRing,
    _t: PhantomData<(Req, Rsp)>,
}

impl<P: Page, Req: Pod, Rsp: Pod> Back<P, Req, Rsp> {
    /// Attach to a page the front end initialised (`BACK_RING_ATTACH` at the
    /// published `rsp_prod`; `req_cons` there too: a back end that attaches
    /// late answers only the requests made after the last response).
    pub fn attach(page: P) -> Self {
        let at = page.load(RSP_PROD);
        let mut idx = BackRing::new(Geometry::<Req, Rsp>::SIZE);
        idx.rsp_prod_pvt = at;
        idx.req_cons = at;
        Self {
            page,
            idx,
            _t: PhantomData,
        }
    }

    /// The next request, if the front end has published one (never more
    /// than the ring holds beyond the responses produced).
    pub fn request(&mut self) -> Option<Req> {
        let prod = self.page.load(REQ_PROD);
        let i = self.idx.next_request(prod)?;
        Some(read_entry(&self.page, Geometry::<Req, Rsp>::entry_word(i)))
    }

    /// Write the response to the oldest request not yet answered (not yet
    /// visible: [`Back::push_responses`]). `false` if every request consumed
    /// has its response.
    pub fn respond(&mut self, rsp: &Rsp) -> bool {
        let Some(i) = self.idx.next_response() else {
            return false;
        };
        write_entry(&self.page, Geometry::<Req, Rsp>::entry_word(i), rsp);
        true
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publish the responses written,
    /// and whether the front end asked to be notified of them.
    pub fn push_responses(&mut self) -> bool {
        let old = self.page.load(RSP_PROD);
        let new = self.idx.rsp_prod_pvt;
        self.page.store(RSP_PROD, new);
        self.page.fence();
        need_notify(old, new, self.page.load(RSP_EVENT))
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: as
    /// [`Front::final_check_for_responses`], for requests.
    pub fn final_check_for_requests(&mut self) -> bool {
        if self.idx.unconsumed_requests(self.page.load(REQ_PROD)) > 0 {
            return true;
        }
        self.page
            .store(REQ_EVENT, self.idx.req_cons.wrapping_add(1));
        self.page.fence();
        self.idx.unconsumed_requests(self.page.load(REQ_PROD)) > 0
    }
}

/// The event channel between the two ends, as the ring loops use it.
pub trait Channel {
    /// Notify the other end (`EVTCHNOP_send`).
    fn notify(&mut self);
    /// Return once a notification from the other end has arrived since the
    /// last return (at once if one already has).
    fn wait(&mut self);
}

/// What a ring loop did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries produced (requests for the front end, responses for the back).
    pub produced: u32,
    /// Notifications sent.
    pub notifies: u32,
    /// Times the loop slept in [`Channel::wait`].
    pub waits: u32,
}

/// Why [`run_front`] stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontError {
    /// Response `n` (0-based) was not the one expected.
    WrongResponse(u32),
    /// The back end published an impossible `rsp_prod`.
    Overflow(ResponseOverflow),
}

/// The front end's loop: send `total` requests (`make(n)`), at most `window`
/// outstanding (clamped to the ring's size), and check each response
/// (`check(n, &rsp)`, in order). Notifies only when the back end asked,
/// sleeps only after [`Front::final_check_for_responses`] found nothing and
/// nothing more can be sent.
pub fn run_front<P: Page, Req: Pod, Rsp: Pod, C: Channel>(
    front: &mut Front<P, Req, Rsp>,
    chan: &mut C,
    total: u32,
    window: u32,
    mut make: impl FnMut(u32) -> Req,
    mut check: impl FnMut(u32, &Rsp) -> bool,
) -> Result<Stats, FrontError> {
    let window = window.clamp(1, front.size());
    let mut st = Stats::default();
    let mut got = 0;
    while got < total {
        let mut sent_now = false;
        while st.produced < total && front.outstanding() < window {
            if !front.request(&make(st.produced)) {
                break;
            }
            st.produced += 1;
            sent_now = true;
        }
        if sent_now && front.push_requests() {
            chan.notify();
            st.notifies += 1;
        }
        loop {
            while let Some(r) = front.response().map_err(FrontError::Overflow)? {
                if !check(got, &r) {
                    return Err(FrontError::WrongResponse(got));
                }
                got += 1;
            }
            if !front.final_check_for_responses() {
                break;
            }
        }
        let can_send = st.produced < total && front.outstanding() < window;
        if got < total && !can_send {
            chan.wait();
            st.waits += 1;
        }
    }
    Ok(st)
}

/// Whether [`serve`] goes on after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Serve the next request.
    More,
    /// That was the last: push its response and return.
    Stop,
}

/// The back end's loop: answer each request with `handle(&req)` until it
/// says [`Flow::Stop`]. Notifies only when the front end asked, sleeps only
/// after [`Back::final_check_for_requests`] found nothing.
pub fn serve<P: Page, Req: Pod, Rsp: Pod, C: Channel>(
    back: &mut Back<P, Req, Rsp>,
    chan: &mut C,
    mut handle: impl FnMut(&Req) -> (Rsp, Flow),
) -> Stats {
    let mut st = Stats::default();
    loop {
        let mut stop = false;
        while let Some(req) = back.request() {
            let (rsp, flow) = handle(&req);
            if back.respond(&rsp) {
                st.produced += 1;
            }
            if flow == Flow::Stop {
                stop = true;
                break;
            }
        }
        if back.push_responses() {
            chan.notify();
            st.notifies += 1;
        }
        if stop {
            return st;
        }
        if !back.final_check_for_requests() {
            chan.wait();
            st.waits += 1;
        }
    }
}

#[cfg(test)]
mod tests;
