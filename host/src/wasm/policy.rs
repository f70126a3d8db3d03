//! Which imports a plugin may have.
//!
//! Plugins are pure functions. What Rust's standard library on `wasm32-wasip2`
//! always imports (environment, exit, stdio, I/O streams) is allowed, because
//! the store grants nothing behind it: an empty environment, stdio that goes
//! nowhere but the trap reason. Anything that reaches the outside world or
//! makes a plugin nondeterministic (filesystem, sockets, HTTP, clocks, random)
//! is refused unless the operator grants it by name.
//!
//! An import that brings only types and no function (e.g. the
//! `wasi:clocks/wall-clock` that `wasi:filesystem/types` pulls in for its
//! `datetime` record) reaches nothing, so it needs no grant of its own.

use super::WasmError;

/// Interfaces every plugin may import (prefixes, version-less).
const ALWAYS_ALLOWED: &[&str] = &[
    "engagement:pipeline/",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-",
    "wasi:io/",
];

/// Checks every import against the allowed list and the operator's grants
/// (e.g. `wasi:clocks`, `wasi:random/random`); `type_only` lists the imports
/// that bring no function (allowed). Names every refused import.
pub(crate) fn check_imports(
    imports: &[String],
    type_only: &[String],
    grants: &[String],
) -> Result<(), WasmError> {
    let refused: Vec<String> = imports
        .iter()
        .filter(|import| !type_only.contains(import))
        .filter(|import| {
            let name = import.split('@').next().unwrap_or(import);
            let allowed = ALWAYS_ALLOWED.iter().any(|p| name.starts_with(p))
                || grants
                    .iter()
                    .any(|g| name == g || name.starts_with(&format!("{g}/")));
            !allowed
        })
        .cloned()
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(WasmError::CapabilityDenied { imports: refused })
    }
}

/// `wasi:filesystem/types@0.2.6` -> `wasi:filesystem`: what to grant.
fn capability(import: &str) -> &str {
    let name = import.split('@').next().unwrap_or(import);
    name.split('/').next().unwrap_or(name)
}

/// The refusal, naming every refused import and what would grant them.
pub(crate) fn denied_message(imports: &[String]) -> String {
    let names: Vec<String> = imports.iter().map(|i| format!("`{i}`")).collect();
    let mut grants: Vec<&str> = Vec::new();
    for import in imports {
        if !grants.contains(&capability(import)) {
            grants.push(capability(import));
        }
    }
    let flags: Vec<String> = grants.iter().map(|g| format!("--grant {g}")).collect();
    format!(
        "refused: the plugin imports {}, {} it is not granted (only if the rule really \
         needs it: `{}`, or `plugin_grants = [{}]` for the service)",
        names.join(", "),
        if imports.len() == 1 {
            "a capability"
        } else {
            "capabilities"
        },
        flags.join(" "),
        grants
            .iter()
            .map(|g| format!("\"{g}\""))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn std_imports_are_allowed() {
        let imports = names(&[
            "wasi:cli/environment@0.2.6",
            "wasi:io/streams@0.2.6",
            "wasi:cli/terminal-stderr@0.2.6",
            "engagement:pipeline/log@0.1.0",
        ]);
        assert!(check_imports(&imports, &[], &[]).is_ok());
    }

    #[test]
    fn capabilities_need_a_grant() {
        let imports = names(&["wasi:io/streams@0.2.6", "wasi:filesystem/preopens@0.2.6"]);
        let err = check_imports(&imports, &[], &[]).unwrap_err();
        assert!(
            err.to_string().contains("wasi:filesystem/preopens@0.2.6"),
            "{err}"
        );
        assert!(err.to_string().contains("--grant wasi:filesystem"), "{err}");
        assert!(check_imports(&imports, &[], &names(&["wasi:filesystem"])).is_ok());
        assert!(check_imports(&imports, &[], &names(&["wasi:filesys"])).is_err());
    }

    #[test]
    fn every_refused_import_is_named_and_type_only_ones_pass() {
        let imports = names(&[
            "wasi:clocks/wall-clock@0.2.6",
            "wasi:filesystem/types@0.2.6",
            "wasi:filesystem/preopens@0.2.6",
        ]);
        let err = check_imports(&imports, &[], &[]).unwrap_err().to_string();
        for import in &imports {
            assert!(err.contains(import.as_str()), "{err}");
        }
        assert!(err.contains("capabilities"), "{err}");
        let type_only = names(&["wasi:clocks/wall-clock@0.2.6"]);
        let err = check_imports(&imports, &type_only, &[])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("wall-clock"), "{err}");
        assert!(check_imports(&imports, &type_only, &names(&["wasi:filesystem"])).is_ok());
    }
}
