//! The console's HTTP server (`vansite console-server`, hidden): plain HTTP/1.1 by hyper on the
//! loopback socket systemd passes. `/` is the page, `/console.js` and `/console.css` its code
//! (public: they hold no data), `/api/network` the network as JSON (what the page draws),
//! `/metrics` Prometheus text. Everything but the code needs the token. The process exits after
//! a while without requests; the socket unit keeps listening and starts it again.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use super::token::ConsoleToken;
use super::{metrics, ConsoleError};
use crate::observe::network::Network;
use crate::observe::records::Timestamp;
use crate::observe::status::NetworkStatus;
use crate::platform::activation::accept;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// Bound on reading a request head.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Only the page's own files, nothing inline, no other origin: a site name that got past the
/// page's escaping still could not run.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// How the collector's connection to the site's router is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum RouterConnection {
    Connecting,
    Connected,
    /// The last attempt failed; the collector tries again.
    Failed {
        error: String,
    },
}

/// The site this console runs at, as its resources say (they may change while it runs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalSite {
    pub name: String,
    /// The site id (the Site's uid), as its SITE record carries it.
    pub id: String,
    /// Router port → the listener's own host and port, for every listener behind a forwarder.
    pub forwarded: BTreeMap<u16, (String, u16)>,
}

/// What the server shows, kept up to date by the collector.
pub struct Console {
    local: watch::Receiver<LocalSite>,
    token: ConsoleToken,
    /// `vansite-console-<port>`: browsers share cookies between the ports of one host, so each
    /// site's console (one port each) has its own.
    cookie: String,
    network: watch::Receiver<Network>,
    router: watch::Receiver<RouterConnection>,
}

/// `/api/network`: the network status, with this site's name and the collector's state.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleView {
    /// The site this console runs at.
    pub site: String,
    pub router: RouterConnection,
    #[serde(flatten)]
    pub network: NetworkStatus,
}

/// How a request showed the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presented {
    /// `?token=`: the page answers with the cookie, so its own requests need no token.
    Query,
    Bearer,
    Cookie,
}

impl Console {
    pub fn new(
        local: watch::Receiver<LocalSite>,
        token: ConsoleToken,
        port: u16,
        network: watch::Receiver<Network>,
        router: watch::Receiver<RouterConnection>,
    ) -> Self {
        Self {
            local,
            token,
            cookie: format!("vansite-console-{port}"),
            network,
            router,
        }
    }

    /// The way the request showed a valid token, if it did.
    fn presented(&self, uri: &Uri, headers: &HeaderMap) -> Option<Presented> {
        let query = uri.query().unwrap_or("").split('&');
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok()?.strip_prefix("Bearer "));
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(&self.cookie)?.strip_prefix('='));
        let matches = |candidate: &str| self.token.matches(candidate.trim());
        if query
            .filter_map(|pair| pair.strip_prefix("token="))
            .any(matches)
        {
            Some(Presented::Query)
        } else if bearer.into_iter().any(matches) {
            Some(Presented::Bearer)
        } else if cookies.into_iter().any(matches) {
            Some(Presented::Cookie)
        } else {
            None
        }
    }

    /// The view `/api/network` serves at `now`.
    pub fn view(&self, now: Timestamp) -> ConsoleView {
        let local = self.local.borrow();
        let mut network = NetworkStatus::of(&self.network.borrow(), now);
        network.seen_from(&local.id, &local.forwarded);
        ConsoleView {
            site: local.name.clone(),
            router: self.router.borrow().clone(),
            network,
        }
    }

    /// The answer to one request.
    fn respond(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response<Full<Bytes>> {
        if method != Method::GET {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "Only GET\n");
        }
        match uri.path() {
            "/console.js" => asset("text/javascript; charset=utf-8", SCRIPT),
            "/console.css" => asset("text/css; charset=utf-8", STYLE),
            path @ ("/" | "/api/network" | "/metrics") => {
                let Some(presented) = self.presented(uri, headers) else {
                    let mut response = plain(
                        StatusCode::UNAUTHORIZED,
                        "This console needs its token: open the URL that `vansite console \
                         --print-url` prints, or send it as `Authorization: Bearer <token>`.\n",
                    );
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"vansite console\""),
                    );
                    return response;
                };
                let mut response = match path {
                    "/" => page(),
                    "/api/network" => json(&self.view(Timestamp::now())),
                    _ => metrics_text(&self.network.borrow()),
                };
                if presented == Presented::Query {
                    let cookie = format!(
                        "{}={}; HttpOnly; SameSite=Strict; Path=/",
                        self.cookie,
                        self.token.reveal()
                    );
                    response.headers_mut().insert(
                        header::SET_COOKIE,
                        HeaderValue::from_str(&cookie).expect("an alphanumeric token"),
                    );
                }
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            _ => plain(StatusCode::NOT_FOUND, "Not found\n"),
        }
    }
}

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .body(Full::new(body))
        .expect("a valid status and headers")
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}

fn asset(content_type: &'static str, text: &'static str) -> Response<Full<Bytes>> {
    response(
        StatusCode::OK,
        content_type,
        Bytes::from_static(text.as_bytes()),
    )
}

fn page() -> Response<Full<Bytes>> {
    let mut page = asset("text/html; charset=utf-8", PAGE);
    page.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    page.headers_mut()
        .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    page
}

fn json(view: &ConsoleView) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(view).expect("the view serializes");
    response(StatusCode::OK, "application/json", Bytes::from(body))
}

fn metrics_text(network: &Network) -> Response<Full<Bytes>> {
    response(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        Bytes::from(metrics::render(network)),
    )
}

/// Serves `listener` until `idle_timeout` passes without a request (never, when None).
pub async fn serve(
    listener: TcpListener,
    console: Arc<Console>,
    idle_timeout: Option<Duration>,
) -> Result<(), ConsoleError> {
    tracing::info!("console listening on {}", listener.local_addr()?);
    let last_request = Arc::new(Mutex::new(Instant::now()));
    loop {
        let idle_until =
            idle_timeout.map(|idle| *last_request.lock().expect("not poisoned") + idle);
        let idle = async {
            match idle_until {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = idle => {
                let last = *last_request.lock().expect("not poisoned");
                if idle_timeout.is_some_and(|idle| last.elapsed() >= idle) {
                    tracing::info!("no request for {idle_timeout:?}: exiting (the socket unit starts it again)");
                    return Ok(());
                }
                continue;
            }
        };
        let (console, last_request) = (console.clone(), last_request.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                *last_request.lock().expect("not poisoned") = Instant::now();
                let answer = console.respond(request.method(), request.uri(), request.headers());
                async move { Ok::<_, Infallible>(answer) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::network::tests::run1;

    /// A console of site west on port 8010 showing capture run 1; `test`: a name of its own for
    /// the token's directory (tests run side by side).
    fn console(test: &str) -> (Console, ConsoleToken) {
        let dir = std::env::temp_dir().join(format!("vansite-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = ConsoleToken::load_or_create(&dir.join("console.token")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let (_, network) = watch::channel(run1());
        let (_, router) = watch::channel(RouterConnection::Connected);
        let (_, local) = watch::channel(LocalSite {
            name: "west".into(),
            id: "29a23db9-dff4-4072-8a39-7815e3e666b3".into(),
            // The capture's `echo` listener is at router port 25910.
            forwarded: [(25910, ("0.0.0.0".to_string(), 8080))].into(),
        });
        let console = Console::new(local, token.clone(), 8010, network, router);
        (console, token)
    }

    fn get(
        console: &Console,
        uri: &str,
        headers: &[(header::HeaderName, String)],
    ) -> Response<Full<Bytes>> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        console.respond(&Method::GET, &uri.parse().unwrap(), &map)
    }

    #[test]
    fn everything_but_the_code_needs_the_token() {
        let (console, token) = console("console-denies");
        for path in ["/", "/api/network", "/metrics", "/?token=wrong"] {
            let answer = get(&console, path, &[]);
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{path}");
            assert!(answer.headers().get(header::SET_COOKIE).is_none());
        }
        let wrong_bearer = (header::AUTHORIZATION, "Bearer nope".to_string());
        assert_eq!(get(&console, "/metrics", &[wrong_bearer]).status(), 401);
        // Another site's console (another port) has another cookie.
        let other_cookie = (
            header::COOKIE,
            format!("vansite-console-8011={}", token.reveal()),
        );
        assert_eq!(get(&console, "/", &[other_cookie]).status(), 401);
        assert_eq!(get(&console, "/console.js", &[]).status(), StatusCode::OK);
        assert_eq!(
            get(&console, "/nothing", &[]).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn the_token_in_the_url_gives_a_cookie_that_then_suffices() {
        let (console, token) = console("console-cookie");
        let page = get(&console, &format!("/?x=1&token={}", token.reveal()), &[]);
        assert_eq!(page.status(), StatusCode::OK);
        let cookie = page.headers()[header::SET_COOKIE].to_str().unwrap();
        assert_eq!(
            cookie,
            format!(
                "vansite-console-8010={}; HttpOnly; SameSite=Strict; Path=/",
                token.reveal()
            )
        );
        assert!(page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));

        let jar = (
            header::COOKIE,
            format!("theme=dark; {}", cookie.split(';').next().unwrap()),
        );
        let api = get(&console, "/api/network", &[jar]);
        assert_eq!(api.status(), StatusCode::OK);
        assert!(api.headers().get(header::SET_COOKIE).is_none());

        let bearer = (header::AUTHORIZATION, format!("Bearer {}", token.reveal()));
        let metrics = get(&console, "/metrics", &[bearer]);
        assert_eq!(metrics.status(), StatusCode::OK);
        assert_eq!(
            metrics.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }

    #[test]
    fn the_view_is_the_network_status_with_the_site_and_router_state() {
        let (console, _) = console("console-view");
        let view = serde_json::to_value(console.view(Timestamp::now())).unwrap();
        assert_eq!(view["site"], "west");
        assert_eq!(view["router"]["state"], "connected");
        assert_eq!(view["sites"][0]["name"], "east");
        assert_eq!(view["sites"][1]["here"], true);
        let services = view["services"].as_array().unwrap();
        let echo = services.iter().find(|s| s["routingKey"] == "echo").unwrap();
        // This site's listener at its own port, not the router's.
        assert_eq!(echo["listeners"][0]["port"], "8080", "{echo:#}");
        assert_eq!(view["links"][0]["state"], "up");
        assert!(view["services"].as_array().unwrap().len() >= 4);
    }

    /// Over a real socket: a request is served, and the server exits once unused for the idle
    /// time (the socket unit would start it again).
    #[tokio::test]
    async fn serves_over_a_socket_and_exits_when_unused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (console, token) = console("console-idle");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let idle = Duration::from_millis(500);
        let server = tokio::spawn(serve(listener, Arc::new(console), Some(idle)));

        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Connection: close\r\n\r\n",
            token.reveal()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let answered = Instant::now();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.contains("name=\"west\""), "{answer}");

        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server exits when unused")
            .unwrap()
            .unwrap();
        assert!(answered.elapsed() >= idle - Duration::from_millis(50));
    }
}
