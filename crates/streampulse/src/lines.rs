//! The lines of an input file, each held only up to a length limit (for `replay`).
//!
//! A line longer than the limit is read to its end but not kept, and a line that is not UTF-8 is
//! reported as such: both are one bad line, never the end of the input or a buffer the size of the
//! file. Never parses what it reads.

use std::io::{self, BufRead};

/// One line, without its "\n" or "\r\n".
#[derive(Debug, PartialEq)]
pub enum Line<'a> {
    Text(&'a str),
    NotUtf8(std::str::Utf8Error),
    /// Longer than the limit: its length in bytes.
    TooLong(usize),
}

pub struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    limit: usize,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `input`, each kept up to `limit` bytes.
    pub fn new(input: R, limit: usize) -> Self {
        Lines {
            input,
            buf: Vec::new(),
            limit,
        }
    }

    /// The next line; `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        // Bytes of the line, counted past the limit too. Kept: the limit, and one more for a
        // "\r" before the "\n" (which is never kept).
        let mut len = 0usize;
        let keep = self.limit.saturating_add(1);
        let mut ended = false;
        // The line's last byte, seen even when it is past what is kept.
        let mut last = None;
        while !ended {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if len == 0 {
                    return Ok(None);
                }
                break;
            }
            // memchr: several times faster than the standard library's search on ~100-byte lines.
            let (take, used) = match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    ended = true;
                    (i, i + 1)
                }
                None => (chunk.len(), chunk.len()),
            };
            if take > 0 {
                last = Some(chunk[take - 1]);
            }
            let room = keep.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..take.min(room)]);
            len += take;
            self.input.consume(used);
        }
        let len = if last == Some(b'\r') { len - 1 } else { len };
        if len > self.limit {
            return Ok(Some(Line::TooLong(len)));
        }
        let line = &self.buf[..len];
        Ok(Some(match std::str::from_utf8(line) {
            Ok(text) => Line::Text(text),
            Err(e) => Line::NotUtf8(e),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], limit: usize, capacity: usize) -> Vec<String> {
        let reader = io::BufReader::with_capacity(capacity, input);
        let mut lines = Lines::new(reader, limit);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push(match line {
                Line::Text(t) => t.to_string(),
                Line::NotUtf8(_) => "<not utf-8>".to_string(),
                Line::TooLong(n) => format!("<{n} bytes>"),
            });
        }
        out
    }

    #[test]
    fn cuts_as_bufread_lines_does() {
        let input = b"a\nbb\r\n\nccc\r\nlast";
        let want: Vec<String> = input.lines().map(|l| l.unwrap()).collect();
        for capacity in [1, 2, 3, 64] {
            assert_eq!(all(input, 10, capacity), want, "buffer of {capacity}");
        }
    }

    #[test]
    fn a_long_or_broken_line_is_one_bad_line() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 1000));
        input.extend(b"\r\n\xff\xfe\nafter\n12345\n");
        for capacity in [1, 7, 8192] {
            assert_eq!(
                all(&input, 5, capacity),
                ["ok", "<1000 bytes>", "<not utf-8>", "after", "12345"],
                "buffer of {capacity}"
            );
        }
    }

    #[test]
    fn keeps_no_more_than_the_limit() {
        let input = vec![b'y'; 1 << 20];
        let mut lines = Lines::new(io::BufReader::new(&input[..]), 100);
        assert_eq!(lines.next_line().unwrap(), Some(Line::TooLong(1 << 20)));
        assert!(lines.buf.len() <= 102);
        assert_eq!(lines.next_line().unwrap(), None);
    }
}
