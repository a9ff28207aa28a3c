//! How one of the load's connections reaches the target: TCP with TCP_NODELAY, then, for
//! an `https://` target, the TLS handshake ([`crate::tls`]). The result is one
//! [`Stream`] that [`crate::http1`] and hyper's HTTP/2 client speak over alike.
//!
//! A connection is made only when a request needs one, inside that request's timeout,
//! so its connect and handshake count into that request's latency and no other's. This
//! module must never retry or reconnect on its own.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls::Tls;

/// A connection to the target, plain or TLS.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP (`http://`).
    Plain(TcpStream),
    /// TLS over TCP (`https://`); boxed, as its buffers are large.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Connects to `address` (`host:port`), then handshakes if `tls` is given. The error
/// names the address.
pub async fn connect(address: &str, tls: Option<&Tls>) -> Result<Stream, String> {
    let tcp = TcpStream::connect(address).await.map_err(|e| format!("{address}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("{address}: {e}"))?;
    match tls {
        None => Ok(Stream::Plain(tcp)),
        Some(tls) => {
            let stream = tls.handshake(tcp).await.map_err(|e| format!("{address}: {e}"))?;
            Ok(Stream::Tls(Box::new(stream)))
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
