//! `dohost:object/kv`: key-value storage in the object's database.

use super::{ListOptions, StorageView};
use crate::bindings::dohost::object::kv;

type Entry = (String, Vec<u8>);

impl kv::Host for StorageView<'_> {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        let result = self.db.kv_get(&key);
        self.result(result)
    }

    fn get_many(&mut self, keys: Vec<String>) -> wasmtime::Result<Result<Vec<Entry>, String>> {
        let result = self.db.kv_get_many(&keys);
        self.result(result)
    }

    fn put(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let result = self.db.kv_put(&key, &value);
        self.result(result)
    }

    fn put_many(&mut self, entries: Vec<Entry>) -> wasmtime::Result<Result<(), String>> {
        let result = self.db.kv_put_many(&entries);
        self.result(result)
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, String>> {
        let result = self.db.kv_delete(&key);
        self.result(result)
    }

    fn delete_many(&mut self, keys: Vec<String>) -> wasmtime::Result<Result<u32, String>> {
        let result = self.db.kv_delete_many(&keys);
        self.result(result)
    }

    fn list(&mut self, options: kv::ListOptions) -> wasmtime::Result<Result<Vec<Entry>, String>> {
        let options = ListOptions {
            prefix: options.prefix,
            start: options.start,
            end: options.end,
            reverse: options.reverse,
            limit: options.limit,
        };
        let result = self.db.kv_list(&options);
        self.result(result)
    }

    /// Everything of the guest goes, host metadata about it too (the alarm,
    /// the auto-response pair); the alarm index and the socket hub follow at
    /// the commit, from the metadata changes.
    fn delete_all(&mut self) -> wasmtime::Result<Result<(), String>> {
        self.guest(true, |db| db.delete_all())
    }
}
