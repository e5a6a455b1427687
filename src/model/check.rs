//! Checks of single values that several kinds share (names, hosts, ports, types).

use std::net::IpAddr;

use super::ResourceError;

/// Builds the [`ResourceError::Invalid`] for one field of the object being validated.
pub(super) type Invalid<'a> = &'a dyn Fn(&'static str, String) -> ResourceError;

pub(super) fn require(
    field: &'static str,
    value: &str,
    invalid: Invalid,
) -> Result<(), ResourceError> {
    if value.is_empty() {
        Err(invalid(field, "is required".into()))
    } else {
        Ok(())
    }
}

/// RFC 1123 label, as Skupper's validator (`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`) plus the 63-character limit.
pub fn check_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let valid_chars = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let valid_ends = matches!((bytes.first(), bytes.last()), (Some(first), Some(last))
        if *first != b'-' && *last != b'-');
    if !valid_chars || !valid_ends {
        return Err(format!(
            "'{name}' is not a valid name: use lower case letters, digits and '-', starting and ending with a letter or digit (e.g. 'my-name')"
        ));
    }
    if name.len() > 63 {
        return Err(format!(
            "'{name}' is {} characters long; at most 63 are allowed",
            name.len()
        ));
    }
    Ok(())
}

/// A listener or connector host: an IP address or a lower-case host name (Skupper's `hostnameRfc1123Regex`).
pub(super) fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let valid = host.split(['.', '-']).all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    }) && !host.contains("..")
        && !host.contains("--")
        && !host.contains(".-")
        && !host.contains("-.");
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{host}' is neither an IP address nor a valid lower-case host name"
        ))
    }
}

pub(super) fn check_port_text(port: &str) -> Result<(), String> {
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(format!("'{port}' is not a port number (1-65535)")),
    }
}

pub(super) fn check_tcp_type(value: &str) -> Result<(), String> {
    if matches!(value, "" | "tcp") {
        Ok(())
    } else {
        Err(format!("'{value}' is not supported; only tcp"))
    }
}

pub(super) fn check_observer(observer: &str) -> Result<(), String> {
    if matches!(observer, "" | "auto" | "none" | "http1" | "http2") {
        Ok(())
    } else {
        Err(format!(
            "'{observer}' is not one of auto, none, http1, http2"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse, SITE};
    use super::*;

    #[test]
    fn bad_name_is_an_error_naming_object_and_field() {
        let error = parse(&SITE.replace("name: west", "name: West_1")).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(
                "test.yaml, document 1, line 4: Site/West_1: metadata.name: 'West_1' is not a valid name"
            ),
            "{text}"
        );
        assert!(check_name(&"a".repeat(64))
            .unwrap_err()
            .contains("at most 63"));
        assert!(check_name(&"a".repeat(63)).is_ok());
        assert!(check_name("-a").is_err() && check_name("a-").is_err() && check_name("").is_err());
    }

    #[test]
    fn listener_host_must_be_ip_or_hostname() {
        assert!(check_host("backend.svc-1.local").is_ok());
        assert!(check_host("::1").is_ok());
        for bad in ["Backend", "a..b", "-a", "a b", ""] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }
}
