//! Many streams over one inter-router connection. The stand-in's own wire protocol between
//! routers (the real router speaks AMQP there) is yamux over the mutual-TLS connection: one
//! control stream for hello and address advertisements, one stream per carried TCP connection.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

pub type Stream = Compat<yamux::Stream>;
type OpenRequest = oneshot::Sender<io::Result<Stream>>;

/// Opens outbound streams on a running multiplexed connection.
#[derive(Clone)]
pub struct Opener(mpsc::Sender<OpenRequest>);

impl Opener {
    pub async fn open(&self) -> io::Result<Stream> {
        let (tx, rx) = oneshot::channel();
        let closed = || {
            io::Error::new(
                io::ErrorKind::NotConnected,
                "inter-router connection closed",
            )
        };
        self.0.send(tx).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// Starts the connection driver. Returns the opener, the receiver of streams the peer opens,
/// and the driver task (it ends when the connection does).
pub fn start<S>(
    io: S,
    client: bool,
) -> (Opener, mpsc::Receiver<Stream>, tokio::task::JoinHandle<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mode = if client {
        yamux::Mode::Client
    } else {
        yamux::Mode::Server
    };
    let mut config = yamux::Config::default();
    config.set_max_num_streams(4096);
    let mut connection = yamux::Connection::new(io.compat(), config, mode);
    let (open_tx, mut open_rx) = mpsc::channel::<OpenRequest>(64);
    let (inbound_tx, inbound_rx) = mpsc::channel(64);
    let driver = tokio::spawn(async move {
        let mut waiting: VecDeque<OpenRequest> = VecDeque::new();
        let result: io::Result<()> = poll_fn(|cx| {
            loop {
                let mut progressed = false;
                while let Poll::Ready(Some(request)) = open_rx.poll_recv(cx) {
                    waiting.push_back(request);
                }
                if !waiting.is_empty() {
                    if let Poll::Ready(outcome) = connection.poll_new_outbound(cx) {
                        let request = waiting.pop_front().expect("non-empty");
                        let _ = request.send(outcome.map(|s| s.compat()).map_err(io::Error::other));
                        progressed = true;
                    }
                }
                match connection.poll_next_inbound(cx) {
                    Poll::Ready(Some(Ok(stream))) => {
                        // A full queue means the peer opens faster than we serve: drop the stream.
                        let _ = inbound_tx.try_send(stream.compat());
                        progressed = true;
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io::Error::other(e))),
                    Poll::Ready(None) => return Poll::Ready(Ok(())),
                    Poll::Pending => {}
                }
                if !progressed {
                    return Poll::Pending;
                }
            }
        })
        .await;
        if let Err(e) = result {
            tracing::debug!("inter-router connection ended: {e}");
        }
        for request in waiting {
            let _ = request.send(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "inter-router connection closed",
            )));
        }
    });
    (Opener(open_tx), inbound_rx, driver)
}
