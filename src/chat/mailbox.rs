//! A member's send queue (`--sendq`): what others and the server have sent
//! it and its socket has not taken yet, as shared [`Bytes`], so a line sent
//! to a thousand members is formatted and stored once. Past the limit the
//! queue is dropped and marked overflowed: a member who does not read
//! costs the others nothing and the server no more than the limit.
//!
//! What the queue holds alive is about what it counts: once a member is
//! well behind, small parts (a rate-limited talker's one line per batch)
//! are copied together into chunks of the member's own, rather than each
//! keeping a queue slot and a shared buffer the others have long written;
//! and once taken, the queue starts again with no room at all.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

/// A part at most this long, arriving while more than
/// [`COPIED_PAST_BYTES`] wait, is copied into the queue's own chunk
/// instead of being kept as it came.
const COPIED_PART_BYTES: usize = 512;
/// Below this much waiting (a join storm's notices, a moment's lag) parts
/// are only shared: copying them would cost a buffer per member where one
/// is shared by all, and leave the allocator more to give back.
const COPIED_PAST_BYTES: usize = 16 * 1024;
/// The sizes of the chunks small parts are copied into: a quarter of what
/// waits, within these, so the room a chunk has to spare is small beside
/// what the queue holds.
const SMALLEST_CHUNK: usize = 1024;
const LARGEST_CHUNK: usize = 8 * 1024;

/// One member's queue, shared by everyone who sends to it.
#[derive(Debug)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    /// `--sendq`: the most bytes that may wait, unsent, for this member.
    limit: usize,
}

#[derive(Debug, Default)]
struct Queue {
    parts: VecDeque<Bytes>,
    /// Small parts copied together, after every one in `parts`.
    chunk: BytesMut,
    /// Bytes sent to the member and not yet written to its socket: those
    /// still here, and those its task has taken and is writing.
    unsent: usize,
    /// Set once; nothing is queued after it.
    closing: Option<Closing>,
    /// The member's task, while it waits for something to arrive. A waker
    /// rather than a `Notify`: a waiting member's task then holds no waiter
    /// of its own.
    waiting: Option<Waker>,
    /// Whether the waiting task is to be woken for a new part, or only for
    /// a close or an answer (its socket is full: it waits to write).
    wants_parts: bool,
    /// An answer from the other servers is on its way (the rest of a
    /// greeting, `/who`, `/rooms`, `/msg` across): what the member sends
    /// waits for it, so answers come in the order asked, one at a time.
    awaiting: bool,
    /// A nick given to the member by another task (it logged in, or its
    /// owner did elsewhere), for the member's own task to take.
    new_nick: Option<std::sync::Arc<str>>,
    /// With [`Closing::Kicked`]: the line the member is sent last.
    farewell: Option<Box<str>>,
}

/// Why a member's mailbox stopped taking lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing {
    /// Past `--sendq`: the member is too slow, and is to be cut.
    Overflowed,
    /// The server is shutting down.
    ShuttingDown,
    /// An operator kicked the member: its last line is in the mailbox.
    Kicked,
}

impl Mailbox {
    pub fn new(limit: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            limit,
        }
    }

    /// Queues `bytes` (whole lines) for the member. A member with nothing
    /// unsent takes a part of any size; past the limit, the queue is
    /// dropped and the mailbox closed as overflowed.
    pub fn push(&self, bytes: &Bytes) {
        self.queue(bytes, false);
    }

    fn queue(&self, bytes: &Bytes, wake_anyway: bool) {
        let mut queue = self.lock();
        if queue.closing.is_some() {
            return;
        }
        let wake = if queue.unsent > 0 && queue.unsent + bytes.len() > self.limit {
            queue.closing = Some(Closing::Overflowed);
            queue.parts = VecDeque::new();
            queue.chunk = BytesMut::new();
            true
        } else {
            queue.add(bytes);
            wake_anyway || queue.wants_parts
        };
        let waiting = if wake { queue.waiting.take() } else { None };
        drop(queue);
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    /// An answer from the other servers will come by [`Mailbox::answer`]:
    /// until then, [`Mailbox::awaiting`] says so.
    pub fn await_answer(&self) {
        self.lock().awaiting = true;
    }

    /// Queues the answer awaited: the member's lines are read again (its
    /// task is woken even while it waits to write).
    pub fn answer(&self, bytes: &Bytes) {
        self.lock().awaiting = false;
        self.queue(bytes, true);
    }

    /// The member's nick is now `nick`: its task takes it before its next
    /// line.
    pub fn renamed(&self, nick: std::sync::Arc<str>) {
        self.lock().new_nick = Some(nick);
    }

    /// Whether an answer is on its way (as [`Mailbox::awaiting`]), and a
    /// nick given by another task since the last call: one lock for both,
    /// once a wake-up.
    pub fn awaiting_and_new_nick(&self) -> (bool, Option<std::sync::Arc<str>>) {
        let mut queue = self.lock();
        (queue.awaiting, queue.new_nick.take())
    }

    /// Whether an answer from the other servers is still on its way.
    pub fn awaiting(&self) -> bool {
        self.lock().awaiting
    }

    /// Closes the mailbox for a shutdown: the member's task wakes and ends.
    /// What is queued stays, to be sent before the close.
    pub fn shut_down(&self) {
        let mut queue = self.lock();
        queue.closing.get_or_insert(Closing::ShuttingDown);
        let waiting = queue.waiting.take();
        drop(queue);
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    /// Closes the mailbox: the member is to be sent `farewell` and cut.
    pub fn kick(&self, farewell: String) {
        let mut queue = self.lock();
        if queue.closing.is_none() {
            queue.closing = Some(Closing::Kicked);
            queue.farewell = Some(farewell.into());
        }
        let waiting = queue.waiting.take();
        drop(queue);
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    /// The last line of a member kicked.
    pub fn farewell(&self) -> Option<Box<str>> {
        self.lock().farewell.take()
    }

    /// Moves everything queued to the back of `into`, for writing; once
    /// the mailbox is closed, says why instead.
    pub fn take(&self, into: &mut VecDeque<Bytes>) -> Result<(), Closing> {
        let mut queue = self.lock();
        if let Some(closing) = queue.closing {
            return Err(closing);
        }
        queue.move_into(into);
        Ok(())
    }

    /// Why the mailbox is closed, if it is.
    pub fn closing(&self) -> Option<Closing> {
        self.lock().closing
    }

    /// Moves what is still queued to the back of `into`, closed or not:
    /// what a member leaving is owed (nothing, if it overflowed).
    pub fn take_rest(&self, into: &mut VecDeque<Bytes>) {
        self.lock().move_into(into);
    }

    /// Counts `count` bytes taken from this mailbox as written.
    pub fn written(&self, count: usize) {
        let mut queue = self.lock();
        queue.unsent = queue.unsent.saturating_sub(count);
    }

    /// Ready once the mailbox is closed or, if `wants_parts`, something
    /// is queued; otherwise the task is woken when that happens (and for
    /// an answer).
    pub fn poll_arrival(&self, context: &mut Context<'_>, wants_parts: bool) -> Poll<()> {
        let mut queue = self.lock();
        let queued = !queue.parts.is_empty() || !queue.chunk.is_empty();
        if queue.closing.is_some() || (wants_parts && queued) {
            return Poll::Ready(());
        }
        queue.wants_parts = wants_parts;
        match &mut queue.waiting {
            Some(waker) if waker.will_wake(context.waker()) => {}
            waiting => *waiting = Some(context.waker().clone()),
        }
        Poll::Pending
    }

    /// `--sendq`, for the error line.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves the queue consistent (each
        // change is one assignment), so a poisoned lock is still usable.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Queue {
    /// Adds `bytes` after everything queued: a small part that comes while
    /// much waits is copied into the chunk; any other is kept as it is.
    fn add(&mut self, bytes: &Bytes) {
        let behind = self.unsent > COPIED_PAST_BYTES;
        self.unsent += bytes.len();
        if behind && bytes.len() <= COPIED_PART_BYTES {
            if self.chunk.capacity() - self.chunk.len() < bytes.len() {
                self.close_chunk();
                let size = (self.unsent / 4).clamp(SMALLEST_CHUNK, LARGEST_CHUNK);
                self.chunk = BytesMut::with_capacity(size.max(bytes.len()));
            }
            self.chunk.extend_from_slice(bytes);
        } else {
            self.close_chunk();
            self.parts.push_back(bytes.clone());
        }
    }

    /// Ends the chunk being filled: it goes after the parts before it.
    fn close_chunk(&mut self) {
        if !self.chunk.is_empty() {
            let chunk = std::mem::take(&mut self.chunk).freeze();
            self.parts.push_back(chunk);
        }
    }

    /// Moves every part, in order, to the back of `into`; the queue keeps
    /// no room.
    fn move_into(&mut self, into: &mut VecDeque<Bytes>) {
        self.close_chunk();
        if into.is_empty() {
            *into = std::mem::take(&mut self.parts);
        } else {
            into.append(&mut self.parts);
            self.parts = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_past_the_limit_overflows_and_holds_nothing() {
        let mailbox = Mailbox::new(10);
        mailbox.push(&Bytes::from_static(b"0123456"));
        mailbox.push(&Bytes::from_static(b"789"));
        let mut taken = VecDeque::new();
        mailbox.take(&mut taken).unwrap();
        assert_eq!(taken.len(), 2);
        // Taken is not written: 10 bytes are still unsent.
        mailbox.push(&Bytes::from_static(b"x"));
        assert_eq!(mailbox.take(&mut taken), Err(Closing::Overflowed));
        assert!(mailbox.lock().parts.is_empty());
    }

    #[test]
    fn written_bytes_make_room_and_an_empty_queue_takes_any_size() {
        let mailbox = Mailbox::new(10);
        mailbox.push(&Bytes::from(vec![b'a'; 100]));
        let mut taken = VecDeque::new();
        mailbox.take(&mut taken).unwrap();
        mailbox.written(100);
        mailbox.push(&Bytes::from(vec![b'b'; 10]));
        mailbox.take(&mut taken).unwrap();
        assert_eq!(taken.len(), 2);
    }

    #[test]
    fn small_parts_for_a_member_well_behind_are_copied_together_in_order() {
        let mailbox = Mailbox::new(1024 * 1024);
        let behind = Bytes::from(vec![b'w'; COPIED_PAST_BYTES + 1]);
        mailbox.push(&behind);
        let large = Bytes::from(vec![b'L'; COPIED_PART_BYTES + 1]);
        let line = |text: &'static [u8]| Bytes::copy_from_slice(text);
        for part in [
            line(b"a\r\n"),
            line(b"b\r\n"),
            large.clone(),
            line(b"c\r\n"),
        ] {
            mailbox.push(&part);
        }
        let mut taken = VecDeque::new();
        mailbox.take(&mut taken).unwrap();
        let taken: Vec<&[u8]> = taken.iter().map(|part| &part[..]).collect();
        assert_eq!(taken, [&behind[..], b"a\r\nb\r\n", &large, b"c\r\n"]);
        // The large part is the very buffer pushed, shared, not a copy.
        assert_eq!(taken[2].as_ptr(), large.as_ptr());
        assert!(mailbox.lock().parts.capacity() == 0 && mailbox.lock().chunk.capacity() == 0);
    }
}
