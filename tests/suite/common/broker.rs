//! A real NATS broker (`nats-server`, Debian package `nats-server`) for the
//! link tests: one per test, on a port of its own.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::{command, within};

pub struct Broker {
    child: Child,
    pub port: u16,
}

impl Broker {
    /// Starts `nats-server` on a free loopback port, and waits until it
    /// accepts clients.
    pub async fn start() -> Broker {
        Self::start_on(None).await
    }

    /// Starts `nats-server` on `port` (a free one if `None`).
    pub async fn start_on(port: Option<u16>) -> Broker {
        Self::start_with(port, &[]).await
    }

    /// Starts `nats-server -c FILE` on a free port, `config` in the file.
    pub async fn start_with_config(config: &str) -> Broker {
        let file = std::env::temp_dir().join(format!("chat-nats-{}.conf", std::process::id()));
        std::fs::write(&file, config).expect("writing the broker's configuration");
        let broker = Self::start_with(None, &["-c", file.to_str().unwrap()]).await;
        let _ = std::fs::remove_file(&file);
        broker
    }

    /// Starts `nats-server -js` keeping its streams in `store`, on `port`
    /// (a free one if `None`): started again on the same port and store,
    /// it has what it kept.
    pub async fn start_jetstream(store: &Store, port: Option<u16>) -> Broker {
        let dir = store.0.to_str().expect("a store path in UTF-8");
        Self::start_with(port, &["-js", "-sd", dir]).await
    }

    /// Starts `nats-server --tls` with `certs`' server certificate, on a
    /// free port: a `tls://` broker only.
    pub async fn start_tls(certs: &super::certs::Certs) -> Broker {
        let (cert, key) = (certs.cert.to_str().unwrap(), certs.key.to_str().unwrap());
        Self::start_with(None, &["--tls", "--tlscert", cert, "--tlskey", key]).await
    }

    async fn start_with(port: Option<u16>, args: &[&str]) -> Broker {
        let port_arg = port.map_or("-1".to_string(), |port| port.to_string());
        let mut child = command("nats-server")
            .args(args)
            .args(["-a", "127.0.0.1", "-p", &port_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("nats-server must be installed (Debian package nats-server): {error}")
            });
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = within("nats-server to listen", async {
            while let Some(line) = log.next_line().await.unwrap() {
                if let Some((_, address)) = line.split_once("Listening for client connections on ")
                {
                    return address.rsplit(':').next().unwrap().trim().parse().unwrap();
                }
            }
            panic!("nats-server ended without listening");
        })
        .await;
        // Keep reading its log, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
        Broker { child, port }
    }

    /// Stops the broker in its tracks (SIGSTOP), or lets it go on
    /// (SIGCONT): a broker that freezes holds its connections open.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.id().expect("nats-server is running");
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: a signal to a child process this test owns.
        let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(sent, 0, "signalling nats-server");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL, and waits until it is gone.
    pub async fn kill(mut self) -> u16 {
        self.child.start_kill().unwrap();
        within("nats-server to die", self.child.wait())
            .await
            .unwrap();
        self.port
    }
}

/// A directory of its own for a broker's streams, removed at the end.
pub struct Store(PathBuf);

impl Store {
    pub fn new() -> Store {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("chat-js-{}-{made}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("making the broker's store");
        Store(dir)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
