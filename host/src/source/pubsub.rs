//! Google Cloud Pub/Sub source: streaming pull on each subscription with
//! flow control, messages handed on with their ack handle.
//!
//! The official client extends leases by itself while a message is being
//! processed (up to `max_lease`), so a message waiting in a batch or in a
//! sink retry stays ours. It never acks: the pipeline acks once everything
//! the message produced is written. `google-cloud-pubsub` does not read
//! `PUBSUB_EMULATOR_HOST`; [`PubSubConfig::from_env_endpoint`] does, and then
//! uses anonymous credentials.

use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use google_cloud_pubsub::client::{Publisher, Subscriber, SubscriptionAdmin, TopicAdmin};
use google_cloud_pubsub::subscriber::handler::Handler;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pubsub_grpc_admin::{Created, GrpcAdmin};
use super::{Message, Origin};

/// One subscription and the topic it reads.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    pub subscription: String,
    pub topic: String,
}

/// Where Pub/Sub is and what to pull.
#[derive(Debug, Clone)]
pub struct PubSubConfig {
    pub project: String,
    /// `http://host:port` of an emulator; `None` for Google Cloud.
    pub endpoint: Option<String>,
    pub subscriptions: Vec<SubscriptionConfig>,
    /// Flow control: unacked messages per subscription.
    pub max_outstanding_messages: i64,
    /// Flow control: unacked bytes per subscription.
    pub max_outstanding_bytes: i64,
    /// Topic that dead letters are published to (created by `setup-pubsub`).
    pub dead_letter_topic: Option<String>,
    /// Ack deadline of the subscriptions `setup` creates.
    pub ack_deadline_secs: i32,
}

impl Default for PubSubConfig {
    fn default() -> Self {
        Self {
            project: "streaming-project".into(),
            endpoint: None,
            subscriptions: vec![
                SubscriptionConfig {
                    subscription: "cdc-content-sub".into(),
                    topic: "pgcdc.public.content".into(),
                },
                SubscriptionConfig {
                    subscription: "cdc-engagement_events-sub".into(),
                    topic: "pgcdc.public.engagement_events".into(),
                },
            ],
            max_outstanding_messages: 5000,
            max_outstanding_bytes: 100 << 20,
            dead_letter_topic: Some("pgcdc.dead-letters".into()),
            ack_deadline_secs: 60,
        }
    }
}

impl PubSubConfig {
    /// `http://<PUBSUB_EMULATOR_HOST>` when that variable is set.
    pub fn from_env_endpoint() -> Option<String> {
        std::env::var("PUBSUB_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .map(|h| {
                if h.starts_with("http") {
                    h
                } else {
                    format!("http://{h}")
                }
            })
    }

    pub fn topic_path(&self, topic: &str) -> String {
        format!("projects/{}/topics/{topic}", self.project)
    }

    pub fn subscription_path(&self, subscription: &str) -> String {
        format!("projects/{}/subscriptions/{subscription}", self.project)
    }

    /// Anonymous for an emulator, application default credentials otherwise.
    pub fn credentials(&self) -> Result<Credentials, PubSubError> {
        if self.endpoint.is_some() {
            Ok(google_cloud_auth::credentials::anonymous::Builder::new().build())
        } else {
            google_cloud_auth::credentials::Builder::default()
                .build()
                .map_err(|e| PubSubError::Credentials(e.to_string()))
        }
    }
}

/// Errors talking to Pub/Sub.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    #[error("no Pub/Sub credentials: {0}")]
    Credentials(String),
    #[error("cannot create a Pub/Sub client: {0}")]
    Client(String),
    #[error("Pub/Sub request failed: {0}")]
    Request(String),
}

/// A message received, with what acknowledges it.
pub struct Delivery {
    pub message: Message,
    pub origin: Origin,
    pub handler: Handler,
}

/// Starts one streaming pull per subscription, sending deliveries to `tx`
/// until `cancel` fires. The channel's bound is the backpressure: when the
/// pipeline is slow, pulls wait, and flow control stops the server sending.
pub async fn spawn_sources(
    config: &PubSubConfig,
    tx: mpsc::Sender<Delivery>,
    cancel: CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>, PubSubError> {
    let mut builder = Subscriber::builder().with_credentials(config.credentials()?);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let client = builder
        .build()
        .await
        .map_err(|e| PubSubError::Client(e.to_string()))?;
    let mut tasks = Vec::new();
    for sub in &config.subscriptions {
        let path = config.subscription_path(&sub.subscription);
        let mut stream = client
            .subscribe(path.clone())
            .set_max_outstanding_messages(config.max_outstanding_messages)
            .set_max_outstanding_bytes(config.max_outstanding_bytes)
            .build();
        let tx = tx.clone();
        let cancel = cancel.clone();
        let topic = sub.topic.clone();
        let source = format!("pubsub:{}", sub.subscription);
        tasks.push(tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    // Shutdown: stop pulling; unacked messages are redelivered.
                    _ = cancel.cancelled() => break,
                    next = stream.next() => next,
                };
                match next {
                    Some(Ok((m, handler))) => {
                        let mut attributes: Vec<(String, String)> = m.attributes.into_iter().collect();
                        attributes.sort();
                        let delivery = Delivery {
                            message: Message {
                                topic: topic.clone(),
                                key: (!m.ordering_key.is_empty()).then_some(m.ordering_key),
                                data: Some(m.data.to_vec()),
                                attributes,
                            },
                            origin: Origin {
                                source: source.clone(),
                                position: format!("message {}", m.message_id),
                            },
                            handler,
                        };
                        metrics::counter!("engagement_pubsub_messages_total", "subscription" => source.clone()).increment(1);
                        // The pipeline is gone: stop.
                        if tx.send(delivery).await.is_err() {
                            break;
                        }
                    }
                    Some(Err(err)) => {
                        tracing::warn!(subscription = %path, error = %err, "streaming pull failed; retrying");
                        metrics::counter!("engagement_pubsub_errors_total").increment(1);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    None => {
                        tracing::warn!(subscription = %path, "streaming pull ended");
                        break;
                    }
                }
            }
        }));
    }
    Ok(tasks)
}

/// Creates the topics, subscriptions and dead-letter topic if missing (what
/// the original init container did), retrying until Pub/Sub answers.
pub async fn setup(config: &PubSubConfig, wait: Duration) -> Result<Vec<String>, PubSubError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match try_setup(config).await {
            Ok(done) => return Ok(done),
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %err, "Pub/Sub not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

async fn try_setup(config: &PubSubConfig) -> Result<Vec<String>, PubSubError> {
    let mut topics: Vec<&str> = config
        .subscriptions
        .iter()
        .map(|s| s.topic.as_str())
        .collect();
    if let Some(dead) = &config.dead_letter_topic {
        topics.push(dead);
    }
    match &config.endpoint {
        Some(endpoint) => setup_over_grpc(config, endpoint, &topics).await,
        None => setup_over_rest(config, &topics).await,
    }
}

/// Emulators: gRPC (see `pubsub_grpc_admin`).
async fn setup_over_grpc(
    config: &PubSubConfig,
    endpoint: &str,
    topics: &[&str],
) -> Result<Vec<String>, PubSubError> {
    let admin = GrpcAdmin::connect(endpoint)
        .await
        .map_err(PubSubError::Client)?;
    let mut done = Vec::new();
    for topic in topics {
        let name = config.topic_path(topic);
        let created = admin
            .create_topic(name.clone())
            .await
            .map_err(PubSubError::Request)?;
        done.push(describe("topic", &name, created));
    }
    for sub in &config.subscriptions {
        let name = config.subscription_path(&sub.subscription);
        let created = admin
            .create_subscription(
                name.clone(),
                config.topic_path(&sub.topic),
                config.ack_deadline_secs,
            )
            .await
            .map_err(PubSubError::Request)?;
        done.push(describe("subscription", &name, created));
    }
    Ok(done)
}

fn describe(what: &str, name: &str, created: Created) -> String {
    match created {
        Created::New => format!("{what} {name}"),
        Created::Existed => format!("{what} {name} (existed)"),
    }
}

/// Google Cloud: the official admin clients.
async fn setup_over_rest(
    config: &PubSubConfig,
    topics: &[&str],
) -> Result<Vec<String>, PubSubError> {
    let credentials = config.credentials()?;
    let topic_admin = TopicAdmin::builder()
        .with_credentials(credentials.clone())
        .build()
        .await
        .map_err(|e| PubSubError::Client(e.to_string()))?;
    let sub_admin = SubscriptionAdmin::builder()
        .with_credentials(credentials)
        .build()
        .await
        .map_err(|e| PubSubError::Client(e.to_string()))?;
    let mut done = Vec::new();
    for topic in topics {
        let name = config.topic_path(topic);
        match topic_admin
            .create_topic()
            .set_name(name.clone())
            .send()
            .await
        {
            Ok(_) => done.push(format!("topic {name}")),
            Err(err) if is_already_exists(&err) => done.push(format!("topic {name} (existed)")),
            Err(err) => return Err(PubSubError::Request(format!("create topic {name}: {err}"))),
        }
    }
    for sub in &config.subscriptions {
        let name = config.subscription_path(&sub.subscription);
        let result = sub_admin
            .create_subscription()
            .set_name(name.clone())
            .set_topic(config.topic_path(&sub.topic))
            .set_ack_deadline_seconds(config.ack_deadline_secs)
            .send()
            .await;
        match result {
            Ok(_) => done.push(format!("subscription {name}")),
            Err(err) if is_already_exists(&err) => {
                done.push(format!("subscription {name} (existed)"))
            }
            Err(err) => {
                return Err(PubSubError::Request(format!(
                    "create subscription {name}: {err}"
                )));
            }
        }
    }
    Ok(done)
}

fn is_already_exists(err: &google_cloud_pubsub::Error) -> bool {
    err.status()
        .is_some_and(|s| s.code == google_cloud_gax::error::rpc::Code::AlreadyExists)
}

/// Publishes to one topic (dead letters; tests publishing fixtures).
pub async fn publisher(config: &PubSubConfig, topic: &str) -> Result<Publisher, PubSubError> {
    let mut builder =
        Publisher::builder(config.topic_path(topic)).with_credentials(config.credentials()?);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    builder
        .build()
        .await
        .map_err(|e| PubSubError::Client(e.to_string()))
}
