//! The SDK's error type: a message for the host (and the client) to read.

use std::fmt;

/// An error with a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True if the host refused the call because the feature is not available
    /// in this host version.
    pub fn is_unsupported(&self) -> bool {
        self.message.starts_with("unsupported:")
    }

    /// True if a called object refused the call because it is overloaded;
    /// retrying later may succeed.
    pub fn is_overloaded(&self) -> bool {
        self.message.starts_with("overloaded:")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error { message }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::new(format!("json: {err}"))
    }
}

impl From<std::string::FromUtf8Error> for Error {
    fn from(err: std::string::FromUtf8Error) -> Self {
        Error::new(format!("invalid utf-8: {err}"))
    }
}

impl From<std::num::ParseIntError> for Error {
    fn from(err: std::num::ParseIntError) -> Self {
        Error::new(format!("invalid integer: {err}"))
    }
}

impl From<Error> for String {
    fn from(err: Error) -> Self {
        err.message
    }
}
