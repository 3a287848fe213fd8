//! One error type for the whole tool: a human-readable message with context.
//!
//! `keel` is a command-line tool whose errors end up in front of a person, so an
//! error is a sentence ("building keel-guest: cargo exited with status 101") rather
//! than a tree of types. [`Context`] adds the "while doing X" prefix at each layer.

use std::fmt;

/// A failure of the tool itself (not of a guest or test: those are outcomes).
#[derive(Debug)]
pub struct Error {
    message: String,
    usage: bool,
}

/// The tool's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            usage: false,
        }
    }

    /// A usage error: the person asked for something that cannot be (an unknown
    /// guest or test, a value the backend does not accept). `keel` exits 64.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            usage: true,
        }
    }

    /// Is this a usage error (exit 64) rather than a failure of the tool (70)?
    pub fn is_usage(&self) -> bool {
        self.usage
    }

    /// The message, with every layer's context.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::new(e.to_string())
    }
}

/// Adds "what we were doing" to an error, as it travels up.
pub trait Context<T> {
    /// Prefix the error (if any) with `what: `.
    fn context(self, what: impl fmt::Display) -> Result<T>;
    /// Like [`Context::context`], computing the prefix only on failure.
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(format!("{what}: {e}")))
    }
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::new(format!("{}: {e}", what())))
    }
}

/// Return early with a usage [`Error`] built from a format string.
#[macro_export]
macro_rules! usage_bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::usage(format!($($arg)*)))
    };
}

/// Return early with an [`Error`] built from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::new(format!($($arg)*)))
    };
}
