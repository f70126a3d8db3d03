//! One file per subcommand. `anyhow` lives here and in `main.rs` only.

pub mod datagen;
pub mod plugin_check;
pub mod plugin_new;
pub mod plugin_test;
pub mod replay;
pub mod run;
