//! Reading YAML streams of documents into [`Resource`]s, one document at a time.

use serde_json::Value;

use super::{ObjectRef, Resource, ResourceError, SKUPPER_API_VERSION};

/// Skupper kinds that exist but that a vansite site does not use; they are skipped, not refused.
const SKIPPED_SKUPPER_KINDS: &[&str] = &[
    "AttachedConnector",
    "AttachedConnectorBinding",
    "SecuredAccess",
];

/// A document that was read but skipped (another API group, or a Skupper kind vansite does not use).
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedDocument {
    pub document: usize,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// What a YAML stream held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedDocuments {
    pub resources: Vec<Resource>,
    pub skipped: Vec<SkippedDocument>,
}

/// Reads a YAML stream (one or more `---`-separated documents). `source_name` (a file path, or
/// `<stdin>`) is used in messages. Each object is validated on its own; see
/// [`SiteResources`](super::SiteResources) for the checks across objects.
pub fn parse_documents(text: &str, source_name: &str) -> Result<ParsedDocuments, ResourceError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|error| ResourceError::Yaml {
            source_name: source_name.to_string(),
            message: error.to_string(),
        })?;
    let mut parsed = ParsedDocuments::default();
    for (index, value) in documents.into_iter().enumerate() {
        let document = index + 1;
        let problem = |problem: String| ResourceError::Document {
            source_name: source_name.to_string(),
            document,
            problem,
        };
        let map = match &value {
            Value::Null => continue,
            Value::Object(map) => map,
            _ => {
                return Err(problem(
                    "expected a mapping with apiVersion and kind".into(),
                ))
            }
        };
        let text_field = |field: &str| -> Result<String, ResourceError> {
            match map.get(field) {
                Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
                _ => Err(problem(format!("{field} is missing or not a string"))),
            }
        };
        let api_version = text_field("apiVersion")?;
        let kind = text_field("kind")?;
        let name = map
            .get("metadata")
            .and_then(|metadata| metadata.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let skipped = SkippedDocument {
            document,
            api_version: api_version.clone(),
            kind: kind.clone(),
            name: name.clone(),
        };
        let resource = match (api_version.as_str(), kind.as_str()) {
            (SKUPPER_API_VERSION, kind) if SKIPPED_SKUPPER_KINDS.contains(&kind) => Ok(None),
            (api_version, kind) => match Resource::from_document(api_version, kind, value) {
                Some(Ok(resource)) => Ok(Some(resource)),
                Some(Err(error)) => Err(error),
                None if api_version == SKUPPER_API_VERSION => {
                    return Err(ResourceError::UnknownKind {
                        source_name: source_name.to_string(),
                        document,
                        kind: kind.to_string(),
                    })
                }
                None => Ok(None),
            },
        };
        let in_document = |source: ResourceError| ResourceError::InDocument {
            source_name: source_name.to_string(),
            document,
            source: Box::new(source),
        };
        match resource {
            Ok(Some(resource)) => {
                resource.validate().map_err(in_document)?;
                parsed.resources.push(resource);
            }
            Ok(None) => parsed.skipped.push(skipped),
            Err((error, kind)) => {
                return Err(in_document(ResourceError::Shape {
                    object: ObjectRef { kind, name },
                    message: error.to_string(),
                }))
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse, LINK_AND_SECRET};
    use super::*;

    #[test]
    fn parses_link_and_secret_stream() {
        let parsed = parse(LINK_AND_SECRET).unwrap();
        assert!(parsed.skipped.is_empty());
        let [Resource::Secret(secret), Resource::Link(link)] = parsed.resources.as_slice() else {
            panic!("unexpected {:?}", parsed.resources)
        };
        assert_eq!(secret.secret_type, "kubernetes.io/tls");
        assert_eq!(secret.decoded("ca.crt").unwrap().unwrap(), b"ca");
        assert_eq!(link.spec.cost, 1);
        let endpoint = link.spec.endpoint_for_role("edge").unwrap();
        assert_eq!(
            (endpoint.host.as_str(), endpoint.port.as_str()),
            ("203.0.113.7", "45671")
        );
        assert_eq!(link.spec.endpoints[0].group, "skupper-router");
    }

    #[test]
    fn skips_other_groups_and_unused_skupper_kinds() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
                    apiVersion: skupper.io/v2alpha1\nkind: SecuredAccess\nmetadata: {name: c}\n---\n";
        let parsed = parse(text).unwrap();
        assert!(parsed.resources.is_empty());
        assert_eq!(parsed.skipped.len(), 2);
        assert_eq!(parsed.skipped[0].kind, "Deployment");
        assert_eq!(parsed.skipped[1].document, 2);
    }

    #[test]
    fn truncated_yaml_is_an_error_naming_the_file() {
        let error = parse("apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata: {name: [west\n")
            .unwrap_err();
        assert!(matches!(error, ResourceError::Yaml { .. }), "{error:?}");
        assert!(
            error.to_string().starts_with("test.yaml: not valid YAML"),
            "{error}"
        );
    }

    #[test]
    fn unknown_skupper_kind_is_an_error() {
        let error = parse("apiVersion: skupper.io/v2alpha1\nkind: Sit\nmetadata: {name: west}\n")
            .unwrap_err();
        assert!(error.to_string().contains("unknown kind 'Sit'"), "{error}");
        // The Skupper kinds of the registry, in KINDS order (today Site, RouterAccess, Link,
        // Listener, MultiKeyListener, Connector, AccessGrant, AccessToken).
        assert_eq!(
            error.to_string(),
            format!(
                "test.yaml, document 1: unknown kind 'Sit' for apiVersion skupper.io/v2alpha1 \
                 (vansite reads {})",
                Resource::kinds_of(SKUPPER_API_VERSION).join(", ")
            )
        );
        // A Secret is core v1; a Skupper-group "Secret" is no kind vansite reads, and a v1
        // kind other than Secret is skipped.
        let error = parse("apiVersion: skupper.io/v2alpha1\nkind: Secret\nmetadata: {name: s}\n")
            .unwrap_err();
        assert!(
            error.to_string().contains("unknown kind 'Secret'"),
            "{error}"
        );
        let parsed = parse("apiVersion: v1\nkind: Site\nmetadata: {name: west}\n").unwrap();
        assert_eq!(parsed.skipped.len(), 1);
    }

    #[test]
    fn document_without_kind_is_an_error() {
        let error = parse("apiVersion: v1\nmetadata: {name: x}\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "test.yaml, document 1: kind is missing or not a string"
        );
        let error = parse("- a\n- b\n").unwrap_err();
        assert!(error.to_string().contains("expected a mapping"), "{error}");
    }

    #[test]
    fn wrong_secret_shape_names_the_secret() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: [a]\n";
        let error = parse(text).unwrap_err().to_string();
        assert!(error.contains("Secret/s"), "{error}");
    }
}
