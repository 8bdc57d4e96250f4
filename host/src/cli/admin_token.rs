//! The admin surface's bearer token when it is reachable beyond loopback and
//! `DOHOST_ADMIN_TOKEN` is not set: generated once, kept in
//! `<data_dir>/_dohost/token` (mode 0600, for the operator and the CLI), and
//! reused across restarts. The token itself is never logged.

use anyhow::{bail, Context};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the generated token of a data dir lives.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("_dohost").join("token")
}

/// The data dir's token, generated (256 random bits, hex) if there is none.
/// A token file that others may read is refused: it would be a secret
/// shared with every local user.
pub fn load_or_generate(data_dir: &Path) -> anyhow::Result<(String, PathBuf)> {
    let path = token_path(data_dir);
    match std::fs::metadata(&path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "{} is readable by others (mode {mode:o}): chmod 600 it, or delete it \
                     for a new token",
                    path.display()
                );
            }
            let token = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let token = token.trim().to_string();
            if token.len() < 32 {
                bail!(
                    "{} holds no usable token (fewer than 32 characters): delete it for a new one",
                    path.display()
                );
            }
            Ok((token, path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token: String = (0..32)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect();
            write_private(&path, &token)?;
            Ok((token, path))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `token` to a new file only its owner can read, durably.
fn write_private(path: &Path, token: &str) -> anyhow::Result<()> {
    let dir = path.parent().expect("the token file has a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_generated_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (token, path) = load_or_generate(dir.path()).unwrap();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_generate(dir.path()).unwrap().0, token);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_generate(dir.path()).unwrap_err().to_string();
        assert!(err.contains("readable by others (mode 644)"), "{err}");
    }
}
