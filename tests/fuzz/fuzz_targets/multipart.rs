//! A multipart body, split into chunks, through the host's guard (`labelhost_wire::multipart`)
//! and the parser the host uses (multer, under axum's `Multipart`). Properties: nothing
//! panics; the guard's verdict does not depend on how the body is chunked; a body the guard
//! passes parses exactly as it would unguarded; only a body longer than the header limit
//! can be refused.
//!
//! Input: byte 0 picks the chunk size (1-256), byte 1 a run of filler (512 bytes each, up to
//! ~128 KiB, so the header limit can be passed from small inputs), byte 2 where the filler
//! goes; the rest is the body, boundary [`BOUNDARY`].
#![no_main]

use bytes::Bytes;
use futures_util::stream;
use labelhost_wire::multipart::{guard, Scanner, MAX_PART_HEADERS};
use libfuzzer_sys::fuzz_target;
use std::convert::Infallible;

const BOUNDARY: &str = "labelhost-fuzz";

/// The fields a parse produced (name, file name, content type, data) and whether it ended
/// with an error.
#[derive(Debug, PartialEq)]
struct Parsed {
    fields: Vec<(Option<String>, Option<String>, Option<String>, Vec<u8>)>,
    failed: bool,
}

fn parse<S, O, E>(body: S) -> Parsed
where
    S: futures_util::Stream<Item = Result<O, E>> + Send + 'static,
    O: Into<Bytes> + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let mut form = multer::Multipart::new(body, BOUNDARY);
    futures_executor::block_on(async move {
        let mut parsed = Parsed {
            fields: Vec::new(),
            failed: false,
        };
        loop {
            match form.next_field().await {
                Ok(Some(mut field)) => {
                    let name = field.name().map(str::to_owned);
                    let file = field.file_name().map(str::to_owned);
                    let kind = field.content_type().map(|m| m.to_string());
                    let mut data = Vec::new();
                    loop {
                        match field.chunk().await {
                            Ok(Some(c)) => data.extend_from_slice(&c),
                            Ok(None) => break,
                            Err(_) => {
                                parsed.failed = true;
                                break;
                            }
                        }
                    }
                    parsed.fields.push((name, file, kind, data));
                    if parsed.failed {
                        return parsed;
                    }
                }
                Ok(None) => return parsed,
                Err(_) => {
                    parsed.failed = true;
                    return parsed;
                }
            }
        }
    })
}

fn chunks(body: &[u8], size: usize) -> Vec<Result<Bytes, Infallible>> {
    body.chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let size = 1 + data[0] as usize;
    let mut body = data[3..].to_vec();
    let at = data[2] as usize * body.len() / 256;
    body.splice(at..at, std::iter::repeat_n(b'x', data[1] as usize * 512));

    let whole = Scanner::new(BOUNDARY).feed(&body);
    let mut scanner = Scanner::new(BOUNDARY);
    let chunked = body.chunks(size).try_for_each(|c| scanner.feed(c));
    assert_eq!(
        whole.is_ok(),
        chunked.is_ok(),
        "the verdict depends on chunking"
    );

    let guarded = parse(guard(stream::iter(chunks(&body, size)), BOUNDARY));
    if chunked.is_ok() {
        let plain = parse(stream::iter(chunks(&body, size)));
        assert_eq!(guarded, plain, "the guard changed a body it passed");
    } else {
        assert!(
            body.len() > MAX_PART_HEADERS,
            "refused a body under the limit"
        );
        assert!(guarded.failed, "a refused body parsed to its end");
    }
});
