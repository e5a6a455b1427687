//! Redeeming tokens over HTTPS, as Skupper's clients do: a v2 AccessToken at its grant server
//! (skupper-formats §2.8) and a v1 token claim at its claims server (§3.3).
//!
//! Client rules (Skupper's `claim_redeemer.go`): TLS 1.3 only; the token's own CA is the only
//! trusted root (never the system's); 10 s for the whole exchange; redirects are not followed.
//! HTTP/1.1 via hyper's connection API over tokio-rustls, one request per connection.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{parse, LinkBundle, Token, TokenError, V1Claim, V1ConnectionToken};
use crate::model::AccessToken;
use crate::tls::{client_config, find_rustls_error, is_untrusted_server, TlsConfigError, Versions};

/// Skupper's redeem timeout, for connecting, TLS, request and answer together.
pub const REDEEM_TIMEOUT: Duration = Duration::from_secs(10);
/// A link is a few kilobytes; a larger answer is not one.
const MAX_ANSWER: usize = 1 << 20;
/// Sent as `site-version` when a v1 claim does not say which version issued it.
const V1_SITE_VERSION: &str = "1.9.6";
/// How much of a server's error text is shown.
const MAX_SERVER_TEXT: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("the token's url '{url}' cannot be used: {problem}")]
    BadUrl { url: String, problem: String },
    #[error("the token's CA certificate cannot be used: {0}")]
    BadCa(#[from] TlsConfigError),
    #[error(
        "cannot reach {server} at {addr}: {source}; is it running, and reachable from this host?"
    )]
    Unreachable {
        server: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{server} at {addr} did not answer within {} s", REDEEM_TIMEOUT.as_secs())]
    Timeout { server: &'static str, addr: String },
    #[error(
        "the server at {addr} is not the one that issued the token: its certificate does not \
         match the token's CA ({detail}); the token was altered, or its address now leads elsewhere"
    )]
    UntrustedServer { addr: String, detail: String },
    #[error("TLS with {server} at {addr} failed: {detail}")]
    Tls {
        server: &'static str,
        addr: String,
        detail: String,
    },
    #[error("HTTP with {server} at {addr} failed: {detail}")]
    Http {
        server: &'static str,
        addr: String,
        detail: String,
    },
    /// The server answered, and not with a link; the message says what it means.
    #[error("{message}")]
    Refused { status: u16, message: String },
    #[error("the answer of {server} is not a usable link: {source}")]
    BadAnswer {
        server: &'static str,
        source: Box<TokenError>,
    },
}

const GRANT_SERVER: &str = "the grant server";
const CLAIMS_SERVER: &str = "the claims server";

/// Redeems a v2 AccessToken: POST its code to its url with headers `name` (the name the
/// grant server gives the Secret and Link) and `subject` (the CN of the client certificate it
/// issues; vansite sends the site's name, as Skupper's non-kube sites do). Returns the Secret
/// and Link(s) of the answer.
pub async fn redeem_access_token(
    token: &AccessToken,
    name: &str,
    subject: &str,
) -> Result<LinkBundle, RedeemError> {
    let (status, body) = post(
        GRANT_SERVER,
        &token.spec.url,
        token.spec.ca.as_bytes(),
        &[("name", name), ("subject", subject)],
        token.spec.code.as_bytes().to_vec(),
    )
    .await?;
    access_token_answer(status, &body)
}

/// What a grant server's answer means: 200 is a YAML stream of a Secret and Link(s); the
/// error statuses of §2.8 become messages that say what to do, showing no more than the server
/// said.
pub fn access_token_answer(status: u16, body: &[u8]) -> Result<LinkBundle, RedeemError> {
    let text = server_text(body);
    let message = match status {
        200 => {
            return parse_grant_answer(body).map_err(|source| RedeemError::BadAnswer {
                server: GRANT_SERVER,
                source: Box::new(source),
            })
        }
        404 if text.contains("No such access granted") => format!(
            "the token has been redeemed as often as it allows (grant server: 404 {text}); \
             ask its issuer for a new one"
        ),
        404 => format!(
            "the grant server does not know this token, or it has expired (404 {text}); \
             ask its issuer for a new one"
        ),
        403 => format!(
            "the grant server refused the token's code (403 {text}): the token is not the one \
             it issued, or was altered"
        ),
        405 => format!(
            "the server at the token's url does not redeem tokens there (405 {text}): check the url"
        ),
        500 => format!("the grant server could not issue a link (500 {text})"),
        503 => format!("the grant server could not record the redemption (503 {text}); try again"),
        _ => unexpected(status, &text),
    };
    Err(RedeemError::Refused { status, message })
}

/// Parses a grant server's successful answer: one Secret, then the Link(s) that use it.
pub fn parse_grant_answer(body: &[u8]) -> Result<LinkBundle, TokenError> {
    match parse_answer(body, "the grant server's answer")? {
        Token::Links(bundle) => Ok(bundle),
        other => Err(TokenError::NotAToken {
            source_name: "the grant server's answer".into(),
            found: other.describe().into(),
        }),
    }
}

/// Redeems a v1 token claim: POST its password to `<url>?site-version=<version>` with header
/// `skupper-site-name` (the CN of the certificate the claims server issues). Sends the claim's
/// own site version (the issuer's, so it is compatible), or 1.9.6 when it has none.
pub async fn redeem_v1_claim(
    claim: &V1Claim,
    site: &str,
) -> Result<V1ConnectionToken, RedeemError> {
    let version = if claim.site_version.is_empty() {
        V1_SITE_VERSION
    } else {
        &claim.site_version
    };
    let separator = if claim.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}site-version={version}", claim.url);
    let (status, body) = post(
        CLAIMS_SERVER,
        &url,
        claim.ca_pem.as_bytes(),
        &[("skupper-site-name", site)],
        claim.password.as_bytes().to_vec(),
    )
    .await?;
    v1_claim_answer(status, &body)
}

/// What a v1 claims server's answer means (§3.3): 200 is a connection-token Secret.
pub fn v1_claim_answer(status: u16, body: &[u8]) -> Result<V1ConnectionToken, RedeemError> {
    let text = server_text(body);
    let message = match status {
        200 => {
            let bad = |source| RedeemError::BadAnswer {
                server: CLAIMS_SERVER,
                source: Box::new(source),
            };
            return match parse_answer(body, "the claims server's answer").map_err(bad)? {
                Token::V1Connection(token) => Ok(token),
                other => Err(bad(TokenError::NotAToken {
                    source_name: "the claims server's answer".into(),
                    found: other.describe().into(),
                })),
            };
        }
        400 => format!("the claims server refused this site's version (400 {text})"),
        404 => format!(
            "the claims server does not know this claim, or it has expired or been used up \
             (404 {text}); ask its issuer for a new token"
        ),
        403 => format!(
            "the claims server refused the claim's password (403 {text}): the token is not the \
             one it issued, or was altered"
        ),
        _ => unexpected(status, &text),
    };
    Err(RedeemError::Refused { status, message })
}

fn parse_answer(body: &[u8], source_name: &str) -> Result<Token, TokenError> {
    let text = std::str::from_utf8(body).map_err(|_| TokenError::Invalid {
        source_name: source_name.into(),
        problem: "not UTF-8 text".into(),
    })?;
    parse(text, source_name)
}

fn unexpected(status: u16, text: &str) -> String {
    let redirect = if (300..400).contains(&status) {
        " (redirects are not followed)"
    } else {
        ""
    };
    format!("unexpected answer {status} {text}{redirect}")
}

/// The server's own words, made safe to print: the first line, printable characters only,
/// bounded in length.
fn server_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or_default().trim();
    let clean: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SERVER_TEXT)
        .collect();
    if clean.is_empty() {
        "(no text)".into()
    } else {
        clean
    }
}

/// One HTTPS POST with Skupper's client rules; returns the status and the body.
async fn post(
    server: &'static str,
    url: &str,
    ca_pem: &[u8],
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), RedeemError> {
    let bad_url = |problem: &str| RedeemError::BadUrl {
        url: url.to_string(),
        problem: problem.to_string(),
    };
    let uri: http::Uri = url.parse().map_err(|_| bad_url("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad_url("only https:// is allowed"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| bad_url("no host"))?
        .to_string();
    let host = uri
        .host()
        .ok_or_else(|| bad_url("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let server_name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| bad_url("the host is not a valid name"))?;
    let config = client_config(ca_pem, None, Versions::Tls13Only)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut request = hyper::Request::post(path).header(hyper::header::HOST, authority.as_str());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| RedeemError::Http {
            server,
            addr: authority.clone(),
            detail: format!("cannot build the request: {e}"),
        })?;
    let addr = authority.clone();
    let exchange = async move {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|source| RedeemError::Unreachable {
                server,
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| tls_failure(server, &addr, e))?;
        let http = |e: hyper::Error| match find_rustls_error(&e) {
            Some(tls) => RedeemError::Tls {
                server,
                addr: addr.clone(),
                detail: tls.to_string(),
            },
            None => RedeemError::Http {
                server,
                addr: addr.clone(),
                detail: e.to_string(),
            },
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(http)?;
        let driver = tokio::spawn(connection);
        let answer = async {
            let response = sender.send_request(request).await.map_err(http)?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| RedeemError::Http {
                    server,
                    addr: addr.clone(),
                    detail: format!("reading the answer: {e}"),
                })?
                .to_bytes();
            Ok((status, body.to_vec()))
        }
        .await;
        driver.abort();
        answer
    };
    tokio::time::timeout(REDEEM_TIMEOUT, exchange)
        .await
        .map_err(|_| RedeemError::Timeout {
            server,
            addr: authority,
        })?
}

fn tls_failure(server: &'static str, addr: &str, e: std::io::Error) -> RedeemError {
    match find_rustls_error(&e) {
        Some(tls) if is_untrusted_server(tls) => RedeemError::UntrustedServer {
            addr: addr.to_string(),
            detail: tls.to_string(),
        },
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)) => {
            RedeemError::Tls {
                server,
                addr: addr.to_string(),
                detail:
                    "the server does not speak TLS 1.3, which Skupper's grant protocol requires"
                        .into(),
            }
        }
        Some(tls) => RedeemError::Tls {
            server,
            addr: addr.to_string(),
            detail: tls.to_string(),
        },
        None => RedeemError::Tls {
            server,
            addr: addr.to_string(),
            detail: format!("the connection failed during the handshake: {e}"),
        },
    }
}

#[cfg(test)]
mod tests;
