//! A Cloudflare project's wrangler config (`wrangler.jsonc`, `wrangler.json`
//! or `wrangler.toml`), read for `dohost build`: what dohost understands
//! becomes a dohost manifest, every other key is named as ignored, and what
//! would change behaviour silently is refused with the key at fault.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The config files dohost looks for in a project, in this order.
pub const CONFIG_FILES: [&str; 3] = ["wrangler.jsonc", "wrangler.json", "wrangler.toml"];

/// Keys read; anything else is reported as ignored.
const KNOWN: [&str; 9] = [
    "$schema",
    "name",
    "main",
    "compatibility_date",
    "compatibility_flags",
    "durable_objects",
    "migrations",
    "vars",
    "rules",
];

/// The module rule types a bundle can honour (`CompiledWasm` is refused by the
/// bundler with its reason: StarlingMonkey has no `WebAssembly`).
const RULE_TYPES: [&str; 5] = ["Text", "Data", "ESModule", "CommonJS", "CompiledWasm"];

/// A wrangler module rule: imports matching `globs` load as `type`.
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct Rule {
    #[serde(rename = "type")]
    pub kind: String,
    pub globs: Vec<String>,
    /// False: later rules of the same type (the defaults too) do not apply.
    pub fallthrough: bool,
}

/// What dohost takes from a wrangler config.
#[derive(Debug, Default, PartialEq)]
pub struct Project {
    pub name: Option<String>,
    /// The Worker's main module, relative to the project.
    pub main: PathBuf,
    /// `durable_objects.bindings`: binding name → class.
    pub bindings: BTreeMap<String, String>,
    /// The migrations, in order.
    pub migrations: Vec<WranglerMigration>,
    /// `vars`; a non-string value is kept as its JSON text.
    pub vars: BTreeMap<String, String>,
    /// `assets.directory` (relative to the project) and `assets.binding`.
    pub assets: Option<(PathBuf, Option<String>)>,
    /// `rules`, in order (applied before wrangler's default rules).
    pub rules: Vec<Rule>,
    /// `compatibility_flags` has `nodejs_compat` (or `nodejs_compat_v2`):
    /// `node:` modules and Node's globals, as far as dohost provides them.
    pub nodejs_compat: bool,
    /// Keys present but not dohost's (`observability`, `assets.html_handling`, …).
    pub ignored: Vec<String>,
}

/// A migration dohost applies: its tag, `new_sqlite_classes` and `deleted_classes`.
#[derive(Debug, Default, PartialEq)]
pub struct WranglerMigration {
    pub tag: String,
    pub new_sqlite_classes: Vec<String>,
    pub deleted_classes: Vec<String>,
}

impl Project {
    /// The classes the project serves: created by its migrations, not deleted.
    pub fn classes(&self) -> Vec<String> {
        let deleted: Vec<&String> = self
            .migrations
            .iter()
            .flat_map(|m| &m.deleted_classes)
            .collect();
        self.migrations
            .iter()
            .flat_map(|m| m.new_sqlite_classes.iter())
            .filter(|c| !deleted.contains(c))
            .cloned()
            .collect()
    }
}

/// The first of `CONFIG_FILES` in `dir`.
pub fn find(dir: &Path) -> Option<PathBuf> {
    CONFIG_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// The config in the project folder `dir`, or an error naming the files looked for.
pub fn find_in(dir: &Path) -> anyhow::Result<PathBuf> {
    find(dir).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no wrangler config (one of {})",
            dir.display(),
            CONFIG_FILES.join(", ")
        )
    })
}

/// Reads the config at `path`; errors name the file and the key.
pub fn read(path: &Path) -> anyhow::Result<Project> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let value: Value = if path.extension().is_some_and(|e| e == "toml") {
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: invalid TOML: {e}", path.display()))?;
        serde_json::to_value(table)?
    } else {
        serde_json::from_str(&strip_jsonc(&text))
            .map_err(|e| anyhow::anyhow!("{}: invalid JSON: {e}", path.display()))?
    };
    project(&value).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn project(value: &Value) -> Result<Project, String> {
    let top = value.as_object().ok_or("the config must be an object")?;
    let mut project = Project {
        name: top.get("name").and_then(Value::as_str).map(str::to_string),
        main: PathBuf::from(
            string(top, "main", "main")?
                .ok_or("main: missing (the Worker's main module, e.g. \"src/index.ts\")")?,
        ),
        ..Project::default()
    };
    for (key, value) in top {
        match key.as_str() {
            k if KNOWN.contains(&k) => {}
            "assets" => project.assets = Some(assets(value, &mut project.ignored)?),
            other => project.ignored.push(other.to_string()),
        }
    }
    if let Some(flags) = top.get("compatibility_flags").and_then(Value::as_array) {
        for flag in flags.iter().filter_map(Value::as_str) {
            match flag {
                "nodejs_compat" | "nodejs_compat_v2" => project.nodejs_compat = true,
                other => project
                    .ignored
                    .push(format!("compatibility_flags: {other}")),
            }
        }
    }
    if let Some(objects) = top.get("durable_objects") {
        project.bindings = bindings(objects)?;
    }
    if let Some(migrations) = top.get("migrations") {
        project.migrations = migrations_of(migrations)?;
    }
    if let Some(rules) = top.get("rules") {
        project.rules = rules_of(rules)?;
    }
    if let Some(vars) = top.get("vars") {
        let vars = vars.as_object().ok_or("vars: must be a table of names")?;
        for (name, value) in vars {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            project.vars.insert(name.clone(), text);
        }
    }
    Ok(project)
}

fn string(table: &Map<String, Value>, name: &str, key: &str) -> Result<Option<String>, String> {
    match table.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key}: must be a string")),
    }
}

fn assets(value: &Value, ignored: &mut Vec<String>) -> Result<(PathBuf, Option<String>), String> {
    let table = value.as_object().ok_or("assets: must be a table")?;
    let directory = string(table, "directory", "assets.directory")?
        .ok_or("assets.directory: missing (the folder of static files)")?;
    let binding = string(table, "binding", "assets.binding")?;
    for key in table
        .keys()
        .filter(|k| *k != "directory" && *k != "binding")
    {
        ignored.push(format!("assets.{key}"));
    }
    Ok((PathBuf::from(directory), binding))
}

fn bindings(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let list = value
        .get("bindings")
        .map(|b| {
            b.as_array()
                .ok_or("durable_objects.bindings: must be a list")
        })
        .transpose()?;
    for (i, binding) in list.into_iter().flatten().enumerate() {
        let key = format!("durable_objects.bindings[{i}]");
        let table = binding
            .as_object()
            .ok_or(format!("{key}: must be a table"))?;
        if table.contains_key("script_name") {
            return Err(format!("{key}.script_name: not supported: a class of another Worker; serve its classes in this project"));
        }
        let name =
            string(table, "name", &format!("{key}.name"))?.ok_or(format!("{key}.name: missing"))?;
        let class = string(table, "class_name", &format!("{key}.class_name"))?
            .ok_or(format!("{key}.class_name: missing"))?;
        out.insert(name, class);
    }
    Ok(out)
}

fn rules_of(value: &Value) -> Result<Vec<Rule>, String> {
    let list = value.as_array().ok_or("rules: must be a list")?;
    let mut out = Vec::new();
    for (i, rule) in list.iter().enumerate() {
        let key = format!("rules[{i}]");
        let table = rule.as_object().ok_or(format!("{key}: must be a table"))?;
        let kind =
            string(table, "type", &format!("{key}.type"))?.ok_or(format!("{key}.type: missing"))?;
        if !RULE_TYPES.contains(&kind.as_str()) {
            return Err(format!(
                "{key}.type: unknown module type {kind:?} (one of {})",
                RULE_TYPES.join(", ")
            ));
        }
        let globs = table
            .get("globs")
            .and_then(Value::as_array)
            .and_then(|g| g.iter().map(|g| g.as_str().map(str::to_string)).collect())
            .ok_or(format!("{key}.globs: must be a list of globs"))?;
        let fallthrough = match table.get("fallthrough") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(format!("{key}.fallthrough: must be true or false")),
        };
        out.push(Rule {
            kind,
            globs,
            fallthrough,
        });
    }
    Ok(out)
}

fn migrations_of(value: &Value) -> Result<Vec<WranglerMigration>, String> {
    let list = value.as_array().ok_or("migrations: must be a list")?;
    let mut out = Vec::new();
    for (i, migration) in list.iter().enumerate() {
        let key = format!("migrations[{i}]");
        let table = migration
            .as_object()
            .ok_or(format!("{key}: must be a table"))?;
        let tag =
            string(table, "tag", &format!("{key}.tag"))?.ok_or(format!("{key}.tag: missing"))?;
        let mut migration = WranglerMigration {
            tag,
            ..WranglerMigration::default()
        };
        for (name, value) in table {
            let names = || -> Result<Vec<String>, String> {
                let list = value
                    .as_array()
                    .ok_or(format!("{key}.{name}: must be a list"))?;
                list.iter()
                    .map(|c| c.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or(format!("{key}.{name}: must list class names"))
            };
            match name.as_str() {
                "tag" => {}
                "new_sqlite_classes" => migration.new_sqlite_classes = names()?,
                "deleted_classes" => migration.deleted_classes = names()?,
                "new_classes" => {
                    return Err(format!("{key}.new_classes: not supported: dohost only has SQLite-backed classes; list them in new_sqlite_classes"));
                }
                other => {
                    return Err(format!("{key}.{other}: not supported yet: only new_sqlite_classes and deleted_classes migrations are implemented"));
                }
            }
        }
        out.push(migration);
    }
    Ok(out)
}

/// JSON with comments (`//`, `/* */`) and trailing commas → JSON. Strings
/// are copied as they are (a `//` inside one is not a comment).
pub fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push(c);
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '/' if skip_comment(&mut chars) => out.push(' '),
            // A comma before a closing bracket is dropped.
            ',' if matches!(next_significant(chars.clone()), Some('}' | ']')) => {}
            _ => out.push(c),
        }
    }
    out
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// After a `/`: skips the rest of a comment, if one starts here.
fn skip_comment(chars: &mut Chars) -> bool {
    match chars.peek() {
        Some('/') => while chars.next_if(|&c| c != '\n').is_some() {},
        Some('*') => {
            chars.next();
            let mut last = ' ';
            for c in chars.by_ref() {
                if last == '*' && c == '/' {
                    break;
                }
                last = c;
            }
        }
        _ => return false,
    }
    true
}

/// The next character that is not blank or in a comment.
fn next_significant(mut chars: Chars) -> Option<char> {
    loop {
        match chars.next()? {
            c if c.is_whitespace() => {}
            '/' if skip_comment(&mut chars) => {}
            c => return Some(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonc_comments_and_trailing_commas_are_dropped_but_not_inside_strings() {
        let text =
            "// top\n{ \"a\": \"x // y\", /* c */ \"b\": [1, 2, ], // end\n \"c\": \"\\\"/*\", }";
        let value: Value = serde_json::from_str(&strip_jsonc(text)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": "x // y", "b": [1, 2], "c": "\"/*"})
        );
    }

    #[test]
    fn a_project_maps_bindings_migrations_vars_and_names_what_it_ignores() {
        let value = serde_json::json!({
            "name": "app", "main": "src/index.ts", "compatibility_flags": ["nodejs_compat", "no_global_navigator"],
            "durable_objects": {"bindings": [{"name": "COUNTER", "class_name": "Counter"}]},
            "migrations": [{"tag": "v1", "new_sqlite_classes": ["Counter"]}],
            "vars": {"A": "x", "N": 3}, "observability": {"enabled": true},
            "assets": {"directory": "public", "binding": "ASSETS", "not_found_handling": "404-page"},
        });
        let p = project(&value).unwrap();
        assert!(p.rules.is_empty());
        assert_eq!(p.bindings["COUNTER"], "Counter");
        assert_eq!(p.classes(), ["Counter"]);
        assert_eq!((p.vars["A"].as_str(), p.vars["N"].as_str()), ("x", "3"));
        assert_eq!(
            p.assets,
            Some((PathBuf::from("public"), Some("ASSETS".into())))
        );
        assert_eq!(
            p.ignored,
            [
                "assets.not_found_handling",
                "observability",
                "compatibility_flags: no_global_navigator"
            ]
        );
        assert!(p.nodejs_compat);
    }

    #[test]
    fn a_deleted_class_is_migrated_but_no_longer_served() {
        let value = serde_json::json!({"main": "a.js", "migrations": [
            {"tag": "v1", "new_sqlite_classes": ["Room", "Old"]},
            {"tag": "v2", "deleted_classes": ["Old"]},
        ]});
        let p = project(&value).unwrap();
        assert_eq!(p.classes(), ["Room"]);
        assert_eq!(p.migrations[1].deleted_classes, ["Old"]);
    }

    #[test]
    fn module_rules_keep_their_order_and_fallthrough() {
        let value = serde_json::json!({"main": "a.js", "rules": [
            {"type": "Data", "globs": ["**/*.html"], "fallthrough": false},
            {"type": "Text", "globs": ["**/*.md"]},
        ]});
        let p = project(&value).unwrap();
        let rules: Vec<_> = p
            .rules
            .iter()
            .map(|r| (r.kind.as_str(), r.globs[0].as_str(), r.fallthrough))
            .collect();
        assert_eq!(
            rules,
            [("Data", "**/*.html", false), ("Text", "**/*.md", true)]
        );
    }

    #[test]
    fn what_would_change_behaviour_is_refused_with_its_key() {
        let refused = [
            (serde_json::json!({}), "main: missing"),
            (
                serde_json::json!({"main": "a.js", "migrations": [{"tag": "v1", "new_classes": ["A"]}]}),
                "migrations[0].new_classes: not supported",
            ),
            (
                serde_json::json!({"main": "a.js", "migrations": [{"tag": "v2", "renamed_classes": []}]}),
                "migrations[0].renamed_classes: not supported yet",
            ),
            (
                serde_json::json!({"main": "a.js", "rules": [{"type": "Json", "globs": ["**/*.json"]}]}),
                "rules[0].type: unknown module type \"Json\"",
            ),
            (
                serde_json::json!({"main": "a.js", "durable_objects": {"bindings": [{"name": "A", "class_name": "A", "script_name": "other"}]}}),
                "durable_objects.bindings[0].script_name: not supported",
            ),
        ];
        for (value, message) in refused {
            let err = project(&value).unwrap_err();
            assert!(err.starts_with(message), "{err}");
        }
    }
}
