//! Passwords as Argon2id hashes (the `argon2` crate's defaults): made and
//! checked off the async threads, at most one per core at once, so that a
//! flood of attempts neither stalls the chat nor holds more memory than a
//! few hashes take. The check is constant-time (`PasswordVerifier`).

use std::sync::Arc;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use password_hash::SaltString;
use password_hash::rand_core::OsRng;
use tokio::sync::Semaphore;

/// Hashes and checks, a few at a time.
#[derive(Debug)]
pub struct Hasher {
    running: Semaphore,
}

impl Default for Hasher {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            running: Semaphore::new(cores),
        }
    }
}

/// `password`'s Argon2id hash, in the PHC string form (salt and
/// parameters in it).
pub fn hash_now(password: &[u8]) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password, &salt)
        .map_err(|error| anyhow::anyhow!("hashing a password: {error}"))?;
    Ok(hash.to_string())
}

/// `--password-file FILE`: the hash of its first line. Refused if the file
/// cannot be read, others may read it, or the line is empty.
pub fn server_password(file: &std::path::Path) -> anyhow::Result<Arc<str>> {
    use anyhow::Context as _;
    use std::os::unix::fs::PermissionsExt as _;
    let shown = file.display();
    let mode = std::fs::metadata(file)
        .with_context(|| format!("reading --password-file {shown}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "--password-file {shown} may be read by others (mode {:o}); chmod 600 {shown}",
            mode & 0o777
        );
    }
    let contents =
        std::fs::read(file).with_context(|| format!("reading --password-file {shown}"))?;
    let line = contents
        .split(|&byte| byte == b'\n')
        .next()
        .unwrap_or_default();
    let password = line.strip_suffix(b"\r").unwrap_or(line);
    if password.is_empty() {
        anyhow::bail!("--password-file {shown}: its first line, the password, is empty");
    }
    Ok(hash_now(password)?.into())
}

/// Whether `password` is the one `hash` was made from.
fn matches(password: &[u8], hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok())
}

impl Hasher {
    /// `password`'s hash, made on a blocking thread once one of the cores'
    /// turns is free.
    pub async fn hash(&self, password: Vec<u8>) -> anyhow::Result<String> {
        let _turn = self.running.acquire().await?;
        tokio::task::spawn_blocking(move || hash_now(&password)).await?
    }

    /// Whether `password` is the one `hash` was made from, checked on a
    /// blocking thread once one of the cores' turns is free.
    pub async fn check(&self, password: Vec<u8>, hash: Arc<str>) -> bool {
        // The semaphore is never closed.
        let Ok(_turn) = self.running.acquire().await else {
            return false;
        };
        let checked = tokio::task::spawn_blocking(move || matches(&password, &hash));
        checked.await.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_password_matches_its_hash() {
        let hash: Arc<str> = hash_now(b"correct horse").unwrap().into();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        let hasher = Hasher::default();
        assert!(
            hasher
                .check(b"correct horse".to_vec(), Arc::clone(&hash))
                .await
        );
        assert!(
            !hasher
                .check(b"correct hors".to_vec(), Arc::clone(&hash))
                .await
        );
        assert!(!hasher.check(b"x".to_vec(), "not a hash".into()).await);
    }
}
