//! A multipart body with its part headers bounded. A multipart parser buffers a part's
//! headers whole until their blank line, so a 200 MiB file name would be held in memory;
//! [`guard`] scans the body as it streams and, past [`MAX_PART_HEADERS`] in one part's
//! headers, passes on no more of it and ends it with the refusal. The rest of the body
//! is still read (and dropped), so the client gets to read the 400 (an answer before its
//! upload ends would break its connection).
//!
//! The scanner takes every `--boundary` as a delimiter, also one the parser would not (not
//! after a line break): it may see more part headers than there are, never fewer, so no
//! body gets long headers past it.

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use memchr::memmem;
use std::sync::{Arc, Mutex};

/// The most bytes one part's headers may take.
pub const MAX_PART_HEADERS: usize = 64 << 10;

/// What the scanner is inside of.
#[derive(Debug)]
enum Where {
    /// A part's data (or the preamble): looking for the next boundary.
    Data,
    /// A part's headers, `n` bytes so far: looking for their blank line.
    Headers(usize),
}

/// Watches a multipart body, chunk by chunk, for part headers over the limit.
#[derive(Debug)]
pub struct Scanner {
    delimiter: Vec<u8>,
    at: Where,
    /// The end of the previous chunk, so a delimiter split across chunks is seen.
    tail: Vec<u8>,
}

impl Scanner {
    /// A scanner for a body whose boundary is `boundary`.
    pub fn new(boundary: &str) -> Self {
        Scanner {
            delimiter: format!("--{boundary}").into_bytes(),
            at: Where::Data,
            tail: Vec::new(),
        }
    }

    /// Scans the next chunk; `Err` when a part's headers pass the limit.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(chunk);
        let mut pos = 0;
        loop {
            match self.at {
                Where::Data => match memmem::find(&window[pos..], &self.delimiter) {
                    Some(i) => {
                        pos += i + self.delimiter.len();
                        self.at = Where::Headers(0);
                    }
                    None => break,
                },
                Where::Headers(n) => match memmem::find(&window[pos..], b"\r\n\r\n") {
                    Some(i) => {
                        if n + i > MAX_PART_HEADERS {
                            return Err(too_long());
                        }
                        pos += i + 4;
                        self.at = Where::Data;
                    }
                    None => {
                        let seen = n + (window.len() - pos);
                        // The last 3 bytes may begin the blank line: they are not yet
                        // counted as headers (else the verdict would depend on chunking).
                        let keep = 3.min(window.len() - pos);
                        if seen - keep > MAX_PART_HEADERS {
                            return Err(too_long());
                        }
                        self.at = Where::Headers(seen - keep);
                        pos = window.len() - keep;
                        break;
                    }
                },
            }
        }
        let keep = match self.at {
            Where::Data => self.delimiter.len().saturating_sub(1),
            Where::Headers(_) => 3,
        };
        let from = window.len().saturating_sub(keep).max(pos);
        self.tail = window[from..].to_vec();
        Ok(())
    }
}

fn too_long() -> String {
    format!("a multipart part's headers are over {MAX_PART_HEADERS} bytes")
}

/// Why a guarded body ended early: the stream's own error, or the scanner's refusal.
#[derive(Debug)]
pub enum Stopped<E> {
    /// The body itself failed.
    Body(E),
    /// A part's headers passed [`MAX_PART_HEADERS`].
    HeadersTooLong(String),
}

impl<E: std::fmt::Display> std::fmt::Display for Stopped<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::Body(e) => e.fmt(f),
            Stopped::HeadersTooLong(why) => f.write_str(why),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for Stopped<E> {}

/// `body` as a parser should see it: chunks pass through until a part's headers are over
/// the limit; after that the rest is read and dropped, and the stream ends with
/// [`Stopped::HeadersTooLong`].
pub fn guard<E>(
    body: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
    boundary: &str,
) -> impl Stream<Item = Result<Bytes, Stopped<E>>> + Send + 'static
where
    E: Send + 'static,
{
    let mut scanner = Scanner::new(boundary);
    let failed: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = failed.clone();
    let checked = body.map(move |chunk| {
        let chunk = chunk.map_err(Stopped::Body)?;
        let mut failed = seen.lock().unwrap_or_else(|e| e.into_inner());
        if failed.is_some() {
            return Ok(Bytes::new());
        }
        match scanner.feed(&chunk) {
            Ok(()) => Ok(chunk),
            Err(why) => {
                *failed = Some(why);
                Ok(Bytes::new())
            }
        }
    });
    let verdict = stream::once(async move {
        match failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(why) => Err(Stopped::HeadersTooLong(why)),
            None => Ok(Bytes::new()),
        }
    });
    checked.chain(verdict)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn feed_all(boundary: &str, chunks: &[&[u8]]) -> Result<(), String> {
        let mut s = Scanner::new(boundary);
        chunks.iter().try_for_each(|c| s.feed(c))
    }

    #[test]
    fn ordinary_forms_pass_and_long_part_headers_are_caught_across_chunks() {
        let form =
            b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n--xyz--\r\n";
        assert!(feed_all("xyz", &[form]).is_ok());
        // Split anywhere, even inside the delimiter and the blank line.
        for cut in 1..form.len() {
            assert!(
                feed_all("xyz", &[&form[..cut], &form[cut..]]).is_ok(),
                "{cut}"
            );
        }
        let long_name = "n".repeat(MAX_PART_HEADERS + 10);
        let head = format!(
            "--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{long_name}"
        );
        let bytes = head.as_bytes();
        assert!(feed_all("xyz", &[bytes]).is_err());
        let pieces: Vec<&[u8]> = bytes.chunks(1000).collect();
        assert!(feed_all("xyz", &pieces).is_err(), "caught across chunks");
        // Large data is not headers.
        let data = vec![b'x'; 4 * MAX_PART_HEADERS];
        let mut big = b"--xyz\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n".to_vec();
        big.extend_from_slice(&data);
        big.extend_from_slice(b"\r\n--xyz--\r\n");
        let pieces: Vec<&[u8]> = big.chunks(777).collect();
        assert!(feed_all("xyz", &pieces).is_ok());
    }

    #[test]
    fn headers_of_exactly_the_limit_pass_however_the_body_is_chunked() {
        // Found by the multipart fuzz target: fed a byte at a time, the first bytes of the
        // blank line were counted as headers and a part of exactly the limit was refused.
        let mut body = b"--xyz".to_vec();
        body.extend(std::iter::repeat_n(b'x', MAX_PART_HEADERS));
        body.extend_from_slice(b"\r\n\r\n");
        assert!(feed_all("xyz", &[&body]).is_ok());
        let bytewise: Vec<&[u8]> = body.chunks(1).collect();
        assert!(feed_all("xyz", &bytewise).is_ok());
        body.insert(6, b'x');
        assert!(feed_all("xyz", &[&body]).is_err());
        let bytewise: Vec<&[u8]> = body.chunks(1).collect();
        assert!(feed_all("xyz", &bytewise).is_err());
    }
}
