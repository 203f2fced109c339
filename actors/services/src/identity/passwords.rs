//! The password rules and argon2id hashing.
//!
//! Rules (NIST SP 800-63B): at least 12 characters, at most 256, not one of the 10,000 most
//! common passwords (nor one of them with digits or symbols around it, nor a run of three or
//! fewer distinct characters), and not containing the account's e-mail address. The list is
//! the head of the password frequency list of zxcvbn (MIT licence, Dropbox; via the `zxcvbn`
//! crate), compiled in.
//!
//! Hashing costs tens of milliseconds of CPU and 19 MiB of memory, and runs on a pool of its
//! own ([`HashPool`]: one thread per core), never on an async thread. An unknown account is
//! checked against a dummy hash of the same parameters, so login takes about as long whether
//! the account exists or not.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use careport_domain::{Code, Error};
use serde::{Deserialize, Serialize};

/// Shortest accepted password (NIST SP 800-63B asks for at least 8; we ask for 12).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted password: bounds the work an attacker can make argon2 do.
pub const MAX_PASSWORD_CHARS: usize = 256;

static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common_passwords.txt").lines().filter(|l| !l.is_empty()).collect());

/// argon2id cost parameters (`[auth.argon2]`); the defaults are OWASP's minimum.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Config {
    /// Memory, in KiB (OWASP: at least 19456).
    pub memory_kib: u32,
    /// Passes over memory (OWASP: at least 2).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Config {
    fn hasher(&self) -> Result<Argon2<'static>, Error> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| Error::internal(anyhow::anyhow!("invalid argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Check a new password against the rules; the error names the rule broken (422).
pub fn check_password(password: &str, email: Option<&str>) -> Result<(), Error> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(Error::with_message(
            Code::PasswordTooShort,
            format!("The password must be at least {MIN_PASSWORD_CHARS} characters long."),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(Error::with_message(
            Code::PasswordTooLong,
            format!("The password must be at most {MAX_PASSWORD_CHARS} characters long."),
        ));
    }
    if is_common(password) {
        return Err(Error::new(Code::PasswordTooCommon));
    }
    if let Some(email) = email {
        let lower = password.to_lowercase();
        let local = email.split('@').next().unwrap_or(email);
        if lower.contains(&email.to_lowercase())
            || (local.chars().count() >= 4 && lower.contains(&local.to_lowercase()))
        {
            return Err(Error::new(Code::PasswordContainsEmail));
        }
    }
    Ok(())
}

/// True for a common password, a common password wrapped in digits or symbols
/// (`Password1234!`), or a run of three or fewer distinct characters (`abababababab`).
fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    if COMMON.contains(lower.as_str()) {
        return true;
    }
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    if !core.is_empty() && COMMON.contains(core) {
        return true;
    }
    let distinct: HashSet<char> = lower.chars().collect();
    distinct.len() <= 3 || is_run(&lower)
}

/// A keyboard-free sequence: every character one up (or one down) from the last, digits
/// wrapping (`123456789012`, `abcdefghijkl`, `987654321098`).
fn is_run(s: &str) -> bool {
    let b = s.as_bytes();
    let step = |x: u8, y: u8, up: bool| -> bool {
        let (x, y) = if up { (x, y) } else { (y, x) };
        y == x.wrapping_add(1) || (x == b'9' && y == b'0')
    };
    b.len() > 1 && (b.windows(2).all(|w| step(w[0], w[1], true)) || b.windows(2).all(|w| step(w[0], w[1], false)))
}

/// The argon2 threads: one per core (at most 16), fed by one queue. Each hash takes
/// `memory_kib` (19 MiB) while it runs. On Tokio's blocking pool — even one hash per core at a
/// time — the hashes ran on whichever of its many threads was free, and glibc's allocator kept a
/// freed 19 MiB block in each thread's arena (up to eight arenas per core): the soak in
/// `bench/soak.sh` measured a server that grew by hundreds of MiB under logins and did not give
/// them back. On a few threads of their own, the same blocks are reused, and memory is bounded by
/// the pool's size. A request waits in the queue as it would wait for a core.
struct HashPool {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
}

static HASHING: std::sync::LazyLock<HashPool> = std::sync::LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 16);
    let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
            loop {
                // The lock is held only to take one job, not while it runs.
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start an argon2 thread");
        }
    }
    HashPool { jobs: std::sync::Mutex::new(tx) }
});

/// Run `work` on the argon2 threads and wait for its answer.
async fn on_hash_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Box<dyn FnOnce() + Send> = Box::new(move || {
        let _ = tx.send(work());
    });
    HASHING
        .jobs
        .lock()
        .map_err(|_| Error::internal(anyhow::anyhow!("the argon2 queue is poisoned")))?
        .send(job)
        .map_err(|_| Error::internal(anyhow::anyhow!("the argon2 threads have stopped")))?;
    rx.await.map_err(|_| Error::internal(anyhow::anyhow!("an argon2 job was dropped")))
}

/// Hash a password with argon2id on the argon2 threads. The result is a PHC string.
pub async fn hash_password(password: String, cfg: &Argon2Config) -> Result<String, Error> {
    let hasher = cfg.hasher()?;
    on_hash_pool(move || {
        hasher
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(anyhow::anyhow!("argon2 failed: {e}")))
    })
    .await?
}

/// Check `password` against a PHC string on the argon2 threads. `None` checks against a dummy
/// hash (same cost) and returns false, so that unknown accounts take as long as known ones.
pub async fn verify_password(password: String, phc: Option<String>, dummy: Arc<str>) -> Result<bool, Error> {
    on_hash_pool(move || {
        let real = phc.is_some();
        let phc = phc.unwrap_or_else(|| dummy.to_string());
        let parsed = PasswordHash::new(&phc).map_err(|e| Error::internal(anyhow::anyhow!("stored hash: {e}")))?;
        // The stored hash carries its own parameters: old hashes keep verifying after a change.
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(real && ok)
    })
    .await?
}

/// A hash of a random password with the configured parameters, for [`verify_password`].
pub async fn dummy_hash(cfg: &Argon2Config) -> Result<Arc<str>, Error> {
    let random: [u8; 24] = rand::random();
    let pw = random.iter().map(|b| format!("{b:02x}")).collect::<String>();
    Ok(hash_password(pw, cfg).await?.into())
}

/// True when a stored hash was made with weaker parameters than configured (rehash at login).
pub fn needs_rehash(phc: &str, cfg: &Argon2Config) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return true };
    params.m_cost() < cfg.memory_kib || params.t_cost() < cfg.iterations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_what_is_wrong() {
        let code = |pw: &str| check_password(pw, Some("ada.lovelace@example.org")).err().map(|e| e.code());
        assert_eq!(code("short"), Some(Code::PasswordTooShort));
        assert_eq!(code(&"x".repeat(300)), Some(Code::PasswordTooLong));
        assert_eq!(code("password1234"), Some(Code::PasswordTooCommon));
        assert_eq!(code("123456789012"), Some(Code::PasswordTooCommon));
        assert_eq!(code("!!Sunshine2024!!"), Some(Code::PasswordTooCommon));
        assert_eq!(code("abababababab"), Some(Code::PasswordTooCommon));
        assert_eq!(code("my ada.lovelace pass"), Some(Code::PasswordContainsEmail));
        assert_eq!(code("correct horse battery staple"), None);
        assert_eq!(code("Kx9!mq2#Lp7vRt"), None);
    }

    #[tokio::test]
    async fn hashes_run_on_the_pool_side_by_side_and_verify() {
        let cfg = Argon2Config { memory_kib: 1024, iterations: 1, parallelism: 1 };
        let hashes =
            futures_util::future::join_all((0..8).map(|i| hash_password(format!("correct horse battery {i}"), &cfg)))
                .await;
        let dummy: Arc<str> = hash_password("dummy dummy dummy".into(), &cfg).await.expect("dummy").into();
        for (i, h) in hashes.into_iter().enumerate() {
            let h = h.expect("hash");
            let pw = format!("correct horse battery {i}");
            assert!(verify_password(pw, Some(h.clone()), dummy.clone()).await.expect("verify"));
            assert!(!verify_password("wrong".into(), Some(h), dummy.clone()).await.expect("verify"));
        }
        assert!(!verify_password("dummy dummy dummy".into(), None, dummy).await.expect("verify"), "no account");
    }

    #[test]
    fn the_list_is_loaded() {
        assert!(COMMON.len() >= 9_000, "{}", COMMON.len());
        assert!(COMMON.contains("qwerty"));
    }
}
