//! Chat mode checked against a model: random members do random things
//! (talk, commands good and bad, leave, arrive) through real sockets, and
//! every member must receive exactly what a small model of the rules says,
//! line for line. The model is written from the spec, not from the code.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use chat::chat as chat_mode;
use chat::delimiter::Delimiter;
use chat::framing::LineFormat;
use chat::server::{self, Config};
use proptest::prelude::*;
use tokio::net::TcpListener;

/// What a member does, by index into the members connected (modulo).
#[derive(Clone, Debug)]
enum Action {
    Say(usize, String),
    Me(usize, String),
    Nick(usize, String),
    Join(usize, String),
    Who(usize),
    Rooms(usize),
    Msg(usize, String, String),
    Line(usize, String),
    Quit(usize, Option<String>),
    Arrive,
}

fn words() -> impl Strategy<Value = String> {
    "[a-z]{1,5}( [a-z]{1,5})?"
}

fn action() -> impl Strategy<Value = Action> {
    let member = 0..6usize;
    let nick = prop::sample::select(vec!["ann", "Ann", "bob", "guest1", "guest4", "9x", "b c"]);
    let room = prop::sample::select(vec!["lobby", "rust", "#Rust", "x.y", "#"]);
    prop_oneof![
        4 => (member.clone(), words()).prop_map(|(m, text)| Action::Say(m, text)),
        1 => (member.clone(), "([a-z]{1,5})?").prop_map(|(m, text)| Action::Me(m, text)),
        2 => (member.clone(), nick.clone()).prop_map(|(m, n)| Action::Nick(m, n.to_string())),
        2 => (member.clone(), room).prop_map(|(m, r)| Action::Join(m, r.to_string())),
        1 => member.clone().prop_map(Action::Who),
        1 => member.clone().prop_map(Action::Rooms),
        1 => (member.clone(), prop::sample::select(vec!["ann", "BOB", "guest2", "nobody"]), "([a-z]{1,5})?")
            .prop_map(|(m, to, text)| Action::Msg(m, to.to_string(), text)),
        1 => (member.clone(), prop::sample::select(vec!["", "/foo", "//x", "."]))
            .prop_map(|(m, line)| Action::Line(m, line.to_string())),
        1 => (member, proptest::option::of("[a-z]{1,5}")).prop_map(|(m, why)| Action::Quit(m, why)),
        1 => Just(Action::Arrive),
    ]
}

/// The rules, as the spec states them.
#[derive(Default)]
struct Model {
    guests: u64,
    /// Connected members, in arrival order: (nick, room).
    members: Vec<(String, String)>,
    /// Each room's recent lines of talk, as its members saw them.
    history: BTreeMap<String, Vec<String>>,
}

/// Ends an expected line that is only known up to there: the recent
/// lines' time.
const ANY_REST: &str = "…";

/// Lines each member (by position in `Model::members`) is to receive.
type Expected = Vec<Vec<String>>;

impl Model {
    fn fold(nick: &str) -> String {
        nick.to_ascii_lowercase()
    }

    fn find(&self, nick: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|(other, _)| Self::fold(other) == Self::fold(nick))
    }

    fn in_room(&self, room: &str) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&m| self.members[m].1 == room)
            .collect()
    }

    fn names(&self, room: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .in_room(room)
            .into_iter()
            .map(|m| self.members[m].0.clone())
            .collect();
        names.sort_by_key(|name| Self::fold(name));
        names
    }

    fn here(&self, room: &str) -> String {
        let names = self.names(room);
        format!("*** here: {} ({})", names.join(", "), names.len())
    }

    /// What a member joining `room` gets before the `here:` line.
    fn recent(&self, room: &str) -> Vec<String> {
        let Some(lines) = self.history.get(room).filter(|lines| !lines.is_empty()) else {
            return Vec::new();
        };
        let count = lines.len();
        let plural = if count == 1 { "line" } else { "lines" };
        let mut out = vec![format!(
            "*** recent in #{room} ({count} {plural} since {ANY_REST}"
        )];
        out.extend(lines.iter().cloned());
        out.push("*** end of recent lines".to_string());
        out
    }

    /// Talk said in `room`: to the others, and into its history.
    fn talk(&mut self, expected: &mut Expected, room: &str, except: usize, line: &str) {
        self.to_room(expected, room, except, line);
        let kept = self.history.entry(room.to_string()).or_default();
        kept.push(line.to_string());
        if kept.len() > chat::chat::history::DEFAULT_HISTORY_LINES {
            kept.remove(0);
        }
    }

    /// A room its last member left forgets what was said in it.
    fn forget_if_empty(&mut self, room: &str) {
        if self.in_room(room).is_empty() {
            self.history.remove(room);
        }
    }

    fn to_room(&self, expected: &mut Expected, room: &str, except: usize, line: &str) {
        for m in self.in_room(room) {
            if m != except {
                expected[m].push(line.to_string());
            }
        }
    }

    fn valid_nick(name: &str) -> bool {
        (1..=24).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    fn valid_room(name: &str) -> Option<String> {
        let name = name.strip_prefix('#').unwrap_or(name).to_ascii_lowercase();
        let valid = (1..=32).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        valid.then_some(name)
    }

    /// A member arrives: returns what everyone receives.
    fn arrive(&mut self, expected: &mut Expected) {
        let nick = loop {
            self.guests += 1;
            let nick = format!("guest{}", self.guests);
            if self.find(&nick).is_none() {
                break nick;
            }
        };
        self.members.push((nick.clone(), "lobby".to_string()));
        expected.push(Vec::new());
        let me = self.members.len() - 1;
        expected[me].push(format!("*** welcome to #lobby, you are {nick}"));
        expected[me].extend(self.recent("lobby"));
        expected[me].push(self.here("lobby"));
        expected[me]
            .push("*** type to talk; /help for commands; \".\" or /quit to leave".to_string());
        self.to_room(expected, "lobby", me, &format!("*** {nick} joined"));
    }

    /// Member `m` sends `line`; what everyone receives is added.
    fn send(&mut self, m: usize, action: &Action, expected: &mut Expected) {
        let (nick, room) = self.members[m].clone();
        match action {
            Action::Say(_, text) => self.talk(expected, &room, m, &format!("<{nick}> {text}")),
            Action::Me(_, text) if text.is_empty() => {
                expected[m].push("error: /me needs text".to_string())
            }
            Action::Me(_, text) => self.talk(expected, &room, m, &format!("* {nick} {text}")),
            Action::Nick(_, new) if !Self::valid_nick(new) => expected[m].push(
                "error: a nick is 1-24 letters, digits, - or _, starting with a letter".to_string(),
            ),
            Action::Nick(_, new) => match self.find(new) {
                Some(owner) if owner != m => {
                    expected[m].push(format!("error: nick \"{new}\" is taken"))
                }
                _ => {
                    self.members[m].0 = new.clone();
                    expected[m].push(format!("*** you are now {new}"));
                    if &nick != new {
                        self.to_room(expected, &room, m, &format!("*** {nick} is now {new}"));
                    }
                }
            },
            Action::Join(_, name) => match Self::valid_room(name) {
                None => expected[m].push("error: a room name is 1-32 of a-z 0-9 - _".to_string()),
                Some(new) => {
                    expected[m].push(format!("*** you are in #{new}"));
                    if new != room {
                        let left = format!("*** {nick} left (to #{new})");
                        self.to_room(expected, &room, m, &left);
                        self.members[m].1 = new.clone();
                        self.forget_if_empty(&room);
                        expected[m].extend(self.recent(&new));
                        self.to_room(expected, &new, m, &format!("*** {nick} joined"));
                    }
                    expected[m].push(self.here(&new));
                }
            },
            Action::Who(_) => {
                let names = self.names(&room);
                let line = format!(
                    "*** here in #{room} ({}): {}",
                    names.len(),
                    names.join(", ")
                );
                expected[m].push(line);
            }
            Action::Rooms(_) => expected[m].push(self.rooms()),
            Action::Msg(_, _, text) if text.is_empty() => {
                expected[m].push("error: /msg needs a nick and text".to_string())
            }
            Action::Msg(_, to, text) => match self.find(to) {
                None => expected[m].push(format!("error: no such nick \"{to}\"")),
                Some(target) => {
                    let target_nick = self.members[target].0.clone();
                    expected[m].push(format!("-> *{target_nick}* {text}"));
                    expected[target].push(format!("*{nick}* {text}"));
                }
            },
            Action::Line(_, line) => match line.as_str() {
                "" => {}
                "//x" => self.talk(expected, &room, m, &format!("<{nick}> /x")),
                "/foo" => expected[m]
                    .push("error: unknown command \"/foo\"; /help lists commands".to_string()),
                _ => unreachable!("`.` is a quit"),
            },
            Action::Quit(..) | Action::Arrive => unreachable!("handled by the caller"),
        }
    }

    fn rooms(&self) -> String {
        let mut rooms: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, room) in &self.members {
            *rooms.entry(room).or_default() += 1;
        }
        let list: Vec<String> = rooms
            .iter()
            .map(|(name, n)| format!("#{name} ({n})"))
            .collect();
        format!("*** rooms: {}", list.join(", "))
    }

    /// Member `m` leaves; the others told; returns nothing for it (it is
    /// closed).
    fn quit(&mut self, m: usize, why: &Option<String>, expected: &mut Expected) {
        let (nick, room) = self.members.remove(m);
        expected.remove(m);
        let line = match why {
            Some(why) => format!("*** {nick} left ({why})"),
            None => format!("*** {nick} left"),
        };
        for other in self.in_room(&room) {
            expected[other].push(line.clone());
        }
        self.forget_if_empty(&room);
    }
}

/// One real member: a blocking socket with a read timeout.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address).expect("connecting");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Connection {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .expect("sending");
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a line in time");
        assert!(line.ends_with("\r\n"), "a whole line, not {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn rest(&mut self) -> String {
        let mut rest = String::new();
        self.reader
            .read_to_string(&mut rest)
            .expect("the close in time");
        rest
    }
}

fn start_server() -> (tokio::runtime::Runtime, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = Config {
        format: Arc::new(LineFormat::new(Delimiter::lenient(), 1024)),
        max_connections: 100,
        idle_timeout: None,
        log_connections: false,
        chat: Some(chat_mode::Settings {
            max_rate: None,
            ..chat_mode::Settings::default()
        }),
        per_address: None,
        tls: None,
        close_stall: chat::server::CLOSE_STALL,
    };
    let address = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(server::run(vec![listener], config, std::future::pending()));
        address
    });
    (runtime, address)
}

/// Reads what each member is expected to have received, and compares.
fn check(connections: &mut [Connection], expected: &mut Expected) -> Result<(), TestCaseError> {
    for (m, lines) in expected.iter_mut().enumerate() {
        for line in lines.drain(..) {
            let received = connections[m].line();
            match line.strip_suffix(ANY_REST) {
                Some(start) => {
                    prop_assert!(received.starts_with(start), "member {}: {}", m, received)
                }
                None => prop_assert_eq!(received, line, "member {}", m),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_member_receives_what_the_model_says(
        actions in prop::collection::vec(action(), 1..40),
    ) {
        let (_runtime, address) = start_server();
        let mut model = Model::default();
        let mut expected: Expected = Vec::new();
        let mut connections = Vec::new();
        for _ in 0..3 {
            connections.push(Connection::open(address));
            model.arrive(&mut expected);
            check(&mut connections, &mut expected)?;
        }
        for action in &actions {
            let member = match action {
                Action::Arrive => {
                    connections.push(Connection::open(address));
                    model.arrive(&mut expected);
                    check(&mut connections, &mut expected)?;
                    continue;
                }
                Action::Say(m, _) | Action::Me(m, _) | Action::Nick(m, _)
                | Action::Join(m, _) | Action::Who(m) | Action::Rooms(m)
                | Action::Msg(m, ..) | Action::Line(m, _) | Action::Quit(m, _) => *m,
            };
            if connections.is_empty() {
                continue;
            }
            let m = member % connections.len();
            let quit = match action {
                Action::Quit(_, why) => Some(why.clone()),
                Action::Line(_, line) if line == "." => Some(None),
                _ => None,
            };
            if let Some(why) = quit {
                match (&why, action) {
                    (_, Action::Line(..)) => connections[m].send("."),
                    (Some(why), _) => connections[m].send(&format!("/quit {why}")),
                    (None, _) => connections[m].send("/quit"),
                }
                prop_assert_eq!(connections[m].rest(), "*** bye\r\n");
                connections.remove(m);
                model.quit(m, &why, &mut expected);
            } else {
                let line = match action {
                    Action::Say(_, text) => text.clone(),
                    Action::Me(_, text) if text.is_empty() => "/me".to_string(),
                    Action::Me(_, text) => format!("/me {text}"),
                    Action::Nick(_, nick) => format!("/nick {nick}"),
                    Action::Join(_, room) => format!("/join {room}"),
                    Action::Who(_) => "/who".to_string(),
                    Action::Rooms(_) => "/rooms".to_string(),
                    Action::Msg(_, to, text) => format!("/msg {to} {text}"),
                    Action::Line(_, line) => line.clone(),
                    Action::Quit(..) | Action::Arrive => unreachable!(),
                };
                connections[m].send(&line);
                model.send(m, action, &mut expected);
                // The answer to /rooms comes after everything the line did:
                // the next action cannot overtake it.
                connections[m].send("/rooms");
                let rooms = model.rooms();
                expected[m].push(rooms);
            }
            check(&mut connections, &mut expected)?;
        }
        // At the end, each leaves in turn: nothing more than the model says
        // may have arrived.
        while !connections.is_empty() {
            connections[0].send("/quit");
            let rest = connections[0].rest();
            prop_assert_eq!(rest, "*** bye\r\n");
            connections.remove(0);
            model.quit(0, &None, &mut expected);
            check(&mut connections, &mut expected)?;
        }
    }
}
