//! Any manifest text: validation returns a config or an error, never panics.
#![no_main]

use dohost::config::{Config, Overrides};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::parse(text, Path::new("dohost.toml"), Path::new("/nonexistent"), &Overrides::default());
});
