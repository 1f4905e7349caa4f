//! The listening sockets: which address family they take (`SERVER_BIND_ADDRESS`), one
//! `SO_REUSEPORT` listener per shard on a port, and the Prometheus listener.
//!
//! By default every port takes both families on one socket: an IPv6 socket bound to `::` with
//! `IPV6_V6ONLY` off, to which IPv4 clients connect as IPv4-mapped addresses (`::ffff:a.b.c.d`,
//! shown as plain IPv4 by [`canonical`]). Raccoon's Go server listened on both families the same
//! way, and clients that resolve `localhost` to `::1` first need it. A host without IPv6 (the
//! kernel booted with `ipv6.disable=1`, or a container without it) cannot create or bind that
//! socket; then every port takes IPv4 alone, and the log says so once.
//!
//! A literal address pins the listeners to it and to its family: `0.0.0.0` is IPv4 only, `::`
//! IPv6 only (`IPV6_V6ONLY` on, as nginx's `listen [::]`), `127.0.0.1` or `::1` that address.
//!
//! Binding happens on the main thread, before any shard starts, so that "port in use" is one
//! clear startup error naming the key, and port 0 means one free port for all shards.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Backlog of every listener.
const BACKLOG: i32 = 1024;

/// What `SERVER_BIND_ADDRESS` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindAddress {
    /// Empty: every address of both families (IPv4 alone where the host has no IPv6).
    DualStack,
    /// This address, and only its family.
    Ip(IpAddr),
}

impl BindAddress {
    /// Parses the key's text: empty for both families, else an IP address.
    pub fn parse(text: &str) -> Result<Self, std::net::AddrParseError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(BindAddress::DualStack);
        }
        text.parse().map(BindAddress::Ip)
    }

    /// The address the listeners bind to, with the socket option the family needs. For
    /// [`BindAddress::DualStack`] this checks once whether the host can open an IPv6 socket
    /// that also takes IPv4, and falls back to IPv4 (with a warning) when it cannot.
    pub fn resolve(self) -> Listen {
        self.resolve_with(probe_dual_stack)
    }

    /// [`BindAddress::resolve`] with the probe given: tests stand in for a host without IPv6.
    fn resolve_with(self, probe: impl FnOnce() -> io::Result<()>) -> Listen {
        match self {
            BindAddress::Ip(ip) => Listen { ip, only_v6: ip == Ipv6Addr::UNSPECIFIED },
            BindAddress::DualStack => match probe() {
                Ok(()) => Listen { ip: IpAddr::V6(Ipv6Addr::UNSPECIFIED), only_v6: false },
                Err(error) => {
                    tracing::warn!(
                        %error,
                        "this host cannot listen on IPv6 and IPv4 together; listening on IPv4 only (0.0.0.0)"
                    );
                    Listen { ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED), only_v6: false }
                }
            },
        }
    }
}

/// Whether an IPv6 socket taking IPv4 too can be created and bound here (on a free port, closed
/// at once).
fn probe_dual_stack() -> io::Result<()> {
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    socket.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).into())
}

/// A resolved bind address: where every listener of the process binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    ip: IpAddr,
    /// `IPV6_V6ONLY` for an IPv6 wildcard: on when `::` was asked for, off for both families.
    only_v6: bool,
}

impl Listen {
    /// The address the listeners bind.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// `count` listeners on one port, each with `SO_REUSEPORT` so that the kernel spreads new
    /// connections over them (one per shard). Port 0 picks a free port, the same for all.
    /// `key` names the port's configuration key in errors.
    pub fn reuse_port(&self, port: u16, count: usize, key: &str) -> anyhow::Result<Vec<TcpListener>> {
        let mut addr = SocketAddr::new(self.ip, port);
        let mut listeners = Vec::with_capacity(count);
        for _ in 0..count {
            let listener = self.bind(addr, true).map_err(|e| bind_error(e, key, addr))?;
            addr = listener.local_addr()?;
            listeners.push(listener);
        }
        Ok(listeners)
    }

    /// One listener on `port` (0: a free one); `key` names the port's key in errors.
    pub fn single(&self, port: u16, key: &str) -> anyhow::Result<TcpListener> {
        let addr = SocketAddr::new(self.ip, port);
        self.bind(addr, false).map_err(|e| bind_error(e, key, addr))
    }

    fn bind(&self, addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            socket.set_only_v6(self.only_v6)?;
        }
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        Ok(socket.into())
    }
}

fn bind_error(error: io::Error, key: &str, addr: SocketAddr) -> anyhow::Error {
    anyhow::anyhow!("cannot bind {key} {addr}: {error}")
}

/// `addr` with an IPv4-mapped IPv6 address (how an IPv4 client appears on a socket that takes
/// both families) written as the IPv4 address it is, for logs.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn the_key_parses_as_empty_or_an_address() {
        assert_eq!(BindAddress::parse("").unwrap(), BindAddress::DualStack);
        assert_eq!(BindAddress::parse("  ").unwrap(), BindAddress::DualStack);
        assert_eq!(BindAddress::parse("0.0.0.0").unwrap(), BindAddress::Ip(Ipv4Addr::UNSPECIFIED.into()));
        assert_eq!(BindAddress::parse("::").unwrap(), BindAddress::Ip(Ipv6Addr::UNSPECIFIED.into()));
        assert!(BindAddress::parse("localhost").is_err());
        assert!(BindAddress::parse("[::1]").is_err());
    }

    #[test]
    fn a_host_without_ipv6_falls_back_to_ipv4() {
        let unsupported = || Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
        let listen = BindAddress::DualStack.resolve_with(unsupported);
        assert_eq!(listen.ip(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let listener = listen.single(0, "TEST_PORT").unwrap();
        assert!(listener.local_addr().unwrap().is_ipv4());
        let dual = BindAddress::DualStack.resolve_with(|| Ok(()));
        assert_eq!(dual, Listen { ip: IpAddr::V6(Ipv6Addr::UNSPECIFIED), only_v6: false });
    }

    /// This machine has IPv6 on loopback: the default takes both families, `::` only IPv6.
    #[test]
    fn dual_stack_takes_both_families_and_a_literal_pins_one() {
        let dual = BindAddress::DualStack.resolve();
        assert_eq!(dual.ip(), IpAddr::V6(Ipv6Addr::UNSPECIFIED), "this host has IPv6");
        let listeners = dual.reuse_port(0, 2, "TEST_PORT").unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        assert_eq!(listeners[1].local_addr().unwrap().port(), port, "one port for all");
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("IPv4 client");
        TcpStream::connect((Ipv6Addr::LOCALHOST, port)).expect("IPv6 client");

        let v6 = BindAddress::Ip(Ipv6Addr::UNSPECIFIED.into()).resolve().single(0, "TEST_PORT").unwrap();
        let port = v6.local_addr().unwrap().port();
        TcpStream::connect((Ipv6Addr::LOCALHOST, port)).expect("IPv6 client");
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(), ":: is IPv6 only");

        let v4 = BindAddress::Ip(Ipv4Addr::UNSPECIFIED.into()).resolve().single(0, "TEST_PORT").unwrap();
        let port = v4.local_addr().unwrap().port();
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("IPv4 client");
        assert!(TcpStream::connect((Ipv6Addr::LOCALHOST, port)).is_err(), "0.0.0.0 is IPv4 only");
    }

    #[test]
    fn a_port_in_use_names_its_key() {
        let listen = BindAddress::Ip(Ipv4Addr::LOCALHOST.into()).resolve();
        let taken = listen.single(0, "TEST_PORT").unwrap();
        let port = taken.local_addr().unwrap().port();
        let error = listen.single(port, "SERVER_GRPC_PORT").unwrap_err().to_string();
        assert!(error.starts_with(&format!("cannot bind SERVER_GRPC_PORT 127.0.0.1:{port}: ")), "{error}");
    }

    #[test]
    fn mapped_peers_read_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        assert_eq!(canonical(mapped), "127.0.0.1:5000".parse().unwrap());
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
