//! The source's shape, checked: which top-level module imports which (from the `crate::` and
//! `super::` paths in `src/`, test modules left out). No two modules import each other, however
//! indirectly; the domain never imports the front end (`cli`, `commands`) or the renderers
//! (`report`). `cargo test --test it layout -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    collect(Path::new("src"), &mut files);
    for file in files {
        let rel = file.strip_prefix("src").unwrap();
        let parts: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let top = match parts[0].as_str() {
            "lib" | "main" => "lib".to_owned(),
            m => m.to_owned(),
        };
        // In src/x/mod.rs (and a top-level file) `super::` is the crate root.
        let super_is_root = parts.len() == 1 || parts.last().is_some_and(|p| p == "mod");
        let text = std::fs::read_to_string(&file).unwrap();
        let code = without_tests(&text);
        let mut used = BTreeSet::new();
        for (prefix, root) in [("crate::", true), ("super::", super_is_root)] {
            for (at, _) in code.as_str().match_indices(prefix) {
                if root {
                    used.extend(first_segments(&code[at + prefix.len()..]));
                }
            }
        }
        used.remove(&top);
        edges.entry(top).or_default().extend(used);
    }
    edges
}

/// `text` without its `#[cfg(test)] mod tests { … }` block (code after it is kept).
fn without_tests(text: &str) -> String {
    let Some(start) = text.find("#[cfg(test)]\nmod tests {") else {
        return text.to_owned();
    };
    let open = start + text[start..].find('{').unwrap();
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return format!("{}{}", &text[..start], &text[open + i + 1..]);
                }
            }
            _ => {}
        }
    }
    text[..start].to_owned()
}

/// The modules a path after `crate::` names: `a::b` → a; `{a::b, c, d::{e}}` → a, c, d.
fn first_segments(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)]
            .into_iter()
            .filter(|i| !i.is_empty())
            .collect();
    };
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                out.push(ident(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.retain(|i| !i.is_empty() && i != "self");
    out
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every module `from` reaches through imports.
fn reach(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(m) = todo.pop() {
        for next in edges.get(&m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn code_after_a_test_module_is_read() {
    let text =
        "use crate::a;\n#[cfg(test)]\nmod tests {\n    fn f() { crate::t(); }\n}\nuse crate::b;\n";
    let code = without_tests(text);
    assert!(
        code.contains("crate::a") && code.contains("crate::b"),
        "{code}"
    );
    assert!(!code.contains("crate::t"), "{code}");
}

#[test]
fn grouped_imports_are_read_too() {
    assert_eq!(first_segments("run::Engine;"), ["run"]);
    assert_eq!(
        first_segments("{\n    cli::x, commands::{a, b},\n    report,\n};"),
        ["cli", "commands", "report"]
    );
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let edges = graph();
    for (m, to) in &edges {
        println!(
            "{m} -> {}",
            to.iter().cloned().collect::<Vec<_>>().join(" ")
        );
    }
    assert!(edges.len() > 20, "the source was found: {edges:?}");
    let cycles: Vec<String> = edges
        .keys()
        .filter(|m| reach(&edges, m).contains(*m))
        .cloned()
        .collect();
    assert!(cycles.is_empty(), "modules in an import cycle: {cycles:?}");
}

#[test]
fn the_domain_never_imports_the_front_end_or_the_renderers() {
    let edges = graph();
    let front = ["cli", "commands", "report"];
    for (m, to) in &edges {
        if front.contains(&m.as_str()) || m == "lib" {
            continue;
        }
        let wrong: Vec<&String> = to.iter().filter(|t| front.contains(&t.as_str())).collect();
        assert!(wrong.is_empty(), "{m} imports {wrong:?}");
    }
    assert!(
        !reach(&edges, "report").contains("commands"),
        "renderers do not call commands"
    );
}
