//! The console's access token: a random secret in the site's runtime directory (0600), made
//! once, presented as `?token=` (the URL `vansite console --print-url` prints, as Jupyter
//! does), as `Authorization: Bearer`, or as the cookie the page gets after a valid `?token=`.

use std::path::Path;

use crate::grants::code::{code_matches, new_secret};
use crate::store::files;

use super::ConsoleError;

/// About 190 bits.
const TOKEN_LENGTH: usize = 32;

/// The token. Its `Debug` hides it: no secret in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleToken(String);

impl std::fmt::Debug for ConsoleToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleToken(…)")
    }
}

impl ConsoleToken {
    /// The token in `path`, made there first when there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, ConsoleError> {
        if path.exists() {
            return Self::load(path);
        }
        let token = ConsoleToken(new_secret(TOKEN_LENGTH));
        files::write_atomic(path, token.0.as_bytes(), files::SECRET).map_err(|source| {
            ConsoleError::WriteToken {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(token)
    }

    pub fn load(path: &Path) -> Result<Self, ConsoleError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConsoleError::ReadToken {
            path: path.to_path_buf(),
            source,
        })?;
        let text = text.trim();
        if text.len() < TOKEN_LENGTH || !text.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ConsoleError::BadToken {
                path: path.to_path_buf(),
            });
        }
        Ok(ConsoleToken(text.to_string()))
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        code_matches(&self.0, presented.as_bytes())
    }

    /// The secret itself, for the URL that carries it.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn made_once_private_and_matched_exactly() {
        let dir = std::env::temp_dir().join(format!("vansite-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("console.token");
        let token = ConsoleToken::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(ConsoleToken::load_or_create(&path).unwrap(), token);
        assert_eq!(token.reveal().len(), TOKEN_LENGTH);

        assert!(token.matches(token.reveal()));
        assert!(!token.matches(""));
        assert!(!token.matches(&token.reveal()[1..]));
        assert!(!token.matches(&format!("{}x", token.reveal())));
        assert!(!format!("{token:?}").contains(token.reveal()));

        std::fs::write(&path, "short").unwrap();
        assert!(matches!(
            ConsoleToken::load(&path),
            Err(ConsoleError::BadToken { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
