//! The cost of the forwarder's ownership check (`forward::owner::socket_owner`, one exact
//! NETLINK_SOCK_DIAG lookup) per connection: loopback connections opened, accepted and closed
//! with and without it, in alternating rounds; prints the time per connection both ways, the
//! check's own cost, and their ratio. Run by `benches/owner_check.sh`.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use vansite::forward::owner::socket_owner;

const CONNECTIONS: u32 = 5_000;
const ROUNDS: u32 = 5;

fn round(listener: &TcpListener, check: bool) -> Duration {
    let server = listener.local_addr().unwrap();
    let ours = rustix::process::getuid().as_raw();
    let start = Instant::now();
    for _ in 0..CONNECTIONS {
        let client = TcpStream::connect(server).unwrap();
        if check {
            let local = client.local_addr().unwrap();
            assert_eq!(socket_owner(server, local).unwrap(), Some(ours));
        }
        let (accepted, _) = listener.accept().unwrap();
        drop((client, accepted));
    }
    start.elapsed() / CONNECTIONS
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    round(&listener, true); // warm-up
    let (mut plain, mut checked) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        plain.push(round(&listener, false));
        checked.push(round(&listener, true));
    }
    let (plain, checked) = (median(plain), median(checked));
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "loopback connect + accept + close: {:.1} µs without the check, {:.1} µs with it",
        micros(plain),
        micros(checked)
    );
    println!(
        "ownership check: {:.1} µs per connection; with/without ratio {:.2}",
        micros(checked.saturating_sub(plain)),
        checked.as_secs_f64() / plain.as_secs_f64()
    );
}
