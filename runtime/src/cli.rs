//! The command line: `serve`, `migrate`, `keys generate`, `keys rotate-master`, `config show`,
//! `user create`, `audit verify`, `records import`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use careport_actors::access::ManageUsers;
use careport_actors::accounts::{self, NewAccount};
use careport_domain::{Email, Role};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::settings::Settings;
use crate::startup::{self, Application};
use crate::{secrets, telemetry};

#[derive(Parser)]
#[command(
    name = "careport",
    version,
    about = "careport: a healthcare portal for patients, clinicians and administrators"
)]
pub struct Cli {
    /// A TOML settings file, applied over config/default.toml and config/{CAREPORT_ENV}.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the portal: migrate the store, start the actors, serve HTTP.
    Serve,
    /// Apply the embedded database migrations and exit.
    Migrate {
        /// List the migrations and whether each is applied, and change nothing.
        #[arg(long)]
        status: bool,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Settings.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Embed text with the configured provider and print the vectors, one line per text.
    Embed {
        /// Print each vector as a JSON array.
        #[arg(long)]
        json: bool,
        /// Embed every line of this file (batched); `-` reads standard input.
        #[arg(long, value_name = "FILE", conflicts_with = "text")]
        file: Option<PathBuf>,
        /// The text to embed.
        text: Option<String>,
    },
    /// Read the text of documents (PDF, PNG, JPEG, TIFF) in process, as the server's OCR jobs
    /// do: per file, the text, or with `--json` one line `{file, pages, text, mean_confidence}`.
    Ocr {
        /// Print one JSON line per file.
        #[arg(long)]
        json: bool,
        /// The language of the text: en, es, fr, ar, zh or hi.
        #[arg(long, default_value = "en")]
        lang: String,
        /// The files to read.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The knowledge base.
    Knowledge {
        #[command(subcommand)]
        command: KnowledgeCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Medical records.
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
    /// The nodes of a cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Fill an empty store with a demo clinic; prints the generated passwords once.
    SeedDemo {
        #[arg(long, default_value_t = 3)]
        admins: usize,
        #[arg(long, default_value_t = 20)]
        clinicians: usize,
        #[arg(long, default_value_t = 200)]
        patients: usize,
        /// How many of the patients also get an account.
        #[arg(long, default_value_t = 10)]
        patient_accounts: usize,
        /// Appointments per patient over the four weeks.
        #[arg(long, default_value_t = 2)]
        appointments_per_patient: usize,
    },
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// The nodes that answer on the event bus (Redis): name, version, uptime, state, jobs.
    Status {
        /// How long to wait for answers, in milliseconds.
        #[arg(long, default_value_t = 1500)]
        wait_ms: u64,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and name the first broken link (exit status 1 if any).
    Verify,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print a fresh master key and token key as NAME=value lines (for an env file).
    Generate,
    /// Re-wrap every stored key (and re-seal every MFA secret) under a new master key, in one
    /// transaction; files are not touched. Stop every node first, then configure the new key.
    RotateMaster {
        /// A file holding the new master key (`-`: standard input), as `keys generate` prints
        /// it (the value only, or the whole `CAREPORT__SECRETS__MASTER_KEY=` line).
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum RecordsCommand {
    /// Import a file written by the Python portal (one Fernet token under a known key) as a
    /// record of a patient's chart, sealed like any upload.
    Import {
        /// The patient's id.
        #[arg(long)]
        patient: uuid::Uuid,
        /// A record type id (`GET /api/v1/record-types`).
        #[arg(long = "type")]
        record_type: String,
        #[arg(long)]
        title: String,
        /// The clinical date, YYYY-MM-DD.
        #[arg(long)]
        date: Option<String>,
        /// The name to show when it is downloaded; default: the file's own name.
        #[arg(long)]
        name: Option<String>,
        /// The Python portal's Fernet key, in a file (never on the command line).
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
        /// The encrypted file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings, secrets redacted.
    Show,
}

#[derive(Subcommand)]
pub enum KnowledgeCommand {
    /// Embed every chunk into the configured model's space and make it the one searches use
    /// (after a model change, or to finish documents whose jobs failed). Queues the job that the
    /// server runs (searches keep answering from the current space until it is complete).
    Reindex {
        /// Wait for the job and print its progress (the server must be running to run it).
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["patient", "clinician", "admin"])]
        role: String,
        /// Full name shown in the portal.
        #[arg(long)]
        name: Option<String>,
        /// Clinicians: doctor or nurse.
        #[arg(long, value_parser = ["doctor", "nurse"])]
        staff_role: Option<String>,
        /// The department (clinicians: theirs; patients: the one treating them).
        #[arg(long)]
        department: Option<String>,
    },
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Keys { command: KeysCommand::Generate } => {
            println!("CAREPORT__SECRETS__MASTER_KEY={}", secrets::generate_master_key());
            println!("CAREPORT__SECRETS__TOKEN_KEY={}", secrets::generate_token_key());
            Ok(())
        }
        Command::Keys { command: KeysCommand::RotateMaster { new_key_file } } => {
            let settings = Settings::load(cli.config.as_deref())?;
            telemetry::init(&settings.log);
            crate::vault_cli::rotate_master(&settings, &new_key_file).await
        }
        Command::Records {
            command: RecordsCommand::Import { patient, record_type, title, date, name, key_file, file },
        } => {
            let settings = Settings::load(cli.config.as_deref())?;
            telemetry::init(&settings.log);
            let import = crate::vault_cli::Import { patient, record_type, title, date, name, key_file, file };
            crate::vault_cli::import(&settings, import).await
        }
        Command::Cluster { command: ClusterCommand::Status { wait_ms, json } } => {
            let settings = Settings::load(cli.config.as_deref())?;
            telemetry::init(&settings.log);
            cluster_status(&settings, std::time::Duration::from_millis(wait_ms), json).await
        }
        Command::Config { command: ConfigCommand::Show } => {
            let settings = Settings::load(cli.config.as_deref())?;
            print!("{}", settings.redacted_toml()?);
            Ok(())
        }
        Command::Serve => {
            let mut settings = Settings::load(cli.config.as_deref())?;
            let node = startup::fix_node_name(&mut settings);
            telemetry::init_node(&settings.log, &node, startup::VERSION);
            let app = Application::build(settings).await?;
            app.run_until_stopped().await
        }
        Command::Migrate { status } => {
            let settings = Settings::load(cli.config.as_deref())?;
            telemetry::init(&settings.log);
            let db = if status {
                careport_store::Db::connect(&settings.database, &settings.data_dir).await?
            } else {
                startup::migrate(&settings).await?
            };
            for (version, description, applied) in db.migration_status().await? {
                println!("{version} {description}: {}", if applied { "applied" } else { "pending" });
            }
            db.close().await;
            Ok(())
        }
        Command::Embed { json, file, text } => {
            let mut settings = Settings::load(cli.config.as_deref())?;
            // Keep standard output for the vectors; only problems go to standard error.
            settings.log.level = "warn".into();
            telemetry::init(&settings.log);
            embed(&settings, json, file, text).await
        }
        Command::Ocr { json, lang, files } => ocr(json, &lang, &files),
        Command::Knowledge { command: KnowledgeCommand::Reindex { wait } } => {
            let settings = Settings::load(cli.config.as_deref())?;
            telemetry::init(&settings.log);
            reindex(&settings, wait).await
        }
        Command::Audit { command: AuditCommand::Verify } => {
            let settings = Settings::load(cli.config.as_deref())?;
            telemetry::init(&settings.log);
            let secrets = secrets::Secrets::load(&settings, settings.database.backend())?;
            let db = startup::migrate(&settings).await?;
            let key = chain_key(&db, &secrets).await?;
            let result = careport_store::audit::verify(&db, &key).await;
            db.close().await;
            let v = result.context("Failed to read the audit trail")?;
            match v.broken {
                None => {
                    println!("audit trail intact: {} event(s) verified", v.events);
                    Ok(())
                }
                Some((seq, why)) => {
                    println!("audit trail BROKEN at event #{seq}: {why} ({} event(s) verified before it)", v.events);
                    std::process::exit(1);
                }
            }
        }
        Command::SeedDemo { admins, clinicians, patients, patient_accounts, appointments_per_patient } => {
            let settings = Settings::load(cli.config.as_deref())?;
            telemetry::init(&settings.log);
            let secrets = secrets::Secrets::load(&settings, settings.database.backend())?;
            let db = startup::migrate(&settings).await?;
            let size = crate::seed::Size {
                admins,
                clinicians,
                patients,
                patient_accounts: patient_accounts.min(patients),
                appointments_per_patient,
            };
            let result = crate::seed::seed(&db, &settings, size).await;
            if let Ok(charts) = &result {
                let event = careport_store::audit::NewEvent {
                    id: uuid::Uuid::now_v7(),
                    at: careport_domain::time::now_ms(),
                    action: "cli.seed_demo".into(),
                    outcome: "success".into(),
                    user_agent: Some("careport-cli".into()),
                    detail: Some(format!("admins={admins} clinicians={clinicians} patients={patients}")),
                    ..Default::default()
                };
                let key = chain_key(&db, &secrets).await?;
                careport_store::audit::append(&db, &key, &[event]).await.context("Failed to audit the seeding")?;
                db.close().await;
                // Images, reports and bills go through the door, so they need the services.
                let (services, _, _) = startup::start_services(&settings, None).await?;
                let made = crate::seed_charts::seed(&services, charts).await;
                services.shutdown(std::time::Duration::from_secs(5)).await;
                services.close_store().await;
                let (images, reports, bills) = made.context("Failed to seed images, reports and bills")?;
                println!(
                    "\n{images} images (previews are made by the server's job), {reports} diagnosis reports, {bills} bill items."
                );
                return Ok(());
            }
            db.close().await;
            result.map(|_| ())
        }
        Command::User { command: UserCommand::Create { email, role, name, staff_role, department } } => {
            let settings = Settings::load(cli.config.as_deref())?;
            telemetry::init(&settings.log);
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            let password = read_password()?;
            let req = NewAccount {
                email,
                role,
                password,
                full_name: name,
                staff_role: accounts::parse_staff(staff_role.as_deref()),
                department,
                preferred_language: None,
                email_verified: true,
                link_record: true,
            };
            // The operator goes through the same door as an administrator's request: the same
            // rules, the same audit event (by the operator, from the CLI).
            let (services, _, _) = startup::start_services(&settings, None).await?;
            let created = async {
                let operator = services.identity.operator_caller()?;
                let pass = services.access.pass::<ManageUsers>(operator, None).await?;
                services.admin().create_account(pass, req).await
            }
            .await;
            services.shutdown(std::time::Duration::from_secs(5)).await;
            services.close_store().await;
            let id = created.map_err(|e| anyhow::anyhow!("{}", e.message()))?.id;
            println!("{id}");
            Ok(())
        }
    }
}

/// The audit chain's key, as the running portal uses it (kept in the store, wrapped).
pub(crate) async fn chain_key(
    db: &careport_store::Db,
    secrets: &secrets::Secrets,
) -> anyhow::Result<careport_store::audit::ChainKey> {
    let text = secrets.master_key.expose_secret();
    let master = careport_vault::MasterKey::from_text(text)
        .map_err(|_| anyhow::anyhow!("the master key is not a Fernet key"))?;
    careport_actors::vault::chain_key(db, &master, text)
        .await
        .map_err(|e| anyhow::anyhow!("the audit chain key: {e:?}"))
}

/// The password from standard input: prompted without echo on a terminal (twice, to catch a
/// typo), or the first line of a pipe.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("Failed to read the password")?;
        let second = rpassword::prompt_password("Repeat: ").context("Failed to read the password")?;
        if first != second {
            bail!("the passwords differ");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("Failed to read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input (pipe it in: `printf '%s\\n' \"$PASSWORD\" | careport user create …`)");
    }
    Ok(password)
}

/// How many lines go to the embedder at once: enough for full batches, few enough that the
/// bounded queue never refuses the CLI.
const EMBED_CHUNK: usize = 256;

async fn embed(settings: &Settings, json: bool, file: Option<PathBuf>, text: Option<String>) -> anyhow::Result<()> {
    let texts: Vec<String> = match (file, text) {
        (_, Some(t)) => vec![t],
        (Some(path), None) if path.as_os_str() == "-" => std::io::stdin().lock().lines().collect::<Result<_, _>>()?,
        (Some(path), None) => std::fs::read_to_string(&path)
            .with_context(|| format!("Failed to read {}", path.display()))?
            .lines()
            .map(str::to_owned)
            .collect(),
        (None, None) => bail!("give a TEXT to embed, or --file FILE (one text per line; `-` for standard input)"),
    };
    let embeddings = crate::ml::embeddings(settings).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for chunk in texts.chunks(EMBED_CHUNK) {
        let vectors = embeddings.embed(chunk.to_vec()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        for v in vectors {
            if json {
                serde_json::to_writer(&mut out, &v)?;
            } else {
                let line: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
                out.write_all(line.join(" ").as_bytes())?;
            }
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `careport ocr`: the same document pipeline as the server's jobs (text layers as they are,
/// other pages rasterised and read by Tesseract with orientation detection), in process. Files
/// and their pages are read side by side on every core; the output keeps the files' order. A
/// file that cannot be read is named on standard error and the command fails at the end, after
/// the others.
fn ocr(json: bool, lang: &str, files: &[PathBuf]) -> anyhow::Result<()> {
    use careport_ml::ocr::{self, DocumentLimits, OcrLanguage};
    use rayon::prelude::*;
    let language = OcrLanguage::from_code(lang)
        .ok_or_else(|| anyhow::anyhow!("--lang must be one of en, es, fr, ar, zh, hi (not {lang:?})"))?;
    ocr::check_languages(&[language]).map_err(|e| anyhow::anyhow!("{e}: install tesseract-ocr-{}", language.pack()))?;
    let limits = DocumentLimits::default();
    let read: Vec<anyhow::Result<ocr::DocumentText>> = files
        .par_iter()
        .map(|file| {
            let bytes = std::fs::read(file).with_context(|| format!("Failed to read {}", file.display()))?;
            ocr::read_document(std::sync::Arc::from(bytes), language, &limits).map_err(anyhow::Error::from)
        })
        .collect();
    let mut failed = 0;
    for (file, doc) in files.iter().zip(read) {
        match doc {
            Ok(doc) if json => {
                let line = serde_json::json!({
                    "file": file.display().to_string(),
                    "pages": doc.pages,
                    "text": doc.text,
                    "mean_confidence": doc.mean_confidence,
                });
                println!("{line}");
            }
            Ok(doc) => println!("{}", doc.text),
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e:#}", file.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} file(s) could not be read", files.len());
    }
    Ok(())
}

/// `careport cluster status`: ask every node on the bus to announce itself, print who answered.
/// Exit status 1 when no node answered or one is not ready.
async fn cluster_status(settings: &Settings, wait: std::time::Duration, json: bool) -> anyhow::Result<()> {
    let Some(redis) = careport_store::Redis::connect(&settings.redis).await? else {
        bail!(
            "no Redis is configured (redis.url): nodes find one another through it; one embedded node has no cluster"
        );
    };
    let bus = careport_store::Bus::new(Some(redis));
    let nodes = careport_actors::cluster::probe(&bus, wait).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
    } else {
        println!(
            "{:<40} {:<10} {:<9} {:>10} {:<11} {:>7} {:>9} {:>7}",
            "NODE", "VERSION", "BACKEND", "UPTIME", "STATE", "RUNNING", "DONE", "FAILED"
        );
        for n in &nodes {
            println!(
                "{:<40} {:<10} {:<9} {:>9}s {:<11} {:>7} {:>9} {:>7}",
                n.node, n.version, n.backend, n.uptime_secs, n.state, n.jobs_running, n.jobs_done, n.jobs_failed
            );
        }
        println!("{} node(s) answered within {} ms", nodes.len(), wait.as_millis());
    }
    if nodes.is_empty() {
        bail!("no node answered");
    }
    if let Some(n) = nodes.iter().find(|n| n.state != "ready") {
        bail!("node {} is {}", n.node, n.state);
    }
    Ok(())
}

/// `careport knowledge reindex`: queue the job (the server's runner claims it) and, with
/// `--wait`, follow it to its end.
async fn reindex(settings: &Settings, wait: bool) -> anyhow::Result<()> {
    use careport_store::knowledge as stored;
    let embeddings = crate::ml::embeddings(settings).await?;
    let Some(model) = embeddings.model_id().map(str::to_owned) else {
        bail!("no embedding model is configured (ml.embedding_provider = \"off\")");
    };
    let db = startup::migrate(settings).await?;
    let job = careport_actors::knowledge::enqueue_reindex(&db, &model, settings.knowledge.max_attempts, None)
        .await
        .map_err(|e| anyhow::anyhow!("the reindex was not queued: {}", e.code()))?;
    println!("reindex job {job} queued for the space {model}");
    if wait {
        let mut last = (String::new(), -1);
        loop {
            let Some(row) = stored::get_job(&db, job).await? else { bail!("the job disappeared") };
            if (row.state.clone(), row.chunks_done) != last {
                println!(
                    "{}: {} of {} chunks",
                    row.state,
                    row.chunks_done,
                    row.chunks_total.map_or("?".into(), |t| t.to_string())
                );
                last = (row.state.clone(), row.chunks_done);
            }
            match row.state.as_str() {
                "done" => break,
                "failed" | "cancelled" => {
                    db.close().await;
                    bail!("the reindex {}: {}", row.state, row.error.unwrap_or_default());
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            }
        }
    }
    db.close().await;
    Ok(())
}
