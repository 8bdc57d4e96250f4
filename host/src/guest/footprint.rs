//! What one instance of a component takes from the pooling allocator: core
//! instances, memories and tables. A Rust class is one core instance and one
//! memory; a Python class built by componentize-py is dozens of core
//! instances. The pool is sized from the loaded classes so that `max_active`
//! instances of the largest one fit (a fixed guess per slot let ~250 active
//! Python objects stop every class from instantiating).

use wasmparser::{Instance, Parser, Payload};

/// Pool resources one instance of a component needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
}

impl Footprint {
    /// The larger of each count.
    pub fn max(self, other: Footprint) -> Footprint {
        Footprint {
            core_instances: self.core_instances.max(other.core_instances),
            memories: self.memories.max(other.memories),
            tables: self.tables.max(other.tables),
        }
    }
}

/// Counts, in a component binary, the core instances it instantiates and
/// the memories and tables its modules define (each module is assumed to be
/// instantiated once, as toolchains emit them). Unreadable input counts
/// nothing; compiling it reports the real error.
pub fn of_component(bytes: &[u8]) -> Footprint {
    let mut f = Footprint::default();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return f;
        };
        match payload {
            Payload::InstanceSection(section) => {
                for instance in section.into_iter().flatten() {
                    if matches!(instance, Instance::Instantiate { .. }) {
                        f.core_instances += 1;
                    }
                }
            }
            // Defined (not imported) memories and tables of every module.
            Payload::MemorySection(section) => f.memories += section.count(),
            Payload::TableSection(section) => f.tables += section.count(),
            _ => {}
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(path: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `make build`)", path.display()))
    }

    #[test]
    fn a_python_class_needs_many_more_core_instances_than_a_rust_one() {
        let rust = of_component(&built("target/wasm32-wasip2/guest/counter.wasm"));
        let python = of_component(&built("target/polyglot/py_counter.wasm"));
        assert!(rust.core_instances >= 1 && rust.memories >= 1, "{rust:?}");
        assert!(
            python.core_instances > 4 * rust.core_instances,
            "{python:?} vs {rust:?}"
        );
        assert_eq!(rust.max(python), python.max(rust));
    }

    #[test]
    fn an_empty_or_broken_binary_counts_nothing() {
        assert_eq!(of_component(b""), Footprint::default());
        assert_eq!(of_component(b"not wasm"), Footprint::default());
    }
}
