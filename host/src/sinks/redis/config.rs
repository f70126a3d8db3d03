//! Settings of the Redis sink and what its URL says: one node or a cluster,
//! plain TCP or TLS.
//!
//! `url` is one Redis URL (`redis://[[user]:password@]host:port/db`, TLS with
//! `rediss://`), or several separated by commas for a Redis Cluster. After
//! the first, a node may be a bare `host:port`: it takes the first node's
//! scheme and credentials (`rediss://:pw@10.0.0.1:7000,10.0.0.2:7000`).

use std::path::PathBuf;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

/// Where and how long.
#[derive(Debug, Clone)]
pub struct RedisSinkConfig {
    /// One URL (single node), or comma-separated nodes (cluster); see the
    /// module documentation.
    pub url: String,
    /// Redis Cluster even with one node in `url` (the others are found
    /// from it). Several nodes in `url` mean a cluster anyway.
    pub cluster: bool,
    /// PEM file of the CA certificate(s) to trust instead of the usual
    /// public roots (a self-signed or private CA). TLS (`rediss://`) only.
    pub ca_file: Option<PathBuf>,
    /// Time to live of each key.
    pub ttl: Duration,
    /// Prefix before `{content_id}` (default `eng:`).
    pub key_prefix: String,
    /// Commands per pipeline round trip.
    pub max_pipeline: usize,
}

impl Default for RedisSinkConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".into(),
            cluster: false,
            ca_file: None,
            ttl: Duration::from_secs(3600),
            key_prefix: "eng:".into(),
            max_pipeline: 1000,
        }
    }
}

/// Why the sink could not be set up. URLs in messages have their password
/// masked; the cause (Redis' or the TLS library's) is the error's source.
#[derive(Debug, thiserror::Error)]
pub enum RedisSinkError {
    #[error("no Redis URL given")]
    NoUrl,
    #[error("invalid Redis URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("a Redis CA file is set but {url} is not a TLS (rediss://) URL")]
    CaWithoutTls { url: String },
    #[error("cannot read the Redis CA file {}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the Redis client")]
    Client(#[source] redis::RedisError),
    #[error("cannot connect to Redis at {url}")]
    Connect {
        url: String,
        #[source]
        source: redis::RedisError,
    },
}

/// What `url` and `cluster` settle: the nodes to connect to.
#[derive(Debug)]
pub(super) struct Endpoints {
    pub nodes: Vec<ConnectionInfo>,
    pub cluster: bool,
    pub tls: bool,
    /// The URL with passwords masked, for messages.
    pub shown: String,
}

impl RedisSinkConfig {
    /// Checks the URL(s) and the CA setting without connecting.
    pub fn validate(&self) -> Result<(), RedisSinkError> {
        self.endpoints().map(|_| ())
    }

    /// Whether the sink will talk to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster || node_urls(&self.url).len() > 1
    }

    pub(super) fn endpoints(&self) -> Result<Endpoints, RedisSinkError> {
        let urls = node_urls(&self.url);
        if urls.is_empty() {
            return Err(RedisSinkError::NoUrl);
        }
        let mut nodes = Vec::with_capacity(urls.len());
        for url in &urls {
            let info =
                url.as_str()
                    .into_connection_info()
                    .map_err(|err| RedisSinkError::BadUrl {
                        url: mask_password(url),
                        reason: err.to_string(),
                    })?;
            nodes.push(info);
        }
        let is_tls = |info: &ConnectionInfo| matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        let tls = nodes.iter().any(is_tls);
        let shown = urls
            .iter()
            .map(|url| mask_password(url))
            .collect::<Vec<_>>()
            .join(",");
        if tls && !nodes.iter().all(is_tls) {
            return Err(RedisSinkError::BadUrl {
                url: shown,
                reason: "mixes TLS (rediss://) and plain nodes".into(),
            });
        }
        if self.ca_file.is_some() && !tls {
            return Err(RedisSinkError::CaWithoutTls { url: shown });
        }
        Ok(Endpoints {
            cluster: self.cluster || nodes.len() > 1,
            nodes,
            tls,
            shown,
        })
    }
}

/// The nodes of `url`, bare `host:port` entries completed with the first
/// node's `scheme://[userinfo@]`.
fn node_urls(url: &str) -> Vec<String> {
    let mut entries = url.split(',').map(str::trim).filter(|e| !e.is_empty());
    let Some(first) = entries.next() else {
        return Vec::new();
    };
    let prefix = match first.split_once("://") {
        Some((scheme, rest)) => {
            let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
            let userinfo = authority.rfind('@').map_or("", |at| &authority[..=at]);
            format!("{scheme}://{userinfo}")
        }
        None => String::new(),
    };
    std::iter::once(first.to_string())
        .chain(entries.map(|entry| {
            if entry.contains("://") {
                entry.to_string()
            } else {
                format!("{prefix}{entry}")
            }
        }))
        .collect()
}

/// `url` with the password of its userinfo replaced by `***`.
pub(super) fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_string(),
    };
    format!("{scheme}://{user}{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> RedisSinkConfig {
        RedisSinkConfig {
            url: url.into(),
            ..RedisSinkConfig::default()
        }
    }

    #[test]
    fn one_url_is_one_node() {
        let endpoints = config("redis://:pw@127.0.0.1:6379/2").endpoints().unwrap();
        assert_eq!(endpoints.nodes.len(), 1);
        assert!(!endpoints.cluster && !endpoints.tls);
        assert_eq!(endpoints.nodes[0].redis_settings().db(), 2);
        assert_eq!(endpoints.shown, "redis://:***@127.0.0.1:6379/2");
    }

    #[test]
    fn several_nodes_are_a_cluster_and_inherit_scheme_and_credentials() {
        let urls = node_urls("rediss://user:p%40ss@a:7000/0, b:7001 ,,redis://c:7002");
        assert_eq!(
            urls,
            [
                "rediss://user:p%40ss@a:7000/0",
                "rediss://user:p%40ss@b:7001",
                "redis://c:7002"
            ]
        );
        let endpoints = config("rediss://:pw@a:7000,b:7001").endpoints().unwrap();
        assert!(endpoints.cluster && endpoints.tls);
        assert_eq!(endpoints.nodes.len(), 2);
        assert_eq!(
            endpoints.nodes[1].redis_settings().password(),
            Some("pw"),
            "a bare node takes the first node's password"
        );
        assert_eq!(endpoints.shown, "rediss://:***@a:7000,rediss://:***@b:7001");
    }

    #[test]
    fn cluster_flag_with_one_seed_node() {
        let mut cfg = config("redis://127.0.0.1:7000");
        assert!(!cfg.is_cluster());
        cfg.cluster = true;
        assert!(cfg.is_cluster());
        assert!(cfg.endpoints().unwrap().cluster);
    }

    #[test]
    fn bad_settings_are_refused_with_the_password_masked() {
        assert!(matches!(
            config(" , ").validate(),
            Err(RedisSinkError::NoUrl)
        ));
        let err = config("redis://:secret@host:notaport/0")
            .validate()
            .unwrap_err();
        assert!(matches!(err, RedisSinkError::BadUrl { .. }), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = config("rediss://a:1,redis://b:2").validate().unwrap_err();
        assert!(err.to_string().contains("mixes TLS"), "{err}");
        let mut cfg = config("redis://:secret@a:1");
        cfg.ca_file = Some("ca.pem".into());
        let err = cfg.validate().unwrap_err();
        assert!(matches!(err, RedisSinkError::CaWithoutTls { .. }), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn masking() {
        assert_eq!(mask_password("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(mask_password("redis://u@h:1"), "redis://u@h:1");
        assert_eq!(mask_password("redis://u:p@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(mask_password("unix:///tmp/r.sock"), "unix:///tmp/r.sock");
    }
}
