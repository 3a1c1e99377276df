//! Host capabilities offered to plugins as imports. Each module has one seam:
//! a host-wide service built from the settings, a per-instance state that
//! implements the generated `Host` trait, and `add_to_linker`, which reaches
//! that state through an accessor and never names the whole store data.

pub mod email;
pub mod entities;
pub mod http;
pub mod log;
pub mod plugin_config;
pub mod status;
pub mod teams;

use crate::bindings::Error;

/// What a trappable host call returns: `Err` is a host fault that traps the
/// instance; `Ok(Err(_))` is an error the guest sees.
pub type HostResult<T> = wasmtime::Result<Result<T, Error>>;

/// A fault of the host itself (a failed blocking task, a panic in host code).
/// It traps the instance and is reported as the host's failure, never handed
/// to the guest as an error it might retry.
#[derive(Debug, thiserror::Error)]
#[error("host fault in {capability}: {message}")]
pub struct HostFault {
    /// The capability whose host side failed.
    pub capability: &'static str,
    pub message: String,
}

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
