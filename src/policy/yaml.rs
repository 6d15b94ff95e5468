//! YAML for policy files, with the line and column of everything.
//!
//! yaml-rust2's event parser (a maintained YAML 1.2 parser that gives a
//! position for every event) builds a JSON value, and remembers where each
//! node and each mapping key starts, keyed by JSON pointer. Structs are then
//! filled from that value by serde, through `serde_path_to_error`, so an
//! error (an unknown field, a wrong type) names the pointer it happened at,
//! which maps back to a line and column of the file.
//!
//! Deliberately narrow: one document; no anchors, aliases or tags (a policy
//! is read by auditors, and aliases let a file say one thing in two places);
//! duplicate keys are an error. Plain scalars resolve as YAML 1.2's core
//! schema says (null, booleans, integers, floats); quoted ones are strings.
//!
//! Owns: text to located value, and located deserialisation errors. Must
//! not: know what a policy means.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

fn pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        column: m.col() + 1,
    }
}

/// A parsed document and where its parts are.
#[derive(Debug, Clone, Default)]
pub struct Located {
    pub value: Value,
    /// JSON pointer (`/modules/deny/0`) to where the node starts.
    nodes: HashMap<String, Pos>,
    /// JSON pointer of a mapping entry to where its key starts.
    keys: HashMap<String, Pos>,
}

/// A YAML or shape error, at a position.
#[derive(Debug, Clone)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

impl Located {
    /// Where the node at `pointer` starts (else its nearest ancestor).
    pub fn pos(&self, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(at) = self.nodes.get(p) {
                return *at;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos { line: 1, column: 1 },
            }
        }
    }

    /// Fills `T` from the document; errors say where.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, YamlError> {
        serde_path_to_error::deserialize(self.value.clone()).map_err(|e| {
            let pointer = pointer_of(e.path());
            let message = e.inner().to_string();
            // An unknown field is named by its key; other errors by the value.
            let at = if message.starts_with("unknown field") {
                self.keys
                    .get(&pointer)
                    .copied()
                    .unwrap_or_else(|| self.pos(&pointer))
            } else {
                self.pos(&pointer)
            };
            let shown = e.path().to_string();
            YamlError {
                pos: at,
                message: if shown == "." {
                    message
                } else {
                    format!("{shown}: {message}")
                },
            }
        })
    }
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut p = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => p.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                p.push('/');
                p.push_str(&escape_pointer(key));
            }
            Segment::Enum { variant } => {
                p.push('/');
                p.push_str(&escape_pointer(variant));
            }
            Segment::Unknown => {}
        }
    }
    p
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Parses one YAML document. An empty document is `null`.
pub fn parse(text: &str) -> Result<Located, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut out = Located::default();
    let err = |m: &Marker, msg: String| YamlError {
        pos: pos(m),
        message: msg,
    };
    let scan = |e: yaml_rust2::ScanError| YamlError {
        pos: pos(e.marker()),
        message: e.info().to_string(),
    };
    let mut value = Value::Null;
    let mut documents = 0;
    loop {
        let (ev, mark) = parser.next_token().map_err(scan)?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(err(&mark, "a policy file holds one YAML document".into()));
                }
                let (ev, mark) = parser.next_token().map_err(scan)?;
                value = node(&mut parser, ev, mark, "", &mut out, 0)?;
            }
            other => return Err(err(&mark, format!("unexpected YAML event {other:?}"))),
        }
    }
    out.value = value;
    Ok(out)
}

const MAX_DEPTH: usize = 64;

fn node(
    parser: &mut Parser<std::str::Chars<'_>>,
    ev: Event,
    mark: Marker,
    pointer: &str,
    out: &mut Located,
    depth: usize,
) -> Result<Value, YamlError> {
    let err = |m: &Marker, msg: &str| YamlError {
        pos: pos(m),
        message: msg.to_string(),
    };
    let scan = |e: yaml_rust2::ScanError| YamlError {
        pos: pos(e.marker()),
        message: e.info().to_string(),
    };
    if depth > MAX_DEPTH {
        return Err(err(&mark, "nested too deeply"));
    }
    out.nodes.insert(pointer.to_string(), pos(&mark));
    match ev {
        Event::Alias(_) => Err(err(&mark, "YAML aliases are not allowed in a policy")),
        Event::Scalar(_, _, anchor, _)
        | Event::SequenceStart(anchor, _)
        | Event::MappingStart(anchor, _)
            if anchor != 0 =>
        {
            Err(err(&mark, "YAML anchors are not allowed in a policy"))
        }
        Event::Scalar(_, _, _, Some(_))
        | Event::SequenceStart(_, Some(_))
        | Event::MappingStart(_, Some(_)) => {
            Err(err(&mark, "YAML tags are not allowed in a policy"))
        }
        Event::Scalar(text, style, _, None) => Ok(scalar(text, style)),
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            loop {
                let (ev, m) = parser.next_token().map_err(scan)?;
                if ev == Event::SequenceEnd {
                    return Ok(Value::Array(items));
                }
                let p = format!("{pointer}/{}", items.len());
                items.push(node(parser, ev, m, &p, out, depth + 1)?);
            }
        }
        Event::MappingStart(..) => {
            let mut map = Map::new();
            loop {
                let (ev, m) = parser.next_token().map_err(scan)?;
                let key = match ev {
                    Event::MappingEnd => return Ok(Value::Object(map)),
                    Event::Scalar(text, _, 0, None) => text,
                    _ => return Err(err(&m, "mapping keys must be plain strings")),
                };
                if map.is_empty() {
                    // A block mapping's start mark is past its first key's
                    // first character: the first key is where it starts.
                    out.nodes.insert(pointer.to_string(), pos(&m));
                }
                if map.contains_key(&key) {
                    return Err(err(&m, &format!("duplicate key {key:?}")));
                }
                let p = format!("{pointer}/{}", escape_pointer(&key));
                out.keys.insert(p.clone(), pos(&m));
                let (ev, vm) = parser.next_token().map_err(scan)?;
                let v = node(parser, ev, vm, &p, out, depth + 1)?;
                map.insert(key, v);
            }
        }
        _ => Err(err(&mark, "unexpected YAML structure")),
    }
}

/// YAML 1.2 core schema resolution of a scalar.
fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = text.trim_start_matches('+').parse::<i64>()
    {
        return Value::Number(n.into());
    }
    let is_float = {
        let (mantissa, exp) = match digits.find(['e', 'E']) {
            Some(i) => (&digits[..i], Some(&digits[i + 1..])),
            None => (digits, None),
        };
        let m_ok = match mantissa.split_once('.') {
            Some((a, b)) => {
                (!a.is_empty() || !b.is_empty())
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            }
            None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
        };
        let e_ok = exp.is_none_or(|e| {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
        });
        m_ok && e_ok && (mantissa.contains('.') || exp.is_some())
    };
    if is_float
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[allow(dead_code)]
        name: String,
        #[serde(default)]
        #[allow(dead_code)]
        items: Vec<Item>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Item {
        #[allow(dead_code)]
        n: u32,
    }

    #[test]
    fn positions_of_nodes_and_errors() {
        let text = "name: x\nitems:\n  - n: 1\n  - n: two\n";
        let doc = parse(text).unwrap();
        assert_eq!(doc.pos("/items/1"), Pos { line: 4, column: 5 });
        assert_eq!(doc.pos("/items/1/n"), Pos { line: 4, column: 8 });
        let e = doc.deserialize::<Doc>().unwrap_err();
        assert_eq!(e.pos, Pos { line: 4, column: 8 }, "{e:?}");
        assert!(e.message.starts_with("items[1].n: invalid type"), "{e:?}");

        let doc = parse("name: x\nitems:\n  - n: 1\n    m: 2\n").unwrap();
        let e = doc.deserialize::<Doc>().unwrap_err();
        assert_eq!(e.pos, Pos { line: 4, column: 5 }, "{e:?}");
        assert!(e.message.contains("unknown field `m`"), "{e:?}");
    }

    #[test]
    fn refuses_what_a_policy_must_not_use() {
        for (text, line, what) in [
            ("a: 1\na: 2\n", 2, "duplicate key"),
            ("a: &x 1\nb: *x\n", 1, "anchors"),
            ("a: !!str 1\n", 1, "tags"),
            ("a: 1\n---\nb: 2\n", 2, "one YAML document"),
            ("a: [1, 2\n", 2, ""),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.pos.line, line, "{text:?}: {e:?}");
            assert!(e.message.contains(what), "{text:?}: {e:?}");
        }
    }

    #[test]
    fn core_schema_scalars() {
        let doc = parse("a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf: v1.2.3\ng: 1.20\n").unwrap();
        assert_eq!(
            doc.value,
            serde_json::json!({"a": 1, "b": "1", "c": true, "d": null, "e": 1.5, "f": "v1.2.3", "g": 1.2})
        );
    }
}
