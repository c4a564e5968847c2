//! The store in a file of this server's own: `DIR/accounts.redb`, the
//! directory made with mode 0700 and the file 0600. redb commits each
//! write transaction durably before `commit` returns, so a crash at any
//! moment loses at most the change in flight. Its calls block: each runs
//! on a blocking thread.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Answer, Store};

/// Folded nick to its password's Argon2id hash (PHC string).
const ACCOUNTS: TableDefinition<&str, &str> = TableDefinition::new("accounts");

/// The accounts in `DIR/accounts.redb`.
#[derive(Clone)]
pub struct FileStore {
    database: Arc<Database>,
}

impl FileStore {
    /// Opens (or makes) the store in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<FileStore> {
        let shown = dir.display();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("making --data-dir {shown}"))?;
        let path = dir.join("accounts.redb");
        let database = Database::create(&path)
            .with_context(|| format!("opening the accounts in {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} readable by its owner only", path.display()))?;
        // The table exists from the start, so that reads find it.
        let write = database.begin_write()?;
        write.open_table(ACCOUNTS)?;
        write.commit()?;
        Ok(FileStore {
            database: Arc::new(database),
        })
    }

    /// Runs `work` on a blocking thread with the database.
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> anyhow::Result<T> + Send + 'static,
    ) -> Answer<'_, T> {
        let database = Arc::clone(&self.database);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&database))
                .await
                .context("the accounts' thread")?
        })
    }
}

impl Store for FileStore {
    fn nicks(&self) -> Answer<'_, Vec<String>> {
        self.blocking(|database| {
            let read = database.begin_read()?;
            let table = read.open_table(ACCOUNTS)?;
            let mut nicks = Vec::new();
            for entry in table.iter()? {
                let (nick, _) = entry?;
                nicks.push(nick.value().to_string());
            }
            Ok(nicks)
        })
    }

    fn hash(&self, nick: &str) -> Answer<'_, Option<String>> {
        let nick = nick.to_string();
        self.blocking(move |database| {
            let read = database.begin_read()?;
            let table = read.open_table(ACCOUNTS)?;
            Ok(table
                .get(nick.as_str())?
                .map(|hash| hash.value().to_string()))
        })
    }

    fn register(&self, nick: &str, hash: &str) -> Answer<'_, bool> {
        let (nick, hash) = (nick.to_string(), hash.to_string());
        self.blocking(move |database| {
            let write = database.begin_write()?;
            let registered = {
                let mut table = write.open_table(ACCOUNTS)?;
                if table.get(nick.as_str())?.is_some() {
                    false
                } else {
                    table.insert(nick.as_str(), hash.as_str())?;
                    true
                }
            };
            write.commit()?;
            Ok(registered)
        })
    }

    fn set_hash(&self, nick: &str, hash: &str) -> Answer<'_, ()> {
        let (nick, hash) = (nick.to_string(), hash.to_string());
        self.blocking(move |database| {
            let write = database.begin_write()?;
            write
                .open_table(ACCOUNTS)?
                .insert(nick.as_str(), hash.as_str())?;
            write.commit()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accounts_are_kept_across_opens_and_registered_once() {
        let dir = std::env::temp_dir().join(format!("chat-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = FileStore::open(&dir).unwrap();
        assert!(store.register("alice", "h1").await.unwrap());
        assert!(!store.register("alice", "h2").await.unwrap());
        store.set_hash("alice", "h3").await.unwrap();
        drop(store);
        let store = FileStore::open(&dir).unwrap();
        assert_eq!(store.hash("alice").await.unwrap().as_deref(), Some("h3"));
        assert_eq!(store.hash("bob").await.unwrap(), None);
        assert_eq!(store.nicks().await.unwrap(), ["alice"]);
        let mode = std::fs::metadata(dir.join("accounts.redb"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
