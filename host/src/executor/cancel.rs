//! Stopping a request's work when nobody waits for it, and holding it to its memory
//! budget. The API marks a request's [`Cancel`] when its client goes away or its time is
//! up, and the executor checks the mark of the thread's request before each op, each
//! model pass and each batch of sliding windows, failing the call so the plugin returns
//! early and its device slot and tensors are freed. Work that never calls the executor
//! stops only when it returns.
//!
//! The same ticket keeps the request's tensor account: the bytes of the executor tensors
//! its calls made and still hold ([`charge`] when one is kept, [`Cancel::refund`] when it
//! goes). A tensor that would take the account past the request's budget is refused
//! (`OVER_BUDGET`, answered 413: the same request will not fit later) and freed at once.

use labelhost_plugin_api::abi::{ErrorCode, PluginError};
use std::{
    cell::RefCell,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
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

/// A request's stop mark and tensor account, shared between its handler and the thread
/// running its task.
#[derive(Debug, Default)]
pub struct Cancel {
    mark: AtomicU8,
    /// Bytes of executor tensors the request holds.
    held: AtomicU64,
    /// The most it may hold; 0: no budget.
    budget: u64,
}

impl Cancel {
    /// A fresh, unmarked one without a memory budget.
    pub fn new() -> Arc<Self> {
        Arc::new(Cancel::default())
    }

    /// A fresh one whose tensors may take at most `budget` bytes (0: no budget).
    pub fn with_budget(budget: u64) -> Arc<Self> {
        Arc::new(Cancel {
            budget,
            ..Cancel::default()
        })
    }

    /// Marks the work to stop (the first reason stays).
    pub fn stop(&self, why: Why) {
        let _ = self
            .mark
            .compare_exchange(0, why as u8, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Why it was marked, if it was.
    pub fn why(&self) -> Option<Why> {
        match self.mark.load(Ordering::SeqCst) {
            1 => Some(Why::ClientGone),
            2 => Some(Why::TimedOut),
            _ => None,
        }
    }

    /// Bytes of tensors the request holds now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// Gives back the bytes of a tensor the request no longer holds.
    pub fn refund(&self, bytes: u64) {
        let _ = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
                Some(h.saturating_sub(bytes))
            });
    }
}

/// Adds a kept tensor's `bytes` to this thread's request account; the account to refund
/// when the tensor goes (`None` outside a request). Past the budget nothing is added and
/// the answer is `OVER_BUDGET` naming the figures.
pub fn charge(bytes: u64) -> Result<Option<Arc<Cancel>>, PluginError> {
    let Some(ticket) = CURRENT.with(|c| c.borrow().clone()) else {
        return Ok(None);
    };
    let budget = ticket.budget;
    let taken = ticket
        .held
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
            let after = h.saturating_add(bytes);
            (budget == 0 || after <= budget).then_some(after)
        });
    match taken {
        Ok(_) => Ok(Some(ticket)),
        Err(held) => {
            tracing::warn!(held, bytes, budget, "request over its memory budget");
            Err(PluginError::new(
                ErrorCode::OVER_BUDGET,
                format!(
                    "the request's tensors would take {} MiB, over its budget of {} MiB \
                     (--request-memory)",
                    held.saturating_add(bytes) >> 20,
                    budget >> 20
                ),
            ))
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

    #[test]
    fn a_request_holds_tensors_up_to_its_budget_and_gets_refunds() {
        assert!(charge(1 << 40).expect("no request, no budget").is_none());
        let ticket = Cancel::with_budget(100);
        with_cancel(ticket.clone(), || {
            let account = charge(60).expect("within").expect("an account");
            assert_eq!(account.held(), 60);
            let e = charge(41).expect_err("past the budget");
            assert_eq!(e.code, ErrorCode::OVER_BUDGET);
            assert!(e.message.contains("--request-memory"), "{e:?}");
            assert_eq!(ticket.held(), 60, "a refused tensor is not counted");
            account.refund(60);
            assert!(charge(100).is_ok(), "refunded bytes can be taken again");
        });
        let unbounded = Cancel::new();
        with_cancel(unbounded.clone(), || {
            assert!(charge(u64::MAX).is_ok());
            assert!(charge(1).is_ok(), "saturates, no budget");
        });
    }
}
