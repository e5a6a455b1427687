use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::model::{AccessTokenSpec, ObjectMeta, Resource};
use crate::render::certs::{issue, Ca, CertFiles};
use crate::tokens::V1Claim;

/// A grant server's 200 answer, shaped as §2.8 says: `---` Secret, then `---` Link.
fn grant_answer(name: &str) -> (String, CertFiles) {
    let ca = Ca::new("skupper-site-ca").unwrap();
    let credentials = issue(&ca, "west", &["198.18.0.7".into()]).unwrap();
    let secret = Resource::Secret(crate::tokens::link_secret(name, &credentials))
        .to_yaml()
        .unwrap();
    let link = format!(
        "apiVersion: skupper.io/v2alpha1\nkind: Link\nmetadata:\n  name: {name}\nspec:\n  \
         tlsCredentials: {name}\n  endpoints:\n  - name: inter-router\n    host: 198.18.0.7\n    \
         port: \"55671\"\n  - name: edge\n    host: 198.18.0.7\n    port: \"45671\"\n"
    );
    (format!("---\n{secret}---\n{link}"), credentials)
}

#[test]
fn a_grant_answer_is_a_secret_then_links() {
    let (answer, credentials) = grant_answer("to-west");
    let bundle = access_token_answer(200, answer.as_bytes()).unwrap();
    assert_eq!(bundle.secret.metadata.name, "to-west");
    assert_eq!(bundle.links[0].spec.tls_credentials, "to-west");
    assert_eq!(bundle.credentials, credentials);
    let error = access_token_answer(200, b"<html>hello</html>").unwrap_err();
    assert!(matches!(error, RedeemError::BadAnswer { .. }), "{error}");
}

#[test]
fn grant_server_refusals_say_what_to_do_and_no_more_than_the_server() {
    let message = |status, body: &str| {
        access_token_answer(status, body.as_bytes())
            .unwrap_err()
            .to_string()
    };
    assert!(message(404, "No such claim")
        .contains("does not know this token, or it has expired (404 No such claim)"));
    assert!(message(404, "No such access granted").contains("redeemed as often as it allows"));
    assert!(message(403, "Redemption of access token refused")
        .contains("refused the token's code (403"));
    assert!(message(405, "").contains("(405 (no text))"));
    assert!(message(
        500,
        "Edge sites cannot accept incoming links from remote sites"
    )
    .contains("could not issue a link (500 Edge sites cannot accept"));
    assert!(message(503, "x").contains("try again"));
    assert!(message(302, "").contains("redirects are not followed"));
    let noisy = format!("bad\u{1b}[31m{}\nsecond line", "x".repeat(500));
    let text = message(500, &noisy);
    assert!(
        !text.contains('\u{1b}') && !text.contains("second line") && text.len() < 400,
        "{text}"
    );
}

/// A claims server's 200 answer: a v1 connection-token Secret with `annotations`.
fn connection_token_answer(annotations: &[(&str, &str)]) -> String {
    let ca = Ca::new("skupper-site-ca").unwrap();
    let mut secret = crate::tokens::link_secret("claim", &issue(&ca, "west", &[]).unwrap());
    secret.metadata.labels.insert(
        crate::tokens::V1_TYPE_LABEL.into(),
        crate::tokens::V1_CONNECTION_TOKEN.into(),
    );
    for (key, value) in annotations {
        secret
            .metadata
            .annotations
            .insert(key.to_string(), value.to_string());
    }
    Resource::Secret(secret).to_yaml().unwrap()
}

#[test]
fn claims_server_answers() {
    let answer = connection_token_answer(&[
        ("inter-router-host", "198.18.0.7"),
        ("inter-router-port", "55671"),
        ("skupper.io/generated-by", "site-a"),
    ]);
    let token = v1_claim_answer(200, answer.as_bytes()).unwrap();
    assert_eq!(token.generated_by, "site-a");
    assert!(v1_claim_answer(403, b"Claim refused")
        .unwrap_err()
        .to_string()
        .contains("password"));
    assert!(v1_claim_answer(404, b"No such claim")
        .unwrap_err()
        .to_string()
        .contains("used up"));
    let (v2, _) = grant_answer("x");
    assert!(v1_claim_answer(200, v2.as_bytes()).is_err());
}

/// One HTTPS exchange served by a real TLS server: returns the request it received.
struct Server {
    port: u16,
    request: tokio::task::JoinHandle<String>,
}

async fn serve_once(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
    status: u16,
    body: String,
) -> Server {
    let files = issue(ca, "grant-server", &["127.0.0.1".into()]).unwrap();
    let chain = CertificateDer::pem_slice_iter(files.tls_crt.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(files.tls_key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_protocol_versions(versions)
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let request = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return String::new();
        };
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tls.read(&mut buf).await.unwrap_or(0);
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received).to_string();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(String::from)
                    })
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if rest.len() >= length || n == 0 {
                    break;
                }
            } else if n == 0 {
                break;
            }
        }
        let answer = format!(
            "HTTP/1.1 {status} Status\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tls.write_all(answer.as_bytes()).await;
        let _ = tls.shutdown().await;
        String::from_utf8_lossy(&received).into_owned()
    });
    Server { port, request }
}

fn token(port: u16, ca: &Ca) -> crate::model::AccessToken {
    crate::model::AccessToken {
        metadata: ObjectMeta::named("west-grant"),
        spec: AccessTokenSpec {
            url: format!("https://127.0.0.1:{port}/86b80f6b-2b02-47ac-bab4-d285bb4f7b9d"),
            code: "L1qCl2mZ7D81gbXp3ax4YT0K".into(),
            ca: ca.cert_pem().to_string(),
            ..AccessTokenSpec::default()
        },
    }
}

#[tokio::test]
async fn redeems_over_tls13_with_skuppers_request() {
    let ca = Ca::new("skupper-grant-server-ca").unwrap();
    let (answer, _) = grant_answer("to-west");
    let server = serve_once(&ca, &[&rustls::version::TLS13], 200, answer).await;
    let bundle = redeem_access_token(&token(server.port, &ca), "to-west", "east")
        .await
        .unwrap();
    assert_eq!(bundle.links[0].metadata.name, "to-west");
    let request = server.request.await.unwrap();
    let lower = request.to_ascii_lowercase();
    assert!(
        request.starts_with("POST /86b80f6b-2b02-47ac-bab4-d285bb4f7b9d HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        lower.contains("\r\nname: to-west\r\n") && lower.contains("\r\nsubject: east\r\n"),
        "{request}"
    );
    assert!(
        request.ends_with("\r\n\r\nL1qCl2mZ7D81gbXp3ax4YT0K"),
        "the body is the code: {request}"
    );
    assert!(!lower.contains("content-type"), "{request}");
}

#[tokio::test]
async fn redeems_a_v1_claim_with_its_version_and_site_name() {
    let ca = Ca::new("skupper-site-ca").unwrap();
    let answer = connection_token_answer(&[("edge-host", "198.18.0.7"), ("edge-port", "45671")]);
    let server = serve_once(&ca, &[&rustls::version::TLS13], 200, answer).await;
    let claim = V1Claim {
        name: "claim".into(),
        url: format!("https://127.0.0.1:{}/claim", server.port),
        password: "Pa55word".into(),
        ca_pem: ca.cert_pem().into(),
        generated_by: "site-a".into(),
        site_version: "1.8.3".into(),
        expiration: None,
    };
    let token = redeem_v1_claim(&claim, "3c1e0000-0000-4000-8000-000000000002")
        .await
        .unwrap();
    assert_eq!(token.edge.unwrap().port, "45671");
    let request = server.request.await.unwrap();
    assert!(
        request.starts_with("POST /claim?site-version=1.8.3 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("\r\nskupper-site-name: 3c1e0000-0000-4000-8000-000000000002\r\n"),
        "{request}"
    );
    assert!(request.ends_with("\r\n\r\nPa55word"), "{request}");
}

#[tokio::test]
async fn a_server_of_another_ca_is_not_trusted() {
    let server_ca = Ca::new("skupper-grant-server-ca").unwrap();
    let server = serve_once(&server_ca, &[&rustls::version::TLS13], 200, String::new()).await;
    let other = Ca::new("skupper-grant-server-ca").unwrap();
    let error = redeem_access_token(&token(server.port, &other), "x", "east")
        .await
        .unwrap_err();
    assert!(
        matches!(error, RedeemError::UntrustedServer { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("not the one that issued the token"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("L1qCl2mZ"),
        "the code never shows: {error}"
    );
}

#[tokio::test]
async fn tls12_only_servers_and_closed_ports_are_explained() {
    let ca = Ca::new("skupper-grant-server-ca").unwrap();
    let server = serve_once(&ca, &[&rustls::version::TLS12], 200, String::new()).await;
    let error = redeem_access_token(&token(server.port, &ca), "x", "east")
        .await
        .unwrap_err();
    assert!(matches!(error, RedeemError::Tls { .. }), "{error:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let error = redeem_access_token(&token(port, &ca), "x", "east")
        .await
        .unwrap_err();
    assert!(
        matches!(error, RedeemError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&format!("127.0.0.1:{port}")),
        "{error}"
    );

    let mut plain = token(port, &ca);
    plain.spec.url = format!("http://127.0.0.1:{port}/x");
    assert!(matches!(
        redeem_access_token(&plain, "x", "east").await.unwrap_err(),
        RedeemError::BadUrl { .. }
    ));
}
