//! `WitType`: the structural type of an RPC parameter or result, copied out of
//! wasmtime's component types at class load, so that the JSON codec and the
//! method descriptions can be tested without any wasm.

use std::fmt;
use wasmtime::component::Type;

/// A WIT value type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitType {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
    String,
    List(Box<WitType>),
    Record(Vec<(String, WitType)>),
    Tuple(Vec<WitType>),
    Variant(Vec<(String, Option<WitType>)>),
    Enum(Vec<String>),
    Option(Box<WitType>),
    Result {
        ok: Option<Box<WitType>>,
        err: Option<Box<WitType>>,
    },
    Flags(Vec<String>),
    /// Resources, streams, futures, maps: not callable over JSON.
    Unsupported(&'static str),
}

impl WitType {
    /// Copies a wasmtime type.
    pub fn from_wasmtime(ty: &Type) -> WitType {
        match ty {
            Type::Bool => WitType::Bool,
            Type::S8 => WitType::S8,
            Type::U8 => WitType::U8,
            Type::S16 => WitType::S16,
            Type::U16 => WitType::U16,
            Type::S32 => WitType::S32,
            Type::U32 => WitType::U32,
            Type::S64 => WitType::S64,
            Type::U64 => WitType::U64,
            Type::Float32 => WitType::F32,
            Type::Float64 => WitType::F64,
            Type::Char => WitType::Char,
            Type::String => WitType::String,
            Type::List(l) => WitType::List(Box::new(WitType::from_wasmtime(&l.ty()))),
            Type::Record(r) => WitType::Record(
                r.fields()
                    .map(|f| (f.name.to_string(), WitType::from_wasmtime(&f.ty)))
                    .collect(),
            ),
            Type::Tuple(t) => {
                WitType::Tuple(t.types().map(|t| WitType::from_wasmtime(&t)).collect())
            }
            Type::Variant(v) => WitType::Variant(
                v.cases()
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.ty.as_ref().map(WitType::from_wasmtime),
                        )
                    })
                    .collect(),
            ),
            Type::Enum(e) => WitType::Enum(e.names().map(str::to_string).collect()),
            Type::Option(o) => WitType::Option(Box::new(WitType::from_wasmtime(&o.ty()))),
            Type::Result(r) => WitType::Result {
                ok: r.ok().as_ref().map(|t| Box::new(WitType::from_wasmtime(t))),
                err: r
                    .err()
                    .as_ref()
                    .map(|t| Box::new(WitType::from_wasmtime(t))),
            },
            Type::Flags(f) => WitType::Flags(f.names().map(str::to_string).collect()),
            Type::Own(_) | Type::Borrow(_) => WitType::Unsupported("resource"),
            Type::Future(_) => WitType::Unsupported("future"),
            Type::Stream(_) => WitType::Unsupported("stream"),
            Type::ErrorContext => WitType::Unsupported("error-context"),
            Type::Map(_) => WitType::Unsupported("map"),
            Type::FixedLengthList(_) => WitType::Unsupported("fixed-length list"),
        }
    }

    /// The first unsupported type inside this one, if any.
    pub fn unsupported(&self) -> Option<&'static str> {
        match self {
            WitType::Unsupported(what) => Some(what),
            WitType::List(t) | WitType::Option(t) => t.unsupported(),
            WitType::Record(fields) => fields.iter().find_map(|(_, t)| t.unsupported()),
            WitType::Tuple(ts) => ts.iter().find_map(WitType::unsupported),
            WitType::Variant(cases) => cases.iter().find_map(|(_, t)| t.as_ref()?.unsupported()),
            WitType::Result { ok, err } => ok
                .as_ref()
                .and_then(|t| t.unsupported())
                .or_else(|| err.as_ref().and_then(|t| t.unsupported())),
            _ => None,
        }
    }
}

/// WIT syntax, with compound types spelled out structurally
/// (`list<record { player: string, total: u64 }>`).
impl fmt::Display for WitType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: &[String]| f.write_str(&items.join(", "));
        match self {
            WitType::Bool => f.write_str("bool"),
            WitType::S8 => f.write_str("s8"),
            WitType::U8 => f.write_str("u8"),
            WitType::S16 => f.write_str("s16"),
            WitType::U16 => f.write_str("u16"),
            WitType::S32 => f.write_str("s32"),
            WitType::U32 => f.write_str("u32"),
            WitType::S64 => f.write_str("s64"),
            WitType::U64 => f.write_str("u64"),
            WitType::F32 => f.write_str("f32"),
            WitType::F64 => f.write_str("f64"),
            WitType::Char => f.write_str("char"),
            WitType::String => f.write_str("string"),
            WitType::List(t) => write!(f, "list<{t}>"),
            WitType::Option(t) => write!(f, "option<{t}>"),
            WitType::Record(fields) => {
                f.write_str("record { ")?;
                list(
                    f,
                    &fields
                        .iter()
                        .map(|(n, t)| format!("{n}: {t}"))
                        .collect::<Vec<_>>(),
                )?;
                f.write_str(" }")
            }
            WitType::Tuple(ts) => {
                f.write_str("tuple<")?;
                list(f, &ts.iter().map(ToString::to_string).collect::<Vec<_>>())?;
                f.write_str(">")
            }
            WitType::Variant(cases) => {
                f.write_str("variant { ")?;
                let cases: Vec<String> = cases
                    .iter()
                    .map(|(n, t)| match t {
                        Some(t) => format!("{n}({t})"),
                        None => n.clone(),
                    })
                    .collect();
                list(f, &cases)?;
                f.write_str(" }")
            }
            WitType::Enum(names) => write!(f, "enum {{ {} }}", names.join(", ")),
            WitType::Flags(names) => write!(f, "flags {{ {} }}", names.join(", ")),
            WitType::Result { ok, err } => match (ok, err) {
                (None, None) => f.write_str("result"),
                (Some(ok), None) => write!(f, "result<{ok}>"),
                (None, Some(err)) => write!(f, "result<_, {err}>"),
                (Some(ok), Some(err)) => write!(f, "result<{ok}, {err}>"),
            },
            WitType::Unsupported(what) => f.write_str(what),
        }
    }
}
