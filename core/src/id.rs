//! Identifiers and secrets, built from caller-supplied entropy.
//!
//! - session ids: `vsn_` + 22 base62 characters encoding 128 bits;
//! - API key ids: `key_` + 22 base62 characters (128 bits);
//! - API key secrets: `dock_` + 44 base62 characters encoding 256 bits;
//! - PIDs: chosen by the operator, validated by [`Pid::parse`].
//!
//! Every parser here rejects anything else, so only well-formed ids reach a store.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters needed to write any u128 in base62 (62^22 > 2^128).
const U128_DIGITS: usize = 22;

fn base62_u128(mut n: u128, out: &mut String) {
    let mut buf = [b'0'; U128_DIGITS];
    for slot in buf.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    // Every byte comes from ALPHABET, which is ASCII.
    out.extend(buf.iter().map(|&b| b as char));
}

/// A request id for `X-Request-Id` (and the request's log line): 24 hex
/// digits from the caller's entropy.
pub fn request_id(entropy: [u8; 12]) -> String {
    entropy.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a client's own `X-Request-Id` may be echoed and logged: 1 to 64
/// characters of letters, digits and `.` `_` `-` `:` (nothing a log or a
/// header could be forged with).
pub fn is_sane_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Decodes 22 base62 characters back to the u128 they encode, if they fit.
#[cfg(test)]
fn decode_base62_u128(s: &str) -> Option<u128> {
    let mut n: u128 = 0;
    for b in s.bytes() {
        let d = ALPHABET.iter().position(|&a| a == b)? as u128;
        n = n.checked_mul(62)?.checked_add(d)?;
    }
    Some(n)
}

/// Why an id did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("a session id is `vsn_` followed by 22 letters or digits")]
    Session,
    #[error("a key id is `key_` followed by 22 letters or digits")]
    Key,
    #[error("a PID is 1 to 64 characters from a-z, A-Z, 0-9, `-` and `_`")]
    Pid,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $err:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id from 16 bytes of caller-supplied entropy.
            pub fn from_entropy(entropy: [u8; 16]) -> Self {
                let mut s = String::with_capacity($prefix.len() + U128_DIGITS);
                s.push_str($prefix);
                base62_u128(u128::from_be_bytes(entropy), &mut s);
                $name(s)
            }

            /// Parses an id: the prefix and exactly 22 base62 characters.
            /// (Generated ids use 128 bits of the 62^22 ≈ 2^131 space; the
            /// parser accepts the whole space, as ids like the spec's example do.)
            pub fn parse(s: &str) -> Result<Self, IdError> {
                match s.strip_prefix($prefix) {
                    Some(rest)
                        if rest.len() == U128_DIGITS && is_base62(rest) =>
                    {
                        Ok($name(s.to_owned()))
                    }
                    _ => Err($err),
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

prefixed_id!(
    /// A verification session id, `vsn_` + 22 base62 characters (128 bits).
    SessionId, "vsn_", IdError::Session
);
prefixed_id!(
    /// An API key's public id, `key_` + 22 base62 characters (128 bits).
    KeyId, "key_", IdError::Key
);

/// A Dock Public Identifier: the tenant a session, key and link dataset belong to.
///
/// 1 to 64 characters from `[A-Za-z0-9_-]`: safe in URLs, in Redis keys and
/// inside Redis Cluster hash tags (no braces).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pid(String);

impl Pid {
    /// Longest accepted PID.
    pub const MAX_LEN: usize = 64;

    /// Parses a PID.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Pid(s.to_owned()))
        } else {
            Err(IdError::Pid)
        }
    }

    /// The PID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Pid {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Pid::parse(&s)
    }
}

impl From<Pid> for String {
    fn from(p: Pid) -> String {
        p.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// An API key secret, `dock_` + 44 base62 characters (256 bits of entropy).
///
/// Shown to the operator once; stores keep only [`ApiKeySecret::hash`].
/// `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// The prefix of every key, which lets secret scanners recognise leaked keys.
    pub const PREFIX: &'static str = "dock_";
    const LEN: usize = 5 + 2 * U128_DIGITS;

    /// A new key from 32 bytes of caller-supplied entropy.
    pub fn from_entropy(entropy: [u8; 32]) -> Self {
        let mut s = String::with_capacity(Self::LEN);
        s.push_str(Self::PREFIX);
        let (hi, lo) = entropy.split_at(16);
        base62_u128(
            u128::from_be_bytes(hi.try_into().unwrap_or([0; 16])),
            &mut s,
        );
        base62_u128(
            u128::from_be_bytes(lo.try_into().unwrap_or([0; 16])),
            &mut s,
        );
        ApiKeySecret(s)
    }

    /// The secret text, to return to the operator once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form of this key: see [`hash_api_key`].
    pub fn hash(&self) -> KeyHash {
        hash_api_key(&self.0)
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret(<redacted>)")
    }
}

/// Lower-case hex SHA-256 of an API key: what stores index keys by.
///
/// Keys carry 256 bits of entropy, so an unsalted fast hash is enough
/// (no dictionary to attack) and lets a store look a key up by its hash.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KeyHash(String);

impl KeyHash {
    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hashes whatever a client presented as a bearer key.
pub fn hash_api_key(presented: &str) -> KeyHash {
    let digest = Sha256::digest(presented.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    KeyHash(hex)
}

/// The key under which a PID's live session for (clientId, guildId[,
/// expectedDiscordId]) is remembered for reuse: hex SHA-256 of that JSON
/// array, so any characters in the ids are safe in store keys and cannot
/// collide.
pub fn reuse_digest(
    client_id: &str,
    guild_id: Option<&str>,
    expected_discord_id: Option<&str>,
) -> String {
    // Without an expected Discord id, the digest of the original pair, so
    // reuse slots written before that field existed still match.
    let json = match expected_discord_id {
        None => serde_json::to_string(&(client_id, guild_id)),
        Some(d) => serde_json::to_string(&(client_id, guild_id, d)),
    }
    .unwrap_or_default();
    hash_api_key(&json).0
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    // Compare digests so that the time does not even depend on where lengths differ.
    let da = Sha256::digest(a.as_bytes());
    let db = Sha256::digest(b.as_bytes());
    bool::from(da.as_slice().ct_eq(db.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn session_id_shape() {
        let id = SessionId::from_entropy([0; 16]);
        assert_eq!(id.as_str(), "vsn_0000000000000000000000");
        let id = SessionId::from_entropy([0xff; 16]);
        assert_eq!(id.as_str(), "vsn_7n42DGM5Tflk9n8mt7Fhc7");
        assert_eq!(SessionId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn spec_example_sid_parses() {
        assert!(SessionId::parse("vsn_A1b2C3d4E5f6G7h8J9k0L1").is_ok());
    }

    #[test]
    fn session_id_rejects() {
        for bad in [
            "",
            "vsn_",
            "vsn_A1b2C3d4E5f6G7h8J9k0L",   // 21
            "vsn_A1b2C3d4E5f6G7h8J9k0L12", // 23
            "VSN_A1b2C3d4E5f6G7h8J9k0L1",
            "vsn_A1b2C3d4E5f6G7h8J9k0L-",
            "vsn_A1b2C3d4E5f6G7h8J9k0%2F",
            "vsn_A1b2C3d4E5f6G7h8J9k0/1",
            "key_A1b2C3d4E5f6G7h8J9k0L1",
            "vsn_A1b2C3d4E5f6G7h8J9k0Lé",
        ] {
            assert_eq!(SessionId::parse(bad), Err(IdError::Session), "{bad:?}");
        }
    }

    #[test]
    fn pid_rules() {
        assert!(Pid::parse("pid-yourapp").is_ok());
        assert!(Pid::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "pid yourapp", "pid{x}", "a/b", "pid:x", &"a".repeat(65)] {
            assert_eq!(Pid::parse(bad), Err(IdError::Pid), "{bad:?}");
        }
    }

    #[test]
    fn key_secret_is_redacted_and_hashed() {
        let k = ApiKeySecret::from_entropy([7; 32]);
        assert!(k.expose().starts_with("dock_"));
        assert_eq!(k.expose().len(), 49);
        assert!(!format!("{k:?}").contains(&k.expose()[5..]));
        assert_eq!(k.hash(), hash_api_key(k.expose()));
        assert_eq!(
            hash_api_key("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn reuse_digest_separates_fields() {
        assert_ne!(
            reuse_digest("a", Some("b"), None),
            reuse_digest("a\",\"b", None, None)
        );
        assert_ne!(
            reuse_digest("a", None, None),
            reuse_digest("a", Some(""), None)
        );
        assert_eq!(
            reuse_digest("a", Some("b"), None),
            reuse_digest("a", Some("b"), None)
        );
        assert_eq!(reuse_digest("a", None, None).len(), 64);
        // The expected Discord account is part of the identity.
        assert_ne!(
            reuse_digest("a", None, Some("1")),
            reuse_digest("a", None, Some("2"))
        );
        assert_ne!(
            reuse_digest("a", None, Some("1")),
            reuse_digest("a", None, None)
        );
    }

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq("secret", "secret"));
        assert!(!constant_time_eq("secret", "secreT"));
        assert!(!constant_time_eq("secret", "secret2"));
        assert!(!constant_time_eq("", "x"));
    }

    proptest! {
        #[test]
        fn ids_roundtrip_and_are_distinct(a: [u8; 16], b: [u8; 16]) {
            let ia = SessionId::from_entropy(a);
            prop_assert_eq!(SessionId::parse(ia.as_str()).unwrap(), ia.clone());
            prop_assert_eq!(ia.as_str().len(), 26);
            prop_assert_eq!(a == b, ia == SessionId::from_entropy(b));
            prop_assert_eq!(decode_base62_u128(&ia.as_str()[4..]), Some(u128::from_be_bytes(a)));
            let ka = KeyId::from_entropy(a);
            prop_assert_eq!(KeyId::parse(ka.as_str()).unwrap(), ka);
        }
    }

    #[test]
    fn request_ids_are_hex_and_only_sane_ones_are_echoed() {
        assert_eq!(request_id([0xab; 12]), "ab".repeat(12));
        assert!(is_sane_request_id("req-1.2_3:4"));
        for bad in ["", "a b", "a\nb", "x\"y", &"a".repeat(65), "é"] {
            assert!(!is_sane_request_id(bad), "{bad:?}");
        }
    }
}
