//! Per-core listening sockets sharing one address through `SO_REUSEPORT`.
//!
//! [`bind_reuseport`] binds the std listeners up front (so a bad address fails before
//! any core starts); each core then converts its own with
//! `tokio::net::TcpListener::from_std` inside its runtime. `TCP_NODELAY` is a
//! per-connection option and is set on accepted streams, not here.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Context for a failed listener set-up: which address, and which step failed.
///
/// [`bind_reuseport`] returns it inside an [`io::Error`] (same [`io::ErrorKind`] as the
/// cause; `get_ref()` and `downcast_ref` recover it), so its `Display` names the address
/// and `source()` is the operating system's error.
#[derive(Debug, thiserror::Error)]
#[error("listener on {addr}: {step} failed")]
pub struct BindError {
    /// The address being bound.
    pub addr: SocketAddr,
    /// The step that failed: `socket`, `SO_REUSEADDR`, `SO_REUSEPORT`, `O_NONBLOCK`,
    /// `bind`, `listen` or `local_addr`.
    pub step: &'static str,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

/// Binds `count` nonblocking TCP listeners to `addr`, all with `SO_REUSEADDR` and
/// `SO_REUSEPORT`, each listening with `backlog`.
///
/// If `addr` has port 0, the first listener gets a port from the kernel and the others
/// bind to that same port, so all of them share one address.
///
/// # Errors
///
/// `count` is 0 (`InvalidInput`), or a socket step failed; the error wraps a
/// [`BindError`] naming the address and the step. Listeners already bound are closed.
pub fn bind_reuseport(
    addr: SocketAddr,
    count: usize,
    backlog: i32,
) -> io::Result<Vec<TcpListener>> {
    if count == 0 {
        let message = format!("bind_reuseport {addr}: count is 0");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    let first = bind_one(addr, backlog)?;
    let shared = shared_address(addr, &first)?;
    let mut listeners = Vec::with_capacity(count);
    listeners.push(first);
    for _ in 1..count {
        listeners.push(bind_one(shared, backlog)?);
    }
    Ok(listeners)
}

/// `addr` with the port the first listener actually got (differs only for port 0).
fn shared_address(addr: SocketAddr, first: &TcpListener) -> io::Result<SocketAddr> {
    let bound = first.local_addr().map_err(|source| context(addr, "local_addr", source))?;
    Ok(SocketAddr::new(addr.ip(), bound.port()))
}

fn bind_one(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let step = |step: &'static str| move |source| context(addr, step, source);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(step("socket"))?;
    socket.set_reuse_address(true).map_err(step("SO_REUSEADDR"))?;
    socket.set_reuse_port(true).map_err(step("SO_REUSEPORT"))?;
    socket.set_nonblocking(true).map_err(step("O_NONBLOCK"))?;
    socket.bind(&addr.into()).map_err(step("bind"))?;
    socket.listen(backlog).map_err(step("listen"))?;
    Ok(socket.into())
}

fn context(addr: SocketAddr, step: &'static str, source: io::Error) -> io::Error {
    io::Error::new(source.kind(), BindError { addr, step, source })
}
