//! The two root secrets: the master key (Fernet) that wraps every user key, and the Biscuit
//! root key (ed25519) that signs access tokens.
//!
//! Each comes from its setting, or from the file its `_file` setting names. In embedded mode a
//! missing key is generated on first start into `<data_dir>/secrets/` with mode 0600 and
//! reused afterwards. With PostgreSQL every node must share them, so they are required and
//! `serve` names the one that is missing. Key material is never logged or printed, except by
//! `careport keys generate`, whose job it is.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, bail};
use careport_store::Backend;
use secrecy::{ExposeSecret, SecretString};

use crate::settings::Settings;

/// The validated root secrets.
pub struct Secrets {
    /// Fernet key: 32 bytes, URL-safe base64.
    pub master_key: SecretString,
    /// Biscuit root key: `ed25519-private/<hex>`.
    pub token_key: SecretString,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { master_key: [redacted], token_key: [redacted] }")
    }
}

struct KeySpec {
    /// Environment name, for messages.
    var: &'static str,
    /// File name under `<data_dir>/secrets/` when generated.
    file: &'static str,
    generate: fn() -> String,
    validate: fn(&str) -> Result<(), String>,
}

const MASTER: KeySpec = KeySpec {
    var: "CAREPORT__SECRETS__MASTER_KEY",
    file: "master.key",
    generate: generate_master_key,
    validate: validate_master_key,
};
const TOKEN: KeySpec = KeySpec {
    var: "CAREPORT__SECRETS__TOKEN_KEY",
    file: "token.key",
    generate: generate_token_key,
    validate: validate_token_key,
};

pub fn generate_master_key() -> String {
    fernet::Fernet::generate_key()
}

pub fn generate_token_key() -> String {
    biscuit_auth::KeyPair::new().private().to_prefixed_string()
}

fn validate_master_key(key: &str) -> Result<(), String> {
    fernet::Fernet::new(key).map(|_| ()).ok_or_else(|| {
        "is not a Fernet key (32 bytes in URL-safe base64, as `careport keys generate` prints)".to_owned()
    })
}

fn validate_token_key(key: &str) -> Result<(), String> {
    match biscuit_auth::PrivateKey::from_str(key) {
        Ok(biscuit_auth::PrivateKey::Ed25519(_)) => Ok(()),
        Ok(_) => Err("must be an ed25519 key".to_owned()),
        Err(_) => Err("is not a Biscuit private key (`ed25519-private/<64 hex digits>`)".to_owned()),
    }
}

impl Secrets {
    /// Resolve both keys for a process that will use `backend`.
    pub fn load(settings: &Settings, backend: Backend) -> anyhow::Result<Self> {
        let s = &settings.secrets;
        let dir = settings.data_dir.join("secrets");
        Ok(Self {
            master_key: resolve(&MASTER, s.master_key.as_ref(), s.master_key_file.as_deref(), backend, &dir)?,
            token_key: resolve(&TOKEN, s.token_key.as_ref(), s.token_key_file.as_deref(), backend, &dir)?,
        })
    }
}

/// Where the master key lives when this process generated it (embedded mode, no setting):
/// `keys rotate-master` then replaces that file itself.
pub fn generated_master_key_path(settings: &Settings) -> Option<PathBuf> {
    let s = &settings.secrets;
    (s.master_key.is_none() && s.master_key_file.is_none() && settings.database.backend() == Backend::Sqlite)
        .then(|| settings.data_dir.join("secrets").join(MASTER.file))
}

fn resolve(
    spec: &KeySpec,
    value: Option<&SecretString>,
    file: Option<&Path>,
    backend: Backend,
    generated_dir: &Path,
) -> anyhow::Result<SecretString> {
    let key = match (value, file) {
        (Some(_), Some(_)) => bail!("{} and {}_FILE are both set; set one", spec.var, spec.var),
        (Some(v), None) => v.expose_secret().trim().to_owned(),
        (None, Some(path)) => read_key_file(path).with_context(|| format!("{}_FILE", spec.var))?,
        (None, None) if backend == Backend::Postgres => bail!(
            "{} (or {}_FILE) is required with PostgreSQL: every node must share it. \
             Make a pair with `careport keys generate`.",
            spec.var,
            spec.var
        ),
        (None, None) => load_or_generate(spec, &generated_dir.join(spec.file))?,
    };
    (spec.validate)(&key).map_err(|why| anyhow::anyhow!("{} {why}", spec.var))?;
    Ok(SecretString::from(key))
}

fn read_key_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("Failed to read {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "key file is readable by group or others; chmod 600 it");
        }
    }
    Ok(text.trim().to_owned())
}

/// Read the generated key, or make it: created exclusively with mode 0600 and synced, so two
/// processes starting at once agree on one key.
fn load_or_generate(spec: &KeySpec, path: &PathBuf) -> anyhow::Result<String> {
    if path.exists() {
        return read_key_file(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("Failed to restrict {}", dir.display()))?;
        }
    }
    let key = (spec.generate)();
    // Write a temporary file, sync it, then link it into place: the key file is either absent
    // or complete, even after a crash, and of two processes starting at once one key wins.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(key.as_bytes()).and_then(|_| f.sync_all()))
        .with_context(|| format!("Failed to write {}", tmp.display()));
    let linked = written.and_then(|_| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("Failed to create {}", path.display())),
    });
    let _ = std::fs::remove_file(&tmp);
    if !linked? {
        return read_key_file(path);
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    tracing::info!(path = %path.display(), "generated a new key (embedded mode); back it up with the data dir");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> Settings {
        let mut s = Settings::load_for("development", None, false).expect("defaults");
        s.data_dir = dir.to_owned();
        s
    }

    #[test]
    fn generated_keys_are_valid() {
        assert!(validate_master_key(&generate_master_key()).is_ok());
        assert!(validate_token_key(&generate_token_key()).is_ok());
        assert!(validate_master_key("not-a-key").is_err());
        assert!(validate_token_key("ed25519-private/zz").is_err());
    }

    #[test]
    fn embedded_mode_generates_keys_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path());
        let first = Secrets::load(&s, Backend::Sqlite).expect("generate");
        let second = Secrets::load(&s, Backend::Sqlite).expect("reload");
        assert_eq!(first.master_key.expose_secret(), second.master_key.expose_secret());
        assert_eq!(first.token_key.expose_secret(), second.token_key.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["master.key", "token.key"] {
                let mode = std::fs::metadata(dir.path().join("secrets").join(f)).expect("meta").permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        assert!(!format!("{first:?}").contains(first.master_key.expose_secret()));
    }

    #[test]
    fn postgres_requires_keys_and_names_the_missing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path());
        let err = Secrets::load(&s, Backend::Postgres).expect_err("missing");
        assert!(err.to_string().contains("CAREPORT__SECRETS__MASTER_KEY"), "{err}");
        s.secrets.master_key = Some(generate_master_key().into());
        let err = Secrets::load(&s, Backend::Postgres).expect_err("missing token key");
        assert!(err.to_string().contains("CAREPORT__SECRETS__TOKEN_KEY"), "{err}");
        s.secrets.token_key = Some(generate_token_key().into());
        assert!(Secrets::load(&s, Backend::Postgres).is_ok());
        assert!(!dir.path().join("secrets").exists(), "nothing generated in clustered mode");
    }

    #[test]
    fn a_malformed_key_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path());
        s.secrets.master_key = Some("oops-this-is-secret".to_owned().into());
        let err = Secrets::load(&s, Backend::Sqlite).expect_err("bad key");
        let text = format!("{err:#}");
        assert!(text.contains("CAREPORT__SECRETS__MASTER_KEY") && !text.contains("oops-this-is-secret"), "{text}");
    }

    /// Two embedded stores never share a key: each generates its own (a key compiled in, or
    /// derived from something both have, would open the other's vault and sign its tokens).
    #[test]
    fn two_embedded_stores_generate_different_keys() {
        let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let first = Secrets::load(&settings(a.path()), Backend::Sqlite).expect("first store");
        let second = Secrets::load(&settings(b.path()), Backend::Sqlite).expect("second store");
        assert_ne!(first.master_key.expose_secret(), second.master_key.expose_secret());
        assert_ne!(first.token_key.expose_secret(), second.token_key.expose_secret());
        assert_ne!(first.master_key.expose_secret(), first.token_key.expose_secret());
        assert_ne!(generate_master_key(), generate_master_key());
        assert_ne!(generate_token_key(), generate_token_key());
    }

    /// Where in `text` a key-looking literal is: a Biscuit private key (`ed25519-private/` and
    /// 64 hex digits), a Fernet key (44 characters of URL-safe base64, the last `=`), or a PEM
    /// private key.
    fn key_literal(text: &str) -> Option<String> {
        const BISCUIT: &str = "ed25519-private/";
        for (at, _) in text.match_indices(BISCUIT) {
            let hex = &text.as_bytes()[at + BISCUIT.len()..];
            if hex.len() >= 64 && hex[..64].iter().all(u8::is_ascii_hexdigit) {
                return Some(format!("a Biscuit private key at byte {at}"));
            }
        }
        let b = text.as_bytes();
        let url_safe = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        for end in text.match_indices('=').map(|(i, _)| i) {
            let run = b[..end].iter().rev().take_while(|c| url_safe(**c)).count();
            if run == 43 && fernet::Fernet::new(&text[end - 43..=end]).is_some() {
                return Some(format!("a Fernet key at byte {}", end - 43));
            }
        }
        text.contains("PRIVATE KEY-----").then(|| "a PEM private key".to_owned())
    }

    #[test]
    fn key_literals_are_recognised() {
        assert!(key_literal(&format!("key = \"{}\"", generate_master_key())).is_some());
        assert!(key_literal(&format!("CAREPORT__SECRETS__TOKEN_KEY={}\n", generate_token_key())).is_some());
        assert!(key_literal("ed25519-private/<64 hex digits>, a Fernet key: 44 characters of base64=").is_none());
        assert!(key_literal(&format!("x{}", generate_master_key())).is_none(), "45 characters are not a key");
    }

    /// No key ships with careport: the README, the configuration files, the container files and
    /// the scripts hold no private-key-looking literal (an example key gets copied into
    /// deployments, and then every one of them shares it).
    #[test]
    fn no_shipped_file_carries_a_key_literal() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![root.join("README.md")];
        let mut dirs: Vec<PathBuf> = ["config", "docker", "scripts"].iter().map(|d| root.join(d)).collect();
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 8, "{files:?}");
        for f in &files {
            let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if let Some(found) = key_literal(&String::from_utf8_lossy(&bytes)) {
                panic!("{} carries {found}", f.display());
            }
        }
    }

    #[test]
    fn keys_can_come_from_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path());
        let path = dir.path().join("mk");
        std::fs::write(&path, format!("{}\n", generate_master_key())).expect("write");
        s.secrets.master_key_file = Some(path);
        assert!(Secrets::load(&s, Backend::Sqlite).is_ok());
    }
}
