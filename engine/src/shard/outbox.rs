//! A session's bounded outbound queue.
//!
//! Matches, queues and replies push into it synchronously from anywhere on the shard; the session
//! task drains it into its socket. It is single-threaded (`Rc`), so a push is a `VecDeque` push and
//! a waker call — no channel machinery on the fan-out path. When a client stops reading and the
//! queue reaches its bound, the outbox marks itself overflowed and the session closes the socket
//! with a reason instead of buffering without limit.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use super::mesh::Outbound;

/// What the session task gets from [`Outbox::next`].
pub(crate) enum Next<E> {
    Item(Outbound<E>),
    /// The client fell too far behind; close it.
    Overflowed,
}

pub(crate) struct Outbox<E> {
    queue: RefCell<VecDeque<Outbound<E>>>,
    waker: Cell<Option<Waker>>,
    overflowed: Cell<bool>,
    cap: usize,
}

impl<E> Outbox<E> {
    pub(crate) fn new(cap: usize) -> Outbox<E> {
        Outbox {
            queue: RefCell::new(VecDeque::new()),
            waker: Cell::new(None),
            overflowed: Cell::new(false),
            cap: cap.max(1),
        }
    }

    /// Queues an item; returns false (and marks overflow) when the client is too far behind.
    /// Control items (events and `Close`) are always queued: they carry no payload and losing one
    /// would desynchronise the session from the services that sent them.
    pub(crate) fn push(&self, item: Outbound<E>) -> bool {
        let mut q = self.queue.borrow_mut();
        let is_frame = matches!(item, Outbound::Frame(_));
        let accepted = if is_frame && q.len() >= self.cap {
            self.overflowed.set(true);
            false
        } else {
            q.push_back(item);
            true
        };
        drop(q);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        accepted
    }

    /// Takes an item without waiting.
    pub(crate) fn try_pop(&self) -> Option<Next<E>> {
        if self.overflowed.get() {
            return Some(Next::Overflowed);
        }
        self.queue.borrow_mut().pop_front().map(Next::Item)
    }

    /// Waits for the next item.
    pub(crate) async fn next(&self) -> Next<E> {
        poll_fn(|cx| match self.try_pop() {
            Some(n) => Poll::Ready(n),
            None => {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Outbound<()> {
        Outbound::Frame(crate::wire::Frame::json(bytes::Bytes::from_static(b"{}")).unwrap())
    }

    #[test]
    fn bounded_frames_unbounded_control() {
        let o = Outbox::new(2);
        assert!(o.push(frame()));
        assert!(o.push(frame()));
        assert!(o.push(Outbound::Event(())));
        assert!(!o.push(frame()));
        assert!(matches!(o.try_pop(), Some(Next::Overflowed)));
    }

    #[test]
    fn next_wakes_on_push() {
        let o = std::rc::Rc::new(Outbox::new(4));
        let o2 = o.clone();
        let got = futures::executor::block_on(async move {
            let pusher = async {
                o2.push(frame());
            };
            let (n, ()) = futures::join!(o.next(), pusher);
            matches!(n, Next::Item(Outbound::Frame(_)))
        });
        assert!(got);
    }
}
