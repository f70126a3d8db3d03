//! `engagement-host`: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use engagement_host::api_sim::{self, ApiSimSettings, FaultConfig};
use engagement_host::cli::{AdminArgs, Cli, Command, PluginCommand, ReplayArgs};
use engagement_host::commands::{datagen, plugin_check, plugin_new, plugin_test, replay, run};
use engagement_host::settings::PluginSettings;
use engagement_host::sinks::http::HttpSinkConfig;
use engagement_host::sinks::redis::RedisSinkConfig;
use engagement_host::state::StateConfig;
use engagement_host::telemetry::logging;
use engagement_host::wasm::PluginLimits;

// The pipeline allocates many small strings (row columns lifted out of the
// plugins); mimalloc does that markedly faster than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_json, &cli.log_level);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Replay(args) => {
            let settings = replay_settings(&args);
            let summary = replay::run(&settings)?;
            if args.summary_json {
                eprintln!("{}", serde_json::to_string(&summary)?);
            } else {
                eprintln!("{}", summary.describe());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let stats = runtime()?.block_on(run::run(args.config.as_deref()))?;
            eprintln!("{}", serde_json::to_string(&stats)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::ApiSim(args) => {
            let settings = ApiSimSettings {
                listen: args.listen,
                faults: FaultConfig {
                    latency_ms: args.latency_ms,
                    error_rate: args.error_rate,
                    error_status: args.error_status,
                    rate_limit_rate: args.rate_limit_rate,
                    retry_after_secs: args.retry_after_secs,
                    fail_for_secs: args.fail_for_secs,
                    ..FaultConfig::default()
                },
            };
            runtime()?.block_on(async {
                api_sim::serve(settings, run::terminate_or_interrupt()).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Datagen(args) => {
            let settings = datagen::settings(&args)?;
            let summary = runtime()?.block_on(datagen::run(&settings))?;
            if args.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                eprintln!("{}", summary.describe());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::SetupPubsub(args) => {
            let wait = std::time::Duration::from_secs(args.wait_secs);
            for line in runtime()?.block_on(run::setup_pubsub(args.config.as_deref(), wait))? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Check(args)) => {
            let settings = PluginSettings {
                dir: Default::default(),
                decoder_file: String::new(),
                enricher_file: String::new(),
                watch: false,
                cache_dir: None,
                limits: PluginLimits::from(&args.limits),
                grants: args.limits.grants.clone(),
            };
            match plugin_check::check(&settings, &args.file)? {
                Ok(plugin) if args.json => {
                    println!("{}", plugin_check::to_json(&plugin));
                    Ok(ExitCode::SUCCESS)
                }
                Ok(plugin) => {
                    print!("{}", plugin_check::describe(&plugin));
                    Ok(ExitCode::SUCCESS)
                }
                Err(reason) if args.json => {
                    println!("{}", serde_json::json!({"valid": false, "reason": reason}));
                    Ok(ExitCode::FAILURE)
                }
                Err(reason) => {
                    println!("not a valid plugin: {}: {reason}", args.file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Plugin(PluginCommand::Test(args)) => {
            plugin_test::run(&plugin_test::settings(&args))
        }
        Command::Plugin(PluginCommand::New(args)) => plugin_new::run(&plugin_new::settings(&args)?),
        Command::Plugin(PluginCommand::Rollback(args)) => admin_call(
            &args.admin,
            reqwest::Method::POST,
            &format!("/plugins/{}/rollback", args.kind),
            "rolled_back_to",
        ),
        Command::Plugin(PluginCommand::Promote(args)) => admin_call(
            &args,
            reqwest::Method::POST,
            "/plugins/enricher/promote",
            "promoted",
        ),
        Command::Plugin(PluginCommand::Discard(args)) => admin_call(
            &args,
            reqwest::Method::DELETE,
            "/plugins/enricher/shadow",
            "discarded",
        ),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// One admin endpoint request on behalf of a `plugin` subcommand: prints
/// `field` of the answer, or why it was refused (exit status 1).
fn admin_call(
    args: &AdminArgs,
    method: reqwest::Method,
    path: &str,
    field: &str,
) -> Result<ExitCode> {
    let (status, body) = runtime()?.block_on(engagement_host::telemetry::admin::request(
        &args.admin,
        method,
        path,
        args.token.as_deref(),
    ))?;
    if (200..300).contains(&status) {
        match body[field].as_str() {
            Some(text) => println!("{text}"),
            None => println!("{}", body[field]),
        }
        Ok(ExitCode::SUCCESS)
    } else {
        let reason = body
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned);
        eprintln!("refused (HTTP {status}): {reason}");
        Ok(ExitCode::FAILURE)
    }
}

fn replay_settings(args: &ReplayArgs) -> replay::ReplaySettings {
    replay::ReplaySettings {
        input: args.input.clone(),
        output: args.output.clone(),
        dead_letters: args.dead_letters.clone(),
        state_dir: args.state_dir.clone(),
        batch_size: args.batch_size,
        rate: args.rate,
        state: StateConfig {
            pending_ttl_ms: (args.pending_ttl_secs as i64).saturating_mul(1000),
            max_pending: args.max_pending.max(1),
            ..StateConfig::default()
        },
        max_message_bytes: args.max_message_bytes,
        plugins: PluginSettings::from(&args.plugins),
        redis: args.redis.as_ref().map(|url| RedisSinkConfig {
            url: url.clone(),
            ca_file: args.redis_ca_file.clone(),
            ..RedisSinkConfig::default()
        }),
        api: args.api.as_ref().map(|url| HttpSinkConfig {
            base_url: url.clone(),
            max_batch_events: args.api_batch_size.max(1),
            ..HttpSinkConfig::default()
        }),
        shadow: replay::ShadowReplay {
            file: args.shadow.clone(),
            policy: engagement_host::wasm::ShadowPolicy {
                promote_after: args.shadow_promote_after,
                max_diff_ratio: args.shadow_max_diff_ratio,
                ..Default::default()
            },
            rollback_after_messages: args.rollback_after_messages,
        },
    }
}
