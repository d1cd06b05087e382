//! Network fixtures: a closed port, a full accept queue, and a resolver
//! that never asks a real DNS server.

use std::future::Ready;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use socket2::{Domain, Socket, Type};
use tower::Service;

/// An address where nothing listens: connecting is refused.
pub fn closed_port() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    listener.local_addr()
}

/// A port that refuses connections (its socket is bound but does not
/// listen) until [`RefusingPort::listen`] makes it a listener: the same
/// address first refuses, then serves, as a restarted service does.
#[derive(Debug)]
pub struct RefusingPort {
    addr: SocketAddr,
    socket: Socket,
}

impl RefusingPort {
    /// The address that refuses.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts listening on the same address (non-blocking, ready for
    /// `Upstream::start_on` and the like).
    pub fn listen(self) -> io::Result<TcpListener> {
        self.socket.listen(128)?;
        let listener: TcpListener = self.socket.into();
        listener.set_nonblocking(true)?;
        Ok(listener)
    }
}

/// A port on 127.0.0.1 that refuses connections until it listens.
pub fn refusing_port() -> io::Result<RefusingPort> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let addr = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an inet socket"))?;
    Ok(RefusingPort { addr, socket })
}

/// A listener whose accept queue is full, so that new connections hang
/// until their connect timeout. Keep it alive while testing.
#[derive(Debug)]
pub struct Backlog {
    addr: SocketAddr,
    _listener: Socket,
    _held: Vec<TcpStream>,
}

impl Backlog {
    /// The address whose connects hang.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds a socket with `listen(0)` and fills its queue (Linux drops later
/// SYNs).
pub fn full_backlog() -> io::Result<Backlog> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(0)?;
    let addr = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an inet socket"))?;
    let mut held = Vec::new();
    for _ in 0..2 {
        if let Ok(stream) = TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
        {
            held.push(stream);
        }
    }
    Ok(Backlog {
        addr,
        _listener: socket,
        _held: held,
    })
}

/// A resolver for hyper-util's `HttpConnector`: `*.test` and `localhost`
/// are 127.0.0.1, everything else (`*.invalid` included) does not exist.
/// Counts lookups.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    lookups: Arc<AtomicU64>,
}

impl Resolver {
    /// A fresh resolver.
    pub fn new() -> Resolver {
        Resolver::default()
    }

    /// Lookups made.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Ready<Result<Self::Response, io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let host = name.as_str();
        std::future::ready(
            if host.ends_with(".test") || host == "localhost" || host == "127.0.0.1" {
                Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))].into_iter())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "failed to lookup address information: Name or service not known ({host})"
                    ),
                ))
            },
        )
    }
}
