//! The grant server process (`vansite grant-server`, hidden): HTTPS over the listening socket
//! systemd passes (socket activation, `LISTEN_FDS`/`LISTEN_PID`, fd 3), TLS 1.3 only with the
//! `skupper-grant-server` certificate, HTTP/1.1 by hyper; each request answered by
//! [`Redeemer`]. It exits after a while without connections; the socket unit keeps listening
//! and starts it again on the next one, so nothing is lost.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{header, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::platform::activation::{accept, systemd_listener};
use crate::render::certs::GRANT_SERVER;
use crate::store::SiteDir;

use super::protocol::{GrantRequest, GrantResponse, Redeemer};
use super::GrantError;

/// A code is 24 bytes; anything much larger is not a redemption.
const MAX_BODY: usize = 4096;
/// Bound on a client's TLS handshake and on reading its request head.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes the running router trust the links issued so far: the site's certificate files
/// written again and its link listeners renewed. The command line gives it, since the apply
/// belongs to the operations above this module. Err is the reason, for the log.
pub type TrustIssued =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Renewals of the router's trust, one at a time and shared: a renewal reads every link CA
/// on disk when it starts, so it covers each redemption whose CA was saved before; concurrent
/// redemptions wait for one renewal instead of queueing one each.
pub struct TrustRenewals {
    trust: TrustIssued,
    /// Renewals asked for so far (each after its link's CA was saved).
    requested: AtomicU64,
    /// How many of those the last finished renewal covered.
    covered: tokio::sync::Mutex<u64>,
}

impl TrustRenewals {
    pub fn new(trust: TrustIssued) -> TrustRenewals {
        TrustRenewals {
            trust,
            requested: AtomicU64::new(0),
            covered: tokio::sync::Mutex::new(0),
        }
    }

    /// Returns once a renewal that started after this call has finished.
    pub async fn renew(&self) -> Result<(), String> {
        let mine = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.covered.lock().await;
        if *covered >= mine {
            return Ok(());
        }
        let covering = self.requested.load(Ordering::SeqCst);
        (self.trust)().await?;
        *covered = covering;
        Ok(())
    }
}

/// TLS 1.3 only, the site's grant server certificate, HTTP/1.1.
pub fn tls_config(site_dir: &SiteDir) -> Result<Arc<rustls::ServerConfig>, GrantError> {
    let dir = site_dir.certs().join(GRANT_SERVER);
    let bad = |problem: String| GrantError::ServerCertificate {
        path: dir.display().to_string(),
        problem,
    };
    let chain = CertificateDer::pem_file_iter(dir.join("tls.crt"))
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(format!("tls.crt: {e}")))?;
    let key = PrivateKeyDer::from_pem_file(dir.join("tls.key"))
        .map_err(|e| bad(format!("tls.key: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves redemptions on `listener` until `idle_timeout` passes with no connection open
/// (never, when None).
pub async fn serve(
    site_dir: SiteDir,
    listener: TcpListener,
    idle_timeout: Option<Duration>,
    trust: TrustIssued,
) -> Result<(), GrantError> {
    let acceptor = TlsAcceptor::from(tls_config(&site_dir)?);
    let trust = Arc::new(TrustRenewals::new(trust));
    let redeemer = Arc::new(Redeemer::new(site_dir));
    let open = Arc::new(AtomicUsize::new(0));
    tracing::info!("grant server listening on {}", listener.local_addr()?);
    loop {
        let (stream, peer) = match idle_timeout {
            Some(idle) => match tokio::time::timeout(idle, accept(&listener)).await {
                Ok(accepted) => accepted,
                Err(_) if open.load(Ordering::SeqCst) == 0 => {
                    tracing::info!("idle for {idle:?}: exiting (the socket unit starts it again)");
                    return Ok(());
                }
                Err(_) => continue,
            },
            None => accept(&listener).await,
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, redeemer, open) = (acceptor.clone(), redeemer.clone(), open.clone());
        let trust = trust.clone();
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            connection(stream, peer, acceptor, redeemer, trust).await;
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    redeemer: Arc<Redeemer>,
    trust: Arc<TrustRenewals>,
) {
    let tls = match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!("TLS handshake with {peer} failed: {e}");
            return;
        }
        Err(_) => {
            tracing::info!("TLS handshake with {peer} timed out");
            return;
        }
    };
    let peer_ip = peer.ip().to_canonical();
    let service = hyper::service::service_fn(move |request| {
        respond(request, peer_ip, redeemer.clone(), trust.clone())
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service)
        .await;
    if let Err(e) = result {
        tracing::info!("connection from {peer}: {e}");
    }
}

async fn respond(
    request: Request<Incoming>,
    peer: IpAddr,
    redeemer: Arc<Redeemer>,
    trust: Arc<TrustRenewals>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return Ok(http_response(&GrantResponse {
                status: 400,
                body: "Request body not valid\n".into(),
                delay: Duration::ZERO,
                issued_link: None,
            }))
        }
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (name, subject, site_name) = (
        header("name"),
        header("subject"),
        header("skupper-site-name"),
    );
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(String::from);
    let answered = tokio::task::spawn_blocking(move || {
        redeemer.handle(
            &GrantRequest {
                method: &method,
                path: &path,
                query: query.as_deref(),
                name: name.as_deref(),
                subject: subject.as_deref(),
                site_name: site_name.as_deref(),
                body: &body,
                peer,
            },
            SystemTime::now(),
        )
    })
    .await;
    let answer = answered.unwrap_or_else(|e| {
        tracing::error!("redemption handler failed: {e}");
        GrantResponse {
            status: 500,
            body: "Internal error\n".into(),
            delay: Duration::ZERO,
            issued_link: None,
        }
    });
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    // The linking router dials as soon as it has the answer: trusted by then, it links at
    // once. A router that cannot be told now reads the new trust when it next starts.
    if let Some(link) = &answer.issued_link {
        if let Err(e) = trust.renew().await {
            tracing::error!(
                "incoming link '{link}' is issued, but the running router could not be told to \
                 trust it ({e}); it will when it restarts (`systemctl --user restart` its unit)"
            );
        }
    }
    Ok(http_response(&answer))
}

/// Headers as Go's `http.Error` sets them.
fn http_response(answer: &GrantResponse) -> Response<Full<Bytes>> {
    Response::builder()
        .status(answer.status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(Full::new(Bytes::from(answer.body.clone())))
        .expect("a valid status and headers")
}

/// `vansite grant-server`: serve on the socket systemd passed, or on `listen`.
pub async fn run(
    site_dir: SiteDir,
    listen: Option<SocketAddr>,
    idle_timeout: Option<Duration>,
    trust: TrustIssued,
) -> Result<(), GrantError> {
    let listener = match (systemd_listener()?, listen) {
        (Some(listener), _) => TcpListener::from_std(listener)?,
        (None, Some(address)) => TcpListener::bind(address).await?,
        (None, None) => return Err(GrantError::NotActivated),
    };
    serve(site_dir, listener, idle_timeout, trust).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_redemptions_share_one_renewal_that_started_after_them() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let trust: TrustIssued = Arc::new(move || {
            let counted = counted.clone();
            Box::pin(async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(())
            })
        });
        let renewals = TrustRenewals::new(trust);
        let results = futures::future::join_all((0..8).map(|_| renewals.renew())).await;
        assert!(results.iter().all(Result::is_ok));
        // The first renewal covers the first redemption; the seven that came while it ran
        // share the second.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        renewals.renew().await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "a later one gets a renewal of its own"
        );
    }
}
