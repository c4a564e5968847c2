//! A member's send queue (`--sendq`): what others and the server have sent
//! it and its socket has not taken yet, as shared [`Bytes`], so a line sent
//! to a thousand members is formatted and stored once. Past the limit the
//! queue is dropped and marked overflowed: a member who does not read
//! costs the others nothing and the server no more than the limit.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

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
    /// Bytes sent to the member and not yet written to its socket: those
    /// still here, and those its task has taken and is writing.
    unsent: usize,
    /// Set once; nothing is queued after it.
    closing: Option<Closing>,
    /// The member's task, while it waits for something to arrive. A waker
    /// rather than a `Notify`: a waiting member's task then holds no waiter
    /// of its own.
    waiting: Option<Waker>,
    /// An answer from the other servers is on its way (the rest of a
    /// greeting, `/who`, `/rooms`, `/msg` across): what the member sends
    /// waits for it, so answers come in the order asked, one at a time.
    awaiting: bool,
}

/// Why a member's mailbox stopped taking lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing {
    /// Past `--sendq`: the member is too slow, and is to be cut.
    Overflowed,
    /// The server is shutting down.
    ShuttingDown,
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
    pub fn push(&self, bytes: Bytes) {
        let mut queue = self.lock();
        if queue.closing.is_some() {
            return;
        }
        if queue.unsent > 0 && queue.unsent + bytes.len() > self.limit {
            queue.closing = Some(Closing::Overflowed);
            queue.parts = VecDeque::new();
        } else {
            queue.unsent += bytes.len();
            queue.parts.push_back(bytes);
        }
        let waiting = queue.waiting.take();
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

    /// Queues the answer awaited: the member's lines are read again.
    pub fn answer(&self, bytes: Bytes) {
        self.lock().awaiting = false;
        self.push(bytes);
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

    /// Moves everything queued to the back of `into`, for writing; once
    /// the mailbox is closed, says why instead.
    pub fn take(&self, into: &mut VecDeque<Bytes>) -> Result<(), Closing> {
        let mut queue = self.lock();
        if let Some(closing) = queue.closing {
            return Err(closing);
        }
        if into.is_empty() {
            // Taken whole: the mailbox keeps no room while it is empty.
            *into = std::mem::take(&mut queue.parts);
        } else {
            into.extend(queue.parts.drain(..));
        }
        Ok(())
    }

    /// Moves what is still queued to the back of `into`, closed or not:
    /// what a member leaving is owed (nothing, if it overflowed).
    pub fn take_rest(&self, into: &mut VecDeque<Bytes>) {
        into.extend(self.lock().parts.drain(..));
    }

    /// Counts `count` bytes taken from this mailbox as written.
    pub fn written(&self, count: usize) {
        let mut queue = self.lock();
        queue.unsent = queue.unsent.saturating_sub(count);
    }

    /// Ready once something is queued or the mailbox is closed; otherwise
    /// the task is woken when that happens.
    pub fn poll_arrival(&self, context: &mut Context<'_>) -> Poll<()> {
        let mut queue = self.lock();
        if !queue.parts.is_empty() || queue.closing.is_some() {
            return Poll::Ready(());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_past_the_limit_overflows_and_holds_nothing() {
        let mailbox = Mailbox::new(10);
        mailbox.push(Bytes::from_static(b"0123456"));
        mailbox.push(Bytes::from_static(b"789"));
        let mut taken = VecDeque::new();
        mailbox.take(&mut taken).unwrap();
        assert_eq!(taken.len(), 2);
        // Taken is not written: 10 bytes are still unsent.
        mailbox.push(Bytes::from_static(b"x"));
        assert_eq!(mailbox.take(&mut taken), Err(Closing::Overflowed));
        assert!(mailbox.lock().parts.is_empty());
    }

    #[test]
    fn written_bytes_make_room_and_an_empty_queue_takes_any_size() {
        let mailbox = Mailbox::new(10);
        mailbox.push(Bytes::from(vec![b'a'; 100]));
        let mut taken = VecDeque::new();
        mailbox.take(&mut taken).unwrap();
        mailbox.written(100);
        mailbox.push(Bytes::from(vec![b'b'; 10]));
        mailbox.take(&mut taken).unwrap();
        assert_eq!(taken.len(), 2);
    }
}
