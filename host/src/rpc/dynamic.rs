//! Untyped RPC (`dohost:object/dynamic`): the JavaScript and Python SDKs
//! export one `call(method, args-json)` that dispatches to the class's public
//! methods, so a class needs no WIT to be called, as on Cloudflare. The host
//! only passes JSON through and tells the three answers apart.

use crate::config::limits::MAX_RPC_RESULT_BYTES;
use serde_json::Value;
use wasmtime::component::Val;

/// The interface the SDKs export.
pub const INTERFACE: &str = "dohost:object/dynamic";

/// What a dynamic call answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The method's result.
    Value(Value),
    /// The class has no such public method (the message lists them).
    NotFound(String),
    /// The method threw.
    Thrown { name: String, message: String },
}

/// The guest's `result<string, dynamic-error>`, decoded. A result that is not
/// JSON is the SDK's bug, reported as a throw so that it reaches the caller.
pub fn answer(result: Option<&Val>) -> Answer {
    match result {
        Some(Val::Result(Ok(Some(json)))) => match &**json {
            Val::String(s) if s.len() > MAX_RPC_RESULT_BYTES => Answer::Thrown {
                name: "RangeError".into(),
                message: format!(
                    "the result is too large: {} bytes of JSON (at most {MAX_RPC_RESULT_BYTES}); return less (page it)",
                    s.len()
                ),
            },
            Val::String(s) => match crate::rpc::json::parse_strict(s.as_bytes()) {
                Ok(v) => Answer::Value(v),
                Err(e) => sdk_bug(format!("the method's result is not JSON: {e}")),
            },
            other => sdk_bug(format!("the result is {other:?}, not a string")),
        },
        Some(Val::Result(Err(Some(err)))) => match &**err {
            Val::Variant(case, Some(payload)) if case == "not-found" => match &**payload {
                Val::String(m) => Answer::NotFound(m.clone()),
                other => sdk_bug(format!("not-found carries {other:?}")),
            },
            Val::Variant(case, Some(payload)) if case == "thrown" => thrown(payload),
            other => sdk_bug(format!("unknown dynamic-error {other:?}")),
        },
        other => sdk_bug(format!("unexpected answer {other:?}")),
    }
}

fn thrown(payload: &Val) -> Answer {
    let Val::Record(fields) = payload else {
        return sdk_bug(format!("thrown carries {payload:?}"));
    };
    let field = |name: &str| {
        fields.iter().find_map(|(n, v)| match v {
            Val::String(s) if n == name => Some(s.clone()),
            _ => None,
        })
    };
    Answer::Thrown {
        name: field("name").unwrap_or_else(|| "Error".into()),
        message: field("message").unwrap_or_default(),
    }
}

fn sdk_bug(message: String) -> Answer {
    Answer::Thrown {
        name: "Error".into(),
        message: format!("dohost SDK: {message}"),
    }
}

/// The two arguments of `call`.
pub fn args(method: &str, args: &Value) -> Vec<Val> {
    let args = match args {
        Value::Null => Value::Array(Vec::new()),
        other => other.clone(),
    };
    vec![
        Val::String(method.to_string()),
        Val::String(args.to_string()),
    ]
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
            Answer::Value(serde_json::json!([1, 2]))
        );
        assert_eq!(
            answer(Some(&err("not-found", Val::String("no method x".into())))),
            Answer::NotFound("no method x".into())
        );
        let thrown = Val::Record(vec![
            ("name".into(), Val::String("RangeError".into())),
            ("message".into(), Val::String("too big".into())),
        ]);
        assert_eq!(
            answer(Some(&err("thrown", thrown))),
            Answer::Thrown {
                name: "RangeError".into(),
                message: "too big".into()
            }
        );
        assert!(matches!(
            answer(Some(&ok("{not json"))),
            Answer::Thrown { .. }
        ));
        assert!(matches!(answer(None), Answer::Thrown { .. }));
    }

    #[test]
    fn arguments_go_as_a_json_array() {
        let v = args("increment", &serde_json::json!([5]));
        assert_eq!(v[0], Val::String("increment".into()));
        assert_eq!(v[1], Val::String("[5]".into()));
        assert_eq!(args("get", &Value::Null)[1], Val::String("[]".into()));
    }
}
