//! A value that never shows in `Debug`, logs or API output.

use std::fmt;

/// Wraps a secret (webhook URL, password). `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wrap a secret.
    pub fn new(value: T) -> Self {
        Self(value)
    }
    /// The secret itself; use only where it leaves for its destination.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_is_redacted() {
        let s = super::Secret::new("https://hook/secret".to_string());
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
