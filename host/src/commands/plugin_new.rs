//! `engagement-host plugin new --lang rust|python NAME [--dir DIR]`: creates
//! a ready-to-build enricher rule: the sources of a starter rule, the WIT
//! contract, a build script, a README, and golden cases the rule passes as
//! generated (`plugin test NAME.wasm --cases cases.ndjson`).
//!
//! Everything is carried by the binary: the templates (`host/templates/`)
//! and the repository's `wit/` are embedded with `include_str!`, so the
//! WIT a new rule gets is the one this host was built against. A Rust rule
//! is a cargo project with a `[workspace]` table of its own, so it builds
//! anywhere; a Python rule is `app.py` built by componentize-py.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::{NewArgs, RuleLang};

/// The WIT package, as this host was built with it.
const WIT: [(&str, &str); 3] = [
    ("wit/types.wit", include_str!("../../../wit/types.wit")),
    (
        "wit/enricher.wit",
        include_str!("../../../wit/enricher.wit"),
    ),
    ("wit/decoder.wit", include_str!("../../../wit/decoder.wit")),
];

/// Golden cases of the starter rule (the same rule in both languages);
/// expected values computed by CPython.
const CASES: &str = include_str!("../../templates/cases.ndjson");

/// `(path in the new directory, template, executable)`.
type Template = (&'static str, &'static str, bool);

const RUST: [Template; 5] = [
    (
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml.tmpl"),
        false,
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/rust/lib.rs.tmpl"),
        false,
    ),
    (
        "build.sh",
        include_str!("../../templates/rust/build.sh.tmpl"),
        true,
    ),
    (
        "README.md",
        include_str!("../../templates/rust/README.md.tmpl"),
        false,
    ),
    (
        ".gitignore",
        include_str!("../../templates/rust/gitignore.tmpl"),
        false,
    ),
];

const PYTHON: [Template; 4] = [
    (
        "app.py",
        include_str!("../../templates/python/app.py.tmpl"),
        false,
    ),
    (
        "build.sh",
        include_str!("../../templates/python/build.sh.tmpl"),
        true,
    ),
    (
        "README.md",
        include_str!("../../templates/python/README.md.tmpl"),
        false,
    ),
    (
        ".gitignore",
        include_str!("../../templates/python/gitignore.tmpl"),
        false,
    ),
];

/// What `plugin new` creates.
#[derive(Debug, Clone)]
pub struct NewSettings {
    /// Plugin and package name, kebab-case.
    pub name: String,
    pub lang: RuleLang,
    pub dir: PathBuf,
}

pub fn settings(args: &NewArgs) -> Result<NewSettings> {
    check_name(&args.name)?;
    Ok(NewSettings {
        name: args.name.clone(),
        lang: args.lang,
        dir: args
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(&args.name)),
    })
}

/// A plugin name is a cargo package name and a file name: lowercase ASCII
/// letters, digits and single dashes, starting with a letter.
fn check_name(name: &str) -> Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "invalid plugin name {name:?}: use lowercase letters, digits and single dashes, \
             starting with a letter (e.g. `my-rule`)"
        );
    }
    Ok(())
}

/// The files of a new rule: `(relative path, contents, executable)`.
pub fn files(settings: &NewSettings) -> Vec<(PathBuf, String, bool)> {
    let crate_name = settings.name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{name}}", &settings.name)
            .replace("{{crate_name}}", &crate_name)
    };
    let templates: &[Template] = match settings.lang {
        RuleLang::Rust => &RUST,
        RuleLang::Python => &PYTHON,
    };
    let mut files: Vec<(PathBuf, String, bool)> = templates
        .iter()
        .map(|(path, template, exec)| (PathBuf::from(path), fill(template), *exec))
        .collect();
    files.extend(
        WIT.iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_owned(), false)),
    );
    files.push((PathBuf::from("cases.ndjson"), CASES.to_owned(), false));
    files
}

/// Writes the new rule's files into `settings.dir`, which must not exist or
/// be empty, and says what to do next.
pub fn run(settings: &NewSettings) -> Result<ExitCode> {
    create(settings)?;
    let dir = settings.dir.display();
    let wasm = format!("{}.wasm", settings.name);
    println!(
        "created {} rule `{}` in {dir}",
        match settings.lang {
            RuleLang::Rust => "a Rust",
            RuleLang::Python => "a Python",
        },
        settings.name
    );
    println!("next:");
    println!("  {dir}/build.sh");
    println!("  engagement-host plugin test {dir}/{wasm} --cases {dir}/cases.ndjson");
    Ok(ExitCode::SUCCESS)
}

fn create(settings: &NewSettings) -> Result<()> {
    let dir = &settings.dir;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("{} exists and is not a directory", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} exists and is not empty: choose another --dir",
                dir.display()
            );
        }
    }
    for (path, contents, executable) in files(settings) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        if executable {
            make_executable(&path)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(lang: RuleLang, dir: &Path) -> NewSettings {
        NewSettings {
            name: "my-rule".into(),
            lang,
            dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn names_must_be_kebab_case() {
        for good in ["my-rule", "r", "rule2", "a-b-c"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "My-Rule", "my_rule", "-rule", "rule-", "a--b", "2rule", "a b", "ü",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_are_filled_in() {
        for lang in [RuleLang::Rust, RuleLang::Python] {
            let files = files(&new(lang, Path::new("x")));
            for (path, contents, _) in &files {
                assert!(
                    !contents.contains("{{"),
                    "{lang:?} {}: unfilled placeholder",
                    path.display()
                );
            }
            let names: Vec<String> = files.iter().map(|f| f.0.display().to_string()).collect();
            for want in ["build.sh", "README.md", "cases.ndjson", "wit/enricher.wit"] {
                assert!(names.iter().any(|n| n == want), "{lang:?}: {want} missing");
            }
        }
        let rust = files(&new(RuleLang::Rust, Path::new("x")));
        let cargo = &rust
            .iter()
            .find(|f| f.0 == Path::new("Cargo.toml"))
            .unwrap()
            .1;
        assert!(cargo.contains("name = \"my-rule\"") && cargo.contains("\n[workspace]"));
        let build = &rust
            .iter()
            .find(|f| f.0 == Path::new("build.sh"))
            .unwrap()
            .1;
        assert!(build.contains("release/my_rule.wasm"), "{build}");
    }

    #[test]
    fn refuses_a_non_empty_directory() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
        let err = create(&new(RuleLang::Python, tmp.path())).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");

        let dir = tmp.path().join("fresh");
        create(&new(RuleLang::Python, &dir)).unwrap();
        assert!(dir.join("app.py").is_file() && dir.join("wit/types.wit").is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("build.sh"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o111, 0o111);
        }
    }
}
