//! # Inbox: interdomain sends to a domain on another CPU, posted
//!
//! `EVTCHNOP_send` on an interdomain port makes the other end pending and
//! wakes the vCPU it notifies. When that domain runs on another CPU, its
//! port table, shared page and scheduler belong to that CPU's run loop, and
//! reaching them from here would stop every CPU (`crate::vmx::lend`). A
//! send needs none of them at once: it only has to be seen before the
//! receiving domain next looks at its events. So the sender *posts* the
//! port here, in the receiving domain's inbox, and kicks its CPU; that CPU
//! *takes* the posts at the top of its run loop and makes each port pending
//! the way a local send does (its `Peers::notify`). This is Xen's
//! `evtchn_send` followed by `vcpu_kick`, with the setting of the pending
//! bit done by the CPU that owns the port rather than under a per-channel
//! lock.
//!
//! **Why a posted port still names the channel it was sent on.** A post is
//! made during the sender's exit, with the sender's port bound to the
//! receiver's. Binding and closing an interdomain port are cross-CPU
//! operations, which run only once every CPU has lent its domains, that
//! is, between exits. A post made before such an operation is taken at the
//! operation's start (`vmx::run`, with every CPU's domains at hand), before
//! the operation can change a binding. So a port is made pending as if the
//! send had been handled at once, in the order Xen gives: a send before a
//! close is delivered, none after it.
//!
//! **Nothing is lost, nothing is unbounded.** A post sets one bit: a port
//! posted twice before it is taken is made pending once, as two sends of a
//! port that is already pending are (2-level events carry no count). Taking
//! visits at most every port of the domain. The summary word is set after
//! the port's bit and cleared before the bits are taken, so a post that
//! races a take is taken then or by the next take, which its kick asks for.
//! A post of a port still waiting to be taken asks for no kick
//! ([`Posted::Waiting`]): the first post's kick is on its way, and the take
//! it brings finds this one too (Xen's `evtchn_set_pending` kicks only when
//! the bit was clear). So a domain that sends in a loop to a port the other
//! CPU has not taken yet costs that CPU one interrupt, not one per send.
//!
//! Plain safe Rust over atomics.

use crate::domain::DomainId;
use core::sync::atomic::{AtomicU64, Ordering::*};

/// Ports per domain the inbox holds (the event-channel port space).
pub const PORTS: usize = crate::event::NR_PORTS;

/// Words of port bits per domain.
const WORDS: usize = PORTS.div_ceil(64);

// The summary has one bit per word.
const _: () = assert!(WORDS <= 64);

/// One domain's posted ports.
struct Box {
    /// Bit `w`: word `w` of `ports` may have bits set.
    summary: AtomicU64,
    ports: [AtomicU64; WORDS],
}

/// What [`Inbox::post`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Posted {
    /// The port is posted and was not before: kick its domain's CPU.
    New,
    /// The port was posted already and not taken yet: the kick of that post
    /// brings a take, which finds this one too. No kick.
    Waiting,
    /// A domain or port past the table: nothing posted, no kick.
    Refused,
}

/// The posted ports of domain ids below `N` (at most 64).
pub struct Inbox<const N: usize> {
    /// Bit `d`: domain `d`'s box may have posts (set after them).
    domains: AtomicU64,
    boxes: [Box; N],
}

impl<const N: usize> Inbox<N> {
    /// Empty.
    pub const fn new() -> Self {
        assert!(N <= 64, "one bit per domain id");
        Self {
            domains: AtomicU64::new(0),
            boxes: [const {
                Box {
                    summary: AtomicU64::new(0),
                    ports: [const { AtomicU64::new(0) }; WORDS],
                }
            }; N],
        }
    }

    /// Post port `p` of domain `d`, and say whether its CPU must be kicked
    /// for it.
    pub fn post(&self, d: DomainId, p: u32) -> Posted {
        let Some(b) = self.boxes.get(usize::from(d.0)) else {
            return Posted::Refused;
        };
        let w = p as usize / 64;
        let Some(word) = b.ports.get(w) else {
            return Posted::Refused;
        };
        let m = 1u64 << (p % 64);
        let was = word.fetch_or(m, Release) & m != 0;
        // After the port's bit: a take that sees this summary bit sees the
        // port's too (Release here, Acquire in `take`).
        b.summary.fetch_or(1 << w, Release);
        self.domains.fetch_or(1 << d.0, Release);
        if was {
            Posted::Waiting
        } else {
            Posted::New
        }
    }

    /// The domains that may have posts (each to be [`Inbox::take`]n).
    pub fn posted(&self) -> impl Iterator<Item = DomainId> {
        let mut bits = self.domains.load(Acquire);
        core::iter::from_fn(move || {
            let d = bits.trailing_zeros();
            bits &= bits.wrapping_sub(1);
            (d < 64).then_some(DomainId(d as u16))
        })
    }

    /// Whether domain `d` has posts not yet taken.
    pub fn any(&self, d: DomainId) -> bool {
        self.boxes
            .get(usize::from(d.0))
            .is_some_and(|b| b.summary.load(Acquire) != 0)
    }

    /// Take every port posted to domain `d`, lowest first, handing each to
    /// `deliver`; how many there were.
    pub fn take(&self, d: DomainId, mut deliver: impl FnMut(u32)) -> usize {
        let Some(b) = self.boxes.get(usize::from(d.0)) else {
            return 0;
        };
        // The domain's bit first, then its summary, then the words: the
        // reverse of `post`, so that a racing post leaves its bit set for
        // the next take or is taken by this one.
        self.domains.fetch_and(!(1 << d.0), Acquire);
        let mut summary = b.summary.swap(0, Acquire);
        let mut n = 0;
        while summary != 0 {
            let w = summary.trailing_zeros() as usize;
            summary &= summary - 1;
            let mut bits = b.ports.get(w).map_or(0, |x| x.swap(0, Acquire));
            while bits != 0 {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                deliver((w * 64) as u32 + bit);
                n += 1;
            }
        }
        n
    }
}

impl<const N: usize> Default for Inbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The hypervisor's inboxes, over every domain id (one per boot module, from 1).
pub static INBOX: Inbox<{ crate::boot::MAX_MODULES + 1 }> = Inbox::new();

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::sync::atomic::AtomicBool;
    use std::vec::Vec;

    #[test]
    fn a_post_is_taken_once_in_port_order() {
        let i: Inbox<4> = Inbox::new();
        assert!(!i.any(DomainId(2)));
        let posted: Vec<_> = [700, 3, 64, 3, 1023]
            .iter()
            .map(|&p| i.post(DomainId(2), p))
            .collect();
        use Posted::*;
        assert_eq!(posted, [New, New, New, Waiting, New], "port 3 twice");
        assert!(i.any(DomainId(2)));
        assert!(!i.any(DomainId(1)));
        assert!(i.posted().eq([DomainId(2)]));
        let mut got = Vec::new();
        assert_eq!(i.take(DomainId(2), |p| got.push(p)), 4);
        assert_eq!(got, [3, 64, 700, 1023]);
        assert!(!i.any(DomainId(2)));
        assert_eq!(i.posted().count(), 0);
        assert_eq!(i.take(DomainId(2), |_| panic!("taken twice")), 0);
        assert_eq!(i.post(DomainId(2), 3), New, "a new post once taken");
    }

    #[test]
    fn posts_past_the_table_are_refused() {
        let i: Inbox<4> = Inbox::new();
        assert_eq!(i.post(DomainId(4), 1), Posted::Refused);
        assert_eq!(i.post(DomainId(1), PORTS as u32), Posted::Refused);
        assert_eq!(i.post(DomainId(1), u32::MAX), Posted::Refused);
        assert!(!i.any(DomainId(4)));
        assert_eq!(i.take(DomainId(4), |_| ()), 0);
        assert_eq!(i.take(DomainId(1), |_| ()), 0);
    }

    /// Posters on several threads and a taker racing them: every port
    /// posted is taken, and nothing is taken that was not posted. A port's
    /// bit goes from clear to set at each [`Posted::New`] and back at each
    /// take of it, so it is taken exactly as often as it was posted new: a
    /// [`Posted::Waiting`] post (which kicks no one) needs no take of its
    /// own.
    #[test]
    fn no_post_is_lost_to_a_racing_take() {
        const POSTERS: u32 = 3;
        const ROUNDS: u32 = 2000;
        let i: Inbox<2> = Inbox::new();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let taker = s.spawn(|| {
                let mut seen = [0u32; PORTS];
                loop {
                    let finished = done.load(Acquire);
                    i.take(DomainId(1), |p| seen[p as usize] += 1);
                    if finished {
                        return seen;
                    }
                }
            });
            let posters: Vec<_> = (0..POSTERS)
                .map(|t| {
                    let i = &i;
                    s.spawn(move || {
                        // Each thread its own ports.
                        let mut new = [0u32; 300];
                        for r in 0..ROUNDS {
                            let p = t * 300 + r % 300;
                            match i.post(DomainId(1), p) {
                                Posted::New => new[(r % 300) as usize] += 1,
                                Posted::Waiting => {}
                                Posted::Refused => panic!("port {p} refused"),
                            }
                        }
                        new
                    })
                })
                .collect();
            let news: Vec<_> = posters.into_iter().map(|p| p.join().unwrap()).collect();
            done.store(true, Release);
            let seen = taker.join().unwrap();
            for (t, new) in (0u32..).zip(&news) {
                for k in 0..300u32 {
                    let p = t * 300 + k;
                    let n = seen[p as usize];
                    assert!(n >= 1, "port {p} posted, never taken");
                    assert_eq!(n, new[k as usize], "port {p}: takes against new posts");
                }
            }
            for p in POSTERS * 300..PORTS as u32 {
                assert_eq!(seen[p as usize], 0, "port {p} taken, never posted");
            }
        });
    }
}
