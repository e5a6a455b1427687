//! Tokens and links in Skupper's formats, as a site receives them: what a file holds, parsed
//! with errors that say what is wrong and what was expected.
//!
//! A file may hold (skupper-formats §2.3, §2.5, §3.1, §3.2):
//! - a v2 `AccessToken`, redeemed at its grant server for a Link and its Secret ([`redeem`]);
//! - a v2 Link (or several, for an HA site) with their `Secret`, as `skupper link generate`
//!   prints them and a grant server answers;
//! - a Skupper v1 `connection-token` Secret (endpoints in annotations), turned into the v2 Link
//!   and Secret a v2 site uses;
//! - a Skupper v1 `token-claim` Secret, redeemed by the v1 claims protocol for a
//!   connection-token.
//!
//! Nothing here touches the site: the caller decides what to store.

pub mod redeem;

use std::fmt;

use crate::model::{
    check_code, parse_documents, AccessToken, Endpoint, Link, LinkSpec, ObjectMeta, Resource,
    ResourceError, Secret,
};
use crate::render::certs::{check_credentials, CertFiles};

/// Label that tells a Skupper v1 token's type.
pub const V1_TYPE_LABEL: &str = "skupper.io/type";
/// v1 certificate token: a link's credentials and endpoints.
pub const V1_CONNECTION_TOKEN: &str = "connection-token";
/// v1 claim: a URL and password to redeem for a connection-token.
pub const V1_TOKEN_CLAIM: &str = "token-claim";
/// The issuing site's id on v1 tokens (and on the Links vansite makes from them).
pub const GENERATED_BY: &str = "skupper.io/generated-by";
/// The issuing site's Skupper version on v1 tokens.
pub const SITE_VERSION: &str = "skupper.io/site-version";
/// v1 claim annotation: where to redeem it.
pub const V1_CLAIM_URL: &str = "skupper.io/url";
/// v1 claim annotation: when it expires (RFC 3339).
pub const V1_CLAIM_EXPIRATION: &str = "skupper.io/claim-expiration";
/// v1 token annotation: the link's cost.
pub const V1_COST: &str = "skupper.io/cost";
/// The router roles a link endpoint can have.
pub const INTER_ROUTER: &str = "inter-router";
pub const EDGE: &str = "edge";

/// What a token or link file was found to be wrong with.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{source_name} is empty: {EXPECTED}")]
    Empty { source_name: String },
    /// Not YAML, or a Skupper object with a wrong field (truncated or edited files land here).
    #[error("{source_name} is damaged or is not a token: {source}")]
    Unreadable {
        source_name: String,
        source: Box<ResourceError>,
    },
    #[error("{source_name} holds {found}, not a token or a link: {EXPECTED}")]
    NotAToken { source_name: String, found: String },
    #[error("{source_name}: {problem}")]
    Invalid {
        source_name: String,
        problem: String,
    },
}

const EXPECTED: &str = "expected an AccessToken (`skupper token issue`, `vansite token issue`), \
a Link with its Secret (`skupper link generate`), or a Skupper v1 token (a Secret labelled \
skupper.io/type: connection-token or token-claim)";

/// One thing a token or link file can hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    AccessToken(AccessToken),
    Links(LinkBundle),
    V1Connection(V1ConnectionToken),
    V1Claim(V1Claim),
}

impl Token {
    /// What the person handed over, in words.
    pub fn describe(&self) -> &'static str {
        match self {
            Token::AccessToken(_) => "an AccessToken",
            Token::Links(_) => "a Link and its Secret",
            Token::V1Connection(_) => "a Skupper v1 connection token",
            Token::V1Claim(_) => "a Skupper v1 token claim",
        }
    }
}

/// One or more Links and the Secret they all use (`spec.tlsCredentials`), with the Secret's
/// certificates decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkBundle {
    pub secret: Secret,
    pub links: Vec<Link>,
    /// The Secret's `ca.crt` (the remote site's CA), `tls.crt` and `tls.key` (this site's
    /// client certificate), as PEM text.
    pub credentials: CertFiles,
}

impl LinkBundle {
    /// Checks that every Link uses `secret` and that the Secret holds a usable client
    /// certificate; `problem` texts name what is wrong.
    pub fn new(secret: Secret, links: Vec<Link>) -> Result<LinkBundle, String> {
        if links.is_empty() {
            return Err(format!(
                "Secret '{}' comes without a Link",
                secret.metadata.name
            ));
        }
        for link in &links {
            if link.spec.tls_credentials != secret.metadata.name {
                return Err(format!(
                    "Link '{}' uses Secret '{}', but the file holds Secret '{}'",
                    link.metadata.name, link.spec.tls_credentials, secret.metadata.name
                ));
            }
        }
        let credentials = secret_credentials(&secret, &["ca.crt", "tls.crt", "tls.key"])?;
        let credentials = CertFiles {
            ca_crt: credentials[0].clone(),
            tls_crt: credentials[1].clone(),
            tls_key: credentials[2].clone(),
        };
        check_credentials(&credentials)
            .map_err(|e| format!("Secret '{}': {e}", secret.metadata.name))?;
        Ok(LinkBundle {
            secret,
            links,
            credentials,
        })
    }

    /// The same links under another name: the Secret and a single Link are called `name`;
    /// several Links are `name`, `name-1`, `name-2`, … (Skupper's names for HA sites).
    pub fn renamed(mut self, name: &str) -> LinkBundle {
        self.secret.metadata.name = name.to_string();
        for (index, link) in self.links.iter_mut().enumerate() {
            link.metadata.name = match index {
                0 => name.to_string(),
                n => format!("{name}-{n}"),
            };
            link.spec.tls_credentials = name.to_string();
        }
        self
    }

    /// Sets every Link's cost.
    pub fn with_cost(mut self, cost: i64) -> LinkBundle {
        for link in &mut self.links {
            link.spec.cost = cost;
        }
        self
    }
}

/// A link's Secret as Skupper writes it: `kubernetes.io/tls` with `ca.crt` (the remote site's
/// CA), `tls.crt` and `tls.key` (the client certificate and key).
pub fn link_secret(name: &str, credentials: &CertFiles) -> Secret {
    let mut secret = Secret {
        metadata: ObjectMeta::named(name),
        secret_type: "kubernetes.io/tls".into(),
        ..Secret::default()
    };
    secret.insert("ca.crt", credentials.ca_crt.as_bytes());
    secret.insert("tls.crt", credentials.tls_crt.as_bytes());
    secret.insert("tls.key", credentials.tls_key.as_bytes());
    secret
}

/// A Skupper v1 `connection-token` Secret (§3.1).
#[derive(Debug, Clone, PartialEq)]
pub struct V1ConnectionToken {
    pub name: String,
    pub inter_router: Option<Endpoint>,
    pub edge: Option<Endpoint>,
    /// The issuing site's id (empty when the token does not say).
    pub generated_by: String,
    pub site_version: String,
    pub cost: Option<i64>,
    pub credentials: CertFiles,
}

impl V1ConnectionToken {
    /// The v2 Link and Secret a v2 site stores for this token: the same credentials, the
    /// endpoints by role, the cost, and the issuing site's id kept as an annotation so that a
    /// second copy of the token is recognised.
    pub fn to_link_bundle(&self) -> LinkBundle {
        let secret = link_secret(&self.name, &self.credentials);
        let mut metadata = ObjectMeta::named(&self.name);
        if !self.generated_by.is_empty() {
            metadata
                .annotations
                .insert(GENERATED_BY.into(), self.generated_by.clone());
        }
        let link = Link {
            metadata,
            spec: LinkSpec {
                endpoints: [&self.inter_router, &self.edge]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
                tls_credentials: self.name.clone(),
                cost: self.cost.unwrap_or(1),
                ..LinkSpec::default()
            },
        };
        LinkBundle {
            secret,
            links: vec![link],
            credentials: self.credentials.clone(),
        }
    }
}

/// A Skupper v1 `token-claim` Secret (§3.2).
#[derive(Clone, PartialEq)]
pub struct V1Claim {
    pub name: String,
    /// `https://<claims host>:8081/<name>`.
    pub url: String,
    /// Never printed (Debug redacts it).
    pub password: String,
    /// PEM of the issuing site's CA, the only one trusted when redeeming.
    pub ca_pem: String,
    pub generated_by: String,
    pub site_version: String,
    /// RFC 3339, when the token says.
    pub expiration: Option<String>,
}

impl fmt::Debug for V1Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V1Claim")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("password", &"<redacted>")
            .field("generated_by", &self.generated_by)
            .field("site_version", &self.site_version)
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Detects what `text` holds and parses it. `source_name` (a file name) is used in messages.
pub fn parse(text: &str, source_name: &str) -> Result<Token, TokenError> {
    let invalid = |problem: String| TokenError::Invalid {
        source_name: source_name.to_string(),
        problem,
    };
    let parsed = parse_documents(text, source_name).map_err(|source| TokenError::Unreadable {
        source_name: source_name.to_string(),
        source: Box::new(without_source_name(source)),
    })?;
    let mut tokens = Vec::new();
    let mut links = Vec::new();
    let mut secrets = Vec::new();
    let mut others: Vec<String> = parsed
        .skipped
        .iter()
        .map(|s| format!("{} '{}' ({})", s.kind, s.name, s.api_version))
        .collect();
    for resource in parsed.resources {
        match resource {
            Resource::AccessToken(token) => tokens.push(token),
            Resource::Link(link) => links.push(link),
            Resource::Secret(secret) => secrets.push(secret),
            other => others.push(format!("{} '{}'", other.kind(), other.name())),
        }
    }
    let not_a_token = |found: String| TokenError::NotAToken {
        source_name: source_name.to_string(),
        found,
    };
    if !others.is_empty() {
        return Err(not_a_token(others.join(", ")));
    }
    match (tokens.len(), secrets.len(), links.len()) {
        (0, 0, 0) => Err(TokenError::Empty {
            source_name: source_name.to_string(),
        }),
        (1, 0, 0) => {
            let token = tokens.remove(0);
            crate::tls::roots(token.spec.ca.as_bytes()).map_err(|e| {
                invalid(format!(
                    "AccessToken '{}': spec.ca: {e}",
                    token.metadata.name
                ))
            })?;
            Ok(Token::AccessToken(token))
        }
        (0, 1, 0) => {
            let secret = secrets.remove(0);
            let kind = secret
                .metadata
                .labels
                .get(V1_TYPE_LABEL)
                .map(String::as_str)
                .unwrap_or_default();
            match kind {
                V1_CONNECTION_TOKEN => v1_connection_token(&secret)
                    .map(Token::V1Connection)
                    .map_err(invalid),
                V1_TOKEN_CLAIM => v1_claim(&secret).map(Token::V1Claim).map_err(invalid),
                "" => Err(not_a_token(format!(
                    "only Secret '{}', which no Link uses (a file cut short?) and which is no \
                     v1 token (no {V1_TYPE_LABEL} label)",
                    secret.metadata.name
                ))),
                other => Err(not_a_token(format!(
                    "Secret '{}' of {V1_TYPE_LABEL} '{other}'",
                    secret.metadata.name
                ))),
            }
        }
        (0, 1, _) => LinkBundle::new(secrets.remove(0), links)
            .map(Token::Links)
            .map_err(invalid),
        (0, 0, _) => Err(invalid(format!(
            "Link '{}' comes without its Secret (the client certificate): use the whole \
             output of `skupper link generate`",
            links[0].metadata.name
        ))),
        (t, s, l) => Err(not_a_token(format!(
            "{t} AccessToken(s), {s} Secret(s) and {l} Link(s) together"
        ))),
    }
}

/// The source name is already in [`TokenError`]'s message; drop it from the inner error's
/// place. (Its YAML messages are one line without the text around the fault, which can be a
/// code or a key.)
fn without_source_name(mut error: ResourceError) -> ResourceError {
    if let Some(place) = error.place_mut() {
        place.source_name.clear();
    }
    error
}

fn v1_connection_token(secret: &Secret) -> Result<V1ConnectionToken, String> {
    let name = &secret.metadata.name;
    let invalid = |problem: String| format!("v1 connection token '{name}': {problem}");
    let annotations = &secret.metadata.annotations;
    let endpoint = |role: &str| -> Result<Option<Endpoint>, String> {
        let host = annotations.get(&format!("{role}-host"));
        let port = annotations.get(&format!("{role}-port"));
        match (host, port) {
            (None, None) => Ok(None),
            (Some(host), Some(port)) if !host.is_empty() => {
                match port.parse::<u16>() {
                    Ok(p) if p > 0 => {}
                    _ => {
                        return Err(invalid(format!(
                            "annotation {role}-port '{port}' is not a port number"
                        )))
                    }
                }
                Ok(Some(Endpoint {
                    name: role.to_string(),
                    host: host.clone(),
                    port: port.clone(),
                    group: String::new(),
                }))
            }
            _ => Err(invalid(format!(
                "annotations {role}-host and {role}-port must both be set"
            ))),
        }
    };
    let inter_router = endpoint(INTER_ROUTER)?;
    let edge = endpoint(EDGE)?;
    if inter_router.is_none() && edge.is_none() {
        return Err(invalid(
            "annotations inter-router-host/port or edge-host/port are missing: no endpoint to link to"
                .into(),
        ));
    }
    let cost = match annotations.get(V1_COST) {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| invalid(format!("annotation {V1_COST} '{text}' is not a number")))?,
        ),
    };
    let data = secret_credentials(secret, &["ca.crt", "tls.crt", "tls.key"]).map_err(&invalid)?;
    let credentials = CertFiles {
        ca_crt: data[0].clone(),
        tls_crt: data[1].clone(),
        tls_key: data[2].clone(),
    };
    check_credentials(&credentials).map_err(&invalid)?;
    Ok(V1ConnectionToken {
        name: name.clone(),
        inter_router,
        edge,
        generated_by: annotations.get(GENERATED_BY).cloned().unwrap_or_default(),
        site_version: annotations.get(SITE_VERSION).cloned().unwrap_or_default(),
        cost,
        credentials,
    })
}

fn v1_claim(secret: &Secret) -> Result<V1Claim, String> {
    let name = &secret.metadata.name;
    let invalid = |problem: String| format!("v1 token claim '{name}': {problem}");
    let annotations = &secret.metadata.annotations;
    let url = annotations
        .get(V1_CLAIM_URL)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid(format!("annotation {V1_CLAIM_URL} is missing")))?;
    if !url.starts_with("https://") {
        return Err(invalid(format!(
            "annotation {V1_CLAIM_URL} must be an https:// URL"
        )));
    }
    let data = secret_credentials(secret, &["password", "ca.crt"]).map_err(&invalid)?;
    crate::tls::roots(data[1].as_bytes()).map_err(|e| invalid(format!("ca.crt: {e}")))?;
    if data[0].is_empty() {
        return Err(invalid("data 'password' is empty".into()));
    }
    check_code(&data[0]).map_err(|problem| invalid(format!("data 'password' {problem}")))?;
    Ok(V1Claim {
        name: name.clone(),
        url: url.clone(),
        password: data[0].clone(),
        ca_pem: data[1].clone(),
        generated_by: annotations.get(GENERATED_BY).cloned().unwrap_or_default(),
        site_version: annotations.get(SITE_VERSION).cloned().unwrap_or_default(),
        expiration: annotations.get(V1_CLAIM_EXPIRATION).cloned(),
    })
}

/// The named data entries of `secret`, decoded to text, in order.
fn secret_credentials(secret: &Secret, keys: &[&str]) -> Result<Vec<String>, String> {
    keys.iter()
        .map(|key| {
            let bytes = secret
                .decoded(key)
                .ok_or_else(|| format!("Secret '{}' has no data '{key}'", secret.metadata.name))?
                .map_err(|e| {
                    format!(
                        "Secret '{}': data '{key}' is not valid base64: {e}",
                        secret.metadata.name
                    )
                })?;
            String::from_utf8(bytes).map_err(|_| {
                format!(
                    "Secret '{}': data '{key}' is not text",
                    secret.metadata.name
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
