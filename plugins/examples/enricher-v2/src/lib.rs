//! `enricher-v2`: the example of "a new rule adds a field". It is version
//! 2.0.0 of `engagement-enricher` (same plugin name, so the host swaps it in
//! place of v1): the v1 fields, unchanged and in the same order, then
//! `engagement_tier`.
//!
//! The v1 rule is not copied: `rules.rs` and `fields.rs` are v1's own files,
//! included with `#[path]` (see `rules.rs` for why not an rlib dependency), so
//! both versions give the same bits for the shared fields. Only the tier is
//! new here. The host needs no rebuild: it writes whatever fields `info()`
//! declares.

wit_bindgen::generate!({ world: "enricher", path: "../../../wit" });

#[cfg(test)]
#[path = "../../../engagement-enricher/src/cases.rs"]
mod cases;
#[path = "../../../engagement-enricher/src/fields.rs"]
mod fields;
#[path = "../../../engagement-enricher/src/rules.rs"]
mod rules;

use engagement::pipeline::types::{PluginInfo, Value, ValueKind};
use exports::engagement::pipeline::enrich::{EnrichError, EnrichInput, EnricherInfo, Guest, Row};

/// Same name as v1: this is the next version of the same rule.
pub const NAME: &str = "engagement-enricher";
/// Major bump: the output gained a field.
pub const VERSION: &str = "2.0.0";

/// `engagement_pct` from this value up is `complete`.
pub const COMPLETE_FROM_PCT: f64 = 90.0;
/// `engagement_pct` from this value up (below complete) is `engaged`.
pub const ENGAGED_FROM_PCT: f64 = 25.0;

/// The component: stateless, every call is a pure function of its input.
pub struct Component;

/// How much of the content the event covered: `complete` from 90 %,
/// `engaged` from 25 %, `sampled` below; `None` when the percentage is
/// unknown. Boundaries are inclusive and apply to the rounded percentage the
/// event is stored with, so the tier always agrees with `engagement_pct`.
pub fn engagement_tier(engagement_pct: Option<f64>) -> Option<&'static str> {
    let pct = engagement_pct?;
    Some(if pct >= COMPLETE_FROM_PCT {
        "complete"
    } else if pct >= ENGAGED_FROM_PCT {
        "engaged"
    } else {
        "sampled"
    })
}

impl Guest for Component {
    fn enrich(input: EnrichInput) -> Result<Row, EnrichError> {
        let engagement = fields::Engagement::derive(&input)?;
        let tier = engagement_tier(engagement.engagement_pct);
        let mut row = Row::with_capacity(5);
        engagement.push_columns(&mut row);
        let tier = tier.map_or(Value::Null, |t| Value::Text(t.to_owned()));
        row.push(fields::field("engagement_tier", tier));
        Ok(row)
    }

    fn enrich_batch(inputs: Vec<EnrichInput>) -> Vec<Result<Row, EnrichError>> {
        inputs.into_iter().map(Self::enrich).collect()
    }

    fn info() -> EnricherInfo {
        let mut output_fields = fields::output_fields();
        output_fields.push(fields::spec(
            "engagement_tier",
            ValueKind::Text,
            "complete (engagement_pct >= 90), engaged (>= 25) or sampled; null when \
             engagement_pct is null.",
        ));
        EnricherInfo {
            plugin: PluginInfo {
                name: NAME.to_owned(),
                version: VERSION.to_owned(),
                description:
                    "Engagement seconds, percentage and tier per event, with the content's \
                              type and length."
                        .to_owned(),
            },
            output_fields,
            reads: Some(fields::reads()),
        }
    }
}

// Natively there is nothing to export, and the exported symbols would clash
// with those of any other plugin crate linked into the same test binary.
#[cfg(target_arch = "wasm32")]
export!(Component);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engagement::pipeline::types::Column;

    fn col(name: &str, value: Value) -> Column {
        Column {
            name: name.to_owned(),
            value,
        }
    }

    /// The tier the component gives for `duration_ms` of a content of
    /// `length_seconds`.
    fn tier_of(duration_ms: i64, length_seconds: i64) -> String {
        let input = EnrichInput {
            event: vec![col("duration_ms", Value::Int(duration_ms))],
            content: Some(vec![col("length_seconds", Value::Int(length_seconds))]),
        };
        match Component::enrich(input) {
            Ok(row) => format!("{:?} {:?}", row[3].value, row[4].value),
            Err(err) => format!("error {err:?}"),
        }
    }

    #[test]
    fn keeps_v1_fields_bit_for_bit() {
        let cases = cases::load();
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|case| cases::check(case, &Component::enrich(case.input.clone())).err())
            .collect();
        assert!(
            failures.is_empty(),
            "{} cases differ from Python:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn tier_follows_the_percentage_on_every_case() {
        for case in cases::load() {
            let row = Component::enrich(case.input.clone()).unwrap_or_default();
            let pct = match row.get(3).map(|c| &c.value) {
                Some(Value::Float(pct)) => Some(*pct),
                _ => None,
            };
            let want = engagement_tier(pct);
            let got = row.get(4).map(|c| (c.name.as_str(), &c.value));
            let ok = match (got, want) {
                (Some(("engagement_tier", Value::Text(t))), Some(w)) => t == w,
                (Some(("engagement_tier", Value::Null)), None) => true,
                _ => false,
            };
            assert!(
                ok,
                "case {}: tier {got:?}, want {want:?} for pct {pct:?}",
                case.name
            );
        }
    }

    #[test]
    fn tier_boundaries() {
        assert_eq!(engagement_tier(None), None);
        assert_eq!(engagement_tier(Some(0.0)), Some("sampled"));
        assert_eq!(engagement_tier(Some(24.99)), Some("sampled"));
        assert_eq!(engagement_tier(Some(25.0)), Some("engaged"));
        assert_eq!(engagement_tier(Some(89.99)), Some("engaged"));
        assert_eq!(engagement_tier(Some(90.0)), Some("complete"));
        assert_eq!(engagement_tier(Some(100.0)), Some("complete"));
        assert_eq!(engagement_tier(Some(250.0)), Some("complete")); // not capped
    }

    #[test]
    fn tier_uses_the_rounded_percentage() {
        // Percentages checked with Python: round(round(d / 1000.0, 3) / 1000 * 100, 2).
        // Exact boundaries through the whole rule:
        assert_eq!(
            tier_of(250_000, 1000),
            "Value::Float(25.0) Value::Text(\"engaged\")"
        );
        assert_eq!(
            tier_of(900_000, 1000),
            "Value::Float(90.0) Value::Text(\"complete\")"
        );
        // 249.95 s of 1000 s is 24.995 % in reals but 24.994999999999997 in
        // binary, which rounds to 24.99: still sampled.
        assert_eq!(
            tier_of(249_950, 1000),
            "Value::Float(24.99) Value::Text(\"sampled\")"
        );
        // 899.96 s of 1000 s is 89.996 %, rounded up to 90.0: complete.
        assert_eq!(
            tier_of(899_960, 1000),
            "Value::Float(90.0) Value::Text(\"complete\")"
        );
        // 249.96 s of 1000 s rounds up to 25.0: engaged.
        assert_eq!(
            tier_of(249_960, 1000),
            "Value::Float(25.0) Value::Text(\"engaged\")"
        );
        assert_eq!(tier_of(1000, 0), "Value::Null Value::Null");
    }

    #[test]
    fn info_adds_the_tier_after_the_v1_fields() {
        let info = Component::info();
        assert_eq!(
            (info.plugin.name.as_str(), info.plugin.version.as_str()),
            ("engagement-enricher", "2.0.0")
        );
        let names: Vec<&str> = info.output_fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "content_type",
                "length_seconds",
                "engagement_seconds",
                "engagement_pct",
                "engagement_tier"
            ]
        );
        let tier = &info.output_fields[4];
        assert_eq!((tier.kind, tier.nullable), (ValueKind::Text, true));
    }
}
