//! API key material: generation from the system's secure random source, the `wg_` format,
//! and the SHA-256 digest that is the only form ever stored.

use ring::rand::{SecureRandom, SystemRandom};

/// Every key starts with this, so leaked keys are easy to spot (secret scanners, logs).
pub const KEY_PREFIX: &str = "wg_";
/// Random characters after the prefix: 40 of 62 possible, about 238 bits.
const KEY_RANDOM_CHARS: usize = 40;
/// Characters of a key shown in listings to tell keys apart: the prefix and 6 more.
pub const SHOWN_CHARS: usize = KEY_PREFIX.len() + 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a key cannot be made or taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The system's random source failed.
    #[error("the system's random source failed")]
    Random,
    /// A key given from outside (`WAYGATE_ADMIN_KEY`) is not in Waygate's format.
    #[error("a key must be \"wg_\" followed by at least 32 letters and digits")]
    Format,
}

/// A new random key.
///
/// # Errors
///
/// [`KeyError::Random`].
pub fn generate() -> Result<String, KeyError> {
    let random = SystemRandom::new();
    let mut key = String::with_capacity(KEY_PREFIX.len() + KEY_RANDOM_CHARS);
    key.push_str(KEY_PREFIX);
    let mut buffer = [0u8; 64];
    while key.len() < KEY_PREFIX.len() + KEY_RANDOM_CHARS {
        random.fill(&mut buffer).map_err(|_| KeyError::Random)?;
        // Bytes at or above 248 (4 × 62) are skipped so every character is equally likely.
        for byte in buffer.iter().filter(|b| **b < 248) {
            if key.len() == KEY_PREFIX.len() + KEY_RANDOM_CHARS {
                break;
            }
            key.push(ALPHABET[usize::from(*byte % 62)] as char);
        }
    }
    Ok(key)
}

/// Checks a key supplied by an operator.
///
/// # Errors
///
/// [`KeyError::Format`].
pub fn check_format(key: &str) -> Result<(), KeyError> {
    let random = key.strip_prefix(KEY_PREFIX).ok_or(KeyError::Format)?;
    if random.len() >= 32 && random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(KeyError::Format)
    }
}

/// SHA-256 of the key. Keys carry over 190 bits of entropy, so a fast hash is enough: no
/// dictionary or brute force reaches them, which a slow hash exists to stop.
pub fn digest(key: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The digest as stored: lowercase hex.
pub fn digest_hex(key: &str) -> String {
    crate::hex::encode(&digest(key))
}

/// What listings show of a key.
pub fn shown_part(key: &str) -> &str {
    key.get(..SHOWN_CHARS).unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_well_formed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        check_format(&a).unwrap();
        assert_eq!(shown_part(&a).len(), 9);
        assert_eq!(check_format("wg_short"), Err(KeyError::Format));
        assert_eq!(
            check_format(&a.replace("wg_", "xx_")),
            Err(KeyError::Format)
        );
    }

    #[test]
    fn digests_compare() {
        let a = digest("wg_a");
        assert_eq!(a, digest("wg_a"));
        assert_ne!(a, digest("wg_b"));
        assert_eq!(digest_hex("wg_a").len(), 64);
    }
}
