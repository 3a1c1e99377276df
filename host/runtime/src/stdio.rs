//! The guest's stdout and stderr: captured up to a cap, never refused. Past
//! the cap, bytes are counted and dropped, so a chatty guest keeps running
//! (Rust's `println!` panics on a closed pipe) and the operator sees a
//! truncation marker instead of the tail.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of stdout (and of stderr) kept per delivery.
pub const MAX_STDIO_BYTES: usize = 64 * 1024;
/// Most bytes a guest may hand over in one write; it writes again for more.
const WRITE_BUDGET: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

/// One captured stream: keeps the first `capacity` bytes, counts the rest.
#[derive(Debug, Clone)]
pub struct CappedPipe {
    capacity: usize,
    inner: Arc<Mutex<Captured>>,
}

impl CappedPipe {
    /// An empty pipe keeping at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Arc::default(),
        }
    }

    fn take(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.capacity.saturating_sub(c.kept.len());
        let keep = bytes.len().min(room);
        c.kept.extend_from_slice(&bytes[..keep]);
        c.dropped = c.dropped.saturating_add((bytes.len() - keep) as u64);
    }

    /// What was kept, and how many bytes were dropped past the cap.
    pub fn contents(&self) -> (Vec<u8>, u64) {
        let c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (c.kept.clone(), c.dropped)
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The guest's captured stdout and stderr.
#[derive(Clone)]
pub struct Stdio {
    pub stdout: CappedPipe,
    pub stderr: CappedPipe,
}

impl Stdio {
    /// Fresh, empty pipes.
    pub fn new() -> Self {
        Self {
            stdout: CappedPipe::new(MAX_STDIO_BYTES),
            stderr: CappedPipe::new(MAX_STDIO_BYTES),
        }
    }
}

impl Default for Stdio {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let mut p = CappedPipe::new(4);
        p.write(Bytes::from_static(b"abc")).unwrap();
        p.write(Bytes::from_static(b"defgh")).unwrap();
        assert_eq!(p.check_write().unwrap(), WRITE_BUDGET);
        assert_eq!(p.contents(), (b"abcd".to_vec(), 4));
    }
}
