//! Documents and helpers the model's unit tests share.

use super::{parse_documents, MultiKeyListener, ParsedDocuments, Resource, ResourceError};

/// Shaped like what `skupper link generate` / grant redemption writes (skupper-formats §2.3),
/// with the fields Go serializers add.
pub const LINK_AND_SECRET: &str = r#"---
apiVersion: v1
kind: Secret
metadata:
  name: my-token
  creationTimestamp: null
type: kubernetes.io/tls
data:
  ca.crt: Y2E=
  tls.crt: Y3J0
  tls.key: a2V5
---
apiVersion: skupper.io/v2alpha1
kind: Link
metadata:
  name: my-token
  creationTimestamp: null
spec:
  tlsCredentials: my-token
  cost: 1
  endpoints:
  - {name: inter-router, host: 203.0.113.7, port: "55671", group: skupper-router}
  - {name: edge,         host: 203.0.113.7, port: "45671", group: skupper-router}
status: {}
"#;

pub const SITE: &str = r#"apiVersion: skupper.io/v2alpha1
kind: Site
metadata:
  name: west
  namespace: default
  uid: 6f1c0000-0000-4000-8000-000000000001
spec:
  linkAccess: default
"#;

/// The CRD's fields in Go's order, quoted as vansite writes them.
pub const PRIORITY_MKL: &str = r#"apiVersion: skupper.io/v2alpha1
kind: MultiKeyListener
metadata:
  name: db
  annotations:
    vansite.io/router-port: "41001"
spec:
  host: "0.0.0.0"
  port: 5432
  tlsCredentials: db-tls
  requireClientCert: true
  strategy:
    priority:
      routingKeys:
      - db-primary
      - db-replica
  observer: none
"#;

pub const WEIGHTED_MKL: &str = r#"apiVersion: skupper.io/v2alpha1
kind: MultiKeyListener
metadata:
  name: web
spec:
  host: localhost
  port: 8080
  strategy:
    weighted:
      routingKeys:
        web-blue: 3
        web-green: 1
"#;

pub fn parse(text: &str) -> Result<ParsedDocuments, ResourceError> {
    parse_documents(text, "test.yaml")
}

pub fn all(texts: &[&str]) -> Vec<Resource> {
    texts
        .iter()
        .flat_map(|text| parse(text).expect("valid").resources)
        .collect()
}

pub fn mkl(text: &str) -> MultiKeyListener {
    match parse(text).expect("valid").resources.remove(0) {
        Resource::MultiKeyListener(listener) => listener,
        other => panic!("not a MultiKeyListener: {other:?}"),
    }
}
