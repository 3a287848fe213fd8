//! # How late the machine beneath delivered Keel's own timers
//!
//! Every deadline Keel keeps for a guest ends up as a timer of Keel's own: the
//! VMX-preemption timer while a guest runs, the local APIC timer while the CPU
//! halts. When such a timer arrives after it was due, the time in between was
//! not Keel's to use: the CPU (under nested KVM, the vCPU thread of the KVM
//! beneath) was not running it. Each arrival records that span, `[due,
//! arrived)` in TSC ticks, in its CPU's [`OverdueLog`].
//!
//! A guest asks, through `keel_debug_op(DEBUGOP_PLATFORM_DELAY)` (ABI 1.2,
//! docs/abi/debug.md), how much of the time since a moment of its choosing
//! was such a span: the union of the recorded spans clipped to the window.
//! A test of timer lateness subtracts it, so that what it bounds is Keel's
//! part of a lateness, on any platform; what Keel does late (a deadline armed
//! wrong, a wake-up missed, a console burst sent across a deadline) is never in
//! a span, because Keel was running then and its timer was not yet due or had
//! already arrived.
//!
//! The log is a ring of the last [`OVERDUE_SPANS`] arrivals that came late.
//! Only its own CPU writes it (at a timer exit, or on waking from HLT) and
//! reads it (a hypercall of a vCPU running there), so relaxed atomics suffice:
//! they make it shareable as a `static` per CPU, not a synchronisation. A
//! window older than the ring's reach gets the spans the ring still holds:
//! less, so a test using it is stricter, never looser.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Spans one CPU remembers. Under nested KVM a timer arrives late at nearly
/// every wake-up (by the wake latency); 64 cover the last few tens of
/// milliseconds there, more than a guest waits between a deadline and asking.
pub const OVERDUE_SPANS: usize = 64;

/// The shortest span recorded (TSC ticks): a timer's exit always comes a
/// little after its expiry (the exit itself), and recording those would cost
/// every timer exit and wake-up a few stores. A shorter delay of the platform
/// counts as Keel's, which only makes a test using the log stricter. 2,048
/// ticks are 20 us under nested KVM (whose delays of interest are 0.2 ms and
/// more) and a few exits under Bochs (whose timers are never late by more).
pub const MIN_SPAN: u64 = 2_048;

/// Whether a timer due at `due` that arrived at `arrived` is worth a record:
/// the callers test this inline and call [`OverdueLog::record`] only then.
#[inline(always)]
pub const fn worth_recording(due: u64, arrived: u64) -> bool {
    arrived > due.saturating_add(MIN_SPAN)
}

/// One CPU's recent overdue spans (see the module documentation).
pub struct OverdueLog {
    due: [AtomicU64; OVERDUE_SPANS],
    arrived: [AtomicU64; OVERDUE_SPANS],
    next: AtomicUsize,
}

impl Default for OverdueLog {
    fn default() -> Self {
        Self::new()
    }
}

impl OverdueLog {
    /// An empty log.
    pub const fn new() -> Self {
        OverdueLog {
            due: [const { AtomicU64::new(0) }; OVERDUE_SPANS],
            arrived: [const { AtomicU64::new(0) }; OVERDUE_SPANS],
            next: AtomicUsize::new(0),
        }
    }

    /// A timer due at TSC `due` arrived at TSC `arrived`: remember the span
    /// if it came late by more than [`MIN_SPAN`] (an earlier arrival records
    /// nothing).
    pub fn record(&self, due: u64, arrived: u64) {
        if !worth_recording(due, arrived) {
            return;
        }
        let i = self.next.load(Relaxed) % OVERDUE_SPANS;
        self.due[i].store(due, Relaxed);
        self.arrived[i].store(arrived, Relaxed);
        self.next.store((i + 1) % OVERDUE_SPANS, Relaxed);
    }

    /// TSC ticks of the window `[from, to)` that lie in some recorded span
    /// (overlapping spans counted once).
    pub fn within(&self, from: u64, to: u64) -> u64 {
        let mut spans = [(0u64, 0u64); OVERDUE_SPANS];
        let mut n = 0;
        for (d, a) in self.due.iter().zip(self.arrived.iter()) {
            let (s, e) = (d.load(Relaxed).max(from), a.load(Relaxed).min(to));
            if s < e {
                if let Some(slot) = spans.get_mut(n) {
                    *slot = (s, e);
                    n += 1;
                }
            }
        }
        union_length(spans.get_mut(..n).unwrap_or(&mut []))
    }
}

/// The length of the union of half-open spans `(start, end)`, each nonempty.
fn union_length(spans: &mut [(u64, u64)]) -> u64 {
    spans.sort_unstable();
    let mut total = 0u64;
    let mut reach = 0u64;
    for &(s, e) in spans.iter() {
        let s = s.max(reach);
        if e > s {
            total += e - s;
            reach = e;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Ticks well beyond [`MIN_SPAN`], so every span in these tests counts.
    const T: u64 = 10 * MIN_SPAN;

    #[test]
    fn late_arrivals_count_within_the_window_only() {
        let log = OverdueLog::new();
        log.record(100 * T, 90 * T); // early: nothing
        log.record(100 * T, 100 * T); // punctual: nothing
        log.record(100 * T, 100 * T + MIN_SPAN); // the exit's own latency: nothing
        assert_eq!(log.within(0, u64::MAX), 0);
        log.record(1_000 * T, 1_500 * T);
        assert_eq!(log.within(0, u64::MAX), 500 * T);
        assert_eq!(log.within(1_200 * T, 1_300 * T), 100 * T);
        assert_eq!(log.within(1_400 * T, 2_000 * T), 100 * T);
        assert_eq!(log.within(1_500 * T, 2_000 * T), 0);
        assert_eq!(log.within(0, 1_000 * T), 0);
    }

    #[test]
    fn overlapping_spans_count_once() {
        let log = OverdueLog::new();
        log.record(1_000 * T, 2_000 * T);
        log.record(1_500 * T, 2_500 * T);
        log.record(3_000 * T, 3_100 * T);
        assert_eq!(log.within(0, u64::MAX), 1_600 * T);
    }

    #[test]
    fn the_ring_forgets_the_oldest() {
        let log = OverdueLog::new();
        log.record(0, 100 * T);
        for k in 0..OVERDUE_SPANS as u64 {
            log.record(200 * T + k * 2 * T, 200 * T + k * 2 * T + T);
        }
        // The first span is gone: what remains is T a span.
        assert_eq!(log.within(0, u64::MAX), OVERDUE_SPANS as u64 * T);
    }

    proptest! {
        /// Against a tick-by-tick count, for the spans the ring still holds.
        #[test]
        fn matches_a_tick_count(
            spans in prop::collection::vec((0u64..400, 0u64..100), 0..OVERDUE_SPANS),
            from in 0u64..500,
            len in 0u64..500,
        ) {
            // On a grid of MIN_SPAN ticks, so lengths from 0 to 99 steps
            // straddle the shortest span recorded.
            let g = MIN_SPAN;
            let log = OverdueLog::new();
            for &(due, late) in &spans {
                log.record(due * g, (due + late) * g);
            }
            let to = from + len;
            let want = (from..to)
                .filter(|&t| spans.iter().any(|&(d, l)| l > 1 && d <= t && t < d + l))
                .count() as u64;
            prop_assert_eq!(log.within(from * g, to * g), want * g);
        }
    }
}
