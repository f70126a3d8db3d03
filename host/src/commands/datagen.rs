//! `datagen`: flags -> settings, run, print the summary.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::cli::DatagenArgs;
use crate::datagen::{self, DatagenSettings, DatagenSummary, DbTarget};

pub fn settings(args: &DatagenArgs) -> Result<DatagenSettings> {
    ensure!(
        args.content >= 0.0 && args.engagement >= 0.0,
        "rates must not be negative"
    );
    ensure!(args.duration > 0.0, "--duration must be positive (minutes)");
    Ok(DatagenSettings {
        target: DbTarget {
            host: args.host.clone(),
            port: args.port,
            database: args.database.clone(),
            user: args.user.clone(),
            password: args.password.clone(),
        },
        content_per_min: args.content,
        events_per_min: args.engagement,
        duration: Duration::try_from_secs_f64(args.duration * 60.0).context("--duration")?,
        use_existing: args.use_existing,
        prefer_new: args.prefer_new,
        update_share: args.updates,
        delete_share: args.deletes,
        early_share: args.early_events,
        content_update_share: args.content_updates,
        tick: Duration::from_millis(args.tick_ms.max(1)),
        seed: args.seed,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    })
}

pub async fn run(settings: &DatagenSettings) -> Result<DatagenSummary> {
    Ok(datagen::run(settings).await?)
}
