//! The server log, kept in memory too (the last lines) so `GET /logs/` can show it, as
//! MONAI Label serves its `app.log`. Lines are written to stderr as usual.

use std::{
    collections::VecDeque,
    io::{self, Write},
    sync::{Arc, Mutex, OnceLock},
};

/// How many lines are kept.
const KEEP: usize = 5000;

/// The shared tail of the log.
#[derive(Default)]
pub struct LogBuffer {
    lines: Mutex<VecDeque<String>>,
}

static BUFFER: OnceLock<Arc<LogBuffer>> = OnceLock::new();

impl LogBuffer {
    /// The process-wide buffer.
    pub fn global() -> Arc<LogBuffer> {
        BUFFER.get_or_init(Default::default).clone()
    }

    fn push(&self, text: &str) {
        let Ok(mut lines) = self.lines.lock() else {
            return;
        };
        for line in text.lines().filter(|l| !l.is_empty()) {
            lines.push_back(strip_ansi(line));
        }
        while lines.len() > KEEP {
            lines.pop_front();
        }
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.iter().skip(l.len().saturating_sub(n)).cloned().collect())
            .unwrap_or_default()
    }
}

/// Removes terminal colour codes (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A writer for the log subscriber: stderr plus the buffer.
pub struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        LogBuffer::global().push(&String::from_utf8_lossy(buf));
        io::stderr().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plain_lines_and_the_tail() {
        let b = LogBuffer::default();
        b.push("\u{1b}[32m INFO\u{1b}[0m one\ntwo\n");
        assert_eq!(b.tail(5), vec![" INFO one".to_owned(), "two".to_owned()]);
        assert_eq!(b.tail(1), vec!["two".to_owned()]);
    }
}
