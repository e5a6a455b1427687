//! Grant codes and names: random strings from the operating system's CSPRNG, and the
//! constant-time comparison a presented code gets.

use subtle::ConstantTimeEq;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER_ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a grant code, as Skupper's (`utils.RandomId(24)`): 24 × log2(62) ≈ 143 bits.
pub const CODE_LENGTH: usize = 24;

/// A new grant code: 24 characters of `[a-zA-Z0-9]`, uniformly drawn.
pub fn new_code() -> String {
    new_secret(CODE_LENGTH)
}

/// A random suffix for default names (RFC 1123: lower case and digits).
pub fn name_suffix(length: usize) -> String {
    random_string(LOWER_ALPHANUMERIC, length)
}

/// A secret of `length` characters of `[a-zA-Z0-9]` (about 5.95 bits each), uniformly drawn.
pub fn new_secret(length: usize) -> String {
    random_string(ALPHANUMERIC, length)
}

/// Whether `presented` is `expected`, in time that does not depend on where they differ.
pub fn code_matches(expected: &str, presented: &[u8]) -> bool {
    expected.as_bytes().ct_eq(presented).into()
}

/// `length` characters from `alphabet` (at most 256 entries), by rejection sampling so that
/// every character is equally likely.
fn random_string(alphabet: &[u8], length: usize) -> String {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(length);
    let mut buffer = [0u8; 64];
    while out.len() < length {
        // The OS generator failing is not something vansite can recover from.
        getrandom::fill(&mut buffer).expect("the operating system's random number generator");
        for byte in buffer {
            if (byte as usize) < limit && out.len() < length {
                out.push(alphabet[byte as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_24_alphanumerics_and_differ() {
        let a = new_code();
        let b = new_code();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
        let suffix = name_suffix(8);
        assert!(suffix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }

    #[test]
    fn every_character_is_drawn() {
        let many: String = (0..200).map(|_| new_code()).collect();
        for c in ALPHANUMERIC {
            assert!(many.contains(*c as char), "{} never drawn", *c as char);
        }
    }

    #[test]
    fn comparison_needs_the_exact_code() {
        assert!(code_matches(
            "L1qCl2mZ7D81gbXp3ax4YT0K",
            b"L1qCl2mZ7D81gbXp3ax4YT0K"
        ));
        assert!(!code_matches(
            "L1qCl2mZ7D81gbXp3ax4YT0K",
            b"L1qCl2mZ7D81gbXp3ax4YT0k"
        ));
        assert!(!code_matches(
            "L1qCl2mZ7D81gbXp3ax4YT0K",
            b"L1qCl2mZ7D81gbXp3ax4YT0"
        ));
        assert!(!code_matches("L1qCl2mZ7D81gbXp3ax4YT0K", b""));
    }
}
