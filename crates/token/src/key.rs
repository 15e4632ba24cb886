//! Secrets, kept only as ready-keyed HMAC states.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{Hour, payload};

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Why a key or key set could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The secret has no bytes: every holder of the value could mint tokens.
    #[error("the secret is empty")]
    Empty,
    /// A verifier needs at least one key.
    #[error("no secret given")]
    NoKeys,
}

/// One secret, held as an HMAC-SHA256 state that has already absorbed the key.
///
/// Keying once and cloning the state per token saves hashing the padded key on every mint and
/// verify. `Debug` never prints key material.
#[derive(Clone)]
pub struct Key {
    keyed: HmacSha256,
}

impl Key {
    /// A key from the secret's bytes (Node.js uses a string secret's UTF-8 bytes).
    pub fn new(secret: &[u8]) -> Result<Key, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::Empty);
        }
        let keyed = HmacSha256::new_from_slice(secret).map_err(|_| KeyError::Empty)?;
        Ok(Key { keyed })
    }

    /// HMAC of the payload for `hour` and `value`, not yet finalised.
    pub(crate) fn mac(&self, hour: Hour, value: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        payload::feed(hour, value, &mut |piece| mac.update(piece));
        mac
    }

    /// Whether `presented` is this key's tag for `hour` and `value`, compared in constant time.
    pub(crate) fn matches(&self, hour: Hour, value: &str, presented: &[u8; 32]) -> bool {
        self.mac(hour, value).verify_slice(presented).is_ok()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// The keys a verifier accepts, in order: the first signs, any of them verifies. Several keys
/// let an operator rotate a secret without a window in which valid tokens are refused.
#[derive(Clone, Debug)]
pub struct Keys {
    keys: Vec<Key>,
}

impl Keys {
    /// A non-empty key set.
    pub fn new(keys: Vec<Key>) -> Result<Keys, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Keys { keys })
    }

    /// The key that mints new tokens.
    pub fn signing(&self) -> &Key {
        &self.keys[0]
    }

    /// All keys, signing key first.
    pub fn iter(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }

    /// How many keys there are (at least one).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a key set is never empty. Present for API completeness.
    pub fn is_empty(&self) -> bool {
        false
    }
}
