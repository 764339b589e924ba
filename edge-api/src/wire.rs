//! plugNmeet's wire conventions for `/auth/*` (protojson): how input is read and how output
//! is shaped.
//!
//! Input: snake_case and camelCase keys are both accepted, `null` means unset, int64 may be a
//! string or a number, unknown fields are discarded. Output: snake_case, zero values emitted,
//! int64 as strings, and business errors as HTTP 200 with `status:false`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// plugNmeet's `StatusCode` enum, written by name on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub enum StatusCode {
    #[serde(rename = "UNKNOWN_STATUS")]
    Unknown = 0,
    #[serde(rename = "SUCCESS")]
    Success = 1,
    #[serde(rename = "PERMISSION_DENIED")]
    PermissionDenied = 2,
    #[serde(rename = "NOT_FOUND")]
    NotFound = 3,
    #[serde(rename = "CONFLICT")]
    Conflict = 4,
    #[serde(rename = "INVALID_TOKEN_OR_SIGNATURE")]
    InvalidTokenOrSignature = 5,
    #[serde(rename = "INVALID_API_KEY")]
    InvalidApiKey = 6,
    #[serde(rename = "INTERNAL_SERVER_ERROR")]
    InternalServerError = 7,
    #[serde(rename = "INVALID_PARAMETERS")]
    InvalidParameters = 8,
    #[serde(rename = "MISSING_REQUIRED_PARAMETER")]
    MissingRequiredParameter = 9,
    #[serde(rename = "ROOM_NOT_FOUND")]
    RoomNotFound = 10,
    #[serde(rename = "USER_NOT_FOUND")]
    UserNotFound = 11,
    #[serde(rename = "USER_BLOCKED")]
    UserBlocked = 12,
    #[serde(rename = "USER_NOT_ACTIVE")]
    UserNotActive = 13,
    #[serde(rename = "ROOM_NOT_ACTIVE")]
    RoomNotActive = 14,
}

/// plugNmeet's `CommonResponse`: the envelope of every answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Common {
    /// Whether the call did what was asked.
    pub status: bool,
    /// A human-readable message.
    pub msg: String,
    /// The machine-readable outcome.
    pub status_code: StatusCode,
}

impl Common {
    /// A success with this message.
    pub fn ok(msg: impl Into<String>) -> Common {
        Common {
            status: true,
            msg: msg.into(),
            status_code: StatusCode::Success,
        }
    }
    /// A failure with this message and code.
    pub fn fail(status_code: StatusCode, msg: impl Into<String>) -> Common {
        Common {
            status: false,
            msg: msg.into(),
            status_code,
        }
    }
}

/// An answer: the common envelope plus the endpoint's own fields, flattened beside it.
#[derive(Debug, Serialize)]
pub struct Reply<T: Serialize> {
    #[serde(flatten)]
    common: Common,
    #[serde(flatten)]
    body: T,
}

impl<T: Serialize> Reply<T> {
    /// The envelope with extra fields.
    pub fn new(common: Common, body: T) -> Self {
        Reply { common, body }
    }
}

/// Field names that hold user-chosen map keys; their keys are left as they are.
const MAP_FIELDS: &[&str] = &["extra_data", "subtitles", "attributes"];

/// Rewrites every object key from camelCase to snake_case (protojson accepts both spellings),
/// except inside map-valued fields, and drops `null` members (protojson: `null` is unset). A
/// field given in both spellings is refused, as protojson refuses it: which one was meant is
/// anyone's guess.
pub fn normalize_keys(value: Value) -> Result<Value, InputError> {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            // A set, not a list: a body of thousands of distinct `null` members must not cost a
            // comparison with every earlier one.
            let mut unset: std::collections::HashSet<String> = std::collections::HashSet::new();
            for (key, v) in map {
                let key = snake_case(&key);
                if out.contains_key(&key) || unset.contains(&key) {
                    return Err(InputError(format!(
                        "{key}: given twice (as snake_case and camelCase)"
                    )));
                }
                if v.is_null() {
                    unset.insert(key);
                    continue;
                }
                let v = if MAP_FIELDS.contains(&key.as_str()) {
                    v
                } else {
                    normalize_keys(v)?
                };
                out.insert(key, v);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .into_iter()
            .map(normalize_keys)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other),
    }
}

/// `key` in snake_case (`mimeType` → `mime_type`).
pub(crate) fn snake_case(key: &str) -> String {
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a request body could not be read as the endpoint's request message.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct InputError(pub String);

/// Parses a request body as protojson input for `T` (see the module doc for the rules).
pub fn parse_input<T: DeserializeOwned>(body: &[u8]) -> Result<T, InputError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| InputError(format!("invalid JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(InputError("the request body must be a JSON object".into()));
    }
    serde_json::from_value(normalize_keys(value)?).map_err(|e| InputError(e.to_string()))
}

/// Serde helper: an integer given as a JSON number or a decimal string (protojson int64/uint).
pub fn lenient_int<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    use serde::de::Error;
    let value = Value::deserialize(de)?;
    let n: i128 = match &value {
        Value::Null => return Ok(None),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i128::from(i)
            } else if let Some(u) = n.as_u64() {
                i128::from(u)
            } else {
                return Err(D::Error::custom(format!("{n} is not a whole number")));
            }
        }
        Value::String(s) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| D::Error::custom(format!("\"{s}\" is not a whole number")))?,
        other => return Err(D::Error::custom(format!("{other} is not a whole number"))),
    };
    T::try_from(n)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{n} is out of range")))
}

/// Serde helper: like [`lenient_int`], with an absent or `null` value read as zero.
pub fn lenient_int_or_zero<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128> + Default,
{
    lenient_int(de).map(Option::unwrap_or_default)
}

/// An enum field as protojson takes it: its name, or its number (as text); `null` is unset.
pub fn enum_name_or_number<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(de)? {
        Value::Null => Ok(None),
        Value::String(name) => Ok(Some(name)),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(serde::de::Error::custom("expected an enum name or number")),
    }
}

/// Serializes an int64 the protojson way: as a decimal string.
pub fn int64_string<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Probe {
        #[serde(default)]
        room_id: String,
        #[serde(default, deserialize_with = "lenient_int")]
        max_participants: Option<u32>,
        #[serde(default)]
        extra_data: Option<Value>,
    }

    #[test]
    fn camel_case_nulls_and_int_strings() {
        let p: Probe = parse_input(
            br#"{"roomId":"r1","maxParticipants":"12","extra_data":{"keepMe":1},"from_":null,"junk":3}"#,
        )
        .unwrap();
        assert_eq!(p.room_id, "r1");
        assert_eq!(p.max_participants, Some(12));
        assert_eq!(p.extra_data, Some(json!({"keepMe": 1})));
        let p: Probe = parse_input(br#"{"room_id":"r","max_participants":null}"#).unwrap();
        assert_eq!(p.max_participants, None);
    }

    /// Which of two spellings was meant is anyone's guess: both are refused, as protojson does,
    /// also when one of them is null, and also in nested messages.
    #[test]
    fn refuses_a_field_in_both_spellings() {
        for body in [
            br#"{"room_id":"a","roomId":"b"}"#.as_slice(),
            br#"{"roomId":"b","room_id":"a"}"#,
            br#"{"room_id":null,"roomId":"b"}"#,
            br#"{"room_id":"a","extra":{"userId":"x","user_id":"y"}}"#,
        ] {
            let refused = parse_input::<Probe>(body).map(|p| p.room_id);
            assert!(
                refused.as_ref().is_err_and(|e| e.0.contains("given twice")),
                "{}: {refused:?}",
                String::from_utf8_lossy(body)
            );
        }
        // Inside map-valued fields keys are the caller's own and stay as they are.
        let p: Probe =
            parse_input(br#"{"room_id":"a","extra_data":{"keepMe":1,"keep_me":2}}"#).unwrap();
        assert_eq!(p.extra_data, Some(json!({"keepMe": 1, "keep_me": 2})));
    }

    #[test]
    fn rejects_wrong_types_and_ranges() {
        assert!(parse_input::<Probe>(br#"{"room_id":5}"#).is_err());
        assert!(parse_input::<Probe>(br#"{"max_participants":-1}"#).is_err());
        assert!(parse_input::<Probe>(br#"{"max_participants":"1e3"}"#).is_err());
        assert!(parse_input::<Probe>(br#"{"max_participants":1.5}"#).is_err());
        assert!(parse_input::<Probe>(br#"[1]"#).is_err());
        assert!(parse_input::<Probe>(b"{nope").is_err());
    }

    #[test]
    fn reply_flattens_the_envelope() {
        #[derive(Serialize)]
        struct Extra {
            is_active: bool,
        }
        let v =
            serde_json::to_value(Reply::new(Common::ok("ok"), Extra { is_active: false })).unwrap();
        assert_eq!(
            v,
            json!({"status":true,"msg":"ok","status_code":"SUCCESS","is_active":false})
        );
    }
}
