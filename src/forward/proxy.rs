//! `vansite forward`: the forwarder process of one Listener. systemd holds the Listener's port
//! (a `.socket` unit) and hands it over as an inherited descriptor (`LISTEN_FDS`); each
//! accepted client gets one task that connects it to the router's loopback tcpListener and
//! moves bytes both ways with splice(2): through a pipe, kernel to kernel, never copied into
//! this process. A connection holds only its two sockets:
//! a pipe is taken from a small shared pool when bytes arrive and given back once they are
//! passed on, so thousands of mostly idle connections need thousands of descriptors, not six
//! each, and the pipes in use are as many as the transfers in flight.
//!
//! The router refuses connections while it restarts and while no tcpConnector of the address is
//! reachable; the forwarder then retries for a bounded time, so a client that arrives during a
//! restart is served once the router is ready, and otherwise gets a clean close (FIN), never a
//! reset. A connection that another user's socket accepted (a program that took the router's
//! port while the router did not listen) is closed before a byte of the client's goes to it and
//! counts as a refusal (`owner`); either raises the alarm of the tcpListener's repair
//! (`repair`). On SIGTERM (the unit stopping, the service being deleted) it stops accepting
//! and ends every connection with a FIN both ways.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::owner::socket_owner;
use super::repair::ListenerRepair;
use crate::platform::activation::systemd_listener;

/// The pipe size asked for (the default limit for unprivileged users): the more one splice(2)
/// moves, the fewer wake-ups per byte.
const PIPE_SIZE: usize = 1024 * 1024;
const RETRY_FIRST: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_millis(500);
/// How long connections get to finish their FIN exchange after SIGTERM.
const DRAIN: Duration = Duration::from_secs(2);
/// How often the owner of the socket that accepted a connection is asked for while the kernel
/// has not made it a full socket yet (the router's side of the handshake lags ours slightly).
const OWNER_LOOKUPS: u32 = 20;
const OWNER_LOOKUP_PAUSE: Duration = Duration::from_millis(1);
/// Idle pipes kept for the next transfer; more are closed when given back. All of a user's pipes
/// share one budget (`/proc/sys/fs/pipe-user-pages-soft`, 64 MiB by default), the site's other
/// forwarders' too, and past it new pipes stay small: 64 idle 1 MiB pipes were all of it (a
/// forwarder started after another's burst of 80 transfers carried 3.4 Gbit/s instead of 14);
/// 16 are a quarter.
const IDLE_PIPES: usize = 16;
/// At most one warning about a foreign socket on the router's port in this long.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The router's tcpListener the forwarder carries its clients to.
#[derive(Debug, Clone)]
pub struct RouterListener {
    pub addr: SocketAddr,
    /// How long a client waits for the router.
    pub wait: Duration,
    /// How to re-open the tcpListener when the router could not bind its port.
    pub repair: Option<ListenerRepair>,
}

/// What every connection shares: where the router is, whose sockets may take clients, and the
/// repair's alarm.
struct Upstream {
    addr: SocketAddr,
    wait: Duration,
    /// The site's user: the forwarder's own uid, the router's too.
    uid: u32,
    alarm: Arc<Notify>,
    last_warning: Mutex<Option<Instant>>,
    pipes: PipePool,
}

/// A pipe for splice(2): its read end and its write end.
struct Pipe {
    output: OwnedFd,
    input: OwnedFd,
    /// Whether it holds [`PIPE_SIZE`]: a pipe made while the user's pipes fill its budget stays
    /// small (8 or 64 KiB).
    full_size: bool,
}

/// Empty pipes ready for a transfer.
#[derive(Default)]
struct PipePool {
    idle: Mutex<Vec<Pipe>>,
}

impl PipePool {
    fn take(&self) -> io::Result<Pipe> {
        if let Some(pipe) = self.idle.lock().expect("not poisoned").pop() {
            return Ok(pipe);
        }
        let (output, input) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // Refused when the user's pipes fill its budget: a smaller pipe only means smaller steps.
        let full_size =
            rustix::pipe::fcntl_setpipe_size(&input, PIPE_SIZE).is_ok_and(|size| size >= PIPE_SIZE);
        Ok(Pipe {
            output,
            input,
            full_size,
        })
    }

    /// Takes back a pipe that is empty again. A small one is closed, not kept: kept, the pool's
    /// small pipes went on carrying 17 KiB per splice(2) after a burst of 80 concurrent
    /// transfers (not 600 KiB), at about 0.6 of the throughput; closed, it gives its share of the
    /// budget back for a full-size one.
    fn give_back(&self, pipe: Pipe) {
        if !pipe.full_size {
            return;
        }
        let mut idle = self.idle.lock().expect("not poisoned");
        if idle.len() < IDLE_PIPES {
            idle.push(pipe);
        }
    }
}

impl Upstream {
    fn new(addr: SocketAddr, wait: Duration) -> Upstream {
        Upstream {
            addr,
            wait,
            uid: rustix::process::getuid().as_raw(),
            alarm: Arc::new(Notify::new()),
            last_warning: Mutex::new(None),
            pipes: PipePool::default(),
        }
    }

    /// Whether the socket that accepted `stream` is the site user's (the router's), asking
    /// the kernel for its owner; a foreign one is warned about (at most every
    /// [`WARNING_INTERVAL`]).
    async fn accepted_by_us(&self, stream: &TcpStream) -> bool {
        let Ok(local) = stream.local_addr() else {
            return false;
        };
        let mut owner = Ok(None);
        for _ in 0..OWNER_LOOKUPS {
            owner = socket_owner(self.addr, local);
            if !matches!(owner, Ok(None)) {
                break;
            }
            tokio::time::sleep(OWNER_LOOKUP_PAUSE).await;
        }
        let uid = match owner {
            Ok(Some(uid)) if uid == self.uid => return true,
            Ok(Some(uid)) => uid.to_string(),
            Ok(None) => "unknown (the connection was gone)".into(),
            Err(e) => format!("unknown ({e})"),
        };
        let mut last = self.last_warning.lock().expect("not poisoned");
        if last.is_none_or(|at| at.elapsed() >= WARNING_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(
                "port {} is held by a socket of uid {uid}, not of this site's user (uid {}): \
                 clients are not handed to it; they wait for the router",
                self.addr.port(),
                self.uid
            );
        }
        false
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(
        "no listening socket was passed: `vansite forward` runs under its systemd socket unit \
         (vansite-<namespace>-listener-<name>.socket), not by hand"
    )]
    NoSocket,
    #[error("the passed descriptor is not a listening TCP socket: {0}")]
    NotAListener(io::Error),
    #[error("cannot wait for signals: {0}")]
    Signals(io::Error),
}

/// The socket systemd passed (`platform::activation::systemd_listener`).
pub fn inherited_listener() -> Result<TcpListener, ForwardError> {
    let listener = systemd_listener()
        .map_err(ForwardError::NotAListener)?
        .ok_or(ForwardError::NoSocket)?;
    TcpListener::from_std(listener).map_err(ForwardError::NotAListener)
}

/// Serves `listener` until SIGTERM or SIGINT, forwarding each client to `router`, retrying
/// the router for at most its `wait` per client.
pub async fn serve(listener: TcpListener, router: RouterListener) -> Result<(), ForwardError> {
    use tokio::signal::unix::{signal, SignalKind};
    raise_descriptor_limit();
    let upstream = Arc::new(Upstream::new(router.addr, router.wait));
    let repair = router
        .repair
        .map(|repair| tokio::spawn(repair.run(Arc::clone(&upstream.alarm))));
    let mut term = signal(SignalKind::terminate()).map_err(ForwardError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ForwardError::Signals)?;
    let (stop_tx, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(forward(client, Arc::clone(&upstream), stop.clone()));
                }
                // Out of descriptors or a client gone before accept: keep serving the others.
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(RETRY_FIRST).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = term.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    drop(listener);
    if let Some(repair) = repair {
        repair.abort();
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Raises the soft limit of open descriptors to the hard one (the unit's `LimitNOFILE`):
/// each connection holds two.
fn raise_descriptor_limit() {
    let limit = crate::platform::descriptors::raise_to_hard_limit();
    tracing::info!(
        "up to {limit} open descriptors: about {} concurrent connections",
        limit / 2
    );
}

/// One client: connect to the router (retrying), then copy until both sides are done.
async fn forward(mut client: TcpStream, router: Arc<Upstream>, mut stop: watch::Receiver<bool>) {
    let _ = client.set_nodelay(true);
    let upstream = tokio::select! {
        connected = connect_with_retry(&router) => connected,
        _ = stopped(&mut stop) => None,
    };
    let Some(mut upstream) = upstream else {
        let _ = client.shutdown().await;
        return;
    };
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        result = async {
            tokio::try_join!(
                splice_one_way(&client, &upstream, &router.pipes),
                splice_one_way(&upstream, &client, &router.pipes)
            )
        } => {
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
            }
        }
        _ = stopped(&mut stop) => {
            let _ = tokio::join!(client.shutdown(), upstream.shutdown());
        }
    }
}

/// Moves `from`'s bytes into `to` until `from` ends, then ends `to`'s writing side (the FIN
/// travels on). A pipe is taken once `from` has bytes and drained before more are read, so
/// `from` being empty is the only reason a read would block, and `to` being full the only
/// reason a write would; drained, it goes back to the pool.
async fn splice_one_way(from: &TcpStream, to: &TcpStream, pipes: &PipePool) -> io::Result<()> {
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    loop {
        from.readable().await?;
        let pipe = pipes.take()?;
        let read = from.try_io(Interest::READABLE, || {
            Ok(splice(from, None, &pipe.input, None, PIPE_SIZE, flags)?)
        });
        let mut in_pipe = match read {
            Ok(0) => {
                pipes.give_back(pipe);
                return Ok(rustix::net::shutdown(to, rustix::net::Shutdown::Write)?);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pipes.give_back(pipe);
                continue;
            }
            Err(e) => return Err(e),
        };
        // Until the pipe is empty; an error drops it with what it holds.
        while in_pipe > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                Ok(splice(&pipe.output, None, to, None, in_pipe, flags)?)
            }) {
                Ok(n) => in_pipe -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        pipes.give_back(pipe);
    }
}

/// Resolves once the forwarder is stopping (or its stopper is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await.map(drop);
}

/// The router, once it accepts (a socket of the site's user); None after `wait` of refusals.
async fn connect_with_retry(router: &Upstream) -> Option<TcpStream> {
    let deadline = Instant::now() + router.wait;
    let mut delay = RETRY_FIRST;
    loop {
        let refusal = match TcpStream::connect(router.addr).await {
            Ok(stream) if router.accepted_by_us(&stream).await => return Some(stream),
            // Dropped unused: the foreign socket sees a connection end with no data.
            Ok(_) => "a socket of another user holds the port".to_string(),
            Err(e) => e.to_string(),
        };
        router.alarm.notify_one();
        if Instant::now() + delay > deadline {
            tracing::info!(
                "router at {} not accepting after {:?}: {refusal}; closing the client",
                router.addr,
                router.wait
            );
            return None;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn echo_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let (mut s, _) = server.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        (addr, task)
    }

    /// A port where nothing listens (yet).
    fn refusing_port() -> SocketAddr {
        let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        reserved.local_addr().unwrap()
    }

    /// `forward` serving one client of a front port; returns a client connected to it.
    async fn forwarded_client(
        router: SocketAddr,
        wait: Duration,
        stop: watch::Receiver<bool>,
    ) -> TcpStream {
        forwarded_client_of(Arc::new(Upstream::new(router, wait)), stop).await
    }

    async fn forwarded_client_of(
        upstream: Arc<Upstream>,
        stop: watch::Receiver<bool>,
    ) -> TcpStream {
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        tokio::spawn(async move {
            let (client, _) = front.accept().await.unwrap();
            drop(front);
            forward(client, upstream, stop).await;
        });
        TcpStream::connect(front_addr).await.unwrap()
    }

    #[tokio::test]
    async fn a_client_that_comes_before_the_router_is_served_once_it_listens() {
        // A port that refuses now, then an echo server on it later.
        let router = refusing_port();
        let (_stop_tx, stop) = watch::channel(false);
        let mut client = forwarded_client(router, Duration::from_secs(10), stop).await;
        client.write_all(b"early").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let late = TcpListener::bind(router).await.unwrap();
        let (mut s, _) = late.accept().await.unwrap();
        let mut got = [0u8; 5];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"early");
    }

    #[tokio::test]
    async fn a_socket_of_another_user_on_the_router_port_gets_no_client() {
        // The forwarder of a user other than this test's: this test's sockets are foreign to it.
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let router = server.local_addr().unwrap();
        let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = server.accept().await.unwrap();
                let got_tx = got_tx.clone();
                tokio::spawn(async move {
                    let mut bytes = Vec::new();
                    let _ = s.read_to_end(&mut bytes).await;
                    got_tx.send(bytes).unwrap();
                });
            }
        });
        let mut upstream = Upstream::new(router, Duration::from_millis(500));
        upstream.uid += 1;
        let upstream = Arc::new(upstream);
        let (_stop_tx, stop) = watch::channel(false);
        let mut client = forwarded_client_of(Arc::clone(&upstream), stop).await;
        client.write_all(b"secret").await.unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            client.read_to_end(&mut buf).await.unwrap(),
            0,
            "a clean close"
        );
        // The foreign socket was connected to (and tried again), never sent a byte.
        let mut attempts = 0;
        while let Ok(bytes) = got.try_recv() {
            assert!(
                bytes.is_empty(),
                "the client's bytes reached the foreign socket"
            );
            attempts += 1;
        }
        assert!(attempts >= 2, "{attempts} attempts");
        // The repair was alarmed.
        tokio::time::timeout(Duration::from_secs(1), upstream.alarm.notified())
            .await
            .unwrap();
    }

    #[test]
    fn the_pool_keeps_a_few_full_size_pipes_and_closes_small_ones() {
        let pool = PipePool::default();
        let taken: Vec<Pipe> = (0..IDLE_PIPES + 4).map(|_| pool.take().unwrap()).collect();
        // `full_size` says what the kernel gave: a user past its pipe budget gets small pipes.
        for pipe in &taken {
            let size = rustix::pipe::fcntl_getpipe_size(&pipe.input).unwrap();
            assert_eq!(pipe.full_size, size >= PIPE_SIZE, "a pipe of {size} bytes");
        }
        let full = taken.iter().filter(|pipe| pipe.full_size).count();
        // A small pipe, as the budget leaves them, is closed when given back.
        let (output, input) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap();
        pool.give_back(Pipe {
            output,
            input,
            full_size: false,
        });
        assert!(
            pool.idle.lock().unwrap().is_empty(),
            "a small pipe was kept"
        );
        for pipe in taken {
            pool.give_back(pipe);
        }
        let idle = pool.idle.lock().unwrap();
        assert_eq!(idle.len(), full.min(IDLE_PIPES));
        assert!(idle.iter().all(|pipe| pipe.full_size));
    }

    fn open_descriptors() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_holds_two_descriptors_and_pipes_only_while_bytes_pass() {
        const CONNECTIONS: usize = 300;
        let (router, _server) = echo_server().await;
        let upstream = Arc::new(Upstream::new(router, Duration::from_secs(5)));
        let before = open_descriptors();
        let mut clients = Vec::new();
        for n in 0..CONNECTIONS {
            let (_stop_tx, stop) = watch::channel(false);
            let mut client = forwarded_client_of(Arc::clone(&upstream), stop).await;
            let sent = format!("client {n}");
            client.write_all(sent.as_bytes()).await.unwrap();
            let mut got = vec![0u8; sent.len()];
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(got, sent.as_bytes());
            clients.push((client, _stop_tx));
        }
        // Each connection: the client's socket and the echo server's (this test's), and the
        // forwarder's two; the idle pipes in the pool besides. Other tests of this process
        // open a few meanwhile.
        let opened = open_descriptors() - before;
        let forwarder = opened - 2 * CONNECTIONS;
        assert!(
            forwarder <= 2 * CONNECTIONS + 2 * IDLE_PIPES + 100,
            "{forwarder} descriptors for {CONNECTIONS} idle forwarded connections"
        );
    }

    #[tokio::test]
    async fn no_router_within_the_wait_is_a_clean_close() {
        let (_stop_tx, stop) = watch::channel(false);
        let mut client = forwarded_client(refusing_port(), Duration::from_millis(200), stop).await;
        let mut buf = Vec::new();
        // EOF (0 bytes), not a reset.
        assert_eq!(client.read_to_end(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn bytes_arrive_intact_and_a_half_close_travels_on() {
        // The server answers only after the client's FIN reached it: all it read, reversed.
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let router = server.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got.reverse();
            s.write_all(&got).await.unwrap();
        });
        let (_stop_tx, stop) = watch::channel(false);
        let mut client = forwarded_client(router, Duration::from_secs(5), stop).await;
        let sent: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let (mut read_half, mut write_half) = client.split();
        let writer = async {
            write_half.write_all(&sent).await.unwrap();
            write_half.shutdown().await.unwrap();
        };
        let mut back = Vec::new();
        let reader = read_half.read_to_end(&mut back);
        let ((), read) = tokio::join!(writer, reader);
        read.unwrap();
        assert_eq!(back.len(), sent.len());
        assert!(
            back.iter().rev().eq(sent.iter()),
            "bytes changed on the way"
        );
    }

    #[tokio::test]
    async fn stopping_ends_connections_with_a_fin() {
        let (router, _server) = echo_server().await;
        let (stop_tx, stop) = watch::channel(false);
        let mut client = forwarded_client(router, Duration::from_secs(5), stop).await;
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        stop_tx.send(true).unwrap();
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
