//! Two questions to the broker itself: has it handled what this server
//! sent, and does another server answer to a node name.

use std::time::{Duration, SystemTime};

use async_nats::{Client, HeaderMap};
use bytes::Bytes;

use super::wire::{KIND, NODE_SUBJECT, SYNC_SUBJECT};

/// The longest a server waits for another that holds its node name to
/// say so.
const NAME_CHECK_WAIT: Duration = Duration::from_secs(5);
/// The longest a server waits for the broker to confirm it has handled
/// what the server sent (its subscriptions).
const ROUND_TRIP_WAIT: Duration = Duration::from_secs(1);

/// Returns once the broker has handled everything `client` sent before
/// (its subscriptions, say), or after [`ROUND_TRIP_WAIT`]: a request to a
/// subject no server listens on is answered by the broker itself, in
/// order with the rest.
pub(super) async fn round_trip(client: &Client) {
    let answered = client.request(SYNC_SUBJECT, Bytes::new());
    let _ = tokio::time::timeout(ROUND_TRIP_WAIT, answered).await;
}

/// Whether another server answers to `node`'s name. A free name is known
/// at once (the broker says no one listens there); a server that holds it
/// is waited for up to [`NAME_CHECK_WAIT`], however busy it is.
pub(super) async fn node_in_use(client: &Client, node: &str) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert(KIND, "ping");
    let request =
        client.request_with_headers(format!("{NODE_SUBJECT}{node}"), headers, Bytes::new());
    matches!(
        tokio::time::timeout(NAME_CHECK_WAIT, request).await,
        Ok(Ok(_))
    )
}

/// Now, in nanoseconds since 1970: when this server began sending in a
/// room, to tell that run of numbered events from an earlier one.
pub(super) fn epoch() -> u128 {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_nanos()
}
