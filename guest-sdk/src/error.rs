//! The SDK's error type: a kind a class can match on, a message for the host
//! (and the client) to read, and the HTTP status a `fetch` handler answers
//! with when it returns the error with `?`.

use crate::bindings::dohost::object::namespaces::CallError;
use crate::bindings::dohost::object::types::StorageError;
use std::fmt;

/// What went wrong, for a class that handles some cases differently
/// (retry on `Overloaded`, report `Quota` to the user …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Storage: the statement or call is not allowed (a transaction
    /// statement, ATTACH, a `_dohost_` table …).
    Refused,
    /// A malformed or out-of-range argument (storage and calls alike).
    Invalid,
    /// Storage: the object's storage quota would be exceeded.
    Quota,
    /// Storage: SQLite rejected the statement (syntax, constraint, type).
    Sql,
    /// Calls: the called object is overloaded; retrying later may succeed.
    Overloaded,
    /// Calls: the called object did not answer in time.
    Timeout,
    /// Calls: the call would close a circle of objects waiting on each other.
    Cycle,
    /// Calls: no class of that name is served.
    UnknownClass,
    /// Calls: the class has no RPC method of that name.
    NotFound,
    /// Calls: the called object failed; its event was rolled back.
    CallFailed,
    /// Calls: the called method (of a JavaScript or Python class) threw; the
    /// message is `Name: message` of its exception. Its event was rolled back.
    Thrown,
    /// The host version does not implement the function.
    Unsupported,
    /// An error of the class itself ([`Error::new`], [`Error::http`], JSON …).
    Other,
}

/// An error with a kind, a human-readable message and an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    status: u16,
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of the class with this message (HTTP status 500).
    pub fn new(message: impl Into<String>) -> Self {
        Error::with_kind(ErrorKind::Other, message)
    }

    /// An error a `fetch` handler answers with `status`: return
    /// `Err(Error::http(400, "…"))?` to refuse a bad request.
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Error {
            status,
            ..Error::new(message)
        }
    }

    /// A 400 error: the client sent something to fix.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::http(400, message)
    }

    fn with_kind(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            status: 500,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status a `fetch` handler answers with (500 unless set).
    pub fn http_status(&self) -> u16 {
        self.status
    }

    /// True if the host refused the call because the feature is not available
    /// in this host version.
    pub fn is_unsupported(&self) -> bool {
        self.kind == ErrorKind::Unsupported
    }

    /// True if a called object refused the call because it is overloaded;
    /// retrying later may succeed.
    pub fn is_overloaded(&self) -> bool {
        self.kind == ErrorKind::Overloaded
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<StorageError> for Error {
    fn from(err: StorageError) -> Self {
        let (kind, message) = match err {
            StorageError::Refused(m) => (ErrorKind::Refused, m),
            StorageError::Invalid(m) => (ErrorKind::Invalid, m),
            StorageError::Quota(m) => (ErrorKind::Quota, m),
            StorageError::Sql(m) => (ErrorKind::Sql, m),
            StorageError::Unsupported(m) => (ErrorKind::Unsupported, m),
        };
        Error::with_kind(kind, message)
    }
}

impl From<CallError> for Error {
    fn from(err: CallError) -> Self {
        let (kind, message) = match err {
            CallError::Overloaded(m) => (ErrorKind::Overloaded, m),
            CallError::Timeout(m) => (ErrorKind::Timeout, m),
            CallError::Cycle(m) => (ErrorKind::Cycle, m),
            CallError::UnknownClass(m) => (ErrorKind::UnknownClass, m),
            CallError::NotFound(m) => (ErrorKind::NotFound, m),
            CallError::Invalid(m) => (ErrorKind::Invalid, m),
            CallError::Failed(m) => (ErrorKind::CallFailed, m),
            CallError::Thrown(t) => (ErrorKind::Thrown, format!("{}: {}", t.name, t.message)),
            CallError::Unsupported(m) => (ErrorKind::Unsupported, m),
        };
        Error::with_kind(kind, message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::new(message)
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
