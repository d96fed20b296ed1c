//! A CSV reader for the schedule files that works on whole buffers instead of byte by byte:
//! `used.csv` grows to millions of rows, and `enroll check` and `enroll report` read all of
//! them. It reads exactly what the `csv` crate reads with the settings the schedule used
//! (`,` between fields, `"` quoting with `""` for a quote, `\n`, `\r` or `\r\n` ending a
//! record, blank lines skipped, any number of fields per record, a quote inside an unquoted
//! field kept as it is, an unclosed quote running to the end of the file); the unit tests
//! hold it to the `csv` crate on arbitrary bytes. It also gives each record the line it
//! really starts on (the `csv` crate counts a skipped blank line, or the `\n` of a `\r\n`, as
//! the next record's).
//!
//! Memory stays bounded: the file is read in blocks, and only the record that runs past the
//! end of a block is carried over to the next.

use std::io::Read;

/// How much of a file is read at once.
const BLOCK: usize = 8 << 20;

/// Where one field's text lies: in the block read from the file (most fields), or, for a
/// field that is not one piece of it (a `""` inside quotes), in the record's own bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
    own: bool,
}

/// A record being read: its fields' places, and the bytes of the fields that needed joining.
#[derive(Debug, Default)]
struct RecordBuffer {
    spans: Vec<Span>,
    own: Vec<u8>,
    /// The record's bytes in the block (from its first byte to its line end).
    start: usize,
    end: usize,
    line: usize,
}

impl RecordBuffer {
    fn clear(&mut self, start: usize, line: usize) {
        self.spans.clear();
        self.own.clear();
        self.start = start;
        self.line = line;
    }
}

/// The field being read, kept in local variables (a field kept in the record itself, written
/// and read back at every piece, cost more than the rest of reading it).
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    start: usize,
    end: usize,
    /// Nothing yet, a piece of the block, or joined in the record's own bytes.
    kind: PendingKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum PendingKind {
    #[default]
    Empty,
    Block,
    Own,
}

impl Pending {
    /// Adds `buffer[start..end]` to the field.
    #[inline(always)]
    fn add(&mut self, record: &mut RecordBuffer, buffer: &[u8], start: usize, end: usize) {
        match self.kind {
            PendingKind::Empty => *self = Pending { start, end, kind: PendingKind::Block },
            PendingKind::Block if self.end == start => self.end = end,
            PendingKind::Block => {
                let from = record.own.len();
                record.own.extend_from_slice(&buffer[self.start..self.end]);
                record.own.extend_from_slice(&buffer[start..end]);
                *self = Pending { start: from, end: record.own.len(), kind: PendingKind::Own };
            }
            PendingKind::Own => {
                record.own.extend_from_slice(&buffer[start..end]);
                self.end = record.own.len();
            }
        }
    }

    #[inline(always)]
    fn end_field(&mut self, record: &mut RecordBuffer) {
        let span = match self.kind {
            PendingKind::Empty => Span::default(),
            kind => Span { start: self.start, end: self.end, own: kind == PendingKind::Own },
        };
        record.spans.push(span);
        *self = Pending::default();
    }
}

/// One record, as the callers see it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    record: &'a RecordBuffer,
    block: &'a [u8],
    /// Text of the block already found to be UTF-8 (from the offset given), which the record
    /// may lie in: then it is not checked again.
    checked: Option<(usize, &'a str)>,
}

impl<'a> Record<'a> {
    /// The 1-based line the record starts on.
    pub fn line(&self) -> usize {
        self.record.line
    }

    pub fn len(&self) -> usize {
        self.record.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.record.spans.is_empty()
    }

    /// The fields as text, or where the first byte that is not UTF-8 lies (counted from the
    /// start of the record).
    pub fn fields(&self) -> Result<Fields<'a>, usize> {
        let (start, end) = (self.record.start, self.record.end);
        let known = self.checked.and_then(|(base, text)| text.get(start.checked_sub(base)?..end.checked_sub(base)?));
        let raw = match known {
            Some(raw) => raw,
            None => std::str::from_utf8(&self.block[start..end]).map_err(|error| error.valid_up_to())?,
        };
        // Joined fields are made of pieces of the record: UTF-8 as it is, unless a piece
        // ends inside a character, which the check above rules out.
        let own = match self.record.own.as_slice() {
            [] => "",
            own => std::str::from_utf8(own).map_err(|error| error.valid_up_to())?,
        };
        Ok(Fields { raw, base: self.record.start, own, spans: &self.record.spans })
    }
}

/// The fields of a record, as text.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    raw: &'a str,
    base: usize,
    own: &'a str,
    spans: &'a [Span],
}

impl<'a> Fields<'a> {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&'a str> {
        let span = self.spans.get(index)?;
        if span.own {
            self.own.get(span.start..span.end)
        } else if span.start == span.end {
            Some("")
        } else {
            self.raw.get(span.start - self.base..span.end - self.base)
        }
    }

    /// [`Fields::get`] as bytes, without looking for where characters begin (the readers of
    /// long files parse most fields byte by byte).
    #[inline(always)]
    pub fn bytes(&self, index: usize) -> Option<&'a [u8]> {
        let span = self.spans.get(index)?;
        if span.own {
            self.own.as_bytes().get(span.start..span.end)
        } else if span.start == span.end {
            Some(&[])
        } else {
            self.raw.as_bytes().get(span.start - self.base..span.end - self.base)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }
}

/// A record offered whole, before it is split into fields: the text it begins in (checked as
/// UTF-8), where in that text it begins, and the line it begins on.
///
/// A reader that knows the shape its records nearly always have may take such a record
/// straight from the text, and answer where in the text the record's line ends (the offset of
/// the `\n` or `\r` after it); or answer `None`, and the record is split and given to it the
/// general way. It may take only a record that lies on that one line, with no quote in it but
/// a pair around a whole field (the first quote opening the field, the second closing it,
/// with neither quote nor line break between them): the general way would then find the same
/// record, with the same fields.
#[derive(Debug, Clone, Copy)]
pub struct Unsplit<'a> {
    pub text: &'a str,
    pub start: usize,
    pub line: usize,
}

/// The record at `start` (not a blank line) offered to `quick` if it lies in the checked
/// text: where the next record may begin and the line there, when `quick` took it.
#[inline(always)]
fn offer<S>(
    buffer: &[u8],
    checked: Option<(usize, &str)>,
    start: usize,
    line: usize,
    state: &mut S,
    quick: &mut impl FnMut(&mut S, Unsplit<'_>) -> Option<usize>,
) -> Option<(usize, usize)> {
    let (base, text) = checked?;
    let end = base + quick(state, Unsplit { text, start: start.checked_sub(base)?, line })?;
    Some((end + 1, line + usize::from(buffer[end] == b'\n')))
}

/// Reads `reader` to the end: each record is offered to `quick` (see [`Unsplit`]), and those
/// it leaves go to `visit`, in order, with `state`. Stops early (with `Ok`) when `visit`
/// returns `false`.
pub fn for_each_record<S>(
    reader: impl Read,
    state: &mut S,
    mut quick: impl FnMut(&mut S, Unsplit<'_>) -> Option<usize>,
    mut visit: impl FnMut(&mut S, Record<'_>) -> bool,
) -> std::io::Result<()> {
    let mut record = RecordBuffer::default();
    let mut go_on = true;
    read_blocks(reader, BLOCK, |buffer, mut position, at_eof, line| {
        let checked = utf8_prefix(buffer, position, buffer.len());
        while go_on {
            let mut lines = *line;
            let start = skip_blank_lines(buffer, position, &mut lines);
            if start == buffer.len() {
                if at_eof {
                    *line = lines;
                }
                break;
            }
            if let Some((next, next_line)) = offer(buffer, checked, start, lines, state, &mut quick) {
                (position, *line) = (next, next_line);
                continue;
            }
            match read_record(buffer, start, at_eof, &mut record, &mut lines) {
                Some(next) => {
                    (position, *line) = (next, lines);
                    go_on = visit(state, Record { record: &record, block: buffer, checked });
                }
                None => break,
            }
        }
        (position, go_on)
    })
}

/// Reads `reader` to the end: the first record goes to `header`, which says whether to read
/// on; the others are folded into accumulators made by `make`, and each accumulator goes to
/// `merge`, in file order. Up to `parts` threads share each block of the file (a long history
/// is read by every core): each takes a share of the block from the first line start in it,
/// and a share is kept only when the share before it ended exactly where it began (a quoted
/// line break can make a line start in the middle of a record); otherwise that part of the
/// block is read again in order. The records, and the lines they are given, are those of
/// [`for_each_record`].
pub fn fold_records<A: Send>(
    reader: impl Read,
    parts: usize,
    header: impl FnOnce(Record<'_>) -> bool,
    make: impl Fn() -> A + Sync,
    quick: impl Fn(&mut A, Unsplit<'_>) -> Option<usize> + Sync,
    visit: impl Fn(&mut A, Record<'_>) + Sync,
    merge: impl FnMut(A),
) -> std::io::Result<()> {
    fold_records_in_blocks(reader, BLOCK, parts, header, make, (quick, visit), merge)
}

/// Blocks smaller than this are read by one thread.
const SPLIT_AT_LEAST: usize = 256 << 10;

fn fold_records_in_blocks<A: Send>(
    reader: impl Read,
    block: usize,
    parts: usize,
    header: impl FnOnce(Record<'_>) -> bool,
    make: impl Fn() -> A + Sync,
    (quick, visit): (impl Fn(&mut A, Unsplit<'_>) -> Option<usize> + Sync, impl Fn(&mut A, Record<'_>) + Sync),
    mut merge: impl FnMut(A),
) -> std::io::Result<()> {
    let mut header = Some(header);
    let visitor = (&quick, &visit);
    let mut record = RecordBuffer::default();
    let split_at_least = if cfg!(test) { 1 } else { SPLIT_AT_LEAST };
    read_blocks(reader, block, |buffer, mut position, at_eof, line| {
        if header.is_some() {
            match read_next(buffer, position, at_eof, &mut record, line) {
                Some(next) => {
                    position = next;
                    if !header
                        .take()
                        .is_some_and(|header| header(Record { record: &record, block: buffer, checked: None }))
                    {
                        return (next, false);
                    }
                }
                None => return (position, !at_eof),
            }
        }
        let length = buffer.len() - position;
        let parts = if length >= split_at_least { parts.clamp(1, 64) } else { 1 };
        // Where each share would begin: the first line start at or after its nominal start.
        let starts: Vec<usize> = (0..parts)
            .map(|part| {
                let nominal = position + length * part / parts;
                if part == 0 {
                    return position;
                }
                buffer[nominal..]
                    .iter()
                    .position(|byte| *byte == b'\n')
                    .map_or(buffer.len(), |offset| nominal + offset + 1)
            })
            .collect();
        let shares: Vec<Share<A>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..parts)
                .map(|part| {
                    let (start, limit) = (starts[part], starts.get(part + 1).copied());
                    let make = &make;
                    let base = *line + count_lines(&buffer[position..start]);
                    scope.spawn(move || fold_share(buffer, start, limit, at_eof, base, make(), visitor))
                })
                .collect();
            let first = fold_share(buffer, position, starts.get(1).copied(), at_eof, *line, make(), visitor);
            std::iter::once(first)
                .chain(
                    handles
                        .into_iter()
                        .map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))),
                )
                .collect()
        });
        let mut shares = shares.into_iter();
        let mut previous = shares.next().expect("the first share");
        loop {
            let Some(next) = shares.next() else {
                break;
            };
            if previous.stop == next.began && !previous.incomplete {
                merge(std::mem::replace(&mut previous.accumulator, next.accumulator));
                previous = Share { accumulator: previous.accumulator, ..next };
                continue;
            }
            // The share before did not end where this one began: read on from where it ended.
            let Share { accumulator, stop, line: stop_line, .. } = previous;
            previous = fold_share(buffer, stop, None, at_eof, stop_line, accumulator, visitor);
            break;
        }
        *line = previous.line;
        let stop = previous.stop;
        merge(previous.accumulator);
        (stop, true)
    })
}

/// What one thread made of its share of a block.
struct Share<A> {
    accumulator: A,
    /// Where its first record began (after blank lines).
    began: usize,
    /// Where the first record it did not take begins: at or after its limit, or where a
    /// record runs past the end of the block (`incomplete`).
    stop: usize,
    incomplete: bool,
    /// The line at `stop`.
    line: usize,
}

/// Folds the records that begin at `start` or later and before `limit` (all, without one).
fn fold_share<A>(
    buffer: &[u8],
    start: usize,
    limit: Option<usize>,
    at_eof: bool,
    line: usize,
    mut accumulator: A,
    (quick, visit): (&impl Fn(&mut A, Unsplit<'_>) -> Option<usize>, &impl Fn(&mut A, Record<'_>)),
) -> Share<A> {
    let mut record = RecordBuffer::default();
    let mut line = line;
    let began = skip_blank_lines(buffer, start, &mut line);
    let checked = utf8_prefix(buffer, began, limit.unwrap_or(buffer.len()).max(began));
    let mut position = began;
    let mut incomplete = false;
    loop {
        let mut blank_lines = line;
        let record_start = skip_blank_lines(buffer, position, &mut blank_lines);
        if record_start == buffer.len() || limit.is_some_and(|limit| record_start >= limit) {
            if record_start < buffer.len() || at_eof {
                position = record_start;
                line = blank_lines;
            }
            break;
        }
        let mut quick = |accumulator: &mut A, unsplit: Unsplit<'_>| quick(accumulator, unsplit);
        if let Some(taken) = offer(buffer, checked, record_start, blank_lines, &mut accumulator, &mut quick) {
            (position, line) = taken;
            continue;
        }
        let mut after = blank_lines;
        match read_record(buffer, record_start, at_eof, &mut record, &mut after) {
            Some(next) => {
                position = next;
                line = after;
                visit(&mut accumulator, Record { record: &record, block: buffer, checked });
            }
            None => {
                position = record_start;
                line = blank_lines;
                incomplete = true;
                break;
            }
        }
    }
    Share { accumulator, began, stop: position, incomplete, line }
}

/// `buffer[start..end]` checked as UTF-8 at once, up to its first byte that is not (a record
/// lying in it then needs no check of its own; one beyond it is checked by itself): where it
/// starts, and its text.
fn utf8_prefix(buffer: &[u8], start: usize, end: usize) -> Option<(usize, &str)> {
    let bytes = &buffer[start..end];
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => std::str::from_utf8(&bytes[..error.valid_up_to()]).ok()?,
    };
    Some((start, text))
}

/// Feeds `reader` to `take` block by block: `take(buffer, position, at_eof, line)` reads
/// records from `position` and says how far it got and whether to read on. What it leaves
/// (a record running past the end of the block) starts the next block.
fn read_blocks(
    mut reader: impl Read,
    block: usize,
    mut take: impl FnMut(&[u8], usize, bool, &mut usize) -> (usize, bool),
) -> std::io::Result<()> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut line = 1;
    let mut at_eof = false;
    let mut first_block = true;
    while !at_eof {
        // Add a block after what the last one left over (grown as needed, never zero-filled
        // ahead: most schedule files are far smaller than a block).
        let wanted = block.max(buffer.len()).max(4);
        // Room for the whole block first: `read_to_end` into a full buffer probes with tiny
        // reads before it grows it (a dozen system calls for a 60 KB `booking.csv`).
        buffer.reserve(wanted);
        let read = (&mut reader).take(wanted as u64).read_to_end(&mut buffer)?;
        at_eof = read < wanted;
        let mut position = 0;
        if first_block {
            first_block = false;
            // A byte-order mark, as editors on Windows write one, is not part of the header.
            if buffer.starts_with(b"\xEF\xBB\xBF") {
                position = 3;
            }
        }
        let (stop, go_on) = take(&buffer, position, at_eof, &mut line);
        if !go_on {
            return Ok(());
        }
        buffer.drain(..stop);
    }
    Ok(())
}

/// Skips blank lines from `position`; returns where the next record begins.
fn skip_blank_lines(buffer: &[u8], mut position: usize, line: &mut usize) -> usize {
    while position < buffer.len() && matches!(buffer[position], b'\n' | b'\r') {
        if buffer[position] == b'\n' {
            *line += 1;
        }
        position += 1;
    }
    position
}

/// The record at `position` after any blank lines, as [`read_record`]; `line` moves past the
/// blank lines only when a record is read (or the input has ended).
fn read_next(
    buffer: &[u8],
    position: usize,
    at_eof: bool,
    record: &mut RecordBuffer,
    line: &mut usize,
) -> Option<usize> {
    let mut lines = *line;
    let start = skip_blank_lines(buffer, position, &mut lines);
    if start == buffer.len() {
        if at_eof {
            *line = lines;
        }
        return None;
    }
    let next = read_record(buffer, start, at_eof, record, &mut lines)?;
    *line = lines;
    Some(next)
}

/// Reads the record that begins at `position` (not a blank line): `Some(next position)` with
/// `record` filled and `line` moved on, or `None` when it does not end within `buffer` and
/// more input may follow.
fn read_record(
    buffer: &[u8],
    position: usize,
    at_eof: bool,
    record: &mut RecordBuffer,
    line: &mut usize,
) -> Option<usize> {
    let length = buffer.len();
    let mut lines = *line;
    record.clear(position, lines);
    if let Some(end) = read_plain_record(buffer, position, &mut record.spans) {
        record.end = end;
        if buffer[end] == b'\n' {
            *line += 1;
        }
        return Some(end + 1);
    }
    record.clear(position, lines);
    let mut field = Pending::default();
    let mut at = position;
    loop {
        // The start of a field.
        if at == length {
            if !at_eof {
                return None;
            }
            field.end_field(record);
            break;
        }
        match buffer[at] {
            b',' => {
                field.end_field(record);
                at += 1;
                continue;
            }
            b'\n' | b'\r' => {
                field.end_field(record);
                break;
            }
            b'"' => {
                at += 1;
                // Inside quotes, up to the closing quote; `""` is a quote.
                loop {
                    let Some(offset) = quote(&buffer[at..]) else {
                        if !at_eof {
                            return None;
                        }
                        lines += count_lines(&buffer[at..]);
                        field.add(record, buffer, at, length);
                        at = length;
                        break;
                    };
                    lines += count_lines(&buffer[at..at + offset]);
                    field.add(record, buffer, at, at + offset);
                    at += offset + 1;
                    if at == length && !at_eof {
                        return None;
                    }
                    if buffer.get(at) == Some(&b'"') {
                        field.add(record, buffer, at, at + 1);
                        at += 1;
                        continue;
                    }
                    break;
                }
                // After the closing quote: the field ends, or what follows is taken as it is.
                match buffer.get(at) {
                    None => {
                        field.end_field(record);
                        break;
                    }
                    Some(b',') => {
                        field.end_field(record);
                        at += 1;
                        continue;
                    }
                    Some(b'\n' | b'\r') => {
                        field.end_field(record);
                        break;
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
        // Unquoted (or after a closing quote): up to the next comma or line end; a quote here
        // is an ordinary character.
        let run = field_end(&buffer[at..]);
        match run {
            Some(offset) => {
                field.add(record, buffer, at, at + offset);
                at += offset;
                field.end_field(record);
                if buffer[at] == b',' {
                    at += 1;
                    continue;
                }
                break;
            }
            None => {
                if !at_eof {
                    return None;
                }
                field.add(record, buffer, at, length);
                field.end_field(record);
                at = length;
                break;
            }
        }
    }
    record.end = at;
    // The line end (`\r\n` leaves its `\n` to be skipped as a blank line).
    if at < length {
        if buffer[at] == b'\n' {
            lines += 1;
        }
        at += 1;
    }
    *line = lines;
    Some(at)
}

/// Reads the record at `position` the quick way when it has the shape nearly every row has: on
/// one line, its fields plain or quoted without a quote or line break inside (the GPU list
/// `"[0, 1]"`), each ending at a comma or the line end. Returns where its line end lies, with
/// the fields' spans added to `spans`; `None` leaves the record to the general reader (also
/// one that ends within 8 bytes of the end of `buffer`, or does not end in it), with `spans`
/// to be cleared. Kept out of line, so that its loop keeps what it needs in registers.
#[inline(never)]
fn read_plain_record(buffer: &[u8], position: usize, spans: &mut Vec<Span>) -> Option<usize> {
    spans.reserve(16);
    let mut field_start = position;
    // The 8 bytes looked at next.
    let mut at = position;
    'words: loop {
        let word = u64::from_le_bytes(buffer.get(at..at + 8)?.try_into().ok()?);
        let mut marks = csv_bytes(word);
        while marks != 0 {
            let offset = at + (marks.trailing_zeros() / 8) as usize;
            marks &= marks - 1;
            let byte = buffer[offset];
            if byte == b'"' {
                if offset != field_start {
                    // Inside an unquoted field a quote is an ordinary character.
                    continue;
                }
                let text = offset + 1;
                let close = text + quote(&buffer[text..])?;
                let after = *buffer.get(close + 1)?;
                if buffer[text..close].iter().any(|byte| matches!(byte, b'\n' | b'\r'))
                    || !matches!(after, b',' | b'\n' | b'\r')
                {
                    // A line break or `""` inside, or text after the closing quote.
                    return None;
                }
                spans.push(Span { start: text, end: close, own: false });
                if after != b',' {
                    return Some(close + 1);
                }
                field_start = close + 2;
                at = field_start;
                continue 'words;
            }
            if matches!(byte, b',' | b'\n' | b'\r') {
                spans.push(Span { start: field_start, end: offset, own: false });
                if byte != b',' {
                    return Some(offset);
                }
                field_start = offset + 1;
            }
            // The other bytes marked are ordinary characters.
        }
        at += 8;
    }
}

/// The high bit of each byte of `word` that may be `,`, `"`, `\n` or `\r`: every byte below
/// `-` (0x2D), and some that are not ASCII; the caller looks at each. One test for all four,
/// where a test per byte value cost more than the rest of reading a row: a byte with its high
/// bit set, less 0x2D, keeps it only if the byte was 0x2D or more, and no borrow crosses into
/// the next byte.
#[inline(always)]
fn csv_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    !((word | HIGHS) - ONES * u64::from(b'-')) & HIGHS
}

/// Where the first byte that ends an unquoted field (`,`, `\n` or `\r`) lies.
#[inline(always)]
fn field_end(bytes: &[u8]) -> Option<usize> {
    first_of(
        bytes,
        |word| has_byte(word, b',') | has_byte(word, b'\n') | has_byte(word, b'\r'),
        |byte| matches!(byte, b',' | b'\n' | b'\r'),
    )
}

/// Where the first `"` lies.
#[inline(always)]
fn quote(bytes: &[u8]) -> Option<usize> {
    first_of(bytes, |word| has_byte(word, b'"'), |byte| byte == b'"')
}

/// The first byte of `bytes` that `wanted` marks, looking at 8 bytes at a time: `in_word`
/// sets the high bit of each marked byte of a word (and possibly of bytes after the first
/// marked one, which the lowest set bit ignores).
#[inline(always)]
fn first_of(bytes: &[u8], in_word: impl Fn(u64) -> u64, wanted: impl Fn(u8) -> bool) -> Option<usize> {
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let marks = in_word(word);
        if marks != 0 {
            return Some(at + (marks.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..].iter().position(|byte| wanted(*byte)).map(|offset| at + offset)
}

/// The high bit of each byte of `word` that equals `byte` (exact for the lowest such byte).
#[inline(always)]
fn has_byte(word: u64, byte: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zeroed = word ^ (ONES * u64::from(byte));
    zeroed.wrapping_sub(ONES) & !zeroed & HIGHS
}

fn count_lines(bytes: &[u8]) -> usize {
    // Summed in bytes, 64 at a time, which the compiler turns into vector code.
    let mut chunks = bytes.chunks_exact(64);
    let mut count = 0;
    for chunk in &mut chunks {
        count += usize::from(chunk.iter().fold(0u8, |count, byte| count + u8::from(*byte == b'\n')));
    }
    count + chunks.remainder().iter().filter(|byte| **byte == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the tests look at it: its line and its fields.
    type Owned = (usize, Vec<Vec<u8>>);

    fn scan(bytes: &[u8]) -> Vec<(usize, Vec<Vec<u8>>)> {
        scan_in_blocks(bytes, BLOCK)
    }

    fn owned(record: Record<'_>) -> (usize, Vec<Vec<u8>>) {
        let fields = record
            .record
            .spans
            .iter()
            .map(|span| {
                let bytes = if span.own { &record.record.own } else { record.block };
                bytes[span.start..span.end].to_vec()
            })
            .collect();
        (record.line(), fields)
    }

    fn scan_in_blocks(bytes: &[u8], block: usize) -> Vec<(usize, Vec<Vec<u8>>)> {
        let mut records = Vec::new();
        let mut record = RecordBuffer::default();
        read_blocks(bytes, block, |buffer, mut position, at_eof, line| {
            while let Some(next) = read_next(buffer, position, at_eof, &mut record, line) {
                position = next;
                records.push(owned(Record { record: &record, block: buffer, checked: None }));
            }
            (position, true)
        })
        .unwrap();
        records
    }

    /// A quick reader for the tests (see [`Unsplit`]): takes a record that lies on one line
    /// without a quote when its first byte is `a`, split at its commas; leaves the others.
    fn quick_split(unsplit: Unsplit<'_>) -> Option<(Owned, usize)> {
        let rest = &unsplit.text.as_bytes()[unsplit.start..];
        if rest.first() != Some(&b'a') {
            return None;
        }
        let length = rest.iter().position(|byte| matches!(byte, b'\n' | b'\r'))?;
        if rest[..length].contains(&b'"') {
            return None;
        }
        let fields = rest[..length].split(|byte| *byte == b',').map(<[u8]>::to_vec).collect();
        Some(((unsplit.line, fields), unsplit.start + length))
    }

    /// Every record as `for_each_record` gives them, those [`quick_split`] takes included.
    fn scan_with_quick_reader(bytes: &[u8]) -> Vec<(usize, Vec<Vec<u8>>)> {
        let mut records = Vec::new();
        for_each_record(
            bytes,
            &mut records,
            |records, unsplit| {
                let (record, end) = quick_split(unsplit)?;
                records.push(record);
                Some(end)
            },
            |records, record| {
                records.push(owned(record));
                true
            },
        )
        .unwrap();
        records
    }

    /// The header, then every record, as `fold_records` gives them with `parts` threads (with
    /// [`quick_split`] as the quick reader, or none).
    fn fold_in_blocks(bytes: &[u8], block: usize, parts: usize, quick: bool) -> Vec<(usize, Vec<Vec<u8>>)> {
        let mut records = Vec::new();
        let mut header = None;
        fold_records_in_blocks(
            bytes,
            block,
            parts,
            |record| {
                header = Some(owned(record));
                true
            },
            Vec::new,
            (
                |accumulator: &mut Vec<Owned>, unsplit| {
                    let (record, end) = quick_split(unsplit).filter(|_| quick)?;
                    accumulator.push(record);
                    Some(end)
                },
                |accumulator: &mut Vec<Owned>, record| accumulator.push(owned(record)),
            ),
            |accumulator| records.extend(accumulator),
        )
        .unwrap();
        header.into_iter().chain(records).collect()
    }

    fn with_csv_crate(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
        reader.byte_records().map(|record| record.unwrap().iter().map(<[u8]>::to_vec).collect()).collect()
    }

    #[test]
    fn quoting_line_ends_and_blank_lines_read_as_the_csv_crate_reads_them() {
        let samples: [&[u8]; 12] = [
            b"a,b\nc,d\n",
            b"a,b\r\nc,\"d,\"\"e\"\"\"\r\n",
            b"\n\na,b\n\n\nc\n",
            b"\"multi\nline\",x\ny\n",
            b"ab\"c,d\n",
            b"\"ab\"cd,e\n",
            b"\"unclosed,a\nb",
            b"a,b,\n,\n",
            b"last,row",
            b"a\rb\r\rc",
            b"\"\"\n\"\"\"\"\n",
            b"",
        ];
        for sample in samples {
            let ours: Vec<Vec<Vec<u8>>> = scan(sample).into_iter().map(|(_, fields)| fields).collect();
            assert_eq!(ours, with_csv_crate(sample), "{:?}", String::from_utf8_lossy(sample));
        }
    }

    proptest::proptest! {
        /// Any bytes, read in blocks of any size, give the records the `csv` crate gives.
        #[test]
        fn any_bytes_read_as_the_csv_crate_reads_them(
            bytes in proptest::collection::vec(proptest::sample::select(b"a,\"\n\r x".to_vec()), 0..80),
            block in 1usize..12,
        ) {
            let ours: Vec<Vec<Vec<u8>>> = scan_in_blocks(&bytes, block).into_iter().map(|(_, fields)| fields).collect();
            proptest::prop_assert_eq!(ours, with_csv_crate(&bytes), "{:?}", String::from_utf8_lossy(&bytes));
            // Records taken the quick way are where, and what, the general way finds.
            proptest::prop_assert_eq!(scan_with_quick_reader(&bytes), scan(&bytes), "{:?}", String::from_utf8_lossy(&bytes));
        }

        /// Shared among threads, the records and their lines are those read in order.
        #[test]
        fn records_shared_among_threads_are_those_read_in_order(
            bytes in proptest::collection::vec(proptest::sample::select(b"a,\"\n\r x".to_vec()), 0..200),
            block in 1usize..40,
            parts in 1usize..5,
        ) {
            let in_order = scan_in_blocks(&bytes, block);
            for quick in [false, true] {
                proptest::prop_assert_eq!(&fold_in_blocks(&bytes, block, parts, quick), &in_order, "{:?}", String::from_utf8_lossy(&bytes));
            }
        }
    }

    /// A field as written: plain (a quote inside it, never first, is an ordinary character)
    /// or quoted (with `""` for a quote, and commas and line breaks inside); and its text.
    fn any_field() -> impl proptest::strategy::Strategy<Value = (String, String)> {
        use proptest::prelude::*;
        let plain = "[a-z0-9 .:\\[\\]-]{0,12}[a-z\"]{0,2}".prop_map(|text| {
            let written = if text.starts_with('"') { format!("x{text}") } else { text };
            (written.clone(), written)
        });
        let quoted =
            "[a-z0-9 ,\"\n\r\\[\\]]{0,14}".prop_map(|text| (format!("\"{}\"", text.replace('"', "\"\"")), text));
        prop_oneof![4 => plain, 1 => quoted]
    }

    proptest::proptest! {
        /// Rows of any width, with long plain and quoted fields, any line ends and blank lines
        /// between them: every record has its fields and the line it starts on, read in one
        /// block (where most are read the quick way) and shared among threads.
        #[test]
        fn long_rows_read_with_their_fields_and_lines(
            rows in proptest::collection::vec(
                (proptest::collection::vec(any_field(), 1..12), proptest::sample::select(vec!["\n", "\r\n", "\r"]), 0usize..3),
                0..40,
            ),
            last_line_end in proptest::bool::ANY,
        ) {
            let mut text = String::new();
            let mut expected = Vec::new();
            let count = rows.len();
            for (index, (mut fields, line_end, blank_lines)) in rows.into_iter().enumerate() {
                // A lone empty field would be a blank line.
                if fields.len() == 1 && fields[0].0.is_empty() {
                    fields[0] = ("x".into(), "x".into());
                }
                text.push_str(&"\n".repeat(blank_lines));
                let line = 1 + text.bytes().filter(|byte| *byte == b'\n').count();
                let written: Vec<&str> = fields.iter().map(|(written, _)| written.as_str()).collect();
                text.push_str(&written.join(","));
                if index + 1 < count || last_line_end {
                    text.push_str(line_end);
                }
                let read: Vec<Vec<u8>> = fields.into_iter().map(|(_, read)| read.into_bytes()).collect();
                expected.push((line, read));
            }
            proptest::prop_assert_eq!(&scan(text.as_bytes()), &expected, "{:?}", text);
            proptest::prop_assert_eq!(&scan_with_quick_reader(text.as_bytes()), &expected, "{:?}", text);
            for quick in [false, true] {
                let shared = fold_in_blocks(text.as_bytes(), BLOCK, 3, quick);
                proptest::prop_assert_eq!(&shared, &expected, "{:?}", text);
            }
        }
    }

    #[test]
    fn each_record_has_the_line_it_starts_on() {
        let lines: Vec<usize> = scan(b"h\n\na\r\nb\n\"x\ny\"\nc\n").into_iter().map(|(line, _)| line).collect();
        assert_eq!(lines, [1, 3, 4, 5, 7]);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_field() {
        assert_eq!(scan(b"\xEF\xBB\xBFstart,end\n")[0].1[0], b"start");
    }

    #[test]
    fn records_across_block_boundaries_are_whole() {
        // Rows that straddle every block boundary, quoted and not.
        let mut text = Vec::new();
        let mut expected = 0;
        while text.len() < 3 * BLOCK {
            text.extend_from_slice(format!("{expected},\"quoted, {expected}\nsecond line\",tail\n").as_bytes());
            expected += 1;
        }
        let records = scan(&text);
        assert_eq!(records.len(), expected);
        for (index, (line, fields)) in records.iter().enumerate() {
            assert_eq!(*line, 1 + 2 * index);
            assert_eq!(fields[0], index.to_string().as_bytes());
            assert_eq!(fields[1], format!("quoted, {index}\nsecond line").as_bytes());
        }
    }
}
