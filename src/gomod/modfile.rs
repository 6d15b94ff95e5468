//! The parts of a go.mod file a policy needs, with line numbers: `module`,
//! `go`, `toolchain`, `require` (and `// indirect`), `replace` and
//! `retract` (single versions and `[low, high]` intervals), in single-line
//! and block (`require ( ... )`) form, as golang.org/x/mod/modfile reads
//! them. Other directives are skipped. Tokens may be Go-quoted strings.
//!
//! Owns: parsing only. Must not: read files or resolve anything.

/// One `require` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Require {
    pub path: String,
    pub version: String,
    pub indirect: bool,
    pub line: usize,
}

/// One `replace` line (`new_version` empty for a directory replacement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replace {
    pub old_path: String,
    pub old_version: Option<String>,
    pub new_path: String,
    pub new_version: Option<String>,
    pub line: usize,
}

/// One `retract` entry: `low == high` for a single version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retract {
    pub low: String,
    pub high: String,
    pub rationale: String,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModFile {
    pub module: Option<String>,
    pub go: Option<(String, usize)>,
    pub toolchain: Option<(String, usize)>,
    pub require: Vec<Require>,
    pub replace: Vec<Replace>,
    pub retract: Vec<Retract>,
}

/// Splits a line into tokens and its trailing comment.
fn tokens(line: &str) -> (Vec<String>, String) {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    let mut comment = String::new();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if line[i..].starts_with("//") {
            comment = line[i + 2..].trim().to_string();
            break;
        }
        if c == '"' || c == '`' {
            let mut s = String::new();
            let mut escaped = false;
            for (_, d) in chars.by_ref() {
                if c == '"' && escaped {
                    s.push(d);
                    escaped = false;
                } else if c == '"' && d == '\\' {
                    escaped = true;
                } else if d == c {
                    break;
                } else {
                    s.push(d);
                }
            }
            out.push(s);
            continue;
        }
        if matches!(c, '(' | ')' | '[' | ']' | ',') {
            out.push(c.to_string());
            continue;
        }
        let mut s = String::from(c);
        while let Some(&(j, d)) = chars.peek() {
            if d.is_whitespace()
                || matches!(d, '(' | ')' | '[' | ']' | ',' | '"')
                || line[j..].starts_with("//")
            {
                break;
            }
            s.push(d);
            chars.next();
        }
        out.push(s);
    }
    (out, comment)
}

/// Parses go.mod text. Lines it does not understand are skipped, as a
/// policy check only needs the directives above.
pub fn parse(text: &str) -> ModFile {
    let mut m = ModFile::default();
    let mut block: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let (toks, comment) = tokens(raw);
        if toks.is_empty() {
            continue;
        }
        let (verb, args): (String, &[String]) = match &block {
            Some(b) => {
                if toks[0] == ")" {
                    block = None;
                    continue;
                }
                (b.clone(), &toks[..])
            }
            None => {
                if toks.len() == 2 && toks[1] == "(" {
                    block = Some(toks[0].clone());
                    continue;
                }
                (toks[0].clone(), &toks[1..])
            }
        };
        directive(&mut m, &verb, args, &comment, n);
    }
    m
}

fn directive(m: &mut ModFile, verb: &str, args: &[String], comment: &str, line: usize) {
    match (verb, args) {
        ("module", [p]) => m.module = Some(p.clone()),
        ("go", [v]) => m.go = Some((v.clone(), line)),
        ("toolchain", [v]) => m.toolchain = Some((v.clone(), line)),
        ("require", [p, v]) => m.require.push(Require {
            path: p.clone(),
            version: v.clone(),
            indirect: comment == "indirect" || comment.starts_with("indirect;"),
            line,
        }),
        ("replace", _) => {
            let Some(arrow) = args.iter().position(|a| a == "=>") else {
                return;
            };
            let (old, new) = (&args[..arrow], &args[arrow + 1..]);
            let (Some(old_path), Some(new_path)) = (old.first(), new.first()) else {
                return;
            };
            m.replace.push(Replace {
                old_path: old_path.clone(),
                old_version: old.get(1).cloned(),
                new_path: new_path.clone(),
                new_version: new.get(1).cloned(),
                line,
            });
        }
        ("retract", [v]) => m.retract.push(Retract {
            low: v.clone(),
            high: v.clone(),
            rationale: comment.to_string(),
            line,
        }),
        ("retract", [open, lo, comma, hi, close])
            if open == "[" && comma == "," && close == "]" =>
        {
            m.retract.push(Retract {
                low: lo.clone(),
                high: hi.clone(),
                rationale: comment.to_string(),
                line,
            })
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_with_lines() {
        let m = parse(
            "module example.com/m // the module\n\ngo 1.22\ntoolchain go1.27.4\n\
             require example.com/a v1.0.0\nrequire (\n\texample.com/b v1.2.0 // indirect\n\
             \t\"example.com/c\" v0.0.0-20230102030405-abcdef123456\n)\n\
             replace example.com/a => example.com/a2 v1.0.1\nreplace example.com/d v1.0.0 => ../d\n\
             retract v1.0.1 // oops\nretract (\n\t[v1.1.0, v1.1.9] // broken\n)\n",
        );
        assert_eq!(m.module.as_deref(), Some("example.com/m"));
        assert_eq!(m.go, Some(("1.22".into(), 3)));
        assert_eq!(m.toolchain, Some(("go1.27.4".into(), 4)));
        assert_eq!(m.require.len(), 3);
        assert_eq!(m.require[1].line, 7);
        assert!(m.require[1].indirect && !m.require[0].indirect);
        assert_eq!(m.require[2].path, "example.com/c");
        assert_eq!(m.replace[0].new_version.as_deref(), Some("v1.0.1"));
        assert_eq!(m.replace[1].old_version.as_deref(), Some("v1.0.0"));
        assert_eq!(m.replace[1].new_version, None);
        assert_eq!(
            m.retract,
            vec![
                Retract {
                    low: "v1.0.1".into(),
                    high: "v1.0.1".into(),
                    rationale: "oops".into(),
                    line: 12
                },
                Retract {
                    low: "v1.1.0".into(),
                    high: "v1.1.9".into(),
                    rationale: "broken".into(),
                    line: 14
                }
            ]
        );
    }
}
