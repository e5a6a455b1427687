//! The issuing side of links: AccessGrants, the tokens that name them, and the grant server
//! that redeems them (skupper-formats §2.4, §2.5, §2.8), plus static links (§2.9).
//!
//! - `vansite token issue FILE` records an AccessGrant (a random code, a redemption count, an
//!   expiration window) and writes the AccessToken (or, with `--format v1`, a v1 token-claim)
//!   that another site redeems at this host's grant server.
//! - The grant server is a hidden subcommand of the vansite binary (`vansite grant-server`), run
//!   by a socket-activated pair of systemd user units: HTTPS, TLS 1.3 only, its own CA.
//! - `vansite link generate` writes a static Link + Secret with the same code the server uses
//!   for its answers ([`bundle::link_bundle`]).
//!
//! Where the grant URL points: the host is `--host` given to `token issue`, else the first
//! subjectAlternativeName of the site's RouterAccess (the first `--host` given to `vansite init`,
//! else the machine's host name); it must be one of those names, since both the grant server's
//! certificate and the router's carry exactly them. The port is `--port`, else the port this
//! site's grant server already uses, else `grant_port` from the settings file (9090).

pub mod admission;
pub mod bundle;
pub mod code;
pub mod duration;
pub mod protocol;
pub mod server;
pub mod state;

/// Issues a new incoming link at `access`: claims its name here (`wanted`, or numbered when
/// taken), saves its CA in `runtime/link-issuers/`, and returns what the linking site gets
/// (the Secret and Link `name`, client certificate CN `subject`). The router trusts the link
/// once its files are written again and its link listeners renewed (the caller's apply).
pub fn issue_link(
    site_dir: &crate::store::SiteDir,
    access: &bundle::LinkAccess<'_>,
    server_ca_pem: &str,
    wanted: &str,
    name: &str,
    subject: &str,
) -> Result<bundle::IssuedLink, GrantError> {
    let failed = |link: &str, problem: String| GrantError::IssueLink {
        link: link.to_string(),
        problem,
    };
    let link = site_dir
        .claim_link_issuer(wanted)
        .map_err(|e| failed(wanted, e.to_string()))?;
    let issued = bundle::link_bundle(access, server_ca_pem, &link, name, subject)
        .map_err(|e| failed(&link, e.to_string()))
        .and_then(|issued| {
            site_dir
                .save_issuer(&site_dir.link_issuers(), &link, &issued.ca)
                .map_err(|e| failed(&link, e.to_string()))?;
            Ok(issued)
        });
    if issued.is_err() {
        let _ = site_dir.remove_issuer(&site_dir.link_issuers(), &link);
    }
    issued
}

/// Annotation on an AccessGrant issued as a Skupper v1 token-claim (redeemed by name, §3.3).
pub const FORMAT_ANNOTATION: &str = "vansite.io/token-format";
/// Annotation on the Site recording the port its grant server listens on.
pub const GRANT_PORT_ANNOTATION: &str = "vansite.io/grant-port";
/// The port this site's grant server was set up with (the Site's annotation), if any.
pub fn grant_port(resources: &crate::model::SiteResources) -> Option<u16> {
    resources
        .site
        .metadata
        .annotations
        .get(GRANT_PORT_ANNOTATION)
        .and_then(|p| p.parse().ok())
}

/// Annotation on an AccessGrant naming the host its token's URL and Link endpoints use.
pub const HOST_ANNOTATION: &str = "vansite.io/host";

/// The token a grant was issued as (`v2`, `v1`: the names `token issue --format` takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    /// A Skupper v2 AccessToken, redeemed at `/<grant uid>` (§2.8).
    V2,
    /// A Skupper v1 token-claim Secret, redeemed at `/<grant name>` (§3.3).
    V1,
}

impl TokenFormat {
    pub fn of(grant: &crate::model::AccessGrant) -> TokenFormat {
        match grant.metadata.annotations.get(FORMAT_ANNOTATION) {
            Some(format) if format == "v1" => TokenFormat::V1,
            _ => TokenFormat::V2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error(
        "site '{namespace}' is an edge site, and edge sites cannot accept links: issue the token \
         on an interior site, or link this site to one with `vansite link create`"
    )]
    EdgeSite { namespace: String },
    #[error(
        "site '{namespace}' does not accept links, so there is nothing a token could be redeemed \
         for: create the site with link access (`vansite -n {namespace} delete`, then \
         `vansite -n {namespace} init --enable-link-access --host <name other sites reach>`)"
    )]
    NoLinkAccess { namespace: String },
    #[error(
        "site '{namespace}' names no host other sites could reach it by (its RouterAccess has no \
         subjectAlternativeNames): recreate it with `vansite init --enable-link-access --host <name>`"
    )]
    NoHost { namespace: String },
    #[error(
        "host '{host}' is not one of this site's names ({}), which its certificates carry: use one \
         of them with --host",
        known.join(", ")
    )]
    UnknownHost { host: String, known: Vec<String> },
    #[error("expiration window '{text}': {problem} (a Go duration such as 15m, 1h30m, 90s)")]
    BadDuration { text: String, problem: String },
    #[error("an AccessGrant named '{name}' exists and has not expired yet: choose another --name")]
    GrantExists { name: String },
    #[error(
        "no listening socket: `vansite grant-server` is started by its systemd socket unit \
         (LISTEN_FDS), or given --listen ADDRESS"
    )]
    NotActivated,
    #[error("the grant server's certificate ({path}) cannot be used: {problem}; `vansite token issue` creates it again")]
    ServerCertificate { path: String, problem: String },
    #[error("cannot issue incoming link '{link}': {problem}")]
    IssueLink { link: String, problem: String },
    #[error("grant server: {0}")]
    Io(#[from] std::io::Error),
}
