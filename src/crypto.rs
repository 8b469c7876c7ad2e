//! Key generation, lookup hashing, and sealing of plaintext keys under the master key.

use std::fmt::Write as _;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const KEY_RANDOM_CHARS: usize = 32;
const SEALED_PREFIX: &str = "v1:";
/// Stored in place of a sealed copy when keytop never had the plaintext (a key imported without
/// a readable copy), followed by why: the key still verifies by its hash, and reveal says why not.
const NO_COPY_PREFIX: &str = "none:";
/// Random characters of a key made by Aether's later releases: URL-safe base64, `-` and `_` included.
const AETHER_KEY_RANDOM_CHARS: usize = 48;
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the master key is not valid base64 of 32 bytes ({0})")]
    BadMasterKey(String),
    #[error(
        "cannot decrypt this key with the current master key (it was sealed under another one, or the stored value is damaged)"
    )]
    WrongMasterKey,
    #[error("the stored ciphertext is not in a known format")]
    UnknownFormat,
    #[error("no copy of its plaintext is stored: {0}")]
    NoStoredCopy(String),
}

/// A new random plaintext key: `PREFIX-` + 32 characters of `[A-Za-z0-9]` from the OS source.
pub fn generate_key(prefix: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + 1 + KEY_RANDOM_CHARS);
    key.push_str(prefix);
    key.push('-');
    // Rejection sampling keeps every character equally likely: bytes of 248 and above would
    // favour the first symbols, so they are drawn again. One read of the OS source usually
    // suffices.
    let limit = (256 / KEY_ALPHABET.len() * KEY_ALPHABET.len()) as u8;
    let mut filled = 0;
    while filled < KEY_RANDOM_CHARS {
        let mut bytes = [0u8; 48];
        OsRng.fill_bytes(&mut bytes);
        for byte in bytes.into_iter().filter(|b| *b < limit).take(KEY_RANDOM_CHARS - filled) {
            key.push(KEY_ALPHABET[usize::from(byte) % KEY_ALPHABET.len()] as char);
            filled += 1;
        }
    }
    key
}

/// Lowercase hex SHA-256 of the plaintext: the lookup hash (compatible with Aether's `key_hash`).
pub fn hash_key(plaintext: &str) -> String {
    Sha256::digest(plaintext.as_bytes()).iter().fold(String::with_capacity(64), |mut hex, byte| {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// Whether `text` has the shape of a plaintext key with this prefix: keytop's own (16 or more
/// letters and digits after `PREFIX-`) or Aether's (48 URL-safe characters after it). Used to keep
/// a key pasted in the wrong place out of messages and logs.
pub fn looks_like_plaintext(prefix: &str, text: &str) -> bool {
    let Some(body) = text.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('-')) else {
        return false;
    };
    let url_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    (body.len() >= 16 && body.chars().all(|c| c.is_ascii_alphanumeric()))
        || (body.len() == AETHER_KEY_RANDOM_CHARS && body.chars().all(url_safe))
}

/// What the ciphertext column holds for a key whose plaintext keytop does not have, and `why`.
pub fn no_stored_copy(why: &str) -> String {
    format!("{NO_COPY_PREFIX}{why}")
}

/// Whether a stored ciphertext is a [`no_stored_copy`] marker rather than a sealed key.
pub fn is_no_stored_copy(stored: &str) -> bool {
    stored.starts_with(NO_COPY_PREFIX)
}

/// The display hint: first 10 characters, `...`, last 4 (`sk-AbCdEfG...wxyz`).
pub fn key_hint(plaintext: &str) -> String {
    let chars: Vec<char> = plaintext.chars().collect();
    if chars.len() <= 14 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..10].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

/// The 32-byte AES-256-GCM master key. Its `Debug` output never shows the bytes.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random master key, returned with its base64 text.
    pub fn generate() -> (MasterKey, String) {
        let mut bytes = [0u8; 32];
        OsRng.fill(&mut bytes);
        let text = BASE64.encode(bytes);
        (MasterKey::from_bytes(&bytes), text)
    }

    /// Parses the base64 text of 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<MasterKey, CryptoError> {
        let bytes =
            BASE64.decode(text.trim()).map_err(|_| CryptoError::BadMasterKey("it does not decode as base64".into()))?;
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadMasterKey(format!("it decodes to {} bytes, not 32", bytes.len())))?;
        Ok(MasterKey::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        MasterKey { cipher: Aes256Gcm::new(bytes.into()) }
    }

    /// Seals a plaintext key, bound to its key id: `v1:` + base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, key_id: Uuid, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill(&mut nonce);
        let payload = Payload { msg: plaintext.as_bytes(), aad: key_id.as_bytes() };
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encryption of a short key cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", BASE64.encode(blob))
    }

    /// Opens what [`MasterKey::seal`] produced for the same key id.
    pub fn open(&self, key_id: Uuid, sealed: &str) -> Result<String, CryptoError> {
        if let Some(why) = sealed.strip_prefix(NO_COPY_PREFIX) {
            return Err(CryptoError::NoStoredCopy(why.to_string()));
        }
        let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or(CryptoError::UnknownFormat)?;
        let blob = BASE64.decode(encoded).map_err(|_| CryptoError::UnknownFormat)?;
        if blob.len() <= NONCE_LEN {
            return Err(CryptoError::UnknownFormat);
        }
        let (nonce, body) = blob.split_at(NONCE_LEN);
        let payload = Payload { msg: body, aad: key_id.as_bytes() };
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), payload).map_err(|_| CryptoError::WrongMasterKey)?;
        String::from_utf8(plain).map_err(|_| CryptoError::UnknownFormat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_expected_shape() {
        let key = generate_key("sk");
        assert_eq!(key.len(), 35);
        assert!(key.starts_with("sk-"));
        assert!(key[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(generate_key("sk"), key);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn hint_shows_head_and_tail() {
        assert_eq!(key_hint("sk-AbCdEfGhIjKlMnOpQrStUvWxYz012345wxyz"), "sk-AbCdEfG...wxyz");
    }

    #[test]
    fn seal_round_trips_and_is_bound_to_key_and_id() {
        let (master, text) = MasterKey::generate();
        let id = Uuid::new_v4();
        let sealed = master.seal(id, "sk-secret");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("sk-secret"));
        assert_eq!(master.open(id, &sealed).unwrap(), "sk-secret");
        assert_eq!(MasterKey::from_base64(&text).unwrap().open(id, &sealed).unwrap(), "sk-secret");
        assert_eq!(master.open(Uuid::new_v4(), &sealed), Err(CryptoError::WrongMasterKey));
        let (other, _) = MasterKey::generate();
        assert_eq!(other.open(id, &sealed), Err(CryptoError::WrongMasterKey));
        assert!(!format!("{master:?}").contains(&text));
    }

    #[test]
    fn plaintext_shapes_of_keytop_and_aether_are_recognised() {
        assert!(looks_like_plaintext("sk", &generate_key("sk")));
        let aether = format!("sk-{}", "Ab-_9".repeat(9) + "xyz");
        assert_eq!(aether.len(), 51);
        assert!(looks_like_plaintext("sk", &aether));
        assert!(!looks_like_plaintext("sk", &aether[..50]), "47 URL-safe characters are not a key");
        assert!(!looks_like_plaintext("sk", "sk-nightly-build-runner"));
        assert!(!looks_like_plaintext("sk", "search-prod"));
        assert!(!looks_like_plaintext("pk", &aether));
    }

    #[test]
    fn a_missing_copy_says_why_when_opened() {
        let (master, _) = MasterKey::generate();
        let stored = no_stored_copy("imported without the encryption key");
        assert!(is_no_stored_copy(&stored) && !is_no_stored_copy(&master.seal(Uuid::new_v4(), "sk-x")));
        assert_eq!(
            master.open(Uuid::new_v4(), &stored),
            Err(CryptoError::NoStoredCopy("imported without the encryption key".into()))
        );
    }

    #[test]
    fn bad_master_keys_are_explained() {
        assert!(matches!(MasterKey::from_base64("not base64!"), Err(CryptoError::BadMasterKey(_))));
        assert!(
            matches!(MasterKey::from_base64("c2hvcnQ="), Err(CryptoError::BadMasterKey(m)) if m.contains("5 bytes"))
        );
    }
}
