//! Linking chat servers through a NATS broker (`--link nats://HOST:PORT`):
//! rooms with the same name on every linked server are one room. One task
//! owns the NATS client; the hub hands it what to publish through a
//! bounded queue and never waits for it, so a slow or absent broker cannot
//! stall a member. Each line goes to the broker once, as its raw bytes with
//! the sender's nick and node in headers; each server escapes it for its
//! own members.
//!
//! Subjects: `chat.room.ROOM.talk` and `chat.room.ROOM.notice` (what is
//! said in a room, and its joins, leaves and nick changes; a server
//! subscribes to both while it has members there, and the broker's history
//! keeps the talk), `chat.who` and `chat.rooms`
//! (every server answers with its own part), `chat.node.NODE` (private
//! messages, and the check that a node name is free).
//!
//! The link is a leaf: it knows nothing of members, mailboxes or what
//! members are sent. The chat reaches it through the handle [`Link`], and
//! it reaches the chat through one narrow [`Port`] the chat implements;
//! answers to questions asked of every server go back through the
//! callback the question came with.
//!
//! Here is the start; what crosses to and from the chat is in `port`, the
//! chat's handle in `handle`, the task in `task`, a room's subscription in
//! `room`, the questions to every server in `ask`, the questions to the
//! broker itself in `broker`, and the encoding and decoding of what goes
//! over the wire in `wire`.

mod ask;
mod broker;
mod handle;
mod history;
mod order;
mod outbox;
mod port;
mod room;
mod task;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use async_nats::{Client, ConnectOptions};
use tokio::sync::mpsc;
use tracing::{info, warn};

use broker::{node_in_use, round_trip};
pub use handle::{Blocked, Link, QUEUE_BYTES};
pub use history::{HISTORY_AGE, STREAM};
pub use outbox::DEFAULT_LINK_BUFFER;
pub use port::{Answer, Event, Found, Port, Remote, RemoteEvent, RemoteNick};
use task::Task;
pub use wire::{notice_subject, talk_subject};

/// How long a server waits at start for a broker that is slow to answer
/// before serving alone. A broker that is not there (refused, unreachable)
/// is known as soon as the first attempt fails.
const START_WAIT: Duration = Duration::from_secs(5);
/// Pause between attempts to reach the broker: it is back in use within a
/// second of its return.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// `--link`, `--node`, `--link-ca`, and what the broker keeps.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    /// One broker's URL or several, separated by commas: the client tries
    /// each, and moves to another when one goes.
    pub url: String,
    pub node: String,
    /// `--link-ca`: the certificates a `tls://` broker's is checked
    /// against, instead of the system's.
    pub ca: Option<std::path::PathBuf>,
    /// Lines a room the broker's history keeps (`--history`; 0: none).
    pub history_lines: usize,
    /// `--link-buffer`: bytes of lines kept while the link is down.
    pub buffer: usize,
}

/// Connects to the broker (waiting for the first attempt, up to
/// `START_WAIT`; if it is not there, the link is made in the background
/// once it is), checks that the node name is free, and starts the link's
/// task, which reaches the chat through `port`.
pub async fn start(port: Arc<dyn Port>, settings: LinkSettings) -> anyhow::Result<Arc<Link>> {
    let shown = shown_url(&settings.url);
    if let Some(ca) = &settings.ca {
        check_ca(ca)?;
    }
    let (client, mut nats_events) = connect(&settings.url, settings.ca.as_deref())
        .await
        .with_context(|| format!("linking through {shown}"))?;
    let connected = first_attempt(&mut nats_events).await;
    let node: Arc<str> = settings.node.as_str().into();
    if connected && node_in_use(&client, &node).await {
        bail!(
            "node name \"{node}\" is already in use on the link {shown}; choose another with --node"
        );
    }
    // Made before the server is said to be linked, so another server
    // started after that line finds this one.
    let subscriptions = task::Subscriptions::make(&client, &node)
        .await
        .with_context(|| format!("subscribing on the link {shown}"))?;
    if connected {
        round_trip(&client).await;
        info!("linked through {shown} as node {node}");
    } else {
        warn!(
            "link: {shown} does not answer; serving this server's members alone, and linking once it does"
        );
    }
    let (link, handed) = Link::new(node, connected);
    let task = Task::new(port, Arc::clone(&link), client, &settings, connected);
    tokio::spawn(task.run(subscriptions, handed, nats_events));
    Ok(link)
}

/// `url` (one or several, separated by commas) as the log shows it: a
/// password in it is written `***`.
pub fn shown_url(url: &str) -> String {
    let shown: Vec<String> = url.split(',').map(shown_one).collect();
    shown.join(",")
}

fn shown_one(url: &str) -> String {
    match url.parse::<async_nats::ServerAddr>() {
        Ok(address) if address.password().is_some() => {
            let mut url = address.into_inner();
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => url.to_string(),
    }
}

/// The brokers `url` names, separated by commas.
pub fn addresses(url: &str) -> Result<Vec<async_nats::ServerAddr>, String> {
    url.split(',')
        .map(|one| {
            one.trim()
                .parse::<async_nats::ServerAddr>()
                .map_err(|error| {
                    format!(
                        "{one:?} is not a NATS address (nats://HOST:PORT, tls://HOST:PORT): {error}"
                    )
                })
        })
        .collect()
}

/// Refuses a `--link-ca` file that cannot be read or holds no certificate.
fn check_ca(ca: &std::path::Path) -> anyhow::Result<()> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let shown = ca.display();
    let certificates = CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading --link-ca {shown}"))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading --link-ca {shown}"))?;
    if certificates.is_empty() {
        bail!("--link-ca {shown} holds no certificate (PEM, -----BEGIN CERTIFICATE-----)");
    }
    Ok(())
}

/// A NATS client for `url` (one broker or several) that retries for ever,
/// checking a `tls://` broker against `ca` if given, and the events it
/// reports (connected, disconnected, errors).
async fn connect(
    url: &str,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<(Client, mpsc::UnboundedReceiver<async_nats::Event>)> {
    let (nats_events, nats_event_rx) = mpsc::unbounded_channel();
    let addresses = addresses(url).map_err(|error| anyhow::anyhow!(error))?;
    let mut options = ConnectOptions::new();
    // async-nats takes no credentials from the URL itself.
    let with_credentials = addresses
        .iter()
        .find(|address| address.password().is_some());
    if let Some(address) = with_credentials
        && let (Some(user), Some(password)) = (address.username(), address.password())
    {
        options = options.user_and_password(user.to_string(), password.to_string());
    }
    if let Some(ca) = ca {
        options = options.add_root_certificates(ca.to_path_buf());
    }
    let client = options
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|_| RECONNECT_DELAY)
        .event_callback(move |event| {
            let nats_events = nats_events.clone();
            async move {
                let _ = nats_events.send(event);
            }
        })
        .connect(addresses)
        .await?;
    Ok((client, nats_event_rx))
}

/// The first attempt's outcome, within [`START_WAIT`]: connected, or
/// failed (the client goes on trying in the background).
async fn first_attempt(nats_events: &mut mpsc::UnboundedReceiver<async_nats::Event>) -> bool {
    let outcome = async {
        while let Some(event) = nats_events.recv().await {
            match event {
                async_nats::Event::Connected => return true,
                async_nats::Event::ClientError(_) => return false,
                _ => {}
            }
        }
        false
    };
    tokio::time::timeout(START_WAIT, outcome)
        .await
        .unwrap_or(false)
}
