//! File names as data. A name in a snapshot is whatever bytes a user chose: a newline would forge
//! an output line, an escape sequence would repaint the administrator's terminal, and an invalid
//! UTF-8 byte shown as U+FFFD could stand for any byte. Every name that reaches a terminal or a
//! log goes through [`shown`]; every name in `--json` through [`json`].

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `path` for a terminal, in the form a shell accepts back: as it is when every character is
/// printable and none is special to the shell, otherwise bash's `$'…'` quoting with each control
/// character, each bidirectional override and each invalid byte as its own escape
/// (`$'dir/bad\xffname'`, `$'a\nb'`). Pasting it into bash names the same file.
pub fn shown(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    if bytes
        .utf8_chunks()
        .all(|c| c.invalid().is_empty() && c.valid().chars().all(is_plain))
    {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut out = String::from("$'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\x1b' => out.push_str("\\e"),
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                c if (c as u32) < 0x80 && c.is_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if is_hidden(c) => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('\'');
    out
}

/// Printable and harmless to a shell outside quotes (no quoting needed to paste it back).
fn is_plain(c: char) -> bool {
    !c.is_control()
        && !is_hidden(c)
        && !matches!(
            c,
            ' ' | '\''
                | '"'
                | '\\'
                | '$'
                | '`'
                | '!'
                | '&'
                | ';'
                | '|'
                | '<'
                | '>'
                | '('
                | ')'
                | '*'
                | '?'
                | '['
                | ']'
                | '{'
                | '}'
                | '~'
                | '#'
        )
}

/// Characters a terminal does not show as themselves: C1 controls, the bidirectional marks that
/// reorder what is printed after them, line and paragraph separators, and the invisible or
/// look-alike spaces (zero-width, no-break, soft hyphen, byte-order mark).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{a0}'
                | '\u{ad}'
                | '\u{61c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// Words from elsewhere (another program's messages, a request from another host) for a
/// message: each control or hidden character (see [`shown`]) becomes `?`, so they can neither
/// forge a line nor repaint a terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if is_hidden(c) { '?' } else { c })
        .collect()
}

/// `path` for `--json`: a string when the name is valid UTF-8 (JSON escapes control characters
/// itself, so the string is exact); otherwise `{"hex": "…"}`, the name's bytes in hex, because a
/// JSON string cannot carry invalid UTF-8. Either form gives back the exact bytes.
pub fn json(path: &Path) -> serde_json::Value {
    let bytes = path.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(s) => serde_json::Value::String(s.to_owned()),
        Err(_) => {
            let hex = bytes.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
            serde_json::json!({ "hex": hex })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn p(bytes: &[u8]) -> &Path {
        Path::new(OsStr::from_bytes(bytes))
    }

    #[test]
    fn plain_names_are_shown_as_they_are() {
        assert_eq!(shown(p(b"etc/passwd")), "etc/passwd");
        assert_eq!(
            shown(Path::new("caf\u{e9}/r\u{e9}sum\u{e9}.txt")),
            "caf\u{e9}/r\u{e9}sum\u{e9}.txt"
        );
    }

    #[test]
    fn control_characters_escapes_and_invalid_bytes_each_get_an_escape() {
        assert_eq!(shown(p(b"a\nb")), "$'a\\nb'");
        assert_eq!(shown(p(b"x\x1b[2Jy")), "$'x\\e[2Jy'");
        assert_eq!(shown(p(b"dir/bad\xffname")), "$'dir/bad\\xffname'");
        assert_eq!(shown(p(b"it's here")), "$'it\\'s here'");
        assert_eq!(shown(Path::new("a\u{202e}b")), "$'a\\u202eb'");
        assert_eq!(shown(p(b"\x01")), "$'\\x01'");
    }

    #[test]
    fn each_escaped_name_is_one_line() {
        for name in [&b"a\nb"[..], b"\r\n\x0b\x0c", b"\xc3\x28\n"] {
            assert!(!shown(p(name)).contains(['\n', '\r', '\x0b', '\x0c']));
        }
    }

    #[test]
    fn json_keeps_the_exact_bytes() {
        assert_eq!(json(p(b"a\nb")), serde_json::json!("a\nb"));
        assert_eq!(json(p(b"bad\xff")), serde_json::json!({"hex": "626164ff"}));
    }
}
