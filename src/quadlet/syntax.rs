//! The unit-file syntax quadlet reads (systemd.syntax(7), as implemented by podman's own parser
//! `pkg/systemd/parser`): `[Section]` headers and `Key=value` lines, values written so that what
//! podman or systemd finally sees is exactly the intended string.
//!
//! Two layers interpret a value. Quadlet reads the line (a trailing `\` continues it; leading and
//! trailing whitespace is dropped) and, for word-list keys (`Environment=`, `Label=`,
//! `PodmanArgs=`, `Exec=`), splits it into words with systemd quoting and C escapes. Then systemd
//! reads the generated unit, expanding `%` specifiers everywhere and `$` variables in command
//! lines — and every `[Container]` value ends up in `ExecStart=`. So a literal `%` is written
//! `%%` everywhere and a literal `$` is written `$$` in command-line values.

use super::QuadletError;

/// Where a value ends up after quadlet, deciding which characters systemd would reinterpret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A plain unit setting (`Description=`, `StandardOutput=`…): `%` specifiers expand.
    Setting,
    /// Part of a command line (`ExecStart=` built from `[Container]`, `ExecStartPre=`): `%`
    /// specifiers and `$` variables expand.
    CommandLine,
}

/// A value taken verbatim by quadlet (one string per line, no splitting).
pub(crate) fn single(key: &str, value: &str, target: Target) -> Result<String, QuadletError> {
    check_characters(key, value)?;
    if value.trim() != value || value.is_empty() {
        return Err(invalid(
            key,
            value,
            "it is empty or starts or ends with whitespace",
        ));
    }
    if value.ends_with('\\') {
        return Err(invalid(
            key,
            value,
            "a trailing backslash continues the line",
        ));
    }
    if value.starts_with('"') || value.ends_with('"') {
        return Err(invalid(key, value, "quadlet strips surrounding quotes"));
    }
    Ok(escape_expansions(value, target))
}

/// Values split into words by quadlet (and systemd): each word quoted when it needs to be.
pub(crate) fn words<S: AsRef<str>>(
    key: &str,
    words: &[S],
    target: Target,
) -> Result<String, QuadletError> {
    let mut line = String::new();
    for word in words {
        let word = word.as_ref();
        check_characters(key, word)?;
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&quote_word(&escape_expansions(word, target)));
    }
    Ok(line)
}

/// Unit names in dependency lists (`After=`, `WantedBy=`): systemd's unit-name characters only.
pub(crate) fn unit_names(key: &str, names: &[String]) -> Result<String, QuadletError> {
    for name in names {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":-_.@".contains(c));
        if !valid {
            return Err(invalid(
                key,
                name,
                "a unit name has only ASCII letters, digits and `:-_.@`",
            ));
        }
    }
    Ok(names.join(" "))
}

/// Writes one section; nothing for a section without keys.
pub(crate) fn write_section(out: &mut String, name: &str, entries: &[(&str, String)]) {
    if entries.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push('[');
    out.push_str(name);
    out.push_str("]\n");
    for (key, value) in entries {
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
}

/// Control characters (newlines above all) cannot be written on one line: refused.
fn check_characters(key: &str, value: &str) -> Result<(), QuadletError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(
            key,
            value,
            "it contains a newline or another control character",
        ));
    }
    Ok(())
}

fn escape_expansions(value: &str, target: Target) -> String {
    let value = value.replace('%', "%%");
    match target {
        Target::Setting => value,
        Target::CommandLine => value.replace('$', "$$"),
    }
}

/// Systemd word quoting: double quotes around words with whitespace, quotes or backslashes,
/// `\\` and `\"` inside; an empty word is `""`.
fn quote_word(word: &str) -> String {
    let needs_quotes = word.is_empty()
        || word
            .chars()
            .any(|c| c.is_whitespace() || "\"'\\".contains(c));
    if !needs_quotes {
        return word.to_string();
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('"');
    for c in word.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

fn invalid(key: &str, value: &str, reason: &str) -> QuadletError {
    QuadletError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_bare() {
        let line = words(
            "PodmanArgs",
            &["--userns=keep-id", "-q"],
            Target::CommandLine,
        );
        assert_eq!(line.unwrap(), "--userns=keep-id -q");
    }

    #[test]
    fn words_with_spaces_quotes_and_backslashes_are_quoted_and_escaped() {
        let line = words(
            "Environment",
            &["A=b c", r#"Q=say "hi""#, r"P=C:\dir", "S=it's", ""],
            Target::CommandLine,
        );
        assert_eq!(
            line.unwrap(),
            r#""A=b c" "Q=say \"hi\"" "P=C:\\dir" "S=it's" """#
        );
    }

    #[test]
    fn percent_is_doubled_and_dollar_only_on_command_lines() {
        assert_eq!(
            single("Description", "100% $HOME", Target::Setting).unwrap(),
            "100%% $HOME"
        );
        assert_eq!(
            words("Environment", &["A=50%$x"], Target::CommandLine).unwrap(),
            "A=50%%$$x"
        );
    }

    #[test]
    fn newlines_and_control_characters_are_refused() {
        for value in ["a\nb", "a\rb", "tab\there"] {
            let error = single("Description", value, Target::Setting).unwrap_err();
            assert!(error.to_string().contains("newline"), "{error}");
            assert!(words("Exec", &[value], Target::CommandLine).is_err());
        }
    }

    #[test]
    fn single_values_that_quadlet_would_alter_are_refused() {
        for value in ["", " lead", "trail ", r"end\", "\"quoted\""] {
            assert!(
                single("Image", value, Target::CommandLine).is_err(),
                "{value:?}"
            );
        }
        assert_eq!(
            single("Volume", "/a b/c:/d", Target::CommandLine).unwrap(),
            "/a b/c:/d"
        );
    }

    #[test]
    fn unit_names_are_checked() {
        let names = ["default.target".to_string(), "a@b.service".to_string()];
        assert_eq!(
            unit_names("WantedBy", &names).unwrap(),
            "default.target a@b.service"
        );
        assert!(unit_names("After", &["two words".to_string()]).is_err());
        assert!(unit_names("After", &[String::new()]).is_err());
    }

    #[test]
    fn empty_sections_are_left_out() {
        let mut out = String::new();
        write_section(&mut out, "Unit", &[]);
        write_section(&mut out, "Container", &[("Image", "x".into())]);
        write_section(
            &mut out,
            "Install",
            &[("WantedBy", "default.target".into())],
        );
        assert_eq!(
            out,
            "[Container]\nImage=x\n\n[Install]\nWantedBy=default.target\n"
        );
    }
}
