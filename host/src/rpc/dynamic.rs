//! Untyped RPC (`dohost:object/dynamic`): the JavaScript and Python SDKs
//! export one `call(method, args-json)` that dispatches to the class's public
//! methods, so a class needs no WIT to be called, as on Cloudflare. The host
//! only passes JSON through and tells the answers apart.

use crate::config::limits::MAX_RPC_RESULT_BYTES;
use serde_json::Value;
use wasmtime::component::Val;

/// The interface the SDKs export.
pub const INTERFACE: &str = "dohost:object/dynamic";

/// What a dynamic call returned to its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The method's result.
    Value(Value),
    /// The class has no such public method (the message lists them).
    NotFound(String),
}

/// The exception a dynamic method threw: its event fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thrown {
    pub name: String,
    pub message: String,
}

/// The guest's `result<string, dynamic-error>`, decoded (once, in the actor).
/// A result that is not JSON, or is too large, is reported as a throw, so that
/// it reaches the caller and the event is rolled back.
pub fn answer(result: Option<&Val>) -> Result<Answer, Thrown> {
    match result {
        Some(Val::Result(Ok(Some(json)))) => match &**json {
            Val::String(s) if s.len() > MAX_RPC_RESULT_BYTES => Err(Thrown {
                name: "RangeError".into(),
                message: format!(
                    "the result is too large: {} bytes of JSON (at most {MAX_RPC_RESULT_BYTES}); return less (page it)",
                    s.len()
                ),
            }),
            Val::String(s) => match crate::rpc::json::parse_strict(s.as_bytes()) {
                Ok(v) => Ok(Answer::Value(v)),
                Err(e) => Err(sdk_bug(format!("the method's result is not JSON: {e}"))),
            },
            other => Err(sdk_bug(format!("the result is {other:?}, not a string"))),
        },
        Some(Val::Result(Err(Some(err)))) => match &**err {
            Val::Variant(case, Some(payload)) if case == "not-found" => match &**payload {
                Val::String(m) => Ok(Answer::NotFound(m.clone())),
                other => Err(sdk_bug(format!("not-found carries {other:?}"))),
            },
            Val::Variant(case, Some(payload)) if case == "thrown" => Err(thrown(payload)),
            other => Err(sdk_bug(format!("unknown dynamic-error {other:?}"))),
        },
        other => Err(sdk_bug(format!("unexpected answer {other:?}"))),
    }
}

fn thrown(payload: &Val) -> Thrown {
    let Val::Record(fields) = payload else {
        return sdk_bug(format!("thrown carries {payload:?}"));
    };
    let field = |name: &str| {
        fields.iter().find_map(|(n, v)| match v {
            Val::String(s) if n == name => Some(s.clone()),
            _ => None,
        })
    };
    Thrown {
        name: field("name").unwrap_or_else(|| "Error".into()),
        message: field("message").unwrap_or_default(),
    }
}

fn sdk_bug(message: String) -> Thrown {
    Thrown {
        name: "Error".into(),
        message: format!("dohost SDK: {message}"),
    }
}

/// The two arguments of `call` (no arguments: `[]`).
pub fn args(method: &str, args: &Value) -> Vec<Val> {
    let json = match args {
        Value::Null => "[]".to_string(),
        other => other.to_string(),
    };
    vec![Val::String(method.to_string()), Val::String(json)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(json: &str) -> Val {
        Val::Result(Ok(Some(Box::new(Val::String(json.into())))))
    }

    fn err(case: &str, payload: Val) -> Val {
        Val::Result(Err(Some(Box::new(Val::Variant(
            case.into(),
            Some(Box::new(payload)),
        )))))
    }

    #[test]
    fn answers_are_told_apart() {
        assert_eq!(
            answer(Some(&ok("[1,2]"))),
            Ok(Answer::Value(serde_json::json!([1, 2])))
        );
        assert_eq!(
            answer(Some(&err("not-found", Val::String("no method x".into())))),
            Ok(Answer::NotFound("no method x".into()))
        );
        let thrown = Val::Record(vec![
            ("name".into(), Val::String("RangeError".into())),
            ("message".into(), Val::String("too big".into())),
        ]);
        assert_eq!(
            answer(Some(&err("thrown", thrown))),
            Err(Thrown {
                name: "RangeError".into(),
                message: "too big".into()
            })
        );
        assert!(answer(Some(&ok("{not json"))).is_err());
        assert!(answer(None).is_err());
        let big = "1".repeat(MAX_RPC_RESULT_BYTES + 1);
        assert!(answer(Some(&ok(&big)))
            .unwrap_err()
            .message
            .contains("too large"));
    }

    #[test]
    fn arguments_go_as_a_json_array() {
        let v = args("increment", &serde_json::json!([5]));
        assert_eq!(v[0], Val::String("increment".into()));
        assert_eq!(v[1], Val::String("[5]".into()));
        assert_eq!(args("get", &Value::Null)[1], Val::String("[]".into()));
    }
}
