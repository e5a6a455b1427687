//! Many streams over one inter-router connection. The stand-in's own wire protocol between
//! routers (the real router speaks AMQP there) is yamux over the mutual-TLS connection: one
//! control stream for hello and address advertisements, one stream per carried TCP connection.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
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
) -> (
    Opener,
    mpsc::UnboundedReceiver<Stream>,
    tokio::task::JoinHandle<()>,
)
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
    let (reader, writer) = tokio::io::split(io);
    let (queue, queued) = mpsc::unbounded_channel();
    tokio::spawn(drain(queued, writer));
    let socket = QueuedWrites {
        reader,
        queue: Some(queue),
    };
    let mut connection = yamux::Connection::new(socket.compat(), config, mode);
    let (open_tx, mut open_rx) = mpsc::channel::<OpenRequest>(64);
    let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
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
                        // yamux's stream limit bounds the queue.
                        let _ = inbound_tx.send(stream.compat());
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

/// The connection's socket as yamux sees it: reads come from the socket, writes go to a queue
/// that a task of its own drains into the socket. yamux stops reading while a frame it must
/// answer (a Pong) waits to be written; with both peers sending at full speed, each then waits
/// for the other to read, for ever. Writes that never wait break that cycle; yamux's flow
/// control windows bound what the queue holds.
struct QueuedWrites<R> {
    reader: R,
    /// None once shut down.
    queue: Option<mpsc::UnboundedSender<Vec<u8>>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for QueuedWrites<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for QueuedWrites<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let sent = self.queue.as_ref().map(|queue| queue.send(buf.to_vec()));
        Poll::Ready(match sent {
            Some(Ok(())) => Ok(buf.len()),
            _ => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "inter-router connection closed",
            )),
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.queue = None;
        Poll::Ready(Ok(()))
    }
}

/// Writes the queued bytes to the socket until the queue closes, then ends the socket's
/// writing side.
async fn drain<W: AsyncWrite + Unpin>(mut queued: mpsc::UnboundedReceiver<Vec<u8>>, mut writer: W) {
    let result: io::Result<()> = async {
        while let Some(bytes) = queued.recv().await {
            writer.write_all(&bytes).await?;
            if queued.is_empty() {
                writer.flush().await?;
            }
        }
        writer.shutdown().await
    }
    .await;
    if let Err(e) = result {
        tracing::debug!("inter-router connection: cannot write: {e}");
    }
}
