//! `dohost:object/namespaces`: ids of objects, and calls and requests to them
//! (through `Peers`, with cycle detection and a timeout).

use crate::bindings::dohost::object::namespaces;
use crate::bindings::dohost::object::types::{Request, Response};
use crate::config::is_valid_class_name;
use crate::id::ObjectId;
use crate::instance::InstanceState;
use crate::peers::{check_cycle, Target};
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};

/// Names remembered per instance from `id-from-name` (then forgotten).
const KNOWN_NAMES: usize = 1024;

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    namespaces::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

fn check_class(class: &str) -> Result<(), String> {
    if is_valid_class_name(class) {
        Ok(())
    } else {
        Err(format!("{class:?} is not a class name"))
    }
}

impl InstanceState {
    /// Validates a call target: a served class, a well-formed id, no cycle.
    /// The name is known if this instance derived the id from it.
    fn target(&self, class: String, id: &str) -> Result<Target, String> {
        check_class(&class)?;
        if !self.peers.knows_class(&class) {
            return Err(format!("unknown class {class:?}"));
        }
        let id = ObjectId::parse(id).map_err(|e| e.to_string())?;
        let name = self.known_names.get(&(class.clone(), id)).cloned();
        check_cycle(&self.chain, &class, id, name.as_deref())?;
        Ok(Target { class, id, name })
    }

    /// Time spent waiting on another object does not count against this
    /// event's CPU limit.
    fn credit_wait(&mut self, started: Instant) {
        self.extend_deadline(started.elapsed());
    }
}

impl namespaces::Host for InstanceState {
    async fn id_from_name(
        &mut self,
        class: String,
        name: String,
    ) -> wasmtime::Result<Result<String, String>> {
        if let Err(e) = check_class(&class) {
            return Ok(Err(e));
        }
        let id = ObjectId::from_name(&class, &name);
        // Remember the name so calls through this id address the object by name.
        if self.known_names.len() >= KNOWN_NAMES {
            self.known_names.clear();
        }
        self.known_names.insert((class, id), name);
        Ok(Ok(id.to_string()))
    }

    async fn new_unique_id(&mut self, class: String) -> wasmtime::Result<Result<String, String>> {
        Ok(check_class(&class).map(|()| ObjectId::new_unique().to_string()))
    }

    async fn id_from_string(
        &mut self,
        class: String,
        id: String,
    ) -> wasmtime::Result<Result<String, String>> {
        Ok(check_class(&class).and_then(|()| {
            ObjectId::parse(&id)
                .map(|id| id.to_string())
                .map_err(|e| e.to_string())
        }))
    }

    async fn call(
        &mut self,
        class: String,
        id: String,
        method: String,
        args_json: String,
    ) -> wasmtime::Result<Result<String, String>> {
        let target = match self.target(class, &id) {
            Ok(target) => target,
            Err(e) => return Ok(Err(e)),
        };
        let args = match serde_json::from_str(&args_json) {
            Ok(args) => args,
            Err(e) => return Ok(Err(format!("args-json is not JSON: {e}"))),
        };
        let started = Instant::now();
        let result = self
            .peers
            .call(target, method, args, self.chain.clone())
            .await;
        self.credit_wait(started);
        Ok(result.map(|v| v.to_string()))
    }

    async fn fetch(
        &mut self,
        class: String,
        id: String,
        req: Request,
    ) -> wasmtime::Result<Result<Response, String>> {
        let target = match self.target(class, &id) {
            Ok(target) => target,
            Err(e) => return Ok(Err(e)),
        };
        let started = Instant::now();
        let result = self.peers.fetch(target, req, self.chain.clone()).await;
        self.credit_wait(started);
        Ok(result)
    }
}
