//! `plugins/WIT.md`, the plugin authors' reference, is generated from the
//! doc comments in `wit/*.wit`; this test fails when the two disagree.
//! Regenerate with `UPDATE_WIT_REFERENCE=1 cargo test -p engagement-host --test wit_reference`.

mod common;

/// One markdown list item per declaration, nested as in the file, with the
/// declaration in code and its doc comment as the text.
fn reference(file: &str, wit: &str) -> String {
    let mut out = format!("## `wit/{file}`\n\n");
    let mut docs: Vec<&str> = Vec::new();
    let mut depth = 0usize;
    for line in wit.lines() {
        let line = line.trim();
        if let Some(doc) = line.strip_prefix("///") {
            docs.push(doc.strip_prefix(' ').unwrap_or(doc));
            continue;
        }
        if line.starts_with('}') {
            depth = depth.saturating_sub(1);
            continue;
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let declaration = line
            .trim_end_matches('{')
            .trim_end_matches([',', ';'])
            .trim();
        let indent = "  ".repeat(depth);
        let text = docs.join(" ").replace("  ", " ");
        if text.is_empty() {
            out.push_str(&format!("{indent}- `{declaration}`\n"));
        } else {
            out.push_str(&format!("{indent}- `{declaration}`: {text}\n"));
        }
        docs.clear();
        if line.ends_with('{') {
            depth += 1;
        }
    }
    out
}

#[test]
fn plugins_wit_md_is_generated_from_the_wit_doc_comments() {
    let root = common::repo_root();
    let mut files: Vec<_> = std::fs::read_dir(root.join("wit"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wit"))
        .collect();
    files.sort();
    let mut expected = String::from(
        "# WIT reference\n\nGenerated from the doc comments in `wit/` (the only copy of the contract) by \
         `UPDATE_WIT_REFERENCE=1 cargo test -p engagement-host --test wit_reference`; \
         a test fails when this file and `wit/` disagree. The guide is `README.md`.\n\n",
    );
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        expected.push_str(&reference(&name, &std::fs::read_to_string(path).unwrap()));
        expected.push('\n');
    }
    let target = root.join("plugins/WIT.md");
    if std::env::var_os("UPDATE_WIT_REFERENCE").is_some() {
        std::fs::write(&target, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&target).unwrap_or_default();
    assert!(
        actual == expected,
        "plugins/WIT.md is not what wit/ says: regenerate it with \
         UPDATE_WIT_REFERENCE=1 cargo test -p engagement-host --test wit_reference"
    );
}
