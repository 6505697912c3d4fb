//! Progress on stderr for the long CLI verbs: a spinner for work of unknown length, a bar
//! for counted work. Nothing is drawn when stderr is not a terminal (scripts, CI logs).

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A spinner with `message` and the time elapsed, ticking on its own.
pub fn spinner(message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message.into());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar of `len` items titled `prefix`; its message names the item at hand.
pub fn bar(len: u64, prefix: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new(len).with_prefix(prefix.into());
    let template = "{prefix} [{bar:30}] {pos}/{len} ({elapsed}, {eta} left) {wide_msg}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A bar of `len` bytes titled `prefix`; its message names the file at hand.
pub fn bytes(len: u64, prefix: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new(len).with_prefix(prefix.into());
    let template = "{prefix} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}) {wide_msg}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
