//! # Links: which domains a domain's event channels may reach
//!
//! An event-channel operation reaches another domain only through one of
//! the caller's interdomain ports (a send notifies the other end, a close
//! unbinds it), except the two that name a domain outright
//! (`EVTCHNOP_alloc_unbound`, `EVTCHNOP_bind_interdomain`). So a domain
//! whose every interdomain port leads to a domain on its own CPU can make
//! its other event-channel operations without stopping the other CPUs
//! (`crate::vmx::lend`): the run loop asks [`Links::all`] first.
//!
//! A domain's links are every domain one of its ports was ever connected
//! to, both ways, recorded when a binding is made (`Ports::set_endpoint`).
//! Never forgotten: a superset only sends an operation the slower way.
//! Bindings are made in cross-CPU operations only (`bind_interdomain` is
//! one), so a link cannot appear during another CPU's exit that looked at
//! the links, and that exit's decision stays true until it ends.
//!
//! Plain safe Rust over atomics.

use crate::domain::DomainId;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Set in a domain's word when it was linked to a domain id past 62: its
/// links are then unknown and [`Links::all`] answers `false`.
const FAR: u64 = 1 << 63;

/// The links of domain ids below `N` (at most 64).
pub struct Links<const N: usize> {
    words: [AtomicU64; N],
    /// How many links were made: an answer of [`Links::all`] kept elsewhere
    /// (the run loop's) is still true while this has not moved.
    made: AtomicU64,
}

impl<const N: usize> Links<N> {
    /// No links.
    pub const fn new() -> Self {
        Self {
            words: [const { AtomicU64::new(0) }; N],
            made: AtomicU64::new(0),
        }
    }

    fn bit(d: DomainId) -> u64 {
        if d.0 < 63 {
            1 << d.0
        } else {
            FAR
        }
    }

    fn mark(&self, d: DomainId, with: DomainId) {
        if let Some(w) = self.words.get(usize::from(d.0)) {
            w.fetch_or(Self::bit(with), Relaxed);
        }
    }

    /// A port of `a` is connected to a port of `b` (or the other way round).
    pub fn link(&self, a: DomainId, b: DomainId) {
        self.mark(a, b);
        self.mark(b, a);
        self.made.fetch_add(1, Relaxed);
    }

    /// How many links were made so far: a caller that keeps an answer of
    /// [`Links::all`] asks again only when this has moved.
    pub fn made(&self) -> u64 {
        self.made.load(Relaxed)
    }

    /// Whether `here` holds for every domain `d` is linked to; `false` when
    /// `d`'s links are not known (an id past the table's, or past 62).
    pub fn all(&self, d: DomainId, here: impl Fn(DomainId) -> bool) -> bool {
        let Some(w) = self.words.get(usize::from(d.0)) else {
            return false;
        };
        let mut bits = w.load(Relaxed);
        if bits & FAR != 0 {
            return false;
        }
        while bits != 0 {
            let id = bits.trailing_zeros();
            bits &= bits - 1;
            if !here(DomainId(id as u16)) {
                return false;
            }
        }
        true
    }
}

impl<const N: usize> Default for Links<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The hypervisor's links, over every domain id (one per boot module, from 1).
pub static LINKS: Links<{ crate::boot::MAX_MODULES + 1 }> = Links::new();

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_domain_without_links_stays_here() {
        let l: Links<8> = Links::new();
        assert!(l.all(DomainId(1), |_| false));
    }

    #[test]
    fn links_go_both_ways_and_are_all_asked() {
        let l: Links<8> = Links::new();
        l.link(DomainId(1), DomainId(3));
        l.link(DomainId(1), DomainId(1));
        assert!(l.all(DomainId(1), |d| d == DomainId(1) || d == DomainId(3)));
        assert!(!l.all(DomainId(1), |d| d == DomainId(1)));
        assert!(l.all(DomainId(3), |d| d == DomainId(1)));
        assert!(!l.all(DomainId(3), |d| d == DomainId(3)));
        assert!(l.all(DomainId(2), |_| false));
    }

    #[test]
    fn unknown_links_never_stay_here() {
        let l: Links<8> = Links::new();
        // Past the table: nothing known of it.
        assert!(!l.all(DomainId(8), |_| true));
        // Linked to an id past the table: asked like any other.
        l.link(DomainId(2), DomainId(40));
        assert!(!l.all(DomainId(2), |d| d != DomainId(40)));
        assert!(l.all(DomainId(2), |d| d == DomainId(40)));
        // Past 62, in a table that large.
        let big: Links<64> = Links::new();
        big.link(DomainId(1), DomainId(63));
        assert!(!big.all(DomainId(1), |_| true));
        assert!(big.all(DomainId(63), |d| d == DomainId(1)));
    }

    #[test]
    fn every_link_moves_the_count() {
        let l: Links<8> = Links::new();
        let before = l.made();
        l.link(DomainId(3), DomainId(1));
        assert_ne!(l.made(), before);
        let after = l.made();
        l.link(DomainId(1), DomainId(3));
        assert_ne!(l.made(), after);
    }

    proptest! {
        /// Against a model: `all` is true exactly when every domain ever
        /// linked to `d` satisfies `here`.
        #[test]
        fn all_matches_the_model(
            pairs in proptest::collection::vec((0u16..10, 0u16..10), 0..20),
            here_mask in any::<u16>(),
            d in 0u16..10,
        ) {
            let l: Links<10> = Links::new();
            for &(a, b) in &pairs {
                l.link(DomainId(a), DomainId(b));
            }
            let here = |x: DomainId| here_mask & (1 << x.0) != 0;
            let want = pairs.iter().all(|&(a, b)| {
                (a != d || here(DomainId(b))) && (b != d || here(DomainId(a)))
            });
            prop_assert_eq!(l.all(DomainId(d), here), want);
        }
    }
}
