//! `engagement-host plugin test RULE.wasm --cases CASES.ndjson`: the plugin
//! author's test bench. Runs an enricher over cases (an event, its content,
//! the fields expected) exactly as the host would call it, and prints a diff
//! per failing case, then a one-line summary; the exit status is 1 when any
//! case fails, for CI.
//!
//! A case file is NDJSON, one case per line, as
//! `plugins/engagement-enricher/cases.ndjson`:
//!
//! ```json
//! {"name": "tie", "event": {"duration_ms": 1500}, "content": {"length_seconds": 1200},
//!  "expected": {"engagement_seconds": 1.5, "engagement_pct": 0.12}}
//! ```
//!
//! `content` may be `null` (content missing); `expected` lists the fields
//! checked (others the rule returns are not compared); `"expected_error":
//! "text"` instead says the rule must return an error containing the text.
//! Rows become WIT values as the default decoder makes them (integers that
//! fit 64 signed bits `int`, other numbers `float`, objects and arrays
//! `json` text); the rule then gets only the columns its `info().reads`
//! names, as in the pipeline.
//!
//! Comparison is exact: the value kind must match (`1` is an int, `1.0` a
//! float) and floats compare by their bits, so `0.12` is not
//! `0.12000000000000001` and `-0.0` is not `0.0`; NaN and infinities equal
//! `null` (the host writes them so). Besides the values, every case checks
//! that the rule returns its declared output fields in order, with the
//! declared kinds, and that `enrich` and `enrich-batch` agree.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value as Json};

use crate::cli::TestArgs;
use crate::enrich::{EnrichRequest, project};
use crate::settings::{PluginSettings, default_cache_dir};
use crate::wasm::bindings::{
    Column, EnrichError, EnrichInput, FieldSpec, Row, Value, ValueKind, kind_name,
};
use crate::wasm::{LoadedPlugin, PluginCallError, PluginInstance, PluginKind, PluginLimits};

/// What `plugin test` runs.
#[derive(Debug, Clone)]
pub struct TestSettings {
    pub plugin: PluginSettings,
    pub file: PathBuf,
    pub cases: PathBuf,
    /// Failing cases shown in full.
    pub max_failures: usize,
    /// Cases per `enrich-batch` call.
    pub batch_size: usize,
}

pub fn settings(args: &TestArgs) -> TestSettings {
    TestSettings {
        plugin: PluginSettings {
            dir: PathBuf::new(),
            decoder_file: String::new(),
            enricher_file: String::new(),
            watch: false,
            cache_dir: if args.no_cache {
                None
            } else {
                args.cache_dir.clone().or_else(default_cache_dir)
            },
            limits: PluginLimits::from(&args.limits),
            grants: args.limits.grants.clone(),
        },
        file: args.file.clone(),
        cases: args.cases.clone(),
        max_failures: args.max_failures,
        batch_size: args.batch_size.max(1),
    }
}

/// Loads the rule, runs every case, prints the report; exit status 1 when a
/// case fails or the file is not a valid enricher.
pub fn run(settings: &TestSettings) -> Result<ExitCode> {
    let cases = load_cases(&settings.cases)?;
    let loader = settings.plugin.loader()?;
    let plugin = match loader.load(&settings.file, Some(PluginKind::Enricher)) {
        Ok(plugin) => plugin,
        Err(err) => {
            println!(
                "not a valid enricher plugin: {}: {err}",
                settings.file.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    eprintln!(
        "loaded {} in {:.0} ms{}",
        plugin.id,
        plugin.load_ms,
        match (&settings.plugin.cache_dir, plugin.from_cache) {
            (_, true) => " (precompiled, from the cache)".to_owned(),
            (Some(dir), false) => format!(" (compiled; cached in {})", dir.display()),
            (None, false) => " (compiled)".to_owned(),
        }
    );
    let mut runner = Runner {
        engine: loader.engine.clone(),
        plugin: &plugin,
        instance: None,
    };
    let report = run_cases(&mut runner, &cases, settings.batch_size)?;
    print!(
        "{}",
        render(
            &report,
            &cases,
            &plugin,
            &settings.cases,
            settings.max_failures
        )
    );
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line of a cases file.
#[derive(Debug, Clone)]
pub struct Case {
    /// 1-based line number in the file.
    pub line: usize,
    pub name: Option<String>,
    pub event: Row,
    pub content: Option<Row>,
    pub expect: Expect,
}

/// What a case expects of the rule.
#[derive(Debug, Clone)]
pub enum Expect {
    /// These fields with these values (other returned fields not compared).
    Fields(Map<String, Json>),
    /// An error whose description contains this text (empty: any error).
    Error(String),
}

/// Reads a cases file; a malformed line is an error naming it.
pub fn load_cases(path: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cases file {}", path.display()))?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let json: Json =
            serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        let Some(object) = json.as_object() else {
            bail!("{}: a case is a JSON object", at());
        };
        let event = match object.get("event") {
            Some(Json::Object(event)) => to_row(event),
            _ => bail!("{}: `event` must be an object of columns", at()),
        };
        let content = match object.get("content") {
            None | Some(Json::Null) => None,
            Some(Json::Object(content)) => Some(to_row(content)),
            Some(_) => bail!("{}: `content` must be an object of columns or null", at()),
        };
        let expect = match (object.get("expected"), object.get("expected_error")) {
            (Some(Json::Object(fields)), None) => Expect::Fields(fields.clone()),
            (None, Some(Json::String(text))) => Expect::Error(text.clone()),
            _ => bail!(
                "{}: a case needs `expected` (an object of fields) or `expected_error` (a string), not both",
                at()
            ),
        };
        cases.push(Case {
            line: i + 1,
            name: object.get("name").and_then(Json::as_str).map(str::to_owned),
            event,
            content,
            expect,
        });
    }
    if cases.is_empty() {
        bail!("{} holds no case", path.display());
    }
    Ok(cases)
}

/// A JSON object as a row, one column per key, in file order.
fn to_row(object: &Map<String, Json>) -> Row {
    object
        .iter()
        .map(|(name, value)| Column {
            name: name.clone(),
            value: to_value(value),
        })
        .collect()
}

/// A JSON value as the default decoder hands it over.
pub fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(int), _) => Value::Int(int),
            (None, Some(float)) if n.is_f64() => Value::Float(float),
            // An integer beyond i64: exact JSON text, as the decoder passes it.
            _ => Value::Json(n.to_string()),
        },
        Json::String(s) => Value::Text(s.clone()),
        Json::Array(_) | Json::Object(_) => Value::Json(json.to_string()),
    }
}

/// Keeps a live instance of the rule, replacing it after a failed call.
struct Runner<'a> {
    engine: Arc<crate::wasm::PluginEngine>,
    plugin: &'a LoadedPlugin,
    instance: Option<PluginInstance>,
}

impl Runner<'_> {
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut PluginInstance) -> Result<R, PluginCallError>,
    ) -> Result<R, PluginCallError> {
        if self.instance.as_ref().is_none_or(PluginInstance::is_spent) {
            self.instance = Some(PluginInstance::new(&self.engine, self.plugin)?);
        }
        let instance = self.instance.as_mut().ok_or(PluginCallError::Spent)?;
        f(instance)
    }
}

/// What one call gave for a case.
type Got = Result<Result<Row, EnrichError>, PluginCallError>;

/// Results of a run, one per case, in file order.
#[derive(Debug)]
pub struct Report {
    /// `None`: the case passed.
    pub outcomes: Vec<Option<Failure>>,
    /// Wall time of the `enrich-batch` calls.
    pub batch_time: Duration,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_some()).count()
    }
}

/// Why a case failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The values differ from what the case expects (and/or the returned
    /// fields are not the declared ones).
    Fields {
        /// Field name, expected, got (`None`: not returned).
        diffs: Vec<(String, Json, Option<Value>)>,
        /// Problems with the shape of the output, in words.
        shape: Vec<String>,
    },
    /// The rule returned an error where fields were expected.
    UnexpectedError(String),
    /// The case expects an error; the rule returned fields or another error.
    MissingError { want: String, got: String },
    /// The call trapped, timed out or ran out of memory.
    CallFailed(String),
    /// `enrich` and `enrich-batch` gave different results.
    BatchDisagrees { single: String, batch: String },
}

fn run_cases(runner: &mut Runner<'_>, cases: &[Case], batch_size: usize) -> Result<Report> {
    let reads = runner.plugin.reads.clone();
    let inputs: Vec<EnrichInput> = cases
        .iter()
        .map(|case| {
            let request = EnrichRequest {
                event: case.event.clone(),
                content: case.content.clone().map(Arc::new),
            };
            project(&request, reads.as_ref())
        })
        .collect();

    // Batch calls, as the pipeline makes them.
    let mut batch_time = Duration::ZERO;
    let mut batch: Vec<Got> = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(batch_size) {
        let started = Instant::now();
        let results = runner.call(|instance| instance.enrich_batch(chunk));
        batch_time += started.elapsed();
        match results {
            Ok(results) => batch.extend(results.into_iter().map(Ok)),
            // The whole call failed: which case did it is found below.
            Err(err) => batch.extend(chunk.iter().map(|_| Err(err.clone()))),
        }
    }

    let fields = &runner.plugin.output_fields;
    let mut outcomes = Vec::with_capacity(cases.len());
    for ((case, input), batch) in cases.iter().zip(&inputs).zip(batch) {
        let single = runner.call(|instance| instance.enrich(input));
        let outcome = match (&single, &batch) {
            (Ok(single_result), Ok(batch_result)) if single_result != batch_result => {
                Some(Failure::BatchDisagrees {
                    single: describe_result(single_result),
                    batch: describe_result(batch_result),
                })
            }
            // A failed batch call with a good single call: another case of
            // the batch failed it.
            (Ok(result), _) => judge(&case.expect, result, fields),
            (Err(err), _) => Some(Failure::CallFailed(err.to_string())),
        };
        outcomes.push(outcome);
    }
    Ok(Report {
        outcomes,
        batch_time,
    })
}

/// Checks one result against what the case expects.
fn judge(
    expect: &Expect,
    result: &Result<Row, EnrichError>,
    declared: &[FieldSpec],
) -> Option<Failure> {
    match (expect, result) {
        (Expect::Fields(_), Err(err)) => Some(Failure::UnexpectedError(describe_error(err))),
        (Expect::Error(want), Err(err)) => {
            let got = describe_error(err);
            (!got.contains(want.as_str())).then(|| Failure::MissingError {
                want: want.clone(),
                got,
            })
        }
        (Expect::Error(want), Ok(row)) => Some(Failure::MissingError {
            want: want.clone(),
            got: format!("fields {}", show_row(row)),
        }),
        (Expect::Fields(expected), Ok(row)) => {
            let diffs: Vec<(String, Json, Option<Value>)> = expected
                .iter()
                .filter_map(|(name, want)| {
                    let got = row.iter().find(|c| &c.name == name).map(|c| &c.value);
                    match got {
                        Some(got) if same(got, want) => None,
                        got => Some((name.clone(), want.clone(), got.cloned())),
                    }
                })
                .collect();
            let shape = shape_problems(row, declared);
            (!diffs.is_empty() || !shape.is_empty()).then_some(Failure::Fields { diffs, shape })
        }
    }
}

/// Whether the returned fields are the declared ones, in order, each of its
/// declared kind (and non-null unless nullable): what the sinks rely on.
fn shape_problems(row: &Row, declared: &[FieldSpec]) -> Vec<String> {
    let mut problems = Vec::new();
    let names: Vec<&str> = row.iter().map(|c| c.name.as_str()).collect();
    let want: Vec<&str> = declared.iter().map(|f| f.name.as_str()).collect();
    if names != want {
        problems.push(format!(
            "returned fields {names:?}, but info() declares {want:?} (same names, same order)"
        ));
    }
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    if unique.len() != names.len() {
        problems.push("a field name is returned twice".to_owned());
    }
    for column in row {
        let Some(spec) = declared.iter().find(|f| f.name == column.name) else {
            continue;
        };
        let kind = value_kind(&column.value);
        match kind {
            None if !spec.nullable => problems.push(format!(
                "{} is null, but declared not nullable",
                column.name
            )),
            Some(kind) if kind != spec.kind => problems.push(format!(
                "{} is {}, but declared {}",
                column.name,
                kind_name(kind),
                kind_name(spec.kind)
            )),
            _ => {}
        }
    }
    problems
}

fn value_kind(value: &Value) -> Option<ValueKind> {
    match value {
        Value::Null => None,
        Value::Boolean(_) => Some(ValueKind::Boolean),
        Value::Int(_) => Some(ValueKind::Int),
        Value::Float(_) => Some(ValueKind::Float),
        Value::Text(_) => Some(ValueKind::Text),
        Value::Json(_) => Some(ValueKind::Json),
    }
}

/// Whether `got` is exactly the value the case file wrote.
pub fn same(got: &Value, want: &Json) -> bool {
    match (got, want) {
        (Value::Null, Json::Null) => true,
        // The host writes NaN and infinities as null.
        (Value::Float(f), Json::Null) => !f.is_finite(),
        (Value::Boolean(a), Json::Bool(b)) => a == b,
        (Value::Int(a), Json::Number(n)) => !n.is_f64() && n.as_i64() == Some(*a),
        (Value::Float(a), Json::Number(n)) => {
            n.is_f64() && n.as_f64().map(f64::to_bits) == Some(a.to_bits())
        }
        (Value::Text(a), Json::String(b)) => a == b,
        (Value::Json(text), want) => serde_json::from_str::<Json>(text).is_ok_and(|j| &j == want),
        _ => false,
    }
}

/// A got value, typed: `float 0.13 (bits 0x3fc0a3d70a3d70a4)`.
fn show_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Boolean(b) => format!("bool {b}"),
        Value::Int(i) => format!("int {i}"),
        Value::Float(f) if f.is_finite() => format!("float {f:?} (bits {:#018x})", f.to_bits()),
        Value::Float(f) => format!("float {f:?} (written as null)"),
        Value::Text(s) => format!("text {}", Json::String(s.clone())),
        Value::Json(j) => format!("json {}", shorten(j, 60)),
    }
}

/// An expected value, typed the same way.
fn show_json(json: &Json) -> String {
    match json {
        Json::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            format!("float {f:?} (bits {:#018x})", f.to_bits())
        }
        Json::Number(n) => format!("int {n}"),
        Json::Null => "null".to_owned(),
        Json::Bool(b) => format!("bool {b}"),
        Json::String(s) => format!("text {}", Json::String(s.clone())),
        other => format!("json {}", shorten(&other.to_string(), 60)),
    }
}

/// A row as a compact JSON-like object, long values shortened.
fn show_row(row: &[Column]) -> String {
    let parts: Vec<String> = row
        .iter()
        .map(|c| {
            let value = match &c.value {
                Value::Null => "null".to_owned(),
                Value::Boolean(b) => b.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Float(f) => format!("{f:?}"),
                Value::Text(s) => shorten(&Json::String(s.clone()).to_string(), 60),
                Value::Json(j) => shorten(j, 60),
            };
            format!("{}: {value}", Json::String(c.name.clone()))
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let head: String = text.chars().take(max).collect();
        format!("{head}…")
    }
}

fn describe_error(err: &EnrichError) -> String {
    match err {
        EnrichError::InvalidField(e) => format!(
            "invalid_field: field `{}` should be {}, found {}",
            e.field, e.expected, e.found
        ),
        EnrichError::Failed(message) => format!("enrich_failed: {message}"),
    }
}

fn describe_result(result: &Result<Row, EnrichError>) -> String {
    match result {
        Ok(row) => show_row(row),
        Err(err) => format!("error {}", describe_error(err)),
    }
}

/// The text report: failing cases in full (up to `max_failures`), then the
/// summary line.
pub fn render(
    report: &Report,
    cases: &[Case],
    plugin: &LoadedPlugin,
    cases_path: &Path,
    max_failures: usize,
) -> String {
    let mut out = String::new();
    let total = cases.len();
    let failing = report
        .outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.as_ref().map(|f| (i, f)));
    for (shown, (i, failure)) in failing.enumerate() {
        if shown == max_failures {
            let _ = writeln!(
                out,
                "... {} more failing cases not shown (--max-failures)\n",
                report.failed() - shown
            );
            break;
        }
        let case = &cases[i];
        let _ = writeln!(
            out,
            "FAIL case {} of {total} (line {}){}",
            i + 1,
            case.line,
            case.name
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
        let request = EnrichRequest {
            event: case.event.clone(),
            content: case.content.clone().map(Arc::new),
        };
        let input = project(&request, plugin.reads.as_ref());
        let _ = writeln!(
            out,
            "  input ({}):",
            if plugin.reads.is_some() {
                "the columns the rule reads"
            } else {
                "whole rows"
            }
        );
        let _ = writeln!(out, "    event:   {}", show_row(&input.event));
        let _ = writeln!(
            out,
            "    content: {}",
            input
                .content
                .as_deref()
                .map_or_else(|| "null (missing)".to_owned(), show_row)
        );
        render_failure(&mut out, failure);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{}: {} passed, {} failed ({} sha256 {} on {}, {:.1} ms in enrich-batch)",
        if report.failed() == 0 { "ok" } else { "FAILED" },
        total - report.failed(),
        report.failed(),
        plugin.id.label(),
        &plugin.id.sha256[..12],
        cases_path.display(),
        report.batch_time.as_secs_f64() * 1000.0,
    );
    out
}

fn render_failure(out: &mut String, failure: &Failure) {
    match failure {
        Failure::Fields { diffs, shape } => {
            if !diffs.is_empty() {
                let name_width = diffs.iter().map(|d| d.0.len()).max().unwrap_or(0).max(5);
                let rows: Vec<(String, String)> = diffs
                    .iter()
                    .map(|(_, want, got)| {
                        (
                            show_json(want),
                            got.as_ref()
                                .map_or_else(|| "(not returned)".to_owned(), show_value),
                        )
                    })
                    .collect();
                let want_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(8);
                let _ = writeln!(
                    out,
                    "  {:name_width$}  {:want_width$}  got",
                    "field", "expected"
                );
                for ((name, _, _), (want, got)) in diffs.iter().zip(rows) {
                    let _ = writeln!(out, "  {name:name_width$}  {want:want_width$}  {got}");
                }
            }
            for problem in shape {
                let _ = writeln!(out, "  output: {problem}");
            }
        }
        Failure::UnexpectedError(err) => {
            let _ = writeln!(out, "  expected fields, got an error: {err}");
        }
        Failure::MissingError { want, got } => {
            let _ = writeln!(
                out,
                "  expected an error containing {}, got {got}",
                Json::String(want.clone())
            );
        }
        Failure::CallFailed(err) => {
            let _ = writeln!(out, "  the call failed: {err}");
        }
        Failure::BatchDisagrees { single, batch } => {
            let _ = writeln!(out, "  enrich and enrich-batch disagree:");
            let _ = writeln!(out, "    enrich:       {single}");
            let _ = writeln!(out, "    enrich-batch: {batch}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::bindings::FieldError;

    fn col(name: &str, value: Value) -> Column {
        Column {
            name: name.to_owned(),
            value,
        }
    }

    fn spec(name: &str, kind: ValueKind) -> FieldSpec {
        FieldSpec {
            name: name.to_owned(),
            kind,
            nullable: true,
            description: String::new(),
        }
    }

    fn expect(json: &str) -> Expect {
        Expect::Fields(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn floats_compare_by_bits_and_kind() {
        let json = |s: &str| serde_json::from_str::<Json>(s).unwrap();
        assert!(same(&Value::Float(0.12), &json("0.12")));
        assert!(!same(&Value::Float(0.12000000000000001), &json("0.12")));
        assert!(!same(&Value::Float(0.13), &json("0.12")));
        assert!(!same(&Value::Float(-0.0), &json("0.0")));
        assert!(same(&Value::Float(-0.0), &json("-0.0")));
        assert!(!same(&Value::Float(1.0), &json("1")));
        assert!(!same(&Value::Int(1), &json("1.0")));
        assert!(same(&Value::Int(1), &json("1")));
        assert!(same(&Value::Float(f64::INFINITY), &json("null")));
        assert!(!same(&Value::Float(0.0), &json("null")));
        assert!(same(
            &Value::Json("{\"a\": [1]}".into()),
            &json("{\"a\":[1]}")
        ));
        assert!(same(&Value::Text("video".into()), &json("\"video\"")));
        assert!(!same(&Value::Text("1".into()), &json("1")));
    }

    #[test]
    fn rows_are_typed_as_the_decoder_types_them() {
        let json: Json =
            serde_json::from_str(r#"[1, 1.0, 9223372036854775808, "x", true, null, {"a":1}]"#)
                .unwrap();
        let values: Vec<Value> = json.as_array().unwrap().iter().map(to_value).collect();
        assert_eq!(
            values,
            [
                Value::Int(1),
                Value::Float(1.0),
                Value::Json("9223372036854775808".into()),
                Value::Text("x".into()),
                Value::Boolean(true),
                Value::Null,
                Value::Json("{\"a\":1}".into()),
            ]
        );
    }

    #[test]
    fn judge_reports_each_kind_of_failure() {
        let declared = [spec("a", ValueKind::Float), spec("b", ValueKind::Int)];
        let row = vec![col("a", Value::Float(0.13)), col("b", Value::Int(2))];
        assert_eq!(
            judge(
                &expect(r#"{"a": 0.13, "b": 2}"#),
                &Ok(row.clone()),
                &declared
            ),
            None
        );
        let Some(Failure::Fields { diffs, shape }) = judge(
            &expect(r#"{"a": 0.12, "c": 1}"#),
            &Ok(row.clone()),
            &declared,
        ) else {
            panic!("a diff expected");
        };
        assert_eq!(diffs.len(), 2);
        assert_eq!(diffs[0].2, Some(Value::Float(0.13)));
        assert_eq!(diffs[1].2, None, "c is not returned");
        assert!(shape.is_empty());

        // Wrong order and wrong kind are output problems even when the
        // values match.
        let swapped = vec![col("b", Value::Int(2)), col("a", Value::Text("x".into()))];
        let Some(Failure::Fields { shape, .. }) = judge(&expect("{}"), &Ok(swapped), &declared)
        else {
            panic!("shape problems expected");
        };
        assert_eq!(shape.len(), 2, "{shape:?}");

        let err = EnrichError::InvalidField(FieldError {
            field: "event.duration_ms".into(),
            expected: "an integer".into(),
            found: "text \"x\"".into(),
        });
        assert!(matches!(
            judge(&expect("{}"), &Err(err.clone()), &declared),
            Some(Failure::UnexpectedError(_))
        ));
        assert_eq!(
            judge(
                &Expect::Error("duration_ms".into()),
                &Err(err.clone()),
                &declared
            ),
            None
        );
        assert!(matches!(
            judge(&Expect::Error("length".into()), &Err(err), &declared),
            Some(Failure::MissingError { .. })
        ));
        assert!(matches!(
            judge(&Expect::Error(String::new()), &Ok(row), &declared),
            Some(Failure::MissingError { .. })
        ));
    }

    #[test]
    fn cases_file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cases.ndjson");
        std::fs::write(
            &path,
            "{\"event\": {\"duration_ms\": 1}, \"content\": null, \"expected\": {}}\n\n{\"event\": 1, \"expected\": {}}\n",
        )
        .unwrap();
        let err = load_cases(&path).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("`event`"), "{err}");

        std::fs::write(
            &path,
            "{\"name\": \"n\", \"event\": {\"duration_ms\": 1}, \"expected_error\": \"x\"}\n",
        )
        .unwrap();
        let cases = load_cases(&path).unwrap();
        assert_eq!(cases[0].name.as_deref(), Some("n"));
        assert!(cases[0].content.is_none());
        assert!(matches!(&cases[0].expect, Expect::Error(t) if t == "x"));
    }
}
