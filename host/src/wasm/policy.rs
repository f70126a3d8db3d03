//! Which imports a plugin may have.
//!
//! Plugins are pure functions. What Rust's standard library on `wasm32-wasip2`
//! always imports (environment, exit, stdio, I/O streams) is allowed, because
//! the store grants nothing behind it: an empty environment, stdio that goes
//! nowhere but the trap reason. Anything that reaches the outside world or
//! makes a plugin nondeterministic (filesystem, sockets, HTTP, clocks, random)
//! is refused unless the operator grants it by name.

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
/// (e.g. `wasi:clocks`, `wasi:random/random`). Names the first refused import.
pub(crate) fn check_imports(imports: &[String], grants: &[String]) -> Result<(), WasmError> {
    for import in imports {
        let name = import.split('@').next().unwrap_or(import);
        let allowed = ALWAYS_ALLOWED.iter().any(|p| name.starts_with(p))
            || grants
                .iter()
                .any(|g| name == g || name.starts_with(&format!("{g}/")));
        if !allowed {
            return Err(WasmError::CapabilityDenied {
                import: import.clone(),
            });
        }
    }
    Ok(())
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
        assert!(check_imports(&imports, &[]).is_ok());
    }

    #[test]
    fn capabilities_need_a_grant() {
        let imports = names(&["wasi:io/streams@0.2.6", "wasi:filesystem/preopens@0.2.6"]);
        let err = check_imports(&imports, &[]).unwrap_err();
        assert!(
            err.to_string().contains("wasi:filesystem/preopens@0.2.6"),
            "{err}"
        );
        assert!(check_imports(&imports, &names(&["wasi:filesystem"])).is_ok());
        assert!(check_imports(&imports, &names(&["wasi:filesys"])).is_err());
    }
}
