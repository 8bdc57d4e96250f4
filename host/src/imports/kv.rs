//! `dohost:object/kv`: key-value storage in the object's database.

use crate::bindings::dohost::object::kv::{self, ListOptions};
use crate::instance::InstanceState;
use crate::storage;
use wasmtime::component::{HasSelf, Linker};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    kv::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

type Entry = (String, Vec<u8>);

impl InstanceState {
    fn kv<T>(
        &mut self,
        f: impl FnOnce(&mut storage::ObjectDb) -> storage::Result<T>,
    ) -> wasmtime::Result<Result<T, String>> {
        let result = f(&mut self.db);
        self.storage_result(result)
    }
}

impl kv::Host for InstanceState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        self.kv(|db| db.kv_get(&key))
    }

    fn get_many(&mut self, keys: Vec<String>) -> wasmtime::Result<Result<Vec<Entry>, String>> {
        self.kv(|db| db.kv_get_many(&keys))
    }

    fn put(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.kv(|db| db.kv_put(&key, &value))
    }

    fn put_many(&mut self, entries: Vec<Entry>) -> wasmtime::Result<Result<(), String>> {
        self.kv(|db| db.kv_put_many(&entries))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, String>> {
        self.kv(|db| db.kv_delete(&key))
    }

    fn delete_many(&mut self, keys: Vec<String>) -> wasmtime::Result<Result<u32, String>> {
        self.kv(|db| db.kv_delete_many(&keys))
    }

    fn list(&mut self, options: ListOptions) -> wasmtime::Result<Result<Vec<Entry>, String>> {
        let options = storage::ListOptions {
            prefix: options.prefix,
            start: options.start,
            end: options.end,
            reverse: options.reverse,
            limit: options.limit,
        };
        self.kv(|db| db.kv_list(&options))
    }

    fn delete_all(&mut self) -> wasmtime::Result<Result<(), String>> {
        self.effects.alarm_dirty = true;
        // The auto-response pair goes with everything else.
        self.effects
            .socket_ops
            .push(crate::sockets::SocketOp::SetAutoResponse(None));
        let result = self.db.guest_op(true, |db| {
            db.delete_all(crate::storage::META_DELETED_WITH_ALL)
        });
        self.storage_result(result)
    }
}
