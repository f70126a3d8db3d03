//! Logs and metrics. Each event in [`events`] writes its log line and its
//! metrics together, so the two never disagree.

pub mod admin;
pub mod events;
pub mod logging;
