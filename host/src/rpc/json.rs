//! JSON ⇄ component values, driven by the WIT type of each parameter.
//!
//! | WIT | JSON |
//! |---|---|
//! | bool | `true` / `false` |
//! | s8 … u64 | integer (range-checked) |
//! | f32, f64 | number, or `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | char, string | string (a char is one Unicode scalar) |
//! | list<T>, tuple<…> | array |
//! | record | object keyed by field name (an absent `option` field is none) |
//! | variant | `{"case": payload}` (`null` payload, or just `"case"`, when it has none) |
//! | enum | `"case"` |
//! | option<T> | `null` or the value |
//! | result<T, E> | `{"ok": value}` or `{"err": value}` |
//! | flags | array of set flag names |

use super::types::WitType;
use serde_json::{json, Map, Number, Value};
use wasmtime::component::Val;

/// A value that does not fit its type, with where it is and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: expected {expected}, got {got}")]
pub struct DecodeError {
    pub path: String,
    pub expected: String,
    pub got: String,
}

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

fn fail(path: &str, expected: impl Into<String>, got: &Value) -> DecodeError {
    DecodeError {
        path: path.to_string(),
        expected: expected.into(),
        got: shown(got),
    }
}

fn integer<T: TryFrom<i128>>(
    v: &Value,
    path: &str,
    ty: &WitType,
    min: i128,
    max: i128,
) -> Result<T, DecodeError> {
    let expected = || format!("{ty} (an integer from {min} to {max})");
    let n = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .ok_or_else(|| fail(path, expected(), v))?,
        _ => return Err(fail(path, expected(), v)),
    };
    if n < min || n > max {
        return Err(fail(path, expected(), v));
    }
    T::try_from(n).map_err(|_| fail(path, expected(), v))
}

fn float(v: &Value, path: &str, ty: &WitType) -> Result<f64, DecodeError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| fail(path, ty.to_string(), v)),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(fail(path, format!("{ty} (a number)"), v)),
    }
}

/// Decodes `v` as a value of type `ty`; `path` names it in errors.
pub fn decode(v: &Value, ty: &WitType, path: &str) -> Result<Val, DecodeError> {
    Ok(match ty {
        WitType::Bool => Val::Bool(
            v.as_bool()
                .ok_or_else(|| fail(path, "bool (true or false)", v))?,
        ),
        WitType::S8 => Val::S8(integer(v, path, ty, i8::MIN.into(), i8::MAX.into())?),
        WitType::U8 => Val::U8(integer(v, path, ty, 0, u8::MAX.into())?),
        WitType::S16 => Val::S16(integer(v, path, ty, i16::MIN.into(), i16::MAX.into())?),
        WitType::U16 => Val::U16(integer(v, path, ty, 0, u16::MAX.into())?),
        WitType::S32 => Val::S32(integer(v, path, ty, i32::MIN.into(), i32::MAX.into())?),
        WitType::U32 => Val::U32(integer(v, path, ty, 0, u32::MAX.into())?),
        WitType::S64 => Val::S64(integer(v, path, ty, i64::MIN.into(), i64::MAX.into())?),
        WitType::U64 => Val::U64(integer(v, path, ty, 0, u64::MAX.into())?),
        WitType::F32 => Val::Float32(float(v, path, ty)? as f32),
        WitType::F64 => Val::Float64(float(v, path, ty)?),
        WitType::Char => decode_char(v, path)?,
        WitType::String => Val::String(
            v.as_str()
                .ok_or_else(|| fail(path, "string", v))?
                .to_string(),
        ),
        WitType::List(t) => {
            let items = v
                .as_array()
                .ok_or_else(|| fail(path, format!("{ty} (an array)"), v))?;
            Val::List(decode_items(items, std::iter::repeat(&**t), path)?)
        }
        WitType::Tuple(ts) => {
            let items = v
                .as_array()
                .filter(|a| a.len() == ts.len())
                .ok_or_else(|| fail(path, format!("{ty} (an array of {} values)", ts.len()), v))?;
            Val::Tuple(decode_items(items, ts.iter(), path)?)
        }
        WitType::Record(fields) => decode_record(v, ty, fields, path)?,
        WitType::Variant(cases) => decode_variant(v, cases, path)?,
        WitType::Enum(names) => decode_enum(v, names, path)?,
        WitType::Option(t) => match v {
            Value::Null => Val::Option(None),
            some => Val::Option(Some(Box::new(decode(some, t, path)?))),
        },
        WitType::Result { ok, err } => decode_result(v, ty, (ok, err), path)?,
        WitType::Flags(names) => decode_flags(v, ty, names, path)?,
        WitType::Unsupported(what) => {
            return Err(fail(
                path,
                format!("a JSON-encodable type ({what} cannot be passed over RPC)"),
                v,
            ))
        }
    })
}

fn decode_char(v: &Value, path: &str) -> Result<Val, DecodeError> {
    let expected = "char (a one-character string)";
    let s = v.as_str().ok_or_else(|| fail(path, expected, v))?;
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(Val::Char(c)),
        _ => Err(fail(path, expected, v)),
    }
}

/// The items of a list or tuple, each as its type.
fn decode_items<'t>(
    items: &[Value],
    types: impl Iterator<Item = &'t WitType>,
    path: &str,
) -> Result<Vec<Val>, DecodeError> {
    items
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (item, t))| decode(item, t, &format!("{path}[{i}]")))
        .collect()
}

/// A record from an object: no unknown fields; a missing field only if it
/// is an option.
fn decode_record(
    v: &Value,
    ty: &WitType,
    fields: &[(String, WitType)],
    path: &str,
) -> Result<Val, DecodeError> {
    let obj = v
        .as_object()
        .ok_or_else(|| fail(path, format!("{ty} (an object)"), v))?;
    if let Some(extra) = obj.keys().find(|k| !fields.iter().any(|(n, _)| n == *k)) {
        return Err(fail(
            &format!("{path}.{extra}"),
            "no such field",
            &obj[extra],
        ));
    }
    let mut out = Vec::with_capacity(fields.len());
    for (name, t) in fields {
        let field_path = format!("{path}.{name}");
        let value = match (obj.get(name), t) {
            (Some(fv), _) => decode(fv, t, &field_path)?,
            (None, WitType::Option(_)) => Val::Option(None),
            (None, _) => {
                let expected = format!("{t} (the field is required)");
                return Err(fail(&field_path, expected, &Value::Null));
            }
        };
        out.push((name.clone(), value));
    }
    Ok(Val::Record(out))
}

/// A variant from `"case"` or `{"case": payload}`.
fn decode_variant(
    v: &Value,
    cases: &[(String, Option<WitType>)],
    path: &str,
) -> Result<Val, DecodeError> {
    let expected = || {
        let names: Vec<&str> = cases.iter().map(|(n, _)| n.as_str()).collect();
        format!(
            "one of the cases {{{}}} as {{\"case\": payload}}",
            names.join(", ")
        )
    };
    let (name, payload) = match v {
        Value::String(s) => (s.as_str(), &Value::Null),
        Value::Object(o) if o.len() == 1 => {
            let (k, p) = o.iter().next().expect("one entry");
            (k.as_str(), p)
        }
        _ => return Err(fail(path, expected(), v)),
    };
    let (case, payload_ty) = cases
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| fail(path, expected(), v))?;
    let case_path = format!("{path}.{case}");
    let payload = match payload_ty {
        Some(t) => Some(Box::new(decode(payload, t, &case_path)?)),
        None if payload.is_null() => None,
        None => {
            return Err(fail(&case_path, "null (this case has no payload)", payload));
        }
    };
    Ok(Val::Variant(case.clone(), payload))
}

fn decode_enum(v: &Value, names: &[String], path: &str) -> Result<Val, DecodeError> {
    let s = v
        .as_str()
        .filter(|s| names.iter().any(|n| n == s))
        .ok_or_else(|| {
            let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            fail(path, format!("one of {}", quoted.join(", ")), v)
        })?;
    Ok(Val::Enum(s.to_string()))
}

/// A result from `{"ok": value}` or `{"err": value}`.
fn decode_result(
    v: &Value,
    ty: &WitType,
    (ok, err): (&Option<Box<WitType>>, &Option<Box<WitType>>),
    path: &str,
) -> Result<Val, DecodeError> {
    let expected = || format!("{ty} as {{\"ok\": value}} or {{\"err\": value}}");
    let obj = v
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| fail(path, expected(), v))?;
    let (k, payload) = obj.iter().next().expect("one entry");
    let payload_of =
        |t: &Option<Box<WitType>>, case: &str| -> Result<Option<Box<Val>>, DecodeError> {
            let case_path = format!("{path}.{case}");
            match t {
                Some(t) => Ok(Some(Box::new(decode(payload, t, &case_path)?))),
                None if payload.is_null() => Ok(None),
                None => Err(fail(&case_path, "null (no payload)", payload)),
            }
        };
    match k.as_str() {
        "ok" => Ok(Val::Result(Ok(payload_of(ok, "ok")?))),
        "err" => Ok(Val::Result(Err(payload_of(err, "err")?))),
        _ => Err(fail(path, expected(), v)),
    }
}

/// Flags from an array of flag names.
fn decode_flags(v: &Value, ty: &WitType, names: &[String], path: &str) -> Result<Val, DecodeError> {
    let items = v
        .as_array()
        .ok_or_else(|| fail(path, format!("{ty} (an array of flag names)"), v))?;
    let mut set = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str().filter(|s| names.iter().any(|n| n == s)) {
            Some(s) => set.push(s.to_string()),
            None => {
                let expected = format!("one of the flags {}", names.join(", "));
                return Err(fail(&format!("{path}[{i}]"), expected, item));
            }
        }
    }
    Ok(Val::Flags(set))
}

fn float_json(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => json!("NaN"),
        None if f > 0.0 => json!("Infinity"),
        None => json!("-Infinity"),
    }
}

/// Encodes a component value as JSON (the inverse of [`decode`]).
pub fn encode(v: &Val) -> Value {
    let boxed = |p: &Option<Box<Val>>| p.as_ref().map_or(Value::Null, |v| encode(v));
    match v {
        Val::Bool(b) => json!(b),
        Val::S8(n) => json!(n),
        Val::U8(n) => json!(n),
        Val::S16(n) => json!(n),
        Val::U16(n) => json!(n),
        Val::S32(n) => json!(n),
        Val::U32(n) => json!(n),
        Val::S64(n) => json!(n),
        Val::U64(n) => json!(n),
        Val::Float32(f) => float_json(f64::from(*f)),
        Val::Float64(f) => float_json(*f),
        Val::Char(c) => json!(c.to_string()),
        Val::String(s) => json!(s),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Value::Array(items.iter().map(encode).collect())
        }
        Val::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), encode(v)))
                .collect::<Map<_, _>>(),
        ),
        Val::Variant(case, payload) => json!({ case.clone(): boxed(payload) }),
        Val::Enum(case) => json!(case),
        Val::Option(None) => Value::Null,
        Val::Option(Some(v)) => encode(v),
        Val::Result(Ok(p)) => json!({ "ok": boxed(p) }),
        Val::Result(Err(p)) => json!({ "err": boxed(p) }),
        Val::Flags(names) => json!(names),
        Val::Map(entries) => Value::Array(
            entries
                .iter()
                .map(|(k, v)| json!([encode(k), encode(v)]))
                .collect(),
        ),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => Value::Null,
    }
}

/// Encodes `v`, or refuses — before building anything — a value whose JSON
/// would be larger than `max` bytes (an RPC result is guest-controlled; its
/// JSON can be many times its size in the guest).
pub fn encode_bounded(v: &Val, max: usize) -> Result<Value, String> {
    let mut left = max;
    if json_fits(v, &mut left) {
        Ok(encode(v))
    } else {
        Err(format!(
            "the result is too large: its JSON would exceed {max} bytes; return less (page it)"
        ))
    }
}

/// Takes `n` from `left`; false if there is not that much left.
fn take(left: &mut usize, n: usize) -> bool {
    match left.checked_sub(n) {
        Some(rest) => {
            *left = rest;
            true
        }
        None => false,
    }
}

/// Subtracts an estimate of `v`'s JSON size from `left`; false once it runs out.
fn json_fits(v: &Val, left: &mut usize) -> bool {
    match v {
        Val::String(s) => take(left, s.len() + 2),
        Val::Char(_) | Val::Enum(_) => take(left, 8),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            take(left, 2) && items.iter().all(|i| take(left, 1) && json_fits(i, left))
        }
        Val::Record(fields) => {
            take(left, 2)
                && fields
                    .iter()
                    .all(|(k, v)| take(left, k.len() + 4) && json_fits(v, left))
        }
        Val::Variant(case, payload) => {
            take(left, case.len() + 6) && payload.as_ref().is_none_or(|p| json_fits(p, left))
        }
        Val::Option(Some(p)) => json_fits(p, left),
        Val::Result(Ok(p)) | Val::Result(Err(p)) => {
            take(left, 8) && p.as_ref().is_none_or(|p| json_fits(p, left))
        }
        Val::Flags(names) => take(left, 2 + names.iter().map(|n| n.len() + 3).sum::<usize>()),
        Val::Map(entries) => {
            take(left, 2)
                && entries
                    .iter()
                    .all(|(k, v)| take(left, 4) && json_fits(k, left) && json_fits(v, left))
        }
        _ => take(left, 8),
    }
}

/// Parses JSON, refusing duplicate keys in any object (a plain parse keeps
/// the last one silently, so `{"by": 1, "by": 9}` would mean 9).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, String> {
    struct Strict(Value);
    struct StrictVisitor;
    impl<'de> serde::de::Visitor<'de> for StrictVisitor {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(json!(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(json!(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_string()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(Strict(v)) = seq.next_element()? {
                items.push(v);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                }
                let Strict(v) = map.next_value()?;
                out.insert(key, v);
            }
            Ok(Value::Object(out))
        }
    }
    impl<'de> serde::Deserialize<'de> for Strict {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(StrictVisitor).map(Strict)
        }
    }
    serde_json::from_slice::<Strict>(bytes)
        .map(|s| s.0)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use WitType as T;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(parse_strict(br#"{"by": 1, "by": 9}"#)
            .unwrap_err()
            .contains("duplicate key \"by\""));
        assert!(parse_strict(br#"[{"a": {"x": 1, "x": 2}}]"#).is_err());
        assert_eq!(
            parse_strict(br#"{"a": [1, 2.5, "s", null, true], "b": {}}"#).unwrap(),
            json!({"a": [1, 2.5, "s", null, true], "b": {}})
        );
        assert_eq!(
            parse_strict(b"18446744073709551615").unwrap(),
            json!(u64::MAX)
        );
    }

    #[test]
    fn results_larger_than_the_bound_are_refused_before_encoding() {
        let list = Val::List((0..1000).map(Val::U32).collect());
        assert!(encode_bounded(&list, 100_000).is_ok());
        let err = encode_bounded(&list, 1000).unwrap_err();
        assert!(err.contains("exceed 1000 bytes"), "{err}");
        let s = Val::String("x".repeat(50));
        assert!(encode_bounded(&s, 52).is_ok());
        assert!(encode_bounded(&s, 51).is_err());
    }

    fn round_trip(ty: &WitType, json: Value) {
        let val = decode(&json, ty, "x").unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(encode(&val), json, "{ty}");
    }

    fn rejects(ty: &WitType, json: Value, expect: &str) {
        let err = decode(&json, ty, "arg").unwrap_err().to_string();
        assert!(err.contains(expect), "{ty} {json}: {err}");
    }

    #[test]
    fn scalars_round_trip() {
        round_trip(&T::Bool, json!(true));
        round_trip(&T::S8, json!(-128));
        round_trip(&T::U8, json!(255));
        round_trip(&T::S16, json!(-32768));
        round_trip(&T::U16, json!(65535));
        round_trip(&T::S32, json!(-2147483648i64));
        round_trip(&T::U32, json!(4294967295u64));
        round_trip(&T::S64, json!(i64::MIN));
        round_trip(&T::U64, json!(u64::MAX));
        round_trip(&T::F32, json!(1.5));
        round_trip(&T::F64, json!(-0.25));
        round_trip(&T::F64, json!("Infinity"));
        round_trip(&T::Char, json!("é"));
        round_trip(&T::String, json!("hello"));
        assert_eq!(
            encode(&decode(&json!("NaN"), &T::F64, "x").unwrap()),
            json!("NaN")
        );
    }

    #[test]
    fn integers_are_range_checked() {
        rejects(&T::U8, json!(256), "u8 (an integer from 0 to 255)");
        rejects(&T::U8, json!(-1), "u8");
        rejects(&T::S8, json!(128), "s8");
        rejects(&T::U32, json!(1.5), "u32");
        rejects(&T::U64, json!(-1), "u64");
        rejects(&T::S64, json!("12"), "s64");
        rejects(&T::S64, json!(u64::MAX), "s64");
    }

    #[test]
    fn other_scalars_reject_wrong_json() {
        rejects(&T::Bool, json!(1), "bool");
        rejects(&T::Char, json!("ab"), "one-character string");
        rejects(&T::String, json!(5), "string");
        rejects(&T::F64, json!("fast"), "f64 (a number)");
    }

    #[test]
    fn compound_types_round_trip() {
        let entry = T::Record(vec![("player".into(), T::String), ("total".into(), T::U64)]);
        round_trip(
            &T::List(Box::new(entry.clone())),
            json!([{"player": "a", "total": 3}]),
        );
        round_trip(&T::Tuple(vec![T::String, T::Bool]), json!(["x", false]));
        let shape = T::Variant(vec![("circle".into(), Some(T::F64)), ("none".into(), None)]);
        round_trip(&shape, json!({"circle": 2.5}));
        round_trip(&shape, json!({"none": null}));
        assert_eq!(
            decode(&json!("none"), &shape, "x").unwrap(),
            Val::Variant("none".into(), None)
        );
        round_trip(&T::Enum(vec!["red".into(), "green".into()]), json!("green"));
        round_trip(&T::Option(Box::new(T::U32)), json!(null));
        round_trip(&T::Option(Box::new(T::U32)), json!(7));
        let res = T::Result {
            ok: Some(Box::new(T::U32)),
            err: Some(Box::new(T::String)),
        };
        round_trip(&res, json!({"ok": 1}));
        round_trip(&res, json!({"err": "bad"}));
        round_trip(
            &T::Result {
                ok: None,
                err: None,
            },
            json!({"ok": null}),
        );
        round_trip(
            &T::Flags(vec!["read".into(), "write".into()]),
            json!(["write"]),
        );
    }

    #[test]
    fn compound_errors_say_where() {
        let entry = T::Record(vec![("player".into(), T::String), ("total".into(), T::U64)]);
        let list = T::List(Box::new(entry.clone()));
        rejects(
            &list,
            json!([{"player": "a", "total": -1}]),
            "arg[0].total: expected u64",
        );
        rejects(
            &entry,
            json!({"player": "a"}),
            "arg.total: expected u64 (the field is required)",
        );
        rejects(
            &entry,
            json!({"player": "a", "total": 1, "bonus": 2}),
            "arg.bonus: expected no such field",
        );
        rejects(
            &T::Tuple(vec![T::U8, T::U8]),
            json!([1]),
            "an array of 2 values",
        );
        rejects(&T::Enum(vec!["a".into()]), json!("b"), "one of \"a\"");
        rejects(
            &T::Variant(vec![("a".into(), None)]),
            json!({"b": 1}),
            "one of the cases {a}",
        );
        rejects(
            &T::Variant(vec![("a".into(), None)]),
            json!({"a": 1}),
            "no payload",
        );
        rejects(
            &T::Result {
                ok: None,
                err: None,
            },
            json!({"maybe": 1}),
            "{\"ok\": value}",
        );
        rejects(
            &T::Flags(vec!["r".into()]),
            json!(["w"]),
            "arg[0]: expected one of the flags r",
        );
        rejects(
            &T::Unsupported("resource"),
            json!(1),
            "cannot be passed over RPC",
        );
    }

    #[test]
    fn absent_option_fields_are_none() {
        let rec = T::Record(vec![("nick".into(), T::Option(Box::new(T::String)))]);
        assert_eq!(
            decode(&json!({}), &rec, "x").unwrap(),
            Val::Record(vec![("nick".into(), Val::Option(None))])
        );
    }

    #[test]
    fn types_render_as_wit() {
        let entry = T::Record(vec![("player".into(), T::String), ("total".into(), T::U64)]);
        assert_eq!(
            T::List(Box::new(entry)).to_string(),
            "list<record { player: string, total: u64 }>"
        );
        assert_eq!(
            T::Result {
                ok: None,
                err: Some(Box::new(T::String))
            }
            .to_string(),
            "result<_, string>"
        );
    }
}
