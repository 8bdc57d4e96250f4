//! Any JSON against a set of WIT types: decoding never panics, and whatever
//! decodes encodes back to JSON that decodes to the same value.
#![no_main]

use dohost::rpc::json::{decode, encode};
use dohost::rpc::types::WitType as T;
use libfuzzer_sys::fuzz_target;

fn types() -> Vec<T> {
    let point = T::Record(vec![("x".into(), T::S32), ("label".into(), T::Option(Box::new(T::String)))]);
    vec![
        T::U8,
        T::S64,
        T::U64,
        T::F64,
        T::Char,
        T::String,
        T::List(Box::new(point.clone())),
        T::Tuple(vec![T::Bool, T::F32]),
        T::Variant(vec![("a".into(), Some(point.clone())), ("b".into(), None)]),
        T::Enum(vec!["red".into(), "green".into()]),
        T::Result { ok: Some(Box::new(T::U32)), err: Some(Box::new(T::String)) },
        T::Flags(vec!["r".into(), "w".into()]),
        T::Option(Box::new(T::List(Box::new(T::U16)))),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for ty in types() {
        if let Ok(val) = decode(&json, &ty, "v") {
            let again = encode(&val);
            let back = decode(&again, &ty, "v").expect("an encoded value decodes");
            assert_eq!(encode(&back), again, "{ty}");
        }
    }
});
