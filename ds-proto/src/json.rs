//! JSON mode (PROTOCOL.md 9.1): message framing for appends and splitting of read bodies.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::value::RawValue;

/// Checks that `body` is one JSON value, in UTF-8 (RFC 8259 8.1): the bytes inside strings
/// are checked too, so whatever passes can be split back by [`split_array`].
///
/// It accepts exactly what `serde_json::from_str::<serde::de::IgnoredAny>` accepts after a
/// UTF-8 check (the tests compare the two): one value with optional whitespace (space, tab,
/// LF, CR) around it, strings without raw control characters and with valid escapes (a `\u`
/// escape may be a lone surrogate, as serde_json ignores it), the strict number grammar with
/// any exponent (`1e400` passes), and any nesting depth (serde_json skips ignored values with
/// a heap stack, not recursion). It never recurses, and allocates only beyond 63 levels of
/// nesting or to report an error.
///
/// It is hand-written for speed (the producer calls it on every JSON append): strings are
/// skipped a word or 32 bytes at a time, and UTF-8 is checked only from the first non-ASCII
/// byte of a string on (see `string`), so ASCII input is read once.
///
/// # Errors
///
/// [`JsonError::NotUtf8`] when `body` is not UTF-8, otherwise [`JsonError::Syntax`] with the
/// reason and the byte where the grammar fails.
pub fn validate(body: &[u8]) -> Result<(), JsonError> {
    match scan(body) {
        Ok(()) => Ok(()),
        Err(e) => Err(e.error(body)),
    }
}

/// Why a JSON body or message was refused. Its `Display` is the message the crate's
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) errors carry, and it converts
/// into that `String`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The body is not UTF-8 (RFC 8259 8.1); the error tells up to where it is.
    #[error("invalid JSON: not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    /// The body is not one JSON value: the grammar fails at byte `at` (`at` is the body's
    /// length when the input ended too early).
    #[error("invalid JSON: {reason} at byte {at}{}", if *.end { " (end of input)" } else { "" })]
    Syntax {
        /// What the grammar expected.
        reason: Syntax,
        /// The byte offset where it failed.
        at: usize,
        /// The input ended there.
        end: bool,
    },
    /// An empty JSON array as one append stores nothing (PROTOCOL.md 9.1.3).
    #[error("an empty JSON array appends nothing (PROTOCOL.md 9.1.3)")]
    EmptyArray,
    /// A batch of no items stores nothing (PROTOCOL.md 9.1.3).
    #[error("an empty JSON batch appends nothing (PROTOCOL.md 9.1.3)")]
    EmptyBatch,
    /// A JSON-mode read body is not one JSON array (PROTOCOL.md 9.1.5).
    #[error("JSON stream body is not a JSON array: {message}")]
    NotAnArray {
        /// The line (1-based) where parsing stopped, 0 when the array is complete but the
        /// body is not (serde_json's position).
        line: usize,
        /// The column (1-based) where parsing stopped.
        column: usize,
        /// serde_json's description.
        message: String,
    },
}

impl From<JsonError> for String {
    fn from(e: JsonError) -> String {
        e.to_string()
    }
}

/// Where the JSON grammar failed ([`JsonError::Syntax`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Syntax {
    /// A string without its closing quote.
    #[error("unterminated string")]
    UnterminatedString,
    /// A raw control character (below U+0020) inside a string.
    #[error("control character in string")]
    ControlCharacter,
    /// `\u` not followed by four hex digits.
    #[error("invalid \\u escape")]
    InvalidUnicodeEscape,
    /// A backslash followed by a character that starts no escape.
    #[error("invalid escape")]
    InvalidEscape,
    /// Bytes inside a string that are not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// A number without a digit where one must be.
    #[error("expected a digit")]
    ExpectedDigit,
    /// A number's `.` without a digit after it.
    #[error("expected a digit after '.'")]
    ExpectedFractionDigit,
    /// A number's exponent without a digit.
    #[error("expected a digit in the exponent")]
    ExpectedExponentDigit,
    /// No value where one must be.
    #[error("expected a value")]
    ExpectedValue,
    /// An object member that does not start with a string key.
    #[error("expected a string key")]
    ExpectedKey,
    /// An object key not followed by `:`.
    #[error("expected ':'")]
    ExpectedColon,
    /// An object member not followed by `,` or `}`.
    #[error("expected ',' or '}}'")]
    ExpectedCommaOrBrace,
    /// An array element not followed by `,` or `]`.
    #[error("expected ',' or ']'")]
    ExpectedCommaOrBracket,
    /// Something after the value.
    #[error("trailing characters")]
    TrailingCharacters,
}

/// Where and why [`scan`] stopped.
#[derive(Debug)]
struct Invalid {
    what: Syntax,
    at: usize,
}

impl Invalid {
    /// The error: a UTF-8 error first (as `std::str::from_utf8` tells it), whatever the
    /// grammar error, since [`scan`] checks UTF-8 lazily.
    #[cold]
    fn error(&self, body: &[u8]) -> JsonError {
        if let Err(e) = std::str::from_utf8(body) {
            return JsonError::NotUtf8(e);
        }
        JsonError::Syntax {
            reason: self.what,
            at: self.at,
            end: self.at >= body.len(),
        }
    }
}

#[cold]
fn invalid(what: Syntax, at: usize) -> Invalid {
    Invalid { what, at }
}

/// The byte at `i`, or 0 past the end. The grammar refuses a 0 byte wherever it looks at one
/// (outside strings it starts no token; inside, it is a control character), so the end of the
/// input needs no test of its own.
#[inline(always)]
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// Whether `c` is JSON whitespace: space, tab, LF, CR (not form feed, not NBSP).
#[inline(always)]
fn is_ws(c: u8) -> bool {
    const WS: u64 = 1 << b' ' | 1 << b'\t' | 1 << b'\n' | 1 << b'\r';
    c <= b' ' && (WS >> c) & 1 == 1
}

const ONES: u64 = u64::MAX / 255;
const HIGHS: u64 = ONES * 0x80;

/// The eight bytes at `i` as a little-endian word, if there are eight.
#[inline(always)]
fn word(b: &[u8], i: usize) -> Option<u64> {
    let bytes = b.get(i..i.wrapping_add(8))?;
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_le_bytes)
}

/// Whether `c` ends a run of plain string content: `"`, `\`, a control character, or, while
/// `high` is [`HIGHS`] (UTF-8 unchecked, see [`string`]), a non-ASCII byte.
#[inline(always)]
fn is_special(c: u8, high: u64) -> bool {
    c == b'"' || c == b'\\' || c < 0x20 || (c >= 0x80 && high != 0)
}

/// The special bytes (see [`is_special`]) of the little-endian word `v`, as their high bits.
/// The subtractions can borrow into a more significant byte, so only the lowest set bit is
/// exact (the first special byte), which is the one the caller uses.
#[inline(always)]
fn specials(v: u64, high: u64) -> u64 {
    let quote = v ^ (ONES * u64::from(b'"'));
    let backslash = v ^ (ONES * u64::from(b'\\'));
    let zero_quote = quote.wrapping_sub(ONES) & !quote;
    let zero_backslash = backslash.wrapping_sub(ONES) & !backslash;
    let control = v.wrapping_sub(ONES * 0x20) & !v;
    (zero_quote | zero_backslash | control | (v & high)) & HIGHS
}

/// Whether one of the 32 bytes of `chunk` is special (see [`is_special`]; `ascii` is 0 while
/// UTF-8 is unchecked, 0xff after). Per byte, the minimum of `c ^ '"'`, `c ^ '\\'`,
/// `c - 0x1f` (saturating) and `!c & 0x80 | ascii` is 0 exactly when the byte is special; the
/// fold has no branch, so it compiles to a few vector instructions.
#[inline(always)]
fn chunk_has_special(chunk: &[u8; 32], ascii: u8) -> bool {
    chunk.iter().fold(false, |any, &c| {
        let s = (c ^ b'"')
            .min(c ^ b'\\')
            .min(c.saturating_sub(0x1f))
            .min((!c & 0x80) | ascii);
        any | (s == 0)
    })
}

/// The index of the first special byte (see [`is_special`]) at or after `i`, or the length.
/// One word first (keys mostly end in it), then [`skip_plain_long`].
#[inline(always)]
fn skip_plain(b: &[u8], i: usize, high: u64) -> usize {
    match word(b, i) {
        Some(v) => match specials(v, high) {
            0 => skip_plain_long(b, i + 8, high),
            m => i + (m.trailing_zeros() / 8) as usize,
        },
        None => skip_plain_tail(b, i, high),
    }
}

/// [`skip_plain`] past its first word: another word (strings between escapes are short), 32
/// bytes at a time while they are plain, then a word at a time (the special byte is within
/// four words then, or the input ends first), then byte by byte in the last seven.
#[inline(always)]
fn skip_plain_long(b: &[u8], mut i: usize, high: u64) -> usize {
    if let Some(v) = word(b, i) {
        let m = specials(v, high);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
        let ascii = if high != 0 { 0 } else { 0xff };
        while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<32>) {
            if chunk_has_special(chunk, ascii) {
                break;
            }
            i += 32;
        }
    }
    while let Some(v) = word(b, i) {
        let m = specials(v, high);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    skip_plain_tail(b, i, high)
}

/// [`skip_plain`] byte by byte, in the last seven bytes of the input.
#[inline(never)]
fn skip_plain_tail(b: &[u8], mut i: usize, high: u64) -> usize {
    while i < b.len() && !is_special(at(b, i), high) {
        i += 1;
    }
    i
}

/// Checks the string whose opening quote is at `i - 1`; returns the index after its closing
/// quote.
///
/// UTF-8 is checked lazily: outside strings the grammar refuses every non-ASCII byte, so the
/// input is UTF-8 if its strings are. While `*high` is [`HIGHS`], everything scanned so far
/// is ASCII; at the first non-ASCII byte (a character boundary, then), the rest of the input is
/// checked once with `std::str::from_utf8` and `*high` becomes 0.
#[inline(always)]
fn string(b: &[u8], mut i: usize, high: &mut u64) -> Result<usize, Invalid> {
    loop {
        i = skip_plain(b, i, *high);
        match at(b, i) {
            b'"' => return Ok(i + 1),
            b'\\' => match at(b, i + 1) {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                _ => i = unicode_escape(b, i)?,
            },
            0x80.. => i = check_utf8(b, i, high)?,
            _ if i >= b.len() => return Err(invalid(Syntax::UnterminatedString, i)),
            _ => return Err(invalid(Syntax::ControlCharacter, i)),
        }
    }
}

/// Checks the escape whose backslash is at `i` and that is not a one-character escape (`\"`,
/// `\n`, ...): `\u` and four hexadecimal digits (any code unit: serde_json does not check
/// surrogates when it ignores a value); returns the index after it.
#[inline(never)]
fn unicode_escape(b: &[u8], i: usize) -> Result<usize, Invalid> {
    match at(b, i + 1) {
        b'u' => match b.get(i + 2..i + 6) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(i + 6),
            _ => Err(invalid(Syntax::InvalidUnicodeEscape, i)),
        },
        _ => Err(invalid(Syntax::InvalidEscape, i)),
    }
}

/// At the first non-ASCII byte, `i`: checks the rest of the input once (see [`string`]);
/// returns the index after the byte.
#[cold]
#[inline(never)]
fn check_utf8(b: &[u8], i: usize, high: &mut u64) -> Result<usize, Invalid> {
    if *high != 0 && std::str::from_utf8(b.get(i..).unwrap_or_default()).is_err() {
        return Err(invalid(Syntax::NotUtf8, i));
    }
    *high = 0;
    Ok(i + 1)
}

/// Checks the number starting at `i` (a `-` or a digit); returns the index after it.
#[inline(always)]
fn number(b: &[u8], mut i: usize) -> Result<usize, Invalid> {
    let mut c = at(b, i);
    if c == b'-' {
        i += 1;
        c = at(b, i);
    }
    if c == b'0' {
        i += 1;
        c = at(b, i);
    } else if c.is_ascii_digit() {
        i += 1;
        c = at(b, i);
        while c.is_ascii_digit() {
            i += 1;
            c = at(b, i);
        }
    } else {
        return Err(invalid(Syntax::ExpectedDigit, i));
    }
    if c == b'.' || c | 0x20 == b'e' {
        return fraction_exponent(b, i);
    }
    Ok(i)
}

/// The rest of a number at `i`: `.` and digits, then `e` or `E`, a sign and digits.
#[inline(never)]
fn fraction_exponent(b: &[u8], mut i: usize) -> Result<usize, Invalid> {
    let digits = |mut i: usize| {
        while at(b, i).is_ascii_digit() {
            i += 1;
        }
        i
    };
    if at(b, i) == b'.' {
        let start = i + 1;
        i = digits(start);
        if i == start {
            return Err(invalid(Syntax::ExpectedFractionDigit, i));
        }
    }
    if at(b, i) | 0x20 == b'e' {
        i += 1;
        if let b'+' | b'-' = at(b, i) {
            i += 1;
        }
        let start = i;
        i = digits(start);
        if i == start {
            return Err(invalid(Syntax::ExpectedExponentDigit, i));
        }
    }
    Ok(i)
}

/// Checks `word` (`true`, `false`, `null`) at `i`; returns the index after it.
#[inline(always)]
fn literal(b: &[u8], i: usize, word: &'static [u8]) -> Result<usize, Invalid> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(invalid(Syntax::ExpectedValue, i))
    }
}

/// The kinds of the open containers, one bit each (1: object), below a marker bit: the
/// innermost 63 in a word, the outer ones spilled to the heap, so the depth is bounded by the
/// input only. Nothing is open when the word is just the marker.
struct Stack {
    top: u64,
    spill: Vec<u64>,
}

impl Stack {
    #[inline(always)]
    fn push(&mut self, object: bool) {
        if self.top >> 63 != 0 {
            self.spill_top();
        }
        self.top = (self.top << 1) | u64::from(object);
    }

    #[cold]
    #[inline(never)]
    fn spill_top(&mut self) {
        self.spill.push(self.top);
        self.top = 1;
    }

    /// Closes the innermost container (the caller checks that one is open).
    #[inline(always)]
    fn pop(&mut self) {
        self.top >>= 1;
        if self.top == 1 {
            if let Some(outer) = self.spill.pop() {
                self.top = outer;
            }
        }
    }

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.top == 1
    }

    #[inline(always)]
    fn in_object(&self) -> bool {
        self.top & 1 == 1
    }
}

/// The grammar of [`validate`], and UTF-8 (see [`string`]): a loop over values with an
/// explicit stack of open containers ([`Stack`]), never recursion. `c` is always the byte at
/// `i` (0 past the end).
fn scan(b: &[u8]) -> Result<(), Invalid> {
    let mut high = HIGHS;
    let mut stack = Stack {
        top: 1,
        spill: Vec::new(),
    };
    let mut i = 0;
    let mut c = at(b, 0);
    macro_rules! skip_ws {
        () => {
            while is_ws(c) {
                i += 1;
                c = at(b, i);
            }
        };
    }
    macro_rules! next {
        ($to:expr) => {{
            i = $to;
            c = at(b, i);
        }};
    }
    // An object's key and colon, at `c` (whitespace skipped); leaves `c` at the value.
    macro_rules! key {
        () => {
            if c != b'"' {
                return Err(invalid(Syntax::ExpectedKey, i));
            }
            next!(string(b, i + 1, &mut high)?);
            skip_ws!();
            if c != b':' {
                return Err(invalid(Syntax::ExpectedColon, i));
            }
            next!(i + 1);
            skip_ws!();
        };
    }
    skip_ws!();
    'value: loop {
        // A value starts at `i` (whitespace skipped).
        match c {
            b'"' => next!(string(b, i + 1, &mut high)?),
            b'-' | b'0'..=b'9' => next!(number(b, i)?),
            b'{' => {
                next!(i + 1);
                skip_ws!();
                if c == b'}' {
                    next!(i + 1);
                } else {
                    stack.push(true);
                    key!();
                    continue 'value;
                }
            }
            b'[' => {
                next!(i + 1);
                skip_ws!();
                if c == b']' {
                    next!(i + 1);
                } else {
                    stack.push(false);
                    continue 'value;
                }
            }
            b't' => next!(literal(b, i, b"true")?),
            b'f' => next!(literal(b, i, b"false")?),
            b'n' => next!(literal(b, i, b"null")?),
            _ => return Err(invalid(Syntax::ExpectedValue, i)),
        }
        // After a value: close containers until one goes on with a comma.
        loop {
            skip_ws!();
            if stack.is_empty() {
                break 'value;
            }
            if c == b',' {
                next!(i + 1);
                skip_ws!();
                if stack.in_object() {
                    key!();
                }
                continue 'value;
            }
            // `]` + 0x20 is `}`.
            if c != b']' + (u8::from(stack.in_object()) << 5) {
                return Err(invalid(
                    if stack.in_object() {
                        Syntax::ExpectedCommaOrBrace
                    } else {
                        Syntax::ExpectedCommaOrBracket
                    },
                    i,
                ));
            }
            stack.pop();
            next!(i + 1);
        }
    }
    if i < b.len() {
        return Err(invalid(Syntax::TrailingCharacters, i));
    }
    Ok(())
}

/// Whether `body` is an empty JSON array (`[]`, whitespace allowed).
pub fn is_empty_array(body: &[u8]) -> bool {
    // Without allocating: called on every JSON append and every JSON read body.
    let mut solid = body.iter().copied().filter(|b| !b.is_ascii_whitespace());
    solid.next() == Some(b'[') && solid.next() == Some(b']') && solid.next().is_none()
}

/// The body that stores `message` as exactly one message: `[message]`, since the server
/// flattens one level of array (9.1.2). The message must be valid JSON and not an empty array.
///
/// # Errors
///
/// As [`validate`], and [`JsonError::EmptyArray`] for `[]`.
pub fn wrap_one(message: &[u8]) -> Result<Bytes, JsonError> {
    validate(message)?;
    if is_empty_array(message) {
        return Err(JsonError::EmptyArray);
    }
    let mut out = BytesMut::with_capacity(message.len() + 2);
    out.put_u8(b'[');
    out.put_slice(message);
    out.put_u8(b']');
    Ok(out.freeze())
}

/// The body that stores each item as one message: `[a,b,...]`. Items must already be valid JSON
/// values; an empty list is refused (the server would answer 400, 9.1.3).
///
/// # Errors
///
/// [`JsonError::EmptyBatch`] for no items.
pub fn batch<I, B>(items: I) -> Result<Bytes, JsonError>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let mut out = BytesMut::new();
    out.put_u8(b'[');
    let mut n = 0usize;
    for item in items {
        if n > 0 {
            out.put_u8(b',');
        }
        out.put_slice(item.as_ref());
        n += 1;
    }
    if n == 0 {
        return Err(JsonError::EmptyBatch);
    }
    out.put_u8(b']');
    Ok(out.freeze())
}

/// Splits a JSON-mode read body (a JSON array, 9.1.5) into its messages, without copying: each
/// item is a slice of `body`. An empty body is no messages.
///
/// # Errors
///
/// [`JsonError::NotAnArray`] when `body` is not one JSON array (or not UTF-8).
pub fn split_array(body: &Bytes) -> Result<Vec<Bytes>, JsonError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let raw: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| JsonError::NotAnArray {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    Ok(raw
        .iter()
        .map(|r| body.slice_ref(r.get().as_bytes()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_makes_one_message() {
        assert_eq!(&wrap_one(b"{\"a\":1}").unwrap()[..], b"[{\"a\":1}]");
        assert_eq!(&wrap_one(b"[1,2]").unwrap()[..], b"[[1,2]]");
        assert!(wrap_one(b"[ ]").is_err());
        assert!(wrap_one(b"{nope").is_err());
        assert!(wrap_one(b"").is_err());
    }

    #[test]
    fn invalid_utf8_in_strings_is_refused() {
        // Found by the `read_body` fuzz target: `validate` skipped the bytes of strings, so
        // a JSON append could carry bytes that `split_array` refuses when reading back.
        for bad in [&b"\"\xff\""[..], b"[\"a\xc3\"]", b"{\"\xed\xa0\x80\":1}"] {
            assert!(validate(bad).is_err(), "{bad:?}");
            assert!(wrap_one(bad).is_err(), "{bad:?}");
        }
        assert!(split_array(&Bytes::from_static(b"[\"\xff\"]")).is_err());
        assert!(validate("[\"\u{e9}\u{1F600}\"]".as_bytes()).is_ok());
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            validate(b"[1 2]"),
            Err(JsonError::Syntax {
                reason: Syntax::ExpectedCommaOrBracket,
                at: 3,
                end: false
            })
        );
        assert_eq!(
            validate(b"{\"a\":"),
            Err(JsonError::Syntax {
                reason: Syntax::ExpectedValue,
                at: 5,
                end: true
            })
        );
        match validate(b"[\"a\xff\"]") {
            Err(JsonError::NotUtf8(e)) => assert_eq!(e.valid_up_to(), 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(wrap_one(b" [ ] "), Err(JsonError::EmptyArray));
        assert_eq!(batch::<_, &[u8]>([]), Err(JsonError::EmptyBatch));
        match split_array(&Bytes::from_static(b"[1,\n2,")) {
            Err(JsonError::NotAnArray { line, column, .. }) => assert_eq!((line, column), (2, 2)),
            other => panic!("{other:?}"),
        }
        // The message the crate's InvalidInput errors carry.
        assert_eq!(
            String::from(JsonError::EmptyBatch),
            "an empty JSON batch appends nothing (PROTOCOL.md 9.1.3)"
        );
        assert!(split_array(&Bytes::from_static(b"{}"))
            .unwrap_err()
            .to_string()
            .starts_with("JSON stream body is not a JSON array: "));
    }

    #[test]
    fn batches() {
        assert_eq!(&batch([&b"1"[..], b"{}"]).unwrap()[..], b"[1,{}]");
        assert!(batch(Vec::<Bytes>::new()).is_err());
    }

    #[test]
    fn split_is_zero_copy_and_strict() {
        let body = Bytes::from_static(b"[ {\"k\":\"v\"} , [1,2], \"s\" ]");
        let items = split_array(&body).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(&items[0][..], b"{\"k\":\"v\"}");
        assert_eq!(&items[1][..], b"[1,2]");
        assert_eq!(&items[2][..], b"\"s\"");
        assert!(split_array(&Bytes::from_static(b"[]")).unwrap().is_empty());
        assert!(split_array(&Bytes::from_static(b"")).unwrap().is_empty());
        assert!(split_array(&Bytes::from_static(b"[{\"k\":")).is_err());
        assert!(split_array(&Bytes::from_static(b"{\"k\":1}")).is_err());
    }
}

/// Joins the bodies of several JSON-mode responses (each a JSON array) into one array, the
/// shape of the stream's messages read in one go.
///
/// # Errors
///
/// [`JsonError::NotAnArray`] when a body is not one JSON array.
pub fn merge_arrays<B: AsRef<[u8]>>(bodies: &[B]) -> Result<Bytes, JsonError> {
    let mut items: Vec<Bytes> = Vec::new();
    for b in bodies {
        items.extend(split_array(&Bytes::copy_from_slice(b.as_ref()))?);
    }
    if items.is_empty() {
        return Ok(Bytes::from_static(b"[]"));
    }
    batch(items)
}

#[cfg(test)]
mod merge_tests {
    #[test]
    fn merges() {
        let m = super::merge_arrays(&[&b"[1,2]"[..], b"[]", b"[{\"a\":3}]"]).unwrap();
        assert_eq!(&m[..], b"[1,2,{\"a\":3}]");
        assert_eq!(&super::merge_arrays::<&[u8]>(&[]).unwrap()[..], b"[]");
    }
}

#[cfg(test)]
mod validate_tests {
    use super::validate;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The implementation `validate` replaced, as the oracle: UTF-8, then serde_json.
    fn serde_validate(body: &[u8]) -> Result<(), String> {
        let text =
            std::str::from_utf8(body).map_err(|e| format!("invalid JSON: not UTF-8: {e}"))?;
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map(|_| ())
            .map_err(|e| format!("invalid JSON: {e}"))
    }

    fn agree(body: &[u8]) -> Result<(), TestCaseError> {
        let ours = validate(body);
        let theirs = serde_validate(body);
        prop_assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "{:?}: validate {:?}, serde_json {:?}",
            String::from_utf8_lossy(body),
            ours,
            theirs
        );
        Ok(())
    }

    fn nested(open: &str, inner: &str, close: &str, n: usize) -> Vec<u8> {
        let mut v = open.repeat(n).into_bytes();
        v.extend_from_slice(inner.as_bytes());
        v.extend_from_slice(close.repeat(n).as_bytes());
        v
    }

    /// Grammar edges, each with the answer both implementations give.
    fn table() -> Vec<(Vec<u8>, bool)> {
        let fixed: &[(&[u8], bool)] = &[
            // Numbers.
            (b"0", true),
            (b"-0", true),
            (b"-", false),
            (b"--1", false),
            (b"+1", false),
            (b"01", false),
            (b"-01", false),
            (b"00", false),
            (b"1.", false),
            (b".1", false),
            (b"1.5", true),
            (b"-1.5e-3", true),
            (b"1e", false),
            (b"1e+", false),
            (b"1e-", false),
            (b"1E5", true),
            (b"1e+5", true),
            (b"0e0", true),
            (b"0.0e-0", true),
            (b"1.e5", false),
            (b"1e5.5", false),
            (b"1e400", true),
            (b"-1e-400", true),
            (b"123456789012345678901234567890", true),
            (b"0x10", false),
            (b"Infinity", false),
            (b"NaN", false),
            (b"[1,-]", false),
            (b"[01]", false),
            // Literals.
            (b"true", true),
            (b"false", true),
            (b"null", true),
            (b"tru", false),
            (b"nul", false),
            (b"nulll", false),
            (b"True", false),
            (b"falsey", false),
            (b"[true false]", false),
            // Arrays and objects.
            (b"[]", true),
            (b"{}", true),
            (b"[1,]", false),
            (b"[,1]", false),
            (b"[,]", false),
            (b"[1 2]", false),
            (b"[1,,2]", false),
            (b"[", false),
            (b"]", false),
            (b"[1", false),
            (b"[1,", false),
            (b"[[]", false),
            (b"[]]", false),
            (b"[}", false),
            (b"{]", false),
            (b"{\"a\":1}", true),
            (b"{\"a\":1,}", false),
            (b"{,}", false),
            (b"{\"a\" 1}", false),
            (b"{\"a\"}", false),
            (b"{\"a\":}", false),
            (b"{\"a\":1 \"b\":2}", false),
            (b"{1:2}", false),
            (b"{a:1}", false),
            (b"{'a':1}", false),
            (b"{\"a\":1,\"a\":2}", true),
            (b"{\"a\"::1}", false),
            (b"{\"a\":1", false),
            (b"{\"a\"", false),
            (b"{", false),
            (b"{\"a\":[1,{\"b\":null}],\"c\":{}}", true),
            // Strings and escapes.
            (b"\"\"", true),
            (b"\"", false),
            (b"\"abc", false),
            (b"\"\\\"", false),
            (b"\"\\\\\"", true),
            (b"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", true),
            (b"\"\\u00e9\\u00E9\\uABCD\"", true),
            (b"\"\\u12\"", false),
            (b"\"\\u12", false),
            (b"\"\\u123g\"", false),
            (b"\"\\U1234\"", false),
            (b"\"\\ud800\"", true),
            (b"\"\\udc00\\ud800\"", true),
            (b"\"\\ud83d\\ude00\"", true),
            (b"\"\\x41\"", false),
            (b"\"\\a\"", false),
            (b"\"\\0\"", false),
            (b"\"\\'\"", false),
            (b"\"\\", false),
            (b"\"a\tb\"", false),
            (b"\"a\nb\"", false),
            (b"\"a\x00b\"", false),
            (b"\"a\x1fb\"", false),
            (b"\"a\x7fb\"", true),
            (b"\"a\x7f\"", true),
            (b"'a'", false),
            // Whitespace and trailing bytes.
            (b"1 2", false),
            (b"{} {}", false),
            (b"[]x", false),
            (b" \t\r\n[ \t\r\n1 \t\r\n, \t\r\n2 \t\r\n] \t\r\n", true),
            (b"\x0c1", false),
            (b"1\x0c", false),
            (b"[1,\x0c2]", false),
            (b"\x0b1", false),
            (b"\xc2\xa01", false),
            (b"1\xc2\xa0", false),
            (b"\xef\xbb\xbf1", false),
            (b"\xef\xbb\xbf", false),
            (b"", false),
            (b" ", false),
            (b" \t\r\n", false),
            (b"\x00", false),
            (b"1\x00", false),
            // UTF-8 inside and outside strings.
            ("\"\u{e9}\u{1F600}\u{FFFF}\"".as_bytes(), true),
            ("{\"\u{e9}\":\"\u{10FFFF}\"}".as_bytes(), true),
            (b"\"\xff\"", false),
            (b"\xff", false),
            (b"[1,\xff]", false),
            (b"\"\xc3\"", false),
            (b"\"\xc3", false),
            (b"\"\xc0\xaf\"", false),
            (b"\"\xe0\x80\xaf\"", false),
            (b"\"\xf0\x80\x80\xaf\"", false),
            (b"\"\xed\xa0\x80\"", false),
            (b"\"\xed\xbf\xbf\"", false),
            (b"\"\xf4\x90\x80\x80\"", false),
            (b"\"\x80\"", false),
            (b"\"\xf8\x88\x80\x80\x80\"", false),
            (b"{\"\xed\xa0\x80\":1}", false),
            // UTF-8 is checked from the first non-ASCII byte of a string to the end.
            (b"[\"\xc3\xa9\",\"\xff\"]", false),
            (b"[\"\xc3\xa9\",\xff]", false),
            (b"[\"\xc3\xa9\"]\xff", false),
            (b"[\"\xc3\xa9\",\"\xc3\xa9\",\"\xf0\x9f\x98\x80\"]", true),
            (b"[\"a\",\"\xc3\xa9\xc3\"]", false),
        ];
        let mut all: Vec<(Vec<u8>, bool)> = fixed.iter().map(|(b, ok)| (b.to_vec(), *ok)).collect();
        // serde_json skips an ignored value with a heap stack, without its recursion limit
        // (128), so any depth passes; so does `validate`, without recursion either.
        for n in [1, 63, 64, 65, 127, 128, 129, 130, 1000, 10_000] {
            all.push((nested("[", "", "]", n), true));
            all.push((nested("[", "1", "]", n), true));
            all.push((nested("{\"a\":", "1", "}", n), true));
            all.push((nested("[{\"k\":", "[]", "}]", n), true));
            all.push((nested("[ ", "{ }", " ]", n), true));
            all.push((nested("[", "", "", n), false));
            all.push((nested("[", "", "]", n)[1..].to_vec(), false));
            all.push((nested("{\"a\":", "1", "]", n), false));
            let mut unbalanced = nested("[", "", "]", n);
            unbalanced.push(b']');
            all.push((unbalanced, false));
            // The last two closers swapped.
            let mut swapped = nested("[{\"k\":", "[]", "}]", n);
            let last = swapped.len() - 1;
            swapped.swap(last - 1, last);
            all.push((swapped, false));
        }
        all
    }

    #[test]
    fn table_agrees_with_serde_json() {
        for (body, ok) in table() {
            let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
            assert_eq!(serde_validate(&body).is_ok(), ok, "serde_json on {shown:?}");
            assert_eq!(
                validate(&body).is_ok(),
                ok,
                "{shown:?} ({} bytes): {:?}",
                body.len(),
                validate(&body)
            );
        }
    }

    /// Strings of many lengths with one special byte at every position, so that it falls in
    /// the first word, a later word, a 32-byte chunk or the byte-by-byte tail, with the input
    /// ending right after the string or later.
    #[test]
    fn special_bytes_at_every_offset_agree() {
        let specials: [&[u8]; 9] = [
            b"\"",
            b"\\n",
            b"\\u00e9",
            b"\\x",
            b"\x01",
            b"\x7f",
            "\u{e9}".as_bytes(),
            b"\xff",
            b"\xed\xa0\x80",
        ];
        let lengths = (0..=40).chain([63, 64, 65, 71, 72, 73, 95, 96, 97, 130]);
        let mut cases = 0;
        for len in lengths {
            for at in 0..=len {
                for special in specials {
                    let mut content = vec![b'a'; len];
                    content.splice(at..at, special.iter().copied());
                    for (open, close) in [("\"", "\""), ("[\"", "\"]"), ("{\"k\":\"", "\" }")] {
                        let mut body = open.as_bytes().to_vec();
                        body.extend_from_slice(&content);
                        body.extend_from_slice(close.as_bytes());
                        assert_eq!(
                            validate(&body).is_ok(),
                            serde_validate(&body).is_ok(),
                            "{:?}",
                            String::from_utf8_lossy(&body)
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases > 10_000);
    }

    /// A wrong closer at every depth, across the 63 levels kept in a word and the ones spilled.
    #[test]
    fn wrong_closers_at_every_depth_are_refused() {
        for n in [62, 63, 64, 65, 126, 127, 128, 130] {
            let good = nested("[{\"k\":", "0", "}]", n);
            assert!(validate(&good).is_ok());
            let closers = good.len() - 2 * n;
            for k in closers..good.len() {
                let mut bad = good.clone();
                bad[k] = if bad[k] == b']' { b'}' } else { b']' };
                assert!(validate(&bad).is_err(), "n {n}, byte {k}");
            }
        }
    }

    #[test]
    fn a_megabyte_of_brackets_does_not_overflow_the_stack() {
        let n = 1 << 20;
        assert!(validate(&nested("[", "", "", n)).is_err());
        assert!(validate(&nested("{\"\":", "", "", n / 4)).is_err());
        assert!(validate(&nested("[", "", "]", n)).is_ok());
        assert!(validate(&nested("[{\"\":", "0", "}]", n / 8)).is_ok());
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = |b: &[u8]| validate(b).unwrap_err().to_string();
        assert_eq!(e(b"[1 2]"), "invalid JSON: expected ',' or ']' at byte 3");
        assert_eq!(
            e(b"{\"a\":1 ]"),
            "invalid JSON: expected ',' or '}' at byte 7"
        );
        assert_eq!(e(b"{\"a\" 1}"), "invalid JSON: expected ':' at byte 5");
        assert_eq!(e(b"{1:2}"), "invalid JSON: expected a string key at byte 1");
        assert_eq!(e(b"[1,]"), "invalid JSON: expected a value at byte 3");
        assert_eq!(e(b"1 2"), "invalid JSON: trailing characters at byte 2");
        assert_eq!(e(b"01"), "invalid JSON: trailing characters at byte 1");
        assert_eq!(
            e(b"1."),
            "invalid JSON: expected a digit after '.' at byte 2 (end of input)"
        );
        assert_eq!(
            e(b"\"a\tb\""),
            "invalid JSON: control character in string at byte 2"
        );
        assert_eq!(e(b"\"\\x\""), "invalid JSON: invalid escape at byte 1");
        assert_eq!(
            e(b"\"\\u12\""),
            "invalid JSON: invalid \\u escape at byte 1"
        );
        assert_eq!(
            e(b"[\"ab"),
            "invalid JSON: unterminated string at byte 4 (end of input)"
        );
        assert_eq!(
            e(b""),
            "invalid JSON: expected a value at byte 0 (end of input)"
        );
        assert!(e(b"\"\xff\"").starts_with("invalid JSON: not UTF-8: "));
        // As before: a UTF-8 error is told first, whatever the grammar says.
        assert!(e(b"[1 2, \"\xff\"]").starts_with("invalid JSON: not UTF-8: "));
        assert!(e(b"[\"\xc3\xa9\", \xff]").starts_with("invalid JSON: not UTF-8: "));
    }

    /// Whitespace choices between tokens, cycled through by [`Writer`].
    const SPACES: [&str; 8] = ["", "", "", " ", "\n", "\t", "\r\n", "  \r\n\t "];

    /// Serializes a value with serde_json's leaves and chosen whitespace between all tokens.
    struct Writer {
        ws: Vec<usize>,
        k: usize,
        out: Vec<u8>,
    }

    impl Writer {
        fn pad(&mut self) {
            if let Some(&w) = self.ws.get(self.k % self.ws.len().max(1)) {
                self.out
                    .extend_from_slice(SPACES[w % SPACES.len()].as_bytes());
            }
            self.k += 1;
        }

        fn value(&mut self, v: &Value) {
            match v {
                Value::Array(items) => {
                    self.out.push(b'[');
                    for (n, item) in items.iter().enumerate() {
                        self.pad();
                        if n > 0 {
                            self.out.push(b',');
                            self.pad();
                        }
                        self.value(item);
                    }
                    self.pad();
                    self.out.push(b']');
                }
                Value::Object(members) => {
                    self.out.push(b'{');
                    for (n, (k, item)) in members.iter().enumerate() {
                        self.pad();
                        if n > 0 {
                            self.out.push(b',');
                            self.pad();
                        }
                        self.out.extend(serde_json::to_vec(k).unwrap());
                        self.pad();
                        self.out.push(b':');
                        self.pad();
                        self.value(item);
                    }
                    self.pad();
                    self.out.push(b'}');
                }
                leaf => self.out.extend(serde_json::to_vec(leaf).unwrap()),
            }
        }
    }

    fn text(v: &Value, ws: Vec<usize>) -> Vec<u8> {
        let mut w = Writer {
            ws,
            k: 0,
            out: Vec::new(),
        };
        w.pad();
        w.value(v);
        w.pad();
        w.out
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (0u32..1000).prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
            any::<String>().prop_map(Value::String),
            "[a-z\"\\\\/\\x00-\\x1f\\x7f\\u{e9}\\u{2028}\\u{FFFF}\\u{1F600}]{0,12}"
                .prop_map(Value::String),
            // Long enough for the word and 32-byte paths, sometimes with escapes or non-ASCII.
            "[a-z0-9 ]{20,120}".prop_map(Value::String),
            "[a-z \"\\\\\\n\\u{e9}\\u{1F600}]{0,150}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-z\\u{e9}\"\\\\\\n]{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn valid_text() -> impl Strategy<Value = Vec<u8>> {
        (json_value(), prop::collection::vec(0..SPACES.len(), 0..16))
            .prop_map(|(v, ws)| text(&v, ws))
    }

    /// Bytes that matter to the grammar, and some that do not.
    const ALPHABET: &[u8] =
        b"{}[],:\"\\/ \t\n\r\x0c\x00\x1f\x7f0123456789-+.eEtrufalsnbx\xc3\xa9\xed\xa0\x80\xff";

    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![any::<u8>(), prop::sample::select(ALPHABET)]
    }

    /// Insert (0), delete (1) or replace (2) a byte.
    fn mutate(mut body: Vec<u8>, edits: &[(u8, prop::sample::Index, u8)]) -> Vec<u8> {
        for &(kind, at, b) in edits {
            match kind % 3 {
                0 => body.insert(at.index(body.len() + 1), b),
                _ if body.is_empty() => {}
                1 => {
                    body.remove(at.index(body.len()));
                }
                _ => {
                    let at = at.index(body.len());
                    body[at] = b;
                }
            }
        }
        body
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(800))]

        #[test]
        fn valid_json_is_accepted(body in valid_text()) {
            prop_assert!(validate(&body).is_ok(), "{:?}: {:?}", String::from_utf8_lossy(&body), validate(&body));
            agree(&body)?;
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1200))]

        #[test]
        fn mutated_json_agrees(
            body in valid_text(),
            edits in prop::collection::vec((any::<u8>(), any::<prop::sample::Index>(), byte()), 1..4),
        ) {
            agree(&mutate(body, &edits))?;
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn arbitrary_bytes_agree(body in prop::collection::vec(any::<u8>(), 0..64)) {
            agree(&body)?;
        }

        #[test]
        fn json_alphabet_agrees(body in prop::collection::vec(prop::sample::select(ALPHABET), 0..48)) {
            agree(&body)?;
        }
    }
}
