//! One listener carries thousands of concurrent connections: its forwarder and the router get
//! the descriptors they need (a forwarder in a container used to stop at the container's
//! 1024, about 170 connections at six descriptors each).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{in_netns, running_site, vansite_ok, wait_reachable, Host};

/// Connections opened at once while ramping up (the backlogs of the forwarder's socket and the
/// router's tcpListener are finite; beyond them a connect waits for SYN retransmits).
const BATCH: usize = 250;

/// Raises this process's soft descriptor limit to its hard one; returns the hard one.
fn raise_descriptor_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
    hard
}

/// An echo server on the host's loopback: its socket made in the host's network namespace,
/// served here, every connection a task.
fn serve_echo_async(host: &Host, port: u16, runtime: &tokio::runtime::Runtime) {
    let (tx, rx) = std::sync::mpsc::channel();
    in_netns(host, move || {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        tx.send(listener).unwrap();
    })
    .join()
    .unwrap();
    let listener = rx.recv().unwrap();
    runtime.spawn(async move {
        let listener = TcpListener::from_std(listener).unwrap();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
}

/// Sends `message` and reads it back.
async fn echo_on(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.unwrap();
    let mut back = vec![0u8; message.len()];
    tokio::time::timeout(Duration::from_secs(120), stream.read_exact(&mut back))
        .await
        .expect("no echo in 2 minutes")
        .unwrap();
    back
}

#[test]
fn one_listener_carries_thousands_of_concurrent_connections() {
    if crate::support::skip_without_test_host() {
        return;
    }
    // Each connection takes two descriptors in the forwarder and two in the router, and here a
    // client and the echo server's end: the machine's hard limit per process (without
    // CAP_SYS_RESOURCE no process may raise it) decides how many fit, up to 10,000.
    let hard = raise_descriptor_limit();
    let connections = 10_000.min((hard.saturating_sub(1_000) / 2) as usize);
    assert!(
        connections >= 5_000,
        "descriptor hard limit {hard} is too low for this test"
    );
    eprintln!("{connections} concurrent connections (descriptor hard limit {hard})");

    let host = running_site("svcap", false);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    serve_echo_async(&host, 9290, &runtime);
    vansite_ok(&host, &["connector", "create", "echo", "9290"]);
    vansite_ok(&host, &["listener", "create", "echo", "8290"]);
    wait_reachable(&host, "echo");
    let addr = Arc::new(format!("{}:8290", host.addr()));

    runtime.block_on(async {
        // Ramp up: every connection echoes once when it opens, and stays open.
        let mut open = Vec::with_capacity(connections);
        while open.len() < connections {
            let batch = BATCH.min(connections - open.len());
            let first = open.len();
            let tasks: Vec<_> = (first..first + batch)
                .map(|n| {
                    let addr = Arc::clone(&addr);
                    tokio::spawn(async move {
                        let mut stream = TcpStream::connect(addr.as_str()).await.unwrap();
                        let hello = format!("hello from {n}\n");
                        assert_eq!(
                            echo_on(&mut stream, hello.as_bytes()).await,
                            hello.as_bytes()
                        );
                        stream
                    })
                })
                .collect();
            for task in tasks {
                open.push(task.await.unwrap());
            }
        }
        // All open at once: each carries another message, all at the same time.
        let tasks: Vec<_> = open
            .into_iter()
            .enumerate()
            .map(|(n, mut stream)| {
                tokio::spawn(async move {
                    let message: Vec<u8> =
                        (0..4096u32).map(|i| (i as usize * 31 + n) as u8).collect();
                    echo_on(&mut stream, &message).await == message
                })
            })
            .collect();
        let mut intact = 0;
        for task in tasks {
            if task.await.unwrap() {
                intact += 1;
            }
        }
        assert_eq!(intact, connections, "connections echoed intact");
    });
    runtime.shutdown_background();
}
