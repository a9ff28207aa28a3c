//! `SO_REUSEPORT` listeners: one address, one listener per core.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, mpsc};

use pool::cores::spawn_cores;
use pool::listener::{BindError, bind_reuseport};
use socket2::SockRef;

fn localhost_any_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

#[test]
fn port_zero_gives_count_listeners_on_one_port() {
    let listeners = bind_reuseport(localhost_any_port(), 3, 128).expect("bind");
    assert_eq!(listeners.len(), 3);
    let port = listeners[0].local_addr().expect("addr").port();
    assert_ne!(port, 0);
    for listener in &listeners {
        assert_eq!(
            listener.local_addr().expect("addr"),
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        );
        assert!(SockRef::from(listener).reuse_port().expect("getsockopt"));
        let would_block = listener.accept().expect_err("no client yet, nonblocking");
        assert_eq!(would_block.kind(), io::ErrorKind::WouldBlock);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_connection_to_the_shared_port_reaches_one_listener() {
    let listeners = bind_reuseport(localhost_any_port(), 2, 128).expect("bind");
    let addr = listeners[0].local_addr().expect("addr");
    let (accepted, mut which) = tokio::sync::mpsc::unbounded_channel();
    for (i, listener) in listeners.into_iter().enumerate() {
        let listener = tokio::net::TcpListener::from_std(listener).expect("into tokio");
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let _ = listener.accept().await.expect("accept");
            let _ = accepted.send(i);
        });
    }
    let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    assert!(which.recv().await.expect("one listener accepts") < 2);
}

#[test]
fn each_core_converts_its_own_listener_in_its_runtime() {
    let listeners = bind_reuseport(localhost_any_port(), 2, 128).expect("bind");
    let port = listeners[0].local_addr().expect("addr").port();
    let slots: Vec<Option<TcpListener>> = listeners.into_iter().map(Some).collect();
    let slots = Arc::new(Mutex::new(slots));
    let (sender, receiver) = mpsc::channel();
    let cores = spawn_cores(2, "pool-listen", move |core| {
        let std_listener = slots.lock().expect("not poisoned")[core].take().expect("own slot");
        let listener = tokio::net::TcpListener::from_std(std_listener).expect("in runtime");
        let sender = sender.clone();
        async move { sender.send(listener.local_addr().expect("addr").port()).expect("sent") }
    })
    .expect("cores start");
    cores.join().expect("no core panicked");
    assert_eq!(receiver.iter().collect::<Vec<_>>(), [port, port]);
}

#[test]
fn errors_name_the_address_and_the_step() {
    let taken = TcpListener::bind(localhost_any_port()).expect("bind without SO_REUSEPORT");
    let addr = taken.local_addr().expect("addr");
    let error = bind_reuseport(addr, 2, 128).expect_err("address in use");
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
    let context = error.get_ref().and_then(|e| e.downcast_ref::<BindError>()).expect("context");
    assert_eq!((context.addr, context.step), (addr, "bind"));
}

#[test]
fn zero_listeners_is_refused() {
    let error = bind_reuseport(localhost_any_port(), 0, 128).expect_err("count 0");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}
