//! What a test program tells the runner: its verdict and its numbered lines.
//!
//! This is not hypervisor ABI: it is the guest-to-runner protocol, how a test
//! program tells the host tool how it ended. As in XTF, a test reports any number of verdicts while it runs and the
//! most severe one wins; its last console line of its own is
//!
//! ```text
//! Test result: VERDICT[: reason]
//! ```
//!
//! which the runner reads (the hypervisor prefixes a domain's console lines with
//! `(d<id>) `). The guest library (`keel_guest::report`) writes the line and the
//! host tool (`keel`'s console reader) parses it; both take the names and the
//! order from here.

use core::fmt;

/// What starts a test program's verdict line.
pub const TEST_RESULT_MARKER: &str = "Test result: ";

/// The first word of a numbered console line, `KEEL-SEQ <tag> <i>/<n> [text]`
/// (for `i` = 0 .. n-1): the runner checks that, for each tag, every number
/// arrived once and in order, which only the host can see.
pub const SEQ_MARKER: &str = "KEEL-SEQ";

/// A verdict, ordered by severity (`Success` least severe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// The test ran and everything it checked behaved.
    Success,
    /// The test cannot run in this configuration (a real detection: `-ENOSYS`,
    /// a feature bit); not a failure.
    Skip,
    /// The test itself, or its environment, is broken.
    Error,
    /// The code under test did something it must not.
    Failure,
    /// The test never finished: the guest died (an unexpected exception, a
    /// panic), or the runner saw a hang, a hypervisor panic or a timeout.
    Crash,
}

impl Verdict {
    /// Every verdict, from least to most severe.
    pub const ALL: [Verdict; 5] = [
        Self::Success,
        Self::Skip,
        Self::Error,
        Self::Failure,
        Self::Crash,
    ];

    /// The upper-case name used in the result line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Skip => "SKIP",
            Self::Error => "ERROR",
            Self::Failure => "FAILURE",
            Self::Crash => "CRASH",
        }
    }

    /// The capitalised name used when a verdict is reported along the way
    /// (`Failure: <reason>`).
    pub const fn label(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::Skip => "Skip",
            Self::Error => "Error",
            Self::Failure => "Failure",
            Self::Crash => "Crash",
        }
    }

    /// Parse an upper-case verdict name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == s)
    }

    /// Whether this verdict counts as failed in a summary (ERROR, FAILURE, CRASH).
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::Error | Self::Failure | Self::Crash)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_severity_order_and_names_round_trip() {
        assert!(Verdict::ALL.windows(2).all(|w| w[0] < w[1]));
        for v in Verdict::ALL {
            assert_eq!(Verdict::from_name(v.name()), Some(v));
            assert_eq!(v.label().to_ascii_uppercase(), v.name());
        }
        assert_eq!(Verdict::from_name("Success"), None);
        let failed: std::vec::Vec<_> = Verdict::ALL
            .into_iter()
            .filter(|v| v.is_failure())
            .collect();
        assert_eq!(failed, [Verdict::Error, Verdict::Failure, Verdict::Crash]);
    }
}
