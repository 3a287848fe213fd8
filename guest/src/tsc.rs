//! The time-stamp counter, and summary statistics for measurements.
//!
//! Under Bochs the TSC advances one tick per emulated instruction (a VM exit and
//! re-entry counts a few ticks), so guest-measured costs there are instruction
//! counts; on hardware they are reference cycles.

/// `RDTSC`.
pub fn rdtsc() -> u64 {
    crate::arch::rdtsc()
}

/// `LFENCE; RDTSC`: a TSC read that does not start before earlier instructions
/// finished (for timing a short sequence).
pub fn rdtsc_ordered() -> u64 {
    crate::arch::rdtsc_ordered()
}

/// Minimum, median and maximum of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Smallest sample.
    pub min: u64,
    /// Median (the upper median for an even count).
    pub median: u64,
    /// Largest sample.
    pub max: u64,
    /// Number of samples.
    pub count: usize,
}

impl Stats {
    /// Summarise `samples` (sorted in place). `None` for no samples.
    pub fn of(samples: &mut [u64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        Some(Stats {
            min: samples[0],
            median: samples[samples.len() / 2],
            max: samples[samples.len() - 1],
            count: samples.len(),
        })
    }
}

/// Time `f` `samples.len()` times, storing each duration in TSC ticks (minus the
/// cost of the empty measurement, estimated first), and summarise.
pub fn measure(samples: &mut [u64], mut f: impl FnMut()) -> Option<Stats> {
    // The cost of two back-to-back ordered reads: subtracted so the numbers are the
    // operation's own cost.
    let mut overhead = u64::MAX;
    for _ in 0..16 {
        let t0 = rdtsc_ordered();
        let t1 = rdtsc_ordered();
        overhead = overhead.min(t1.wrapping_sub(t0));
    }
    for s in samples.iter_mut() {
        let t0 = rdtsc_ordered();
        f();
        let t1 = rdtsc_ordered();
        *s = t1.wrapping_sub(t0).saturating_sub(overhead);
    }
    Stats::of(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats() {
        assert_eq!(Stats::of(&mut []), None);
        let s = Stats::of(&mut [5, 1, 9, 3]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.count), (1, 5, 9, 4));
        let s = Stats::of(&mut [7]).unwrap();
        assert_eq!((s.min, s.median, s.max), (7, 7, 7));
    }
}
