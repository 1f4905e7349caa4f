//! A connection's outbound queue: how its reader, the shard's ack router and the drain timer hand
//! the writer what to write, in order.
//!
//! Written here rather than taken from glommio (`local_channel`): that channel's `VecDeque`
//! keeps the capacity of the longest burst the connection ever had for as long as it lives, 88
//! bytes a slot. One burst of 128 batches in flight left 7.6 KiB per connection behind, more than
//! twice what an idle connection costs otherwise (perf-results/2026-12-01-issue14.md, section 9).
//! This queue gives its storage back when the writer asks ([`Receiver::release_storage`], at each
//! keep-alive wake when nothing is queued), and has only what the writer needs: one consumer,
//! senders that never wait (the in-flight permits bound what is queued) and no end of stream
//! (the writer holds a sender itself; it ends on its own terms).
//!
//! Lives on: owning shard (!Send).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The queue, shared by its senders (`Rc<Queue<T>>`) and its one [`Receiver`].
pub(crate) struct Queue<T> {
    items: RefCell<VecDeque<T>>,
    /// The writer's task, while it waits for an item.
    waiting: Cell<Option<Waker>>,
    /// The receiver is gone: items are dropped instead of queued.
    closed: Cell<bool>,
}

impl<T> Queue<T> {
    /// An empty queue (no storage until the first item) and its receiver.
    pub(crate) fn new() -> (Rc<Queue<T>>, Receiver<T>) {
        let queue =
            Rc::new(Queue { items: RefCell::new(VecDeque::new()), waiting: Cell::new(None), closed: Cell::new(false) });
        (Rc::clone(&queue), Receiver { queue })
    }

    /// Queues `item` behind the others and wakes the receiver; drops it if the receiver is gone.
    pub(crate) fn push(&self, item: T) {
        if self.closed.get() {
            return;
        }
        self.items.borrow_mut().push_back(item);
        if let Some(waker) = self.waiting.take() {
            waker.wake();
        }
    }
}

/// The receiving side: the writer's.
pub(crate) struct Receiver<T> {
    queue: Rc<Queue<T>>,
}

impl<T> Receiver<T> {
    /// The first item, if one is queued.
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.queue.items.borrow_mut().pop_front()
    }

    /// Waits for the first item.
    pub(crate) fn recv(&self) -> Recv<'_, T> {
        Recv { queue: &self.queue }
    }

    /// Frees the queue's storage if nothing is queued: the next item allocates it again.
    pub(crate) fn release_storage(&self) {
        let mut items = self.queue.items.borrow_mut();
        if items.is_empty() && items.capacity() > 0 {
            *items = VecDeque::new();
        }
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.queue.items.borrow().capacity()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.queue.closed.set(true);
        self.queue.waiting.take();
        // What was queued and not written goes now, not when the last sender does (and outside
        // the borrow, should dropping an item ever reach the queue).
        let items = std::mem::take(&mut *self.queue.items.borrow_mut());
        drop(items);
    }
}

/// [`Receiver::recv`]'s future.
pub(crate) struct Recv<'a, T> {
    queue: &'a Queue<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.queue.items.borrow_mut().pop_front() {
            Some(item) => Poll::Ready(item),
            None => {
                self.queue.waiting.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn items_come_out_in_order_and_a_waiting_receiver_is_woken_once_per_wait() {
        let (tx, rx) = Queue::new();
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        let mut recv = std::pin::pin!(rx.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        tx.push(1);
        tx.push(2);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "one wake for the wait, not one per item");
        assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(1));
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn storage_is_kept_while_items_are_queued_and_given_back_once_empty() {
        let (tx, rx) = Queue::new();
        assert_eq!(rx.capacity(), 0, "no storage before the first item");
        for i in 0..128 {
            tx.push(i);
        }
        rx.release_storage();
        assert!(rx.capacity() >= 128, "released while items were queued");
        assert_eq!(rx.try_recv(), Some(0));
        while rx.try_recv().is_some() {}
        assert!(rx.capacity() >= 128, "the burst's storage stays until released");
        rx.release_storage();
        assert_eq!(rx.capacity(), 0);
        tx.push(7);
        assert_eq!(rx.try_recv(), Some(7), "the queue works after a release");
    }

    #[test]
    fn once_the_receiver_is_gone_queued_and_later_items_are_dropped() {
        let (tx, rx) = Queue::new();
        let item = Rc::new(());
        tx.push(Rc::clone(&item));
        drop(rx);
        assert_eq!(Rc::strong_count(&item), 1, "the queued item went with the receiver");
        tx.push(Rc::clone(&item));
        assert_eq!(Rc::strong_count(&item), 1, "an item pushed later is not kept");
    }
}
