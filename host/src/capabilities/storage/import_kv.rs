//! `dohost:object/kv`: key-value storage in the object's database.

use super::{ListOptions, StorageView};
use crate::bindings::dohost::object::kv;
use crate::bindings::StorageFailure;

type Entry = (String, Vec<u8>);
type Result<T> = std::result::Result<T, StorageFailure>;

impl kv::Host for StorageView<'_> {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>> {
        Ok(self.db.kv_get(&key)?)
    }

    fn get_many(&mut self, keys: Vec<String>) -> Result<Vec<Entry>> {
        Ok(self.db.kv_get_many(&keys)?)
    }

    fn put(&mut self, key: String, value: Vec<u8>) -> Result<()> {
        Ok(self.db.kv_put(&key, &value)?)
    }

    fn put_many(&mut self, entries: Vec<Entry>) -> Result<()> {
        Ok(self.db.kv_put_many(&entries)?)
    }

    fn delete(&mut self, key: String) -> Result<bool> {
        Ok(self.db.kv_delete(&key)?)
    }

    fn delete_many(&mut self, keys: Vec<String>) -> Result<u32> {
        Ok(self.db.kv_delete_many(&keys)?)
    }

    fn list(&mut self, options: kv::ListOptions) -> Result<Vec<Entry>> {
        let options = ListOptions {
            prefix: options.prefix,
            start: options.start,
            end: options.end,
            reverse: options.reverse,
            limit: options.limit,
        };
        Ok(self.db.kv_list(&options)?)
    }
}
