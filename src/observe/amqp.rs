//! The collector's AMQP 1.0 client: receive links that hand over each message's raw bytes,
//! and one anonymous sender for FLUSH requests.
//!
//! Why not fe2o3's `Receiver`: it decodes every message into its typed `Message`, whose
//! `MessageId` refuses the `long` message-id the router puts on every vanflow message
//! (`reference/vanflow.md` §1.4), and offers no raw bytes to fall back on. So this client
//! speaks the protocol itself on fe2o3's typed frames (its `Transport` and performatives):
//! one connection, one session on channel 0, links attached on demand, credit refilled as
//! messages arrive. Everything the router sends is pre-settled; anything that is not is
//! accepted. [`super::wire::decode`] then reads the sections.

use std::collections::HashMap;
use std::time::Duration;

use fe2o3_amqp::frames::amqp::{Frame, FrameBody};
use fe2o3_amqp::transport::Transport;
use fe2o3_amqp::types::definitions::{
    ErrorCondition, Handle, ReceiverSettleMode, Role, SenderSettleMode,
};
use fe2o3_amqp::types::messaging::{
    Accepted, AmqpValue, DeliveryState, Properties, Source, Target,
};
use fe2o3_amqp::types::performatives::{
    Attach, Begin, ChannelMax, Close, Disposition, Flow, MaxFrameSize, Open, Transfer,
};
use fe2o3_amqp::types::primitives::{Binary, Value};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";

/// Largest frame either side may send. Vanflow messages carry at most 50 records.
const MAX_FRAME_SIZE: u32 = 65_536;

/// Messages a receive link may be sent before it asks for more; refilled at half.
const LINK_CREDIT: u32 = 500;

/// Transfers the session takes before a window update (refreshed with every link flow).
const SESSION_WINDOW: u32 = 65_536;

/// The idle timeout announced to the router: it sends an empty frame within half of it, so
/// a router that stops answering is noticed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The only channel used.
const CHANNEL: u16 = 0;

/// The anonymous sender's handle (receive links take the following ones).
const SENDER: Handle = Handle(0);

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Transport(#[from] fe2o3_amqp::transport::Error),
    #[error("the peer answered protocol header {0:?}, not AMQP 1.0")]
    Header([u8; 8]),
    #[error("the router closed the connection{}", describe(.0))]
    Closed(Option<fe2o3_amqp::types::definitions::Error>),
    #[error("the router refused the link to {address}{}", describe(.error))]
    LinkRefused {
        address: String,
        error: Option<fe2o3_amqp::types::definitions::Error>,
    },
    #[error("unexpected {0} from the router")]
    Protocol(String),
}

fn describe(error: &Option<fe2o3_amqp::types::definitions::Error>) -> String {
    match error {
        Some(e) => format!(
            ": {}{}",
            condition_text(&e.condition),
            e.description
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
        None => String::new(),
    }
}

/// The condition's symbol, e.g. `amqp:not-found`.
fn condition_text(condition: &ErrorCondition) -> String {
    use fe2o3_amqp::types::primitives::Symbol;
    let symbol = match condition {
        ErrorCondition::AmqpError(e) => Symbol::from(e),
        ErrorCondition::ConnectionError(e) => Symbol::from(e),
        ErrorCondition::SessionError(e) => Symbol::from(e),
        ErrorCondition::LinkError(e) => Symbol::from(e),
        ErrorCondition::Custom(s) => s.clone(),
        #[allow(unreachable_patterns)]
        other => return format!("{other:?}"),
    };
    symbol.0
}

/// One whole message received on a subscribed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The address the receive link was attached to.
    pub address: String,
    /// The message's sections as sent.
    pub message: Vec<u8>,
}

#[derive(Debug)]
struct ReceiveLink {
    address: String,
    /// The sender's delivery-count as this side knows it (AMQP 1.0 §2.6.7).
    delivery_count: u32,
    credit: u32,
    /// A message arriving in several transfer frames, until the last.
    partial: Vec<u8>,
}

/// A connection with one session, for subscribing to addresses and sending requests.
pub struct Subscriber<Io> {
    transport: Transport<Io, Frame>,
    /// Receive links by handle number.
    links: HashMap<u32, ReceiveLink>,
    next_handle: u32,
    /// Session state (AMQP 1.0 §2.5.6): the ids of the next transfer each way.
    next_incoming_id: u32,
    next_outgoing_id: u32,
    /// The anonymous sender: its delivery-count and the credit the router gave it.
    sent: u32,
    send_credit: u32,
    /// Requests waiting for credit: (to, subject).
    queued: Vec<(String, String)>,
    /// When an empty frame is due to keep the router's idle timer quiet.
    keepalive: Option<(Duration, Instant)>,
}

impl<Io> Subscriber<Io>
where
    Io: AsyncRead + AsyncWrite + Unpin,
{
    /// Opens the connection and session on `io` (already authenticated) and attaches the
    /// anonymous sender.
    pub async fn open(mut io: Io, container_id: &str) -> Result<Self, AmqpError> {
        io.write_all(&AMQP_HEADER).await?;
        io.flush().await?;
        let mut header = [0u8; 8];
        io.read_exact(&mut header).await?;
        if header != AMQP_HEADER {
            return Err(AmqpError::Header(header));
        }
        let transport = Transport::bind(io, MAX_FRAME_SIZE as usize, Some(IDLE_TIMEOUT));
        let mut subscriber = Self {
            transport,
            links: HashMap::new(),
            next_handle: SENDER.0 + 1,
            next_incoming_id: 0,
            next_outgoing_id: 0,
            sent: 0,
            send_credit: 0,
            queued: Vec::new(),
            keepalive: None,
        };
        subscriber
            .send(FrameBody::Open(Open {
                container_id: container_id.to_string(),
                hostname: None,
                max_frame_size: MaxFrameSize(MAX_FRAME_SIZE),
                channel_max: ChannelMax(0),
                idle_time_out: Some(IDLE_TIMEOUT.as_millis() as u32),
                outgoing_locales: None,
                incoming_locales: None,
                offered_capabilities: None,
                desired_capabilities: None,
                properties: None,
            }))
            .await?;
        subscriber
            .send(FrameBody::Begin(Begin {
                remote_channel: None,
                next_outgoing_id: 0,
                incoming_window: SESSION_WINDOW,
                outgoing_window: SESSION_WINDOW,
                handle_max: Handle(u32::MAX),
                offered_capabilities: None,
                desired_capabilities: None,
                properties: None,
            }))
            .await?;
        // The anonymous sender: the router routes each message by its `to`.
        subscriber
            .send(FrameBody::Attach(Attach {
                name: format!("{container_id}-requests"),
                handle: SENDER,
                role: Role::Sender,
                snd_settle_mode: SenderSettleMode::Settled,
                rcv_settle_mode: ReceiverSettleMode::First,
                source: Some(Box::new(Source::builder().build())),
                target: Some(Box::new(Target::builder().build().into())),
                unsettled: None,
                incomplete_unsettled: false,
                initial_delivery_count: Some(0),
                max_message_size: None,
                offered_capabilities: None,
                desired_capabilities: None,
                properties: None,
            }))
            .await?;
        Ok(subscriber)
    }

    /// Attaches a receive link to `address`; its messages come from [`Self::next`].
    pub async fn subscribe(&mut self, address: &str) -> Result<(), AmqpError> {
        let handle = Handle(self.next_handle);
        self.next_handle += 1;
        self.links.insert(
            handle.0,
            ReceiveLink {
                address: address.to_string(),
                delivery_count: 0,
                credit: 0,
                partial: Vec::new(),
            },
        );
        self.send(FrameBody::Attach(Attach {
            name: format!("vansite-{address}-{}", handle.0),
            handle,
            role: Role::Receiver,
            snd_settle_mode: SenderSettleMode::Mixed,
            rcv_settle_mode: ReceiverSettleMode::First,
            source: Some(Box::new(Source::builder().address(address).build())),
            target: Some(Box::new(Target::builder().build().into())),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: None,
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }))
        .await
    }

    /// Sends a message with only `to` and `subject` (and a null body): what a FLUSH is. It
    /// waits for the router's credit when there is none yet.
    pub async fn request(&mut self, to: &str, subject: &str) -> Result<(), AmqpError> {
        self.queued.push((to.to_string(), subject.to_string()));
        self.send_queued().await
    }

    /// The next whole message on any subscribed address, or `None` at `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> Result<Option<Delivery>, AmqpError> {
        loop {
            let wake = match self.keepalive {
                Some((_, due)) => due.min(deadline),
                None => deadline,
            };
            let frame = tokio::select! {
                frame = self.transport.next() => frame,
                () = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    self.send(FrameBody::Empty).await?;
                    continue;
                }
            };
            let Some(frame) = frame else {
                return Err(AmqpError::Closed(None));
            };
            if let Some(delivery) = self.handle(frame?.into_body()).await? {
                return Ok(Some(delivery));
            }
        }
    }

    /// Ends the connection politely.
    pub async fn close(mut self) -> Result<(), AmqpError> {
        self.send(FrameBody::Close(Close { error: None })).await?;
        self.transport.close().await?;
        Ok(())
    }

    async fn handle(&mut self, body: FrameBody) -> Result<Option<Delivery>, AmqpError> {
        match body {
            FrameBody::Open(open) => {
                // Half the router's idle timeout, as AMQP 1.0 §2.4.5 advises.
                if let Some(ms) = open.idle_time_out.filter(|ms| *ms > 0) {
                    let every = Duration::from_millis(u64::from(ms) / 2);
                    self.keepalive = Some((every, Instant::now() + every));
                }
            }
            FrameBody::Begin(begin) => self.next_incoming_id = begin.next_outgoing_id,
            FrameBody::Attach(attach) if attach.role == Role::Sender => {
                let Some(link) = self.links.get_mut(&attach.handle.0) else {
                    return Err(AmqpError::Protocol(format!(
                        "attach for unknown handle {}",
                        attach.handle.0
                    )));
                };
                // A refused source comes back as an attach without one, then a detach.
                if attach.source.is_some() {
                    link.delivery_count = attach.initial_delivery_count.unwrap_or(0);
                    self.grant_credit(attach.handle).await?;
                }
            }
            FrameBody::Attach(_) => {} // the router's side of the anonymous sender
            FrameBody::Flow(flow) => {
                if flow.handle.as_ref() == Some(&SENDER) {
                    // Credit = the receiver's delivery-count + its credit − what was sent.
                    let limit = flow
                        .delivery_count
                        .unwrap_or(0)
                        .wrapping_add(flow.link_credit.unwrap_or(0));
                    self.send_credit = limit.wrapping_sub(self.sent);
                    self.send_queued().await?;
                }
            }
            FrameBody::Transfer {
                performative,
                payload,
            } => return self.transfer(performative, &payload).await,
            FrameBody::Detach(detach) => {
                let address = self
                    .links
                    .remove(&detach.handle.0)
                    .map_or_else(|| "the requests link".to_string(), |l| l.address);
                return Err(AmqpError::LinkRefused {
                    address,
                    error: detach.error,
                });
            }
            FrameBody::End(end) => return Err(AmqpError::Closed(end.error)),
            FrameBody::Close(close) => return Err(AmqpError::Closed(close.error)),
            FrameBody::Disposition(_) | FrameBody::Empty => {}
        }
        Ok(None)
    }

    async fn transfer(
        &mut self,
        transfer: Transfer,
        payload: &[u8],
    ) -> Result<Option<Delivery>, AmqpError> {
        self.next_incoming_id = self.next_incoming_id.wrapping_add(1);
        let Some(link) = self.links.get_mut(&transfer.handle.0) else {
            return Err(AmqpError::Protocol(format!(
                "transfer on unknown handle {}",
                transfer.handle.0
            )));
        };
        link.partial.extend_from_slice(payload);
        if transfer.more {
            return Ok(None);
        }
        let message = std::mem::take(&mut link.partial);
        if transfer.aborted {
            return Ok(None);
        }
        link.delivery_count = link.delivery_count.wrapping_add(1);
        link.credit = link.credit.saturating_sub(1);
        let delivery = Delivery {
            address: link.address.clone(),
            message,
        };
        let refill = link.credit < LINK_CREDIT / 2;
        if transfer.settled != Some(true) {
            if let Some(id) = transfer.delivery_id {
                self.send(FrameBody::Disposition(Disposition {
                    role: Role::Receiver,
                    first: id,
                    last: None,
                    settled: true,
                    state: Some(DeliveryState::Accepted(Accepted {})),
                    batchable: false,
                }))
                .await?;
            }
        }
        if refill {
            self.grant_credit(transfer.handle).await?;
        }
        Ok(Some(delivery))
    }

    /// Gives a receive link [`LINK_CREDIT`] again (and reopens the session window).
    async fn grant_credit(&mut self, handle: Handle) -> Result<(), AmqpError> {
        let Some(link) = self.links.get_mut(&handle.0) else {
            return Ok(());
        };
        link.credit = LINK_CREDIT;
        let delivery_count = link.delivery_count;
        let flow = self.flow(Some(handle), Some(delivery_count), Some(LINK_CREDIT));
        self.send(FrameBody::Flow(flow)).await
    }

    fn flow(
        &self,
        handle: Option<Handle>,
        delivery_count: Option<u32>,
        credit: Option<u32>,
    ) -> Flow {
        Flow {
            next_incoming_id: Some(self.next_incoming_id),
            incoming_window: SESSION_WINDOW,
            next_outgoing_id: self.next_outgoing_id,
            outgoing_window: SESSION_WINDOW,
            handle,
            delivery_count,
            link_credit: credit,
            available: None,
            drain: false,
            echo: false,
            properties: None,
        }
    }

    async fn send_queued(&mut self) -> Result<(), AmqpError> {
        while self.send_credit > 0 && !self.queued.is_empty() {
            let (to, subject) = self.queued.remove(0);
            let message = request_message(&to, &subject)?;
            let id = self.next_outgoing_id;
            self.send(FrameBody::Transfer {
                performative: Transfer {
                    handle: SENDER,
                    delivery_id: Some(id),
                    delivery_tag: Some(Binary::from(id.to_be_bytes().to_vec())),
                    message_format: Some(0),
                    settled: Some(true),
                    more: false,
                    rcv_settle_mode: None,
                    state: None,
                    resume: false,
                    aborted: false,
                    batchable: false,
                },
                payload: message.into(),
            })
            .await?;
            self.next_outgoing_id = self.next_outgoing_id.wrapping_add(1);
            self.sent = self.sent.wrapping_add(1);
            self.send_credit -= 1;
        }
        Ok(())
    }

    async fn send(&mut self, body: FrameBody) -> Result<(), AmqpError> {
        self.transport.send(Frame::new(CHANNEL, body)).await?;
        if let Some((every, due)) = self.keepalive.as_mut() {
            *due = Instant::now() + *every;
        }
        Ok(())
    }
}

/// A properties section with `to` and `subject`, and an amqp-value null body.
fn request_message(to: &str, subject: &str) -> Result<Vec<u8>, AmqpError> {
    let properties = Properties {
        to: Some(to.to_string()),
        subject: Some(subject.to_string()),
        ..Properties::default()
    };
    let encode =
        |e: serde_amqp::Error| AmqpError::Protocol(format!("cannot encode a request: {e}"));
    let mut message = serde_amqp::to_vec(&properties).map_err(encode)?;
    message.extend(serde_amqp::to_vec(&AmqpValue(Value::Null)).map_err(encode)?);
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::wire::{decode, VanflowMessage};

    #[test]
    fn a_flush_request_decodes_as_flush_addressed_to_the_router() {
        let message = request_message("sfe.q7m2k:0", "FLUSH").unwrap();
        let decoded = decode(&message).unwrap();
        assert_eq!(decoded.to.as_deref(), Some("sfe.q7m2k:0"));
        assert_eq!(decoded.message, VanflowMessage::Flush);
    }
}
