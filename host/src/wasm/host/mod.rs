//! Host implementations of the interfaces plugins import: one file each.

pub(crate) mod log;
pub(crate) mod stderr;
