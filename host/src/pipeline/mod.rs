//! Wiring of the stages. [`processor`] is the core shared by every command;
//! [`record`] is what it emits.

pub mod processor;
pub mod record;
pub mod service;
