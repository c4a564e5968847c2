//! The history part's linked half: joins whose recent lines come from the
//! broker's stream (`nats-server -js`) against joins whose recent lines
//! the server holds, and against joins into a room with none; the two
//! ways to read 50 lines of a subject from the stream; and how fast the
//! lines said during a broker outage reach 100 members once it is back,
//! against the same lines sent live.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Broker, LinkedServer, RUNS};
use crate::support;

/// Lines said during the outage, and live for the baseline: well within
/// the default `--link-buffer` (1 MiB).
const OUTAGE_LINES: usize = 5_000;
/// Members on the other server who receive them.
const RECEIVERS: usize = 100;
/// Joins measured of each kind.
const JOINS: usize = 200;
/// Reads measured of each way to read the stream.
const READS: usize = 200;

/// A directory for a broker's stream, removed when dropped.
pub struct Store(PathBuf);

impl Store {
    pub fn new() -> Store {
        let dir = std::env::temp_dir().join(format!("chat-bench-js-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Store(dir)
    }

    /// `nats-server -js` keeping its streams here, on `port` (a free one
    /// if `None`).
    pub fn broker(&self, port: Option<u16>) -> Option<Broker> {
        let port = port.map_or("-1".to_string(), |port| port.to_string());
        let dir = self.0.to_str().unwrap();
        Broker::start_with(&["-js", "-sd", dir, "-p", &port])
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads lines until one satisfies `done`; returns it.
async fn until(reader: &mut BufReader<TcpStream>, done: impl Fn(&str) -> bool) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).await.unwrap() > 0, "closed");
        if done(&line) {
            return line;
        }
    }
}

async fn member(address: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream);
    until(&mut reader, |line| line.starts_with("*** type to talk")).await;
    reader
}

/// How long `/join` took on the linked server `two` until the member had
/// the room's recent lines: from the stream (a room nobody on `two` is
/// in), held by `two` (a room a member keeps alive there), and into a room
/// with none (until `*** you are in`: the rest waits for the other
/// servers). Joins alternate.
pub fn join_latencies() -> Option<[Vec<Duration>; 3]> {
    let store = Store::new();
    let broker = store.broker(None)?;
    let one = LinkedServer::start(&broker, "one", &[]);
    let two = LinkedServer::start(&broker, "two", &[]);
    let took = super::client_runtime().block_on(async {
        let said: String = (0..50)
            .map(|n| format!("line {n} of the room's history\n"))
            .collect();
        let mut talker = member(one.address).await;
        for room in ["fetched", "held"] {
            talker
                .get_mut()
                .write_all(format!("/join {room}\n").as_bytes())
                .await
                .unwrap();
            until(&mut talker, |line| line.starts_with("*** here: ")).await;
            talker.get_mut().write_all(said.as_bytes()).await.unwrap();
        }
        // Keeps #held alive on two, its history held there.
        let mut keeper = member(two.address).await;
        keeper.get_mut().write_all(b"/join held\n").await.unwrap();
        until(&mut keeper, |line| {
            line.starts_with("<guest1@one> line 49 ")
        })
        .await;
        let mut joiner = member(two.address).await;
        let mut took = [Vec::new(), Vec::new(), Vec::new()];
        for round in 0..JOINS + 5 {
            for (at, room) in ["fetched", "held", "empty"].into_iter().enumerate() {
                let started = Instant::now();
                joiner
                    .get_mut()
                    .write_all(format!("/join {room}\n").as_bytes())
                    .await
                    .unwrap();
                let last = match at {
                    2 => format!("*** you are in #{room}"),
                    _ => chat::protocol::chat::RECENT_END.to_string(),
                };
                until(&mut joiner, |line| line.trim_end() == last).await;
                let elapsed = started.elapsed();
                until(&mut joiner, |line| line.starts_with("*** here: ")).await;
                if round >= 5 {
                    took[at].push(elapsed);
                }
            }
        }
        drop((talker, keeper));
        took
    });
    drop((one, two));
    Some(took)
}

/// How long reading the 50 lines of one room's subject from the stream
/// takes: with a short-lived consumer of that subject (what the chat
/// does), and with one direct get a message. `None` without JetStream.
pub fn stream_reads() -> Option<[Vec<Duration>; 2]> {
    let store = Store::new();
    let broker = store.broker(None)?;
    let server = LinkedServer::start(&broker, "one", &[]);
    let url = broker.url.clone();
    let took = super::client_runtime().block_on(async move {
        let mut talker = member(server.address).await;
        let said: String = (0..50)
            .map(|n| format!("line {n} of the room's history\n"))
            .collect();
        talker.get_mut().write_all(said.as_bytes()).await.unwrap();
        let client = async_nats::connect(&url).await.unwrap();
        let context = jetstream::new(client);
        let subject = chat::link::talk_subject("lobby");
        let stream = loop {
            let mut stream = context.get_stream(chat::link::STREAM).await.unwrap();
            if stream.info().await.unwrap().state.messages >= 50 {
                break stream;
            }
        };
        let mut took = [Vec::new(), Vec::new()];
        for round in 0..READS + 5 {
            let started = Instant::now();
            let consumer = stream
                .create_consumer(jetstream::consumer::pull::Config {
                    filter_subject: subject.clone(),
                    ack_policy: jetstream::consumer::AckPolicy::None,
                    memory_storage: true,
                    ..Default::default()
                })
                .await
                .unwrap();
            let pending = consumer.cached_info().num_pending as usize;
            let name = consumer.cached_info().name.clone();
            let messages = consumer
                .fetch()
                .max_messages(pending)
                .messages()
                .await
                .unwrap();
            let count = messages.take(pending).count().await;
            assert_eq!(count, 50);
            let consumer_took = started.elapsed();
            stream.delete_consumer(&name).await.unwrap();

            let started = Instant::now();
            let mut message = stream.direct_get_first_for_subject(&subject).await.unwrap();
            let mut count = 1;
            while let Ok(next) = stream
                .direct_get_next_for_subject(&subject, Some(message.sequence + 1))
                .await
            {
                message = next;
                count += 1;
            }
            assert_eq!(count, 50);
            if round >= 5 {
                took[0].push(consumer_took);
                took[1].push(started.elapsed());
            }
        }
        drop(talker);
        took
    });
    Some(took)
}

/// Lines a second to [`RECEIVERS`] members on another server: of
/// [`OUTAGE_LINES`] sent live, and of as many said while the broker was
/// down, from their first arrival to their last once it is back; and how
/// long after the broker's return the last arrived.
pub fn catch_up() -> Option<(f64, f64, Duration)> {
    let store = Store::new();
    let broker = store.broker(None)?;
    let port: u16 = broker.url.rsplit(':').next()?.parse().ok()?;
    let one = LinkedServer::start(&broker, "one", &[]);
    let two = LinkedServer::start(&broker, "two", &[]);
    let runtime = super::client_runtime();
    let mut broker = Some(broker);
    let figures = runtime.block_on(async {
        let mut receivers = Vec::new();
        for _ in 0..RECEIVERS {
            receivers.push(member(two.address).await);
        }
        let mut sender = member(one.address).await;
        // A member of one's own: once it has every line, one has taken them.
        let mut local = member(one.address).await;
        for receiver in &mut receivers {
            until(receiver, |line| line.contains("@one joined")).await;
        }
        let (live, _) = deliver(&mut sender, &mut local, &mut receivers, "live", || {}).await;
        drop(broker.take());
        for receiver in &mut receivers {
            until(receiver, |line| line.starts_with("*** lost link")).await;
        }
        let (late, back) = deliver(&mut sender, &mut local, &mut receivers, "late", || {
            broker = store.broker(Some(port));
        })
        .await;
        (live, late, back)
    });
    drop((one, two, broker));
    Some(figures)
}

/// Sends [`OUTAGE_LINES`] lines from `sender`, waits until `local` has
/// them all, calls `then`, and waits until every receiver has them: lines
/// a second from the first arrival to the last, and how long after `then`
/// the last arrived.
async fn deliver(
    sender: &mut BufReader<TcpStream>,
    local: &mut BufReader<TcpStream>,
    receivers: &mut [BufReader<TcpStream>],
    word: &str,
    then: impl FnOnce(),
) -> (f64, Duration) {
    let lines: String = (0..OUTAGE_LINES)
        .map(|n| format!("{word} line {n:05} of the test\n"))
        .collect();
    sender.get_mut().write_all(lines.as_bytes()).await.unwrap();
    let last = format!("{word} line {:05} of the test", OUTAGE_LINES - 1);
    until(local, |line| line.trim_end().ends_with(&last)).await;
    then();
    let after = Instant::now();
    let mut first: Option<Instant> = None;
    let mut arrivals = Vec::new();
    for receiver in receivers.iter_mut() {
        let mut line = String::new();
        let mut count = 0;
        while count < OUTAGE_LINES {
            line.clear();
            let read = tokio::time::timeout(Duration::from_secs(30), receiver.read_line(&mut line));
            assert!(read.await.expect("the lines arrive").unwrap() > 0, "closed");
            if line.contains(&format!("> {word} line ")) {
                count += 1;
                first.get_or_insert_with(Instant::now);
            }
        }
        arrivals.push(Instant::now());
    }
    let last = arrivals.into_iter().max().unwrap();
    let first = first.unwrap();
    let rate = (OUTAGE_LINES * RECEIVERS) as f64 / (last - first).as_secs_f64();
    (rate, last - after)
}

/// The median of each kind of measurement, in microseconds.
fn p50_us<const N: usize>(took: &mut [Vec<Duration>; N]) -> [f64; N] {
    took.each_mut().map(|times| {
        times.sort_unstable();
        support::percentile(times, 50.0).as_secs_f64() * 1e6
    })
}

/// Prints the linked history figures, `RUNS` runs each.
pub fn print() {
    let mut p50 = [Vec::new(), Vec::new(), Vec::new()];
    let mut over_held = Vec::new();
    for _ in 0..RUNS {
        let Some(mut took) = join_latencies() else {
            println!(
                "history, linked: skipped: nats-server (Debian package nats-server) is not installed"
            );
            return;
        };
        let run = p50_us(&mut took);
        for (figures, value) in p50.iter_mut().zip(run) {
            figures.push(value);
        }
        over_held.push(run[0] / run[1]);
    }
    let us = |values: &[f64]| support::range(values, |x| format!("{x:.0}"));
    println!(
        "/join on a linked server until its recent lines are in, {JOINS} joins each: 50 lines from the broker's stream p50 {} us, \
         50 lines held by the server p50 {} us ({} of it); into a room with none, until `you are in`, p50 {} us",
        us(&p50[0]),
        us(&p50[1]),
        support::range(&over_held, |x| format!("{x:.2}x")),
        us(&p50[2]),
    );
    let mut reads = [Vec::new(), Vec::new()];
    let mut ratio = Vec::new();
    for _ in 0..RUNS {
        let Some(mut took) = stream_reads() else {
            return;
        };
        let run = p50_us(&mut took);
        for (figures, value) in reads.iter_mut().zip(run) {
            figures.push(value);
        }
        ratio.push(run[1] / run[0]);
    }
    println!(
        "reading a room's 50 lines from the stream, {READS} reads each: a consumer of its subject p50 {} us, \
         a direct get a line p50 {} us ({} the consumer's time)",
        us(&reads[0]),
        us(&reads[1]),
        support::range(&ratio, |x| format!("{x:.2}x")),
    );
    let (mut live, mut late, mut back, mut ratio) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let Some((live_rate, late_rate, after)) = catch_up() else {
            return;
        };
        live.push(live_rate);
        late.push(late_rate);
        back.push(after.as_secs_f64());
        ratio.push(late_rate / live_rate);
    }
    println!(
        "{OUTAGE_LINES} lines said during a broker outage, to {RECEIVERS} members on another server: {}/s once they flow \
         ({} of the same lines live, {}/s); all there {} s after the broker was back",
        support::range(&late, support::per_second),
        support::range(&ratio, |x| format!("{x:.2}x")),
        support::range(&live, support::per_second),
        support::range(&back, |x| format!("{x:.2}")),
    );
}
