//! A device's compute lock: one model pass (or training step) at a time, the most urgent
//! waiting pass first. A pass's urgency is its thread's [`with_priority`] (interactive when
//! unset). A batch job's or a training job's pass also waits while any interactive request
//! is in flight on the device (the queue counts them: [`ComputeLock::interactive_started`]),
//! so an annotator's request is delayed by at most the one pass running when it arrived.

use super::Priority;
use std::{
    cell::Cell,
    sync::{Condvar, Mutex},
};

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
}

/// The lock.
#[derive(Default)]
pub struct ComputeLock {
    state: Mutex<State>,
    freed: Condvar,
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
    /// for background work, no interactive request is in flight. A pass that panicked
    /// releases it too.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let mine = current_priority() as usize;
        let background = mine < Priority::Interactive as usize;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.waiting[mine] += 1;
        while s.busy
            || s.waiting[mine + 1..].iter().any(|&n| n > 0)
            || (background && s.interactive > 0)
        {
            s = self.freed.wait(s).unwrap_or_else(|e| e.into_inner());
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
}
