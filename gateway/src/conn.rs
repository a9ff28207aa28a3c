//! One client connection below HTTP: the TLS handshake (bounded in time), the tenant a
//! client certificate names, and the idle timeout that closes a connection which has
//! sent nothing for `idle_timeout` (HTTP/2 connections can otherwise stay open forever
//! with no stream; HTTP/1.1 ones are also bounded by the header-read timeout).
//!
//! Nothing here parses HTTP or decides what a request may do: it hands hyper a stream
//! and the request layer a [`ConnInfo`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::tls::ClientIdentity;

/// What the request layer knows about the connection a request came on.
#[derive(Debug)]
pub struct ConnInfo {
    /// The client's address (the load balancer's, behind one).
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// What the client certificate says (always `None` without mTLS).
    pub identity: ClientIdentity,
}

/// When a connection last moved a byte, in milliseconds since it was accepted.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self { started: Instant::now(), last_ms: AtomicU64::new(0) })
    }

    fn touch(&self) {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now_ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Resolves once nothing was read or written for `timeout`.
    pub async fn idle(&self, timeout: Duration) {
        loop {
            let idle_for = self.idle_for();
            if idle_for >= timeout {
                return;
            }
            tokio::time::sleep(timeout - idle_for).await;
        }
    }
}

/// A stream that records its activity.
pub struct Tracked<IO> {
    inner: IO,
    activity: Arc<Activity>,
}

impl<IO> Tracked<IO> {
    /// Wraps `inner`, recording into `activity`.
    pub fn new(inner: IO, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Why a TLS connection never reached HTTP.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client did not finish the handshake in time.
    #[error("TLS handshake timed out")]
    Timeout,
    /// The handshake failed (bad certificate, no shared protocol, not TLS at all...).
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
}

/// Runs the server side of a TLS handshake on `stream` within `timeout`; returns the
/// encrypted stream and what its client certificate says.
pub async fn accept_tls<IO: AsyncRead + AsyncWrite + Unpin>(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: IO,
    timeout: Duration,
) -> Result<(tokio_rustls::server::TlsStream<IO>, ClientIdentity), HandshakeError> {
    let accepted = tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(HandshakeError::Failed)?;
    let identity = crate::tls::client_identity(accepted.get_ref().1);
    Ok((accepted, identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_resolves_only_after_silence() {
        let activity = Activity::new();
        let timeout = Duration::from_secs(10);
        tokio::time::advance(Duration::from_secs(6)).await;
        activity.touch();
        let idle = activity.idle(timeout);
        tokio::pin!(idle);
        assert!(tokio::time::timeout(Duration::from_secs(9), &mut idle).await.is_err());
        assert!(tokio::time::timeout(Duration::from_secs(2), &mut idle).await.is_ok());
    }
}
