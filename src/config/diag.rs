//! Configuration diagnostics: where an error is (`file:line:column`), which key, what is wrong,
//! and how to fix it — and the collection of *every* structural error of a file in one pass.
//!
//! serde stops at the first unknown key or wrong type. To report them all, the file is parsed,
//! the offending entry is blanked out with spaces (so that every later span still points into the
//! original text), and the parse is repeated until it succeeds or nothing more can be blanked.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml_edit::{ImDocument, Item, Table, Value};

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the key, such as `policy.home.keep.daily`; empty for the whole file.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets of one file to line and column, and builds diagnostics there.
pub struct SourceMap<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl SourceMap<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    pub fn at(&self, span: Range<usize>, key: &str, message: String) -> Diagnostic {
        let (line, column) = self.line_col(span.start);
        Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            key: key.to_owned(),
            message,
            hint: None,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Deserializes `text`, collecting every unknown key and wrong type instead of the first only.
/// Returns the value when the file could finally be read, with all diagnostics met on the way.
pub fn parse_collecting<T: DeserializeOwned>(
    text: &str,
    file: &Path,
) -> (Option<T>, Vec<Diagnostic>) {
    const MAX_ERRORS: usize = 100;
    let map = SourceMap { file, text };
    let mut work = text.to_owned();
    let mut diags = Vec::new();
    while diags.len() < MAX_ERRORS {
        let err = match toml::from_str::<T>(&work) {
            Ok(value) => return (Some(value), diags),
            Err(err) => err,
        };
        let span = err.span().unwrap_or(0..0);
        let Ok(doc) = ImDocument::parse(work.as_str()) else {
            diags.push(syntax_error(&map, span, err.message()));
            return (None, diags);
        };
        let entry = innermost_entry(doc.as_table(), &span, &mut Vec::new());
        let key = entry.as_ref().map(|e| e.path.join(".")).unwrap_or_default();
        let (message, hint) = reword(err.message());
        diags.push(Diagnostic {
            hint,
            ..map.at(span, &key, message)
        });
        let Some(range) = entry.and_then(|e| blank_range(&work, &e)) else {
            return (None, diags);
        };
        blank(&mut work, range);
    }
    (None, diags)
}

fn syntax_error(map: &SourceMap<'_>, span: Range<usize>, message: &str) -> Diagnostic {
    let first_line = message.lines().next().unwrap_or("invalid TOML").trim();
    let detail: Vec<&str> = message
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Diagnostic {
        hint: (!detail.is_empty()).then(|| detail.join("; ")),
        ..map.at(span, "", format!("not valid TOML: {first_line}"))
    }
}

/// Turns serde's wording into the administrator's: keys rather than fields, with the nearest
/// valid key suggested.
fn reword(message: &str) -> (String, Option<String>) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = match nearest(name, &valid) {
            Some(best) => format!("did you mean \"{best}\"?"),
            None => format!("valid keys here: {}", valid.join(", ")),
        };
        return (format!("unknown key \"{name}\""), Some(hint));
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        let expected = match expected {
            "a sequence" => "an array",
            "a borrowed string" | "a string" | "string" => "a string",
            "i64" | "u32" | "u64" => "an integer",
            other => other,
        };
        let found = found.replace("sequence", "array").replace("map", "table");
        return (
            format!("wrong type: expected {expected}, found {found}"),
            None,
        );
    }
    (message.to_owned(), None)
}

/// The valid key closest to a misspelt one, if any is close enough to be a plausible typo.
pub fn nearest<'a>(name: &str, valid: &[&'a str]) -> Option<&'a str> {
    valid
        .iter()
        .map(|v| (strsim::damerau_levenshtein(name, v), *v))
        .filter(|(d, v)| *d <= 2.max(v.len() / 3))
        .min()
        .map(|(_, v)| v)
}

struct Entry {
    path: Vec<String>,
    key: Range<usize>,
    value: Range<usize>,
    inline: bool,
    header: bool,
}

/// The deepest key/value entry whose key or value contains the error's span.
fn innermost_entry(table: &Table, span: &Range<usize>, path: &mut Vec<String>) -> Option<Entry> {
    for (name, item) in table.iter() {
        let Some((key, _)) = table.get_key_value(name) else {
            continue;
        };
        path.push(name.to_owned());
        let found = entry_for(key.span(), item, span, path);
        path.pop();
        if found.is_some() {
            return found;
        }
    }
    None
}

fn entry_for(
    key_span: Option<Range<usize>>,
    item: &Item,
    span: &Range<usize>,
    path: &mut Vec<String>,
) -> Option<Entry> {
    let key = key_span.unwrap_or(usize::MAX..usize::MAX);
    let contains = |r: &Range<usize>| r.start <= span.start && span.start < r.end.max(r.start + 1);
    match item {
        Item::Table(t) => {
            if let Some(inner) = innermost_entry(t, span, path) {
                return Some(inner);
            }
            let header = !t.is_dotted();
            contains(&key).then(|| Entry {
                path: path.clone(),
                key: key.clone(),
                value: key,
                inline: false,
                header,
            })
        }
        Item::Value(v) => {
            let value = v.span()?;
            if let Value::InlineTable(t) = v {
                for (name, _) in t.iter() {
                    let Some((k, inner_item)) = t.get_key_value(name) else {
                        continue;
                    };
                    path.push(name.to_owned());
                    let found = entry_for(k.span(), inner_item, span, path).map(|mut e| {
                        e.inline = true;
                        e
                    });
                    path.pop();
                    if found.is_some() {
                        return found;
                    }
                }
            }
            (contains(&key) || contains(&value)).then(|| Entry {
                path: path.clone(),
                key,
                value,
                inline: false,
                header: false,
            })
        }
        Item::None | Item::ArrayOfTables(_) => None,
    }
}

/// The bytes to blank so that the entry disappears and the rest still parses.
fn blank_range(text: &str, e: &Entry) -> Option<Range<usize>> {
    let line_start = |i: usize| text[..i].rfind('\n').map_or(0, |n| n + 1);
    if e.header {
        // A whole `[table]` section: from its header line to the next header or the end.
        let start = line_start(e.key.start);
        let mut end = text[start..]
            .find('\n')
            .map_or(text.len(), |n| start + n + 1);
        while end < text.len() {
            let next = text[end..].find('\n').map_or(text.len(), |n| end + n + 1);
            if text[end..next].trim_start().starts_with('[') {
                break;
            }
            end = next;
        }
        return Some(start..end);
    }
    if e.key.start == usize::MAX {
        return None;
    }
    if e.inline {
        // Inside `{ … }`: take one neighbouring comma with the entry.
        let after = &text[e.value.end..];
        let trimmed = after.trim_start();
        if trimmed.starts_with(',') {
            let comma = e.value.end + (after.len() - trimmed.len());
            return Some(e.key.start..comma + 1);
        }
        let before = text[..e.key.start].trim_end();
        if before.ends_with(',') {
            return Some(before.len() - 1..e.value.end);
        }
        return Some(e.key.start..e.value.end);
    }
    Some(line_start(e.key.start)..e.value.end)
}

fn blank(text: &mut String, range: Range<usize>) {
    let replaced: String = text[range.clone()]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    // Multi-byte characters become several spaces' worth of bytes: pad to keep offsets.
    let pad = range.len() - replaced.len();
    text.replace_range(range, &(replaced + &" ".repeat(pad)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_key_is_suggested_for_typos_only() {
        let keys = ["hourly", "daily", "weekly", "last", "within"];
        assert_eq!(nearest("dayly", &keys), Some("daily"));
        assert_eq!(nearest("hourlyy", &keys), Some("hourly"));
        assert_eq!(nearest("frobnicate", &keys), None);
    }

    #[test]
    fn line_and_column_count_characters() {
        let map = SourceMap {
            file: Path::new("f.toml"),
            text: "a = 1\nbé = 2\n",
        };
        assert_eq!(map.line_col(0), (1, 1));
        assert_eq!(map.line_col(6), (2, 1));
        assert_eq!(map.line_col(10), (2, 4));
    }
}
