//! Who owns the socket at the far end of a loopback connection: one exact NETLINK_SOCK_DIAG
//! request (sock_diag(7)) per connection.
//!
//! Why: the forwarder hands each client to whatever accepts on the router's port. While the
//! router restarts, or while it does not listen (no reachable connector), another local user
//! can bind that port and would receive the clients. The socket that accepted a connection
//! carries the uid of the listening socket it came from, so asking the kernel for that socket's
//! uid tells whether the site's own router (same user) took the connection.
//!
//! How: an `inet_diag_req_v2` without `NLM_F_DUMP` makes the kernel look the one socket up by
//! its 4-tuple in its hash tables (`inet_diag_find_one_icsk`), as an arriving packet would find
//! it: O(1), where reading `/proc/net/tcp` or a dump walks every socket of the host. The answer's
//! `idiag_uid` is mapped into the asking process's user namespace: in the forwarder's sandbox
//! (`PrivateUsers=yes`) the user's own uid reads as itself, and any other user's as the
//! overflow uid (65534). rustix has the netlink socket but not the sock_diag messages, so the two
//! messages are laid out here, as `linux/inet_diag.h` and `linux/netlink.h` define them.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use rustix::net::netlink::{SocketAddrNetlink, SOCK_DIAG};
use rustix::net::{
    recv, sendto, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
};

/// `SOCK_DIAG_BY_FAMILY`: the request and answer type.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_HEADER_LEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, then `inet_diag_sockid`.
const REQUEST_LEN: usize = 56;
/// Offsets in `struct inet_diag_msg` (after the netlink header).
const MSG_STATE: usize = 1;
const MSG_UID: usize = 64;
const MSG_LEN: usize = 72;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
/// `INET_DIAG_NOCOOKIE`: any socket of that 4-tuple.
const NO_COOKIE: u32 = !0;
/// TCP states whose answers carry no owner: a connection the listener has not completed yet (a
/// request socket) and one already closed (time-wait); both read as uid 0.
const TCP_SYN_RECV: u8 = 3;
const TCP_TIME_WAIT: u8 = 6;
const TCP_NEW_SYN_RECV: u8 = 12;

/// The uid owning the TCP socket whose local address is `local` and remote `remote`, in this
/// process's user namespace; None when the kernel has no full socket of that 4-tuple (none,
/// not yet accepted into one, or already closed). With no connection of that 4-tuple the
/// kernel answers with the socket listening on `local`, which would accept it: its owner is
/// the one asked for as well.
///
/// For the socket that accepted our connection: `local` is the address we connected to, and
/// `remote` our own end's address.
pub fn socket_owner(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<u32>> {
    let request = request(local, remote)?;
    // One netlink socket per thread, kept: opening and closing one costs more than the lookup.
    // A request and its answer are one synchronous exchange, so nothing else interleaves.
    thread_local! {
        static SOCKET: RefCell<Option<OwnedFd>> = const { RefCell::new(None) };
    }
    SOCKET.with_borrow_mut(|kept| {
        let socket = match kept.take() {
            Some(socket) => socket,
            None => socket_with(
                AddressFamily::NETLINK,
                SocketType::DGRAM,
                SocketFlags::CLOEXEC,
                Some(SOCK_DIAG),
            )?,
        };
        let owner = ask(&socket, &request)?;
        // Kept only after a full exchange: no stale answer can be waiting in it.
        *kept = Some(socket);
        Ok(owner)
    })
}

fn ask(socket: &OwnedFd, request: &[u8]) -> io::Result<Option<u32>> {
    sendto(
        socket,
        request,
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )?;
    // The kernel answers while handling the request, so the answer is there already.
    let mut answer = [0u8; 512];
    let (_, len) = recv(socket, &mut answer[..], RecvFlags::DONTWAIT)?;
    parse_answer(&answer[..len.min(answer.len())])
}

/// The netlink message asking for the one socket of that 4-tuple.
fn request(local: SocketAddr, remote: SocketAddr) -> io::Result<Vec<u8>> {
    let family = match (local.ip(), remote.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => AF_INET6,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a socket's two addresses are of one family",
            ))
        }
    };
    let mut message = Vec::with_capacity(NLMSG_HEADER_LEN + REQUEST_LEN);
    // struct nlmsghdr: length, type, flags, sequence, port id (0: the kernel fills it in).
    message.extend(((NLMSG_HEADER_LEN + REQUEST_LEN) as u32).to_ne_bytes());
    message.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message.extend(NLM_F_REQUEST.to_ne_bytes());
    message.extend(1u32.to_ne_bytes());
    message.extend(0u32.to_ne_bytes());
    // struct inet_diag_req_v2: family, protocol, no extensions, padding, every state.
    message.extend([family, IPPROTO_TCP, 0, 0]);
    message.extend(u32::MAX.to_ne_bytes());
    // struct inet_diag_sockid: ports and addresses in network order, any interface, no cookie.
    message.extend(local.port().to_be_bytes());
    message.extend(remote.port().to_be_bytes());
    for ip in [local.ip(), remote.ip()] {
        let mut words = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => words[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => words.copy_from_slice(&v6.octets()),
        }
        message.extend(words);
    }
    message.extend(0u32.to_ne_bytes());
    message.extend(NO_COOKIE.to_ne_bytes());
    message.extend(NO_COOKIE.to_ne_bytes());
    debug_assert_eq!(message.len(), NLMSG_HEADER_LEN + REQUEST_LEN);
    Ok(message)
}

fn parse_answer(answer: &[u8]) -> io::Result<Option<u32>> {
    let short = || io::Error::new(io::ErrorKind::InvalidData, "short sock_diag answer");
    let u16_at = |at: usize| {
        answer
            .get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .ok_or_else(short)
    };
    let u32_at = |at: usize| {
        answer
            .get(at..at + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(short)
    };
    match u16_at(4)? {
        NLMSG_ERROR => {
            // struct nlmsgerr: a negative errno (0 would be an acknowledgement).
            let errno = -(u32_at(NLMSG_HEADER_LEN)? as i32);
            if errno == rustix::io::Errno::NOENT.raw_os_error() {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(errno))
            }
        }
        SOCK_DIAG_BY_FAMILY => {
            if answer.len() < NLMSG_HEADER_LEN + MSG_LEN {
                return Err(short());
            }
            let state = answer[NLMSG_HEADER_LEN + MSG_STATE];
            if matches!(state, TCP_SYN_RECV | TCP_NEW_SYN_RECV | TCP_TIME_WAIT) {
                return Ok(None);
            }
            Ok(Some(u32_at(NLMSG_HEADER_LEN + MSG_UID)?))
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected sock_diag answer type {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_that_accepted_a_connection_is_found_with_its_owner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let (_accepted, _) = listener.accept().unwrap();
        let ours = rustix::process::getuid().as_raw();
        let local = client.local_addr().unwrap();
        assert_eq!(socket_owner(server, local).unwrap(), Some(ours));
        // Our own end, seen the other way round, is ours too.
        assert_eq!(socket_owner(local, server).unwrap(), Some(ours));
        // No connection of that 4-tuple: the kernel answers with the listening socket that
        // would take it, whose owner is the same.
        let elsewhere: SocketAddr = format!("127.0.0.1:{}", local.port() ^ 1).parse().unwrap();
        assert_eq!(socket_owner(server, elsewhere).unwrap(), Some(ours));
        // Nothing there at all.
        drop(listener);
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(socket_owner(closed, local).unwrap(), None);
    }

    #[test]
    fn an_ipv6_socket_is_found_too() {
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            return; // no IPv6 loopback on this machine
        };
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let local = client.local_addr().unwrap();
        let ours = rustix::process::getuid().as_raw();
        assert_eq!(socket_owner(server, local).unwrap(), Some(ours));
    }
}
