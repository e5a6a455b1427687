//! Any bytes as what a client sends the grant server, after TLS: its HTTP/1.1 layer and the
//! redemption protocol, against a site with a live grant (whose path and code the seeds use).
//! The server must answer with HTTP or close, never panic or hang; a redemption it answers 200
//! must carry a Secret and a Link.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vansite::grants::server::{Redemptions, TrustIssued};
use vansite::grants::TokenFormat;
use vansite::model::{parse_documents, SiteResources};
use vansite::ops::token::{new_grant, record_grant};
use vansite::render::certs::{site_certificates, LeafRenewal};
use vansite::store::SiteDir;

/// The site: link access on, certificates issued, one grant of many redemptions whose uid and
/// code are fixed so that seeds can redeem it.
const SITE: &str = "apiVersion: skupper.io/v2alpha1
kind: Site
metadata: {name: west, uid: 6f1c0000-0000-4000-8000-000000000001}
spec: {linkAccess: default}
---
apiVersion: skupper.io/v2alpha1
kind: RouterAccess
metadata: {name: west}
spec:
  roles: [{name: inter-router, port: 55671}, {name: edge, port: 45671}]
  tlsCredentials: west
  issuer: skupper-site-ca
  subjectAlternativeNames: [west.example]
";
const GRANT_UID: &str = "86b80f6b-2b02-47ac-bab4-d285bb4f7b9d";
const GRANT_CODE: &str = "L1qCl2mZ7D81gbXp3ax4YT0K";

struct Server {
    runtime: tokio::runtime::Runtime,
    redemptions: Redemptions,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("vansite-fuzz-grants-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let site_dir = SiteDir { namespace: "default".into(), root };
        let documents = parse_documents(SITE, "site.yaml").expect("the site parses");
        let mut resources = SiteResources::new("default", documents.resources).expect("a site");
        let certificates =
            site_certificates(&resources, &Default::default(), LeafRenewal::WhenDue).unwrap();
        site_dir.save_certificates(&certificates).unwrap();
        let mut grant = new_grant("west", None, 1_000_000_000, "1h", TokenFormat::V2, None, 9090);
        grant.metadata.uid = GRANT_UID.into();
        grant.spec.code = GRANT_CODE.into();
        record_grant(&site_dir, &mut resources, grant, Duration::from_secs(3600), SystemTime::now())
            .unwrap();
        site_dir.save_resources(&resources).unwrap();
        let trust: TrustIssued = Arc::new(|| Box::pin(async { Ok(()) }));
        Server {
            // Paused time: a wrong code's answer waits (up to 10 s), and the fuzzer need not.
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap(),
            redemptions: Redemptions::new(site_dir, trust).expect("the grant server's TLS identity"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    server.runtime.block_on(async {
        let (mut client, io) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::from(([192, 0, 2, 1], 40000));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let exchange = server.redemptions.exchange(io, peer, deadline, None);
        let talk = async {
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            let mut answer = Vec::new();
            let _ = client.read_to_end(&mut answer).await;
            answer
        };
        let ((), answer) = tokio::join!(exchange, talk);
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "),
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
        if answer.get(8..13) == Some(b" 200 ") {
            let text = String::from_utf8_lossy(&answer);
            assert!(text.contains("kind: Secret") && text.contains("kind: Link"), "{text}");
        }
    });
});
