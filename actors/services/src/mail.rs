//! Outgoing e-mail: verification, password-reset and invitation links, and security notices.
//!
//! With `[mail] smtp_url` set, messages go through SMTP (`lettre`, STARTTLS or TLS as the URL
//! says: `smtp://host:587?tls=required`, `smtps://host:465`, `smtp://127.0.0.1:2525` for a
//! local relay). Without it, each message is written as one `.eml` file into
//! `<data_dir>/outbox/` (mode 0600, written then renamed, so a reader never sees half a
//! message): the embedded mode works with no mail server, and an operator can forward the
//! files. Logs name the subject only; the body holds a secret link and is never logged.

use std::path::PathBuf;

use careport_domain::{Code, Error};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// `[mail]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The sender, e.g. `careport <no-reply@clinic.example>`.
    pub from: String,
    /// Unset: write `.eml` files into `<data_dir>/outbox/`.
    pub smtp_url: Option<SecretString>,
    pub timeout_secs: u64,
}

/// An e-mail to send.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// The mailer: SMTP or the outbox folder.
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Outbox(_) => "outbox",
        };
        f.debug_struct("Mailer").field("transport", &kind).finish()
    }
}

impl Mailer {
    /// Build from settings; `outbox` is where messages go without SMTP.
    pub fn new(cfg: &MailConfig, outbox: PathBuf) -> anyhow::Result<Self> {
        let from: Mailbox =
            cfg.from.parse().map_err(|e| anyhow::anyhow!("mail.from `{}` is not a mailbox: {e}", cfg.from))?;
        let transport = match &cfg.smtp_url {
            Some(url) => {
                let t = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("mail.smtp_url is not a valid SMTP URL: {e}"))?
                    .timeout(Some(std::time::Duration::from_secs(cfg.timeout_secs.max(1))))
                    .build();
                Transport::Smtp(t)
            }
            None => Transport::Outbox(outbox),
        };
        Ok(Self { from, transport })
    }

    /// Where messages go, for logs and `/readyz`.
    pub fn describe(&self) -> &'static str {
        match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Outbox(_) => "outbox",
        }
    }

    /// Send one message. Fails with `service_unavailable` if the server refuses it.
    pub async fn send(&self, mail: Mail) -> Result<(), Error> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| Error::with_message(Code::InvalidValue, "The e-mail address cannot receive mail."))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(seven_bit_or_encoded(mail.body))
            .map_err(|e| Error::internal(anyhow::anyhow!("building the message: {e}")))?;
        match &self.transport {
            Transport::Smtp(t) => {
                t.send(message).await.map_err(|e| {
                    // The server's reply text can repeat the recipient's address: log only its
                    // status code and the kind of failure.
                    let what = match e.status() {
                        Some(code) => format!("SMTP server answered {code}"),
                        None if e.is_timeout() => "SMTP timed out".to_owned(),
                        None => "SMTP connection or TLS failed".to_owned(),
                    };
                    Error::new(Code::ServiceUnavailable).caused_by(anyhow::anyhow!(what)).retry_after(30)
                })?;
            }
            Transport::Outbox(dir) => {
                let bytes = message.formatted();
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || write_eml(&dir, &bytes))
                    .await
                    .map_err(Error::internal)?
                    .map_err(|e| Error::internal(e.context("Failed to write to the outbox")))?;
            }
        }
        tracing::info!(subject = %mail.subject, transport = self.describe(), "e-mail sent");
        Ok(())
    }
}

/// 7bit when the text allows it (ASCII, lines under 998 octets), so a link stays one intact
/// line for every reader; lettre would pick quoted-printable for lines over 76 characters,
/// which splits links and turns `=` into `=3D`. Anything else is left to lettre.
fn seven_bit_or_encoded(text: String) -> Body {
    let ok = text.is_ascii() && !text.contains('\0') && text.lines().all(|l| l.len() < 998);
    if !ok {
        return Body::new(text);
    }
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
}

fn write_eml(dir: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    careport_store::create_private_dir(dir)?;
    let name = format!("{}.eml", uuid::Uuid::now_v7());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}
