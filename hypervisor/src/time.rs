//! # System time: the TSC, calibrated, as nanoseconds
//!
//! Keel's clock is the TSC. At boot the platform code measures its rate against
//! a fixed-frequency timer (the PIT); from then on **system time** is the TSC
//! elapsed since boot, scaled to nanoseconds with Xen's fixed-point
//! representation, the same one the guest uses on the `vcpu_time_info` record:
//!
//! ```text
//! ns = ((delta << shift) * mul) >> 32     (shift may be negative: right shift)
//! ```
//!
//! where `mul` is a 32.32 fraction below 1 after the shift has brought the rate
//! into (1 GHz, 2 GHz] (Xen's `set_time_scale`). Hypervisor and guest compute
//! time with the same formula from the same numbers, so their clocks agree
//! exactly. Pure, host-tested; the wall clock comes from the RTC ([`rtc_to_unix`]).

use keel_abi::time::{VcpuTimeInfo, XEN_PVCLOCK_TSC_STABLE_BIT};

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// A TSC-to-nanoseconds scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// 32.32 fixed-point multiplier.
    pub mul: u32,
    /// Pre-shift (negative: right).
    pub shift: i8,
}

impl Scale {
    /// The scale for a counter running at `hz` ticks per second (`hz` > 0).
    pub fn from_hz(hz: u64) -> Scale {
        let hz = hz.max(1);
        let mut shift: i8 = 0;
        let mut t = hz;
        while t > 2 * NS_PER_SEC {
            t >>= 1;
            shift -= 1;
        }
        while t <= NS_PER_SEC {
            t <<= 1;
            shift += 1;
        }
        // t in (1e9, 2e9]: mul = 1e9 / t as a 32-bit fraction, below 2^32.
        let mul = ((u128::from(NS_PER_SEC) << 32) / u128::from(t)) as u32;
        Scale { mul, shift }
    }

    /// Nanoseconds for `delta` ticks.
    pub fn ticks_to_ns(self, delta: u64) -> u64 {
        let d = if self.shift >= 0 {
            u128::from(delta) << self.shift
        } else {
            u128::from(delta) >> (-i32::from(self.shift))
        };
        ((d * u128::from(self.mul)) >> 32).min(u128::from(u64::MAX)) as u64
    }
}

/// The calibrated clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// TSC at system time 0.
    pub tsc0: u64,
    /// TSC ticks per second.
    pub hz: u64,
    /// The scale.
    pub scale: Scale,
}

impl Clock {
    /// A clock whose system time 0 is TSC `tsc0`, at `hz` ticks per second.
    pub fn new(tsc0: u64, hz: u64) -> Clock {
        Clock {
            tsc0,
            hz: hz.max(1),
            scale: Scale::from_hz(hz),
        }
    }

    /// System time (ns) at TSC `tsc`.
    pub fn ns_at(&self, tsc: u64) -> u64 {
        self.scale.ticks_to_ns(tsc.saturating_sub(self.tsc0))
    }

    /// The first TSC value at which system time is at least `ns` (so a timer
    /// programmed for it cannot fire early).
    pub fn tsc_at(&self, ns: u64) -> u64 {
        // Invert the scale with the same numbers (one division), then step to
        // the exact least TSC: the estimate is off by a tick or two at most.
        let mul = u128::from(self.scale.mul.max(1));
        let q = (u128::from(ns) << 32).div_ceil(mul);
        let d = if self.scale.shift >= 0 {
            q >> self.scale.shift
        } else {
            q << (-i32::from(self.scale.shift))
        };
        let mut t = self.tsc0.saturating_add(d.min(u128::from(u64::MAX)) as u64);
        for _ in 0..16 {
            if self.ns_at(t) >= ns {
                break;
            }
            t = t.saturating_add(1);
        }
        for _ in 0..16 {
            if t > self.tsc0 && self.ns_at(t - 1) >= ns {
                t -= 1;
            } else {
                break;
            }
        }
        if self.ns_at(t) >= ns && (t == self.tsc0 || self.ns_at(t - 1) < ns) {
            return t;
        }
        self.tsc_at_slow(ns)
    }

    /// Binary search for the least TSC with `ns_at(t) >= ns` (the fallback of
    /// [`Clock::tsc_at`]; `ns_at` is monotonic).
    fn tsc_at_slow(&self, ns: u64) -> u64 {
        let approx = (u128::from(ns) * u128::from(self.hz) / u128::from(NS_PER_SEC))
            .min(u128::from(u64::MAX / 4)) as u64;
        let (mut lo, mut hi) = (
            self.tsc0,
            self.tsc0
                .saturating_add(approx.saturating_mul(2).saturating_add(2)),
        );
        if self.ns_at(hi) < ns {
            return hi;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ns_at(mid) >= ns {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// The `vcpu_time_info` record (version left 0: the publisher owns it). Its
    /// base is system time 0 itself (`tsc_timestamp` = `tsc0`): with a constant
    /// TSC one record serves forever, and the guest's formula then gives exactly
    /// [`Clock::ns_at`], so the guest can never see a timer fire before its
    /// deadline by a rounding difference.
    pub fn time_info(&self) -> VcpuTimeInfo {
        VcpuTimeInfo {
            version: 0,
            pad0: 0,
            tsc_timestamp: self.tsc0,
            system_time: 0,
            tsc_to_system_mul: self.scale.mul,
            tsc_shift: self.scale.shift,
            flags: XEN_PVCLOCK_TSC_STABLE_BIT,
            pad1: [0; 2],
        }
    }
}

/// TSC rate from a calibration: `ticks` TSC ticks during `ref_ticks` of a
/// reference timer running at `ref_hz`.
pub fn calibrate(ticks: u64, ref_ticks: u64, ref_hz: u64) -> Option<u64> {
    if ref_ticks == 0 {
        return None;
    }
    let hz = u128::from(ticks) * u128::from(ref_hz) / u128::from(ref_ticks);
    u64::try_from(hz).ok().filter(|&h| h > 0)
}

/// An RTC reading (already converted from BCD where needed, 24-hour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcTime {
    /// Full year (e.g. 2000).
    pub year: u32,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub min: u32,
    /// 0..=59.
    pub sec: u32,
}

/// Seconds since the Unix epoch for an RTC reading, `None` if out of range.
pub fn rtc_to_unix(t: RtcTime) -> Option<u64> {
    if !(1970..=9999).contains(&t.year)
        || !(1..=12).contains(&t.month)
        || !(1..=31).contains(&t.day)
        || t.hour > 23
        || t.min > 59
        || t.sec > 59
    {
        return None;
    }
    // Days from civil (proleptic Gregorian), March-based year.
    let y = i64::from(t.year) - i64::from(t.month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(t.month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(t.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let s = days * 86_400 + i64::from(t.hour) * 3600 + i64::from(t.min) * 60 + i64::from(t.sec);
    u64::try_from(s).ok()
}

/// Decode one RTC register: BCD unless the status-B "binary" bit is set.
pub fn rtc_decode(v: u8, binary: bool) -> u32 {
    if binary {
        u32::from(v)
    } else {
        u32::from(v >> 4) * 10 + u32::from(v & 0xf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scales() {
        // 2 MHz (Bochs at ips=2000000): 500 ns per tick.
        let s = Scale::from_hz(2_000_000);
        assert_eq!(s.ticks_to_ns(2_000_000), NS_PER_SEC);
        assert_eq!(s.ticks_to_ns(1), 500);
        // 3 GHz: shift -1.
        let s = Scale::from_hz(3_000_000_000);
        assert_eq!(s.shift, -1);
        let ns = s.ticks_to_ns(3_000_000_000);
        assert!(ns.abs_diff(NS_PER_SEC) <= 1, "{ns}");
        // 1 GHz exactly: shift 1, mul 1/2.
        let s = Scale::from_hz(NS_PER_SEC);
        assert_eq!((s.shift, s.mul), (1, 1 << 31));
    }

    #[test]
    fn rtc() {
        let t = RtcTime {
            year: 2000,
            month: 1,
            day: 1,
            hour: 0,
            min: 0,
            sec: 0,
        };
        assert_eq!(rtc_to_unix(t), Some(946_684_800));
        let t = RtcTime {
            year: 2026,
            month: 11,
            day: 21,
            hour: 23,
            min: 52,
            sec: 48,
        };
        assert_eq!(rtc_to_unix(t), Some(1_795_305_168));
        assert_eq!(rtc_to_unix(RtcTime { month: 13, ..t }), None);
        assert_eq!(rtc_decode(0x59, false), 59);
        assert_eq!(rtc_decode(59, true), 59);
        assert_eq!(calibrate(100_000, 59_659, 1_193_182), Some(2_000_003));
        assert_eq!(calibrate(1, 0, 1), None);
    }

    proptest! {
        /// The guest's formula (abi) and the hypervisor's agree, time is
        /// monotonic in the TSC, and `tsc_at` is the first tick at or after `ns`.
        #[test]
        fn consistent(hz in 1_000_000u64..10_000_000_000, tsc0 in 0u64..1 << 40,
                      a in 0u64..1 << 40, b in 0u64..1 << 40, ns in 0u64..1 << 40) {
            let c = Clock::new(tsc0, hz);
            let (lo, hi) = (tsc0 + a.min(b), tsc0 + a.max(b));
            prop_assert!(c.ns_at(lo) <= c.ns_at(hi));
            let rec = c.time_info();
            prop_assert_eq!(rec.system_time_at(hi), c.ns_at(hi));
            let t = c.tsc_at(ns);
            prop_assert!(c.ns_at(t) >= ns);
            prop_assert!(t == tsc0 || c.ns_at(t - 1) < ns || t <= tsc0);
        }
    }
}
