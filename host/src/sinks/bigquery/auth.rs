//! Access tokens for BigQuery: application default credentials for the real
//! service, a fixed dummy token for an emulator (which checks none).
//!
//! One [`TokenSource`] serves both HTTP paths of the sink: the sink's own
//! `insertAll` requests ([`TokenSource::token`], which keeps whether a
//! failure is transient) and gcp-bigquery-client's dataset, table and job
//! calls (through its [`Authenticator`] trait). Tokens are cached and
//! refreshed by google-cloud-auth; nothing here caches.

use std::sync::Arc;

use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use google_cloud_auth::credentials::{AccessTokenCredentials, Builder};

use super::error::BigQueryError;

/// Read/write access to BigQuery.
const BIGQUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";
/// What an emulator is sent as a bearer token.
const EMULATOR_TOKEN: &str = "emulator";

/// Where tokens come from.
#[derive(Clone, Debug)]
pub(crate) enum TokenSource {
    /// An emulator: any token is accepted.
    Emulator,
    /// Application default credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
    /// gcloud's ADC file, or the metadata server).
    Google(AccessTokenCredentials),
}

impl TokenSource {
    /// Emulator when a base URL is configured, ADC otherwise. Finding the
    /// credentials makes no network call; the first token does.
    pub(crate) fn new(emulator: bool) -> Result<Self, BigQueryError> {
        if emulator {
            return Ok(TokenSource::Emulator);
        }
        let credentials = Builder::default()
            .with_scopes([BIGQUERY_SCOPE])
            .build_access_token_credentials()
            .map_err(|err| BigQueryError::CredentialsFailed {
                message: format!("no application default credentials: {err}"),
                transient: false,
            })?;
        Ok(TokenSource::Google(credentials))
    }

    /// A bearer token for the next request.
    pub(crate) async fn token(&self) -> Result<String, BigQueryError> {
        match self {
            TokenSource::Emulator => Ok(EMULATOR_TOKEN.to_owned()),
            TokenSource::Google(credentials) => credentials
                .access_token()
                .await
                .map(|token| token.token)
                .map_err(|err| BigQueryError::CredentialsFailed {
                    transient: err.is_transient(),
                    message: err.to_string(),
                }),
        }
    }

    /// The same source as gcp-bigquery-client's authenticator.
    pub(crate) fn authenticator(&self) -> Arc<dyn Authenticator> {
        Arc::new(ClientAuthenticator(self.clone()))
    }
}

/// [`TokenSource`] behind gcp-bigquery-client's trait.
#[derive(Clone)]
struct ClientAuthenticator(TokenSource);

#[async_trait::async_trait]
impl Authenticator for ClientAuthenticator {
    async fn access_token(&self) -> Result<String, BQError> {
        // BQError has no variant for a foreign credentials error: carry the
        // message in the ADC variant, the closest in meaning.
        self.0.token().await.map_err(|err| {
            BQError::InvalidApplicationDefaultCredentialsAuthenticator(std::io::Error::other(
                err.to_string(),
            ))
        })
    }
}
