//! The vanflow collector: connects to the site's own router as Skupper's collectors do
//! (`reference/vanflow.md` §1.6), subscribes to every router of the network and feeds the
//! [`Network`] model with what they send.
//!
//! Discovery does not wait for beacons (one every 10 s): every router's FLUSH address is a
//! mobile address in the routing table (`Msfe.<id>`, checked on the real router 3.5.1), so
//! one management QUERY of `router.address` names them all at once. Beacons on `mc/sfe.all`
//! still announce routers that join later, and that subscription is what makes routers
//! send heartbeats at all.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::amqp::{AmqpError, Delivery, Subscriber};
use super::network::{Network, Next};
use super::records::Timestamp;
use super::wire::{decode, Beacon, SourceId, VanflowMessage};
pub use crate::router::management::RouterEndpoint;
use crate::router::management::{authenticated_stream, ManagementError};
use crate::router::views::AddressView;

/// Where every source announces itself.
const BEACONS: &str = "mc/sfe.all";

/// A FLUSH answer is spread over the router's 200 ms flush slots; observed complete within
/// 0.95 s.
const FLUSH_ANSWER: Duration = Duration::from_millis(1200);

/// How often a running collector looks for sources gone silent.
const EXPIRY_CHECK: Duration = Duration::from_secs(5);

/// Bounds each step of connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(transparent)]
    Connect(#[from] ManagementError),
    #[error("vanflow from the router at {addr}: {source}")]
    Amqp { addr: String, source: AmqpError },
}

/// The network as the routers describe it now: every router is asked for all its records,
/// and the answer is returned once they have arrived, or at `limit` with what came.
pub async fn snapshot(
    endpoint: &RouterEndpoint,
    limit: Duration,
) -> Result<Network, CollectorError> {
    let deadline = Instant::now() + limit;
    let mut network = Network::new();
    let mut collector = Collector::connect(endpoint, &mut network).await?;
    loop {
        let until = collector.settled_at().map_or(deadline, |t| t.min(deadline));
        match collector.next(until).await? {
            Some(delivery) => {
                let next = apply(&mut network, delivery);
                collector.follow(next).await?;
            }
            None if Instant::now() >= deadline || collector.settled_at().is_some() => break,
            None => {}
        }
    }
    collector.close().await;
    Ok(network)
}

/// Keeps the model in `publish` up to date until the connection fails (the router
/// restarted or stopped): the caller reconnects.
pub async fn run(
    endpoint: &RouterEndpoint,
    publish: &watch::Sender<Network>,
) -> Result<(), CollectorError> {
    let mut network = Network::new();
    let mut collector = Collector::connect(endpoint, &mut network).await?;
    publish.send_replace(network);
    loop {
        let check = Instant::now() + EXPIRY_CHECK;
        while let Some(delivery) = collector.next(check).await? {
            let mut next = None;
            publish.send_modify(|network| next = apply(network, delivery));
            collector.follow(next).await?;
        }
        publish.send_if_modified(|network| !network.expire(Timestamp::now()).is_empty());
    }
}

/// One connection's work: the subscriber, and which sources have been asked for their
/// records after they were heard.
struct Collector {
    addr: String,
    subscriber: Subscriber<TlsStream<TcpStream>>,
    /// Sources subscribed to, and when each was flushed after being heard (`None`: not yet).
    flushed: Vec<(SourceId, Option<Instant>)>,
}

impl Collector {
    async fn connect(
        endpoint: &RouterEndpoint,
        network: &mut Network,
    ) -> Result<Self, CollectorError> {
        let routers = discover(endpoint).await?;
        tracing::debug!(?routers, "vanflow sources in the routing table");
        let (stream, addr) = authenticated_stream(
            &endpoint.host,
            endpoint.port,
            &endpoint.tls,
            CONNECT_TIMEOUT,
        )
        .await?;
        let amqp = |source| CollectorError::Amqp {
            addr: addr.clone(),
            source,
        };
        let container_id = format!("vansite-collector-{}", std::process::id());
        let mut subscriber =
            tokio::time::timeout(CONNECT_TIMEOUT, Subscriber::open(stream, &container_id))
                .await
                .map_err(|_| amqp(AmqpError::Protocol("no answer to open".into())))?
                .map_err(amqp)?;
        subscriber.subscribe(BEACONS).await.map_err(amqp)?;
        let mut collector = Self {
            addr,
            subscriber,
            flushed: Vec::new(),
        };
        for id in routers {
            let next = network.apply(
                &id.clone(),
                VanflowMessage::Beacon(Beacon::router(id)),
                Timestamp::now(),
            );
            collector.follow(next).await?;
        }
        Ok(collector)
    }

    async fn next(&mut self, until: Instant) -> Result<Option<Delivery>, CollectorError> {
        self.subscriber
            .next(until)
            .await
            .map_err(|source| CollectorError::Amqp {
                addr: self.addr.clone(),
                source,
            })
    }

    /// Subscribes to a new source (and asks it at once: its own router answers before any
    /// heartbeat), or asks a source heard for the first time for all its records.
    async fn follow(&mut self, next: Option<Next>) -> Result<(), CollectorError> {
        let amqp = |source| CollectorError::Amqp {
            addr: self.addr.clone(),
            source,
        };
        match next {
            Some(Next::Subscribe(beacon)) => {
                for address in beacon.addresses() {
                    self.subscriber.subscribe(&address).await.map_err(amqp)?;
                }
                self.subscriber
                    .request(&beacon.direct, "FLUSH")
                    .await
                    .map_err(amqp)?;
                self.flushed.retain(|(id, _)| *id != beacon.id);
                self.flushed.push((beacon.id, None));
            }
            Some(Next::Flush(direct)) => {
                self.subscriber
                    .request(&direct, "FLUSH")
                    .await
                    .map_err(amqp)?;
                let id = direct.strip_prefix("sfe.").unwrap_or(&direct);
                for (source, at) in &mut self.flushed {
                    if source.as_str() == id {
                        *at = Some(Instant::now());
                    }
                }
            }
            None => {}
        }
        Ok(())
    }

    /// When every source's answer to its last FLUSH should be in; `None` while a source has
    /// not been heard yet.
    fn settled_at(&self) -> Option<Instant> {
        self.flushed
            .iter()
            .map(|(_, at)| *at)
            .collect::<Option<Vec<Instant>>>()?
            .into_iter()
            .max()
            .map(|last| last + FLUSH_ANSWER)
    }

    async fn close(self) {
        let _ = tokio::time::timeout(CONNECT_TIMEOUT, self.subscriber.close()).await;
    }
}

/// Feeds one message to the model; returns what the model asks next. A message that is
/// not vanflow is logged and skipped: one bad record must not blind the collector.
fn apply(network: &mut Network, delivery: Delivery) -> Option<Next> {
    let message = match decode(&delivery.message) {
        Ok(decoded) => {
            tracing::trace!(address = %delivery.address, message = ?decoded.message, "vanflow");
            decoded.message
        }
        Err(e) => {
            tracing::warn!(address = %delivery.address, "skipping a message: {e}");
            return None;
        }
    };
    let from = match &message {
        VanflowMessage::Beacon(beacon) => beacon.id.clone(),
        _ => SourceId::of_address(&delivery.address)?,
    };
    network.apply(&from, message, Timestamp::now())
}

/// Every router's vanflow source, from the site router's routing table.
async fn discover(endpoint: &RouterEndpoint) -> Result<Vec<SourceId>, ManagementError> {
    let mut management = endpoint.management(CONNECT_TIMEOUT).await?;
    let rows = management.query("router.address", &[]).await;
    let _ = management.close().await;
    Ok(rows?
        .iter()
        .map(AddressView::from_row)
        .filter_map(|address| SourceId::of_direct_address_key(&address.key))
        .collect())
}
