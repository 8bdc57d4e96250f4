//! Property tests (proptest) of the runtime's pure parts: the JSON ⇄ WIT value
//! codec, id parsing, and a model-based sequence of storage operations checked
//! against an in-memory reference.

use dohost::capabilities::storage::{ListOptions, ObjectDb};
use dohost::id::ObjectId;
use dohost::rpc::json::{decode, encode};
use dohost::rpc::types::WitType;
use proptest::prelude::*;
use std::collections::BTreeMap;
use wasmtime::component::Val;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

fn arb_type() -> impl Strategy<Value = WitType> {
    let leaf = prop_oneof![
        Just(WitType::Bool),
        Just(WitType::S8),
        Just(WitType::U8),
        Just(WitType::S16),
        Just(WitType::U16),
        Just(WitType::S32),
        Just(WitType::U32),
        Just(WitType::S64),
        Just(WitType::U64),
        Just(WitType::F32),
        Just(WitType::F64),
        Just(WitType::Char),
        Just(WitType::String),
        (1usize..4).prop_map(|n| WitType::Enum(names(n))),
        (1usize..4).prop_map(|n| WitType::Flags(names(n))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| WitType::List(Box::new(t))),
            prop::collection::vec(inner.clone(), 1..4)
                .prop_map(|ts| WitType::Record(names(ts.len()).into_iter().zip(ts).collect())),
            prop::collection::vec(inner.clone(), 1..4).prop_map(WitType::Tuple),
            prop::collection::vec(prop::option::of(inner.clone()), 1..4)
                .prop_map(|ts| WitType::Variant(names(ts.len()).into_iter().zip(ts).collect())),
            // option<option<T>> cannot say some(none) in JSON (documented).
            inner
                .clone()
                .prop_filter("no directly nested options", |t| !matches!(
                    t,
                    WitType::Option(_)
                ))
                .prop_map(|t| WitType::Option(Box::new(t))),
            (prop::option::of(inner.clone()), prop::option::of(inner)).prop_map(|(ok, err)| {
                WitType::Result {
                    ok: ok.map(Box::new),
                    err: err.map(Box::new),
                }
            }),
        ]
    })
}

fn arb_val(ty: &WitType) -> BoxedStrategy<Val> {
    match ty {
        WitType::Bool => any::<bool>().prop_map(Val::Bool).boxed(),
        WitType::S8 => any::<i8>().prop_map(Val::S8).boxed(),
        WitType::U8 => any::<u8>().prop_map(Val::U8).boxed(),
        WitType::S16 => any::<i16>().prop_map(Val::S16).boxed(),
        WitType::U16 => any::<u16>().prop_map(Val::U16).boxed(),
        WitType::S32 => any::<i32>().prop_map(Val::S32).boxed(),
        WitType::U32 => any::<u32>().prop_map(Val::U32).boxed(),
        WitType::S64 => any::<i64>().prop_map(Val::S64).boxed(),
        WitType::U64 => any::<u64>().prop_map(Val::U64).boxed(),
        WitType::F32 => any::<f32>().prop_map(Val::Float32).boxed(),
        WitType::F64 => any::<f64>().prop_map(Val::Float64).boxed(),
        WitType::Char => any::<char>().prop_map(Val::Char).boxed(),
        WitType::String => any::<String>().prop_map(Val::String).boxed(),
        WitType::Enum(n) => prop::sample::select(n.clone()).prop_map(Val::Enum).boxed(),
        WitType::Flags(n) => prop::sample::subsequence(n.clone(), 0..=n.len())
            .prop_map(Val::Flags)
            .boxed(),
        WitType::List(t) => prop::collection::vec(arb_val(t), 0..4)
            .prop_map(Val::List)
            .boxed(),
        WitType::Tuple(ts) => ts
            .iter()
            .map(arb_val)
            .collect::<Vec<_>>()
            .prop_map(Val::Tuple)
            .boxed(),
        WitType::Record(fs) => {
            let names: Vec<String> = fs.iter().map(|(n, _)| n.clone()).collect();
            fs.iter()
                .map(|(_, t)| arb_val(t))
                .collect::<Vec<_>>()
                .prop_map(move |vs| Val::Record(names.iter().cloned().zip(vs).collect()))
                .boxed()
        }
        WitType::Variant(cases) => {
            let options: Vec<BoxedStrategy<Val>> = cases
                .iter()
                .map(|(name, t)| {
                    let name = name.clone();
                    match t {
                        Some(t) => arb_val(t)
                            .prop_map(move |v| Val::Variant(name.clone(), Some(Box::new(v))))
                            .boxed(),
                        None => Just(Val::Variant(name, None)).boxed(),
                    }
                })
                .collect();
            prop::strategy::Union::new(options).boxed()
        }
        WitType::Option(t) => prop::option::of(arb_val(t))
            .prop_map(|v| Val::Option(v.map(Box::new)))
            .boxed(),
        WitType::Result { ok, err } => {
            let ok = match ok {
                Some(t) => arb_val(t)
                    .prop_map(|v| Val::Result(Ok(Some(Box::new(v)))))
                    .boxed(),
                None => Just(Val::Result(Ok(None))).boxed(),
            };
            let err = match err {
                Some(t) => arb_val(t)
                    .prop_map(|v| Val::Result(Err(Some(Box::new(v)))))
                    .boxed(),
                None => Just(Val::Result(Err(None))).boxed(),
            };
            prop_oneof![ok, err].boxed()
        }
        WitType::Unsupported(_) => Just(Val::Bool(false)).boxed(),
    }
}

fn typed_value() -> impl Strategy<Value = (WitType, Val)> {
    arb_type().prop_flat_map(|t| {
        let v = arb_val(&t);
        (Just(t), v)
    })
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z0-9]{1,3}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_value_round_trips_through_json((ty, val) in typed_value()) {
        let json = encode(&val);
        let back = decode(&json, &ty, "v").map_err(|e| TestCaseError::fail(format!("{ty}: {e} for {json}")))?;
        prop_assert_eq!(encode(&back), json);
    }

    #[test]
    fn decoding_any_json_against_any_type_never_panics(ty in arb_type(), json in arb_json()) {
        let _ = decode(&json, &ty, "v");
    }

    #[test]
    fn ids_round_trip_and_only_canonical_text_parses(bytes in any::<[u8; 32]>(), junk in ".{0,80}") {
        let id = ObjectId::parse(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()).unwrap();
        prop_assert_eq!(ObjectId::parse(&id.to_string()), Ok(id));
        let canonical = junk.len() == 64 && junk.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        prop_assert_eq!(ObjectId::parse(&junk).is_ok(), canonical);
    }
}

/// One step of the storage model test.
#[derive(Debug, Clone)]
enum Op {
    Put(String, u8),
    Delete(String),
    Get(String),
    List {
        prefix: Option<String>,
        start: Option<String>,
        end: Option<String>,
        reverse: bool,
        limit: Option<u32>,
    },
    DeleteAll,
    BeginNested,
    CommitNested,
    RollbackNested,
    /// Ends the event and the batch (commit) and starts new ones.
    Commit,
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        "a",
        "ab",
        "abc",
        "b",
        "ba",
        "é",
        "éa",
        "z",
        "\u{10FFFF}",
    ])
    .prop_map(String::from)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => key().prop_map(Op::Delete),
        2 => key().prop_map(Op::Get),
        3 => (prop::option::of(key()), prop::option::of(key()), prop::option::of(key()), any::<bool>(), prop::option::of(0u32..5))
            .prop_map(|(prefix, start, end, reverse, limit)| Op::List { prefix, start, end, reverse, limit }),
        1 => Just(Op::DeleteAll),
        2 => Just(Op::BeginNested),
        2 => Just(Op::CommitNested),
        2 => Just(Op::RollbackNested),
        1 => Just(Op::Commit),
    ]
}

fn model_list(m: &BTreeMap<String, Vec<u8>>, o: &ListOptions) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = m
        .iter()
        .filter(|(k, _)| o.prefix.as_ref().is_none_or(|p| k.starts_with(p.as_str())))
        .filter(|(k, _)| {
            o.start
                .as_ref()
                .is_none_or(|s| k.as_bytes() >= s.as_bytes())
        })
        .filter(|(k, _)| o.end.as_ref().is_none_or(|e| k.as_bytes() < e.as_bytes()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if o.reverse {
        out.reverse();
    }
    if let Some(l) = o.limit {
        out.truncate(l as usize);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn storage_behaves_like_a_map_with_nested_transactions(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("C").join("model.sqlite");
        let mut db = ObjectDb::open(&path).unwrap();
        db.begin().unwrap();
        db.begin_event().unwrap();
        // The committed state, and a stack of states for open nested transactions.
        let mut committed: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut stack: Vec<BTreeMap<String, Vec<u8>>> = vec![BTreeMap::new()];
        for op in ops {
            let top = stack.len() - 1;
            match op {
                Op::Put(k, v) => {
                    db.kv_put(&k, &[v]).unwrap();
                    stack[top].insert(k, vec![v]);
                }
                Op::Delete(k) => {
                    let existed = db.kv_delete(&k).unwrap();
                    prop_assert_eq!(existed, stack[top].remove(&k).is_some());
                }
                Op::Get(k) => prop_assert_eq!(db.kv_get(&k).unwrap(), stack[top].get(&k).cloned()),
                Op::List { prefix, start, end, reverse, limit } => {
                    let o = ListOptions { prefix, start, end, reverse, limit };
                    prop_assert_eq!(db.kv_list(&o).unwrap(), model_list(&stack[top], &o), "{:?}", o);
                }
                Op::DeleteAll => {
                    db.delete_all().unwrap();
                    stack[top].clear();
                }
                Op::BeginNested => {
                    if db.begin_nested().is_ok() {
                        stack.push(stack[top].clone());
                    }
                }
                Op::CommitNested => {
                    let r = db.commit_nested();
                    prop_assert_eq!(r.is_ok(), stack.len() > 1);
                    if stack.len() > 1 {
                        let inner = stack.pop().unwrap();
                        *stack.last_mut().unwrap() = inner;
                    }
                }
                Op::RollbackNested => {
                    let r = db.rollback_nested();
                    prop_assert_eq!(r.is_ok(), stack.len() > 1);
                    if stack.len() > 1 {
                        stack.pop();
                    }
                }
                Op::Commit => {
                    db.finish_event().unwrap();
                    db.commit().unwrap();
                    let state = stack.pop().unwrap();
                    committed = state.clone();
                    stack = vec![state];
                    db.begin().unwrap();
                    db.begin_event().unwrap();
                }
            }
        }
        // Whatever was not committed is gone after a reopen.
        db.rollback();
        drop(db);
                let mut db = ObjectDb::open(&path).unwrap();
        db.begin().unwrap();
        let all = db.kv_list(&ListOptions::default()).unwrap();
        prop_assert_eq!(all, committed.into_iter().collect::<Vec<_>>());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn routing_any_path_never_panics_and_names_only_valid_objects(path in "(/(obj|rpc|_dohost|x|id|[A-Za-z]{1,3}|%[0-9a-fA-F]{0,2}|[0-9a-f]{64}|.{0,4})){0,5}/?") {
        match dohost::server::routes::parse(&path) {
            Ok(dohost::server::routes::Route::Object { path: p, target, .. }) => {
                prop_assert!(p.starts_with('/'));
                if let dohost::server::routes::ObjectAddress::Name(n) = target {
                    prop_assert!(!n.is_empty());
                }
            }
            Ok(_) => {}
            Err(e) => prop_assert!(e.status == 400 || e.status == 404),
        }
    }

    #[test]
    fn manifest_parsing_never_panics(text in ".{0,200}", key in "[a-z_.]{1,20}", value in ".{0,20}") {
        let base = std::path::Path::new("/nonexistent");
        let overrides = dohost::config::Overrides::default();
        let _ = dohost::config::Config::parse(&text, std::path::Path::new("m.toml"), base, &overrides);
        let toml = format!("{key} = {value:?}\n[limits]\n{key} = {value:?}\n");
        let _ = dohost::config::Config::parse(&toml, std::path::Path::new("m.toml"), base, &overrides);
    }
}
