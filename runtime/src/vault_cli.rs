//! The vault's operator commands: `careport keys rotate-master` and `careport records import`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use careport_actors::access::UploadToPatient;
use careport_actors::door::records::UploadFields;
use careport_store::audit::NewEvent;
use careport_vault::MasterKey;
use secrecy::ExposeSecret;

use crate::secrets::Secrets;
use crate::settings::Settings;
use crate::startup;

fn read_new_key(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).context("Failed to read the new key from standard input")?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("Failed to read {}", path.display()))?;
    }
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    let key = line.strip_prefix("CAREPORT__SECRETS__MASTER_KEY=").unwrap_or(line).trim().to_owned();
    if fernet::Fernet::new(&key).is_none() {
        bail!("the new key is not a Fernet key (32 bytes in URL-safe base64, as `careport keys generate` prints)");
    }
    Ok(key)
}

fn cli_event(action: &str, detail: String) -> NewEvent {
    NewEvent {
        id: uuid::Uuid::now_v7(),
        at: careport_domain::time::now_ms(),
        action: action.into(),
        outcome: "success".into(),
        user_agent: Some("careport-cli".into()),
        detail: Some(detail),
        ..Default::default()
    }
}

/// Write `key` to `path` with mode 0600, synced.
fn write_key(path: &Path, key: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).with_context(|| format!("Failed to write {}", path.display()))?;
    f.write_all(key.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// `careport keys rotate-master --new-key-file FILE`.
pub async fn rotate_master(settings: &Settings, new_key_file: &Path) -> anyhow::Result<()> {
    let secrets = Secrets::load(settings, settings.database.backend())?;
    let old_text = secrets.master_key.expose_secret();
    let new_text = read_new_key(new_key_file)?;
    if new_text == old_text {
        bail!("the new master key is the current one");
    }
    let old =
        MasterKey::from_text(old_text).map_err(|_| anyhow::anyhow!("the current master key is not a Fernet key"))?;
    let new = MasterKey::from_text(&new_text).map_err(|_| anyhow::anyhow!("the new key is not a Fernet key"))?;
    let db = startup::migrate(settings).await?;
    // The audit chain key must be in the store, wrapped, before the master key changes.
    let chain = crate::cli::chain_key(&db, &secrets).await?;
    // In embedded mode with a generated key, this command also replaces the key file: the new
    // key is written beside it first, so a crash after the store changed leaves it on disk.
    let generated = crate::secrets::generated_master_key_path(settings);
    let staged = generated.as_ref().map(|p| p.with_extension("key.new"));
    if let Some(staged) = &staged {
        write_key(staged, &new_text)?;
    }
    let rotated = match careport_actors::vault::rotate_master(&db, &old, &new).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(staged) = &staged {
                let _ = std::fs::remove_file(staged);
            }
            db.close().await;
            bail!("nothing was changed: {}", e.message());
        }
    };
    let detail = format!(
        "{} user keys, {} system keys, {} MFA secrets re-wrapped",
        rotated.user_keys, rotated.system_keys, rotated.mfa_secrets
    );
    let audited =
        careport_store::audit::append(&db, &chain, &[cli_event("cli.keys_rotate_master", detail.clone())]).await;
    db.close().await;
    if let (Some(staged), Some(path)) = (&staged, &generated) {
        std::fs::rename(staged, path).with_context(|| {
            format!("The store now uses the new key, which is in {}: move it to {}", staged.display(), path.display())
        })?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        println!("master key rotated: {detail}; {} now holds the new key", path.display());
    } else {
        println!("master key rotated: {detail}");
        println!("Now set CAREPORT__SECRETS__MASTER_KEY (or its _FILE) to the new key on every node, then start them.");
    }
    audited.context("The keys were rotated but the audit event could not be written")?;
    Ok(())
}

/// What `careport records import` imports.
pub struct Import {
    pub patient: uuid::Uuid,
    pub record_type: String,
    pub title: String,
    pub date: Option<String>,
    pub name: Option<String>,
    pub key_file: PathBuf,
    pub file: PathBuf,
}

/// `careport records import`: open a file of the Python portal with its key, then seal it as a
/// record of the patient's chart, like an upload (type sniffed, duplicates found, audited).
pub async fn import(settings: &Settings, i: Import) -> anyhow::Result<()> {
    let legacy_key = zeroize_string(
        std::fs::read_to_string(&i.key_file).with_context(|| format!("Failed to read {}", i.key_file.display()))?,
    );
    let token = std::fs::read_to_string(&i.file).with_context(|| format!("Failed to read {}", i.file.display()))?;
    let plain = careport_vault::frames::open_legacy(legacy_key.trim(), &token)
        .map_err(|_| anyhow::anyhow!("{} does not open with that key (or is not a Fernet token)", i.file.display()))?;
    let name = i.name.clone().unwrap_or_else(|| {
        i.file.file_name().map(|n| n.to_string_lossy().trim_end_matches(".enc").to_owned()).unwrap_or_default()
    });
    let fields = UploadFields {
        record_type: Some(i.record_type),
        title: Some(i.title),
        date: i.date,
        file_name: Some(name),
        sensitive: Some(false),
        ..UploadFields::default()
    };
    let size = plain.len() as u64;
    let body = futures_util::stream::iter(
        plain
            .chunks(1 << 20)
            .map(|c| Ok::<_, std::convert::Infallible>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    // The import is an upload by the operator, through the same door as the API's: the
    // patient's chart must be open, the metadata is checked, the file sniffed, sealed and
    // audited alike (the record's uploader is the nil id: no account uploaded it).
    let (services, _, _) = startup::start_services(settings, None).await?;
    let imported = async {
        let operator = services.identity.operator_caller()?;
        let pass = services.access.pass::<UploadToPatient>(operator, Some(i.patient)).await?;
        services.records().start_upload(pass, Some(size)).await?.store(fields, body).await
    }
    .await;
    services.shutdown(std::time::Duration::from_secs(5)).await;
    services.close_store().await;
    let record = imported.map_err(|e| anyhow::anyhow!("import refused: {}", e.message()))?;
    println!("{}", record.id);
    Ok(())
}

/// The legacy key's text, zeroed when dropped.
fn zeroize_string(s: String) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(s)
}
