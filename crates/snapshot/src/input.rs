//! A buffered byte source that knows where it is, scans flat arrays of unsigned integers fast,
//! and lends itself to `serde_json` for everything else.
//!
//! Nearly all of a snapshot's bytes are the flat integer arrays `nodes` and `edges`. Through
//! `serde_json`'s reader-based deserializer (which pulls one byte at a time through an
//! `io::Read` and tracks lines and columns), merely skipping a 442 MB snapshot with `IgnoredAny`
//! takes 3.3 s on the target machine, and reading two 400 MB snapshots exceeded the 10 s budget.
//! A loop over the buffered bytes that only knows digits, commas, whitespace and brackets does
//! the same arrays about 5 times faster. Everything with structure or escapes (the `snapshot`
//! header, `strings`, unknown keys) still goes through `serde_json`, reading from this source via
//! its [`Read`] impl, so position tracking covers both.

use std::io::{self, BufRead, Read};

/// Why the input could not be read, with the position where it happened.
pub(crate) enum InputError {
    Io(io::Error),
    /// Not JSON at (line, column).
    Syntax(usize, usize),
    /// The input ended at (line, column).
    Eof(usize, usize),
    /// JSON, but the wrong thing: the reason.
    Shape(String),
}

/// Buffered input with 1-based line and column counting.
pub(crate) struct Input<R> {
    inner: R,
    line: usize,
    /// Bytes consumed on the current line.
    column: usize,
    /// Bytes consumed in all.
    consumed: u64,
}

impl<R: BufRead> Input<R> {
    pub(crate) fn new(inner: R) -> Input<R> {
        Input {
            inner,
            line: 1,
            column: 0,
            consumed: 0,
        }
    }

    /// Bytes consumed so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next byte, not consumed; `None` at the end.
    pub(crate) fn peek(&mut self) -> Result<Option<u8>, InputError> {
        let buf = self.inner.fill_buf().map_err(InputError::Io)?;
        Ok(buf.first().copied())
    }

    /// Consumes one byte (which must have been peeked).
    pub(crate) fn bump(&mut self, byte: u8) {
        self.advance(byte);
        self.inner.consume(1);
    }

    fn advance(&mut self, byte: u8) {
        self.consumed += 1;
        if byte == b'\n' {
            self.line += 1;
            self.column = 0;
        } else {
            self.column += 1;
        }
    }

    /// Skips JSON whitespace; returns the next byte, not consumed.
    pub(crate) fn skip_whitespace(&mut self) -> Result<Option<u8>, InputError> {
        loop {
            match self.peek()? {
                Some(b @ (b' ' | b'\n' | b'\r' | b'\t')) => self.bump(b),
                other => return Ok(other),
            }
        }
    }

    /// Error for an unexpected byte that was peeked, not consumed.
    pub(crate) fn syntax(&self) -> InputError {
        InputError::Syntax(self.line, self.column + 1)
    }

    /// Error for running out of input here.
    pub(crate) fn eof(&self) -> InputError {
        InputError::Eof(self.line, self.column)
    }

    /// Consumes `expected` after optional whitespace.
    pub(crate) fn expect(&mut self, expected: u8) -> Result<(), InputError> {
        match self.skip_whitespace()? {
            Some(b) if b == expected => {
                self.bump(b);
                Ok(())
            }
            Some(_) => Err(self.syntax()),
            None => Err(self.eof()),
        }
    }

    /// Reads a JSON array of unsigned integers, handing them to `sink` in order, a batch at a
    /// time. `what` names the array in errors.
    pub(crate) fn integers(
        &mut self,
        what: &str,
        mut sink: impl FnMut(&[u64]) -> Result<(), String>,
    ) -> Result<(), InputError> {
        const BATCH: usize = 4096;
        let mut batch = [0u64; BATCH];
        let mut batched = 0;
        // Adds a number to the batch, handing the batch over when full.
        let mut emit = |value: u64, batch: &mut [u64; BATCH], batched: &mut usize| {
            batch[*batched] = value;
            *batched += 1;
            if *batched == BATCH {
                *batched = 0;
                sink(&batch[..]).map_err(InputError::Shape)
            } else {
                Ok(())
            }
        };
        self.expect(b'[')?;
        #[derive(Clone, Copy, PartialEq)]
        enum At {
            /// After `[`: a number or `]`.
            Start,
            /// After a number: `,` or `]`.
            AfterNumber,
            /// After `,`: a number.
            AfterComma,
        }
        let mut at = At::Start;
        // A number cut by the end of the buffer: its value and digit count so far.
        let mut pending: Option<(u64, u32)> = None;
        loop {
            let buf = self.inner.fill_buf().map_err(InputError::Io)?;
            if buf.is_empty() {
                return Err(InputError::Eof(self.line, self.column));
            }
            let len = buf.len();
            let mut i = 0;
            // Column bookkeeping: `line_start` is where the current line began, relative to
            // this buffer (negative: in an earlier one).
            let mut line = self.line;
            let mut line_start = -(self.column as isize);
            let column_at = |i: usize, line_start: isize| (i as isize - line_start) as usize + 1;
            let mut outcome: Option<Result<(), InputError>> = None;
            while i < len {
                let b = buf[i];
                if b.is_ascii_digit() {
                    if at == At::AfterNumber && pending.is_none() {
                        outcome = Some(Err(InputError::Syntax(line, column_at(i, line_start))));
                        break;
                    }
                    let (mut value, mut digits) = pending.take().unwrap_or((0, 0));
                    while i < len && buf[i].is_ascii_digit() {
                        let digit = u64::from(buf[i] - b'0');
                        digits += 1;
                        value = if digits <= 19 {
                            value * 10 + digit
                        } else {
                            match value.checked_mul(10).and_then(|v| v.checked_add(digit)) {
                                Some(v) => v,
                                None => {
                                    outcome = Some(Err(InputError::Shape(format!(
                                        "\"{what}\" holds a number beyond 64 bits"
                                    ))));
                                    break;
                                }
                            }
                        };
                        i += 1;
                    }
                    if outcome.is_some() {
                        break;
                    }
                    if i == len {
                        // The number may go on in the next buffer.
                        pending = Some((value, digits));
                        break;
                    }
                    if let Err(e) = emit(value, &mut batch, &mut batched) {
                        outcome = Some(Err(e));
                        break;
                    }
                    at = At::AfterNumber;
                    continue;
                }
                if let Some((value, _)) = pending.take() {
                    if let Err(e) = emit(value, &mut batch, &mut batched) {
                        outcome = Some(Err(e));
                        break;
                    }
                    at = At::AfterNumber;
                }
                match b {
                    b',' if at == At::AfterNumber => at = At::AfterComma,
                    b']' if at == At::AfterNumber || at == At::Start => {
                        i += 1;
                        outcome = Some(Ok(()));
                        break;
                    }
                    b'\n' => {
                        line += 1;
                        line_start = i as isize + 1;
                    }
                    b' ' | b'\r' | b'\t' => {}
                    b'-' | b'.' | b'e' | b'E' | b'"' | b'{' | b'[' | b't' | b'f' | b'n' => {
                        outcome = Some(Err(InputError::Shape(format!(
                            "\"{what}\" holds something other than unsigned integers"
                        ))));
                        break;
                    }
                    _ => {
                        outcome = Some(Err(InputError::Syntax(line, column_at(i, line_start))));
                        break;
                    }
                }
                i += 1;
            }
            self.inner.consume(i);
            self.consumed += i as u64;
            self.line = line;
            self.column = (i as isize - line_start) as usize;
            if let Some(outcome) = outcome {
                outcome?;
                return sink(&batch[..batched]).map_err(InputError::Shape);
            }
        }
    }
}

/// `serde_json` reads through this (one byte at a time, as its reader-based deserializer does),
/// so lines and columns stay counted and nothing is read past the value it parses.
impl<R: BufRead> Read for Input<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buf = self.inner.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        for &b in &out[..n] {
            self.advance(b);
        }
        self.inner.consume(n);
        Ok(n)
    }
}

impl<R> Input<R> {
    /// Turns an error from a `serde_json` deserializer that read from this input into an
    /// [`InputError`] at this input's position. `failure` is the reason a visitor recorded, if
    /// it rejected the data itself.
    pub(crate) fn serde_error(&self, e: serde_json::Error, failure: Option<String>) -> InputError {
        use serde_json::error::Category;
        match e.classify() {
            Category::Io => InputError::Io(e.into()),
            Category::Syntax => InputError::Syntax(self.line, self.column),
            Category::Eof => InputError::Eof(self.line, self.column),
            Category::Data => InputError::Shape(failure.unwrap_or_else(|| {
                // serde_json appends its own (value-relative) position; ours is the file's.
                let text = e.to_string();
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                text.strip_suffix(&suffix)
                    .map_or(text.clone(), str::to_owned)
            })),
        }
    }
}
