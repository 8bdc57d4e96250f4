//! The host's modules form no cycle: `cargo test -p dohost --test module_graph`.
//!
//! A node is a top-level module (`src/<name>.rs` or `src/<name>/`), and each
//! capability (`src/capabilities/<name>/`) is a node of its own; an edge is
//! any `crate::<module>` path in a file of another node (in `use` lines and
//! inline alike). `super::` paths stay inside their node by construction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that every other module may use and that use none of ours.
const LEAVES: &[&str] = &["config", "id", "clock", "deadline", "blocking"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The node a file under `src/` belongs to (`None` for lib.rs and main.rs).
fn node_of(relative: &Path) -> Option<String> {
    let parts: Vec<String> = relative
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => None,
        [first, second, ..] if first == "capabilities" && second != "mod" => {
            Some(format!("capabilities::{second}"))
        }
        [first, ..] => Some(first.clone()),
        [] => None,
    }
}

/// The node a path `crate::a::b…` names (`capabilities` lists the
/// capability submodules).
fn target_of(path: &str, capabilities: &BTreeSet<String>) -> String {
    let mut segments = path.split("::");
    let first = segments.next().unwrap_or_default().to_string();
    match segments.next() {
        Some(second) if first == "capabilities" && capabilities.contains(second) => {
            format!("capabilities::{second}")
        }
        _ => first,
    }
}

/// Every `crate::…` path in `text`, outside comments.
fn crate_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(after.len());
            paths.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    paths
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let capabilities: BTreeSet<String> = std::fs::read_dir(src.join("capabilities"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().to_string()))
        .filter(|name| name != "mod")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = node_of(file.strip_prefix(&src).unwrap()) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let targets = edges.entry(from.clone()).or_default();
        for path in crate_paths(&text) {
            let to = target_of(&path, &capabilities);
            // `crate::capabilities::storage` from inside storage is itself.
            if to != from && !to.is_empty() {
                targets.insert(to);
            }
        }
    }
    edges
}

/// A cycle through `start`, if there is one.
fn cycle_from(
    edges: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|n| n == node) {
        let mut cycle = path[i..].to_vec();
        cycle.push(node.to_string());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for next in edges.get(node).into_iter().flatten() {
        if let Some(cycle) = cycle_from(edges, next, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let edges = graph();
    assert!(edges.len() > 15, "the scan found the modules: {edges:?}");
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = cycle_from(&edges, node, &mut Vec::new(), &mut done) {
            panic!("module cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn leaves_use_no_other_module() {
    let edges = graph();
    for leaf in LEAVES {
        let uses = edges.get(*leaf).cloned().unwrap_or_default();
        assert!(uses.is_empty(), "{leaf} is a leaf but uses {uses:?}");
    }
}

/// Prints the graph (`-- --nocapture`), for the README's diagram.
#[test]
fn print_the_graph() {
    for (from, to) in graph() {
        println!("{from} → {}", to.into_iter().collect::<Vec<_>>().join(", "));
    }
}
