//! Repository checks that run as a test: every Rust source file opens with a `//!` header
//! saying what it owns, no `dbg!` or `inherit_*` grant slips into the host, and every
//! integration test `docs/security.md` names as proof exists.

use std::path::{Path, PathBuf};

/// Returns every problem found under `root`.
pub fn check(root: &Path) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for dir in [
        "host/src",
        "plugin-sdk/src",
        "xtask/src",
        "example-plugins",
        "tests",
        "benches",
    ] {
        for file in rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let relative = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .display()
                .to_string();
            if !text.trim_start().starts_with("//!") {
                problems.push(format!("{relative}: missing the leading //! header"));
            }
            if text.contains(concat!("dbg", "!(")) {
                problems.push(format!("{relative}: contains dbg!"));
            }
            if dir == "host/src" && text.contains(concat!(".inherit", "_")) {
                problems.push(format!(
                    "{relative}: grants ambient authority with inherit_*"
                ));
            }
        }
    }
    problems.extend(missing_cited_tests(root));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The `` `module::test` `` citations of `docs/security.md` whose module is a file of
/// `tests/all/` but which has no such test function.
fn missing_cited_tests(root: &Path) -> Vec<String> {
    let doc = std::fs::read_to_string(root.join("docs/security.md")).unwrap_or_default();
    let mut missing = Vec::new();
    for cited in doc.split('`').skip(1).step_by(2) {
        let Some((module, test)) = cited.split_once("::") else {
            continue;
        };
        let file = root.join("tests/all").join(format!("{module}.rs"));
        let Ok(source) = std::fs::read_to_string(&file) else {
            continue;
        };
        let plain = test.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if plain && !source.contains(&format!("fn {test}(")) {
            missing.push(format!(
                "docs/security.md cites {cited}, which does not exist"
            ));
        }
    }
    missing
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "node_modules" {
                files.extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    #[test]
    fn repository_is_tidy() {
        let root = super::super::root();
        if let Err(problems) = super::check(&root) {
            panic!("tidy found problems:\n{}", problems.join("\n"));
        }
    }
}
