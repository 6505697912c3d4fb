//! A device's compute lock: one model pass (or training step) at a time, the most urgent
//! waiting pass first. A pass's urgency is its thread's [`with_priority`] (interactive when
//! unset). A batch job's or a training job's pass also waits while any interactive request
//! is in flight on the device (the queue counts them: [`ComputeLock::interactive_started`]),
//! so an annotator's request is delayed by at most the one pass running when it arrived.
//! Background work is never starved, though: a pass that has waited [`BACKGROUND_TURN`]
//! takes the next turn, and starved passes and waiting interactive ones then take turns
//! (under steady interactive load a training job still makes a step every so often; an
//! interactive pass waits for one such step at most).

use super::Priority;
use std::{
    cell::Cell,
    sync::{Condvar, Mutex},
    time::{Duration, Instant},
};

/// How long a background pass (batch, training) waits for its turn at most.
pub const BACKGROUND_TURN: Duration = Duration::from_secs(10);

thread_local! {
    static PRIORITY: Cell<Priority> = const { Cell::new(Priority::Interactive) };
}

/// Runs `f` with this thread's passes at `priority` (restored afterwards).
pub fn with_priority<T>(priority: Priority, f: impl FnOnce() -> T) -> T {
    let before = PRIORITY.with(|p| p.replace(priority));
    struct Restore(Priority);
    impl Drop for Restore {
        fn drop(&mut self) {
            PRIORITY.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(before);
    f()
}

/// This thread's priority for model passes.
pub fn current_priority() -> Priority {
    PRIORITY.with(Cell::get)
}

#[derive(Default)]
struct State {
    busy: bool,
    /// Waiting passes per priority (index = `Priority as usize`).
    waiting: [usize; 3],
    /// Interactive requests in flight on the device.
    interactive: usize,
    /// Background passes that have waited their longest: they go next.
    starved: usize,
    /// A starved pass ran last: a waiting interactive pass goes before the next one.
    interactive_owed: bool,
}

/// The lock.
pub struct ComputeLock {
    state: Mutex<State>,
    freed: Condvar,
    /// How long a background pass waits at most ([`BACKGROUND_TURN`]).
    turn_after: Duration,
}

impl Default for ComputeLock {
    fn default() -> Self {
        ComputeLock::with_turn_after(BACKGROUND_TURN)
    }
}

struct Held<'a>(&'a ComputeLock);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.busy = false;
        drop(s);
        self.0.freed.notify_all();
    }
}

impl ComputeLock {
    /// A lock whose background passes wait `turn_after` at most.
    pub fn with_turn_after(turn_after: Duration) -> Self {
        ComputeLock {
            state: Mutex::default(),
            freed: Condvar::new(),
            turn_after,
        }
    }

    /// An interactive request started on the device: background passes hold back.
    pub fn interactive_started(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.interactive += 1;
    }

    /// An interactive request ended.
    pub fn interactive_ended(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.interactive = s.interactive.saturating_sub(1);
        drop(s);
        self.freed.notify_all();
    }

    /// Runs `f` holding the lock, entering when it is free, no more urgent pass waits and,
    /// for background work, no interactive request is in flight; a background pass that
    /// has waited `turn_after` enters as soon as the lock is free, before any other but an
    /// interactive pass owed its turn after the last starved one. A pass that panicked
    /// releases it too.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let mine = current_priority() as usize;
        let background = mine < Priority::Interactive as usize;
        let since = Instant::now();
        let mut starved = false;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.waiting[mine] += 1;
        loop {
            if background && !starved && since.elapsed() >= self.turn_after {
                starved = true;
                s.starved += 1;
            }
            let interactive_waits = s.waiting[Priority::Interactive as usize] > 0;
            let held_back = if starved {
                s.busy || (s.interactive_owed && interactive_waits)
            } else {
                s.busy
                    || (s.starved > 0 && (background || !s.interactive_owed))
                    || s.waiting[mine + 1..].iter().any(|&n| n > 0)
                    || (background && s.interactive > 0)
            };
            if !held_back {
                break;
            }
            s = if background && !starved {
                let left = self.turn_after.saturating_sub(since.elapsed());
                self.freed
                    .wait_timeout(s, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            } else {
                self.freed.wait(s).unwrap_or_else(|e| e.into_inner())
            };
        }
        if starved {
            s.starved -= 1;
            s.interactive_owed = true;
        } else if !background {
            s.interactive_owed = false;
        }
        s.waiting[mine] -= 1;
        s.busy = true;
        drop(s);
        let _held = Held(self);
        f()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::{
        sync::{Arc, Mutex as StdMutex},
        thread,
        time::Duration,
    };

    #[test]
    fn a_waiting_interactive_pass_goes_before_waiting_batch_passes() {
        let lock = Arc::new(ComputeLock::default());
        let order = Arc::new(StdMutex::new(Vec::new()));
        let spawn = |p: Priority, delay: u64| {
            let (lock, order) = (lock.clone(), order.clone());
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(delay));
                with_priority(p, || lock.run(|| order.lock().unwrap().push(p)));
            })
        };
        let first = {
            let lock = lock.clone();
            thread::spawn(move || {
                with_priority(Priority::Batch, || {
                    lock.run(|| thread::sleep(Duration::from_millis(300)))
                })
            })
        };
        let batch: Vec<_> = (0..3).map(|i| spawn(Priority::Batch, 20 + i)).collect();
        let training = spawn(Priority::Training, 30);
        let interactive = spawn(Priority::Interactive, 100);
        for h in batch.into_iter().chain([training, interactive, first]) {
            h.join().unwrap();
        }
        let order = order.lock().unwrap();
        assert_eq!(order[0], Priority::Interactive, "{order:?}");
        assert_eq!(order[4], Priority::Training, "{order:?}");
        assert_eq!(current_priority(), Priority::Interactive);
    }

    #[test]
    fn background_passes_wait_for_interactive_requests_in_flight() {
        let lock = Arc::new(ComputeLock::default());
        lock.interactive_started();
        let ran = Arc::new(StdMutex::new(false));
        let batch = {
            let (lock, ran) = (lock.clone(), ran.clone());
            thread::spawn(move || {
                with_priority(Priority::Batch, || lock.run(|| *ran.lock().unwrap() = true))
            })
        };
        thread::sleep(Duration::from_millis(100));
        assert!(
            !*ran.lock().unwrap(),
            "held back while the request is in flight"
        );
        // The request's own passes run meanwhile.
        assert_eq!(lock.run(|| 7), 7);
        lock.interactive_ended();
        batch.join().unwrap();
        assert!(*ran.lock().unwrap());
    }

    #[test]
    fn a_training_pass_gets_its_turn_under_steady_interactive_load() {
        let lock = Arc::new(ComputeLock::with_turn_after(Duration::from_millis(200)));
        lock.interactive_started();
        let trained = Arc::new(StdMutex::new(0));
        let training = {
            let (lock, trained) = (lock.clone(), trained.clone());
            thread::spawn(move || {
                with_priority(Priority::Training, || {
                    for _ in 0..2 {
                        lock.run(|| *trained.lock().unwrap() += 1);
                    }
                })
            })
        };
        // Three annotators' passes back to back for a second: the lock is never free of
        // interactive work, yet the training job's two steps each get in.
        let passes: Vec<_> = (0..3)
            .map(|_| {
                let lock = lock.clone();
                thread::spawn(move || {
                    let start = std::time::Instant::now();
                    while start.elapsed() < Duration::from_millis(1000) {
                        lock.run(|| thread::sleep(Duration::from_millis(5)));
                    }
                })
            })
            .collect();
        for p in passes {
            p.join().unwrap();
        }
        assert_eq!(*trained.lock().unwrap(), 2, "training starved");
        lock.interactive_ended();
        training.join().unwrap();
    }

    #[test]
    fn starved_background_passes_take_turns_with_interactive_ones() {
        // Two background jobs whose passes outlast the turn: each is starved again by the
        // time the other ends. An annotator's passes must still get in between them.
        let lock = Arc::new(ComputeLock::with_turn_after(Duration::from_millis(30)));
        lock.interactive_started();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let jobs: Vec<_> = [Priority::Batch, Priority::Training]
            .into_iter()
            .map(|p| {
                let (lock, stop) = (lock.clone(), stop.clone());
                thread::spawn(move || {
                    with_priority(p, || {
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            lock.run(|| thread::sleep(Duration::from_millis(60)));
                        }
                    })
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(100));
        let (tx, rx) = std::sync::mpsc::channel();
        let annotator = {
            let lock = lock.clone();
            thread::spawn(move || {
                for _ in 0..5 {
                    lock.run(|| ());
                }
                let _ = tx.send(());
            })
        };
        let served = rx.recv_timeout(Duration::from_secs(10));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        lock.interactive_ended();
        for j in jobs {
            j.join().unwrap();
        }
        annotator.join().unwrap();
        assert!(
            served.is_ok(),
            "interactive passes starved by background ones"
        );
    }
}
