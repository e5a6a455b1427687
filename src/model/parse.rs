//! Reading YAML streams of documents into [`Resource`]s, one document at a time.

use std::fmt;

use serde_json::Value;
use serde_saphyr::{MessageFormatter, UserMessageFormatter};

use super::locate::line_of;
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

/// Where in the input a problem is: the file (a path, `<stdin>`; empty when the message
/// already names it), the document of the stream (1-based), the line and column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Place {
    pub source_name: String,
    pub document: Option<usize>,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.source_name.is_empty() {
            parts.push(self.source_name.clone());
        }
        parts.extend(self.document.map(|d| format!("document {d}")));
        parts.extend(self.line.map(|l| format!("line {l}")));
        parts.extend(self.column.map(|c| format!("column {c}")));
        f.write_str(&parts.join(", "))
    }
}

/// A document's wrong field: where in the document, and serde's words for what is wrong.
pub(super) type ShapeError = serde_path_to_error::Error<serde_json::Error>;

/// `field ... ` for a Shape message, nothing for the document itself.
pub(super) fn field_words(field: &str) -> String {
    if field.is_empty() || field == "." {
        String::new()
    } else {
        format!("field `{field}` ")
    }
}

/// The longest string a message about a wrong field quotes.
const MAX_QUOTED: usize = 16;

/// serde's words ("invalid type: null, expected a string") in a person's: what the field
/// must be and what it is ("must be a string, found nothing").
fn shape_problem(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let Some((found, expected)) = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once(", expected "))
    else {
        return message;
    };
    let found = match found {
        "null" => "nothing".to_string(),
        "map" => "a mapping".to_string(),
        "sequence" => "a list".to_string(),
        // A long string is not quoted: it can be a key or a code in the wrong place.
        text => match text
            .strip_prefix("string \"")
            .and_then(|t| t.strip_suffix('"'))
        {
            Some(string) if string.chars().count() > MAX_QUOTED => {
                format!("a string of {} characters", string.chars().count())
            }
            Some(string) => format!("\"{string}\""),
            None => text.to_string(),
        },
    };
    let expected = match expected {
        "u16" => "a number from 0 to 65535",
        "u8" | "u32" | "u64" | "usize" => "a number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "a boolean" => "true or false",
        "a sequence" => "a list",
        "a map" => "a mapping",
        struct_name if struct_name.starts_with("struct ") => "a mapping",
        other => other,
    };
    format!("must be {expected}, found {found}")
}

/// Reads a YAML stream (one or more `---`-separated documents). `source_name` (a file path, or
/// `<stdin>`) is used in messages, with the document and line of a problem. Each object is
/// validated on its own; see [`SiteResources`](super::SiteResources) for the checks across
/// objects.
pub fn parse_documents(text: &str, source_name: &str) -> Result<ParsedDocuments, ResourceError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|error| ResourceError::Yaml {
            place: Place {
                source_name: source_name.to_string(),
                line: error.location().map(|l| l.line()),
                column: error.location().map(|l| l.column()),
                ..Place::default()
            },
            message: UserMessageFormatter.format_message(&error).into_owned(),
        })?;
    let mut parsed = ParsedDocuments::default();
    for (index, value) in documents.into_iter().enumerate() {
        let document = index + 1;
        // The line is looked up only for a refused document (the stream is read again).
        let place = |field: &str| Place {
            source_name: source_name.to_string(),
            document: Some(document),
            line: line_of(text, document, field),
            column: None,
        };
        let problem = |field: &str, problem: String| ResourceError::Document {
            place: place(field),
            problem,
        };
        let map = match &value {
            Value::Null => continue,
            Value::Object(map) => map,
            _ => {
                return Err(problem(
                    "",
                    "expected a mapping with apiVersion and kind".into(),
                ))
            }
        };
        let text_field = |field: &str| -> Result<String, ResourceError> {
            match map.get(field) {
                Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
                _ => Err(problem(
                    field,
                    format!("{field} is missing or not a string"),
                )),
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
                        place: place("kind"),
                        kind: kind.to_string(),
                    })
                }
                None => Ok(None),
            },
        };
        match resource {
            Ok(Some(resource)) => {
                resource.validate().map_err(|source| {
                    let field = match &source {
                        ResourceError::Invalid { field, .. } => field,
                        _ => "",
                    };
                    ResourceError::InDocument {
                        place: place(field),
                        source: Box::new(source),
                    }
                })?;
                parsed.resources.push(resource);
            }
            Ok(None) => parsed.skipped.push(skipped),
            Err((error, kind)) => {
                let field = error.path().to_string();
                return Err(ResourceError::InDocument {
                    place: place(&field),
                    source: Box::new(ResourceError::Shape {
                        object: ObjectRef { kind, name },
                        problem: shape_problem(error.inner()),
                        field,
                    }),
                });
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
        assert_eq!(
            error.to_string(),
            "test.yaml, line 3, column 18: not valid YAML: unclosed bracket '['"
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_with_its_line() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n\
                    apiVersion: skupper.io/v2alpha1\nkind: Link\nmetadata:\n  name: west\n\
                    spec:\n  endpoints:\n  - name: inter-router\n    host:\n    port: '1'\n";
        assert_eq!(
            parse(text).unwrap_err().to_string(),
            "test.yaml, document 2, line 12: Link/west: field `spec.endpoints[0].host` must be \
             a string, found nothing"
        );
        let error = parse(&text.replace("host:\n    port: '1'", "host: a\n    port: [1]"));
        let error = error.unwrap_err();
        assert_eq!(
            error.to_string(),
            "test.yaml, document 2, line 13: Link/west: field `spec.endpoints[0].port` must be \
             a string, found a list"
        );
        let error = parse(&text.replace("name: inter-router\n    host:", "name: 5\n    host: a"));
        assert!(
            error
                .unwrap_err()
                .to_string()
                .contains("line 11: Link/west: field `spec.endpoints[0].name` must be a string, found integer `5`"),
        );
        let listener = "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata: {name: l}\n\
                        spec: {routingKey: k, host: 0.0.0.0, port: eighty}\n";
        assert_eq!(
            parse(listener).unwrap_err().to_string(),
            "test.yaml, document 1, line 4: Listener/l: field `spec.port` must be a number from 0 \
             to 65535, found \"eighty\""
        );
        let secret =
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: LS0tLS1CRUdJTiBFQw==\n";
        assert_eq!(
            parse(secret).unwrap_err().to_string(),
            "test.yaml, document 1, line 4: Secret/s: field `data` must be a mapping, found a string \
             of 20 characters"
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
                "test.yaml, document 1, line 2: unknown kind 'Sit' for apiVersion skupper.io/v2alpha1 \
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
            "test.yaml, document 1, line 1: kind is missing or not a string"
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
