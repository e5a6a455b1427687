//! The grant server process (`vansite grant-server`, hidden): HTTPS over the listening socket
//! systemd passes (socket activation, `LISTEN_FDS`/`LISTEN_PID`, fd 3), TLS 1.3 only with the
//! `skupper-grant-server` certificate, HTTP/1.1 by hyper; each request answered by
//! [`Redeemer`]. It exits after a while without connections; the socket unit keeps listening
//! and starts it again on the next one, so nothing is lost.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

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
use crate::platform::descriptors;
use crate::render::certs::GRANT_SERVER;
use crate::store::SiteDir;

use super::admission::{Admission, Admitted, Limits, Ticket};
use super::protocol::{GrantRequest, GrantResponse, Redeemer, INTERNAL};
use super::GrantError;

/// A code is 24 bytes; anything much larger is not a redemption.
const MAX_BODY: usize = 4096;
const TOO_LARGE: &str = "Request body too large";
const NOT_VALID: &str = "Request body not valid";
const TIMED_OUT: &str = "Request not received in time";
/// Bound on a connection's life after its request is read: the answer to a wrong code waits
/// up to 10 s, and a redemption's certificate and the router's renewal take well under this.
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

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
/// (never, when None), keeping within `limits` (`admission`).
pub async fn serve(
    site_dir: SiteDir,
    listener: TcpListener,
    idle_timeout: Option<Duration>,
    trust: TrustIssued,
    limits: Limits,
) -> Result<(), GrantError> {
    let redemptions = Arc::new(Redemptions::new(site_dir, trust)?);
    let admission = Admission::new(limits);
    tracing::info!(
        "grant server listening on {} (at most {} connections, {} per address; requests read \
         within {:?})",
        listener.local_addr()?,
        limits.total,
        limits.per_peer,
        limits.request_deadline
    );
    loop {
        let (stream, peer) = match idle_timeout {
            Some(idle) => match tokio::time::timeout(idle, accept(&listener)).await {
                Ok(accepted) => accepted,
                Err(_) if admission.open_count() == 0 => {
                    tracing::info!("idle for {idle:?}: exiting (the socket unit starts it again)");
                    return Ok(());
                }
                Err(_) => continue,
            },
            None => accept(&listener).await,
        };
        let deadline = Instant::now() + limits.request_deadline;
        let ticket = match admission.admit(peer.ip().to_canonical()) {
            Admitted::Open(ticket) => Arc::new(ticket),
            Admitted::Refused => {
                tracing::warn!(
                    "refused a connection from {peer}: {} connections are being answered",
                    limits.total
                );
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (redemptions, held) = (redemptions.clone(), ticket.clone());
        let task = tokio::spawn(async move {
            redemptions.connection(stream, peer, deadline, held).await;
        });
        ticket.serve_with(task.abort_handle());
    }
}

/// What every connection is served with: the site's TLS identity, its grants and the router's
/// trust.
pub struct Redemptions {
    acceptor: TlsAcceptor,
    redeemer: Arc<Redeemer>,
    trust: Arc<TrustRenewals>,
}

impl Redemptions {
    pub fn new(site_dir: SiteDir, trust: TrustIssued) -> Result<Redemptions, GrantError> {
        Ok(Redemptions {
            acceptor: TlsAcceptor::from(tls_config(&site_dir)?),
            redeemer: Arc::new(Redeemer::new(site_dir)),
            trust: Arc::new(TrustRenewals::new(trust)),
        })
    }

    /// One client: the TLS handshake by `deadline`, then its request.
    async fn connection(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        deadline: Instant,
        ticket: Arc<Ticket>,
    ) {
        match tokio::time::timeout_at(deadline, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.exchange(tls, peer, deadline, Some(ticket)).await,
            Ok(Err(e)) => tracing::info!("TLS handshake with {peer} failed: {e}"),
            Err(_) => tracing::info!("TLS handshake with {peer} timed out"),
        }
    }

    /// One HTTP/1.1 request over `io` (TLS, in the server), head and body read by `deadline`,
    /// then the answer, and the connection closed. `ticket`: the connection's place, marked as
    /// being answered once the request is read.
    pub async fn exchange<I>(
        &self,
        io: I,
        peer: SocketAddr,
        deadline: Instant,
        ticket: Option<Arc<Ticket>>,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer_ip = peer.ip().to_canonical();
        let (redeemer, trust) = (self.redeemer.clone(), self.trust.clone());
        let service = hyper::service::service_fn(move |request| {
            let read = Reading {
                deadline,
                ticket: ticket.clone(),
            };
            respond(request, peer_ip, read, redeemer.clone(), trust.clone())
        });
        let head_time = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let served = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(head_time)
            .keep_alive(false)
            .serve_connection(TokioIo::new(io), service);
        match tokio::time::timeout_at(deadline + ANSWER_DEADLINE, served).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::info!("connection from {peer}: {e}"),
            Err(_) => tracing::info!("connection from {peer}: not answered in time, closed"),
        }
    }
}

/// How a request's body is read: by the deadline, then the connection is being answered.
struct Reading {
    deadline: Instant,
    ticket: Option<Arc<Ticket>>,
}

async fn respond(
    request: Request<Incoming>,
    peer: IpAddr,
    read: Reading,
    redeemer: Arc<Redeemer>,
    trust: Arc<TrustRenewals>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return Ok(http_response(&GrantResponse::error(413, TOO_LARGE)));
    }
    let body = match tokio::time::timeout_at(read.deadline, Limited::new(body, MAX_BODY).collect())
        .await
    {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(_)) => return Ok(http_response(&GrantResponse::error(400, NOT_VALID))),
        Err(_) => return Ok(http_response(&GrantResponse::error(408, TIMED_OUT))),
    };
    if let Some(ticket) = &read.ticket {
        ticket.answering();
    }
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
        GrantResponse::error(500, INTERNAL)
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
    let limits = Limits::for_descriptors(descriptors::raise_to_hard_limit());
    serve(site_dir, listener, idle_timeout, trust, limits).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::protocol::tests::fixture;
    use crate::grants::TokenFormat;
    use crate::render::certs::GRANT_SERVER_CA;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::TlsConnector;

    /// A client that trusts the site's grant server CA, which names the server `west.example`.
    fn connector(site_dir: &SiteDir) -> TlsConnector {
        let ca = site_dir.issuers().join(GRANT_SERVER_CA).join("tls.crt");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    /// A TCP connection to `port` from loopback address `source` (all of 127/8 is this host).
    async fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap()
    }

    async fn tls_from(source: [u8; 4], port: u16, tls: &TlsConnector) -> TlsStream<TcpStream> {
        let name = rustls_pki_types::ServerName::try_from("west.example").unwrap();
        tls.connect(name, connect_from(source, port).await)
            .await
            .unwrap()
    }

    fn head(path: &str, content_length: usize) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: west.example\r\nname: east\r\nsubject: east\r\n\
             Content-Length: {content_length}\r\n\r\n"
        )
    }

    /// Everything the server sends until it closes; a reset counts as closed.
    async fn until_closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received).await;
        String::from_utf8_lossy(&received).into_owned()
    }

    /// More slow clients (TLS done, request head sent, body never) and idle ones (TCP only)
    /// than both caps allow, from five addresses: a correct redemption is still answered, an
    /// oversized body is refused by its length alone, and every slow or idle connection is
    /// closed by the server (to make room, or at the request deadline).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_and_idle_clients_beyond_the_caps_do_not_keep_a_redemption_out() {
        let site = fixture("hostile-clients");
        let grant = site.grant(TokenFormat::V2, 1, Duration::from_secs(600));
        let path = format!("/{}", grant.metadata.uid);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let limits = Limits {
            total: 24,
            per_peer: 8,
            request_deadline: Duration::from_secs(3),
        };
        let trust: TrustIssued = Arc::new(|| Box::pin(async { Ok(()) }));
        tokio::spawn(serve(site.site_dir.clone(), listener, None, trust, limits));
        let tls = connector(&site.site_dir);

        let mut slow = Vec::new();
        for i in 0..40u8 {
            let mut client = tls_from([127, 0, 0, 2 + i % 4], port, &tls).await;
            if client.write_all(head(&path, 24).as_bytes()).await.is_ok() {
                let _ = client.flush().await;
            }
            slow.push(client);
        }
        let mut idle = Vec::new();
        for _ in 0..20 {
            idle.push(connect_from([127, 0, 0, 6], port).await);
        }

        let mut redeemer = tls_from([127, 0, 0, 1], port, &tls).await;
        let request = head(&path, grant.spec.code.len()) + &grant.spec.code;
        redeemer.write_all(request.as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(60), until_closed(&mut redeemer))
            .await
            .expect("the redemption is answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("kind: Link"), "{answer}");

        let mut oversized = tls_from([127, 0, 0, 1], port, &tls).await;
        oversized
            .write_all(head(&path, 50_000_000).as_bytes())
            .await
            .unwrap();
        let refused = until_closed(&mut oversized).await;
        assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");

        for client in &mut slow {
            tokio::time::timeout(Duration::from_secs(60), until_closed(client))
                .await
                .expect("a slow client is closed");
        }
        for client in &mut idle {
            tokio::time::timeout(Duration::from_secs(60), until_closed(client))
                .await
                .expect("an idle client is closed");
        }
    }

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
