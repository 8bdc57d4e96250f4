//! Typed RPC: the functions a class exports beyond `dohost:object/handler` are
//! its methods. They are discovered from the component's type at load time and
//! called with arguments decoded from JSON by their WIT types, so any guest
//! language gets typed RPC for free.

pub mod dynamic;
pub mod json;
pub mod types;

use anyhow::bail;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use types::WitType;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, Val};

/// The export that carries the object's event handlers, not RPC methods.
const HANDLER_INTERFACE: &str = "dohost:object/handler";

/// One RPC method.
#[derive(Debug)]
pub struct RpcMethod {
    /// The function name as in WIT (`add-score`).
    pub name: String,
    /// The exported interface that holds it (`dohost:examples/counter@0.1.0`),
    /// or none for a function exported by the world itself.
    pub interface: Option<String>,
    pub index: ComponentExportIndex,
    pub params: Vec<(String, WitType)>,
    pub result: Option<WitType>,
    /// The `call` of `dohost:object/dynamic`: arguments and result are JSON
    /// text, and an exception comes back as a `thrown` error.
    pub dynamic: bool,
}

/// Why arguments do not fit a method.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgsError(pub String);

impl RpcMethod {
    fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(n, t)| format!("{n}: {t}"))
            .collect();
        match &self.result {
            Some(r) => format!("{}({}) -> {r}", self.name, params.join(", ")),
            None => format!("{}({})", self.name, params.join(", ")),
        }
    }

    /// Decodes arguments given as a JSON array (in order) or an object keyed by
    /// parameter name.
    pub fn decode_args(&self, args: &Value) -> Result<Vec<Val>, ArgsError> {
        let n = self.params.len();
        let values: Vec<&Value> = match args {
            Value::Array(items) if items.len() == n => items.iter().collect(),
            Value::Array(items) => {
                return Err(ArgsError(format!(
                    "{} takes {n} argument(s), got {}: {}",
                    self.name,
                    items.len(),
                    self.signature()
                )))
            }
            Value::Object(map) => {
                if let Some(extra) = map.keys().find(|k| !self.params.iter().any(|(p, _)| p == *k)) {
                    return Err(ArgsError(format!("{} has no parameter {extra:?}: {}", self.name, self.signature())));
                }
                let mut values = Vec::with_capacity(n);
                for (p, t) in &self.params {
                    match (map.get(p), t) {
                        (Some(v), _) => values.push(v),
                        (None, WitType::Option(_)) => values.push(&Value::Null),
                        (None, _) => {
                            return Err(ArgsError(format!("missing argument {p}: {}", self.signature())))
                        }
                    }
                }
                values
            }
            Value::Null if n == 0 => Vec::new(),
            other => {
                return Err(ArgsError(format!(
                    "arguments must be a JSON array (or an object keyed by parameter name), got {other}"
                )))
            }
        };
        self.params
            .iter()
            .zip(values)
            .map(|((name, ty), v)| {
                json::decode(v, ty, &format!("parameter {name}"))
                    .map_err(|e| ArgsError(e.to_string()))
            })
            .collect()
    }

    /// A description for `GET /rpc/<class>`.
    pub fn describe(&self) -> Value {
        json!({
            "name": self.name,
            "interface": self.interface,
            "params": self.params.iter().map(|(n, t)| json!({"name": n, "type": t.to_string()})).collect::<Vec<_>>(),
            "result": self.result.as_ref().map(ToString::to_string),
            "signature": self.signature(),
        })
    }
}

/// The RPC methods of a class, by name.
#[derive(Debug, Default)]
pub struct RpcMethods {
    methods: BTreeMap<String, Arc<RpcMethod>>,
    /// Exported functions that cannot be called over JSON, with the reason.
    skipped: Vec<(String, String)>,
    /// Untyped RPC (`dohost:object/dynamic`), if the class exports it: any
    /// method not found above is tried there.
    dynamic: Option<Arc<RpcMethod>>,
}

impl RpcMethods {
    /// Finds the methods `component` exports.
    pub fn discover(
        engine: &wasmtime::Engine,
        component: &Component,
    ) -> anyhow::Result<RpcMethods> {
        let mut found = RpcMethods::default();
        let ty = component.component_type();
        for (export, item) in ty.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(f) => {
                    let index = component.get_export_index(None, export);
                    found.add(None, export, index, &f)?;
                }
                ComponentItem::ComponentInstance(inst) => {
                    let unversioned = export.split('@').next().unwrap_or(export);
                    // RPC interfaces belong to a package (`pkg:name/iface`): plain
                    // names are toolchain internals (componentize-py leaves one).
                    if unversioned == HANDLER_INTERFACE
                        || unversioned == crate::capabilities::timers::EVENTS_INTERFACE
                        || export.starts_with("wasi:")
                        || !export.contains(':')
                    {
                        continue;
                    }
                    let Some(inst_index) = component.get_export_index(None, export) else {
                        continue;
                    };
                    if unversioned == dynamic::INTERFACE {
                        found.add_dynamic(component, &inst_index);
                        continue;
                    }
                    for (name, item) in inst.exports(engine) {
                        if let ComponentItem::ComponentFunc(f) = item.ty {
                            let index = component.get_export_index(Some(&inst_index), name);
                            found.add(Some(export), name, index, &f)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(found)
    }

    fn add(
        &mut self,
        interface: Option<&str>,
        name: &str,
        index: Option<ComponentExportIndex>,
        f: &wasmtime::component::types::ComponentFunc,
    ) -> anyhow::Result<()> {
        let Some(index) = index else {
            return Ok(());
        };
        let params: Vec<(String, WitType)> = f
            .params()
            .map(|(n, t)| (n.to_string(), WitType::from_wasmtime(&t)))
            .collect();
        let result = f.results().next().map(|t| WitType::from_wasmtime(&t));
        let unsupported = params
            .iter()
            .find_map(|(_, t)| t.unsupported())
            .or_else(|| result.as_ref().and_then(WitType::unsupported));
        if f.async_() {
            self.skipped
                .push((name.to_string(), "async functions are not supported".into()));
            return Ok(());
        }
        if let Some(what) = unsupported {
            self.skipped.push((
                name.to_string(),
                format!("a {what} cannot be passed over RPC"),
            ));
            return Ok(());
        }
        if let Some(existing) = self.methods.get(name) {
            bail!(
                "RPC method {name} is exported by both {} and {}; method names must be unique",
                existing.interface.as_deref().unwrap_or("the world"),
                interface.unwrap_or("the world")
            );
        }
        self.methods.insert(
            name.to_string(),
            Arc::new(RpcMethod {
                name: name.to_string(),
                interface: interface.map(str::to_string),
                index,
                params,
                result,
                dynamic: false,
            }),
        );
        Ok(())
    }

    fn add_dynamic(&mut self, component: &Component, instance: &ComponentExportIndex) {
        let Some(index) = component.get_export_index(Some(instance), "call") else {
            return;
        };
        let text = || WitType::String;
        self.dynamic = Some(Arc::new(RpcMethod {
            name: "call".into(),
            interface: Some(dynamic::INTERFACE.into()),
            index,
            params: vec![("method".into(), text()), ("args-json".into(), text())],
            result: Some(text()),
            dynamic: true,
        }));
    }

    /// The untyped RPC entry point, if the class has one.
    pub fn dynamic(&self) -> Option<&Arc<RpcMethod>> {
        self.dynamic.as_ref()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<RpcMethod>> {
        self.methods.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.methods.keys().map(String::as_str).collect()
    }

    /// The JSON description served at `GET /rpc/<class>`.
    pub fn describe(&self, class: &str) -> Value {
        json!({
            "class": class,
            "methods": self.methods.values().map(|m| m.describe()).collect::<Vec<_>>(),
            // Untyped: every public method of the class, with JSON arguments.
            "dynamic": self.dynamic.is_some(),
            "unsupported": self.skipped.iter().map(|(n, why)| json!({"name": n, "reason": why})).collect::<Vec<_>>(),
        })
    }
}

/// The HTTP status of a method's result: an `err` of a `result` is 422
/// (the call ran and the object refused it); everything else is 200.
pub fn result_status(result: &Option<Val>) -> u16 {
    match result {
        Some(Val::Result(Err(_))) => 422,
        _ => 200,
    }
}
