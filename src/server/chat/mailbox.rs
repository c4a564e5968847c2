//! A member's send queue (`--sendq`): what others and the server have sent
//! it and its socket has not taken yet, as shared [`Bytes`], so a line sent
//! to a thousand members is formatted and stored once. Past the limit the
//! queue is dropped and marked overflowed: a member who does not read
//! costs the others nothing and the server no more than the limit.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

/// One member's queue, shared by everyone who sends to it.
#[derive(Debug)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    /// Wakes the member's task when the queue stops being empty, or
    /// overflows.
    arrived: Notify,
    /// `--sendq`: the most bytes that may wait, unsent, for this member.
    limit: usize,
}

#[derive(Debug, Default)]
struct Queue {
    parts: VecDeque<Bytes>,
    /// Bytes sent to the member and not yet written to its socket: those
    /// still here, and those its task has taken and is writing.
    unsent: usize,
    overflowed: bool,
}

/// The member's queue passed `--sendq`: it is too slow, and is to be cut.
#[derive(Debug)]
pub struct Overflowed;

impl Mailbox {
    pub fn new(limit: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            arrived: Notify::new(),
            limit,
        }
    }

    /// Queues `bytes` (whole lines) for the member. A member with nothing
    /// unsent takes a part of any size; past the limit, the queue is
    /// dropped, the mailbox marked overflowed and nothing more is queued.
    pub fn push(&self, bytes: Bytes) {
        let mut queue = self.lock();
        if queue.overflowed {
            return;
        }
        if queue.unsent > 0 && queue.unsent + bytes.len() > self.limit {
            queue.overflowed = true;
            queue.parts = VecDeque::new();
        } else {
            queue.unsent += bytes.len();
            queue.parts.push_back(bytes);
            if queue.parts.len() > 1 {
                // The member's task was woken for the first part already.
                return;
            }
        }
        drop(queue);
        self.arrived.notify_one();
    }

    /// Moves everything queued to the back of `into`, for writing.
    pub fn take(&self, into: &mut VecDeque<Bytes>) -> Result<(), Overflowed> {
        let mut queue = self.lock();
        if queue.overflowed {
            return Err(Overflowed);
        }
        if into.is_empty() {
            std::mem::swap(into, &mut queue.parts);
        } else {
            into.extend(queue.parts.drain(..));
        }
        Ok(())
    }

    /// Counts `count` bytes taken from this mailbox as written.
    pub fn written(&self, count: usize) {
        let mut queue = self.lock();
        queue.unsent = queue.unsent.saturating_sub(count);
    }

    /// Completes once something is queued, or the queue overflowed, since
    /// the last [`Mailbox::take`] found it empty.
    pub async fn arrival(&self) {
        self.arrived.notified().await;
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
        assert!(mailbox.take(&mut taken).is_err());
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
