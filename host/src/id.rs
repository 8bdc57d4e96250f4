//! Object ids: 32 bytes shown as 64 lowercase hex characters.
//!
//! `from_name` is a keyed BLAKE3 hash of (class, name), so the same name in the
//! same class always gives the same id, on every host; `new_unique` is random.
//! `parse` accepts only the canonical form, so an id maps to exactly one file.

use std::fmt;
use std::sync::Arc;

/// Domain-separation context of name-derived ids (never change it: ids derive from it).
const NAME_ID_CONTEXT: &str = "dohost 2026-11 object id from class and name v1";

/// The id of one object within its class.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 32]);

/// Why a string is not an object id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed object id {shown:?}: {reason}; a valid id is 64 lowercase hex characters (0-9, a-f), as returned by id-from-name or new-unique-id")]
pub struct MalformedId {
    shown: String,
    reason: String,
}

impl ObjectId {
    /// The deterministic id of `name` in `class`.
    pub fn from_name(class: &str, name: &str) -> ObjectId {
        let mut hasher = blake3::Hasher::new_derive_key(NAME_ID_CONTEXT);
        // Length-prefix the class so ("ab", "c") and ("a", "bc") differ.
        hasher.update(&(class.len() as u64).to_le_bytes());
        hasher.update(class.as_bytes());
        hasher.update(name.as_bytes());
        ObjectId(*hasher.finalize().as_bytes())
    }

    /// A new random id.
    pub fn new_unique() -> ObjectId {
        ObjectId(rand::random())
    }

    /// Parses the canonical 64-lowercase-hex form.
    pub fn parse(s: &str) -> Result<ObjectId, MalformedId> {
        let fail = |reason: String| MalformedId {
            shown: s.chars().take(80).collect(),
            reason,
        };
        if s.len() != 64 {
            return Err(fail(format!("it has {} characters", s.chars().count())));
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let nibble = |c: u8| match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Err(fail("it has uppercase hex digits".into())),
                _ => Err(fail(format!("{:?} is not a hex digit", c as char))),
            };
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Ok(ObjectId(out))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

/// Identifies a WebSocket within the process.
pub type SocketId = u64;

/// Longest object name (bytes of UTF-8), in URLs and `id-from-name`.
pub const MAX_NAME_BYTES: usize = 2048;

/// Checks an object name (from a URL or `id-from-name`): at most
/// `MAX_NAME_BYTES` bytes of UTF-8. Names are used as given — no Unicode
/// normalization: "é" and "e\u{301}" are two objects.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "object name too long: {} bytes (at most {MAX_NAME_BYTES})",
            name.len()
        ));
    }
    Ok(())
}

/// Identifies an object across classes: its class name and its id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub class: Arc<str>,
    pub id: ObjectId,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.class, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_names_are_deterministic_and_class_scoped() {
        let a = ObjectId::from_name("Counter", "demo");
        assert_eq!(a, ObjectId::from_name("Counter", "demo"));
        assert_ne!(a, ObjectId::from_name("Counter", "demo2"));
        assert_ne!(a, ObjectId::from_name("TenantDb", "demo"));
        assert_ne!(
            ObjectId::from_name("ab", "c"),
            ObjectId::from_name("a", "bc")
        );
    }

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = ObjectId::new_unique();
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert!(text
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(ObjectId::parse(&text), Ok(id));
        assert_ne!(ObjectId::new_unique(), id);
    }

    #[test]
    fn malformed_ids_say_what_a_valid_id_looks_like() {
        let good = ObjectId::from_name("C", "n").to_string();
        for bad in [
            "".to_string(),
            "abc".to_string(),
            good.to_uppercase(),
            format!("{}g", &good[..63]),
            format!("{good}0"),
            format!("{}é", &good[..62]),
        ] {
            let err = ObjectId::parse(&bad).unwrap_err().to_string();
            assert!(err.contains("64 lowercase hex characters"), "{bad}: {err}");
        }
    }
}
