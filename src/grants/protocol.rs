//! The grant server's answers, exactly as Skupper's (skupper-formats §2.8 for AccessTokens,
//! §3.3 for v1 claims), as a function from a request to a response; the HTTPS layer
//! (`server`) only carries them. Blocking: it takes the grant's file lock and issues a
//! certificate, so the server runs it off the async threads.
//!
//! AccessToken (`POST /<grant uid>`, body = code), checked in Skupper's order:
//! 405 `Only POST is supported`; 404 `No such claim` (unknown or expired grant);
//! 404 `No such access granted` (redemptions used up); 403 `Redemption of access token refused`
//! (wrong code, compared in constant time); 200 with the Secret and the Link (YAML stream).
//! v1 claim (`POST /<grant name>?site-version=V`, header `skupper-site-name`):
//! 400 (version not supported); 404 `No such claim` (unknown, expired, or used up);
//! 403 `Claim refused`; 200 with a connection-token Secret.
//!
//! A redemption is counted only when its answer is ready: checks, certificate and the new count
//! happen under the grant's lock, and the count is written before the 200 goes out (if it cannot
//! be written the answer is 503, as Skupper's). Wrong codes are counted per grant (on disk) and
//! per peer address (in memory); each answer to a wrong code is delayed, longer with every
//! failure, and says nothing more than Skupper's 403.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::model::{check_name, AccessGrant, Resource, SiteResources};
use crate::store::SiteDir;

use super::bundle::LinkAccess;
use super::code::code_matches;
use super::state::LockedState;
use super::{TokenFormat, HOST_ANNOTATION};

pub const NO_SUCH_CLAIM: &str = "No such claim";
pub const USED_UP: &str = "No such access granted";
pub const REFUSED: &str = "Redemption of access token refused";
pub const V1_REFUSED: &str = "Claim refused";
const ONLY_POST: &str = "Only POST is supported";
pub(crate) const INTERNAL: &str = "Internal error";
const EDGE: &str = "Edge sites cannot accept incoming links from remote sites";
const NO_ENDPOINTS: &str = "No valid endpoints found for site";

/// The first wrong code's answer waits this long; each further one twice as long, up to the cap.
const FIRST_FAILURE_DELAY: Duration = Duration::from_millis(100);
const MAX_FAILURE_DELAY: Duration = Duration::from_secs(10);
/// A peer's failures are forgotten after this long without another.
const PEER_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Bound on the peers remembered at once.
const MAX_PEERS: usize = 4096;
/// Longest subject accepted (an X.509 CommonName has at most 64 characters).
const MAX_SUBJECT: usize = 64;

/// One HTTP request, reduced to what the protocol reads.
#[derive(Debug, Clone)]
pub struct GrantRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Header `name`: the name of the Secret and Link returned.
    pub name: Option<&'a str>,
    /// Header `subject`: the client certificate's CN.
    pub subject: Option<&'a str>,
    /// Header `skupper-site-name` (v1 claims): the client certificate's CN.
    pub site_name: Option<&'a str>,
    pub body: &'a [u8],
    pub peer: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantResponse {
    pub status: u16,
    /// `text/plain; charset=utf-8`, as Go's `http.Error` and Skupper's YAML answers.
    pub body: String,
    /// How long the server waits before sending it (wrong codes only).
    pub delay: Duration,
    /// A 200 issued this incoming link: the router must trust its CA before the answer goes.
    pub issued_link: Option<String>,
}

impl GrantResponse {
    /// An error answer as Go's `http.Error` writes it: the text and a newline.
    pub(crate) fn error(status: u16, text: &str) -> GrantResponse {
        GrantResponse {
            status,
            body: format!("{text}\n"),
            delay: Duration::ZERO,
            issued_link: None,
        }
    }
}

#[derive(Debug)]
struct PeerFailures {
    count: u32,
    last: Instant,
}

/// Answers redemptions against one site's grants.
pub struct Redeemer {
    site_dir: SiteDir,
    peers: Mutex<HashMap<IpAddr, PeerFailures>>,
}

impl Redeemer {
    pub fn new(site_dir: SiteDir) -> Redeemer {
        Redeemer {
            site_dir,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Answers one request at time `now`.
    pub fn handle(&self, request: &GrantRequest<'_>, now: SystemTime) -> GrantResponse {
        if request.method != "POST" {
            return GrantResponse::error(405, ONLY_POST);
        }
        let key: String = request.path.split('/').collect();
        let resources = match self.site_dir.load_resources() {
            Ok(Some(resources)) => resources,
            Ok(None) => return GrantResponse::error(404, NO_SUCH_CLAIM),
            Err(e) => {
                tracing::error!("cannot load the site's resources: {e}");
                return GrantResponse::error(500, INTERNAL);
            }
        };
        let Some(grant) = find_grant(&resources, &key) else {
            tracing::info!("redemption of unknown grant '{key}' from {}", request.peer);
            return GrantResponse::error(404, NO_SUCH_CLAIM);
        };
        let format = TokenFormat::of(grant);
        if format == TokenFormat::V1 {
            if let Err(problem) = check_site_version(request.query) {
                return GrantResponse::error(400, &problem);
            }
        }
        let mut locked = match LockedState::lock(&self.site_dir.grants(), &grant.metadata.uid) {
            Ok(locked) => locked,
            Err(e) => {
                tracing::error!(
                    "grant '{}': cannot read its state: {e}",
                    grant.metadata.name
                );
                return GrantResponse::error(500, INTERNAL);
            }
        };
        let Some(mut state) = locked.state.clone() else {
            return GrantResponse::error(404, NO_SUCH_CLAIM);
        };
        let grant_name = &grant.metadata.name;
        if state.expired(now) {
            tracing::info!("grant '{grant_name}' has expired");
            return GrantResponse::error(404, NO_SUCH_CLAIM);
        }
        let allowed = u32::try_from(grant.spec.redemptions_allowed.max(1)).unwrap_or(u32::MAX);
        let used_up = state.redemptions >= allowed;
        if used_up && format == TokenFormat::V2 {
            tracing::info!("grant '{grant_name}' is used up");
            return GrantResponse::error(404, USED_UP);
        }
        if !code_matches(&grant.spec.code, request.body) {
            state.failed_attempts = state.failed_attempts.saturating_add(1);
            let grant_failures = state.failed_attempts;
            if let Err(e) = locked.save(state) {
                tracing::error!("grant '{grant_name}': cannot count a failed attempt: {e}");
            }
            let failures = grant_failures.max(self.peer_failed(request.peer));
            tracing::warn!(
                "grant '{grant_name}': wrong code from {} (failure {failures})",
                request.peer
            );
            let text = match format {
                TokenFormat::V2 => REFUSED,
                TokenFormat::V1 => V1_REFUSED,
            };
            return GrantResponse {
                delay: failure_delay(failures),
                ..GrantResponse::error(403, text)
            };
        }
        if used_up {
            tracing::info!("claim '{grant_name}' is used up");
            return GrantResponse::error(404, NO_SUCH_CLAIM);
        }
        let (body, link) = match answer(&self.site_dir, &resources, grant, format, request) {
            Ok(answer) => answer,
            Err(response) => return response,
        };
        state.redemptions += 1;
        if let Err(e) = locked.save(state) {
            tracing::error!("grant '{grant_name}': cannot record the redemption: {e}");
            // Nothing was handed out: the link's CA goes too.
            if let Err(e) = self
                .site_dir
                .remove_issuer(&self.site_dir.link_issuers(), &link)
            {
                tracing::error!("cannot remove the CA of link '{link}': {e}");
            }
            return GrantResponse::error(503, INTERNAL);
        }
        tracing::info!(
            "grant '{grant_name}' redeemed by {}: incoming link '{link}'",
            request.peer
        );
        GrantResponse {
            status: 200,
            body,
            delay: Duration::ZERO,
            issued_link: Some(link),
        }
    }

    /// Counts a failure for `peer`; returns its failures so far.
    fn peer_failed(&self, peer: IpAddr) -> u32 {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        peers.retain(|_, f| now.duration_since(f.last) < PEER_MEMORY);
        if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
            peers.clear();
        }
        let entry = peers.entry(peer).or_insert(PeerFailures {
            count: 0,
            last: now,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        entry.count
    }
}

/// A v2 grant by its uid, a v1 claim by its name.
fn find_grant<'a>(resources: &'a SiteResources, key: &str) -> Option<&'a AccessGrant> {
    if key.is_empty() {
        return None;
    }
    resources
        .access_grants
        .iter()
        .find(|grant| match TokenFormat::of(grant) {
            TokenFormat::V2 => grant.metadata.uid == key,
            TokenFormat::V1 => grant.metadata.name == key,
        })
}

/// The 200 body for a grant whose code matched and the incoming link it issued (its CA saved),
/// or the error answer (nothing is counted).
fn answer(
    site_dir: &SiteDir,
    resources: &SiteResources,
    grant: &AccessGrant,
    format: TokenFormat,
    request: &GrantRequest<'_>,
) -> Result<(String, String), GrantResponse> {
    let grant_name = grant.metadata.name.as_str();
    let (name, subject) = match format {
        TokenFormat::V2 => {
            let name = request.name.filter(|n| !n.is_empty()).unwrap_or(grant_name);
            (
                name,
                request.subject.filter(|s| !s.is_empty()).unwrap_or(name),
            )
        }
        TokenFormat::V1 => {
            let subject = request
                .site_name
                .filter(|s| !s.is_empty())
                .unwrap_or(grant_name);
            let name = if check_name(subject).is_ok() {
                subject
            } else {
                grant_name
            };
            (name, subject)
        }
    };
    if let Err(problem) = check_name(name) {
        return Err(GrantResponse::error(
            400,
            &format!("Header name is not valid: {problem}"),
        ));
    }
    if subject.len() > MAX_SUBJECT || subject.chars().any(char::is_control) {
        return Err(GrantResponse::error(
            400,
            "Header subject is not valid: at most 64 printable characters",
        ));
    }
    let host = grant.metadata.annotations.get(HOST_ANNOTATION);
    let access = LinkAccess::of(resources, host.map(String::as_str)).map_err(|e| {
        tracing::error!("grant '{grant_name}': {e}");
        let text = if resources.is_edge() {
            EDGE
        } else {
            NO_ENDPOINTS
        };
        GrantResponse::error(500, text)
    })?;
    let internal = |what: String| {
        tracing::error!("grant '{grant_name}': {what}");
        GrantResponse::error(500, INTERNAL)
    };
    let issuers = site_dir
        .load_certificates()
        .map_err(|e| internal(e.to_string()))?
        .issuers;
    let server_ca = issuers
        .get(access.issuer())
        .ok_or_else(|| internal(format!("no CA '{}'", access.issuer())))?;
    let issued = super::issue_link(site_dir, &access, &server_ca.tls_crt, name, name, subject)
        .map_err(|e| internal(e.to_string()))?;
    let (bundle, link) = (&issued.bundle, issued.link.clone());
    let text = match format {
        TokenFormat::V2 => bundle.to_yaml_stream(),
        TokenFormat::V1 => {
            Resource::Secret(bundle.to_v1_connection_token(&resources.site.metadata.uid)).to_yaml()
        }
    };
    text.map(|text| (text, link))
        .map_err(|e| internal(e.to_string()))
}

/// v1 claims carry the redeeming site's version (`?site-version=`); v1 servers refuse versions
/// they cannot link with. Any release from 1.0 on is accepted.
fn check_site_version(query: Option<&str>) -> Result<(), String> {
    let version = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("site-version="))
        .unwrap_or_default();
    if version.is_empty() {
        return Err("Remote site version is undefined: it must be 1.0 or later".into());
    }
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(major) if major >= 1 => Ok(()),
        _ => Err(format!(
            "Remote site version {version} is not supported: it must be 1.0 or later"
        )),
    }
}

/// The wait before answering the `failures`-th wrong code.
pub fn failure_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    FIRST_FAILURE_DELAY
        .saturating_mul(factor)
        .min(MAX_FAILURE_DELAY)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{parse_documents, Resource};
    use crate::ops::token::{new_grant, record_grant};

    /// A site with certificates, and grants made by `grant`.
    pub(crate) struct Fixture {
        pub(crate) site_dir: SiteDir,
        redeemer: Redeemer,
    }

    pub(crate) fn fixture(test: &str) -> Fixture {
        let root =
            std::env::temp_dir().join(format!("vansite-grants-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let site_dir = SiteDir {
            namespace: "default".into(),
            root,
        };
        let resources = crate::render::certs::tests::site("");
        let certs = crate::render::certs::site_certificates(
            &resources,
            &Default::default(),
            crate::render::certs::LeafRenewal::WhenDue,
        )
        .unwrap();
        site_dir.save_certificates(&certs).unwrap();
        site_dir.save_resources(&resources).unwrap();
        Fixture {
            redeemer: Redeemer::new(site_dir.clone()),
            site_dir,
        }
    }

    impl Fixture {
        pub(crate) fn grant(
            &self,
            format: TokenFormat,
            allowed: u32,
            window: Duration,
        ) -> AccessGrant {
            let mut resources = self.site_dir.load_resources().unwrap().unwrap();
            let grant = new_grant(
                resources.site_name(),
                None,
                allowed,
                "1m",
                format,
                None,
                9090,
            );
            let grant = record_grant(
                &self.site_dir,
                &mut resources,
                grant,
                window,
                SystemTime::now(),
            )
            .unwrap();
            self.site_dir.save_resources(&resources).unwrap();
            grant
        }

        fn post(&self, path: &str, body: &str) -> GrantResponse {
            self.request(request_for(path, body))
        }

        fn request(&self, request: GrantRequest<'_>) -> GrantResponse {
            self.redeemer.handle(&request, SystemTime::now())
        }
    }

    fn path(grant: &AccessGrant) -> String {
        format!("/{}", grant.metadata.uid)
    }

    #[test]
    fn only_post_is_supported() {
        let f = fixture("method");
        let grant = f.grant(TokenFormat::V2, 1, Duration::from_secs(60));
        for method in ["GET", "PUT", "HEAD"] {
            let response = f.request(GrantRequest {
                method,
                ..request_for(&path(&grant), &grant.spec.code)
            });
            assert_eq!(response.status, 405);
            assert_eq!(response.body, "Only POST is supported\n");
        }
        // Nothing was used up.
        assert_eq!(f.post(&path(&grant), &grant.spec.code).status, 200);
    }

    fn request_for<'a>(path: &'a str, code: &'a str) -> GrantRequest<'a> {
        GrantRequest {
            method: "POST",
            path,
            query: None,
            name: Some("east-link"),
            subject: Some("east"),
            site_name: None,
            body: code.as_bytes(),
            peer: "198.18.0.9".parse().unwrap(),
        }
    }

    #[test]
    fn a_redemption_answers_a_secret_and_a_link_once() {
        let f = fixture("once");
        let grant = f.grant(TokenFormat::V2, 1, Duration::from_secs(60));
        let response = f.post(&path(&grant), &grant.spec.code);
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.delay, Duration::ZERO);
        let parsed = parse_documents(&response.body, "answer").unwrap();
        let [Resource::Secret(secret), Resource::Link(link)] = parsed.resources.as_slice() else {
            panic!("{}", response.body)
        };
        assert_eq!(secret.metadata.name, "east-link");
        assert_eq!(link.metadata.name, "east-link");
        assert_eq!(link.spec.tls_credentials, "east-link");
        assert_eq!(
            link.spec.endpoint_for_role("inter-router").unwrap().host,
            "west.example"
        );
        let again = f.post(&path(&grant), &grant.spec.code);
        assert_eq!(
            (again.status, again.body.as_str()),
            (404, "No such access granted\n")
        );
        // Used up is answered before the code is looked at, as Skupper does.
        assert_eq!(f.post(&path(&grant), "wrong").status, 404);
    }

    #[test]
    fn name_and_subject_default_to_the_grant_name() {
        let f = fixture("defaults");
        let grant = f.grant(TokenFormat::V2, 1, Duration::from_secs(60));
        let response = f.request(GrantRequest {
            name: None,
            subject: None,
            ..request_for(&path(&grant), &grant.spec.code)
        });
        assert_eq!(response.status, 200);
        let parsed = parse_documents(&response.body, "answer").unwrap();
        assert_eq!(parsed.resources[0].name(), grant.metadata.name);
    }

    #[test]
    fn unknown_and_expired_grants_are_no_such_claim() {
        let f = fixture("unknown");
        let response = f.post("/5b0c0000-0000-4000-8000-000000000000", "code");
        assert_eq!(
            (response.status, response.body.as_str()),
            (404, "No such claim\n")
        );
        assert_eq!(f.post("/", "code").status, 404);
        let grant = f.grant(TokenFormat::V2, 1, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        let response = f.post(&path(&grant), &grant.spec.code);
        assert_eq!(
            (response.status, response.body.as_str()),
            (404, "No such claim\n")
        );
        // A v1 claim is found by name only, a v2 grant by uid only.
        assert_eq!(
            f.post(&format!("/{}", grant.metadata.name), &grant.spec.code)
                .status,
            404
        );
    }

    #[test]
    fn a_wrong_code_is_refused_slower_each_time_and_uses_nothing() {
        let f = fixture("wrong");
        let grant = f.grant(TokenFormat::V2, 1, Duration::from_secs(60));
        let mut last = Duration::ZERO;
        for attempt in 1..=3 {
            // The code with its last character changed (to one it is not).
            let last_char = if grant.spec.code.ends_with('x') {
                'y'
            } else {
                'x'
            };
            let almost = format!("{}{last_char}", &grant.spec.code[..23]);
            let response = f.post(&path(&grant), &almost);
            assert_eq!(
                (response.status, response.body.as_str()),
                (403, "Redemption of access token refused\n"),
                "attempt {attempt}"
            );
            assert!(
                response.delay > last,
                "attempt {attempt}: {:?}",
                response.delay
            );
            last = response.delay;
        }
        assert_eq!(f.post(&path(&grant), "").status, 403);
        assert_eq!(f.post(&path(&grant), &grant.spec.code).status, 200);
    }

    #[test]
    fn failure_delay_grows_to_a_cap() {
        assert_eq!(failure_delay(0), Duration::ZERO);
        assert_eq!(failure_delay(1), Duration::from_millis(100));
        assert_eq!(failure_delay(2), Duration::from_millis(200));
        assert_eq!(
            failure_delay(8),
            Duration::from_millis(12800).min(MAX_FAILURE_DELAY)
        );
        assert_eq!(failure_delay(1000), MAX_FAILURE_DELAY);
    }

    #[test]
    fn many_use_grants_count_every_redemption() {
        let f = fixture("many");
        let grant = f.grant(TokenFormat::V2, 3, Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(f.post(&path(&grant), &grant.spec.code).status, 200);
        }
        assert_eq!(f.post(&path(&grant), &grant.spec.code).status, 404);
    }

    #[test]
    fn bad_name_header_is_refused_without_using_the_grant() {
        let f = fixture("badname");
        let grant = f.grant(TokenFormat::V2, 1, Duration::from_secs(60));
        let response = f.request(GrantRequest {
            name: Some("Not_A_Name"),
            ..request_for(&path(&grant), &grant.spec.code)
        });
        assert_eq!(response.status, 400, "{}", response.body);
        assert_eq!(f.post(&path(&grant), &grant.spec.code).status, 200);
    }

    #[test]
    fn v1_claims_follow_the_claims_protocol() {
        let f = fixture("v1");
        let grant = f.grant(TokenFormat::V1, 1, Duration::from_secs(60));
        let claim_path = format!("/{}", grant.metadata.name);
        let v1 = |query: Option<&'static str>, body: &str| {
            f.request(GrantRequest {
                query,
                name: None,
                subject: None,
                site_name: Some("1f2e0000-0000-4000-8000-00000000000e"),
                ..request_for(&claim_path, body)
            })
        };
        assert_eq!(v1(None, &grant.spec.code).status, 400);
        assert_eq!(v1(Some("site-version=0.9.0"), &grant.spec.code).status, 400);
        let refused = v1(Some("site-version=1.9.6"), "wrong");
        assert_eq!(
            (refused.status, refused.body.as_str()),
            (403, "Claim refused\n")
        );
        let ok = v1(Some("site-version=1.9.6"), &grant.spec.code);
        assert_eq!(ok.status, 200, "{}", ok.body);
        let parsed = parse_documents(&ok.body, "answer").unwrap();
        let [Resource::Secret(token)] = parsed.resources.as_slice() else {
            panic!("{}", ok.body)
        };
        assert_eq!(token.metadata.name, "1f2e0000-0000-4000-8000-00000000000e");
        assert_eq!(token.metadata.labels["skupper.io/type"], "connection-token");
        assert_eq!(token.metadata.annotations["inter-router-port"], "55671");
        let used = v1(Some("site-version=1.9.6"), &grant.spec.code);
        assert_eq!((used.status, used.body.as_str()), (404, "No such claim\n"));
        // A v1 claim is not reachable by uid.
        assert_eq!(f.post(&path(&grant), &grant.spec.code).status, 404);
    }

    #[test]
    fn edge_site_answers_skuppers_500() {
        let f = fixture("edge");
        let grant = f.grant(TokenFormat::V2, 1, Duration::from_secs(60));
        let mut resources = f.site_dir.load_resources().unwrap().unwrap();
        resources.site.spec.edge = true;
        f.site_dir.save_resources(&resources).unwrap();
        let response = f.post(&path(&grant), &grant.spec.code);
        assert_eq!(
            (response.status, response.body.as_str()),
            (
                500,
                "Edge sites cannot accept incoming links from remote sites\n"
            )
        );
    }

    #[test]
    fn parallel_redemptions_of_a_single_use_grant_succeed_once() {
        let f = std::sync::Arc::new(fixture("parallel"));
        let grant = f.grant(TokenFormat::V2, 1, Duration::from_secs(60));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (f, grant, barrier) = (f.clone(), grant.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    f.post(&path(&grant), &grant.spec.code).status
                })
            })
            .collect();
        let mut statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 404, 404, 404, 404, 404, 404, 404]);
    }
}
