//! Chat mode under load, through real sockets against the real
//! `chat-server --chat`: a full room where everyone talks, a member who
//! never reads, a flooder, and a thousand joins. Every loop is bounded in
//! count, and every wait in time.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::member::Member;
use crate::common::*;
use tokio::sync::watch;
use tokio::time::Instant;

/// The tests here load both cores; each runs alone, so none measures
/// another's load.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether `line` is a notice or a chat line (`<nick> text`), and if a
/// chat line, from whom and what.
fn said(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('<')?;
    rest.split_once("> ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_room_of_200_everyone_receives_every_other_line_whole_and_in_order() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const MEMBERS: usize = 200;
    const LINES_EACH: usize = 10;
    let server = Server::start(&["--chat", "--quiet"]).await;
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        members.push(Member::join(server.address).await);
    }
    let mut tasks = Vec::new();
    for mut member in members {
        tasks.push(tokio::spawn(async move {
            let mut talk = String::new();
            for i in 0..LINES_EACH {
                talk.push_str(&format!(
                    "line {i} from {} {}\n",
                    member.nick,
                    "x".repeat(i * 20)
                ));
            }
            member.send_bytes(talk.as_bytes()).await;
            // Per sender, the next line number expected.
            let mut next: HashMap<String, usize> = HashMap::new();
            let mut received = 0;
            while received < (MEMBERS - 1) * LINES_EACH {
                let line = member.line().await;
                let Some((nick, text)) = said(&line) else {
                    assert!(line.starts_with("*** "), "{line}");
                    continue;
                };
                assert_ne!(nick, member.nick, "a member received its own line");
                let expected = next.entry(nick.to_string()).or_default();
                let whole = format!("line {expected} from {nick} {}", "x".repeat(*expected * 20));
                assert_eq!(text, whole, "{} received", member.nick);
                *expected += 1;
                received += 1;
            }
            assert_eq!(next.len(), MEMBERS - 1);
            assert!(next.values().all(|&count| count == LINES_EACH));
        }));
    }
    for task in tasks {
        within("every member to receive every line", task)
            .await
            .expect("a member's checks pass");
    }
}

/// Reads `member`'s lines, numbered `N ...`, checking each is whole and
/// next in order, and publishes how many have arrived; returns at the
/// notice that `gone` left.
async fn read_numbered(
    mut member: Member,
    sender: String,
    gone: String,
    seen: watch::Sender<usize>,
) {
    let mut count = 0;
    loop {
        let line = member.line().await;
        if line.starts_with("*** ") {
            if line.starts_with(&format!("*** {gone} left")) {
                assert_eq!(line, format!("*** {gone} left (too slow)"));
                return;
            }
            continue;
        }
        let (nick, text) = said(&line).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(nick, sender);
        assert_eq!(text, numbered(count), "line {count}");
        count += 1;
        seen.send_replace(count);
    }
}

fn numbered(n: usize) -> String {
    format!("{n:08} {}", "z".repeat(190))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_never_reads_is_cut_and_costs_at_most_its_sendq() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const SENDQ: usize = 256 * 1024;
    /// The sender keeps at most this many lines unseen by the readers.
    const WINDOW: usize = 256;
    /// The most lines sent; the cut comes long before.
    const MAX_LINES: usize = 200_000;
    let server = Server::start(&["--chat", "--quiet", "--max-rate", "0"]).await;

    // The non-reader first, with a small receive buffer, so the kernel
    // holds little for it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = within("connecting", socket.connect(server.address))
        .await
        .unwrap();
    let mut sleeper = Member::join_stream(stream).await;
    let mut sender = Member::join(server.address).await;
    let readers = [
        Member::join(server.address).await,
        Member::join(server.address).await,
    ];
    let before_kib = server.resident_kib();

    let mut progress = Vec::new();
    let mut reading = Vec::new();
    for reader in readers {
        let (seen, watched) = watch::channel(0);
        progress.push(watched);
        reading.push(tokio::spawn(read_numbered(
            reader,
            sender.nick.clone(),
            sleeper.nick.clone(),
            seen,
        )));
    }
    let mut sent = 0;
    let cut = loop {
        assert!(sent < MAX_LINES, "the non-reader was never cut");
        let slowest = progress.iter().map(|seen| *seen.borrow()).min().unwrap();
        if reading.iter().all(|task| task.is_finished()) {
            break sent;
        }
        if sent - slowest < WINDOW {
            let mut batch = String::new();
            for n in sent..sent + 32 {
                batch.push_str(&numbered(n));
                batch.push('\n');
            }
            sender.send_bytes(batch.as_bytes()).await;
            sent += 32;
        } else {
            let mut watched = progress[0].clone();
            let _ = within("readers to keep up", watched.changed()).await;
        }
    };
    for task in reading {
        within("the readers", task)
            .await
            .expect("readers' checks pass");
    }
    let peak_kib = server.peak_resident_kib();
    eprintln!("cut after {cut} lines; resident {before_kib} KiB before, peak {peak_kib} KiB");
    assert!(
        (peak_kib.saturating_sub(before_kib) * 1024) as usize <= SENDQ + 1024 * 1024,
        "peak {peak_kib} KiB, {before_kib} KiB before"
    );

    // What the non-reader gets once it reads: whole lines, then the error.
    let rest = sleeper.rest().await;
    let mut lines: Vec<&str> = rest.split_terminator("\r\n").collect();
    let last = lines.pop().unwrap();
    assert_eq!(
        last,
        format!("error: too slow: more than {SENDQ} bytes unread")
    );
    for (n, line) in lines
        .into_iter()
        .filter(|line| !line.starts_with("*** "))
        .enumerate()
    {
        assert_eq!(line, format!("<{}> {}", sender.nick, numbered(n)));
    }
}

#[tokio::test]
async fn a_flooder_is_read_more_slowly_and_loses_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const RATE: usize = 100;
    const LINES: usize = 3 * RATE;
    let server = Server::start(&["--chat", "--max-rate", "100"]).await;
    let mut reader = Member::join(server.address).await;
    let mut flooder = Member::join(server.address).await;
    reader.expect(&format!("*** {} joined", flooder.nick)).await;
    let flood: String = (0..LINES).map(|n| format!("flood {n}\n")).collect();
    let started = Instant::now();
    flooder.send_bytes(flood.as_bytes()).await;
    for n in 0..LINES {
        reader
            .expect(&format!("<{}> flood {n}", flooder.nick))
            .await;
    }
    // A burst of RATE, then RATE a second: no faster than that.
    let least = Duration::from_secs_f64((LINES - RATE) as f64 / RATE as f64);
    assert!(
        started.elapsed() >= least.mul_f64(0.95),
        "{:?}",
        started.elapsed()
    );
    // Not cut: it is still a member, and answered.
    flooder.send("/who").await;
    let who = flooder.line().await;
    assert!(who.starts_with("*** here in #lobby (2)"), "{who}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_members_join_in_a_second_at_a_line_each() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const MEMBERS: usize = 1000;
    let server = Server::start(&["--chat", "--quiet"]).await;
    let started = Instant::now();
    let mut first = Member::join(server.address).await;
    let joining: Vec<_> = (1..MEMBERS)
        .map(|_| tokio::spawn(Member::join(server.address)))
        .collect();
    for n in 1..MEMBERS {
        let line = first.line().await;
        assert!(
            line.starts_with("*** guest") && line.ends_with(" joined"),
            "{n}: {line}"
        );
    }
    let mut members = Vec::new();
    for member in joining {
        members.push(within("a member to be greeted", member).await.unwrap());
    }
    let settled = started.elapsed();
    eprintln!("{MEMBERS} members joined in {settled:?}");
    // Nothing but one line per join came: the next line answers this.
    first.send("/who").await;
    let who = first.line().await;
    assert!(
        who.starts_with(&format!("*** here in #lobby ({MEMBERS}): ")),
        "{who}"
    );
    assert!(settled < Duration::from_secs(1), "joins took {settled:?}");
    drop(members);
}
