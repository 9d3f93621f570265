//! Cutting input into events as it arrives, in bounded memory, so `tail -F … | sealog
//! append -` appends each event as it comes.
//!
//! The first bytes decide the shape: `[` starts an array whose elements are events; a first
//! line that is one whole object starts NDJSON (one event per line); anything else is one
//! multi-line document (a pretty-printed object), read whole up to a limit and split as
//! `POST /v1/events` splits a body. Each event is parsed later, once, by the ledger; here
//! only its bounds are found.

use std::io::{self, BufRead};

use sealog_model::input::{self, InputError, Scanner, Step};
use sealog_model::limits::EVENT_BYTES_MAX;

/// A multi-line document is read whole; past this size, input must be NDJSON or an array.
const DOCUMENT_BYTES_MAX: usize = 64 << 20;

/// One event's bytes, or why that part of the input is not one.
pub(crate) type Item = Result<Vec<u8>, InputError>;

enum Shape {
    Unknown,
    Lines,
    Array { done: bool },
    Document(std::vec::IntoIter<Item>),
}

pub(crate) struct Events<R> {
    reader: R,
    shape: Shape,
}

impl<R: BufRead> Events<R> {
    pub(crate) fn new(reader: R) -> Self {
        Events {
            reader,
            shape: Shape::Unknown,
        }
    }

    /// The next event, `None` at the end of the input.
    pub(crate) fn next_event(&mut self) -> io::Result<Option<Item>> {
        loop {
            match &mut self.shape {
                Shape::Unknown => {
                    self.skip_byte_order_mark()?;
                    let Some(first) = self.peek_first()? else {
                        return Ok(None);
                    };
                    if first == b'[' {
                        self.reader.consume(1);
                        self.shape = Shape::Array { done: false };
                        continue;
                    }
                    let Some(line) = read_line_bounded(&mut self.reader)? else {
                        return Ok(None);
                    };
                    match line {
                        Ok(l) if input::closes_on_its_line(&l) => {
                            self.shape = Shape::Lines;
                            return Ok(Some(Ok(l.trim_ascii().to_vec())));
                        }
                        Err(e) => {
                            self.shape = Shape::Lines;
                            return Ok(Some(Err(e)));
                        }
                        Ok(l) => {
                            let items = self.read_document(l)?;
                            self.shape = Shape::Document(items.into_iter());
                        }
                    }
                }
                Shape::Lines => loop {
                    match read_line_bounded(&mut self.reader)? {
                        None => return Ok(None),
                        Some(Ok(l)) if l.trim_ascii().is_empty() => continue,
                        Some(Ok(l)) => return Ok(Some(Ok(l.trim_ascii().to_vec()))),
                        Some(Err(e)) => return Ok(Some(Err(e))),
                    }
                },
                Shape::Array { done: true } => return Ok(None),
                Shape::Array { done } => {
                    let (item, last) = read_element(&mut self.reader)?;
                    *done = last;
                    match item {
                        Some(i) => return Ok(Some(i)),
                        None if last => return Ok(None),
                        None => continue,
                    }
                }
                Shape::Document(items) => return Ok(items.next()),
            }
        }
    }

    /// Whether the next event can be cut from what is already buffered, without waiting for
    /// the input: a whole line that is not blank, or an element of a document read whole.
    /// An array's elements are not looked ahead into: each is handed over alone.
    pub(crate) fn next_is_buffered(&self) -> bool
    where
        R: HasBuffer,
    {
        match &self.shape {
            Shape::Lines => {
                // Blank lines are skipped when events are cut, so they are looked past here.
                let mut rest = self.reader.buffered();
                while let Some(end) = memchr::memchr(b'\n', rest) {
                    if !rest[..end].trim_ascii().is_empty() {
                        return true;
                    }
                    rest = &rest[end + 1..];
                }
                false
            }
            Shape::Document(items) => !items.as_slice().is_empty(),
            Shape::Unknown | Shape::Array { .. } => false,
        }
    }

    /// A UTF-8 byte order mark at the start of the input, as some editors and Windows tools
    /// write one: it is not part of the first event, which would otherwise be refused as not
    /// JSON.
    fn skip_byte_order_mark(&mut self) -> io::Result<()> {
        if self.reader.fill_buf()?.starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.reader.consume(3);
        }
        Ok(())
    }

    /// The first byte that is not whitespace, left unread.
    fn peek_first(&mut self) -> io::Result<Option<u8>> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => {
                    let b = buf[i];
                    self.reader.consume(i);
                    return Ok(Some(b));
                }
                None => {
                    let n = buf.len();
                    self.reader.consume(n);
                }
            }
        }
    }

    /// The rest of a multi-line document, split as a request body is.
    fn read_document(&mut self, mut text: Vec<u8>) -> io::Result<Vec<Item>> {
        text.push(b'\n');
        let limit = DOCUMENT_BYTES_MAX as u64 + 1;
        io::Read::read_to_end(&mut io::Read::take(&mut self.reader, limit), &mut text)?;
        if text.len() > DOCUMENT_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the input is a multi-line document over {} MiB; send NDJSON (one event per line) or a JSON array",
                    DOCUMENT_BYTES_MAX >> 20
                ),
            ));
        }
        Ok(match input::split(&text) {
            Ok(raws) => raws.into_iter().map(|r| r.map(<[u8]>::to_vec)).collect(),
            Err(InputError::Empty) => Vec::new(),
            Err(e) => vec![Err(e)],
        })
    }
}

/// A reader whose buffered bytes can be looked at without reading more.
pub(crate) trait HasBuffer {
    fn buffered(&self) -> &[u8];
}

impl<R: io::Read> HasBuffer for io::BufReader<R> {
    fn buffered(&self) -> &[u8] {
        self.buffer()
    }
}

/// One line (without its end), or `TooLarge` for a line over the event limit, which is
/// skipped without being held in memory. `None` at the end of the input.
fn read_line_bounded(r: &mut impl BufRead) -> io::Result<Option<Item>> {
    // Room for the whitespace around an event at the limit.
    const KEPT_MAX: usize = EVENT_BYTES_MAX + 64;
    let mut line = Vec::new();
    let mut size = 0usize;
    let mut any = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        any = true;
        let (chunk, found) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i)),
            None => (buf, None),
        };
        size += chunk.len();
        if size <= KEPT_MAX {
            line.extend_from_slice(chunk);
        }
        let used = found.map_or(chunk.len(), |i| i + 1);
        r.consume(used);
        if found.is_some() {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if size > KEPT_MAX || line.trim_ascii().len() > EVENT_BYTES_MAX {
        return Ok(Some(Err(InputError::TooLarge {
            size,
            limit: EVENT_BYTES_MAX,
        })));
    }
    Ok(Some(Ok(line)))
}

/// One element of an array being read (after its `[`), and whether the array ended. An
/// element over the event limit is skipped, not held.
fn read_element(r: &mut impl BufRead) -> io::Result<(Option<Item>, bool)> {
    let mut bytes = Vec::new();
    let mut size = 0usize;
    let mut scanner = Scanner::new();
    let mut started = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            // The array never closed: what was read of this element is refused as not JSON.
            let item = started.then(|| finish(bytes, size, true));
            return Ok((item, true));
        }
        let mut used = 0;
        let mut end = None;
        for &b in buf {
            used += 1;
            if !started {
                match b {
                    b']' => {
                        end = Some(true);
                        break;
                    }
                    b',' => continue,
                    _ if b.is_ascii_whitespace() => continue,
                    _ => started = true,
                }
            }
            if !scanner.is_open() && matches!(b, b',' | b']') {
                // A scalar (or stray bytes) ends at the separator, which is not part of it.
                end = Some(b == b']');
                break;
            }
            let step = scanner.step(b);
            size += 1;
            if size <= EVENT_BYTES_MAX {
                bytes.push(b);
            }
            if step == Step::End {
                end = Some(false);
                break;
            }
        }
        r.consume(used);
        if let Some(last) = end {
            return Ok((started.then(|| finish(bytes, size, false)), last));
        }
    }
}

fn finish(bytes: Vec<u8>, size: usize, cut: bool) -> Item {
    if size > EVENT_BYTES_MAX {
        return Err(InputError::TooLarge {
            size,
            limit: EVENT_BYTES_MAX,
        });
    }
    if cut {
        return Err(InputError::NotJson(
            "the input ends inside an array: the array never closes".into(),
        ));
    }
    Ok(bytes.trim_ascii().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &[u8]) -> Vec<Result<String, String>> {
        let mut e = Events::new(io::BufReader::with_capacity(7, text));
        let mut out = Vec::new();
        while let Some(item) = e.next_event().unwrap() {
            out.push(
                item.map(|b| String::from_utf8(b).unwrap())
                    .map_err(|e| e.code().to_string()),
            );
        }
        out
    }

    fn ok(items: &[&str]) -> Vec<Result<String, String>> {
        items.iter().map(|s| Ok(s.to_string())).collect()
    }

    /// What `next_is_buffered` says after each event cut from `text`, read through a buffer
    /// that holds it whole.
    fn buffered_after_each(text: &[u8]) -> Vec<bool> {
        let mut e = Events::new(io::BufReader::with_capacity(1 << 10, text));
        let mut out = Vec::new();
        while e.next_event().unwrap().is_some() {
            out.push(e.next_is_buffered());
        }
        out
    }

    #[test]
    fn an_event_is_buffered_only_when_cutting_it_needs_no_more_input() {
        // A whole line next; then only a line without its end.
        assert_eq!(
            buffered_after_each(b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}"),
            [true, false, false]
        );
        // Blank lines are looked past: what follows them is whole, or not.
        assert_eq!(
            buffered_after_each(b"{\"a\":1}\n \r\n{\"c\":3}"),
            [false, false]
        );
        assert_eq!(
            buffered_after_each(b"{\"a\":1}\n \n{\"c\":3}\n"),
            [true, false]
        );
        // A document read whole holds its events (this one, not one object, is split line
        // by line as a request body is); an array's are not looked ahead into.
        assert_eq!(
            buffered_after_each(b"{\n\"a\": 1\n}\n{\"b\": 2}"),
            [true, true, true, false]
        );
        assert_eq!(buffered_after_each(b"{\n\"a\": 1\n}\n"), [false]);
        assert_eq!(
            buffered_after_each(b"[{\"a\":1},{\"b\":2}]"),
            [false, false]
        );
    }

    #[test]
    fn ndjson_is_cut_at_line_ends_and_a_bad_line_is_one_event() {
        assert_eq!(
            events(b"{\"a\":1}\n\n  {\"b\":\"x\\ny\"}\r\n{oops\n{\"c\":[1]}"),
            ok(&["{\"a\":1}", "{\"b\":\"x\\ny\"}", "{oops", "{\"c\":[1]}"])
        );
    }

    #[test]
    fn a_byte_order_mark_before_the_first_event_is_not_part_of_it() {
        for text in [
            &b"\xEF\xBB\xBF{\"a\":1}\n{\"b\":2}\n"[..],
            b"\xEF\xBB\xBF[{\"a\":1},{\"b\":2}]",
        ] {
            assert_eq!(events(text), ok(&[r#"{"a":1}"#, r#"{"b":2}"#]), "{text:?}");
        }
        // Only at the start: one inside the input is the event's own (and not JSON).
        let later = events(b"{\"a\":1}\n\xEF\xBB\xBF{\"b\":2}\n");
        assert_eq!(later.len(), 2);
        assert_eq!(later[0], Ok(r#"{"a":1}"#.to_string()));
    }

    #[test]
    fn arrays_are_cut_at_their_elements() {
        assert_eq!(
            events(b" [ {\"a\":\"],[\"}, {\"b\":[1,{\"c\":2}]} ,7, oops ]"),
            ok(&["{\"a\":\"],[\"}", "{\"b\":[1,{\"c\":2}]}", "7", "oops"])
        );
        assert_eq!(events(b"[]"), ok(&[]));
        assert_eq!(
            events(b"[{\"a\":1},{\"b\":"),
            vec![Ok("{\"a\":1}".into()), Err("NOT_JSON".into())]
        );
    }

    #[test]
    fn a_multi_line_document_is_split_as_a_request_body() {
        assert_eq!(events(b"{\"a\":\n  1}\n"), ok(&["{\"a\":\n  1}"]));
        assert_eq!(
            events(b"{oops\n{\"a\":1}\n"),
            ok(&["{oops", "{\"a\":1}"]),
            "a broken first line with whole lines after it is NDJSON, as in a request"
        );
        assert_eq!(events(b"  \n "), ok(&[]));
    }

    #[test]
    fn oversized_events_are_refused_without_being_held() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(EVENT_BYTES_MAX));
        let text = format!("{{\"first\":1}}\n{big}\n{{\"last\":1}}\n");
        assert_eq!(
            events(text.as_bytes()),
            vec![
                Ok("{\"first\":1}".into()),
                Err("TOO_LARGE".into()),
                Ok("{\"last\":1}".into())
            ]
        );
        let array = format!("[{big},{{\"last\":1}}]");
        assert_eq!(
            events(array.as_bytes()),
            vec![Err("TOO_LARGE".into()), Ok("{\"last\":1}".into())]
        );
    }
}
