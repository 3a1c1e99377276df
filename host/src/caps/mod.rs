//! Host capabilities offered to plugins as imports. Each module has one seam:
//! a host-wide service built from the configuration, a per-instance state that
//! implements the generated `Host` trait, and `add_to_linker`.

pub mod config;
pub mod email;
pub mod entities;
pub mod http;
pub mod log;
pub mod teams;

use crate::bindings::Error;

/// `error::denied` from a granter denial.
pub(crate) fn denied(d: crate::grants::Denied) -> Error {
    Error::Denied(d.0)
}

/// Readable text for a capability error, as shown to people.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Denied(m) => format!("denied: {m}"),
        Error::NotFound(m) => format!("not found: {m}"),
        Error::InvalidQuery(q) => format!("invalid query at {}: {}", q.position, q.message),
        Error::RateLimited(ms) => format!("rate limited: retry after {ms} ms"),
        Error::Unavailable(m) => format!("unavailable: {m}"),
        Error::InvalidArgument(m) => format!("invalid argument: {m}"),
        Error::DeadlineExceeded(m) => format!("deadline exceeded: {m}"),
    }
}
