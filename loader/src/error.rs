//! Errors: [`anyhow`] for the tool's failures, each layer adding what it was
//! doing ([`Context`]), so a failure prints as its cause chain ("building the
//! hypervisor: cargo build ... failed: ..."); [`UsageError`] for what a person
//! asked for that cannot be, which `keel` reports with exit status 64 instead of
//! 70 ([`is_usage`]).

pub use anyhow::{Context, Error, Result};

/// A usage error: an unknown guest or test, a pattern that selects nothing, a
/// value the chosen backend does not accept. The message says what would do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Is `e` (or anything in its chain) a usage error?
pub fn is_usage(e: &Error) -> bool {
    e.chain().any(|c| c.is::<UsageError>())
}

/// Return early with a [`UsageError`] built from a format string.
#[macro_export]
macro_rules! usage_bail {
    ($($arg:tt)*) => {
        return Err($crate::error::UsageError(format!($($arg)*)).into())
    };
}

/// Return early with an error built from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(::anyhow::anyhow!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_are_told_apart_through_context() {
        fn unknown() -> Result<()> {
            crate::usage_bail!("no test matches {:?}", "x");
        }
        let e = unknown().context("selecting tests").unwrap_err();
        assert!(is_usage(&e));
        assert_eq!(format!("{e:#}"), "selecting tests: no test matches \"x\"");
        let io = std::fs::read("/nonexistent/keel")
            .context("reading /nonexistent/keel")
            .unwrap_err();
        assert!(!is_usage(&io));
        // The chain names the cause.
        assert!(
            format!("{io:#}").starts_with("reading /nonexistent/keel: "),
            "{io:#}"
        );
    }
}
