//! `dohost build`: a Cloudflare-style project (a wrangler config, TypeScript
//! or JavaScript sources, npm packages) → components and a dohost manifest in
//! `<project>/.dohost/`. The bundling and componentizing is
//! `scripts/cf-build.mjs` (esbuild and componentize-js, pinned in the dohost
//! checkout's package.json); this reads the config, says what it ignores, and
//! writes the manifest.

use crate::config::wrangler::{self, Project};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// The build's output folder inside the project.
pub const OUT_DIR: &str = ".dohost";

/// Builds the project in `dir`; returns the manifest written.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let config = wrangler::find_in(dir)?;
    let project = wrangler::read(&config)?;
    for key in &project.ignored {
        eprintln!(
            "warning: {}: ignoring {key} (not used by dohost)",
            config.display()
        );
    }
    let classes = project.classes();
    if classes.is_empty() {
        bail!(
            "{}: no Durable Object classes: add them to new_sqlite_classes of a migration",
            config.display()
        );
    }
    let sdk = sdk_root()?;
    let out = dir.join(OUT_DIR);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let plan = serde_json::json!({
        "sdk": sdk, "project": dir, "main": project.main, "classes": classes, "out": out,
        "rules": project.rules,
        "nodejsCompat": project.nodejs_compat,
    });
    let plan_file = out.join("plan.json");
    std::fs::write(&plan_file, plan.to_string())?;
    let status = std::process::Command::new("node")
        .arg(sdk.join("scripts/cf-build.mjs"))
        .arg(&plan_file)
        .status()
        .context("running node (needed to bundle and componentize JavaScript)")?;
    if !status.success() {
        bail!(
            "building {} failed (the bundler's or componentize-js's message is above)",
            dir.display()
        );
    }
    let manifest = out.join("dohost.toml");
    let text = manifest_text(&project, &config, out.join("entry.wasm").is_file())?;
    std::fs::write(&manifest, text).with_context(|| format!("writing {}", manifest.display()))?;
    Ok(manifest)
}

/// The dohost checkout whose SDK and tools build the project: `DOHOST_SDK`,
/// or the first ancestor of this executable that holds them.
fn sdk_root() -> anyhow::Result<PathBuf> {
    let holds = |dir: &Path| {
        dir.join("scripts/cf-build.mjs").is_file() && dir.join("guest-sdk/js/index.js").is_file()
    };
    let root = match std::env::var_os("DOHOST_SDK").map(PathBuf::from) {
        Some(dir) if !holds(&dir) => bail!(
            "DOHOST_SDK={} holds no dohost SDK (scripts/cf-build.mjs, guest-sdk/js)",
            dir.display()
        ),
        Some(dir) => dir,
        None => std::env::current_exe()?
            .canonicalize()?
            .ancestors()
            .find(|dir| holds(dir))
            .context("no dohost checkout above this executable: set DOHOST_SDK to one")?
            .to_path_buf(),
    };
    let tools = [
        "node_modules/.bin/esbuild",
        "node_modules/.bin/componentize-js",
    ];
    if let Some(missing) = tools.iter().find(|t| !root.join(t).exists()) {
        bail!(
            "{} is missing: run `make build-polyglot` in {} (it installs the pinned npm tools)",
            missing,
            root.display()
        );
    }
    Ok(root)
}

/// The manifest of the built project (paths relative to `<project>/.dohost`).
fn manifest_text(project: &Project, config: &Path, has_entry: bool) -> anyhow::Result<String> {
    use toml::{Table, Value};
    let mut top = Table::new();
    top.insert("data_dir".into(), "data".into());
    let mut classes = Table::new();
    for class in project.classes() {
        let mut table = Table::new();
        table.insert("component".into(), format!("{class}.wasm").into());
        classes.insert(class, Value::Table(table));
    }
    top.insert("classes".into(), Value::Table(classes));
    if has_entry {
        let mut entry = Table::new();
        entry.insert("component".into(), "entry.wasm".into());
        top.insert("entry".into(), Value::Table(entry));
    }
    let strings = |map: &std::collections::BTreeMap<String, String>| {
        Value::Table(
            map.iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect(),
        )
    };
    top.insert("bindings".into(), strings(&project.bindings));
    top.insert("vars".into(), strings(&project.vars));
    if let Some((directory, binding)) = &project.assets {
        let mut assets = Table::new();
        let directory = Path::new("..").join(directory);
        assets.insert(
            "directory".into(),
            directory.to_string_lossy().into_owned().into(),
        );
        if let Some(binding) = binding {
            assets.insert("binding".into(), binding.as_str().into());
        }
        top.insert("assets".into(), Value::Table(assets));
    }
    let names = |list: &[String]| Value::Array(list.iter().map(|c| c.as_str().into()).collect());
    let migrations = project.migrations.iter().map(|m| {
        let mut table = Table::new();
        table.insert("tag".into(), m.tag.as_str().into());
        table.insert("new_sqlite_classes".into(), names(&m.new_sqlite_classes));
        if !m.deleted_classes.is_empty() {
            table.insert("deleted_classes".into(), names(&m.deleted_classes));
        }
        Value::Table(table)
    });
    top.insert("migrations".into(), Value::Array(migrations.collect()));
    let header = format!(
        "# Generated by `dohost build` from {}; rebuilt on every build.\n\n",
        config.display()
    );
    Ok(header + &toml::to_string(&top)?)
}
