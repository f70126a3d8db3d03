#!/usr/bin/env python3
"""BigQuery emulator: bqemulator 1.4.0 (REST + Storage gRPC, DuckDB), offline, on 127.0.0.1.

Run with the emulators venv (scripts/emulators/setup.sh):

    .venv/emulators/bin/python scripts/emulators/bigquery.py \
        [--port 9050] [--grpc-port 9060] [--project streaming-project]

REST base URL: http://127.0.0.1:9050/bigquery/v2 (no auth; any bearer token
is accepted). Storage Read/Write API (gRPC, plaintext): 127.0.0.1:9060.
Both ports are bound to 127.0.0.1 only. Data lives in memory (DuckDB
``:memory:``) and is gone when the process stops.

What this launcher changes, without touching site-packages:

* DuckDB's ``spatial`` extension (GEOGRAPHY) is loaded from the PyPI package
  ``duckdb-extension-spatial`` pinned next to DuckDB, never downloaded; if it
  cannot be loaded the emulator starts anyway, without GEOGRAPHY.
  ``autoinstall_known_extensions`` is off and the ``avro`` extension (Avro
  load/extract jobs) is not installed, so nothing reaches for the network.
* Time-travel snapshots are off by default: the stock server copies the
  whole table into a new snapshot table after every write (insertAll, DML,
  load, Storage Write commit), so writes get slower as a table grows.
  ``--time-travel`` turns them back on. User snapshots
  (``CREATE SNAPSHOT TABLE``) are not affected.
* Every gRPC server is created with ``grpc.so_reuseport=0``, so a port that
  is already taken fails the bind instead of being shared silently.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import socket
import sys

HOST = "127.0.0.1"


def _spatial_extension_path(con) -> pathlib.Path | None:
    try:
        import duckdb_extension_spatial
    except ImportError:
        return None
    version = con.execute("PRAGMA version").fetchone()[0]  # e.g. 'v1.5.5'
    path = (
        pathlib.Path(duckdb_extension_spatial.__file__).parent
        / "extensions"
        / version
        / "spatial.duckdb_extension"
    )
    return path if path.is_file() else None


def _load_spatial_offline(con) -> bool:
    """LOAD spatial from the local package into ``con``; never INSTALL from the network."""
    con.execute("SET autoinstall_known_extensions = false")
    path = _spatial_extension_path(con)
    if path is None:
        return False
    escaped = str(path).replace("'", "''")
    con.execute(f"LOAD '{escaped}'")
    return True


def _patch_bqemulator(time_travel: bool) -> None:
    from bqemulator.observability.logging_ import get_logger
    from bqemulator.storage import engine as engine_mod
    from bqemulator.types import geography
    from bqemulator.versioning import snapshots

    log = get_logger("bqemulator.launcher")

    def _load_spatial(self) -> None:
        con = self.connection
        try:
            loaded = _load_spatial_offline(con)
        except Exception as exc:  # noqa: BLE001
            log.warning("duckdb.spatial_unavailable", error=str(exc), geography="disabled")
            return
        if loaded:
            log.info("duckdb.spatial_loaded", source="duckdb-extension-spatial (local)")
        else:
            log.warning(
                "duckdb.spatial_unavailable",
                error="duckdb-extension-spatial for this DuckDB version is not installed",
                geography="disabled",
            )

    engine_mod.DuckDBEngine._load_spatial = _load_spatial

    # GEOGRAPHY value conversion opens its own connection with INSTALL spatial.
    def _ensure_conv_conn():
        with geography._CONV_LOCK:
            if geography._CONV_CONN is not None:
                return geography._CONV_CONN
            import duckdb

            con = duckdb.connect(":memory:")
            if not _load_spatial_offline(con):
                raise RuntimeError("DuckDB spatial extension is not available offline")
            geography._CONV_CONN = con
            return con

    geography._ensure_conv_conn = _ensure_conv_conn

    if not time_travel:
        original_capture = snapshots.SnapshotManager.capture

        def capture(self, project_id, dataset_id, table_id, *, kind="AUTO"):
            if kind == "AUTO":
                return None  # no per-write copy of the table
            return original_capture(self, project_id, dataset_id, table_id, kind=kind)

        snapshots.SnapshotManager.capture = capture


def _no_reuseport_for_grpc_servers() -> None:
    import grpc.aio

    original = grpc.aio.server

    def server(*args, options=None, **kwargs):
        opts = [o for o in (options or ()) if o[0] != "grpc.so_reuseport"]
        opts.append(("grpc.so_reuseport", 0))
        return original(*args, options=opts, **kwargs)

    grpc.aio.server = server


def _check_port_free(port: int, what: str) -> None:
    if port == 0:
        return
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As the servers themselves do: a TIME_WAIT left by the previous run is
    # no conflict, a listening socket is.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((HOST, port))
    except OSError as e:
        raise SystemExit(f"bigquery emulator: cannot bind {what} {HOST}:{port}: {e.strerror} (port taken?)")
    finally:
        s.close()


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in 0-65535")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=_port, default=9050, help="REST port on 127.0.0.1 (default 9050)")
    ap.add_argument(
        "--grpc-port",
        type=_port,
        default=9060,
        help="Storage Read/Write gRPC port on 127.0.0.1 (default 9060; 0 = any free port)",
    )
    ap.add_argument(
        "--project",
        default="streaming-project",
        help="default project id for requests that omit it (default streaming-project)",
    )
    ap.add_argument(
        "--time-travel",
        action="store_true",
        help="keep the stock per-write table snapshots (FOR SYSTEM_TIME AS OF); slow on big tables",
    )
    ap.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="bqemulator logging (default warning)",
    )
    ap.add_argument("--log-format", default="console", choices=["console", "json"])
    args = ap.parse_args()

    # Only our flags configure it: ignore BQEMU_* from the caller's env.
    for key in [k for k in os.environ if k.upper().startswith("BQEMU_")]:
        del os.environ[key]

    _check_port_free(args.port, "REST")
    _check_port_free(args.grpc_port, "gRPC")

    from bqemulator.config import LogFormat, LogLevel, PersistenceMode, Settings
    from bqemulator.observability.logging_ import configure_logging

    # Before the patches import the rest of bqemulator (its import-time debug
    # lines would otherwise go out unfiltered).
    configure_logging(level=LogLevel(args.log_level), fmt=LogFormat(args.log_format))

    settings = Settings(
        rest_host=HOST,
        rest_port=args.port,
        grpc_host=HOST,
        grpc_port=args.grpc_port,
        persistence_mode=PersistenceMode.EPHEMERAL,
        default_project_id=args.project,
        enable_format_extensions=False,
        log_level=LogLevel(args.log_level),
        log_format=LogFormat(args.log_format),
        admin_enabled=False,
        tracing_enabled=False,
    )
    _patch_bqemulator(time_travel=args.time_travel)
    _no_reuseport_for_grpc_servers()

    from bqemulator.server import EmulatorServer

    server = EmulatorServer(settings)
    original_start = server.start

    async def start_and_announce() -> None:
        await original_start()
        print(
            f"bigquery emulator (bqemulator) listening: REST http://{HOST}:{server.rest_port}"
            f"/bigquery/v2 gRPC {HOST}:{server.grpc_port} project {args.project}"
            f" time-travel {'on' if args.time_travel else 'off'}",
            flush=True,
        )

    server.start = start_and_announce  # type: ignore[method-assign]
    try:
        server.run_forever()
    except (OSError, RuntimeError) as e:
        raise SystemExit(f"bigquery emulator: {e}")
    print("bigquery emulator: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
