//! Runs the enricher's shadow version (if any) on the inputs of a batch the
//! serving version just enriched, and compares the two outputs event by
//! event: what each record would hold (the event's columns, then the
//! fields; a field named like a column replaces it), field by field. The
//! shadow's outputs go nowhere; the counts and the last differences are
//! kept on the [`Shadow`], counted in metrics and sampled in the log. Then
//! the promotion policy is applied: a promotion swaps the slot, which the
//! next batch picks up, so outputs switch cleanly between two batches.

use std::sync::Arc;

use metrics::counter;
use serde_json::{Value as Json, json};

use super::{EnrichRequest, project, typed};
use crate::decode::StageError;
use crate::pipeline::record::JsonValue;
use crate::wasm::bindings::{Column, EnrichInput, Row, Value};
use crate::wasm::{LoadedPlugin, PluginCallError, PluginEngine, PluginInstance, PluginSet, Shadow};

/// Differences logged in full per shadow before sampling every
/// [`LOG_EVERY`]th.
const LOG_FIRST: u64 = 5;
const LOG_EVERY: u64 = 1000;

/// The shadow's instance, kept across batches while the shadow is the same.
#[derive(Default)]
pub(crate) struct ShadowRunner {
    running: Option<(Arc<Shadow>, Option<PluginInstance>)>,
}

impl ShadowRunner {
    /// Compares the shadow's outputs for `requests` with `serving`'s (the
    /// serving version's results, one per request), if a shadow runs.
    pub(crate) fn compare(
        &mut self,
        plugins: &PluginSet,
        requests: &[EnrichRequest],
        serving: &[Result<Row, StageError>],
    ) {
        let slot = &plugins.enricher;
        let Some(shadow) = slot.shadow() else {
            self.running = None;
            return;
        };
        if requests.is_empty() {
            return;
        }
        if !self
            .running
            .as_ref()
            .is_some_and(|(s, _)| Arc::ptr_eq(s, &shadow))
        {
            self.running = Some((shadow.clone(), None));
        }
        let engine = plugins.loader.engine.clone();
        let Some((_, instance)) = self.running.as_mut() else {
            return;
        };
        let plugin = shadow.plugin.clone();
        let inputs: Vec<EnrichInput> = requests
            .iter()
            .map(|r| project(r, plugin.reads.as_ref()))
            .collect();
        let results: Vec<Result<Row, StageError>> =
            match with_instance(instance, &engine, &plugin, |i| i.enrich_batch(&inputs)) {
                Ok(results) => results.into_iter().map(typed).collect(),
                Err(_) => inputs
                    .iter()
                    .map(|input| {
                        match with_instance(instance, &engine, &plugin, |i| i.enrich(input)) {
                            Ok(result) => typed(result),
                            Err(err) => Err(err.into()),
                        }
                    })
                    .collect(),
            };

        let label = plugin.id.label();
        let before = shadow.stats().differing;
        let (mut differing, mut errors) = (0u64, 0u64);
        let mut samples = Vec::new();
        for ((request, serving), shadowed) in requests.iter().zip(serving).zip(&results) {
            let diff = match (serving, shadowed) {
                (Ok(a), Ok(b)) => field_diffs(&request.event, a, b),
                (Ok(_), Err(err)) => {
                    errors += 1;
                    Some(json!({"shadow_error": err.reason, "error_type": err.kind}))
                }
                (Err(err), Ok(_)) => Some(json!({"serving_error": err.reason})),
                (Err(a), Err(b)) if a.kind == b.kind => None,
                (Err(a), Err(b)) => {
                    Some(json!({"serving_error": a.reason, "shadow_error": b.reason}))
                }
            };
            let Some(mut diff) = diff else { continue };
            differing += 1;
            diff["event_id"] = request
                .event
                .iter()
                .find(|c| c.name == "id")
                .map(|c| serde_json::to_value(JsonValue(&c.value)).unwrap_or(Json::Null))
                .unwrap_or(Json::Null);
            let n = before + differing;
            if n <= LOG_FIRST || n.is_multiple_of(LOG_EVERY) {
                tracing::info!(shadow = %label, nth = n, diff = %diff, "shadow output differs");
            }
            samples.push(diff);
        }
        let policy = slot.shadow_policy();
        // Only the newest can be kept anyway.
        let skip = samples.len().saturating_sub(policy.samples);
        let samples = samples.split_off(skip);
        let events = requests.len() as u64;
        shadow.record(events, differing, errors, samples, policy.samples);
        counter!("engagement_shadow_events_total", "plugin" => label.clone()).increment(events);
        counter!("engagement_shadow_diffs_total", "plugin" => label.clone()).increment(differing);
        if errors > 0 {
            counter!("engagement_shadow_errors_total", "plugin" => label.clone()).increment(errors);
        }
        match shadow.due(&policy) {
            Ok(true) => {
                if let Err(err) = slot.promote_shadow("auto") {
                    tracing::warn!(error = %err, "shadow not promoted");
                }
            }
            Ok(false) => {}
            Err(why) => {
                tracing::warn!(shadow = %label, why, "shadow reached shadow_promote_after but is not promoted; promote or discard it by hand");
            }
        }
    }
}

/// Runs `f` on the shadow's instance, made anew when missing or spent.
fn with_instance<R>(
    instance: &mut Option<PluginInstance>,
    engine: &Arc<PluginEngine>,
    plugin: &LoadedPlugin,
    f: impl FnOnce(&mut PluginInstance) -> Result<R, PluginCallError>,
) -> Result<R, PluginCallError> {
    if instance.as_ref().is_none_or(PluginInstance::is_spent) {
        *instance = Some(PluginInstance::new(engine, plugin)?);
    }
    match instance.as_mut() {
        Some(i) => f(i),
        None => Err(PluginCallError::Spent),
    }
}

/// The record's value of `name` with these fields: the field if returned,
/// else the event's column.
fn effective<'a>(event: &'a [Column], fields: &'a [Column], name: &str) -> Option<&'a Value> {
    fields
        .iter()
        .find(|c| c.name == name)
        .or_else(|| event.iter().find(|c| c.name == name))
        .map(|c| &c.value)
}

/// The fields whose record values differ, or `None`.
fn field_diffs(event: &[Column], serving: &[Column], shadow: &[Column]) -> Option<Json> {
    let mut names: Vec<&str> = serving.iter().map(|c| c.name.as_str()).collect();
    for c in shadow {
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    let mut diffs = Vec::new();
    for name in names {
        let (a, b) = (
            effective(event, serving, name),
            effective(event, shadow, name),
        );
        if !same(a, b) {
            let mut diff = json!({ "field": name });
            if let Some(a) = a {
                diff["serving"] = serde_json::to_value(JsonValue(a)).unwrap_or(Json::Null);
            }
            if let Some(b) = b {
                diff["shadow"] = serde_json::to_value(JsonValue(b)).unwrap_or(Json::Null);
            }
            diffs.push(diff);
        }
    }
    (!diffs.is_empty()).then(|| json!({ "fields": diffs }))
}

/// Equal values (floats by bits, so NaN equals NaN and -0 differs from 0:
/// what would be written).
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Float(x)), Some(Value::Float(y))) => x.to_bits() == y.to_bits(),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, value: Value) -> Column {
        Column {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn a_new_field_and_a_changed_one_are_differences() {
        let event = vec![
            col("id", Value::Int(7)),
            col("device", Value::Text("ios".into())),
        ];
        let v1 = vec![col("engagement_pct", Value::Float(50.0))];
        let v2 = vec![
            col("engagement_pct", Value::Float(50.0)),
            col("engagement_tier", Value::Text("engaged".into())),
        ];
        assert!(field_diffs(&event, &v1, &v1).is_none());
        let diff = field_diffs(&event, &v1, &v2).expect("differs");
        assert_eq!(
            diff,
            json!({"fields": [{"field": "engagement_tier", "shadow": "engaged"}]})
        );
        // A field replacing a column is compared with the column.
        let same_as_column = vec![col("device", Value::Text("ios".into()))];
        assert!(field_diffs(&event, &[], &same_as_column).is_none());
        let changed = vec![col("device", Value::Text("web".into()))];
        let diff = field_diffs(&event, &[], &changed).expect("differs");
        assert_eq!(diff["fields"][0]["serving"], "ios");
        assert_eq!(diff["fields"][0]["shadow"], "web");
    }
}
