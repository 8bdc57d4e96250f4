//! Any request path: routing never panics, and an object route always names a
//! non-empty name or a canonical id, with a path that starts with `/`.
#![no_main]

use dohost::server::routes::{parse, Route, ObjectAddress};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    match parse(path) {
        Ok(Route::Object { path, target, .. }) => {
            assert!(path.starts_with('/'));
            if let ObjectAddress::Name(name) = target {
                assert!(!name.is_empty());
            }
        }
        Ok(_) => {}
        Err(e) => assert!(e.status == 400 || e.status == 404),
    }
});
