//! Stopping a request's work when nobody waits for it: the API marks a request's
//! [`Cancel`] when its client goes away or its time is up, and the executor checks the
//! mark of the thread's request before each op, each model pass and each batch of
//! sliding windows, failing the call so the plugin returns early and its device slot and
//! tensors are freed. Work that never calls the executor stops only when it returns.

use labelhost_plugin_api::abi::{ErrorCode, PluginError};
use std::{
    cell::RefCell,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
};

/// Why a request's work was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The client disconnected.
    ClientGone = 1,
    /// The request ran past its time limit.
    TimedOut = 2,
}

/// A request's stop mark, shared between its handler and the thread running its task.
#[derive(Debug, Default)]
pub struct Cancel(AtomicU8);

impl Cancel {
    /// A fresh, unmarked one.
    pub fn new() -> Arc<Self> {
        Arc::new(Cancel::default())
    }

    /// Marks the work to stop (the first reason stays).
    pub fn stop(&self, why: Why) {
        let _ = self
            .0
            .compare_exchange(0, why as u8, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Why it was marked, if it was.
    pub fn why(&self) -> Option<Why> {
        match self.0.load(Ordering::SeqCst) {
            1 => Some(Why::ClientGone),
            2 => Some(Why::TimedOut),
            _ => None,
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Cancel>>> = const { RefCell::new(None) };
}

/// Runs `f` with `cancel` as this thread's request mark (restored afterwards).
pub fn with_cancel<T>(cancel: Arc<Cancel>, f: impl FnOnce() -> T) -> T {
    let before = CURRENT.with(|c| c.replace(Some(cancel)));
    struct Restore(Option<Arc<Cancel>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(before);
    f()
}

/// An error when this thread's request was marked to stop.
pub fn check() -> Result<(), PluginError> {
    let why = CURRENT.with(|c| c.borrow().as_ref().and_then(|c| c.why()));
    match why {
        None => Ok(()),
        Some(why) => {
            let reason = match why {
                Why::ClientGone => "its client went away",
                Why::TimedOut => "it ran past its time limit",
            };
            tracing::info!("work cancelled: {reason}");
            Err(PluginError::new(
                ErrorCode::APP_ERROR,
                format!("the request was cancelled: {reason}"),
            ))
        }
    }
}

/// Marks a request's work to stop as the client having left, when dropped before
/// [`StopOnDrop::disarm`] (a handler future dropped by the server when its client
/// disconnects).
pub struct StopOnDrop(Option<Arc<Cancel>>);

impl StopOnDrop {
    /// Guards `cancel`.
    pub fn new(cancel: Arc<Cancel>) -> Self {
        StopOnDrop(Some(cancel))
    }

    /// The request was answered: nothing to stop.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.stop(Why::ClientGone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_request_fails_its_next_check_on_its_own_thread_only() {
        let cancel = Cancel::new();
        with_cancel(cancel.clone(), || {
            assert!(check().is_ok());
            cancel.stop(Why::TimedOut);
            cancel.stop(Why::ClientGone);
            let e = check().expect_err("marked");
            assert!(e.message.contains("time limit"), "{e:?}");
        });
        assert!(check().is_ok(), "no mark outside the request");
        let guard = StopOnDrop::new(Cancel::new());
        guard.disarm();
        let gone = Cancel::new();
        drop(StopOnDrop::new(gone.clone()));
        assert_eq!(gone.why(), Some(Why::ClientGone));
    }
}
