//! The third-party API simulator over real HTTP on 127.0.0.1: the original
//! API's bodies byte for byte, real stats (events, types, duplicates by
//! idempotency key, latency), and the fault switches (outages, 429 with
//! `Retry-After`, error rates) turned on and off at run time.

use std::time::{Duration, Instant};

use engagement_host::api_sim::{
    ApiSimError, ApiSimSettings, ApiSimState, FaultConfig, serve, serve_listener,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A simulator on an ephemeral port, stopped when dropped.
struct Sim {
    base: String,
    http: reqwest::Client,
    _stop: DropGuard,
}

impl Sim {
    async fn start(faults: FaultConfig) -> Sim {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = ApiSimState::new(faults).unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve_listener(
            listener,
            state,
            stop.clone().cancelled_owned(),
        ));
        Sim {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            _stop: stop.drop_guard(),
        }
    }

    async fn post_events(&self, body: Value, key: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(format!("{}/events", self.base)).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    async fn status_of(&self, body: Value) -> u16 {
        self.post_events(body, None).await.status().as_u16()
    }

    async fn stats(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/stats", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn set_faults(&self, faults: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/faults", self.base))
            .json(&faults)
            .send()
            .await
            .unwrap()
    }
}

fn one_event() -> Value {
    json!({"events": [{"id": 1, "content_id": "c1", "event_type": "play"}]})
}

#[tokio::test]
async fn health_and_events_bodies_match_the_original() {
    let sim = Sim::start(FaultConfig::default()).await;

    let health = sim.http.get(&sim.base).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(
        health.text().await.unwrap(),
        r#"{"status":"healthy","service":"third-party-api"}"#
    );

    let events =
        json!({"events": [{"id": 1, "event_type": "play"}, {"id": 2, "event_type": "click"}]});
    let answer = sim.post_events(events, None).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.text().await.unwrap(),
        r#"{"status":"success","processed_count":2,"message":"Successfully processed 2 events"}"#
    );

    let empty = sim.post_events(json!({"events": []}), None).await;
    assert_eq!(
        empty.text().await.unwrap(),
        r#"{"status":"success","processed_count":0,"message":"Successfully processed 0 events"}"#
    );
}

#[tokio::test]
async fn malformed_bodies_get_a_400_with_a_json_error() {
    let sim = Sim::start(FaultConfig::default()).await;
    let bodies: [&[u8]; 5] = [
        b"not json",
        b"[]",
        br#"{"evts": []}"#,
        br#"{"events": {}}"#,
        br#"{"events": [{"id": 1}, 2]}"#,
    ];
    for body in bodies {
        let answer = sim
            .http
            .post(format!("{}/events", sim.base))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["status"], "error");
        assert_eq!(error["error"], "bad_request");
        assert!(!error["message"].as_str().unwrap().is_empty(), "{error}");
    }
    let stats = sim.stats().await;
    assert_eq!(stats["bad_requests"], 5);
    assert_eq!(stats["requests"], 5);
    assert_eq!(stats["events"], 0);
}

#[tokio::test]
async fn stats_count_events_types_duplicates_and_latency() {
    let sim = Sim::start(FaultConfig::default()).await;
    let batch = json!({"events": [
        {"id": 1, "content_id": "c1", "event_type": "play", "op": "c"},
        {"id": 2, "content_id": "c1", "event_type": "play", "op": "c"},
        {"id": 3, "content_id": "c2", "event_type": "pause", "op": "c"},
    ]});
    assert_eq!(
        sim.post_events(batch.clone(), Some("k1")).await.status(),
        200
    );
    // The retry with the same key is acknowledged the same way...
    let retried = sim.post_events(batch.clone(), Some("k1")).await;
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["processed_count"], 3);
    // ...and a batch without a key is always new; event 3 again is an update.
    let more = json!({"events": [
        {"id": 3, "content_id": "c2", "event_type": "pause", "op": "u"},
        {"id": 4, "content_id": "c2", "event_type": "click", "op": "c"},
        {"id": 4, "content_id": "c2", "op": "d"},
    ]});
    assert_eq!(sim.post_events(more, None).await.status(), 200);

    let stats = sim.stats().await;
    assert_eq!(stats["requests"], 3);
    assert_eq!(stats["batches"], 3);
    assert_eq!(stats["batches_with_idempotency_key"], 2);
    assert_eq!(stats["duplicate_batches"], 1);
    assert_eq!(stats["events"], 6);
    assert_eq!(
        stats["events_by_type"],
        json!({"play": 2, "pause": 2, "click": 1, "(none)": 1})
    );
    assert_eq!(stats["events_by_op"], json!({"c": 4, "u": 1, "d": 1}));
    assert_eq!(stats["unique_event_ids"], 4);
    assert_eq!(stats["errors_injected"], 0);
    assert_eq!(stats["latency_ms"]["count"], 3);

    // Injected latency shows in the handling time.
    assert_eq!(
        sim.set_faults(json!({"latency_ms": 120})).await.status(),
        200
    );
    let started = Instant::now();
    assert_eq!(sim.status_of(one_event()).await, 200);
    assert!(started.elapsed() >= Duration::from_millis(120));
    let latency = sim.stats().await["latency_ms"].clone();
    assert_eq!(latency["count"], 4);
    assert!(latency["max"].as_f64().unwrap() >= 120.0, "{latency}");
    assert!(latency["p99"].as_f64().unwrap() >= 120.0, "{latency}");
    assert!(latency["p50"].as_f64().unwrap() < 120.0, "{latency}");

    // Reset zeroes everything, the remembered keys included.
    let reset = sim
        .http
        .post(format!("{}/stats/reset", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    let stats = sim.stats().await;
    assert_eq!(stats["requests"], 0);
    assert_eq!(stats["events"], 0);
    assert_eq!(stats["events_by_type"], json!({}));
    assert_eq!(stats["latency_ms"]["count"], 0);
    sim.set_faults(json!({})).await;
    sim.post_events(batch, Some("k1")).await;
    let stats = sim.stats().await;
    assert_eq!(stats["events"], 3);
    assert_eq!(stats["duplicate_batches"], 0);
}

#[tokio::test]
async fn fail_for_seconds_answers_500_then_recovers() {
    let sim = Sim::start(FaultConfig::default()).await;
    let switched = Instant::now();
    let answer = sim.set_faults(json!({"fail_for_secs": 0.6})).await;
    assert_eq!(answer.status(), 200);

    let first = sim.post_events(one_event(), None).await;
    assert_eq!(first.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let error: Value = first.json().await.unwrap();
    assert_eq!(error["error"], "injected_fault");
    // The controls keep answering during the outage.
    assert_eq!(sim.http.get(&sim.base).send().await.unwrap().status(), 200);

    let mut failures = 1;
    loop {
        match sim.status_of(one_event()).await {
            200 => break,
            500 => failures += 1,
            other => panic!("unexpected status {other}"),
        }
        assert!(
            switched.elapsed() < Duration::from_secs(5),
            "never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(switched.elapsed() >= Duration::from_millis(600));

    let stats = sim.stats().await;
    assert_eq!(stats["errors_injected"], failures);
    assert_eq!(stats["errors_by_status"], json!({"500": failures}));
    assert_eq!(stats["errors_by_cause"], json!({"fail_for_secs": failures}));
    assert_eq!(stats["requests"], failures + 1);
    assert_eq!(stats["events"], 1);
}

#[tokio::test]
async fn fail_next_requests_fails_exactly_that_many() {
    let sim = Sim::start(FaultConfig::default()).await;
    sim.set_faults(json!({"fail_next_requests": 2})).await;
    let statuses = [
        sim.status_of(one_event()).await,
        sim.status_of(one_event()).await,
        sim.status_of(one_event()).await,
    ];
    assert_eq!(statuses, [500, 500, 200]);
    let faults: Value = sim
        .http
        .get(format!("{}/faults", sim.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["fail_remaining_requests"], 0);
    assert_eq!(faults["faults"]["fail_next_requests"], 2);
    assert_eq!(sim.stats().await["errors_injected"], 2);
}

#[tokio::test]
async fn rate_limits_and_unavailability_carry_retry_after() {
    let sim = Sim::start(FaultConfig::default()).await;
    sim.set_faults(json!({"rate_limit_rate": 1.0, "retry_after_secs": 3}))
        .await;
    let limited = sim.post_events(one_event(), None).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "3");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");

    sim.set_faults(json!({"error_rate": 1.0, "error_status": 503, "retry_after_secs": 2}))
        .await;
    let unavailable = sim.post_events(one_event(), None).await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.headers()["retry-after"], "2");

    // A plain 500 has no Retry-After.
    sim.set_faults(json!({"fail_next_requests": 1})).await;
    let failed = sim.post_events(one_event(), None).await;
    assert_eq!(failed.status(), 500);
    assert!(failed.headers().get("retry-after").is_none());

    sim.set_faults(json!({})).await;
    assert_eq!(sim.status_of(one_event()).await, 200);
    let stats = sim.stats().await;
    assert_eq!(stats["errors_injected"], 3);
    assert_eq!(
        stats["errors_by_status"],
        json!({"429": 1, "503": 1, "500": 1})
    );
    assert_eq!(stats["events"], 1);
}

#[tokio::test]
async fn error_rates_of_zero_and_one_are_deterministic() {
    let sim = Sim::start(FaultConfig::default()).await;
    sim.set_faults(json!({"error_rate": 1.0})).await;
    for _ in 0..20 {
        assert_eq!(sim.status_of(one_event()).await, 500);
    }
    sim.set_faults(json!({"error_rate": 0.0})).await;
    for _ in 0..20 {
        assert_eq!(sim.status_of(one_event()).await, 200);
    }
    let stats = sim.stats().await;
    assert_eq!(stats["errors_injected"], 20);
    assert_eq!(stats["errors_by_cause"], json!({"error_rate": 20}));
    assert_eq!(stats["events"], 20);
}

#[tokio::test]
async fn faults_given_at_start_apply_from_the_first_request() {
    let sim = Sim::start(FaultConfig {
        fail_next_requests: 1,
        error_status: 502,
        ..FaultConfig::default()
    })
    .await;
    assert_eq!(sim.status_of(one_event()).await, 502);
    assert_eq!(sim.status_of(one_event()).await, 200);
}

#[tokio::test]
async fn invalid_fault_settings_are_refused_and_change_nothing() {
    let sim = Sim::start(FaultConfig::default()).await;
    for bad in [
        json!({"error_rate": 2.0}),
        json!({"error_status": 200}),
        json!({"fail_for_secs": -1}),
        json!({"no_such_fault": 1}),
    ] {
        let answer = sim.set_faults(bad.clone()).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{bad}");
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["error"], "bad_request");
    }
    assert_eq!(sim.status_of(one_event()).await, 200);

    // The same checks guard the start-up settings.
    let refused = serve(
        ApiSimSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            faults: FaultConfig {
                rate_limit_rate: -0.5,
                ..FaultConfig::default()
            },
        },
        std::future::ready(()),
    )
    .await;
    assert!(matches!(refused, Err(ApiSimError::InvalidFaults(_))));
}

#[tokio::test]
async fn serve_reports_an_address_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = serve(
        ApiSimSettings {
            listen: taken.local_addr().unwrap(),
            faults: FaultConfig::default(),
        },
        std::future::ready(()),
    )
    .await;
    assert!(
        matches!(result, Err(ApiSimError::BindFailed { .. })),
        "{result:?}"
    );
}
