//! `dohost:object/namespaces`: ids of other objects; calls to them are not
//! implemented yet.

use super::unsupported;
use crate::bindings::dohost::object::namespaces;
use crate::bindings::dohost::object::types::{Request, Response};
use crate::config::is_valid_class_name;
use crate::id::ObjectId;
use crate::instance::InstanceState;
use wasmtime::component::{HasSelf, Linker};

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

impl namespaces::Host for InstanceState {
    async fn id_from_name(
        &mut self,
        class: String,
        name: String,
    ) -> wasmtime::Result<Result<String, String>> {
        Ok(check_class(&class).map(|()| ObjectId::from_name(&class, &name).to_string()))
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
        _class: String,
        _id: String,
        _method: String,
        _args_json: String,
    ) -> wasmtime::Result<Result<String, String>> {
        Ok(Err(unsupported("calls between objects (namespaces.call)")))
    }

    async fn fetch(
        &mut self,
        _class: String,
        _id: String,
        _req: Request,
    ) -> wasmtime::Result<Result<Response, String>> {
        Ok(Err(unsupported(
            "requests between objects (namespaces.fetch)",
        )))
    }
}
