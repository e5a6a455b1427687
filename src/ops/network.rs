//! `vansite network status`: every site, link and service of the network, as the routers'
//! vanflow records describe them, read through the site's own router.

use std::collections::BTreeMap;
use std::time::Duration;

use super::apply::site_router_endpoint;
use crate::error::Error;
use crate::model::SiteResources;
use crate::observe::collector;
use crate::observe::records::Timestamp;
use crate::observe::status::NetworkStatus;
use crate::store::Paths;

/// Enough for every router's first heartbeat (2 s) and its FLUSH answer (1 s) even across
/// a slow link; the answer comes sooner when all have answered.
const COLLECT_LIMIT: Duration = Duration::from_secs(8);

pub async fn status(paths: &Paths, namespace: &str) -> Result<NetworkStatus, Error> {
    let site_dir = paths.site(namespace);
    let resources = paths.load_site(namespace)?;
    let endpoint = site_router_endpoint(&site_dir, &resources)?;
    let network = collector::snapshot(&endpoint, COLLECT_LIMIT).await?;
    let mut status = NetworkStatus::of(&network, Timestamp::now());
    status.seen_from(
        &resources.site.metadata.uid,
        &forwarded_listeners(&resources),
    );
    Ok(status)
}

/// Router port → the listener's own host and port, for every listener behind a forwarder.
pub(crate) fn forwarded_listeners(resources: &SiteResources) -> BTreeMap<u16, (String, u16)> {
    // A site as loaded has passed the plan's checks, so its listeners are the plan's.
    crate::plan::forwarded_listeners(resources)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| Some((l.router_port?, (l.host, l.port))))
        .collect()
}
