//! `[vars]` and `[secrets]`: the application's configuration, handed to every
//! object as its `env`. A var's value is in the manifest; a secret's comes from
//! the host's environment or a file that only its owner can read, and is never
//! printed (its `Debug` is redacted, it is not in errors or the admin surface).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest value of a var or secret.
pub const MAX_ENV_VALUE_BYTES: usize = 64 * 1024;

/// Where a secret's value comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    env: Option<String>,
    file: Option<PathBuf>,
}

/// A secret's value: printed as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the guest that asks for it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The validated `[vars]` and `[secrets]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppEnv {
    pub vars: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
    /// `[bindings]`: binding name → the class it names (`COUNTER = "Counter"`).
    pub bindings: BTreeMap<String, String>,
}

impl AppEnv {
    /// The value of a var or secret.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .or_else(|| self.secrets.get(name).map(Secret::expose))
    }

    /// Every name, vars and secrets alike, in order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .vars
            .keys()
            .chain(self.secrets.keys())
            .cloned()
            .collect();
        names.sort();
        names
    }
}

/// Validates `[vars]` and reads every `[secrets]` value; the error is the
/// dotted key and what to fix.
pub(super) fn read(
    vars: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, RawSecret>,
    base: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<AppEnv, (String, String)> {
    for (name, value) in vars {
        check_name(name).map_err(|e| (format!("vars.{name}"), e))?;
        if value.len() > MAX_ENV_VALUE_BYTES {
            return Err((
                format!("vars.{name}"),
                format!(
                    "{} bytes is too long (at most {MAX_ENV_VALUE_BYTES})",
                    value.len()
                ),
            ));
        }
    }
    let mut env = AppEnv {
        vars: vars.clone(),
        secrets: BTreeMap::new(),
        bindings: BTreeMap::new(),
    };
    for (name, raw) in secrets {
        let key = format!("secrets.{name}");
        check_name(name).map_err(|e| (key.clone(), e))?;
        if vars.contains_key(name) {
            return Err((
                key,
                format!("{name} is also a var: a name is either a var or a secret"),
            ));
        }
        let value = secret_value(raw, base, &lookup).map_err(|e| (key, e))?;
        if value.len() > MAX_ENV_VALUE_BYTES {
            let message = format!("the value is too long (at most {MAX_ENV_VALUE_BYTES} bytes)");
            return Err((format!("secrets.{name}"), message));
        }
        env.secrets.insert(name.clone(), Secret(value));
    }
    Ok(env)
}

/// Validates `[bindings]` against the served `classes` and the names of the
/// vars and secrets already in `env`.
pub(super) fn bind(
    env: &mut AppEnv,
    bindings: &BTreeMap<String, String>,
    classes: &[&str],
) -> Result<(), (String, String)> {
    for (name, class) in bindings {
        let key = format!("bindings.{name}");
        check_name(name).map_err(|e| (key.clone(), e))?;
        if env.get(name).is_some() {
            return Err((
                key,
                format!("{name} is also a var or secret: a name of env is one of them only"),
            ));
        }
        if !classes.contains(&class.as_str()) {
            return Err((
                key,
                format!(
                    "no class {class:?} to bind; the classes are {}",
                    classes.join(", ")
                ),
            ));
        }
        env.bindings.insert(name.clone(), class.clone());
    }
    Ok(())
}

/// What `[bindings]` holds for the `[assets]` binding instead of a class
/// (not a class name, so the SDKs tell it apart).
pub const ASSETS_BINDING: &str = "@assets";

/// Adds the `[assets] binding` to the env, if its name is free.
pub(super) fn bind_assets(env: &mut AppEnv, name: &str) -> Result<(), (String, String)> {
    let key = "assets.binding".to_string();
    check_name(name).map_err(|e| (key.clone(), e))?;
    if env.get(name).is_some() || env.bindings.contains_key(name) {
        return Err((
            key,
            format!("{name} is also a var, secret or binding: a name of env is one of them only"),
        ));
    }
    env.bindings
        .insert(name.to_string(), ASSETS_BINDING.to_string());
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a name: use letters, digits and _ (like API_TOKEN), at most 128"
        ))
    }
}

fn secret_value(
    raw: &RawSecret,
    base: &Path,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    match (&raw.env, &raw.file) {
        (Some(var), None) => match lookup(var) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(format!(
                "the environment variable {var} is not set (or empty): set it before starting dohost"
            )),
        },
        (None, Some(file)) => read_secret_file(&base.join(file)),
        _ => Err("give exactly one of env = \"VARIABLE\" or file = \"path\"".into()),
    }
}

/// A secret file: only its owner may read it (mode 0600 or 0400); one
/// trailing newline is not part of the value.
fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} can be read by others (mode {mode:o}): `chmod 600` it",
            path.display()
        ));
    }
    if meta.len() > MAX_ENV_VALUE_BYTES as u64 {
        return Err(format!(
            "{} is too large (at most {MAX_ENV_VALUE_BYTES} bytes)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {} as UTF-8 text: {e}", path.display()))?;
    let value = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_environment_and_never_print() {
        let vars = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
        let secrets = BTreeMap::from([(
            "TOKEN".to_string(),
            RawSecret {
                env: Some("T".into()),
                file: None,
            },
        )]);
        let lookup = |var: &str| (var == "T").then(|| "s3cret".to_string());
        let env = read(&vars, &secrets, Path::new("."), lookup).unwrap();
        assert_eq!(env.get("TOKEN"), Some("s3cret"));
        assert_eq!(env.get("GREETING"), Some("hi"));
        assert_eq!(env.get("NOPE"), None);
        assert_eq!(env.names(), ["GREETING", "TOKEN"]);
        let shown = format!("{env:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<redacted>"),
            "{shown}"
        );
        let (key, message) = read(&vars, &secrets, Path::new("."), |_| None).unwrap_err();
        assert_eq!(key, "secrets.TOKEN");
        assert!(message.contains("T is not set"), "{message}");
    }
}
