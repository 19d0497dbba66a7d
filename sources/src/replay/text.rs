//! Line and field helpers shared by the text readers: files read as a stream (gzip inflated on
//! the way), 1-based line numbers, byte-level CSV splitting and integer parsing without
//! allocation.

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::path::Path;

use tickflow_core::{
    InstrumentId, MarketEvent, ParseFixedError, Reject, RejectReason, SeqNo, Timestamp,
};

use crate::error::{Error, Result};
use crate::{PartReader, SourceItem};

/// A file opened to be read as a stream.
pub struct Stream {
    /// Its bytes, inflated when it is gzip.
    pub reader: Box<dyn Read + Send>,
    /// True when the file is gzip.
    pub gzip: bool,
}

/// Opens a file to be read as it is taken, inflated when it is gzip (told by its first two
/// bytes, not by its name): the whole file is never held, and a file that breaks off part-way
/// still gives what comes before the break. A gzip file's header, data and CRC are checked as
/// they are read; a break shows in [`LineBuffer::cut_short`].
pub fn stream_file(path: &Path) -> Result<Stream> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut file = std::io::BufReader::with_capacity(BLOCK, file);
    let gzip = file
        .fill_buf()
        .map_err(|e| Error::io(path, e))?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read + Send> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Stream { reader, gzip })
}

/// Iterates the lines of a file, with 1-based line numbers; a trailing `\r` is stripped and a
/// final line without newline is still a line. The file is in memory ([`LineBuffer::new`]) or
/// read as the lines are taken ([`LineBuffer::streaming`]).
pub struct LineBuffer {
    data: Vec<u8>,
    pos: usize,
    line: u64,
    /// Where the rest of the file comes from, while there is more.
    more: Option<Box<dyn Read + Send>>,
    /// Why reading the rest failed.
    failed: Option<String>,
}

impl std::fmt::Debug for LineBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineBuffer")
            .field("pos", &self.pos)
            .field("line", &self.line)
            .field("streaming", &self.more.is_some())
            .finish()
    }
}

/// How much a streaming buffer reads at a time.
const BLOCK: usize = 64 * 1024;

impl LineBuffer {
    /// Wraps a decompressed file.
    pub fn new(data: Vec<u8>) -> Self {
        Self {
            data,
            pos: 0,
            line: 0,
            more: None,
            failed: None,
        }
    }

    /// Reads `source` a block at a time as lines are taken (a decompressor, say), so the first
    /// lines are there at once and the whole file is never held.
    pub fn streaming(source: Box<dyn Read + Send>) -> Self {
        Self {
            more: Some(source),
            ..Self::new(Vec::with_capacity(BLOCK))
        }
    }

    /// How many lines have been taken.
    pub fn lines_read(&self) -> u64 {
        self.line
    }

    /// Why the rest of a streamed file could not be read, once `next_line` has ended early.
    pub fn take_error(&mut self) -> Option<String> {
        self.failed.take()
    }

    /// Once `next_line` has ended early, the reject that says so (once), at the line after
    /// the last one read; `None` when the file ended where it should.
    pub fn cut_short(&mut self, origin: &str, seq: &mut LineSeq) -> Option<SourceItem> {
        let detail = self.take_error()?;
        seq.line(self.line + 1);
        Some(SourceItem::Bad(bad_row(
            origin,
            seq.seq(),
            RejectReason::Malformed,
            format!("the file cannot be read further: {detail}"),
        )))
    }

    /// Reads until `data[pos..]` holds a newline or the source ends.
    fn fill(&mut self) {
        let Some(source) = self.more.as_mut() else {
            return;
        };
        // Keep the unread part only.
        self.data.drain(..self.pos.min(self.data.len()));
        self.pos = 0;
        let mut searched = 0;
        while !self.data[searched..].contains(&b'\n') {
            searched = self.data.len();
            // Up to a block more, appended without zeroing the buffer first.
            match source
                .by_ref()
                .take(BLOCK as u64)
                .read_to_end(&mut self.data)
            {
                Ok(0) => {
                    self.more = None;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    self.more = None;
                    self.failed = Some(e.to_string());
                    return;
                }
            }
        }
    }

    /// The next `(line number, line)`, or `None` at the end.
    pub fn next_line(&mut self) -> Option<(u64, &[u8])> {
        // After a last line without newline, `pos` is one past the end.
        let newline = |data: &[u8], pos: usize| {
            data.get(pos..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        };
        let mut found = newline(&self.data, self.pos);
        if found.is_none() && self.more.is_some() {
            // `fill` moves the unread part to the front of the buffer.
            self.fill();
            found = newline(&self.data, self.pos);
        }
        if self.pos >= self.data.len() {
            return None;
        }
        let len = found.unwrap_or(self.data.len() - self.pos);
        let start = self.pos;
        self.pos += len + 1;
        self.line += 1;
        let mut line = &self.data[start..start + len];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        Some((self.line, line))
    }
}

/// Opens a CSV file (plain or gzip, read as a stream) and reads its header: the lines after it,
/// and the header.
pub fn open_csv(path: &Path) -> Result<(LineBuffer, Vec<u8>)> {
    let mut lines = LineBuffer::streaming(stream_file(path)?.reader);
    let Some((_, header)) = lines.next_line() else {
        let why = match lines.take_error() {
            Some(e) => format!("cannot be read: {e}"),
            None => "empty file".into(),
        };
        return Err(Error::format(path, why));
    };
    let header = header.to_vec();
    Ok((lines, header))
}

/// Calls `row` with the fields of every row of `lines` that has `width` of them.
pub fn each_row(lines: &mut LineBuffer, width: usize, mut row: impl FnMut(&[&[u8]])) {
    while let Some((_, line)) = lines.next_line() {
        let mut fields = Vec::with_capacity(width);
        split_fields(line, &mut fields);
        if fields.len() == width {
            row(&fields);
        }
    }
}

/// What turns the rows of one CSV layout into records, for [`CsvReader`].
pub trait CsvRows: Send {
    /// The columns of a row (the header's); a row of another count is refused before
    /// [`CsvRows::parse`] sees it.
    fn width(&self) -> usize;

    /// Reads a row's `width` fields into records queued on `out`, numbered with `seq`.
    fn parse(
        &mut self,
        fields: &[&[u8]],
        seq: &mut LineSeq,
        out: &mut VecDeque<MarketEvent>,
    ) -> Result<(), RowError>;

    /// A reject to report at the row just read without refusing it (a [`RejectReason::Gap`]
    /// before it), taken once after [`CsvRows::parse`] read the row.
    fn notice(&mut self) -> Option<Notice> {
        None
    }
}

/// A reject about a row that is still read ([`CsvRows::notice`]), with the row's instrument
/// and event time.
#[derive(Debug)]
pub struct Notice {
    /// Why and what.
    pub reject: RowError,
    /// The row's instrument.
    pub instrument: InstrumentId,
    /// The row's event time.
    pub ts_event: Timestamp,
}

/// Reader of a CSV file after its header: each row gives its records, or one reject at its
/// line (a row is taken whole or refused whole: nothing it queued before failing is kept);
/// a row read may also carry one notice ([`CsvRows::notice`]), reported before its records.
/// Blank lines are skipped.
pub struct CsvReader<R> {
    lines: LineBuffer,
    origin: String,
    seq: LineSeq,
    pending: VecDeque<MarketEvent>,
    rows: R,
}

impl<R: CsvRows> CsvReader<R> {
    /// Reads `lines` (the rest of `path` after its header) as part `source`, through `rows`.
    pub fn new(lines: LineBuffer, path: &Path, source: u16, rows: R) -> Self {
        Self {
            lines,
            origin: path.display().to_string(),
            seq: LineSeq::new(source),
            pending: VecDeque::new(),
            rows,
        }
    }
}

impl<R: CsvRows> PartReader for CsvReader<R> {
    fn next_item(&mut self) -> Option<SourceItem> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(SourceItem::Event(e));
            }
            let Some((line_no, line)) = self.lines.next_line() else {
                // A file that breaks off part-way says so once, as a reject.
                return self.lines.cut_short(&self.origin, &mut self.seq);
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.seq.line(line_no);
            let width = self.rows.width();
            let mut fields = Vec::with_capacity(width);
            split_fields(line, &mut fields);
            let read = if fields.len() == width {
                self.rows.parse(&fields, &mut self.seq, &mut self.pending)
            } else {
                Err(malformed(format!(
                    "expected {width} columns, found {}",
                    fields.len()
                )))
            };
            let reject = match read {
                Ok(()) => self.rows.notice().map(|notice| {
                    let ((reason, detail), seq) = (notice.reject, self.seq.seq());
                    Reject {
                        instrument: Some(notice.instrument),
                        ts_event: Some(notice.ts_event),
                        ..bad_row(&self.origin, seq, reason, detail)
                    }
                }),
                Err((reason, detail)) => {
                    self.pending.clear();
                    let seq = self.seq.seq();
                    Some(bad_row(&self.origin, seq, reason, detail))
                }
            };
            if let Some(reject) = reject {
                return Some(SourceItem::Bad(reject));
            }
        }
    }
}

/// Sequence numbers of a file's records by their lines ([`SeqNo::at_line`]), so that a record
/// found bad after it was read is still reported at its line.
#[derive(Debug)]
pub struct LineSeq {
    source: u16,
    line: u64,
    place: u64,
}

impl LineSeq {
    /// Numbers the records of part `source`.
    pub fn new(source: u16) -> Self {
        Self {
            source,
            line: 0,
            place: 0,
        }
    }

    /// The records from now on are on line `line`.
    pub fn line(&mut self, line: u64) {
        self.line = line;
        self.place = 0;
    }

    /// The next record's sequence number on the current line.
    pub fn seq(&mut self) -> SeqNo {
        let seq = SeqNo::at_line(self.source, self.line, self.place);
        self.place += 1;
        seq
    }
}

/// Splits a CSV line on commas into `out` (no quoting: none of the supported formats quote).
pub fn split_fields<'a>(line: &'a [u8], out: &mut Vec<&'a [u8]>) {
    out.clear();
    out.extend(line.split(|&b| b == b','));
}

/// Splits a CSV line on commas into a fixed array without allocating; returns the number of
/// fields in the line (which may exceed `N`, in which case only the first `N` are stored).
pub fn split_fixed<'a, const N: usize>(line: &'a [u8], out: &mut [&'a [u8]; N]) -> usize {
    let mut n = 0;
    for field in line.split(|&b| b == b',') {
        if n < N {
            out[n] = field;
        }
        n += 1;
    }
    n
}

/// Parses a decimal integer (optional sign), `None` for anything else.
pub fn parse_i64(field: &[u8]) -> Option<i64> {
    let (neg, digits) = match field.first()? {
        b'-' => (true, &field[1..]),
        b'+' => (false, &field[1..]),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

/// Text of a field for error messages (lossy, shortened).
pub fn show(field: &[u8]) -> String {
    let s = String::from_utf8_lossy(field);
    if s.len() > 40 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(40).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s.into_owned()
    }
}

/// True when a field spells NaN or infinity (a non-finite price in the source).
pub fn is_non_finite(field: &[u8]) -> bool {
    let t = String::from_utf8_lossy(field)
        .trim()
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase();
    matches!(t.as_str(), "nan" | "inf" | "infinity")
}

/// Why a row could not be read: the reject reason and what is wrong.
pub type RowError = (RejectReason, String);

/// A malformed row, saying what is wrong.
pub fn malformed(detail: String) -> RowError {
    (RejectReason::Malformed, detail)
}

/// A decimal price or size from field `name` (`Price::parse` or `Quantity::parse`); NaN and
/// infinity are non-finite prices, anything else that does not parse is malformed.
pub fn fixed<T>(
    field: &[u8],
    name: &str,
    parse: fn(&str) -> std::result::Result<T, ParseFixedError>,
) -> Result<T, RowError> {
    let text = std::str::from_utf8(field)
        .map_err(|_| malformed(format!("{name} is not text: {:?}", show(field))))?;
    parse(text).map_err(|e| match e {
        ParseFixedError::NotFinite(_) => (RejectReason::NonFinitePrice, format!("{name}: {e}")),
        e => malformed(format!("{name}: {e}")),
    })
}

/// Builds the reject for a row that could not be read, at the line (or record) its sequence
/// number gives ([`SeqNo::at_line`]).
pub fn bad_row(origin: &str, seq: SeqNo, reason: RejectReason, detail: String) -> Reject {
    Reject {
        instrument: None,
        ts_event: None,
        reason,
        detail,
        origin: origin.to_owned(),
        line: seq.line(),
        seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_trimmed() {
        let mut b = LineBuffer::new(b"a,b\r\n\nc".to_vec());
        assert_eq!(b.next_line(), Some((1, &b"a,b"[..])));
        assert_eq!(b.next_line(), Some((2, &b""[..])));
        assert_eq!(b.next_line(), Some((3, &b"c"[..])));
        assert_eq!(b.next_line(), None);
    }

    /// Gives at most `step` bytes a read, then fails if asked to.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        fail_at_end: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pos == self.data.len() && self.fail_at_end {
                return Err(std::io::Error::other("broken off"));
            }
            let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn all_lines(b: &mut LineBuffer) -> Vec<(u64, Vec<u8>)> {
        std::iter::from_fn(|| b.next_line().map(|(n, l)| (n, l.to_vec()))).collect()
    }

    #[test]
    fn a_streamed_file_gives_the_lines_an_in_memory_one_does() {
        let mut text = Vec::new();
        for i in 0..20_000 {
            text.extend_from_slice(format!("{i},{}\r\n", "x".repeat(i % 97)).as_bytes());
            if i % 1000 == 0 {
                text.push(b'\n');
            }
        }
        text.extend_from_slice(b"last line without newline");
        let expected = all_lines(&mut LineBuffer::new(text.clone()));
        for step in [1, 7, 4096, 1 << 20] {
            let mut b = LineBuffer::streaming(Box::new(Trickle {
                data: text.clone(),
                pos: 0,
                step,
                fail_at_end: false,
            }));
            assert_eq!(all_lines(&mut b), expected, "reads of {step} bytes");
            assert_eq!(b.take_error(), None);
        }
        // A source that fails: the lines before it, then the reason.
        let mut b = LineBuffer::streaming(Box::new(Trickle {
            data: b"a\nb\nc".to_vec(),
            pos: 0,
            step: 2,
            fail_at_end: true,
        }));
        assert_eq!(
            all_lines(&mut b),
            vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())]
        );
        assert_eq!(b.take_error().as_deref(), Some("broken off"));
    }

    #[test]
    fn parses_integers_strictly() {
        assert_eq!(parse_i64(b"1815200"), Some(1_815_200));
        assert_eq!(parse_i64(b"-3"), Some(-3));
        assert_eq!(parse_i64(b"1.5"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"9999999999999999999"), None);
        assert_eq!(
            parse_i64(b"1723161253937085768"),
            Some(1_723_161_253_937_085_768)
        );
        assert!(is_non_finite(b"NaN") && is_non_finite(b"-inf") && !is_non_finite(b"1"));
    }
}
