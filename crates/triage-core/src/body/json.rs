//! A small JSON reader with hard bounds, for failure bodies: depth 32, 512
//! values, strings kept up to 1 KiB, numbers kept as text. Deeper or later
//! values are skipped in linear time, invalid UTF-8 becomes U+FFFD, and a
//! document cut short (or broken) keeps everything read before the cut.

const MAX_DEPTH: usize = 32;
const MAX_NODES: usize = 512;
const MAX_STRING: usize = 1024;
const MAX_NUMBER: usize = 32;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object.
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string, or a number as its text.
    pub(super) fn text(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Number(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn items(&self) -> &[Value] {
        match self {
            Value::Array(items) => items,
            _ => &[],
        }
    }
}

/// The result of a read: the top-level value and whether the document ended
/// (or broke) before it was complete.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) value: Option<Value>,
    pub(super) truncated: bool,
}

pub(super) fn parse(input: &[u8]) -> Parsed {
    let mut reader = Reader {
        input,
        pos: 0,
        nodes: 0,
        stopped: false,
    };
    reader.whitespace();
    if reader.pos >= input.len() {
        return Parsed {
            value: None,
            truncated: false,
        };
    }
    let value = reader.value(0);
    Parsed {
        value,
        truncated: reader.stopped,
    }
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    nodes: usize,
    /// The input ended or broke; every open container closes as it is.
    stopped: bool,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        self.whitespace();
        let Some(first) = self.peek() else {
            self.stopped = true;
            return None;
        };
        if depth >= MAX_DEPTH || self.nodes >= MAX_NODES {
            // Only a value can be skipped: anything else (a stray `}`, `]`
            // or `,`) would not be consumed, and the container around it
            // would ask again for ever. (Found by fuzzing.)
            if !matches!(
                first,
                b'{' | b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9'
            ) {
                self.stopped = true;
                return None;
            }
            self.skip();
            return Some(Value::Null);
        }
        self.nodes += 1;
        match first {
            b'{' => Some(self.object(depth)),
            b'[' => Some(self.array(depth)),
            b'"' => Some(Value::String(self.string())),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => Some(self.number()),
            _ => {
                self.stopped = true;
                None
            }
        }
    }

    fn object(&mut self, depth: usize) -> Value {
        self.pos += 1; // {
        let mut members = Vec::new();
        loop {
            self.whitespace();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Value::Object(members);
                }
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(b'"') => {}
                _ => {
                    self.stopped = true;
                    return Value::Object(members);
                }
            }
            if self.nodes >= MAX_NODES {
                self.skip_rest_of_container();
                return Value::Object(members);
            }
            let key = self.string();
            self.whitespace();
            if self.peek() != Some(b':') {
                self.stopped = true;
                return Value::Object(members);
            }
            self.pos += 1;
            match self.value(depth + 1) {
                Some(value) => members.push((key, value)),
                None => return Value::Object(members),
            }
            if self.stopped {
                return Value::Object(members);
            }
        }
    }

    fn array(&mut self, depth: usize) -> Value {
        self.pos += 1; // [
        let mut items = Vec::new();
        loop {
            self.whitespace();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return Value::Array(items);
                }
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                None => {
                    self.stopped = true;
                    return Value::Array(items);
                }
                Some(_) => {}
            }
            if self.nodes >= MAX_NODES {
                self.skip_rest_of_container();
                return Value::Array(items);
            }
            match self.value(depth + 1) {
                Some(value) => items.push(value),
                None => return Value::Array(items),
            }
            if self.stopped {
                return Value::Array(items);
            }
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Option<Value> {
        let rest = &self.input[self.pos..];
        if rest.len() >= word.len() && &rest[..word.len()] == word {
            self.pos += word.len();
            return Some(value);
        }
        if word.starts_with(rest) {
            self.pos = self.input.len();
        }
        self.stopped = true;
        None
    }

    fn number(&mut self) -> Value {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.pos += 1;
        }
        let end = self.pos.min(start + MAX_NUMBER);
        if self.pos >= self.input.len() {
            self.stopped = true;
        }
        Value::Number(String::from_utf8_lossy(&self.input[start..end]).into_owned())
    }

    /// Reads a string at `"`, keeping at most [`MAX_STRING`] bytes of it.
    fn string(&mut self) -> String {
        self.pos += 1; // "
        let mut out: Vec<u8> = Vec::new();
        let mut full = false;
        let mut push = |out: &mut Vec<u8>, bytes: &[u8]| {
            if !full && out.len() + bytes.len() <= MAX_STRING {
                out.extend_from_slice(bytes);
            } else {
                full = true;
            }
        };
        loop {
            let Some(b) = self.peek() else {
                self.stopped = true;
                break;
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        self.stopped = true;
                        break;
                    };
                    self.pos += 1;
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        _ => None,
                    };
                    if let Some(c) = simple {
                        push(&mut out, &[c]);
                    } else if e == b'u' {
                        let c = self.unicode_escape();
                        let mut buf = [0u8; 4];
                        push(&mut out, c.encode_utf8(&mut buf).as_bytes());
                    }
                }
                _ => push(&mut out, &[b]),
            }
        }
        let mut s = String::from_utf8_lossy(&out).into_owned();
        if full {
            // The cut may have split a character; lossy decoding marked it.
            while s.ends_with('\u{fffd}') && s.len() > MAX_STRING - 4 {
                s.pop();
            }
        }
        s
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.input.get(self.pos..self.pos + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        let v = u32::from_str_radix(text, 16).ok()?;
        self.pos += 4;
        Some(v)
    }

    fn unicode_escape(&mut self) -> char {
        let Some(high) = self.hex4() else {
            return '\u{fffd}';
        };
        if (0xD800..0xDC00).contains(&high) {
            if self.input.get(self.pos..self.pos + 2) == Some(b"\\u") {
                let save = self.pos;
                self.pos += 2;
                if let Some(low) = self.hex4().filter(|l| (0xDC00..0xE000).contains(l)) {
                    let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    return char::from_u32(c).unwrap_or('\u{fffd}');
                }
                self.pos = save;
            }
            return '\u{fffd}';
        }
        char::from_u32(high).unwrap_or('\u{fffd}')
    }

    /// Skips to the end of the container the reader is in.
    fn skip_rest_of_container(&mut self) {
        self.skip_from(1);
    }

    /// Skips one value without building it, in linear time.
    fn skip(&mut self) {
        self.skip_from(0);
    }

    fn skip_from(&mut self, mut depth: usize) {
        loop {
            let Some(b) = self.peek() else {
                self.stopped = true;
                return;
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        match c {
                            b'\\' => self.pos += 1,
                            b'"' => break,
                            _ => {}
                        }
                    }
                    if depth == 0 {
                        return;
                    }
                    continue;
                }
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return;
                    }
                }
                b',' if depth == 0 => return,
                _ => {}
            }
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: Vec<(&str, Value)>) -> Value {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    #[test]
    fn a_stray_close_past_the_depth_limit_ends_the_read() {
        // `[` past MAX_DEPTH, then a `}` where a value should be: this used
        // to loop for ever, pushing nulls (found by fuzzing).
        let mut input = b"{\"a\":".to_vec();
        input.extend(std::iter::repeat_n(b'[', MAX_DEPTH + 4));
        input.extend_from_slice(b"}ceeded\"}");
        let parsed = parse(&input);
        assert!(parsed.truncated);
        assert!(parsed.value.is_some());
        // And past the node limit, likewise.
        let mut input = b"[".to_vec();
        for _ in 0..MAX_NODES + 4 {
            input.extend_from_slice(b"1,");
        }
        input.extend_from_slice(b"}]");
        assert!(parse(&input).value.is_some());
    }

    #[test]
    fn reads_documents() {
        let p = parse(
            br#" {"a": [1, -2.5e3, true, null], "b": {"c": "d\u00e9\ud83d\ude00\n"}} trailing"#,
        );
        assert!(!p.truncated);
        assert_eq!(
            p.value.unwrap(),
            obj(vec![
                (
                    "a",
                    Value::Array(vec![
                        Value::Number("1".into()),
                        Value::Number("-2.5e3".into()),
                        Value::Bool(true),
                        Value::Null
                    ])
                ),
                ("b", obj(vec![("c", Value::String("dé😀\n".into()))])),
            ])
        );
    }

    #[test]
    fn keeps_what_came_before_a_cut() {
        let p = parse(br#"{"error":{"code":"insufficient_quota","message":"You exceeded your cur"#);
        assert!(p.truncated);
        let v = p.value.unwrap();
        let err = v.get("error").unwrap();
        assert_eq!(
            err.get("code").and_then(Value::text),
            Some("insufficient_quota")
        );
        assert_eq!(
            err.get("message").and_then(Value::text),
            Some("You exceeded your cur")
        );
    }

    #[test]
    fn hostile_input_is_bounded() {
        let deep = vec![b'['; 1_000_000];
        let p = parse(&deep);
        assert!(p.truncated);
        let mut nested = Vec::new();
        for _ in 0..100_000 {
            nested.extend_from_slice(br#"{"a":"#);
        }
        assert!(parse(&nested).truncated);
        let long = format!(r#"{{"m":"{}"}}"#, "x".repeat(10_000));
        let v = parse(long.as_bytes()).value.unwrap();
        assert_eq!(
            v.get("m").and_then(Value::text).map(str::len),
            Some(MAX_STRING)
        );
        let p = parse(b"{\"m\":\"a\xff\xfeb\"}");
        assert_eq!(
            p.value.unwrap().get("m").and_then(Value::text),
            Some("a\u{fffd}\u{fffd}b")
        );
        assert_eq!(
            parse(br#"{"s":"\ud800x"}"#)
                .value
                .unwrap()
                .get("s")
                .and_then(Value::text),
            Some("\u{fffd}x")
        );
        // Many values: the later ones are skipped, not built.
        let many = format!("[{}]", vec!["1"; 5000].join(","));
        let v = parse(many.as_bytes()).value.unwrap();
        assert!(v.items().len() <= MAX_NODES);
    }
}
