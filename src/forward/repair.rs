//! The forwarder re-opens its router tcpListener when the router could not bind its port.
//!
//! The router tries to bind a tcpListener's port once (at its start, or when the listener's
//! service becomes reachable); if another program holds the port then, it reports operStatus
//! `down` with the error in `connectionMsg` and never tries again, so the listener stays dead
//! after the port is free until the router restarts. The forwarder is where that shows first
//! (its connections are refused, or reach a socket that is not the router's: `owner`), it runs
//! for exactly one listener, and it runs as the site's user: so it is the one that repairs,
//! with the site's local management client certificate (mounted read-only) over the router's
//! local listener: it re-creates the tcpListener (DELETE + CREATE with the attributes the router
//! has for it, and its listenerAddresses with it) until the router binds, backing off while the
//! port is still held. No other process or unit is needed, and the repair happens whether or
//! not a vansite command is run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::router::management::{ClientTls, ManagementClient, ManagementError};

/// The tcpListener attributes a CREATE takes (the schema's `create: true` ones).
const LISTENER_ATTRIBUTES: [&str; 10] = [
    "name",
    "address",
    "host",
    "port",
    "backlog",
    "multiAddressStrategy",
    "siteId",
    "sslProfile",
    "authenticatePeer",
    "observer",
];
const ADDRESS_ATTRIBUTES: [&str; 4] = ["name", "address", "value", "listener"];
const MESSAGE: &str = "connectionMsg";
const TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// After a look that found nothing to repair, further alarms wait this long: refused
/// connections are normal while the router restarts or no connector is reachable.
const QUIET: Duration = Duration::from_secs(5);

/// Where the forwarder's tcpListener is managed.
#[derive(Debug, Clone)]
pub struct ListenerRepair {
    /// The router's local management listener.
    pub management: SocketAddr,
    /// The directory of the site's local client certificate (`ca.crt`, `tls.crt`, `tls.key`).
    pub credentials: PathBuf,
    /// The tcpListener's name.
    pub entity: String,
}

/// A tcpListener and its listenerAddresses as the router had them before the repair deleted
/// them: kept until they are all back, so that a repair cut short is finished next time.
#[derive(Debug, Clone)]
struct Saved {
    listener: Map<String, Value>,
    addresses: Vec<Map<String, Value>>,
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The router reports no failure to listen.
    Healthy,
    /// Re-created; whether the router could bind now shows at the next look.
    Recreated,
}

impl ListenerRepair {
    /// Looks whenever `alarm` is raised, and repairs until the router reports no failure.
    pub async fn run(self, alarm: Arc<Notify>) {
        let mut saved = None;
        loop {
            alarm.notified().await;
            let mut delay = FIRST_DELAY;
            loop {
                match self.look_and_repair(&mut saved).await {
                    Ok(Outcome::Healthy) => break,
                    Ok(Outcome::Recreated) => {}
                    Err(e) => tracing::info!(
                        "cannot check the router's tcpListener {} (will try again): {e}",
                        self.entity
                    ),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
            tokio::time::sleep(QUIET).await;
        }
    }

    async fn look_and_repair(&self, saved: &mut Option<Saved>) -> Result<Outcome, ManagementError> {
        let tls = ClientTls::from_dir(&self.credentials)?;
        let host = self.management.ip().to_string();
        let mut client =
            ManagementClient::connect(&host, self.management.port(), &tls, TIMEOUT).await?;
        let outcome = self.repair(&mut client, saved).await;
        let _ = client.close().await;
        outcome
    }

    async fn repair(
        &self,
        client: &mut ManagementClient,
        saved: &mut Option<Saved>,
    ) -> Result<Outcome, ManagementError> {
        // An earlier repair deleted them and did not finish: put back what is missing.
        if let Some(earlier) = saved {
            self.create_missing(client, earlier).await?;
            *saved = None;
            return Ok(Outcome::Recreated);
        }
        let mut columns = LISTENER_ATTRIBUTES.to_vec();
        columns.push(MESSAGE);
        let row = client
            .query("tcpListener", &columns)
            .await?
            .into_iter()
            .find(|row| name(row) == Some(&self.entity));
        let Some(row) = row else {
            return Ok(Outcome::Healthy);
        };
        let message = row.get(MESSAGE).and_then(Value::as_str).unwrap_or_default();
        if message.is_empty() {
            return Ok(Outcome::Healthy);
        }
        tracing::warn!(
            "the router cannot listen for tcpListener {} ({message}); re-creating it",
            self.entity
        );
        let addresses = client
            .query("listenerAddress", &ADDRESS_ATTRIBUTES)
            .await?
            .into_iter()
            .filter(|a| a.get("listener").and_then(Value::as_str) == Some(&self.entity))
            .map(creatable)
            .collect();
        let this = saved.insert(Saved {
            listener: creatable(row),
            addresses,
        });
        // A multi-address tcpListener goes after its addresses (the router refuses otherwise).
        for address in &this.addresses {
            delete(client, "listenerAddress", address).await?;
        }
        delete(client, "tcpListener", &this.listener).await?;
        self.create_missing(client, this).await?;
        *saved = None;
        Ok(Outcome::Recreated)
    }

    /// Creates those of `saved` the router does not have.
    async fn create_missing(
        &self,
        client: &mut ManagementClient,
        saved: &Saved,
    ) -> Result<(), ManagementError> {
        let names = |rows: Vec<Map<String, Value>>| -> Vec<String> {
            rows.iter().filter_map(name).map(str::to_string).collect()
        };
        let listeners = names(client.query("tcpListener", &["name"]).await?);
        if !listeners.contains(&self.entity) {
            client
                .create("tcpListener", &self.entity, saved.listener.clone())
                .await?;
        }
        let addresses = names(client.query("listenerAddress", &["name"]).await?);
        for address in &saved.addresses {
            let address_name = name(address).unwrap_or_default();
            if !addresses.iter().any(|n| n == address_name) {
                client
                    .create("listenerAddress", address_name, address.clone())
                    .await?;
            }
        }
        Ok(())
    }
}

fn name(row: &Map<String, Value>) -> Option<&str> {
    row.get("name").and_then(Value::as_str)
}

/// The attributes of a queried row that a CREATE takes: the router's unset ones (null) left out.
fn creatable(mut row: Map<String, Value>) -> Map<String, Value> {
    row.retain(|key, value| key != MESSAGE && !value.is_null());
    row
}

/// DELETE, where an entity already gone is fine.
async fn delete(
    client: &mut ManagementClient,
    entity_type: &str,
    row: &Map<String, Value>,
) -> Result<(), ManagementError> {
    match client
        .delete(entity_type, name(row).unwrap_or_default())
        .await
    {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
