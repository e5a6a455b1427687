//! Files a person hands vansite to read (`apply -f`, `delete -f`, token and link files, TLS
//! files; `-` for standard input), read as text with a size limit.
//!
//! The limit is checked before reading where the file says its size, and the read itself
//! stops one byte past it (pipes, devices and growing files say nothing true about their
//! size): a wrong or hostile file costs at most [`MAX_INPUT_BYTES`] of memory and never a
//! whole read.

use std::io::Read;
use std::path::Path;

/// The largest file vansite reads from a person: 1 MiB. A site's whole resource stream, a
/// token (a few KiB: a CA and a code) or a Link with its Secret (certificates and a key) is
/// far smaller.
pub const MAX_INPUT_BYTES: u64 = 1 << 20;

/// What was read: the text, and the name messages call it by (the path, or `<stdin>`).
#[derive(Debug, Clone, PartialEq)]
pub struct InputText {
    pub name: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {name}: {source}")]
    Read {
        name: String,
        source: std::io::Error,
    },
    #[error(
        "{name} is larger than {} MiB, the most vansite reads from a file: is it the right one? \
         (expected {expected}, which is far smaller)",
        limit >> 20
    )]
    TooLarge {
        name: String,
        limit: u64,
        expected: &'static str,
    },
    #[error("{name} is not a text file: expected {expected}")]
    NotText {
        name: String,
        expected: &'static str,
    },
}

/// Reads `path` (`-`: standard input) as text of at most [`MAX_INPUT_BYTES`]; `expected` says
/// what the file should hold, for messages ("a token or link in YAML").
pub fn read_text(path: &Path, expected: &'static str) -> Result<InputText, InputError> {
    if path.as_os_str() == "-" {
        return read_stdin(expected);
    }
    let name = path.display().to_string();
    let read_error = |source| InputError::Read {
        name: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if metadata.is_file() && metadata.len() > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge {
            name,
            limit: MAX_INPUT_BYTES,
            expected,
        });
    }
    read_bounded(file, name, expected)
}

/// Reads standard input as text of at most [`MAX_INPUT_BYTES`].
pub fn read_stdin(expected: &'static str) -> Result<InputText, InputError> {
    read_bounded(std::io::stdin().lock(), "<stdin>".into(), expected)
}

fn read_bounded(
    reader: impl Read,
    name: String,
    expected: &'static str,
) -> Result<InputText, InputError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Read {
            name: name.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge {
            name,
            limit: MAX_INPUT_BYTES,
            expected,
        });
    }
    // NUL is valid UTF-8 but never in YAML or PEM text: a binary file that happens to decode.
    match String::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => Ok(InputText { name, text }),
        _ => Err(InputError::NotText { name, expected }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECTED: &str = "a test file";

    fn temp_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vansite-input-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_file_larger_than_the_limit_is_refused_by_its_size() {
        let dir = temp_dir("a");
        let path = dir.join("big.yaml");
        // Sparse: 267 MB that read whole would be allocated and scanned.
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(267_000_000).unwrap();
        let error = read_text(&path, EXPECTED).unwrap_err();
        assert!(matches!(error, InputError::TooLarge { .. }), "{error:?}");
        assert!(error.to_string().contains("larger than 1 MiB"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_endless_stream_is_read_only_to_the_limit() {
        // A character device: no size to check first, and without the cap the read never ends.
        let error = read_text(Path::new("/dev/zero"), EXPECTED).unwrap_err();
        assert!(matches!(error, InputError::TooLarge { .. }), "{error:?}");
    }

    #[test]
    fn binary_files_are_not_text() {
        let dir = temp_dir("binary");
        for (name, bytes) in [
            ("invalid-utf8", &b"\xff\xfe ab"[..]),
            ("nul", b"kind: Site\0"),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            let error = read_text(&path, EXPECTED).unwrap_err();
            assert!(matches!(error, InputError::NotText { .. }), "{error:?}");
            assert!(
                error.to_string().contains("expected a test file"),
                "{error}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn text_at_the_limit_is_read() {
        let dir = temp_dir("text");
        let path = dir.join("full.yaml");
        std::fs::write(&path, "#".repeat(MAX_INPUT_BYTES as usize)).unwrap();
        let read = read_text(&path, EXPECTED).unwrap();
        assert_eq!(read.text.len() as u64, MAX_INPUT_BYTES);
        assert_eq!(read.name, path.display().to_string());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
