//! The shared ring of split drivers: `xen/include/public/io/ring.h`, as a
//! generic layout and the index rules of both ends.
//!
//! **ABI 1.1.** The ring needs nothing from the hypervisor beyond a page shared by grant and an event
//! channel between the two domains; this module is the one place both ends of a
//! split driver take its layout and its rules from. Reference: `docs/abi/grant.md`.
//!
//! A ring is one page: a 64-byte header ([`SringHeader`]: `req_prod`,
//! `req_event`, `rsp_prod`, `rsp_event`) and then as many entries as fit,
//! rounded down to a power of two; each entry holds a request or a response
//! (the larger of the two sizes). The front end produces requests and consumes
//! responses, the back end the reverse; indices are free-running `u32`s taken
//! modulo the ring size. A producer notifies the other end only when the other
//! end asked for it, by setting its `*_event` index: [`need_notify`].
//!
//! Bare-metal difference: a device's descriptor ring is read by hardware; this
//! one is read by another domain, which may be hostile, so the back end bounds
//! what it consumes by the ring size whatever `req_prod` says
//! ([`BackRing::unconsumed_requests`]).

use core::marker::PhantomData;
use core::mem::size_of;

/// `RING_IDX`: a free-running index.
pub type RingIdx = u32;

/// The header of `struct <name>_sring` (`DEFINE_RING_TYPES`): the first 64
/// bytes of the shared page.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SringHeader {
    /// Requests produced by the front end.
    pub req_prod: RingIdx,
    /// The back end wants a notification when `req_prod` passes this.
    pub req_event: RingIdx,
    /// Responses produced by the back end.
    pub rsp_prod: RingIdx,
    /// The front end wants a notification when `rsp_prod` passes this.
    pub rsp_event: RingIdx,
    /// The union `pvt` (driver-private: netif's `smartpoll_active`, ...).
    pub pvt: [u8; 4],
    /// Padding to 64 bytes.
    pub pad: [u8; 44],
}

/// The byte offset of the first entry in the page (the header's size).
pub const fn first_entry_offset() -> usize {
    size_of::<SringHeader>()
}

const _: () = assert!(size_of::<SringHeader>() == 64);

impl crate::event::Pod for SringHeader {
    const SIZE: usize = 64;
    fn decode(b: &[u8]) -> Self {
        use crate::event::rd32;
        let mut pvt = [0u8; 4];
        if let Some(s) = b.get(16..20) {
            pvt.copy_from_slice(s);
        }
        let mut pad = [0u8; 44];
        if let Some(s) = b.get(20..64) {
            pad.copy_from_slice(s);
        }
        Self {
            req_prod: rd32(b, 0),
            req_event: rd32(b, 4),
            rsp_prod: rd32(b, 8),
            rsp_event: rd32(b, 12),
            pvt,
            pad,
        }
    }
    fn encode(&self, o: &mut [u8]) {
        use crate::event::wr;
        wr(o, 0, &self.req_prod.to_le_bytes());
        wr(o, 4, &self.req_event.to_le_bytes());
        wr(o, 8, &self.rsp_prod.to_le_bytes());
        wr(o, 12, &self.rsp_event.to_le_bytes());
        wr(o, 16, &self.pvt);
        wr(o, 20, &self.pad);
    }
}

/// `__CONST_RING_SIZE`: the number of entries of `entry_size` bytes that fit in
/// `page_size` bytes after the header, rounded down to a power of two (0 if none).
pub const fn ring_size(entry_size: usize, page_size: usize) -> u32 {
    if entry_size == 0 || page_size <= first_entry_offset() {
        return 0;
    }
    let n = (page_size - first_entry_offset()) / entry_size;
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

/// The layout of a ring of requests `Req` and responses `Rsp` in one 4 KiB page.
pub struct SharedRing<Req, Rsp>(PhantomData<(Req, Rsp)>);

impl<Req, Rsp> SharedRing<Req, Rsp> {
    /// The size of one entry: the union of a request and a response.
    pub const ENTRY_SIZE: usize = if size_of::<Req>() > size_of::<Rsp>() {
        size_of::<Req>()
    } else {
        size_of::<Rsp>()
    };
    /// The number of entries (a power of two).
    pub const SIZE: u32 = ring_size(Self::ENTRY_SIZE, crate::addr::PAGE_SIZE as usize);

    /// The byte offset in the page of the entry index `idx` refers to.
    pub const fn entry_offset(idx: RingIdx) -> usize {
        first_entry_offset() + (idx & (Self::SIZE - 1)) as usize * Self::ENTRY_SIZE
    }
}

/// `RING_PUSH_*_AND_CHECK_NOTIFY`: after moving a producer index from `old` to
/// `new`, whether the consumer asked to be notified (its event index lies in
/// `(old, new]`, modulo 2^32).
pub const fn need_notify(old: RingIdx, new: RingIdx, event: RingIdx) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// The front end's private indices (`struct <name>_front_ring`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontRing {
    /// Requests produced but perhaps not yet pushed.
    pub req_prod_pvt: RingIdx,
    /// Responses consumed.
    pub rsp_cons: RingIdx,
    /// The ring size (a power of two).
    pub nr_ents: u32,
}

impl FrontRing {
    /// A fresh front end on a ring of `nr_ents` entries (`SHARED_RING_INIT` +
    /// `FRONT_RING_INIT`).
    pub const fn new(nr_ents: u32) -> Self {
        Self {
            req_prod_pvt: 0,
            rsp_cons: 0,
            nr_ents,
        }
    }
    /// `RING_FREE_REQUESTS`.
    pub const fn free_requests(&self) -> u32 {
        self.nr_ents
            .saturating_sub(self.req_prod_pvt.wrapping_sub(self.rsp_cons))
    }
    /// Claim the next request slot, or `None` when the ring is full
    /// (`RING_FULL`).
    pub fn next_request(&mut self) -> Option<RingIdx> {
        if self.free_requests() == 0 {
            return None;
        }
        let i = self.req_prod_pvt;
        self.req_prod_pvt = i.wrapping_add(1);
        Some(i)
    }
    /// `RING_RESPONSE_PROD_OVERFLOW`: whether `rsp_prod` (as read from the
    /// page) claims more responses than this end has requests outstanding, which
    /// no honest back end publishes. Stricter than Xen's macro (which bounds by
    /// the ring size): a response can only answer a request already produced.
    pub const fn response_prod_overflow(&self, rsp_prod: RingIdx) -> bool {
        rsp_prod.wrapping_sub(self.rsp_cons) > self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }
    /// Responses the back end has produced (`rsp_prod`, as read from the page)
    /// that this end has not consumed, bounded by the requests outstanding.
    pub const fn unconsumed_responses(&self, rsp_prod: RingIdx) -> u32 {
        let n = rsp_prod.wrapping_sub(self.rsp_cons);
        let outstanding = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        if n > outstanding {
            outstanding
        } else {
            n
        }
    }
}

/// The back end's private indices (`struct <name>_back_ring`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackRing {
    /// Responses produced but perhaps not yet pushed.
    pub rsp_prod_pvt: RingIdx,
    /// Requests consumed.
    pub req_cons: RingIdx,
    /// The ring size (a power of two).
    pub nr_ents: u32,
}

impl BackRing {
    /// A fresh back end on a ring of `nr_ents` entries (`BACK_RING_INIT`).
    pub const fn new(nr_ents: u32) -> Self {
        Self {
            rsp_prod_pvt: 0,
            req_cons: 0,
            nr_ents,
        }
    }
    /// `RING_UNCONSUMED_REQUESTS`: requests the front end published
    /// (`req_prod`, read from the page) that this end may consume now. Never
    /// more than the slots not holding an unconsumed response, whatever a
    /// hostile front end wrote (`RING_REQUEST_CONS_OVERFLOW`).
    pub const fn unconsumed_requests(&self, req_prod: RingIdx) -> u32 {
        let published = req_prod.wrapping_sub(self.req_cons);
        let room = self
            .nr_ents
            .saturating_sub(self.req_cons.wrapping_sub(self.rsp_prod_pvt));
        if published < room {
            published
        } else {
            room
        }
    }
    /// Consume one request, if `req_prod` allows; its index.
    pub fn next_request(&mut self, req_prod: RingIdx) -> Option<RingIdx> {
        if self.unconsumed_requests(req_prod) == 0 {
            return None;
        }
        let i = self.req_cons;
        self.req_cons = i.wrapping_add(1);
        Some(i)
    }
    /// Claim the slot for the next response (only after consuming a request:
    /// a response reuses its request's slot), or `None`.
    pub fn next_response(&mut self) -> Option<RingIdx> {
        if self.rsp_prod_pvt == self.req_cons {
            return None;
        }
        let i = self.rsp_prod_pvt;
        self.rsp_prod_pvt = i.wrapping_add(1);
        Some(i)
    }
}

/// `RING_FINAL_CHECK_FOR_REQUESTS` / `RING_FINAL_CHECK_FOR_RESPONSES`: before
/// a consumer sleeps, it asks to be notified at the next index it will consume
/// (`set_event(consumed + 1)`), then reads the producer index again: work that
/// arrived in between is found now instead of being missed. `unconsumed` reads
/// the producer's index (with a full barrier before, in the guest) and counts
/// what is left. Whether there is work after all.
pub fn final_check(
    consumed: RingIdx,
    mut unconsumed: impl FnMut() -> u32,
    mut set_event: impl FnMut(RingIdx),
) -> bool {
    if unconsumed() > 0 {
        return true;
    }
    set_event(consumed.wrapping_add(1));
    unconsumed() > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_are_xens() {
        // blkif: 112-byte requests -> 32 entries; netif tx: 12 bytes -> 256.
        assert_eq!(ring_size(112, 4096), 32);
        assert_eq!(ring_size(12, 4096), 256);
        assert_eq!(ring_size(4032, 4096), 1);
        assert_eq!(ring_size(4033, 4096), 0);
        assert_eq!(SharedRing::<[u8; 16], [u8; 8]>::SIZE, 128);
        assert_eq!(SharedRing::<[u8; 16], [u8; 8]>::entry_offset(129), 64 + 16);
    }

    #[test]
    fn a_response_index_beyond_the_requests_is_an_overflow() {
        let mut f = FrontRing::new(8);
        f.req_prod_pvt = 5;
        f.rsp_cons = 2;
        assert!(!f.response_prod_overflow(2));
        assert!(!f.response_prod_overflow(5));
        assert!(f.response_prod_overflow(6));
        assert!(f.response_prod_overflow(2 + 0x1000));
        // Behind the consumer is as bogus as far ahead (it wraps to huge).
        assert!(f.response_prod_overflow(1));
        assert_eq!(f.unconsumed_responses(2 + 0x1000), 3);
        // Across the 2^32 wrap.
        let f = FrontRing {
            req_prod_pvt: 3,
            rsp_cons: u32::MAX - 1,
            nr_ents: 8,
        };
        assert!(!f.response_prod_overflow(2));
        assert!(f.response_prod_overflow(4));
    }

    #[test]
    fn notify_only_when_the_event_index_is_passed() {
        assert!(need_notify(0, 1, 1));
        assert!(!need_notify(1, 2, 1));
        assert!(need_notify(5, 9, 7));
        assert!(!need_notify(5, 9, 10));
        // Across the 2^32 wrap.
        assert!(need_notify(u32::MAX, 1, 0));
    }

    /// The shared header and both ends, stepped one action at a time in any
    /// interleaving: the front produces requests and sleeps when it has
    /// nothing to do, the back answers and sleeps; each notifies only when
    /// the other asked (`need_notify`) and checks once more before sleeping
    /// (`final_check`).
    #[derive(Default)]
    struct Sim {
        hdr: Indices,
        front: Option<FrontRing>,
        back: Option<BackRing>,
        back_asleep: bool,
        front_asleep: bool,
        notifies: u32,
        sent: u32,
        answered: u32,
    }
    #[derive(Default, Clone, Copy)]
    struct Indices {
        req_prod: u32,
        req_event: u32,
        rsp_prod: u32,
        rsp_event: u32,
    }

    impl Sim {
        fn new(n: u32, start: u32) -> Self {
            Sim {
                hdr: Indices {
                    req_prod: start,
                    req_event: start.wrapping_add(1),
                    rsp_prod: start,
                    rsp_event: start.wrapping_add(1),
                },
                front: Some(FrontRing {
                    req_prod_pvt: start,
                    rsp_cons: start,
                    nr_ents: n,
                }),
                back: Some(BackRing {
                    rsp_prod_pvt: start,
                    req_cons: start,
                    nr_ents: n,
                }),
                ..Default::default()
            }
        }
        /// The front end sends up to `k` requests and pushes them.
        fn front_send(&mut self, k: u32, total: u32) {
            let f = self.front.as_mut().unwrap();
            let old = self.hdr.req_prod;
            let mut n = 0;
            while n < k && self.sent < total && f.next_request().is_some() {
                n += 1;
                self.sent += 1;
            }
            self.hdr.req_prod = f.req_prod_pvt;
            if need_notify(old, self.hdr.req_prod, self.hdr.req_event) {
                self.notifies += 1;
                self.back_asleep = false;
            }
        }
        /// The back end, if awake, answers everything it can, pushes, then
        /// checks once more and sleeps if there is nothing.
        fn back_run(&mut self) {
            if self.back_asleep {
                return;
            }
            let b = self.back.as_mut().unwrap();
            let old = self.hdr.rsp_prod;
            while b.next_request(self.hdr.req_prod).is_some() {
                b.next_response().unwrap();
            }
            self.hdr.rsp_prod = b.rsp_prod_pvt;
            if need_notify(old, self.hdr.rsp_prod, self.hdr.rsp_event) {
                self.notifies += 1;
                self.front_asleep = false;
            }
            let (cons, hdr) = (b.req_cons, &mut self.hdr);
            let req_prod = hdr.req_prod;
            let more = final_check(cons, || req_prod.wrapping_sub(cons), |e| hdr.req_event = e);
            let more = more || self.hdr.req_prod != req_prod;
            self.back_asleep = !more;
        }
        /// The front end, if awake, consumes responses, then checks once more
        /// and sleeps if there are none and nothing is outstanding.
        fn front_run(&mut self) {
            if self.front_asleep {
                return;
            }
            let f = self.front.as_mut().unwrap();
            let n = f.unconsumed_responses(self.hdr.rsp_prod);
            f.rsp_cons = f.rsp_cons.wrapping_add(n);
            self.answered += n;
            let (cons, hdr) = (f.rsp_cons, &mut self.hdr);
            let rsp_prod = hdr.rsp_prod;
            let outstanding = f.req_prod_pvt.wrapping_sub(cons);
            let more = final_check(cons, || rsp_prod.wrapping_sub(cons), |e| hdr.rsp_event = e);
            self.front_asleep = !more && outstanding > 0;
        }
    }

    proptest! {
        /// Every request is answered in any interleaving (no lost wake-up),
        /// and there are never more notifications than requests and
        /// responses together.
        #[test]
        fn notifications_only_when_asked_and_none_lost(
            start in any::<u32>(),
            steps in proptest::collection::vec(0u8..3, 1..300),
        ) {
            let total = 100;
            let mut s = Sim::new(8, start);
            for st in steps {
                match st {
                    0 => s.front_send(3, total),
                    1 => s.back_run(),
                    _ => s.front_run(),
                }
            }
            // Then let everyone finish: only notified ends run.
            for _ in 0..1000 {
                s.front_send(8, total);
                s.back_run();
                s.front_run();
                if s.answered == total {
                    break;
                }
            }
            prop_assert_eq!(s.answered, total);
            prop_assert!(s.notifies <= 2 * total);
        }

        #[test]
        fn a_hostile_req_prod_never_overruns_the_ring(
            start in any::<u32>(), req_prod in any::<u32>(), done in 0u32..64
        ) {
            let mut b = BackRing { rsp_prod_pvt: start, req_cons: start, nr_ents: 32 };
            let mut consumed = 0;
            let mut answered = 0;
            while b.next_request(req_prod).is_some() {
                consumed += 1;
                // Never more outstanding than the ring holds, never more in all
                // than the slots the responses freed.
                prop_assert!(b.req_cons.wrapping_sub(b.rsp_prod_pvt) <= 32);
                prop_assert!(consumed <= 32 + answered);
                prop_assert!(consumed <= req_prod.wrapping_sub(start));
                if answered < done {
                    prop_assert!(b.next_response().is_some());
                    answered += 1;
                }
            }
        }

        #[test]
        fn front_and_back_agree(start in any::<u32>(), ops in proptest::collection::vec(0u8..4, 0..200)) {
            let mut f = FrontRing { req_prod_pvt: start, rsp_cons: start, nr_ents: 8 };
            let mut b = BackRing { rsp_prod_pvt: start, req_cons: start, nr_ents: 8 };
            let (mut req_prod, mut rsp_prod) = (start, start);
            for op in ops {
                match op {
                    0 => if f.next_request().is_some() { req_prod = f.req_prod_pvt },
                    1 => { b.next_request(req_prod); }
                    2 => if b.next_response().is_some() { rsp_prod = b.rsp_prod_pvt },
                    _ => {
                        let n = f.unconsumed_responses(rsp_prod);
                        f.rsp_cons = f.rsp_cons.wrapping_add(n);
                    }
                }
                prop_assert!(f.free_requests() <= 8);
                prop_assert!(req_prod.wrapping_sub(f.rsp_cons) <= 8);
            }
        }
    }
}
