//! The Redis sink against real, private `redis-server` processes started
//! here (on free ports, in temp dirs, killed when the test ends, even on
//! failure): TLS with a password and a throwaway CA (values and TTLs read
//! back; a wrong password, an untrusted CA and a missing CA file fail fast
//! with a clear error), and a 3-master Redis Cluster, plain and TLS-only
//! with a password (batches over many slots with updates and deletes, every
//! key checked on the node that owns its slot).

use std::collections::{HashMap, HashSet};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engagement_host::pipeline::record::{Record, RecordKind};
use engagement_host::sinks::RecordSink;
use engagement_host::sinks::redis::{
    RedisSink, RedisSinkConfig, RedisSinkError, install_crypto_provider, key,
};
use engagement_host::wasm::PluginId;
use engagement_host::wasm::bindings::{Column, Op, Value};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

const PASSWORD: &str = "s3cret-pw";
/// Longest a refused connection may take to be reported.
const FAIL_FAST: Duration = Duration::from_secs(5);

/// `redis-server` processes, killed and reaped when dropped.
struct Servers {
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Servers {
    fn new() -> Servers {
        Servers {
            children: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `redis-server` with `args`, working in (and logging to) `name/`.
    fn start(&mut self, name: &str, args: &[String]) {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).expect("server dir");
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let child = Command::new("redis-server")
            .args(args)
            .args(["--dir".as_ref(), dir.as_os_str()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .current_dir(&dir)
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.children.push(child);
    }

    /// The logs, for failure messages.
    fn logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(log) = std::fs::read_to_string(entry.path().join("server.log")) {
                text += &format!("--- {}\n{log}", entry.path().display());
            }
        }
        text
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port nothing listens on (nor on `port + 10000` with `bus`, Redis
/// Cluster's bus port).
fn free_port(bus: bool) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind")
            .port();
        if !bus {
            return port;
        }
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Waits until `port` accepts connections.
fn wait_listening(servers: &Servers, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port}:\n{}",
            servers.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn plugin(name: &str) -> Arc<PluginId> {
    Arc::new(PluginId {
        name: name.into(),
        version: "0.1.0".into(),
        sha256: "5f06".into(),
    })
}

fn column(name: &str, value: Value) -> Column {
    Column {
        name: name.into(),
        value,
    }
}

fn upsert(id: i64, content_id: Option<&str>, event_type: &str) -> Record {
    let mut row = vec![column("id", Value::Int(id))];
    if let Some(content_id) = content_id {
        row.push(column("content_id", Value::Text(content_id.into())));
    }
    row.push(column("event_type", Value::Text(event_type.into())));
    row.push(column("engagement_seconds", Value::Float(45.0)));
    Record {
        kind: RecordKind::Upsert,
        table: "engagement_events".into(),
        event_key: id.to_string(),
        content_id: content_id.map(str::to_string),
        row,
        op: Op::Create,
        lsn: Some(1000 + id as u64),
        source_ts_ms: Some(1_795_672_191_121),
        content_missing: content_id.is_none(),
        decoder: plugin("debezium-decoder"),
        enricher: Some(plugin("engagement-enricher")),
        message_index: None,
    }
}

fn delete(id: i64, content_id: Option<&str>) -> Record {
    Record {
        kind: RecordKind::Delete,
        table: "engagement_events".into(),
        event_key: id.to_string(),
        content_id: content_id.map(str::to_string),
        row: vec![column("id", Value::Int(id))],
        op: Op::Delete,
        lsn: Some(5000 + id as u64),
        source_ts_ms: None,
        content_missing: false,
        decoder: plugin("debezium-decoder"),
        enricher: None,
        message_index: None,
    }
}

/// What the keys must hold after `records` were written in order: the last
/// upsert's JSON, or nothing after a delete.
fn expected(records: &[Record]) -> HashMap<String, Option<String>> {
    let mut state = HashMap::new();
    for record in records {
        let value = match record.kind {
            RecordKind::Upsert => Some(record.to_json()),
            RecordKind::Delete => None,
        };
        state.insert(key("eng:", record), value);
    }
    state
}

/// A throwaway CA: its PEM file `<name>-ca.pem`, and the issuer to sign with.
fn make_ca(servers: &Servers, name: &str) -> (PathBuf, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    let path = servers.path(&format!("{name}-ca.pem"));
    std::fs::write(&path, cert.pem()).expect("write CA");
    (path, Issuer::new(params, key))
}

/// A server certificate for 127.0.0.1 and localhost signed by `issuer`:
/// `server.pem` and `server.key`.
fn make_server_cert(servers: &Servers, issuer: &Issuer<'static, KeyPair>) -> (PathBuf, PathBuf) {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "redis test server");
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, issuer).expect("server certificate");
    let (cert_path, key_path) = (servers.path("server.pem"), servers.path("server.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

fn sink_config(url: String, ca_file: Option<&Path>) -> RedisSinkConfig {
    RedisSinkConfig {
        url,
        ca_file: ca_file.map(Path::to_path_buf),
        ttl: Duration::from_secs(600),
        ..RedisSinkConfig::default()
    }
}

/// Connecting must fail, quickly; returns the error's text.
async fn refused(config: RedisSinkConfig) -> (RedisSinkError, String) {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), RedisSink::connect(config))
        .await
        .expect("connecting hung");
    let err = match result {
        Ok(_) => panic!("connected although it must not"),
        Err(err) => err,
    };
    assert!(
        started.elapsed() < FAIL_FAST,
        "took {:?} to fail: {err}",
        started.elapsed()
    );
    let text = format!("{err}: {}", source_chain(&err));
    (err, text)
}

fn source_chain(err: &dyn std::error::Error) -> String {
    let mut text = String::new();
    let mut source = err.source();
    while let Some(err) = source {
        text += &format!("{err}; ");
        source = err.source();
    }
    text
}

/// A trusted CA with a server certificate it signed, and another CA.
struct TlsFiles {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    fn new(servers: &Servers) -> TlsFiles {
        let (ca, issuer) = make_ca(servers, "trusted");
        let (other_ca, _) = make_ca(servers, "other");
        let (cert, key) = make_server_cert(servers, &issuer);
        TlsFiles {
            ca,
            other_ca,
            cert,
            key,
        }
    }

    /// TLS settings of `redis-server`, with a password and no client certificates.
    fn server_args(&self) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "--tls-cert-file".into(),
            path(&self.cert),
            "--tls-key-file".into(),
            path(&self.key),
            "--tls-ca-cert-file".into(),
            path(&self.ca),
            "--tls-auth-clients".into(),
            "no".into(),
            "--requirepass".into(),
            PASSWORD.into(),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_password_and_private_ca() {
    let mut servers = Servers::new();
    let tls = TlsFiles::new(&servers);
    let (ca, other_ca) = (tls.ca.clone(), tls.other_ca.clone());
    let port = free_port(false);
    let mut args = vec![
        "--port".to_string(),
        "0".into(),
        "--tls-port".into(),
        port.to_string(),
    ];
    args.extend(tls.server_args());
    servers.start("tls", &args);
    wait_listening(&servers, port);
    let url = |password: &str| format!("rediss://:{password}@127.0.0.1:{port}/0");

    let sink = RedisSink::connect(sink_config(url(PASSWORD), Some(&ca)))
        .await
        .unwrap_or_else(|err| panic!("{err}: {}\n{}", source_chain(&err), servers.logs()));
    assert!(!sink.is_cluster());
    let mut batch: Vec<Record> = (0..40)
        .map(|id| upsert(id, Some(&format!("content-{}", id % 9)), "play"))
        .collect();
    batch.push(upsert(3, Some("content-3"), "finish")); // an update: last wins
    batch.push(delete(5, Some("content-5"))); // written, then deleted
    batch.push(delete(999, Some("content-0"))); // never existed
    batch.push(upsert(40, None, "play")); // content unknown: `{}`
    sink.write(&batch).await.expect("write over TLS");

    // Read back over TLS with the same CA, independently of the sink.
    install_crypto_provider();
    let client = redis::Client::build_with_tls(
        url(PASSWORD).as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&ca).expect("CA")),
        },
    )
    .expect("client");
    let mut conn = client.get_connection().expect("read-back connection");
    let expected = expected(&batch);
    assert_eq!(expected.len(), 42);
    for (key, value) in &expected {
        let stored: Option<String> = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
        assert_eq!(&stored, value, "{key}");
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut conn).unwrap();
        match value {
            Some(_) => assert!((1..=600).contains(&ttl), "{key}: TTL {ttl}"),
            None => assert_eq!(ttl, -2, "{key} must not exist"),
        }
    }
    assert!(
        expected["eng:{content-3}:3"]
            .as_deref()
            .unwrap()
            .contains("finish")
    );
    assert!(expected.contains_key("eng:{}:40"));
    let keys: usize = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(keys, 40, "40 live events");
    drop(sink);

    // A wrong password: refused at once, and said so.
    let (err, text) = refused(sink_config(url("wrong"), Some(&ca))).await;
    assert!(matches!(err, RedisSinkError::Connect { .. }), "{text}");
    assert!(
        text.contains("WRONGPASS") || text.to_lowercase().contains("password"),
        "{text}"
    );
    assert!(!text.contains("wrong@"), "password shown: {text}");

    // A server certificate from a CA not trusted: the public roots (no CA
    // file), or another private CA.
    for ca_file in [None, Some(other_ca.as_path())] {
        let (err, text) = refused(sink_config(url(PASSWORD), ca_file)).await;
        assert!(matches!(err, RedisSinkError::Connect { .. }), "{text}");
        assert!(text.to_lowercase().contains("certificate"), "{text}");
        assert!(!text.contains(PASSWORD), "password shown: {text}");
    }

    // A CA file that is not there, or a CA file for a plain URL.
    let (err, text) = refused(sink_config(url(PASSWORD), Some(&servers.path("nope.pem")))).await;
    assert!(matches!(err, RedisSinkError::CaFile { .. }), "{text}");
    let plain = format!("redis://:{PASSWORD}@127.0.0.1:{port}/0");
    let (err, text) = refused(sink_config(plain, Some(&ca))).await;
    assert!(matches!(err, RedisSinkError::CaWithoutTls { .. }), "{text}");
    assert!(!text.contains(PASSWORD), "password shown: {text}");
}

/// A running 3-master cluster; with `tls`, TLS-only (`--tls-cluster`) with
/// a password.
struct Cluster {
    ports: Vec<u16>,
    /// The CA file, TLS only.
    ca: Option<PathBuf>,
}

impl Cluster {
    fn start(servers: &mut Servers, tls: Option<&TlsFiles>) -> Cluster {
        let mut ports = Vec::new();
        while ports.len() < 3 {
            let port = free_port(true);
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        for (i, port) in ports.iter().enumerate() {
            let mut args: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ]
            .map(String::from)
            .to_vec();
            match tls {
                None => args.extend(["--port".into(), port.to_string()]),
                Some(tls) => {
                    args.extend([
                        "--port".into(),
                        "0".into(),
                        "--tls-port".into(),
                        port.to_string(),
                    ]);
                    args.extend(
                        ["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from),
                    );
                    args.extend(tls.server_args());
                    args.extend(["--masterauth".into(), PASSWORD.into()]);
                }
            }
            servers.start(&format!("node{i}"), &args);
        }
        for port in &ports {
            wait_listening(servers, *port);
        }
        let mut create = Command::new("redis-cli");
        if let Some(tls) = tls {
            create.arg("--tls").arg("--cacert").arg(&tls.ca).args([
                "--no-auth-warning",
                "-a",
                PASSWORD,
            ]);
        }
        let create = create
            .args(["--cluster", "create"])
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed");
        assert!(
            create.status.success(),
            "redis-cli --cluster create: {}{}\n{}",
            String::from_utf8_lossy(&create.stdout),
            String::from_utf8_lossy(&create.stderr),
            servers.logs()
        );
        let cluster = Cluster {
            ports,
            ca: tls.map(|tls| tls.ca.clone()),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in &cluster.ports {
            let mut conn = cluster.node(*port);
            loop {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster not ok on {port}: {info}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        cluster
    }

    /// A node's URL: `rediss://` with the password for a TLS cluster.
    fn url(&self, port: u16) -> String {
        match self.ca {
            Some(_) => format!("rediss://:{PASSWORD}@127.0.0.1:{port}/0"),
            None => format!("redis://127.0.0.1:{port}/0"),
        }
    }

    /// A plain connection to one node (not a cluster client).
    fn node(&self, port: u16) -> redis::Connection {
        install_crypto_provider();
        let url = self.url(port);
        match &self.ca {
            Some(ca) => redis::Client::build_with_tls(
                url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(ca).expect("CA")),
                },
            ),
            None => redis::Client::open(url),
        }
        .and_then(|c| c.get_connection())
        .expect("node connection")
    }

    /// `CLUSTER SLOTS`: (first slot, last slot, master port).
    fn slot_owners(&self) -> Vec<(u16, u16, u16)> {
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.node(self.ports[0]))
            .unwrap();
        ranges
            .into_iter()
            .map(|range| {
                let redis::Value::Array(items) = range else {
                    panic!("CLUSTER SLOTS entry: {range:?}");
                };
                let first: u16 = redis::from_redis_value_ref(&items[0]).unwrap();
                let last: u16 = redis::from_redis_value_ref(&items[1]).unwrap();
                let redis::Value::Array(master) = &items[2] else {
                    panic!("CLUSTER SLOTS master: {:?}", items[2]);
                };
                let port: u16 = redis::from_redis_value_ref(&master[1]).unwrap();
                (first, last, port)
            })
            .collect()
    }

    /// Writes batches over many slots through two sinks (two seed nodes in
    /// the URL, the second bare; then one seed node with `cluster` set),
    /// then checks every key on the node that owns its slot.
    async fn write_and_check(&self, servers: &Servers) {
        let ports = &self.ports;
        let seeds = format!("{},127.0.0.1:{}", self.url(ports[0]), ports[1]);
        // Small pipelines, so a slot's commands span several, in order.
        let config = RedisSinkConfig {
            max_pipeline: 3,
            ..sink_config(seeds, self.ca.as_deref())
        };
        let sink = RedisSink::connect(config)
            .await
            .unwrap_or_else(|err| panic!("{err}: {}\n{}", source_chain(&err), servers.logs()));
        assert!(sink.is_cluster());
        let content = |id: i64| format!("content-{}", id % 50);
        let mut batch: Vec<Record> = (0..300)
            .map(|id| upsert(id, Some(&content(id)), "play"))
            .collect();
        for id in (0..300).step_by(7) {
            batch.push(delete(id, Some(&content(id))));
        }
        for id in (0..300).step_by(11) {
            batch.push(upsert(id, Some(&content(id)), "finish"));
        }
        for id in 300..310 {
            batch.push(upsert(id, None, "play"));
        }
        batch.push(delete(301, None));
        sink.write(&batch).await.expect("write to the cluster");

        let second = RedisSink::connect(RedisSinkConfig {
            cluster: true,
            ..sink_config(self.url(ports[2]), self.ca.as_deref())
        })
        .await
        .expect("connect with one seed node");
        assert!(second.is_cluster());
        let later: Vec<Record> = (0..300)
            .step_by(13)
            .map(|id| delete(id, Some(&content(id))))
            .chain([upsert(1000, Some("content-1000"), "pause")])
            .collect();
        second.write(&later).await.expect("second write");
        batch.extend(later);

        // Every key on the node that owns its slot, read there directly.
        let owners = self.slot_owners();
        let covered: usize = owners.iter().map(|(a, b, _)| (b - a) as usize + 1).sum();
        assert_eq!(covered, 16384);
        let mut conns: HashMap<u16, redis::Connection> =
            ports.iter().map(|p| (*p, self.node(*p))).collect();
        let expected = expected(&batch);
        let mut used_nodes = HashSet::new();
        let mut slots = HashSet::new();
        let mut live_per_node: HashMap<u16, usize> = HashMap::new();
        for (key, value) in &expected {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query(conns.get_mut(&ports[0]).unwrap())
                .unwrap();
            let owner = owners
                .iter()
                .find(|(first, last, _)| (*first..=*last).contains(&slot))
                .map(|(_, _, port)| *port)
                .unwrap_or_else(|| panic!("no owner of slot {slot}"));
            let conn = conns.get_mut(&owner).unwrap();
            let stored: Option<String> = redis::cmd("GET").arg(key).query(conn).unwrap();
            assert_eq!(&stored, value, "{key} on :{owner} (slot {slot})");
            if value.is_some() {
                let ttl: i64 = redis::cmd("TTL").arg(key).query(conn).unwrap();
                assert!((1..=600).contains(&ttl), "{key}: TTL {ttl}");
                *live_per_node.entry(owner).or_default() += 1;
            }
            used_nodes.insert(owner);
            slots.insert(slot);
        }
        assert_eq!(used_nodes.len(), 3, "keys on every master");
        assert!(slots.len() > 50, "{} slots", slots.len());
        // Nothing else anywhere: no key was written to a node not owning it.
        for port in ports {
            let size: usize = redis::cmd("DBSIZE")
                .query(conns.get_mut(port).unwrap())
                .unwrap();
            let live = live_per_node.get(port).copied().unwrap_or(0);
            assert_eq!(size, live, ":{port}");
        }
        let live = expected.values().filter(|v| v.is_some()).count();
        let deleted = expected.len() - live;
        assert!(live > 200 && deleted > 40, "{live} live, {deleted} deleted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_three_masters() {
    let mut servers = Servers::new();
    let cluster = Cluster::start(&mut servers, None);
    cluster.write_and_check(&servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cluster_with_password() {
    let mut servers = Servers::new();
    let tls = TlsFiles::new(&servers);
    let cluster = Cluster::start(&mut servers, Some(&tls));
    cluster.write_and_check(&servers).await;

    // A wrong password or an untrusted CA: refused, quickly.
    let seed = format!("rediss://:wrong@127.0.0.1:{}/0", cluster.ports[0]);
    let wrong = RedisSinkConfig {
        cluster: true,
        ..sink_config(seed, Some(&tls.ca))
    };
    let (err, text) = refused(wrong).await;
    assert!(matches!(err, RedisSinkError::Connect { .. }), "{text}");
    let untrusted = RedisSinkConfig {
        cluster: true,
        ..sink_config(cluster.url(cluster.ports[0]), Some(&tls.other_ca))
    };
    let (err, text) = refused(untrusted).await;
    assert!(matches!(err, RedisSinkError::Connect { .. }), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(!text.contains(PASSWORD), "password shown: {text}");
}
