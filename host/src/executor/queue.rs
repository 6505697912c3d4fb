//! Per-device work queues: a bounded number of requests wait, a few run at once, and the
//! most urgent kind goes first (interactive inference, then batch inference, then
//! training; first come, first served within a kind; background work that has waited
//! [`BACKGROUND_TURN`] is served as interactive, so it is never starved). A full queue
//! refuses at once (the
//! API answers 503 with Retry-After) instead of piling up memory. Waiting is async: no
//! thread is held while a request waits.
//!
//! Inside a running slot, model passes take the device's compute lock
//! ([`DeviceQueue::compute`], `compute.rs`): one pass at a time per device, the most urgent
//! waiting one first, so two requests in their slots overlap one's reading, pre- and
//! post-processing with the other's model pass instead of splitting the cores between two
//! passes (and holding two passes' memory).

use super::compute::BACKGROUND_TURN;
use std::time::{Duration, Instant};
use std::{
    collections::BinaryHeap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};
use tokio::sync::Notify;

/// How urgent a piece of work is; higher runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Training jobs.
    Training = 0,
    /// Batch inference.
    Batch = 1,
    /// A user waiting on an inference.
    Interactive = 2,
}

#[derive(Default)]
struct State {
    running: usize,
    // (priority, reversed sequence): the max is the most urgent, oldest ticket.
    waiting: BinaryHeap<(Priority, std::cmp::Reverse<u64>)>,
}

/// One device's queue.
pub struct DeviceQueue {
    capacity: usize,
    workers: usize,
    compute: super::compute::ComputeLock,
    state: Mutex<State>,
    changed: Notify,
    tickets: AtomicU64,
    /// How long background work waits before it is served as interactive.
    turn_after: Duration,
}

/// A running slot; the next waiter is woken when it is dropped.
pub struct Permit {
    queue: Arc<DeviceQueue>,
    interactive: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut s) = self.queue.state.lock() {
            s.running = s.running.saturating_sub(1);
        }
        if self.interactive {
            self.queue.compute.interactive_ended();
        }
        self.queue.changed.notify_waiters();
    }
}

impl DeviceQueue {
    /// A permit for a slot just taken; an interactive one holds background passes back.
    fn permit(self: &Arc<Self>, priority: Priority) -> Permit {
        let interactive = priority == Priority::Interactive;
        if interactive {
            self.compute.interactive_started();
        }
        Permit {
            queue: self.clone(),
            interactive,
        }
    }
}

/// Returned when the queue already holds `capacity` waiting requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFull {
    /// How many were waiting.
    pub waiting: usize,
}

impl DeviceQueue {
    /// A queue letting `workers` run at once and `capacity` wait.
    pub fn new(capacity: usize, workers: usize) -> Arc<Self> {
        DeviceQueue::with_turn_after(capacity, workers, BACKGROUND_TURN)
    }

    /// [`DeviceQueue::new`] whose background work (slots and passes) waits `turn_after`
    /// at most before it goes ahead of newer interactive work.
    pub fn with_turn_after(capacity: usize, workers: usize, turn_after: Duration) -> Arc<Self> {
        Arc::new(DeviceQueue {
            capacity,
            workers: workers.max(1),
            compute: super::compute::ComputeLock::with_turn_after(turn_after),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            tickets: AtomicU64::new(0),
            turn_after,
        })
    }

    /// Runs `f` (a model pass, a training step) holding the device's compute lock, after
    /// any more urgent pass that waits for it (the thread's
    /// [`with_priority`](super::compute::with_priority)).
    pub fn compute<T>(&self, f: impl FnOnce() -> T) -> T {
        self.compute.run(f)
    }

    /// How many requests run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// (running, waiting) now.
    pub fn load(&self) -> (usize, usize) {
        self.state
            .lock()
            .map_or((0, 0), |s| (s.running, s.waiting.len()))
    }

    /// Waits for a running slot; background work that has waited `turn_after` is
    /// served as interactive from then on (after the interactive work older than it).
    pub async fn acquire(self: &Arc<Self>, priority: Priority) -> Result<Permit, QueueFull> {
        self.acquire_waiting_since(priority, Instant::now()).await
    }

    /// [`DeviceQueue::acquire`] for work that has been waiting since `since` (a retry after
    /// a full queue keeps its age).
    async fn acquire_waiting_since(
        self: &Arc<Self>,
        priority: Priority,
        since: Instant,
    ) -> Result<Permit, QueueFull> {
        let mut ticket = (
            priority,
            std::cmp::Reverse(self.tickets.fetch_add(1, Ordering::Relaxed)),
        );
        {
            let mut s = self.state.lock().map_err(|_| QueueFull { waiting: 0 })?;
            if s.running < self.workers && s.waiting.is_empty() {
                s.running += 1;
                drop(s);
                return Ok(self.permit(priority));
            }
            if s.waiting.len() >= self.capacity {
                return Err(QueueFull {
                    waiting: s.waiting.len(),
                });
            }
            s.waiting.push(ticket);
        }
        // If this future is dropped (the client went away), the ticket must leave the queue.
        let mut guard = Waiting {
            queue: self,
            ticket: Some(ticket),
        };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().map_err(|_| QueueFull { waiting: 0 })?;
                if ticket.0 < Priority::Interactive && since.elapsed() >= self.turn_after {
                    s.waiting.retain(|t| *t != ticket);
                    ticket.0 = Priority::Interactive;
                    s.waiting.push(ticket);
                    guard.ticket = Some(ticket);
                }
                if s.running < self.workers && s.waiting.peek() == Some(&ticket) {
                    s.waiting.pop();
                    s.running += 1;
                    guard.ticket = None;
                    // Another slot may still be free for the next waiter: let it look.
                    if s.running < self.workers && !s.waiting.is_empty() {
                        self.changed.notify_waiters();
                    }
                    drop(s);
                    return Ok(self.permit(priority));
                }
            }
            if ticket.0 < Priority::Interactive {
                let left = self.turn_after.saturating_sub(since.elapsed());
                let _ = tokio::time::timeout(left, notified).await;
            } else {
                notified.await;
            }
        }
    }
}

impl DeviceQueue {
    /// [`DeviceQueue::acquire`] from a blocking thread (a plugin call): waits, retrying
    /// while the queue is full (its wait counted from the first try). `None` outside a
    /// tokio runtime or with a poisoned queue (work then runs unqueued).
    pub fn acquire_blocking(self: &Arc<Self>, priority: Priority) -> Option<Permit> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let since = Instant::now();
        loop {
            match handle.block_on(self.acquire_waiting_since(priority, since)) {
                Ok(permit) => return Some(permit),
                // Nobody waiting yet the queue refuses: its state is poisoned; go unqueued.
                Err(QueueFull { waiting: 0 }) => return None,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }
}

struct Waiting<'a> {
    queue: &'a Arc<DeviceQueue>,
    ticket: Option<(Priority, std::cmp::Reverse<u64>)>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            if let Ok(mut s) = self.queue.state.lock() {
                s.waiting.retain(|t| *t != ticket);
            }
            self.queue.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn urgent_work_goes_first_and_a_full_queue_refuses() {
        let q = DeviceQueue::new(2, 1);
        let running = q.acquire(Priority::Interactive).await.expect("free slot");
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |p: Priority| {
            let (q, order) = (q.clone(), order.clone());
            tokio::spawn(async move {
                let _permit = q.acquire(p).await.expect("queued");
                order.lock().expect("order").push(p);
            })
        };
        let batch = spawn(Priority::Batch);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let interactive = spawn(Priority::Interactive);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(q.load(), (1, 2));
        assert_eq!(
            q.acquire(Priority::Training).await.err(),
            Some(QueueFull { waiting: 2 })
        );
        drop(running);
        batch.await.expect("batch");
        interactive.await.expect("interactive");
        assert_eq!(
            *order.lock().expect("order"),
            vec![Priority::Interactive, Priority::Batch]
        );
        assert_eq!(q.load(), (0, 0));
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_the_queue() {
        let q = DeviceQueue::new(4, 1);
        let running = q.acquire(Priority::Interactive).await.expect("slot");
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), q.acquire(Priority::Batch)).await;
        assert!(gave_up.is_err());
        assert_eq!(q.load(), (1, 0));
        drop(running);
        assert!(q.acquire(Priority::Training).await.is_ok());
    }

    #[tokio::test]
    async fn background_work_gets_a_slot_under_steady_interactive_load() {
        let q = DeviceQueue::with_turn_after(64, 1, Duration::from_millis(200));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Four annotators, each asking again as soon as answered: interactive work always
        // waits, so strict priority would never serve the training step.
        let annotators: Vec<_> = (0..4)
            .map(|_| {
                let (q, stop) = (q.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let _p = q.acquire(Priority::Interactive).await.expect("slot");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let step = tokio::time::timeout(Duration::from_secs(5), q.acquire(Priority::Training))
            .await
            .expect("the training step got a slot");
        drop(step);
        stop.store(true, Ordering::Relaxed);
        for a in annotators {
            a.await.expect("annotator");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_training_step_retrying_a_full_queue_keeps_its_age() {
        let q = DeviceQueue::with_turn_after(2, 1, Duration::from_millis(1000));
        let first = q.acquire(Priority::Interactive).await.expect("slot");
        let order = Arc::new(Mutex::new(Vec::new()));
        let take = |name: &'static str, q: Arc<DeviceQueue>, order: Arc<Mutex<Vec<_>>>| async move {
            let _permit = q.acquire(Priority::Interactive).await.expect("slot");
            order.lock().expect("order").push(name);
        };
        // Both waiting places are taken: the step retries for over its turn.
        let fillers: Vec<_> = (0..2)
            .map(|_| tokio::spawn(take("filler", q.clone(), order.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let step = {
            let (q, order) = (q.clone(), order.clone());
            tokio::task::spawn_blocking(move || {
                let _p = q.acquire_blocking(Priority::Training).expect("a slot");
                order.lock().expect("order").push("step");
            })
        };
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // The fillers give up: the step's retry gets a place, then a newer interactive one.
        let until = |want: (usize, usize)| {
            let q = q.clone();
            async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while q.load() != want && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                assert_eq!(q.load(), want);
            }
        };
        for f in fillers {
            f.abort();
            let _ = f.await;
        }
        until((1, 1)).await;
        let b = tokio::spawn(take("b", q.clone(), order.clone()));
        until((1, 2)).await;
        drop(first);
        step.await.expect("step");
        b.await.expect("b");
        assert_eq!(*order.lock().expect("order"), vec!["step", "b"]);
    }

    #[tokio::test]
    async fn two_freed_slots_are_both_taken() {
        let q = DeviceQueue::new(8, 2);
        let (p1, p2) = (
            q.acquire(Priority::Batch).await.expect("1"),
            q.acquire(Priority::Batch).await.expect("2"),
        );
        let (tx, rx) = tokio::sync::watch::channel(false);
        let hold = |q: Arc<DeviceQueue>, mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _p = q.acquire(Priority::Batch).await.expect("slot");
            let _ = rx.wait_for(|go| *go).await;
        };
        let a = tokio::spawn(hold(q.clone(), rx.clone()));
        let b = tokio::spawn(hold(q.clone(), rx));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(q.load(), (2, 2));
        drop((p1, p2));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while q.load() != (2, 0) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(q.load(), (2, 0), "both waiters run");
        let _ = tx.send(true);
        let (_, _) = (a.await, b.await);
    }
}
