//! The layering the code keeps, checked on the source tree, so that an
//! import against it fails the suite instead of waiting for a review:
//! imports between top-level modules run one way only (down the levels
//! below), no module but `raft` names openraft, `limits` depends on
//! nothing, and the transparency-log core crate depends on no runtime,
//! storage or network crate (its own compilation enforces the rest).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module's level: a module may import only from lower
/// levels (`ledger` is the core crate, re-exported).
const LEVELS: &[(&str, u32)] = &[
    ("cli", 9),
    ("node", 8),
    ("api", 7),
    ("fsck", 7),
    ("witness", 7),
    ("raft", 6),
    ("analysis", 6),
    ("audit", 6),
    ("auth", 5),
    ("http_server", 5),
    ("storage", 4),
    ("ingest", 4),
    ("disk", 4),
    ("tls", 4),
    ("config", 3),
    ("key_file", 2),
    ("clock", 2),
    ("proto", 2),
    ("limits", 1),
    ("ledger", 0),
];

fn level(module: &str) -> Option<u32> {
    LEVELS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's code without its comments and its unit tests (tests may reach
/// anywhere).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crate::<module>` names in `code`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

#[test]
fn imports_run_down_the_layers_and_openraft_stays_in_raft() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut broken = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .expect("a top-level module");
        if top == "lib" || top == "main" || rel.ends_with("tests.rs") {
            continue;
        }
        let Some(own) = level(&top) else {
            broken.push(format!("{}: module {top} has no level here", rel.display()));
            continue;
        };
        let code = code_of(path);
        for used in crate_modules(&code) {
            if used == top {
                continue;
            }
            match level(&used) {
                Some(l) if l < own => {}
                _ => broken.push(format!("{}: {top} imports {used}", rel.display())),
            }
        }
        if top != "raft" && code.contains("openraft::") {
            broken.push(format!("{}: names openraft outside raft", rel.display()));
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_core_crate_depends_on_no_runtime_storage_or_network_crate() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/tlog/Cargo.toml");
    let text = std::fs::read_to_string(manifest).expect("core manifest");
    let deps: toml::Table = toml::from_str(&text).expect("manifest parses");
    let deps = deps
        .get("dependencies")
        .and_then(|d| d.as_table())
        .expect("a dependencies table");
    for forbidden in [
        "tokio", "redb", "tonic", "prost", "openraft", "hyper", "axum", "reqwest", "ironlog",
    ] {
        assert!(
            !deps.contains_key(forbidden),
            "the core crate depends on {forbidden}"
        );
    }
    assert!(deps.contains_key("sha2"), "{deps:?}");
}
