//! The server against a model of the protocol: arbitrary byte streams
//! (lines, dots, overlong lines, stray delimiter bytes) sent in arbitrary
//! chunks over a real socket must get exactly the replies, and the close,
//! that the model written here says.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use crate::common::within;
use chat::delimiter::Delimiter;
use chat::framing::LineFormat;
use chat::server::{self, Config};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const MAX_LINE_BYTES: usize = 16;

/// What the server must send back for `input`, sent whole and followed by
/// the end of input, when lines end with `delimiter`. The connection is
/// closed after it in every case.
fn model(input: &[u8], delimiter: &[u8]) -> Vec<u8> {
    let next_line = |rest: &[u8]| {
        let at = rest
            .windows(delimiter.len())
            .position(|window| window == delimiter)?;
        Some((at, at + delimiter.len()))
    };
    model_by(
        input,
        next_line,
        delimiter,
        MAX_LINE_BYTES + delimiter.len() - 1,
    )
}

/// The same with `--delimiter lenient`: lines end at LF, a CR just before
/// it is not part of the line (nor counted in its length), and every reply
/// ends with CRLF.
fn lenient_model(input: &[u8]) -> Vec<u8> {
    let next_line = |rest: &[u8]| {
        let at = rest.iter().position(|&byte| byte == b'\n')?;
        let line_len = if at > 0 && rest[at - 1] == b'\r' {
            at - 1
        } else {
            at
        };
        Some((line_len, at + 1))
    };
    // Refused once a tail cannot fit even with a CR still to come.
    model_by(input, next_line, b"\r\n", MAX_LINE_BYTES + 1)
}

/// The protocol written plainly: `next_line` gives the length of the next
/// whole line and how many bytes it takes with its ending; replies end with
/// `written`; a tail with no ending longer than `longest_tail` is refused.
fn model_by(
    input: &[u8],
    next_line: impl Fn(&[u8]) -> Option<(usize, usize)>,
    written: &[u8],
    longest_tail: usize,
) -> Vec<u8> {
    let too_long = [
        format!("error: line exceeds {MAX_LINE_BYTES} bytes").as_bytes(),
        written,
    ]
    .concat();
    let mut replies = Vec::new();
    let mut rest = input;
    loop {
        let Some((line_len, taken)) = next_line(rest) else {
            // No more whole lines: a fragment that can no longer be short
            // enough is refused; a shorter one is dropped at the end of input.
            if rest.len() > longest_tail {
                replies.extend_from_slice(&too_long);
            }
            return replies;
        };
        let line = &rest[..line_len];
        if line.len() > MAX_LINE_BYTES {
            replies.extend_from_slice(&too_long);
            return replies;
        }
        if line == b"." {
            return replies;
        }
        replies.extend_from_slice(b"You sent: ");
        replies.extend_from_slice(line);
        replies.extend_from_slice(written);
        rest = &rest[taken..];
    }
}

/// One runtime for all cases, with a server per delimiter running on it.
struct Servers {
    runtime: Runtime,
    crlf: SocketAddr,
    lf: SocketAddr,
    three_bytes: SocketAddr,
    lenient: SocketAddr,
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let start = |delimiter: Delimiter| {
            let config = Config {
                format: Arc::new(LineFormat::new(delimiter, MAX_LINE_BYTES)),
                max_connections: 100,
                idle_timeout: None,
                log_connections: false,
                chat: None,
                per_address: None,
                tls: None,
                close_stall: chat::server::CLOSE_STALL,
            };
            runtime.block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let address = listener.local_addr().unwrap();
                tokio::spawn(server::run(vec![listener], config, std::future::pending()));
                address
            })
        };
        let exact = |bytes: &[u8]| Delimiter::new(bytes).unwrap();
        Servers {
            crlf: start(exact(b"\r\n")),
            lf: start(exact(b"\n")),
            three_bytes: start(exact(b"<=>")),
            lenient: start(Delimiter::lenient()),
            runtime,
        }
    })
}

/// Sends `input` cut into `chunks`, one write each, then ends the input;
/// returns everything received until the server closed.
fn send_in_chunks(address: SocketAddr, input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut bounds: Vec<usize> = cuts.iter().map(|cut| cut % (input.len() + 1)).collect();
    bounds.extend([0, input.len()]);
    bounds.sort_unstable();
    let chunks: Vec<Vec<u8>> = bounds
        .windows(2)
        .map(|w| input[w[0]..w[1]].to_vec())
        .collect();
    servers().runtime.block_on(async move {
        let stream = within("connecting", TcpStream::connect(address))
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let sender = tokio::spawn(async move {
            for chunk in chunks {
                writer.write_all(&chunk).await?;
            }
            writer.shutdown().await
        });
        let mut received = Vec::new();
        within("the server to close", reader.read_to_end(&mut received))
            .await
            .expect("a clean close, not a reset");
        within("the sender", sender)
            .await
            .unwrap()
            .expect("everything sent is read, even after the close");
        received
    })
}

/// Streams built from protocol pieces: lines of bytes that are often the
/// delimiter's own, `.` lines, overlong lines, and stray bytes.
fn stream_for(delimiter: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => proptest::sample::select(delimiter.to_vec()),
        2 => Just(b'.'),
        1 => any::<u8>(),
    ];
    let piece = prop_oneof![
        4 => proptest::collection::vec(byte.clone(), 0..12)
            .prop_map(move |line| [&line[..], delimiter].concat()),
        1 => Just([&b"."[..], delimiter].concat()),
        1 => (MAX_LINE_BYTES - 1..MAX_LINE_BYTES + 3)
            .prop_map(move |len| [&vec![b'x'; len][..], delimiter].concat()),
        1 => proptest::collection::vec(byte, 0..30),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn check(
    address: SocketAddr,
    delimiter: &[u8],
    input: &[u8],
    cuts: &[usize],
) -> Result<(), TestCaseError> {
    check_against(address, input, cuts, model(input, delimiter))
}

fn check_against(
    address: SocketAddr,
    input: &[u8],
    cuts: &[usize],
    expected: Vec<u8>,
) -> Result<(), TestCaseError> {
    let received = send_in_chunks(address, input, cuts);
    prop_assert_eq!(
        String::from_utf8_lossy(&received),
        String::from_utf8_lossy(&expected),
        "input {:?} cut at {:?}",
        String::from_utf8_lossy(input),
        cuts
    );
    prop_assert_eq!(received, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn crlf_server_matches_the_model(
        input in stream_for(b"\r\n"),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        check(servers().crlf, b"\r\n", &input, &cuts)?;
    }

    #[test]
    fn lf_server_matches_the_model(
        input in stream_for(b"\n"),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        check(servers().lf, b"\n", &input, &cuts)?;
    }

    #[test]
    fn three_byte_delimiter_server_matches_the_model(
        input in stream_for(b"<=>"),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        check(servers().three_bytes, b"<=>", &input, &cuts)?;
    }

    /// LF, CRLF and stray CRs mixed, as `nc`, `telnet` and scripts send.
    #[test]
    fn lenient_server_matches_the_model(
        input in stream_for(b"\r\n"),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        check_against(servers().lenient, &input, &cuts, lenient_model(&input))?;
    }
}
