// SPDX-License-Identifier: MPL-2.0
//! JSON as Python's `json` module reads and writes it, kept as text.
//!
//! vidgear's `message` and returned `data` are whatever `json.dumps` writes: NaN,
//! Infinity, lone surrogates (`"\ud800"`), integers of any size, deep nesting. serde_json
//! refuses or changes these, so such values stay exact text, checked by an iterative
//! scanner (no recursion: any depth the size limit allows is safe) that follows
//! `json.loads`' grammar, and written back with Python's spacing and escaping.

use std::borrow::Cow;
use std::fmt;
use thiserror::Error;

/// Python refuses to read integers with more digits (`sys.get_int_max_str_digits()`).
pub const MAX_INT_DIGITS: usize = 4300;

/// Why a text is not JSON by Python's rules; offsets are bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JsonError {
    #[error("not UTF-8 text")]
    NotUtf8,
    #[error("the text ends inside a value")]
    Unterminated,
    #[error("unexpected character at byte {0}")]
    Unexpected(usize),
    #[error("extra data after the value at byte {0}")]
    Trailing(usize),
    #[error("control character in a string at byte {0}")]
    ControlCharacter(usize),
    #[error("invalid escape in a string at byte {0}")]
    BadEscape(usize),
    #[error("integer of more than {MAX_INT_DIGITS} digits at byte {0}")]
    IntegerTooLong(usize),
}

/// What the scanner expects next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (after `[`, a `,` in a list, a `:`, or at the top).
    Value,
    /// A value or `]` right after `[`.
    FirstItem,
    /// A key or `}` right after `{`.
    FirstKey,
    /// A key after a `,` in an object.
    Key,
    /// The `:` after a key.
    Colon,
    /// `,`, or the end of the enclosing container (or of the text at the top).
    AfterValue,
}

fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// Scans one value starting at `pos` (after whitespace); returns the offset after it.
/// Containers are tracked on a heap stack, so depth costs memory, not call stack.
pub fn scan_value(bytes: &[u8], pos: usize) -> Result<usize, JsonError> {
    let mut open: Vec<u8> = Vec::new();
    let mut expect = Expect::Value;
    let mut pos = pos;
    loop {
        pos = skip_whitespace(bytes, pos);
        let byte = *bytes.get(pos).ok_or(JsonError::Unterminated)?;
        expect = match (expect, byte) {
            (Expect::FirstItem, b']') | (Expect::FirstKey, b'}') => {
                open.pop();
                pos += 1;
                Expect::AfterValue
            }
            (Expect::FirstKey | Expect::Key, b'"') => {
                pos = scan_string(bytes, pos)?;
                Expect::Colon
            }
            (Expect::Colon, b':') => {
                pos += 1;
                Expect::Value
            }
            (Expect::Value | Expect::FirstItem, b'[' | b'{') => {
                open.push(byte);
                pos += 1;
                if byte == b'[' {
                    Expect::FirstItem
                } else {
                    Expect::FirstKey
                }
            }
            (Expect::Value | Expect::FirstItem, _) => {
                pos = scan_scalar(bytes, pos)?;
                Expect::AfterValue
            }
            (Expect::AfterValue, _) => match (open.last(), byte) {
                (None, _) => return Ok(pos),
                (Some(b'['), b',') => {
                    pos += 1;
                    Expect::Value
                }
                (Some(b'{'), b',') => {
                    pos += 1;
                    Expect::Key
                }
                (Some(b'['), b']') | (Some(b'{'), b'}') => {
                    open.pop();
                    pos += 1;
                    Expect::AfterValue
                }
                _ => return Err(JsonError::Unexpected(pos)),
            },
            _ => return Err(JsonError::Unexpected(pos)),
        };
        if expect == Expect::AfterValue && open.is_empty() {
            return Ok(pos);
        }
    }
}

/// A string, number or literal at `pos`.
fn scan_scalar(bytes: &[u8], pos: usize) -> Result<usize, JsonError> {
    let rest = &bytes[pos..];
    for literal in [
        &b"null"[..],
        b"true",
        b"false",
        b"NaN",
        b"Infinity",
        b"-Infinity",
    ] {
        if rest.starts_with(literal) {
            return Ok(pos + literal.len());
        }
    }
    match rest.first() {
        Some(b'"') => scan_string(bytes, pos),
        Some(b'-' | b'0'..=b'9') => scan_number(bytes, pos),
        Some(_) => Err(JsonError::Unexpected(pos)),
        None => Err(JsonError::Unterminated),
    }
}

fn count_digits(bytes: &[u8], pos: usize) -> usize {
    bytes[pos.min(bytes.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`; a `.` or `e` without digits ends the
/// number before it (and is then refused as unexpected), as in Python.
fn scan_number(bytes: &[u8], start: usize) -> Result<usize, JsonError> {
    let mut pos = start + usize::from(bytes.get(start) == Some(&b'-'));
    let int_digits = match bytes.get(pos) {
        Some(b'0') => 1,
        Some(b'1'..=b'9') => count_digits(bytes, pos),
        Some(_) => return Err(JsonError::Unexpected(pos)),
        None => return Err(JsonError::Unterminated),
    };
    pos += int_digits;
    let mut is_int = true;
    if bytes.get(pos) == Some(&b'.') && count_digits(bytes, pos + 1) > 0 {
        pos += 1 + count_digits(bytes, pos + 1);
        is_int = false;
    }
    if matches!(bytes.get(pos), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(pos + 1), Some(b'+' | b'-')));
        let digits = count_digits(bytes, pos + 1 + sign);
        if digits > 0 {
            pos += 1 + sign + digits;
            is_int = false;
        }
    }
    if is_int && int_digits > MAX_INT_DIGITS {
        return Err(JsonError::IntegerTooLong(start));
    }
    Ok(pos)
}

/// A string at `pos` (its opening quote); returns the offset after its closing quote.
fn scan_string(bytes: &[u8], start: usize) -> Result<usize, JsonError> {
    let mut pos = start + 1;
    loop {
        match *bytes.get(pos).ok_or(JsonError::Unterminated)? {
            b'"' => return Ok(pos + 1),
            b'\\' => {
                let escape = *bytes.get(pos + 1).ok_or(JsonError::Unterminated)?;
                pos += match escape {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' => {
                        let hex = bytes.get(pos + 2..pos + 6).ok_or(JsonError::Unterminated)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(JsonError::BadEscape(pos));
                        }
                        6
                    }
                    _ => return Err(JsonError::BadEscape(pos)),
                };
            }
            0..=0x1f => return Err(JsonError::ControlCharacter(pos)),
            _ => pos += 1,
        }
    }
}

/// Checks that the whole text is one value, with optional whitespace around it.
pub fn validate(text: &str) -> Result<(), JsonError> {
    let bytes = text.as_bytes();
    let start = skip_whitespace(bytes, 0);
    let end = skip_whitespace(bytes, scan_value(bytes, start)?);
    if end != bytes.len() {
        return Err(JsonError::Trailing(end));
    }
    Ok(())
}

/// One member of an object: its decoded key and its value's text.
pub type Member<'a> = (Cow<'a, str>, &'a str);

/// The members of a top-level object as `(key, value text)`, after checking the whole
/// text; `None` if the text is valid JSON but not an object. Keys that cannot be decoded
/// to Rust strings (lone surrogates) are skipped: no fixed key of ours looks like them.
pub fn object_members(text: &str) -> Result<Option<Vec<Member<'_>>>, JsonError> {
    let bytes = text.as_bytes();
    let mut pos = skip_whitespace(bytes, 0);
    if bytes.get(pos) != Some(&b'{') {
        return validate(text).map(|()| None);
    }
    let mut members = Vec::new();
    pos = skip_whitespace(bytes, pos + 1);
    if bytes.get(pos) == Some(&b'}') {
        pos += 1;
    } else {
        loop {
            let key_end = match bytes.get(pos) {
                Some(b'"') => scan_string(bytes, pos)?,
                Some(_) => return Err(JsonError::Unexpected(pos)),
                None => return Err(JsonError::Unterminated),
            };
            let key = decode_key(&text[pos..key_end]);
            pos = skip_whitespace(bytes, key_end);
            match bytes.get(pos) {
                Some(b':') => pos = skip_whitespace(bytes, pos + 1),
                Some(_) => return Err(JsonError::Unexpected(pos)),
                None => return Err(JsonError::Unterminated),
            }
            let value_end = scan_value(bytes, pos)?;
            if let Some(key) = key {
                members.push((key, &text[pos..value_end]));
            }
            pos = skip_whitespace(bytes, value_end);
            match bytes.get(pos) {
                Some(b',') => pos = skip_whitespace(bytes, pos + 1),
                Some(b'}') => {
                    pos += 1;
                    break;
                }
                Some(_) => return Err(JsonError::Unexpected(pos)),
                None => return Err(JsonError::Unterminated),
            }
        }
    }
    let end = skip_whitespace(bytes, pos);
    if end != bytes.len() {
        return Err(JsonError::Trailing(end));
    }
    Ok(Some(members))
}

/// A scanned key string (with its quotes) as text.
fn decode_key(quoted: &str) -> Option<Cow<'_, str>> {
    let inner = quoted.get(1..quoted.len() - 1)?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
}

/// Rewrites valid JSON text as `json.dumps` spaces and escapes it: `", "` and `": "`
/// between items, no other whitespace, anything outside printable ASCII in strings as
/// `\uXXXX`. Numbers, literals and existing escapes are kept as they are (exact values).
fn python_spacing(valid: &str) -> String {
    let mut out = String::with_capacity(valid.len() + valid.len() / 8);
    let mut in_string = false;
    let mut escaped = false;
    for c in valid.chars() {
        if in_string {
            match c {
                _ if escaped => {
                    escaped = false;
                    out.push(c);
                }
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                ' '..='~' => out.push(c),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            ',' => out.push_str(", "),
            ':' => out.push_str(": "),
            '"' => {
                in_string = true;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A JSON value as text that Python's `json.loads` reads, spaced as `json.dumps` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JsonText(String);

impl Default for JsonText {
    fn default() -> Self {
        JsonText::null()
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonText {
    pub fn null() -> Self {
        JsonText("null".to_owned())
    }

    /// Checks a text by Python's rules and brings it to Python's spacing.
    pub fn parse(text: &str) -> Result<Self, JsonError> {
        validate(text)?;
        Ok(JsonText(python_spacing(text)))
    }

    /// Text the scanner has already checked (a member of a checked object).
    pub(super) fn from_valid(valid: &str) -> Self {
        JsonText(python_spacing(valid))
    }

    /// Checks bytes from the network (UTF-8, as vidgear sends).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, JsonError> {
        std::str::from_utf8(bytes)
            .map_err(|_| JsonError::NotUtf8)
            .and_then(Self::parse)
    }

    /// A text as a JSON string, as `json.dumps(text)` writes it.
    pub fn string(text: &str) -> Self {
        let mut quoted = String::with_capacity(text.len() + 2);
        quoted.push('"');
        for c in text.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                '\n' => quoted.push_str("\\n"),
                '\r' => quoted.push_str("\\r"),
                '\t' => quoted.push_str("\\t"),
                '\u{8}' => quoted.push_str("\\b"),
                '\u{c}' => quoted.push_str("\\f"),
                ' '..='~' => quoted.push(c),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        quoted.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        quoted.push('"');
        JsonText(quoted)
    }

    /// A user's property text: JSON if Python would read it as JSON, else a string;
    /// empty is null.
    pub fn from_user_text(text: &str) -> Self {
        if text.is_empty() {
            return JsonText::null();
        }
        JsonText::parse(text).unwrap_or_else(|_| JsonText::string(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn is_null(&self) -> bool {
        self.0 == "null"
    }

    /// Python's truthiness of the value: vidgear ignores falsy messages.
    pub fn is_truthy(&self) -> bool {
        match self.0.as_str() {
            "null" | "false" | "\"\"" | "[]" | "{}" => false,
            "NaN" | "Infinity" | "-Infinity" => true,
            text if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) => {
                !number_is_zero(text)
            }
            _ => true,
        }
    }

    /// Python's `type(x).__name__` of the value `json.loads` builds.
    pub fn python_type_name(&self) -> &'static str {
        let text = self.0.as_str();
        match text.as_bytes().first() {
            Some(b'n') => "NoneType",
            Some(b't' | b'f') => "bool",
            Some(b'"') => "str",
            Some(b'[') => "list",
            Some(b'{') => "dict",
            _ if text.contains(['.', 'e', 'E', 'N', 'I']) => "float",
            _ => "int",
        }
    }

    /// The value as serde_json reads it, when it can (no NaN, surrogates or deep nesting;
    /// big integers become floats).
    pub fn to_value(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.0).ok()
    }
}

/// Whether a number's text is zero in Python (`0`, `-0.0`, `0e5`, and `1e-400`, which
/// underflows to 0.0).
fn number_is_zero(text: &str) -> bool {
    if text.contains(['.', 'e', 'E']) {
        text.parse::<f64>().is_ok_and(|f| f == 0.0)
    } else {
        text.bytes().all(|b| b == b'0' || b == b'-')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_python_writes() {
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let big = "9".repeat(4300);
        let cases = [
            "NaN",
            "-Infinity",
            "[NaN, Infinity, -Infinity]",
            r#""\ud800""#,
            r#""\udc00\ud800 x""#,
            "1180591620717411303424",
            "-0",
            "1e+16",
            "1E-400",
            "0.5e3",
            r#"{"a": {"b": [1, 2.5, null, true, false, "\u00e9\/\b\f\n\r\t\"\\"]}, "a": 1}"#,
            " \t\r\n[ ] ",
            "{ }",
            &deep,
            &big,
        ];
        for case in cases {
            assert!(
                validate(case).is_ok(),
                "refused {}",
                &case[..case.len().min(60)]
            );
        }
    }

    #[test]
    fn refuses_what_python_refuses() {
        let too_big = "9".repeat(4301);
        let cases = [
            ("", JsonError::Unterminated),
            ("   ", JsonError::Unterminated),
            ("[1,]", JsonError::Unexpected(3)),
            ("[1 2]", JsonError::Unexpected(3)),
            ("{\"a\" 1}", JsonError::Unexpected(5)),
            ("{1: 2}", JsonError::Unexpected(1)),
            ("{\"a\": 1,}", JsonError::Unexpected(8)),
            ("1.", JsonError::Trailing(1)),
            ("1e", JsonError::Trailing(1)),
            ("01", JsonError::Trailing(1)),
            ("-", JsonError::Unterminated),
            ("-a", JsonError::Unexpected(1)),
            ("nan", JsonError::Unexpected(0)),
            ("\"abc", JsonError::Unterminated),
            ("\"a\nb\"", JsonError::ControlCharacter(2)),
            ("\"\\x\"", JsonError::BadEscape(1)),
            ("\"\\u12g4\"", JsonError::BadEscape(1)),
            ("\"\\u12", JsonError::Unterminated),
            ("[[[", JsonError::Unterminated),
            ("[1]]", JsonError::Trailing(3)),
            ("{\"a\": 1} x", JsonError::Trailing(9)),
            ("\u{feff}1", JsonError::Unexpected(0)),
            (&too_big, JsonError::IntegerTooLong(0)),
        ];
        for (case, error) in cases {
            assert_eq!(validate(case), Err(error), "{case:?}");
        }
        assert_eq!(JsonText::parse_bytes(b"\"\xff\""), Err(JsonError::NotUtf8));
    }

    #[test]
    fn spaces_and_escapes_like_json_dumps() {
        let text =
            JsonText::parse("{\"a\":[1,2,{}],\n \"b\" : \"h\u{e9}llo \u{1d11e}\u{7f}\"}").unwrap();
        assert_eq!(
            text.as_str(),
            r#"{"a": [1, 2, {}], "b": "h\u00e9llo \ud834\udd1e\u007f"}"#
        );
        // What json.dumps writes is kept byte for byte.
        let dumped = r#"{"k": [1, 2.5, null, NaN, -Infinity, "a, b: \"c\"", "\ud800"], "n": 1180591620717411303424}"#;
        assert_eq!(JsonText::parse(dumped).unwrap().as_str(), dumped);
        assert_eq!(
            JsonText::string("tab\there \"q\" \\ é").as_str(),
            r#""tab\there \"q\" \\ \u00e9""#
        );
        assert_eq!(
            JsonText::from_user_text("plain words").as_str(),
            "\"plain words\""
        );
        assert_eq!(JsonText::from_user_text("NaN").as_str(), "NaN");
        assert_eq!(JsonText::from_user_text("").as_str(), "null");
    }

    #[test]
    fn truthiness_and_types_follow_python() {
        for falsy in [
            "0", "-0", "0.0", "-0.0e5", "1e-400", "\"\"", "false", "[]", "{}", "null", " [ ] ",
        ] {
            assert!(!JsonText::parse(falsy).unwrap().is_truthy(), "{falsy}");
        }
        for truthy in [
            "1",
            "NaN",
            "-Infinity",
            "\" \"",
            "[0]",
            "{\"\": 0}",
            "true",
            "0.001",
            "\"\\u0000\"",
        ] {
            assert!(JsonText::parse(truthy).unwrap().is_truthy(), "{truthy}");
        }
        let types = [
            ("null", "NoneType"),
            ("true", "bool"),
            ("-3", "int"),
            ("1180591620717411303424", "int"),
            ("2.5", "float"),
            ("1e5", "float"),
            ("NaN", "float"),
            ("-Infinity", "float"),
            ("\"s\"", "str"),
            ("[1]", "list"),
            ("{}", "dict"),
        ];
        for (text, name) in types {
            assert_eq!(
                JsonText::parse(text).unwrap().python_type_name(),
                name,
                "{text}"
            );
        }
    }

    /// Small deterministic generator, so the property test needs no extra crate.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }
    }

    /// Random mutations of valid texts never panic; what is accepted stays accepted after
    /// respacing, and respacing is idempotent.
    #[test]
    fn property_mutations_never_panic_and_spacing_is_stable() {
        let seeds = [
            r#"{"a": [1, -2.5e-3, null, true, false, NaN, "x\ud800\u00e9\"", {}], "b": {"c": []}}"#,
            r#"[[[[{"k": Infinity}]]], "\\", -0, 12345678901234567890123]"#,
        ];
        let alphabet = b"[]{}\",:\\-+.0123456789eEnulltrfaNIy \t\n\xc3\xa9u";
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for _ in 0..50_000 {
            let mut bytes = seeds[rng.below(2) as usize].as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len() as u64 + 1) as usize;
                let c = alphabet[rng.below(alphabet.len() as u64) as usize];
                match rng.below(3) {
                    0 if at < bytes.len() => bytes[at] = c,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, c),
                }
            }
            if let Ok(text) = JsonText::parse_bytes(&bytes) {
                let again = JsonText::parse(text.as_str()).expect("respaced text stays valid");
                assert_eq!(again, text);
                let _ = (text.is_truthy(), text.python_type_name());
            }
        }
    }
}
