#!/usr/bin/env python3
# The checks behind scripts/check-compose.sh (run it, not this: it installs
# the validator into its venv and passes the environment this reads).
"""The checks; see the header of scripts/check-compose.sh."""
import difflib
import fnmatch
import ipaddress
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

ROOT = Path(os.environ["CHECK_ROOT"])
STATE = Path(os.environ["CHECK_STATE"])
CHECK_JSONSCHEMA = os.environ["CHECK_JSONSCHEMA"]
SCHEMA_LABEL = os.environ["CHECK_SCHEMA_LABEL"]
CONFIG_RS = ROOT / "host/src/config.rs"


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"[{where}] {message}")

    def __bool__(self):
        return bool(self.items)


# ---------------------------------------------------------------------------
# host/src/config.rs: the keys, their Rust types and defaults


class HostConfig:
    """`struct Config` fields and `impl Default for Config` values."""

    UNKNOWN = object()

    def __init__(self, problems):
        self.fields = {}  # key -> Rust type
        self.defaults = {}  # key -> Python value or UNKNOWN
        where = "host/src/config.rs"
        try:
            text = CONFIG_RS.read_text()
        except OSError as e:
            problems.add(where, f"cannot read it: {e}")
            return
        m = re.search(r"^pub struct Config\s*\{", text, re.M)
        if not m:
            problems.add(where, "no `pub struct Config {` found: update scripts/check-compose.sh")
            return
        attrs = text[: m.start()].rstrip().splitlines()[-3:]
        if any("rename_all" in a for a in attrs):
            problems.add(where, "`struct Config` has serde(rename_all): key names are no longer the field names; update scripts/check-compose.sh")
        body = text[m.end(): _closing_brace(text, m.end() - 1)]
        for line in body.splitlines():
            s = line.strip()
            if s.startswith("#[") and "serde" in s:
                problems.add(where, f"field attribute `{s}` changes how a key is read from the environment; update scripts/check-compose.sh")
            fm = re.fullmatch(r"pub(?:\([^)]*\))?\s+(\w+)\s*:\s*(.+?),?", s)
            if fm:
                self.fields[fm.group(1)] = re.sub(r"\s+", "", fm.group(2))
        if not self.fields:
            problems.add(where, "no fields found in `struct Config`: update scripts/check-compose.sh")
        # How the environment is read: Env::raw(), filtered to the keys.
        if "Env::raw()" not in text or "Env::prefixed(" in text:
            problems.add(where, "Config::load no longer reads plain upper-case key names from the environment (Env::raw()); environment.env and this check must follow")
        d = re.search(r"impl Default for Config\s*\{.*?Self\s*\{", text, re.S)
        if d:
            block = text[d.end(): _closing_brace(text, d.end() - 1)]
            for line in block.splitlines():
                fm = re.fullmatch(r"\s*(\w+)\s*:\s*(.+?),\s*", line)
                if fm:
                    self.defaults[fm.group(1)] = _rust_literal(fm.group(2))

    def default(self, key):
        return self.defaults.get(key, self.UNKNOWN)


def _closing_brace(text, open_at):
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def _rust_literal(expr):
    e = expr.strip()
    if e == "None":
        return None
    if e in ("true", "false"):
        return e == "true"
    m = re.fullmatch(r"Some\(SocketAddr::from\(\(\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\],\s*(\d+)\)\)\)", e)
    if m:
        return "{}.{}.{}.{}:{}".format(*m.groups())
    m = re.search(r'"((?:[^"\\]|\\.)*)"', e)
    if m:
        return m.group(1)
    m = re.fullmatch(r"([\d_]+)\s*<<\s*(\d+)", e)
    if m:
        return int(m.group(1).replace("_", "")) << int(m.group(2))
    if re.fullmatch(r"-?[\d_]+", e):
        return int(e.replace("_", ""))
    if re.fullmatch(r"-?[\d_]+\.[\d_]*", e):
        return float(e.replace("_", ""))
    if e in ("Vec::new()", "vec![]"):
        return []
    return HostConfig.UNKNOWN


# How figment's Env provider reads a value (figment 0.10 value/parse.rs):
# true/false, a number (a float only with a '.'), [..] / {..}, "quoted";
# anything else, or anything that does not parse whole, is a string. The
# extraction is strict (no "8080" for a String field, no "yes" for a bool).
INT_RANGES = {
    "u8": (0, 2**8 - 1), "u16": (0, 2**16 - 1), "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1), "usize": (0, 2**64 - 1),
    "i8": (-(2**7), 2**7 - 1), "i16": (-(2**15), 2**15 - 1), "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1), "isize": (-(2**63), 2**63 - 1),
}


def figment_value(raw):
    s = raw.strip()
    if s in ("true", "false"):
        return "bool", s == "true"
    if s.startswith("[") and s.endswith("]"):
        return "array", s
    if s.startswith("{") and s.endswith("}"):
        return "dict", s
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return "string", s[1:-1]
    if any(c in s for c in ",{}[]"):
        return "string", raw
    if "." in s and re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?", s):
        return "float", float(s)
    if re.fullmatch(r"[+-]?\d+", s) and -(2**63) <= int(s) < 2**64:
        return "int", int(s)
    return "string", raw


def socket_addr(value):
    """(ip, port) if Rust's SocketAddr parses `value` (an IP literal, never a name)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([0-9.]+):(\d+)", value)
    if not m:
        return None
    ip, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return None
    return (ip, int(port)) if int(port) <= 65535 else None


def typed_value(rust_type, raw):
    """(python value, None) or (None, why the host would refuse it)."""
    inner = re.fullmatch(r"Option<(.+)>", rust_type)
    inner = inner.group(1) if inner else rust_type
    kind, value = figment_value(raw)
    if inner == "bool":
        ok = kind == "bool"
        want = "true or false"
    elif inner in INT_RANGES:
        lo, hi = INT_RANGES[inner]
        ok = kind == "int" and lo <= value <= hi
        want = f"an integer in {lo}..={hi}"
    elif inner in ("f32", "f64"):
        ok = kind in ("int", "float")
        value = float(value) if ok else value
        want = "a number"
    elif inner in ("String", "PathBuf"):
        ok = kind == "string"
        want = "text (it reads as a number, true/false or a [list])"
    elif inner == "SocketAddr":
        ok = kind == "string" and socket_addr(value) is not None
        want = "an IP address and port, e.g. 0.0.0.0:9100 (a host name does not parse)"
    elif inner.startswith("Vec<"):
        ok = kind == "array"
        want = "a list, e.g. [a, b]"
    else:
        return None, f"type {rust_type} is unknown to scripts/check-compose.sh"
    if ok:
        return value, None
    return None, f"{raw!r} is not {want} (field type {rust_type}; the host would fail to start)"


# ---------------------------------------------------------------------------
# Compose: loading, interpolation, small parsers


def load_yaml(path, problems, where):
    try:
        with open(path) as f:
            return YAML(typ="safe", pure=True).load(f)
    except YAMLError as e:
        problems.add(where, f"not valid YAML: {e}")
    except OSError as e:
        problems.add(where, f"cannot read it: {e}")
    return None


def read_dotenv(path):
    values = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            m = re.fullmatch(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*", line)
            if m and not line.lstrip().startswith("#"):
                values[m.group(1)] = m.group(2).strip("'\"")
    return values


class Interpolator:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err},
    ${VAR?err}, ${VAR:+alt}, ${VAR+alt}, $VAR and $$, from the environment
    and the project's .env (the environment wins), as `docker compose` does."""

    def __init__(self, env, problems, where):
        self.env, self.problems, self.where = env, problems, where
        self.used = {}

    def string(self, s, path):
        out, i = [], 0
        while i < len(s):
            if s[i] != "$":
                out.append(s[i])
                i += 1
            elif s.startswith("$$", i):
                out.append("$")
                i += 2
            elif s.startswith("${", i):
                j, depth = i, 0
                while j < len(s):
                    if s.startswith("${", j):
                        depth += 1
                        j += 2
                        continue
                    if s[j] == "}":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                if j >= len(s):
                    self.problems.add(self.where, f"{path}: unterminated '${{' in {s!r}")
                    return s
                out.append(self.expression(s[i + 2: j], path))
                i = j + 1
            else:
                m = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)", s[i:])
                if not m:
                    self.problems.add(self.where, f"{path}: a lone '$' in {s!r} (write $$ for a literal $)")
                    return s
                out.append(self.expression(m.group(1), path))
                i += len(m.group(0))
        return "".join(out)

    def expression(self, expr, path):
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", expr, re.S)
        if not m:
            self.problems.add(self.where, f"{path}: invalid interpolation '${{{expr}}}'")
            return ""
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        value = self.env.get(name)
        is_set, non_empty = value is not None, bool(value)
        self.used[name] = value
        if op is None:
            if not is_set:
                self.problems.add(self.where, f"{path}: variable {name} is not set and has no default (compose would use an empty string); write ${{{name}:-default}}")
                return ""
            return value
        if op == ":-":
            return value if non_empty else self.string(arg, path)
        if op == "-":
            return value if is_set else self.string(arg, path)
        if op in (":?", "?"):
            if (non_empty if op == ":?" else is_set):
                return value
            self.problems.add(self.where, f"{path}: required variable {name} is not set: {arg}")
            return ""
        if op == ":+":
            return self.string(arg, path) if non_empty else ""
        return self.string(arg, path) if is_set else ""

    def walk(self, node, path="$"):
        if isinstance(node, dict):
            return {k: self.walk(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str):
            return self.string(node, path)
        return node


def as_list(value):
    """`value` if it is a list, else [] (the schema reports the wrong type)."""
    return value if isinstance(value, list) else []


def command_of(svc):
    cmd = svc.get("command")
    if isinstance(cmd, str):
        return shlex.split(cmd)
    if isinstance(cmd, list):
        return [str(c) for c in cmd]
    return []


def environment_of(svc):
    env = svc.get("environment") or {}
    if not isinstance(env, (list, dict)):
        return {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return {str(k): ("" if v is None else str(v)) for k, v in env.items()}


def env_files_of(svc):
    files = svc.get("env_file")
    if files is None:
        return []
    if not isinstance(files, list):
        files = [files]
    out = []
    for f in files:
        if isinstance(f, dict):
            out.append((str(f.get("path")), f.get("required", True)))
        else:
            out.append((str(f), True))
    return out


def mounts_of(svc):
    """[(kind, source, target)], kind 'bind', 'volume' or 'anonymous'."""
    out = []
    for v in as_list(svc.get("volumes")):
        if isinstance(v, dict):
            kind = v.get("type", "volume")
            source, target = v.get("source"), v.get("target")
            if kind == "volume" and not source:
                kind = "anonymous"
            out.append((kind, source, target))
            continue
        parts = str(v).split(":")
        if len(parts) == 1:
            out.append(("anonymous", None, parts[0]))
            continue
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        out.append((kind, source, target))
    return out


def published_ports(svc):
    """[(host_ip, published, target)] for the simple forms."""
    out = []
    for p in as_list(svc.get("ports")):
        if isinstance(p, dict):
            out.append((p.get("host_ip", ""), str(p.get("published", "")), str(p.get("target", ""))))
            continue
        spec = str(p).split("/")[0]
        if spec.startswith("["):
            ip, _, rest = spec[1:].partition("]:")
            parts = [ip] + rest.split(":")
        else:
            parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            out.append((parts[0].strip("[]"), parts[1], parts[2]))
        elif len(parts) == 2:
            out.append(("", parts[0], parts[1]))
        else:
            out.append(("", "", parts[0]))
    return out


def healthcheck_enabled(svc):
    hc = svc.get("healthcheck")
    if not isinstance(hc, dict) or hc.get("disable"):
        return False
    test = hc.get("test")
    return bool(test) and test not in (["NONE"], "NONE")


def healthcheck_text(svc):
    hc = svc.get("healthcheck") or {}
    test = hc.get("test") if isinstance(hc, dict) else None
    return " ".join(test) if isinstance(test, list) else str(test or "")


WELL_KNOWN_PORTS = {"redis": 6379, "postgres": 5432}


def listening_ports(svc):
    """Ports the service's container is known to listen on (may be empty)."""
    ports = set()
    cmd = command_of(svc)
    for i, tok in enumerate(cmd):
        value = None
        m = re.fullmatch(r"--(?:listen|host-port|port|bind)(?:=(.*))?", tok)
        if m:
            value = m.group(1) if m.group(1) is not None else (cmd[i + 1] if i + 1 < len(cmd) else "")
        if value:
            pm = re.search(r"(\d+)$", value)
            if pm:
                ports.add(int(pm.group(1)))
    for _, _, target in published_ports(svc):
        if target.isdigit():
            ports.add(int(target))
    for e in as_list(svc.get("expose")):
        if str(e).split("/")[0].isdigit():
            ports.add(int(str(e).split("/")[0]))
    for m in re.finditer(r"(?:127\.0\.0\.1|localhost):(\d+)", healthcheck_text(svc)):
        ports.add(int(m.group(1)))
    image = str(svc.get("image", ""))
    base = image.rsplit("/", 1)[-1].split(":")[0]
    if base in WELL_KNOWN_PORTS and not any(t in ("--port", "port") for t in cmd):
        ports.add(WELL_KNOWN_PORTS[base])
    return ports


def depends_on(svc):
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: {"condition": "service_started"} for d in deps}
    if not isinstance(deps, dict):
        return {}
    return {k: (v if isinstance(v, dict) else {}) for k, v in deps.items()}


def dependency_closure(services, name):
    seen, todo = set(), [name]
    while todo:
        for dep in depends_on(services.get(todo.pop(), {})):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def under(path, roots):
    """Is container path `path` equal to or below one of `roots`?"""
    p = posixpath.normpath(path)
    return any(r and (p == posixpath.normpath(r) or p.startswith(posixpath.normpath(r).rstrip("/") + "/")) for r in roots)


def host_of(value):
    """(host, port or None) if `value` is a URL or host:port, else None."""
    m = re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^/@]*@)?(\[[^\]]+\]|[^/:?#]+)(?::(\d+))?(?:[/?#].*)?", value)
    if m:
        return m.group(1).strip("[]"), int(m.group(2)) if m.group(2) else None
    m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9.-]*):(\d+)", value)
    if m:
        return m.group(1), int(m.group(2))
    return None


def is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------------------
# Dockerfile and .dockerignore


def parse_dockerfile(text):
    """[(line, INSTRUCTION, args)] with continuations joined and heredoc bodies skipped."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        start, logical = i + 1, line
        while logical.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            nxt = lines[i]
            if nxt.lstrip().startswith("#"):
                continue
            logical = logical.rstrip()[:-1] + " " + nxt
        i += 1
        word, _, args = logical.strip().partition(" ")
        word = word.upper()
        if word in ("RUN", "COPY", "ADD"):
            for marker in re.findall(r"<<-?['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?", args):
                while i < len(lines) and lines[i].strip() != marker:
                    i += 1
                i += 1
        out.append((start, word, args.strip()))
    return out


def dockerfile_stages(instrs):
    stages = []
    for _, word, args in instrs:
        if word == "FROM":
            toks = [t for t in args.split() if not t.startswith("--")]
            name = toks[2] if len(toks) >= 3 and toks[1].lower() == "as" else None
            stages.append({"image": toks[0] if toks else "", "name": name, "copies": [], "env": {}, "workdir": "/"})
        elif stages and word == "WORKDIR":
            stages[-1]["workdir"] = posixpath.join(stages[-1]["workdir"], args.strip())
        elif stages and word in ("COPY", "ADD"):
            if args.startswith("["):
                toks = json.loads(args)
                flags = []
            else:
                toks = shlex.split(args)
                flags = [t for t in toks if t.startswith("--")]
                toks = [t for t in toks if not t.startswith("--")]
            if any(f.startswith("--from") for f in flags) or any(t.startswith("<<") for t in toks):
                continue
            stages[-1]["copies"].extend(toks[:-1])
        elif stages and word == "ENV":
            toks = shlex.split(args)
            if toks and "=" not in toks[0]:
                stages[-1]["env"][toks[0]] = args.split(None, 1)[1] if len(toks) > 1 else ""
            else:
                for t in toks:
                    k, _, v = t.partition("=")
                    stages[-1]["env"][k] = v
    return stages


def dockerignore_patterns(context):
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    pats = []
    for line in path.read_text().splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            neg = s.startswith("!")
            s = s[1:] if neg else s
            pats.append((neg, posixpath.normpath(s.lstrip("/")).removeprefix("./")))
    return pats


def dockerignored(rel, patterns):
    rel = posixpath.normpath(rel)
    candidates = [rel]
    parts = rel.split("/")
    candidates += ["/".join(parts[:n]) for n in range(1, len(parts))]
    ignored = False
    for neg, pat in patterns:
        alts = [pat] + ([pat[3:]] if pat.startswith("**/") else [])
        if any(fnmatch.fnmatchcase(c, a) for c in candidates for a in alts):
            ignored = not neg
    return ignored


# ---------------------------------------------------------------------------
# The checks


class Check:
    def __init__(self, compose_path):
        self.compose_path = Path(compose_path).resolve()
        self.dir = self.compose_path.parent
        self.name = os.path.relpath(self.compose_path, Path.cwd()) if str(self.compose_path).startswith(str(Path.cwd())) else str(self.compose_path)
        self.problems = Problems()
        self.notes = []

    def rel(self, path):
        try:
            return str(Path(path).resolve().relative_to(self.dir))
        except ValueError:
            return str(path)

    def run(self):
        raw = load_yaml(self.compose_path, self.problems, self.name)
        if raw is None:
            return self.problems
        if not isinstance(raw, dict):
            self.problems.add(self.name, "the top level is not a mapping")
            return self.problems
        env = read_dotenv(self.dir / ".env")
        env.update(os.environ)
        interp = Interpolator(env, self.problems, self.name)
        self.data = interp.walk(raw)
        schema_ok = self.schema()
        self.services = self.data.get("services") if isinstance(self.data.get("services"), dict) else {}
        self.config = HostConfig(self.problems)
        for group in (self.compose_semantics, self.host_settings, self.debezium, self.dockerfiles):
            try:
                group()
            except Exception as e:  # noqa: BLE001 - a malformed file must not hide the report
                if schema_ok:
                    self.problems.add(group.__name__, f"could not check: {type(e).__name__}: {e}")
                else:
                    self.notes.append(f"{group.__name__} checks stopped early on the invalid file ({type(e).__name__}: {e})")
        return self.problems

    # -- 1. the schema ------------------------------------------------------
    def schema(self):
        STATE.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="interpolated.", suffix=".json", dir=STATE)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.data, f, indent=1, default=str)
            res = subprocess.run(
                [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", "--color", "never", tmp],
                capture_output=True, text=True, stdin=subprocess.DEVNULL,
            )
        finally:
            os.unlink(tmp)
        if res.returncode == 0:
            self.notes.append(f"schema: valid ({SCHEMA_LABEL})")
            return True
        lines = [l.strip() for l in (res.stdout + res.stderr).splitlines() if l.strip()]
        errors = [l.split("::", 1)[1] if "::" in l else l for l in lines if "::" in l]
        for e in errors or lines:
            self.problems.add(f"schema {self.name}", e)
        return False

    # -- 2. what compose itself would refuse --------------------------------
    def compose_semantics(self):
        services, where = self.services, self.name
        declared = set((self.data.get("volumes") or {}).keys())
        seen_ports = {}
        images = {}
        for name, svc in services.items():
            for dep, spec in depends_on(svc).items():
                if dep not in services:
                    self.problems.add(where, f"services.{name}.depends_on: {dep} is not a service")
                    continue
                cond = spec.get("condition", "service_started")
                if cond == "service_healthy" and not healthcheck_enabled(services[dep]):
                    self.problems.add(where, f"services.{name} waits for {dep} to be healthy, but {dep} has no healthcheck (compose would fail: no healthcheck configured)")
                if cond == "service_completed_successfully" and str(services[dep].get("restart", "no")) in ("always", "unless-stopped"):
                    self.problems.add(where, f"services.{name} waits for {dep} to complete, but {dep} restarts {services[dep]['restart']}")
            for kind, source, target in mounts_of(svc):
                if kind == "volume" and source not in declared:
                    self.problems.add(where, f"services.{name}.volumes: named volume {source!r} is not declared under the top-level volumes:")
                if kind == "bind":
                    path = Path(os.path.expanduser(source))
                    path = path if path.is_absolute() else self.dir / path
                    if not path.exists():
                        self.problems.add(where, f"services.{name}.volumes: {source} (mounted at {target}) does not exist")
            for path, required in env_files_of(svc):
                if required and not (self.dir / path).is_file():
                    self.problems.add(where, f"services.{name}.env_file: {path} does not exist")
            build = svc.get("build")
            if build is not None:
                build = {"context": build} if isinstance(build, str) else build
                context = self.dir / str(build.get("context", "."))
                dockerfile = context / str(build.get("dockerfile", "Dockerfile"))
                if not context.is_dir():
                    self.problems.add(where, f"services.{name}.build.context: {self.rel(context)} is not a directory")
                elif not dockerfile.is_file():
                    self.problems.add(where, f"services.{name}.build: {self.rel(dockerfile)} does not exist")
                elif build.get("target"):
                    stages = {s["name"] for s in dockerfile_stages(parse_dockerfile(dockerfile.read_text()))}
                    if build["target"] not in stages:
                        self.problems.add(where, f"services.{name}.build.target: no stage {build['target']!r} in {self.rel(dockerfile)} (stages: {', '.join(sorted(s for s in stages if s))})")
                if svc.get("image"):
                    other = images.setdefault(svc["image"], (name, build))
                    if other[1] != build:
                        self.problems.add(where, f"services.{name} and {other[0]} build the same image {svc['image']} differently")
            for ip, published, target in published_ports(svc):
                if published:
                    key = (ip or "0.0.0.0", published)
                    if key in seen_ports:
                        self.problems.add(where, f"services.{name} and {seen_ports[key]} both publish host port {ip + ':' if ip else ''}{published}")
                    seen_ports[key] = name

    # -- 3a. the host's settings ----------------------------------------------
    def host_image_services(self):
        runs = [n for n, s in self.services.items() if command_of(s)[:1] == ["run"]]
        if len(runs) != 1:
            self.problems.add(self.name, f"expected one service running `engagement-host run`, found {len(runs)}: {', '.join(runs) or 'none'}")
            return None, []
        image = self.services[runs[0]].get("image")
        same = [n for n, s in self.services.items() if image and s.get("image") == image]
        return runs[0], same

    def runtime_env(self, svc):
        """ENV of the image's stage, when the service builds it here."""
        build = svc.get("build")
        if build is None:
            return {}
        build = {"context": build} if isinstance(build, str) else build
        dockerfile = self.dir / str(build.get("context", ".")) / str(build.get("dockerfile", "Dockerfile"))
        if not dockerfile.is_file():
            return {}
        stages = dockerfile_stages(parse_dockerfile(dockerfile.read_text()))
        target = build.get("target")
        stage = next((s for s in stages if s["name"] == target), stages[-1] if stages else None)
        return {"file": self.rel(dockerfile), "env": stage["env"], "workdir": stage["workdir"]} if stage else {}

    def check_key(self, where, key, value, settings):
        cfg = self.config
        field = key.lower()
        if field not in cfg.fields:
            close = difflib.get_close_matches(field, cfg.fields, n=1)
            hint = f" (did you mean {close[0].upper()}?)" if close else ""
            self.problems.add(where, f"{key} is not a key of struct Config in host/src/config.rs: the host ignores it{hint}")
            return
        if key != key.upper():
            self.problems.add(where, f"{key}: write config keys upper-case ({key.upper()})")
        if value is None:
            return
        parsed, why = typed_value(cfg.fields[field], value)
        if why:
            self.problems.add(where, f"{key}: {why}")
        else:
            settings[field] = parsed

    def parse_env_file(self, path, settings):
        where = self.rel(path)
        try:
            text = path.read_text()
        except OSError as e:
            self.problems.add(where, f"cannot read it: {e}")
            return
        if "\r" in text:
            self.problems.add(where, "has CR (Windows) line ends")
        seen = {}
        for n, line in enumerate(text.splitlines(), 1):
            at = f"{where}:{n}"
            if not line.strip():
                continue
            if line.lstrip().startswith("#"):
                m = re.fullmatch(r"#\s?([A-Za-z_][A-Za-z0-9_]*)=(\S*)", line.strip())
                if m:  # a commented-out setting: uncommenting it must work too
                    self.check_key(f"{at} (commented out)", m.group(1), m.group(2), {})
                continue
            m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
            if not m:
                self.problems.add(at, f"not KEY=VALUE: {line!r} (no `export`, no spaces around =)")
                continue
            key, value = m.groups()
            if value != value.rstrip():
                self.problems.add(at, f"{key}: trailing whitespace in the value")
            if value[:1] in ("'", '"'):
                self.problems.add(at, f"{key}: quoted value (Compose strips the quotes, `docker run --env-file` keeps them); write it bare")
            if re.search(r"\s#", value):
                self.problems.add(at, f"{key}: inline comment (older Compose and `docker run` keep it in the value); put comments on their own line")
            if "$" in value:
                self.problems.add(at, f"{key}: '$' in a value (Compose interpolates it)")
            if key in seen:
                self.problems.add(at, f"{key} is set twice (also line {seen[key]})")
            seen[key] = n
            self.check_key(at, key, value, settings)

    def host_settings(self):
        cfg = self.config
        if not cfg.fields:
            return
        run_name, host_services = self.host_image_services()
        if run_name is None:
            return
        run = self.services[run_name]
        self.run_name = run_name
        # Effective settings of `run`: defaults < image ENV < env_file < environment.
        settings = {k: v for k, v in cfg.defaults.items() if v is not HostConfig.UNKNOWN}
        image_env = self.runtime_env(run)
        for key, value in image_env.get("env", {}).items():
            self.check_key(f"{image_env['file']} ENV", key, value, settings)
        env_files = env_files_of(run)
        if not env_files:
            self.problems.add(self.name, f"services.{run_name} has no env_file (environment.env)")
        for path, required in env_files:
            if (self.dir / path).is_file():
                self.parse_env_file(self.dir / path, settings)
        for key, value in environment_of(run).items():
            if key.lower() in cfg.fields:
                self.check_key(f"{self.name} services.{run_name}.environment", key, value, settings)
        self.settings = settings
        # Services of the same image that read the config must read the same files.
        for name in host_services:
            svc = self.services[name]
            if command_of(svc)[:1] == ["setup-pubsub"] and env_files_of(svc) != env_files:
                self.problems.add(self.name, f"services.{name} (setup-pubsub) reads env_file {[p for p, _ in env_files_of(svc)]}, {run_name} reads {[p for p, _ in env_files]}: they would disagree on topics and subscriptions")
        # Config::validate.
        emit = settings.get("default_emit_interval_secs")
        if isinstance(emit, (int, float)) and not 0 < emit <= 3600:
            self.problems.add("settings", f"DEFAULT_EMIT_INTERVAL_SECS={emit}: must be in (0, 3600]")
        for key in ("batch_size", "max_pending"):
            if settings.get(key) == 0:
                self.problems.add("settings", f"{key.upper()} must be at least 1")
        if settings.get("bigquery_enabled") and settings.get("bigquery_dataset") == "":
            self.problems.add("settings", "BIGQUERY_DATASET is required when BIGQUERY_ENABLED")
        if not any(settings.get(k) for k in ("redis_enabled", "bigquery_enabled", "api_enabled")):
            self.problems.add("settings", "no sink enabled (REDIS_ENABLED, BIGQUERY_ENABLED, API_ENABLED): the host refuses to start")
        # Addresses must be compose services the host waits for, on their ports.
        deps = dependency_closure(self.services, run_name)
        refs = []
        sink_flags = {"redis_": "redis_enabled", "bigquery_": "bigquery_enabled", "api_": "api_enabled", "third_party_api_": "api_enabled"}

        def in_use(field):
            return all(settings.get(flag) for prefix, flag in sink_flags.items() if field.startswith(prefix))

        if settings.get("redis_enabled") and not settings.get("redis_url"):
            refs.append(("REDIS_HOST/REDIS_PORT", settings.get("redis_host"), settings.get("redis_port")))
        for field, value in settings.items():
            if cfg.fields.get(field) in ("String", "Option<String>") and isinstance(value, str) and in_use(field):
                # A list of nodes (a Redis Cluster URL) names several hosts.
                for part in value.split(","):
                    hp = host_of(part.strip())
                    if hp:
                        refs.append((field.upper(), hp[0], hp[1]))
        for key, host, port in refs:
            if host in ("localhost", "127.0.0.1", "::1"):
                self.problems.add("settings", f"{key} points at {host}: inside the container that is the container itself; name the compose service")
            elif host and not is_ip(host):
                if host not in self.services:
                    self.problems.add("settings", f"{key} points at {host!r}, which is not a service in {self.name}")
                    continue
                if host not in deps:
                    self.problems.add(self.name, f"services.{run_name} uses {host} ({key}) but does not depend on it")
                ports = listening_ports(self.services[host])
                if port and ports and port not in ports:
                    self.problems.add("settings", f"{key}: {host} listens on {sorted(ports)}, not {port}")
        # The admin endpoint must be reachable through the published port.
        admin = settings.get("admin_listen")
        if isinstance(admin, str) and socket_addr(admin):
            ip, port = socket_addr(admin)
            targets = {t for _, _, t in published_ports(run)}
            if targets and str(port) not in targets:
                self.problems.add("settings", f"ADMIN_LISTEN port {port} is not among the ports services.{run_name} publishes ({sorted(targets)})")
            if targets and not ipaddress.ip_address(ip).is_unspecified:
                self.problems.add("settings", f"ADMIN_LISTEN={admin}: a published port cannot reach {ip} inside the container; use 0.0.0.0:{port}")
            for m in re.finditer(r"(?:127\.0\.0\.1|localhost):(\d+)", healthcheck_text(run)):
                if int(m.group(1)) != port:
                    self.problems.add(self.name, f"services.{run_name}.healthcheck probes port {m.group(1)}, ADMIN_LISTEN is {admin}")
        # Plugins hot-swappable from outside, state kept across container restarts.
        targets = [t for _, _, t in mounts_of(run)]
        plugin_dir = settings.get("plugin_dir")
        if isinstance(plugin_dir, str) and not under(plugin_dir, targets):
            self.problems.add("settings", f"PLUGIN_DIR={plugin_dir} is not on a volume or bind mount of services.{run_name}: no way to swap a plugin from outside")
        workdir = image_env.get("workdir", "/")
        for field in ("state_dir", "dead_letter_file"):
            value = settings.get(field)
            if isinstance(value, str) and value and not under(posixpath.join(workdir, value), targets):
                self.problems.add("settings", f"{field.upper()}={value} is not on a volume of services.{run_name}: it would be lost with the container")
        # The Pub/Sub emulator's project.
        emulator = settings.get("pubsub_emulator_host")
        if isinstance(emulator, str) and host_of(emulator) and host_of(emulator)[0] in self.services:
            cmd = command_of(self.services[host_of(emulator)[0]])
            for tok in cmd:
                m = re.fullmatch(r"--project=(.+)", tok)
                if m and m.group(1) != settings.get("pubsub_project_id"):
                    self.problems.add("settings", f"PUBSUB_PROJECT_ID={settings.get('pubsub_project_id')} but the emulator runs --project={m.group(1)}")

    # -- 3b. Debezium -----------------------------------------------------------
    def debezium(self):
        settings = getattr(self, "settings", None)
        found = [(n, s) for n, s in self.services.items() if any(t == "/debezium/config" or str(t).startswith("/debezium/config/") for _, _, t in mounts_of(s))]
        if not found:
            self.problems.add(self.name, "no service mounts Debezium Server's /debezium/config")
            return
        name, svc = found[0]
        props_path = None
        for kind, source, target in mounts_of(svc):
            if kind != "bind":
                continue
            src = self.dir / os.path.expanduser(source)
            if target == "/debezium/config":
                props_path = src / "application.properties"
            elif target == "/debezium/config/application.properties":
                props_path = src
        if props_path is None or not props_path.is_file():
            self.problems.add(self.name, f"services.{name}: no application.properties mounted into /debezium/config ({props_path and self.rel(props_path)})")
            return
        where = self.rel(props_path)
        props = parse_properties(props_path.read_text())
        # Debezium Server (MicroProfile Config) lets the environment override
        # a property: upper case, every other character '_'.
        env = environment_of(svc)
        for key in list(props):
            env_key = re.sub(r"[^A-Za-z0-9]", "_", key).upper()
            if env_key in env:
                props[key] = env[env_key]

        def prop(key, default=None):
            return props.get(key, default)

        if prop("debezium.sink.type") != "pubsub":
            self.problems.add(where, f"debezium.sink.type is {prop('debezium.sink.type')!r}, not pubsub")
        if settings is not None:
            project = settings.get("pubsub_project_id")
            if prop("debezium.sink.pubsub.project.id") != project:
                self.problems.add(where, f"debezium.sink.pubsub.project.id={prop('debezium.sink.pubsub.project.id')} but the host's PUBSUB_PROJECT_ID is {project}")
            address = prop("debezium.sink.pubsub.address")
            emulator = settings.get("pubsub_emulator_host")
            if (address or None) != (emulator or None):
                self.problems.add(where, f"debezium.sink.pubsub.address={address} but the host's PUBSUB_EMULATOR_HOST is {emulator}: they would use different Pub/Sub")
            if address and host_of(address):
                host, port = host_of(address)
                if host not in self.services:
                    self.problems.add(where, f"debezium.sink.pubsub.address: {host} is not a service in {self.name}")
                elif listening_ports(self.services[host]) and port not in listening_ports(self.services[host]):
                    self.problems.add(where, f"debezium.sink.pubsub.address: {host} listens on {sorted(listening_ports(self.services[host]))}, not {port}")
            if any(k.startswith("debezium.transforms") for k in props):
                self.problems.add(where, "debezium.transforms may rename topics; scripts/check-compose.sh cannot follow them")
            prefix = prop("debezium.source.topic.prefix")
            schemas = [s.strip() for s in (prop("debezium.source.schema.include.list") or ".*").split(",")]
            tables = [s.strip() for s in (prop("debezium.source.table.include.list") or ".*").split(",")]
            seed_tables = self.seed_tables()
            for key in ("content_topic", "events_topic"):
                topic = settings.get(key)
                if not isinstance(topic, str):
                    continue
                if not prefix or not topic.startswith(prefix + "."):
                    self.problems.add(where, f"debezium.source.topic.prefix={prefix}: Debezium never publishes to the host's {key.upper()}={topic}")
                    continue
                rest = topic[len(prefix) + 1:]
                if rest.count(".") != 1:
                    self.problems.add(where, f"{key.upper()}={topic} is not {prefix}.<schema>.<table>")
                    continue
                schema_name, table = rest.split(".")
                if not any(re.fullmatch(p, schema_name) for p in schemas) or not any(re.fullmatch(p, rest) for p in tables):
                    self.problems.add(where, f"{schema_name}.{table} (the host's {key.upper()}={topic}) is not captured by schema.include.list/table.include.list")
                if seed_tables is not None and schema_name == "public" and table not in seed_tables:
                    self.problems.add(where, f"the host's {key.upper()}={topic}: seed.sql creates no table {table}")
        # The database is the postgres service, with its credentials.
        db_host = prop("debezium.source.database.hostname")
        pg = self.services.get(db_host)
        if pg is None:
            self.problems.add(where, f"debezium.source.database.hostname={db_host} is not a service in {self.name}")
        else:
            pg_env = environment_of(pg)
            user = pg_env.get("POSTGRES_USER", "postgres")
            expected = {
                "debezium.source.database.port": str(next(iter(sorted(listening_ports(pg)))) if listening_ports(pg) else 5432),
                "debezium.source.database.user": user,
                "debezium.source.database.password": pg_env.get("POSTGRES_PASSWORD"),
                "debezium.source.database.dbname": pg_env.get("POSTGRES_DB", user),
            }
            for key, want in expected.items():
                if prop(key) != want:
                    self.problems.add(where, f"{key}={prop(key)} but services.{db_host} has {want}")
            if "wal_level=logical" not in " ".join(command_of(pg)):
                self.problems.add(self.name, f"services.{db_host} does not run with -c wal_level=logical: Debezium cannot stream")
        if prop("debezium.source.plugin.name", "decoderbufs") != "pgoutput":
            self.problems.add(where, f"debezium.source.plugin.name={prop('debezium.source.plugin.name')}: only pgoutput is built into the postgres image")
        if str(prop("debezium.source.slot.drop.on.stop", "false")).lower() == "true":
            self.problems.add(where, "debezium.source.slot.drop.on.stop=true loses every change made while Debezium is down")
        # Offsets on a volume, or every restart snapshots again / skips changes.
        storage = prop("debezium.source.offset.storage", "org.apache.kafka.connect.storage.FileOffsetBackingStore")
        if storage.endswith("FileOffsetBackingStore"):
            offsets = prop("debezium.source.offset.storage.file.filename", "")
            absolute = offsets if offsets.startswith("/") else posixpath.join("/debezium", offsets)
            volumes = [t for k, _, t in mounts_of(svc) if k in ("volume", "bind")]
            if not offsets or not under(absolute, volumes):
                self.problems.add(where, f"offsets file {offsets!r} ({absolute}) is not on a volume of services.{name}")
        # Order: the topics exist before Debezium publishes, the database is up.
        deps = dependency_closure(self.services, name)
        setup = [n for n, s in self.services.items() if command_of(s)[:1] == ["setup-pubsub"]]
        if setup and setup[0] not in deps:
            self.problems.add(self.name, f"services.{name} does not wait for {setup[0]} (the topics must exist before Debezium publishes)")
        if db_host in self.services and db_host not in deps:
            self.problems.add(self.name, f"services.{name} does not depend on {db_host}")
        # The publication seed.sql creates.
        pub = self.seed_publication()
        if pub and prop("debezium.source.publication.name", "dbz_publication") != pub:
            self.problems.add(where, f"debezium.source.publication.name={prop('debezium.source.publication.name')} but seed.sql creates {pub}")

    def seed_sql(self):
        for s in self.services.values():
            for kind, source, target in mounts_of(s):
                if kind == "bind" and str(target).startswith("/docker-entrypoint-initdb.d"):
                    path = self.dir / source
                    if path.is_file():
                        return path.read_text()
                    if path.is_dir():
                        return "\n".join(p.read_text() for p in sorted(path.glob("*.sql")))
        return None

    def seed_tables(self):
        text = self.seed_sql()
        if text is None:
            return None
        return set(re.findall(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:public\.)?(\w+)", text, re.I))

    def seed_publication(self):
        m = re.search(r"CREATE\s+PUBLICATION\s+(\w+)", self.seed_sql() or "", re.I)
        return m.group(1) if m else None

    # -- 3c. Dockerfiles ----------------------------------------------------------
    def dockerfiles(self):
        done = set()
        for name, svc in self.services.items():
            build = svc.get("build")
            if build is None:
                continue
            build = {"context": build} if isinstance(build, str) else build
            context = (self.dir / str(build.get("context", "."))).resolve()
            dockerfile = context / str(build.get("dockerfile", "Dockerfile"))
            if dockerfile in done or not dockerfile.is_file():
                continue
            done.add(dockerfile)
            where = self.rel(dockerfile)
            stages = dockerfile_stages(parse_dockerfile(dockerfile.read_text()))
            ignore = dockerignore_patterns(context)
            for must in ("target", ".git"):
                if (context / must).exists() and not dockerignored(must, ignore):
                    self.problems.add(f"{self.rel(context / '.dockerignore')}", f"does not exclude {must}/ from the build context")
            copied = []
            for stage in stages:
                for src in stage["copies"]:
                    rel = posixpath.normpath(src.lstrip("/"))
                    copied.append(rel)
                    matches = list(context.glob(rel)) if any(c in rel for c in "*?[") else [context / rel]
                    if not any(m.exists() for m in matches):
                        self.problems.add(where, f"COPY {src}: not in the build context {self.rel(context)}")
                    elif dockerignored(rel, ignore):
                        self.problems.add(where, f"COPY {src}: excluded by .dockerignore")

            def covered(rel):
                rel = posixpath.normpath(rel)
                return any(c == "." or rel == c or rel.startswith(c.rstrip("/") + "/") for c in copied)

            manifest = context / "Cargo.toml"
            if not manifest.is_file() or not any(s["copies"] for s in stages):
                continue
            workspace = tomllib.loads(manifest.read_text()).get("workspace", {})
            members = [posixpath.normpath(m) for m in workspace.get("members", [])]
            for f in ("Cargo.toml", "Cargo.lock"):
                if (context / f).exists() and not covered(f):
                    self.problems.add(where, f"{f} is not copied into the build")
            for member in members:
                if not covered(member):
                    self.problems.add(where, f"workspace member {member} is not copied into the build (cargo fails to load the workspace)")
            for member in members:
                for rs in sorted((context / member).glob("src/**/*.rs")):
                    for inc in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)', rs.read_text()):
                        target = os.path.normpath(os.path.join(rs.parent, inc))
                        rel = os.path.relpath(target, context)
                        if not rel.startswith("..") and not covered(rel):
                            self.problems.add(where, f"{self.rel(rs)} includes {rel}, which is not copied into the build")


def parse_properties(text):
    props, pending = {}, ""
    for line in text.splitlines():
        s = line.strip() if not pending else line.lstrip()
        if not pending and (not s or s[0] in "#!"):
            continue
        if s.endswith("\\") and not s.endswith("\\\\"):
            pending += s[:-1]
            continue
        s, pending = pending + s, ""
        m = re.match(r"((?:[^=:\s\\]|\\.)+)\s*[=:\s]\s*(.*)", s)
        if m:
            props[m.group(1)] = m.group(2)
        else:
            props[s] = ""
    return props


def report(check, problems):
    for note in check.notes:
        print(f"check-compose: {note}")
    if problems:
        print(f"check-compose: {check.name}: FAILED, {len(problems.items)} problem(s):")
        for p in problems.items:
            print(f"  - {p}")
        return 1
    print(f"check-compose: {check.name}: ok (schema, compose semantics, host config keys and values, Debezium, Dockerfile)")
    return 0


# ---------------------------------------------------------------------------
# --self-test: every way of breaking the files below must be refused


def self_test():
    compose = ROOT / "docker-compose.yaml"
    copied = ["docker-compose.yaml", "environment.env", "conf", "Dockerfile", ".dockerignore"]
    rt = YAML()
    rt.preserve_quotes = True

    def edit_yaml(fn):
        def apply(d):
            path = d / "docker-compose.yaml"
            data = rt.load(path.read_text())
            fn(data)
            with open(path, "w") as f:
                rt.dump(data, f)
        return apply

    def edit_text(name, old, new):
        def apply(d):
            path = d / name
            text = path.read_text()
            if old not in text:
                raise AssertionError(f"{name} no longer contains {old!r}: update the self-test")
            path.write_text(text.replace(old, new, 1))
        return apply

    def svc(d, name):
        return d["services"][name]

    cases = [
        ("unknown service key", edit_yaml(lambda d: svc(d, "redis").insert(0, "imagee", "redis:7")), "imagee"),
        ("ports not a list", edit_yaml(lambda d: svc(d, "redis").__setitem__("ports", 6379)), "is not of type 'array'"),
        ("bad depends_on condition", edit_yaml(lambda d: svc(d, "engagement-host")["depends_on"]["redis"].__setitem__("condition", "service_health")), "service_health"),
        ("healthcheck interval not a string", edit_yaml(lambda d: svc(d, "redis")["healthcheck"].__setitem__("interval", 5)), "interval"),
        ("YAML syntax", edit_text("docker-compose.yaml", "\nvolumes:\n", "\nvolumes:\n  - [\n"), "not valid YAML"),
        ("variable without default", edit_text("docker-compose.yaml", "${REDIS_HOST_PORT:-6379}", "${CHECK_COMPOSE_SELF_TEST_UNSET}"), "CHECK_COMPOSE_SELF_TEST_UNSET"),
        ("depends on a missing service", edit_yaml(lambda d: svc(d, "engagement-host")["depends_on"].__setitem__("kafka", {"condition": "service_started"})), "kafka is not a service"),
        ("healthy without a healthcheck", edit_yaml(lambda d: svc(d, "redis").pop("healthcheck")), "has no healthcheck"),
        ("undeclared named volume", edit_text("docker-compose.yaml", "- plugins:/plugins", "- plugin-files:/plugins"), "plugin-files"),
        ("mounted file missing", edit_text("docker-compose.yaml", "./seed.sql:", "./seed-missing.sql:"), "seed-missing.sql"),
        ("env_file missing", edit_yaml(lambda d: svc(d, "engagement-host").__setitem__("env_file", ["environment-missing.env"])), "environment-missing.env"),
        ("unknown build target", edit_yaml(lambda d: svc(d, "bigquery-emulator")["build"].__setitem__("target", "bq")), "no stage 'bq'"),
        ("env key typo", edit_text("environment.env", "REDIS_PORT=6379\n", "REDIS_PORT=6379\nREDIS_PROT=6380\n"), "REDIS_PROT is not a key"),
        ("env key from another program", edit_text("environment.env", "REDIS_PORT=6379\n", "REDIS_PORT=6379\nRUST_LOG=debug\n"), "RUST_LOG is not a key"),
        ("env value not a port", edit_text("environment.env", "REDIS_PORT=6379", "REDIS_PORT=six"), "REDIS_PORT: 'six' is not an integer"),
        ("env value out of range", edit_text("environment.env", "REDIS_PORT=6379", "REDIS_PORT=70000"), "REDIS_PORT: '70000'"),
        ("env bool as yes", edit_text("environment.env", "API_ENABLED=true", "API_ENABLED=yes"), "API_ENABLED"),
        ("env number for a string key", edit_text("environment.env", "BIGQUERY_DATASET=engagement_analytics", "BIGQUERY_DATASET=2024"), "BIGQUERY_DATASET"),
        ("env quoted value", edit_text("environment.env", "REDIS_HOST=redis", 'REDIS_HOST="redis"'), "quoted value"),
        ("env inline comment", edit_text("environment.env", "REDIS_HOST=redis", "REDIS_HOST=redis # the service"), "inline comment"),
        ("env admin address by name", edit_text("environment.env", "ADMIN_LISTEN=0.0.0.0:9100", "ADMIN_LISTEN=localhost:9100"), "ADMIN_LISTEN"),
        ("env admin on loopback", edit_text("environment.env", "ADMIN_LISTEN=0.0.0.0:9100", "ADMIN_LISTEN=127.0.0.1:9100"), "cannot reach 127.0.0.1"),
        ("env Redis on localhost", edit_text("environment.env", "REDIS_HOST=redis", "REDIS_HOST=localhost"), "REDIS_HOST/REDIS_PORT points at localhost"),
        ("env API not a service", edit_text("environment.env", "THIRD_PARTY_API_URL=http://api-sim:8080", "THIRD_PARTY_API_URL=http://api:8080"), "'api', which is not a service"),
        ("env API wrong port", edit_text("environment.env", "THIRD_PARTY_API_URL=http://api-sim:8080", "THIRD_PARTY_API_URL=http://api-sim:8000"), "not 8000"),
        ("env emit interval too long", edit_text("environment.env", "DEFAULT_EMIT_INTERVAL_SECS=3", "DEFAULT_EMIT_INTERVAL_SECS=7200"), "(0, 3600]"),
        ("env project differs from Debezium", edit_text("environment.env", "PUBSUB_PROJECT_ID=streaming-project", "PUBSUB_PROJECT_ID=other-project"), "project.id"),
        ("env events topic Debezium does not write", edit_text("environment.env", "# EVENTS_TOPIC=pgcdc.public.engagement_events", "EVENTS_TOPIC=pgcdc.public.events"), "seed.sql creates no table events"),
        ("env commented-out bad key", edit_text("environment.env", "# ADMIN_TOKEN=change-me", "# ADMIN_TOKENS=change-me"), "ADMIN_TOKENS"),
        ("Debezium topic prefix", edit_text("conf/application.properties", "topic.prefix=pgcdc", "topic.prefix=cdc"), "topic.prefix=cdc"),
        ("Debezium project", edit_text("conf/application.properties", "pubsub.project.id=streaming-project", "pubsub.project.id=other-project"), "project.id=other-project"),
        ("Debezium emulator address", edit_text("conf/application.properties", "pubsub.address=pubsub-emulator:8085", "pubsub.address=pubsub:8085"), "pubsub.address=pubsub:8085"),
        ("Debezium password", edit_text("conf/application.properties", "database.password=dbz", "database.password=secret"), "database.password=secret"),
        ("Debezium offsets not on a volume", edit_text("conf/application.properties", "file.filename=data/offsets.dat", "file.filename=offsets.dat"), "not on a volume"),
        ("Debezium drops its slot", edit_text("conf/application.properties", "slot.drop.on.stop=false", "slot.drop.on.stop=true"), "slot.drop.on.stop=true"),
        ("Debezium env override", edit_yaml(lambda d: svc(d, "debezium")["environment"].__setitem__("DEBEZIUM_SOURCE_TOPIC_PREFIX", "cdc")), "topic.prefix=cdc"),
        ("Postgres without logical WAL", edit_text("docker-compose.yaml", "-c wal_level=logical ", ""), "wal_level=logical"),
        ("Dockerfile misses a directory", edit_text("Dockerfile", "COPY bigquery bigquery\n", ""), "bigquery/"),
        ("Dockerfile misses a member", edit_text("Dockerfile", "COPY plugins plugins\n", ""), "workspace member plugins/"),
        (".dockerignore hides a copied dir", edit_text(".dockerignore", "target\n", "target\nwit\n"), "excluded by .dockerignore"),
        ("image ENV with an unknown key", edit_text("Dockerfile", "ENV PLUGIN_DIR=/plugins", "ENV PLUGINS_DIR=/plugins PLUGIN_DIR=/plugins"), "PLUGINS_DIR"),
    ]

    def farm(tmp):
        for entry in os.listdir(ROOT):
            if entry in copied:
                src = ROOT / entry
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp / entry)
            else:
                os.symlink(ROOT / entry, tmp / entry)

    passed, failed = 0, 0
    with tempfile.TemporaryDirectory(prefix="check-compose.") as base:
        pristine = Path(base) / "pristine"
        pristine.mkdir()
        farm(pristine)
        check = Check(pristine / compose.name)
        problems = check.run()
        if problems:
            failed += 1
            print("FAIL  pristine copy: expected no problem, got:")
            for p in problems.items:
                print(f"        {p}")
        else:
            passed += 1
            print("ok    pristine copy passes")
        for i, (label, mutate, expect) in enumerate(cases):
            d = Path(base) / f"case{i}"
            d.mkdir()
            farm(d)
            try:
                mutate(d)
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL  {label}: could not break the file: {e}")
                continue
            problems = Check(d / compose.name).run()
            hits = [p for p in problems.items if expect in p]
            if problems and hits:
                passed += 1
                print(f"ok    {label}: refused: {hits[0]}")
            else:
                failed += 1
                print(f"FAIL  {label}: expected a problem containing {expect!r}, got: {problems.items or 'none'}")
    print(f"self-test: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv):
    if argv[:1] == ["--self-test"]:
        return self_test()
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print("usage: scripts/check-compose.sh [COMPOSE_FILE] | --self-test", file=sys.stderr)
        return 2
    path = Path(os.environ["CHECK_CALLER_DIR"], argv[0]) if argv else ROOT / "docker-compose.yaml"
    if not path.is_file():
        print(f"check-compose: {path}: no such file", file=sys.stderr)
        return 1
    check = Check(path)
    return report(check, check.run())


sys.exit(main(sys.argv[1:]))
