//! Aether's stored copies of its keys (`api_keys.key_encrypted`): Fernet tokens, base64-encoded
//! once more, under a key derived from Aether's `ENCRYPTION_KEY`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use pbkdf2::pbkdf2_hmac;
use sha2::{Digest, Sha256};

/// PBKDF2 rounds of Aether's derivation.
const PBKDF2_ROUNDS: u32 = 100_000;
/// The text whose SHA-256 gives Aether's fixed salt (its first 16 bytes).
const SALT_SOURCE: &[u8] = b"aether-v1";

pub struct AetherCipher {
    fernet: fernet::Fernet,
}

impl std::fmt::Debug for AetherCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AetherCipher(<redacted>)")
    }
}

impl AetherCipher {
    /// The cipher of an Aether installation whose `ENCRYPTION_KEY` is `encryption_key`: the key
    /// itself when it is a Fernet key (padded URL-safe base64 of 32 bytes, which is what Python's
    /// `Fernet(key)` accepts), else PBKDF2-HMAC-SHA256 of it with Aether's fixed salt.
    pub fn new(encryption_key: &str) -> AetherCipher {
        let fernet_key = if is_fernet_key(encryption_key) {
            encryption_key.to_string()
        } else {
            let salt = &Sha256::digest(SALT_SOURCE)[..16];
            let mut derived = [0u8; 32];
            pbkdf2_hmac::<Sha256>(encryption_key.as_bytes(), salt, PBKDF2_ROUNDS, &mut derived);
            URL_SAFE.encode(derived)
        };
        let fernet = fernet::Fernet::new(&fernet_key).expect("URL-safe base64 of 32 bytes is a Fernet key");
        AetherCipher { fernet }
    }

    /// The plaintext of a stored copy, or why it cannot be read.
    pub fn decrypt(&self, stored: &str) -> Result<String, &'static str> {
        let token = URL_SAFE.decode(stored.trim()).map_err(|_| "the stored copy is not base64")?;
        let token = String::from_utf8(token).map_err(|_| "the stored copy is not a Fernet token")?;
        let plaintext =
            self.fernet.decrypt(&token).map_err(|_| "the stored copy does not decrypt with this encryption key")?;
        String::from_utf8(plaintext).map_err(|_| "the stored copy decrypts to bytes that are not text")
    }
}

fn is_fernet_key(text: &str) -> bool {
    URL_SAFE.decode(text).is_ok_and(|bytes| bytes.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by Python's `cryptography` as Aether does: `urlsafe_b64encode(Fernet(key).encrypt(…))`.
    const UNDER_DEV_KEY: &str = "Z0FBQUFBQnJGcWVUeDltUDdFTmI5cE5QakNYTkFDWDkwbDNRYWJOSTJtdlBOQWx3YXMxbG4teTBlS0FLVnEtalFmWFMzcDhwRUVwcXdGUnl4cS1xeVp3Yk1vOFVndkthQ2NVSHpneW5DZTJrei04YVhfOV9RTk81TlV0NXp0UTlqc05YeXhRbnNEblJnOEtxYl93UGZKMHJhNVVFcmtGOFpBPT0=";
    const FERNET_KEY: &str = "TECMczqm0ciJSwxmDxZSWnzVNXQjniw6LpBeYYQ2xYs=";
    const UNDER_FERNET_KEY: &str = "Z0FBQUFBQnJGcWVUbVE4NzlKUHV6UURLVUtpeXRkNldJbGlEeENQTFZWYlBPVTBQVk1EQTRhbUFlRGxiTmQxQllsZDJBeHJ4OG81MFdlcWkzSFlzOUJCMjI3aVNEdVB1bmF1WFFVSTlpZWZZbFI3VXk5X3NLZVBsMkJuRlBySm5Na1pSQ2VpUUxkazl5cUxtaV90UWZpWDFJbFpLZ1pVNjN3PT0=";

    #[test]
    fn copies_made_by_aether_decrypt_on_both_derivations() {
        let dev = AetherCipher::new("dev-encryption-key-do-not-use-in-production");
        assert_eq!(dev.decrypt(UNDER_DEV_KEY).unwrap(), "sk-AetherDevKey_0123456789-abcdefghijklmnopqrstuvwxyzAB");
        let fernet = AetherCipher::new(FERNET_KEY);
        assert_eq!(fernet.decrypt(UNDER_FERNET_KEY).unwrap(), "sk-Fernet_Key-Path_0123456789abcdefghijklmnopqrstuvw");
    }

    #[test]
    fn a_wrong_key_or_a_damaged_copy_says_so() {
        let other = AetherCipher::new("another-key");
        assert_eq!(other.decrypt(UNDER_DEV_KEY), Err("the stored copy does not decrypt with this encryption key"));
        assert_eq!(other.decrypt("not base64 at all!"), Err("the stored copy is not base64"));
        // Aether's own generator makes 43 unpadded characters: not a Fernet key to Python, so derived.
        let unpadded = FERNET_KEY.trim_end_matches('=');
        assert!(AetherCipher::new(unpadded).decrypt(UNDER_FERNET_KEY).is_err());
    }
}
