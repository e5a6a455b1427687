use super::*;
use crate::render::certs::{issue, Ca};

/// A Link and Secret as `skupper link generate` prints them, with real certificates.
fn link_yaml(name: &str, credentials: &CertFiles) -> String {
    let secret = Resource::Secret(link_secret(name, credentials))
        .to_yaml()
        .unwrap();
    format!(
        "---\n{secret}---\napiVersion: skupper.io/v2alpha1\nkind: Link\nmetadata:\n  name: {name}\n  \
         creationTimestamp: null\nspec:\n  tlsCredentials: {name}\n  cost: 1\n  endpoints:\n  \
         - {{name: inter-router, host: 198.18.0.7, port: \"55671\", group: skupper-router}}\n  \
         - {{name: edge, host: 198.18.0.7, port: \"45671\", group: skupper-router}}\nstatus: {{}}\n"
    )
}

fn credentials() -> CertFiles {
    let ca = Ca::new("skupper-site-ca").unwrap();
    issue(&ca, "east", &[]).unwrap()
}

fn v1_token_yaml(credentials: &CertFiles, annotations: &str) -> String {
    let b64 = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: skupper\n  labels:\n    skupper.io/type: \
         connection-token\n  annotations:\n{annotations}type: kubernetes.io/tls\ndata:\n  ca.crt: {}\n  \
         tls.crt: {}\n  tls.key: {}\n",
        b64(&credentials.ca_crt),
        b64(&credentials.tls_crt),
        b64(&credentials.tls_key)
    )
}

const V1_ANNOTATIONS: &str = "    inter-router-host: 198.18.0.7\n    inter-router-port: \"55671\"\n    \
     edge-host: 198.18.0.7\n    edge-port: \"45671\"\n    skupper.io/generated-by: \
     0d5e0000-0000-4000-8000-000000000001\n    skupper.io/site-version: 1.9.6\n    skupper.io/cost: \"3\"\n";

fn parse_ok(text: &str) -> Token {
    parse(text, "token.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> String {
    parse(text, "token.yaml").unwrap_err().to_string()
}

#[test]
fn link_and_secret_stream_is_a_link_bundle() {
    let credentials = credentials();
    let Token::Links(bundle) = parse_ok(&link_yaml("east-link", &credentials)) else {
        panic!("not links")
    };
    assert_eq!(bundle.credentials, credentials);
    assert_eq!(bundle.links.len(), 1);
    let renamed = bundle.renamed("to-east").with_cost(4);
    assert_eq!(renamed.secret.metadata.name, "to-east");
    assert_eq!(renamed.links[0].metadata.name, "to-east");
    assert_eq!(renamed.links[0].spec.tls_credentials, "to-east");
    assert_eq!(renamed.links[0].spec.cost, 4);
}

#[test]
fn several_links_of_one_secret_are_renamed_as_skupper_names_them() {
    let credentials = credentials();
    let text = link_yaml("east", &credentials);
    let second = text
        .split("---\n")
        .nth(2)
        .unwrap()
        .replace("name: east\n", "name: east-1\n");
    let Token::Links(bundle) = parse_ok(&format!("{text}---\n{second}")) else {
        panic!()
    };
    let names: Vec<String> = bundle
        .renamed("west")
        .links
        .iter()
        .map(|l| l.metadata.name.clone())
        .collect();
    assert_eq!(names, ["west", "west-1"]);
}

#[test]
fn truncated_yaml_is_unreadable_without_quoting_the_file() {
    let credentials = credentials();
    let text = link_yaml("east", &credentials);
    for cut in [text.len() / 3, text.len() / 2, text.len() - 40] {
        let error = parse(&text[..cut], "token.yaml").unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("token.yaml"), "{message}");
        assert!(
            !message.contains("BEGIN") && !message.contains("LS0t"),
            "no key material in messages: {message}"
        );
    }
    let error = parse(
        "apiVersion: skupper.io/v2alpha1\nkind: AccessToken\nspec: {code: \"s3cret",
        "t",
    )
    .unwrap_err();
    assert!(matches!(error, TokenError::Unreadable { .. }), "{error:?}");
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[test]
fn tampered_certificates_are_refused() {
    let credentials = credentials();
    let text = link_yaml("east", &credentials);
    // Flip one base64 character inside tls.crt's data.
    let start = text.find("tls.crt: ").unwrap() + "tls.crt: ".len() + 200;
    let mut bytes = text.into_bytes();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    let message = parse_err(&String::from_utf8(bytes).unwrap());
    assert!(message.contains("tls.crt"), "{message}");

    let mut foreign = credentials.clone();
    foreign.tls_crt = self::credentials().tls_crt;
    let message = parse_err(&link_yaml("east", &foreign));
    assert!(
        message.contains("tls.crt is not signed by ca.crt"),
        "{message}"
    );

    let mut other = credentials.clone();
    other.tls_key = self::credentials().tls_key;
    let message = parse_err(&link_yaml("east", &other));
    assert!(
        message.contains("tls.key does not belong to tls.crt"),
        "{message}"
    );

    let message = parse_err(&link_yaml("east", &credentials).replace("tls.key: ", "tls.key: ab$"));
    assert!(message.contains("base64"), "{message}");
}

#[test]
fn other_kinds_of_objects_are_named() {
    let message =
        parse_err("apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata: {name: west}\n");
    assert!(
        message.contains("holds Site 'west', not a token or a link"),
        "{message}"
    );
    let message = parse_err("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n");
    assert!(message.contains("Deployment 'web'"), "{message}");
    let message = parse_err("apiVersion: v1\nkind: Secret\nmetadata: {name: plain}\n");
    assert!(
        message.contains("which no Link uses (a file cut short?)"),
        "{message}"
    );
    assert!(matches!(
        parse("\n", "empty.yaml"),
        Err(TokenError::Empty { .. })
    ));
    let message = parse_err("just some text\n");
    assert!(message.contains("damaged or is not a token"), "{message}");
}

#[test]
fn missing_parts_are_named() {
    let credentials = credentials();
    let text = link_yaml("east", &credentials);
    let link_only = text.split("---\n").nth(2).unwrap();
    assert!(parse_err(link_only).contains("comes without its Secret"));
    let mut secret = Secret {
        metadata: ObjectMeta::named("east"),
        ..Secret::default()
    };
    secret.insert("ca.crt", credentials.ca_crt.as_bytes());
    secret.insert("tls.crt", credentials.tls_crt.as_bytes());
    let without_key = format!(
        "{}---\n{link_only}",
        Resource::Secret(secret).to_yaml().unwrap()
    );
    let message = parse_err(&without_key);
    assert!(message.contains("has no data 'tls.key'"), "{message}");
    let wrong_secret = text.replace("tlsCredentials: east", "tlsCredentials: other");
    assert!(parse_err(&wrong_secret).contains("uses Secret 'other'"));
    let no_endpoints = v1_token_yaml(&credentials, "    skupper.io/site-version: 1.9.6\n");
    assert!(parse_err(&no_endpoints).contains("no endpoint to link to"));
    let half = v1_token_yaml(&credentials, "    edge-host: 198.18.0.7\n");
    assert!(parse_err(&half).contains("edge-host and edge-port must both be set"));
}

#[test]
fn v1_connection_token_becomes_a_v2_link() {
    let credentials = credentials();
    let Token::V1Connection(token) = parse_ok(&v1_token_yaml(&credentials, V1_ANNOTATIONS)) else {
        panic!()
    };
    assert_eq!(token.generated_by, "0d5e0000-0000-4000-8000-000000000001");
    assert_eq!(token.cost, Some(3));
    let bundle = token.to_link_bundle();
    let link = &bundle.links[0];
    assert_eq!(link.spec.tls_credentials, "skupper");
    assert_eq!(link.spec.cost, 3);
    let inter_router = link.spec.endpoint_for_role("inter-router").unwrap();
    assert_eq!(
        (inter_router.host.as_str(), inter_router.port.as_str()),
        ("198.18.0.7", "55671")
    );
    assert_eq!(link.spec.endpoint_for_role("edge").unwrap().port, "45671");
    assert_eq!(link.metadata.annotations[GENERATED_BY], token.generated_by);
    // What is stored reads back as the same Link and Secret.
    let text = [
        Resource::Secret(bundle.secret.clone()),
        Resource::Link(link.clone()),
    ]
    .iter()
    .map(|r| format!("---\n{}", r.to_yaml().unwrap()))
    .collect::<String>();
    let Token::Links(again) = parse_ok(&text) else {
        panic!()
    };
    assert_eq!(again, bundle);
}

#[test]
fn v1_claim_is_parsed_and_its_password_never_printed() {
    let ca = Ca::new("skupper-site-ca").unwrap();
    let b64 = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    };
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: 5f0e3a6c-8a7b-11ef-9b2d-0242ac120002\n  labels: \
         {{skupper.io/type: token-claim}}\n  annotations:\n    skupper.io/url: https://198.18.0.7:8081/5f0e\n    \
         skupper.io/site-version: 1.9.6\n    skupper.io/generated-by: abc\ndata:\n  password: {}\n  ca.crt: {}\n",
        b64("Pa55word0123456789abcdef"),
        b64(ca.cert_pem())
    );
    let Token::V1Claim(claim) = parse_ok(&text) else {
        panic!()
    };
    assert_eq!(claim.url, "https://198.18.0.7:8081/5f0e");
    assert_eq!(claim.password, "Pa55word0123456789abcdef");
    assert!(!format!("{claim:?}").contains("Pa55word"));
    let plain = text.replace("https://", "http://");
    assert!(parse_err(&plain).contains("must be an https:// URL"));
    // A password far longer than a claim's is not sent to the claims server.
    let long = text.replace(&b64("Pa55word0123456789abcdef"), &b64(&"p".repeat(50_000)));
    let message = parse_err(&long);
    assert!(
        message.contains("data 'password' is 50000 characters long; a code is at most 256"),
        "{message}"
    );
}

#[test]
fn access_token_needs_a_usable_ca() {
    let ca = Ca::new("skupper-grant-server-ca").unwrap();
    let token = |ca: &str| {
        let indented: String = ca.lines().map(|l| format!("    {l}\n")).collect();
        format!(
            "apiVersion: skupper.io/v2alpha1\nkind: AccessToken\nmetadata: {{name: west}}\nspec:\n  \
             url: https://198.18.0.7:9090/86b80f6b\n  code: L1qCl2mZ7D81gbXp3ax4YT0K\n  ca: |\n{indented}"
        )
    };
    assert!(matches!(
        parse_ok(&token(ca.cert_pem())),
        Token::AccessToken(_)
    ));
    let message = parse_err(&token(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    ));
    assert!(message.contains("spec.ca"), "{message}");
    // A token file cut short inside its CA: said in those words, not the PEM parser's
    // "missing section end marker: [67, 69, 82, …]".
    let pem = ca.cert_pem();
    let message = parse_err(&token(&pem[..pem.len() / 2]));
    assert_eq!(
        message,
        "token.yaml: AccessToken 'west': spec.ca: the CA certificate is not valid PEM: the \
         certificate is cut off (no END CERTIFICATE line): the file is truncated?"
    );
}

#[test]
fn a_cut_off_link_certificate_says_so() {
    let mut credentials = credentials();
    let half = credentials.tls_crt.len() / 2;
    credentials.tls_crt.truncate(half);
    let message = parse_err(&link_yaml("east", &credentials));
    assert!(
        message.contains("tls.crt: the certificate is cut off (no END CERTIFICATE line)"),
        "{message}"
    );
}

#[test]
fn skupper_rsa_credentials_are_accepted() {
    // Skupper issues RSA 2048 keys in PKCS#1 PEM ("RSA PRIVATE KEY").
    let credentials = CertFiles {
        ca_crt: include_str!("testdata/rsa.crt").into(),
        tls_crt: include_str!("testdata/rsa.crt").into(),
        tls_key: include_str!("testdata/rsa-pkcs1.key").into(),
    };
    assert!(matches!(
        parse_ok(&link_yaml("east", &credentials)),
        Token::Links(_)
    ));
}
