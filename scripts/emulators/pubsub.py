#!/usr/bin/env python3
"""Pub/Sub emulator: only cloudbox 0.2.3's gRPC Pub/Sub server, on 127.0.0.1.

Run with the emulators venv (scripts/emulators/setup.sh):

    .venv/emulators/bin/python scripts/emulators/pubsub.py [--port 8085]

Clients: PUBSUB_EMULATOR_HOST=127.0.0.1:8085 (plaintext gRPC, no auth).

What this launcher changes, without touching site-packages:

* cloudbox declares Python >= 3.14 and, on 3.11-3.13, crashes importing
  ``cloudbox/core/store.py`` (``def keys(...) -> list[str]`` inside a class
  that defines a method named ``list``). The module is compiled here from its
  installed source with ``from __future__ import annotations`` in force
  (lazy annotations, the 3.14 behaviour) and registered before anything
  imports it.
* Only the Pub/Sub gRPC server runs: none of cloudbox's other services
  (GCS, Firestore, ...), nor its REST front end.
* The gRPC server is created with ``grpc.so_reuseport=0``, so a port that
  is already taken fails the bind (gRPC's Linux default, SO_REUSEPORT, would
  let two emulators share a port silently), and accepts requests of up to
  11 MiB (Pub/Sub's 10 MB publish limit; gRPC's default is 4 MiB).
* A topic's retained message log (kept for Seek) is pruned from its head
  instead of being rebuilt on every publish, which made publishing O(n) in
  the number of messages a topic had seen. Retention stays 7 days, in memory.
"""
from __future__ import annotations

import __future__ as _future
import argparse
import asyncio
import importlib.util
import logging
import os
import signal
import socket
import sys
import time


def _load_core_store_lazily_annotated() -> None:
    name = "cloudbox.core.store"
    if name in sys.modules:
        return
    import cloudbox.core  # the package only; its __init__ is empty

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise SystemExit(f"cannot find {name}: is cloudbox installed in this venv?")
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    code = compile(
        source,
        spec.origin,
        "exec",
        flags=_future.annotations.compiler_flag,
        dont_inherit=True,
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    cloudbox.core.store = module  # type: ignore[attr-defined]


# Pub/Sub accepts publish requests of up to 10 MB; gRPC's default receive
# limit is 4 MiB. 1 MiB of headroom for the request's framing.
_MAX_REQUEST_BYTES = 11 * 1024 * 1024


def _grpc_server_options() -> None:
    import grpc.aio

    original = grpc.aio.server

    def server(*args, options=None, **kwargs):
        opts = dict(options or ())
        opts["grpc.so_reuseport"] = 0
        opts.setdefault("grpc.max_receive_message_length", _MAX_REQUEST_BYTES)
        return original(*args, options=list(opts.items()), **kwargs)

    grpc.aio.server = server


def _prune_topic_log_from_head() -> None:
    from cloudbox.services.pubsub import store as ps

    def log_to_topic(topic: str, message: dict) -> None:
        topic_data = ps._store.get("topics", topic) or {}
        try:
            retention = ps._parse_duration(topic_data.get("messageRetentionDuration", "604800s"))
        except (ValueError, AttributeError):
            retention = ps._DEFAULT_RETENTION_SECS
        with ps._lock:
            log = ps._topic_log.setdefault(topic, [])
            now = time.time()
            log.append({**message, "_expires_at": now + retention})
            expired = 0
            while expired < len(log) and log[expired].get("_expires_at", 0) <= now:
                expired += 1
            if expired:
                del log[:expired]

    ps.log_to_topic = log_to_topic


def _check_port_free(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As the servers themselves do: a TIME_WAIT left by the previous run is
    # no conflict, a listening socket is.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        raise SystemExit(f"pubsub emulator: cannot bind {host}:{port}: {e.strerror} (port taken?)")
    finally:
        s.close()


async def _serve(host: str, port: int) -> None:
    from cloudbox.services.pubsub.grpc_server import create_server

    server = await create_server(host, port)
    await server.start()
    print(
        f"pubsub emulator (cloudbox gRPC) listening on {host}:{port}; "
        f"PUBSUB_EMULATOR_HOST={host}:{port}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("pubsub emulator: stopping", flush=True)
    await server.stop(grace=1.0)


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in 1-65535")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=_port, default=8085, help="gRPC port on 127.0.0.1 (default 8085)")
    ap.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="cloudbox logging (info logs every publish; default warning)",
    )
    args = ap.parse_args()
    host = "127.0.0.1"

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # cloudbox would persist topics/subscriptions as JSON there; keep the
    # emulator in memory so every start is a clean slate.
    os.environ.pop("CLOUDBOX_DATA_DIR", None)
    _check_port_free(host, args.port)
    _load_core_store_lazily_annotated()
    _grpc_server_options()
    _prune_topic_log_from_head()
    try:
        asyncio.run(_serve(host, args.port))
    except RuntimeError as e:  # grpc: "Failed to bind to address ..."
        raise SystemExit(f"pubsub emulator: {e}")


if __name__ == "__main__":
    main()
