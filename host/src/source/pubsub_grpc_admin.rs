//! Creating topics and subscriptions over gRPC, for Pub/Sub emulators.
//!
//! The official crate's admin clients speak HTTP/JSON, which Google Cloud
//! serves but gRPC-only emulators do not. These two calls are all `setup`
//! needs, so they are made with hand-written messages holding just the
//! fields used (protobuf ignores the rest), on the same tonic stack the
//! crate already brings.

use http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

/// `google.pubsub.v1.Topic`, name only.
#[derive(Clone, PartialEq, prost::Message)]
struct Topic {
    #[prost(string, tag = "1")]
    name: String,
}

/// `google.pubsub.v1.Subscription`, the fields we set.
#[derive(Clone, PartialEq, prost::Message)]
struct Subscription {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    topic: String,
    #[prost(int32, tag = "5")]
    ack_deadline_seconds: i32,
}

/// A gRPC connection to an emulator.
pub struct GrpcAdmin {
    channel: Channel,
}

/// What a create call did.
pub enum Created {
    New,
    Existed,
}

impl GrpcAdmin {
    pub async fn connect(endpoint: &str) -> Result<Self, String> {
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| format!("bad endpoint {endpoint}: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        Ok(Self { channel })
    }

    async fn unary<M: prost::Message + Default + Send + Sync + 'static>(
        &self,
        path: &'static str,
        message: M,
    ) -> Result<Created, String> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(|e| format!("{path}: {e}"))?;
        let result = grpc
            .unary::<M, M, _>(
                tonic::Request::new(message),
                PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        match result {
            Ok(_) => Ok(Created::New),
            Err(status) if status.code() == tonic::Code::AlreadyExists => Ok(Created::Existed),
            Err(status) => Err(format!("{path}: {status}")),
        }
    }

    pub async fn create_topic(&self, name: String) -> Result<Created, String> {
        self.unary("/google.pubsub.v1.Publisher/CreateTopic", Topic { name })
            .await
    }

    pub async fn create_subscription(
        &self,
        name: String,
        topic: String,
        ack_deadline_seconds: i32,
    ) -> Result<Created, String> {
        self.unary(
            "/google.pubsub.v1.Subscriber/CreateSubscription",
            Subscription {
                name,
                topic,
                ack_deadline_seconds,
            },
        )
        .await
    }
}
