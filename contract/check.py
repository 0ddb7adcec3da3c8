"""Contract check: crawl the sandbox (v1 and v2, success and error cases) and validate every response against
Personio's own OpenAPI files. See docs/contract.md.

usage: python contract/check.py --spec-dir DIR [--errata FILE] [--verbose] [--dump FILE]
                                (--sandbox CMD ARGS... | --base-url URL | --replay FILE | --self-test)
       (--sandbox takes the rest of the command line: put it last)

Exit status: 0 when every response matches the spec (or a documented erratum), 1 on any other violation,
2 when the check itself cannot run (spec files missing, sandbox does not start).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

# Credentials the check starts the sandbox with (--client-id/--client-secret); --base-url mode takes them as flags.
CLIENT_ID = "papi-contract-check"
CLIENT_SECRET = "papi-contract-check-secret"


class CheckError(Exception):
    """The check cannot run (not a contract violation)."""


# ------------------------------------------------------------------------------------------------ specs

# name, file under the spec dir, prefix of its paths on the sandbox
SPEC_FILES = [
    ("v1", "personio-personnel-data-api-oa3.yaml", "/v1"),
    ("v1-auth", "personio-auth-api.yaml", "/v1"),
    ("v2-credentials", "v2/credentials-service-api-v2.json", ""),
    ("v2-persons", "v2/persons-service-api-v2.json", ""),
    ("v2-employments", "v2/employment-contract-v2.json", ""),
    ("v2-common", "common-components-v2.json", ""),
]


_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when the wheel has it: 10x faster


class _NoTimestampLoader(_SafeBase):  # type: ignore[valid-type,misc]
    """Safe YAML loader that keeps `2014-11-09T00:00:00+01:00` a string (on the wire it is one)."""


_NoTimestampLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _esc(s: str) -> str:
    return s.replace("~", "~0").replace("/", "~1")


def _pointer_get(doc: Any, pointer: str) -> Any:
    cur = doc
    for raw in pointer.lstrip("/").split("/") if pointer not in ("", "/") else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, list):
            cur = cur[int(part)]
        elif part in cur:
            cur = cur[part]
        elif part.isdigit() and int(part) in cur:  # YAML keys such as 200 load as ints
            cur = cur[int(part)]
        else:
            raise KeyError(pointer)
    return cur


@dataclass
class Op:
    spec: str
    method: str
    template: str  # full sandbox path, e.g. /v1/company/employees/{employee_id}
    pointer: str  # JSON pointer of the operation in its file
    obj: dict
    regex: re.Pattern = field(init=False)

    def __post_init__(self) -> None:
        parts = re.split(r"(\{[^}]+\})", self.template)
        rx = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        self.regex = re.compile(f"^{rx}$")

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


class Specs:
    """The OpenAPI files, a $ref registry over them, and an index of their operations."""

    def __init__(self, spec_dir: Path) -> None:
        self.dir = spec_dir
        self.docs: dict[str, Any] = {}
        self.files: dict[str, str] = {}
        missing = [f for _, f, _ in SPEC_FILES if not (spec_dir / f).is_file()]
        if missing:
            raise CheckError(
                f"the official OpenAPI files are missing from {spec_dir}: {', '.join(missing)}. "
                "They live in ../shared/spec/personio-openapi beside the clone (reference data, not in the project)."
            )
        resources = []
        self.ops: list[Op] = []
        for name, fname, prefix in SPEC_FILES:
            path = spec_dir / fname
            try:
                text = path.read_text(encoding="utf-8")
                doc = json.loads(text) if fname.endswith(".json") else yaml.load(text, Loader=_NoTimestampLoader)  # noqa: S506 (a SafeLoader)
            except (OSError, ValueError, yaml.YAMLError) as e:
                raise CheckError(f"cannot read {path}: {e}") from e
            doc = _stringify_keys(doc)
            self.docs[name] = doc
            self.files[name] = fname
            resources.append((self.uri(name), DRAFT4.create_resource(doc)))
            for p, item in (doc.get("paths") or {}).items():
                for m, op in item.items():
                    if m in ("get", "post", "put", "patch", "delete"):
                        self.ops.append(Op(name, m.upper(), prefix + p, f"/paths/{_esc(p)}/{m}", op))
        self.registry = Registry().with_resources(resources)
        # literal segments win over parameters (/employees/attributes before /employees/{employee_id})
        self.ops.sort(key=lambda o: (o.template.count("{"), -len(o.template)))
        self._validators: dict[tuple[str, str], Any] = {}

    @staticmethod
    def uri(name: str) -> str:
        return f"urn:personio-openapi:{name}"

    def find(self, method: str, path: str) -> Op | None:
        for op in self.ops:
            if op.method == method and op.regex.match(path):
                return op
        return None

    def get(self, spec: str, pointer: str) -> Any:
        return _pointer_get(self.docs[spec], pointer)

    def deref(self, spec: str, pointer: str) -> tuple[str, Any]:
        """Follows a local `$ref` chain starting at pointer; returns the final pointer and object."""
        obj = self.get(spec, pointer)
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj and seen < 20:
            ref = obj["$ref"]
            if not ref.startswith("#"):
                raise CheckError(f"{self.files[spec]}: non-local $ref {ref} is not supported")
            pointer = ref[1:]
            obj = self.get(spec, pointer)
            seen += 1
        return pointer, obj

    def validator(self, spec: str, pointer: str) -> Any:
        k = (spec, pointer)
        v = self._validators.get(k)
        if v is None:
            v = OAS30Validator(
                {"$ref": f"{self.uri(spec)}#{pointer}"}, registry=self.registry, format_checker=oas30_format_checker
            )
            self._validators[k] = v
        return v


def _stringify_keys(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _stringify_keys(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_stringify_keys(v) for v in x]
    return x


# ------------------------------------------------------------------------------------------------ errata


@dataclass
class Erratum:
    id: str
    match: dict
    validate_with: dict | None
    used: int = 0

    def matches(self, v: "Violation") -> bool:
        m = self.match
        if "kind" in m and v.kind not in _as_list(m["kind"]):
            return False
        if "spec" in m and v.spec not in _as_list(m["spec"]):
            return False
        if "status" in m and v.status not in [int(s) for s in _as_list(m["status"])]:
            return False
        if "endpoint" in m and not any(re.fullmatch(rx, v.endpoint) for rx in _as_list(m["endpoint"])):
            return False
        if "path" in m and not re.fullmatch(m["path"], v.norm_path):
            return False
        if "keyword" in m and v.keyword not in _as_list(m["keyword"]):
            return False
        if "message" in m and not re.search(m["message"], v.message):
            return False
        return True


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


REQUIRED_ERRATUM_FIELDS = ("id", "spec_location", "spec_says", "personio_does", "source", "why", "match")


def load_errata(path: Path) -> list[Erratum]:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoTimestampLoader) or []
    except (OSError, yaml.YAMLError) as e:
        raise CheckError(f"cannot read the errata file {path}: {e}") from e
    out = []
    for i, e in enumerate(raw):
        missing = [f for f in REQUIRED_ERRATUM_FIELDS if not e.get(f)]
        if missing:
            raise CheckError(f"{path}: erratum #{i + 1} lacks {', '.join(missing)} (every entry documents itself)")
        out.append(Erratum(e["id"], e["match"], e.get("validate_with")))
    return out


# ------------------------------------------------------------------------------------------------ http


@dataclass
class Exchange:
    case: str
    method: str
    path: str
    query: str
    status: int
    content_type: str
    body: bytes
    headers: dict
    expect: tuple[int, ...] | None = None
    expect_source: str = ""
    seconds: float = 0.0

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def target(self) -> str:
        return self.path + ("?" + self.query if self.query else "")


class Client:
    """One keep-alive connection to the sandbox; records every exchange."""

    def __init__(self, base_url: str) -> None:
        u = urllib.parse.urlsplit(base_url)
        if u.scheme != "http" or not u.hostname:
            raise CheckError(f"base URL {base_url!r} is not http://host:port")
        self.host, self.port = u.hostname, u.port or 80
        self.base = base_url.rstrip("/")
        self.conn: http.client.HTTPConnection | None = None
        self.log: list[Exchange] = []

    def _raw(self, method: str, target: str, headers: dict, body: bytes | None) -> tuple[int, dict, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request(method, target, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.HTTPException, OSError) as e:
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise CheckError(f"{method} {target}: the sandbox did not answer ({e})") from e
        raise CheckError("unreachable")

    def call(
        self,
        case: str,
        method: str,
        path: str,
        params: list[tuple[str, str]] | str | None = None,
        token: str | None = None,
        headers: dict | None = None,
        body: bytes | None = None,
        expect: tuple[int, ...] | None = None,
        source: str = "",
    ) -> Exchange:
        query = params if isinstance(params, str) else urllib.parse.urlencode(params or [])
        h = {"Accept": "application/json", "X-Personio-App-ID": "PERSONIO_PIPELINE_CONTRACT"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        target = path + ("?" + query if query else "")
        t0 = time.monotonic()
        status, rh, data = self._raw(method, target, h, body)
        ex = Exchange(case, method, path, query, status, rh.get("content-type", ""), data, rh, expect, source, time.monotonic() - t0)
        self.log.append(ex)
        return ex

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        status, _, out = self._raw(method, "/_sandbox" + path, {"Content-Type": "application/json"}, data)
        if status >= 300:
            raise CheckError(f"admin {method} /_sandbox{path} answered {status}: {out[:200]!r}")
        return json.loads(out) if out else None


# ------------------------------------------------------------------------------------------------ crawl

HUB = "personio-api.md §13.1 [HUB]"
V2SPEC_P = "v2/persons-service-api-v2.json (limit maximum 50; filters)"
V2SPEC_E = "v2/employment-contract-v2.json (limit maximum 50)"
V2SPEC_C = "v2/credentials-service-api-v2.json (every token error is 400)"
V1_ERR = "personio-api.md §3.4/§14"


def _next_href(ex: Exchange) -> str | None:
    b = ex.json()
    if ex.status != 200 or not isinstance(b, dict):
        return None
    nxt = (((b.get("_meta") or {}).get("links") or {}).get("next") or {}).get("href")
    return nxt if isinstance(nxt, str) and nxt else None


def crawl(c: Client, say: Callable[[str], None]) -> dict:
    """Runs every request of the crawl; returns facts for behaviour checks."""
    facts: dict[str, Any] = {"next_links": []}

    # ---------------- v1 auth
    form = "application/x-www-form-urlencoded"
    creds = json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).encode()
    ex = c.call("v1 auth json body", "POST", "/v1/auth", headers={"Content-Type": "application/json"}, body=creds, expect=(200,))
    tok1 = ((ex.json() or {}).get("data") or {}).get("token")
    if ex.status != 200 or not tok1:
        raise CheckError(f"POST /v1/auth with the demo credentials answered {ex.status}: {ex.body[:200]!r}")
    c.call("v1 auth form body", "POST", "/v1/auth", headers={"Content-Type": form},
           body=urllib.parse.urlencode({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).encode(), expect=(200,))
    c.call("v1 auth query string", "POST", "/v1/auth", [("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)], expect=(200,))
    c.call("v1 auth wrong secret", "POST", "/v1/auth", headers={"Content-Type": "application/json"},
           body=json.dumps({"client_id": CLIENT_ID, "client_secret": "wrong"}).encode(), expect=(400, 401, 403), source=V1_ERR)
    c.call("v1 auth missing fields", "POST", "/v1/auth", headers={"Content-Type": "application/json"},
           body=b"{}", expect=(400, 401, 422), source=V1_ERR)

    # ---------------- v1 employees
    say("v1 employees")
    ids: list[int] = []
    offset, total = 0, None
    while True:
        ex = c.call("v1 employees page", "GET", "/v1/company/employees", [("limit", "100"), ("offset", str(offset))], tok1, expect=(200,))
        b = ex.json() or {}
        data = b.get("data") or []
        for e in data:
            v = (((e.get("attributes") or {}).get("id")) or {}).get("value")
            if isinstance(v, int):
                ids.append(v)
        total = (b.get("metadata") or {}).get("total_elements", 0)
        offset += 100
        if ex.status != 200 or not data or offset >= total or offset > 100_000:
            break
    if not ids:
        raise CheckError("GET /v1/company/employees gave no employee ids; cannot crawl further")
    facts["employee_ids"] = ids
    c.call("v1 employees default limit", "GET", "/v1/company/employees", None, tok1, expect=(200,))
    c.call("v1 employees projection", "GET", "/v1/company/employees",
           [("limit", "50"), ("attributes[]", "first_name"), ("attributes[]", "last_name")], tok1, expect=(200,))
    c.call("v1 employees updated_since", "GET", "/v1/company/employees",
           [("limit", "100"), ("updated_since", "2020-01-01T00:00:00")], tok1, expect=(200,))
    ex0 = c.call("v1 employee by id", "GET", f"/v1/company/employees/{ids[0]}", None, tok1, expect=(200,))
    email = ((((ex0.json() or {}).get("data") or {}).get("attributes") or {}).get("email") or {}).get("value")
    if isinstance(email, str):
        c.call("v1 employees email filter", "GET", "/v1/company/employees", [("email", email)], tok1, expect=(200,))
    for i in ids[1:]:
        c.call("v1 employee by id", "GET", f"/v1/company/employees/{i}", None, tok1, expect=(200,))
    for i in ids:
        c.call("v1 absence balance", "GET", f"/v1/company/employees/{i}/absences/balance", None, tok1, expect=(200,))
    c.call("v1 employee unknown id", "GET", "/v1/company/employees/999999999", None, tok1, expect=(404,), source="spec 404")
    c.call("v1 balance unknown id", "GET", "/v1/company/employees/999999999/absences/balance", None, tok1, expect=(404,), source="spec 404")
    c.call("v1 employees limit 0", "GET", "/v1/company/employees", [("limit", "0")], tok1, expect=(400, 422), source="personio-api.md §3.6/§14")
    c.call("v1 employees limit 101", "GET", "/v1/company/employees", [("limit", "101")], tok1, expect=(400, 422), source="personio-api.md §3.6 (max 100 since 2025-01-31)")
    c.call("v1 employees offset -1", "GET", "/v1/company/employees", [("offset", "-1")], tok1, expect=(400, 422), source="spec offset minimum 0")
    c.call("v1 employees no token", "GET", "/v1/company/employees", None, None, expect=(401,), source=V1_ERR)
    c.call("v1 employees bad token", "GET", "/v1/company/employees", None, "papi-not-a-token", expect=(401, 403), source=V1_ERR)
    c.call("v1 employee attributes", "GET", "/v1/company/employees/attributes", None, tok1, expect=(200,))
    c.call("v1 employee custom-attributes", "GET", "/v1/company/employees/custom-attributes", None, tok1, expect=(200,))

    # ---------------- v1 time-offs (offset = 1-based page)
    say("v1 time-offs")
    time_off_ids: list[int] = []
    page = 1
    while True:
        ex = c.call("v1 time-offs page", "GET", "/v1/company/time-offs", [("limit", "200"), ("offset", str(page))], tok1, expect=(200,))
        b = ex.json() or {}
        for t in b.get("data") or []:
            v = (t.get("attributes") or {}).get("id")
            if isinstance(v, int):
                time_off_ids.append(v)
        pages = (b.get("metadata") or {}).get("total_pages", 0)
        if ex.status != 200 or not b.get("data") or page >= pages or page > 1000:
            break
        page += 1
    c.call("v1 time-offs offset 0", "GET", "/v1/company/time-offs", [("limit", "200"), ("offset", "0")], tok1, expect=(200,))
    c.call("v1 time-offs filters", "GET", "/v1/company/time-offs",
           [("start_date", "2025-01-01"), ("end_date", "2025-12-31"), ("updated_from", "2020-01-01"), ("updated_to", "2030-01-01"),
            ("employees[]", str(ids[0])), ("employees[]", str(ids[-1])), ("limit", "200"), ("offset", "1")], tok1, expect=(200,))
    c.call("v1 time-offs past the end", "GET", "/v1/company/time-offs", [("limit", "200"), ("offset", str(page + 5))], tok1,
           expect=(200,), source="personio-api.md §3.6 (a page past the end is empty data)")
    c.call("v1 time-offs limit 201", "GET", "/v1/company/time-offs", [("limit", "201")], tok1, expect=(400, 422), source="personio-api.md §7 (max 200)")
    sample = time_off_ids[:10] + time_off_ids[-10:]
    for i in sample:
        c.call("v1 time-off by id", "GET", f"/v1/company/time-offs/{i}", None, tok1, expect=(200,))
    c.call("v1 time-off unknown id", "GET", "/v1/company/time-offs/999999999", None, tok1, expect=(404,), source="spec 404")
    c.call("v1 time-off-types", "GET", "/v1/company/time-off-types", None, tok1, expect=(200,))
    c.call("v1 time-off-types paged", "GET", "/v1/company/time-off-types", [("limit", "200"), ("offset", "0")], tok1, expect=(200,))
    c.call("v1 document-categories", "GET", "/v1/company/document-categories", None, tok1, expect=(200,))

    # ---------------- v1 attendances + projects (retired upstream; served until the switch below)
    say("v1 attendances")
    offset = 0
    while True:
        ex = c.call("v1 attendances page", "GET", "/v1/company/attendances",
                    [("start_date", "2000-01-01"), ("end_date", "2100-01-01"), ("limit", "200"), ("offset", str(offset))], tok1)
        b = ex.json() or {}
        total = (b.get("metadata") or {}).get("total_elements", 0)
        offset += 200
        if ex.status != 200 or not b.get("data") or offset >= total or offset > 200_000:
            break
    c.call("v1 attendances filters", "GET", "/v1/company/attendances",
           [("start_date", "2025-01-01"), ("end_date", "2025-03-31"), ("includePending", "true"), ("updated_from", "2020-01-01T00:00:00"),
            ("updated_to", "2030-01-01T00:00:00"), ("employees[]", str(ids[0])), ("limit", "200"), ("offset", "0")], tok1)
    c.call("v1 attendances no dates", "GET", "/v1/company/attendances", None, tok1, expect=(400, 422), source="personio-api.md §9 (start_date, end_date required)")
    c.call("v1 attendances no token", "GET", "/v1/company/attendances", [("start_date", "2025-01-01"), ("end_date", "2025-01-31")],
           None, expect=(401,), source="spec 401")
    c.call("v1 projects", "GET", "/v1/company/attendances/projects", None, tok1)
    c.admin("PUT", "/options", {"v1_retired": True})
    c.call("v1 attendances retired", "GET", "/v1/company/attendances", [("start_date", "2025-01-01"), ("end_date", "2025-01-31")], tok1,
           expect=(404, 410), source="personio-api.md status table (retired 2026-08-30; answer UNVERIFIED)")
    c.call("v1 projects retired", "GET", "/v1/company/attendances/projects", None, tok1, expect=(404, 410),
           source="personio-api.md status table (retired 2026-08-30; answer UNVERIFIED)")
    c.admin("PUT", "/options", {"v1_retired": False})

    # ---------------- v1 custom reports
    say("v1 custom reports")
    ex = c.call("v1 reports", "GET", "/v1/company/custom-reports/reports", None, tok1, expect=(200,))
    report_ids = [((r.get("attributes") or {}).get("id")) for r in ((ex.json() or {}).get("data") or [])]
    for rid in [r for r in report_ids if isinstance(r, str)]:
        page = 1
        while True:
            ex = c.call("v1 report page", "GET", f"/v1/company/custom-reports/reports/{rid}", [("page", str(page)), ("limit", "20")], tok1, expect=(200,))
            b = ex.json() or {}
            pages = (b.get("metadata") or {}).get("total_pages", 0)
            if ex.status != 200 or page >= pages or page > 1000:
                break
            page += 1
    if report_ids:
        c.call("v1 reports by ids", "GET", "/v1/company/custom-reports/reports", [("report_ids", ",".join(r for r in report_ids if isinstance(r, str)))], tok1, expect=(200,))
    c.call("v1 report unknown id", "GET", "/v1/company/custom-reports/reports/00000000-0000-0000-0000-000000000000", None, tok1,
           expect=(404,), source="spec 404")
    c.call("v1 unknown route", "GET", "/v1/company/no-such-endpoint", None, tok1, expect=(404,))

    # ---------------- v2 auth
    say("v2 auth")
    def token(case: str, fields: dict | None, ctype: str = form, raw: bytes | None = None, expect: tuple[int, ...] = (400,), source: str = V2SPEC_C) -> Exchange:
        body = raw if raw is not None else urllib.parse.urlencode(fields or {}).encode()
        return c.call(case, "POST", "/v2/auth/token", headers={"Content-Type": ctype}, body=body, expect=expect, source=source)

    good = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    ex = token("v2 token", good, expect=(200,), source="")
    tok2 = (ex.json() or {}).get("access_token")
    if ex.status != 200 or not tok2:
        raise CheckError(f"POST /v2/auth/token with the demo credentials answered {ex.status}: {ex.body[:200]!r}")
    token("v2 token wrong secret", {**good, "client_secret": "wrong"})
    token("v2 token unknown client", {**good, "client_id": "nobody"})
    token("v2 token missing parameters", {"grant_type": "client_credentials"})
    token("v2 token unsupported grant type", {**good, "grant_type": "password"})
    token("v2 token invalid scope", {**good, "scope": "no-such-scope"})
    token("v2 token json body", None, "application/json", json.dumps(good).encode())
    ex = token("v2 token scoped", {**good, "scope": "personio:persons:read"}, expect=(200,), source="")
    tok_persons_only = (ex.json() or {}).get("access_token")

    # ---------------- v2 persons + employments
    say("v2 persons")
    person_ids: list[str] = []

    def follow(case: str, path: str, params: list[tuple[str, str]], tok: str, collect: Callable[[dict], None] | None = None, expect=(200,), source="") -> None:
        ex = c.call(case, "GET", path, params, tok, expect=expect, source=source)
        n = 0
        while True:
            b = ex.json()
            if collect and ex.status == 200 and isinstance(b, dict):
                for item in b.get("_data") or []:
                    collect(item)
            nxt = _next_href(ex)
            if not nxt or n > 2000:
                return
            facts["next_links"].append((case, path, params, nxt))
            u = urllib.parse.urlsplit(nxt)
            ex = c.call(case + " (next)", "GET", u.path, u.query, tok, expect=(200,))
            n += 1

    follow("v2 persons", "/v2/persons", [("limit", "50")], tok2, lambda p: person_ids.append(str(p.get("id"))))
    follow("v2 persons default limit", "/v2/persons", [], tok2)
    if not person_ids:
        raise CheckError("GET /v2/persons gave no person ids; cannot crawl further")
    follow("v2 persons limit 7", "/v2/persons", [("limit", "7")], tok2)
    follow("v2 persons id filter", "/v2/persons", [("id", ",".join(person_ids[:3]))], tok2)
    for f in ("created_at.gt", "created_at.lt", "updated_at.gt", "updated_at.lt"):
        val = "2000-01-01T00:00:00Z" if f.endswith(".gt") else "2100-01-01T00:00:00Z"
        follow(f"v2 persons {f}", "/v2/persons", [(f, val), ("limit", "50")], tok2)
    follow("v2 persons updated_at exact", "/v2/persons", [("updated_at", "2000-01-01T00:00:00Z")], tok2)
    follow("v2 persons status", "/v2/persons", [("status", "ACTIVE"), ("limit", "50")], tok2)
    ex = c.call("v2 person by id", "GET", f"/v2/persons/{person_ids[0]}", None, tok2, expect=(200,))
    b = ex.json() or {}
    for k in ("email", "first_name", "last_name"):
        if isinstance(b.get(k), str):
            follow(f"v2 persons {k} filter", "/v2/persons", [(k, b[k])], tok2)
    for pid in person_ids[1:]:
        c.call("v2 person by id", "GET", f"/v2/persons/{pid}", None, tok2, expect=(200,))
    c.call("v2 person unknown id", "GET", "/v2/persons/999999999", None, tok2, expect=(404,), source="spec 404")
    c.call("v2 persons limit 51", "GET", "/v2/persons", [("limit", "51")], tok2, expect=(400,), source=V2SPEC_P)
    c.call("v2 persons limit 0", "GET", "/v2/persons", [("limit", "0")], tok2, expect=(400,), source=V2SPEC_P)
    c.call("v2 persons updated_at.gte", "GET", "/v2/persons", [("updated_at.gte", "2020-01-01T00:00:00Z")], tok2, expect=(400,),
           source=V2SPEC_P + "; personio-api.md §13.1 (unknown operator → 400)")
    c.call("v2 persons id.nooperator", "GET", "/v2/persons", [("id.nooperator", "1")], tok2, expect=(400,), source="spec example '400 List persons using wrong filter format'")
    c.call("v2 persons bad date", "GET", "/v2/persons", [("created_at.lt", "wrong-date-format")], tok2, expect=(400,), source="spec example '400 List persons using wrong filter value'")
    c.call("v2 persons bad cursor", "GET", "/v2/persons", [("cursor", "garbage!")], tok2, expect=(400,), source="personio-api.md §13 (opaque cursor)")
    c.call("v2 persons no token", "GET", "/v2/persons", None, None, expect=(401,), source=HUB)
    c.call("v2 persons bad token", "GET", "/v2/persons", None, "papi-not-a-token", expect=(401,), source=HUB)

    say("v2 employments")
    employment_ids: list[tuple[str, str]] = []
    for pid in person_ids:
        follow("v2 employments", f"/v2/persons/{pid}/employments", [], tok2,
               lambda e, pid=pid: employment_ids.append((pid, str(e.get("id")))))
    pid0 = person_ids[0]
    follow("v2 employments limit 1", f"/v2/persons/{pid0}/employments", [("limit", "1")], tok2)
    for f in ("updated_at.gt", "updated_at.lt"):
        val = "2000-01-01T00:00:00Z" if f.endswith(".gt") else "2100-01-01T00:00:00Z"
        follow(f"v2 employments {f}", f"/v2/persons/{pid0}/employments", [(f, val)], tok2)
    if employment_ids:
        follow("v2 employments id filter", f"/v2/persons/{employment_ids[0][0]}/employments", [("id", employment_ids[0][1])], tok2)
    c.call("v2 employments unknown person", "GET", "/v2/persons/999999999/employments", None, tok2, expect=(404,), source="spec 404")
    c.call("v2 employments limit 51", "GET", f"/v2/persons/{pid0}/employments", [("limit", "51")], tok2, expect=(400,), source=V2SPEC_E)
    c.call("v2 employments updated_at.gte", "GET", f"/v2/persons/{pid0}/employments", [("updated_at.gte", "2020-01-01T00:00:00Z")],
           tok2, expect=(400,), source=V2SPEC_E + " (no .gte operator)")

    # ---------------- v2 endpoints without an official spec file here (common components only)
    say("v2 absences, attendances, projects")
    follow("v2 absence-periods", "/v2/absence-periods", [("limit", "100")], tok2)
    follow("v2 absence-periods filters", "/v2/absence-periods",
           [("person.id", person_ids[0]), ("updated_at.gte", "2000-01-01T00:00:00Z"), ("updated_at.lte", "2100-01-01T00:00:00Z"),
            ("starts_from.date_time.gte", "2000-01-01T00:00:00"), ("ends_at.date_time.lte", "2100-01-01T00:00:00")], tok2)
    c.call("v2 absence-periods limit 101", "GET", "/v2/absence-periods", [("limit", "101")], tok2, expect=(400,), source=HUB + " (1–100)")
    follow("v2 absence-types", "/v2/absence-types", [("limit", "100")], tok2)
    c.call("v2 absence-types limit 101", "GET", "/v2/absence-types", [("limit", "101")], tok2, expect=(400,), source=HUB + " (1–100)")
    follow("v2 attendance-periods", "/v2/attendance-periods", [("limit", "100")], tok2)
    follow("v2 attendance-periods filters", "/v2/attendance-periods",
           [("person.id", person_ids[0]), ("start.date_time.gte", "2000-01-01T00:00:00"), ("end.date_time.lte", "2100-01-01T00:00:00"),
            ("updated_at.gte", "2000-01-01T00:00:00"), ("status", "CONFIRMED")], tok2)
    c.call("v2 attendance-periods limit 101", "GET", "/v2/attendance-periods", [("limit", "101")], tok2, expect=(400,), source=HUB + " (1–100)")
    c.call("v2 attendance-periods limit 200", "GET", "/v2/attendance-periods", [("limit", "200")], tok2, expect=(400,), source=HUB + " (1–100)")
    follow("v2 projects", "/v2/projects", [("limit", "100")], tok2)
    c.call("v2 absence-periods no token", "GET", "/v2/absence-periods", None, None, expect=(401,), source=HUB)
    if tok_persons_only:
        c.call("v2 absence-periods missing scope", "GET", "/v2/absence-periods", None, tok_persons_only, expect=(403,), source=HUB + " (missing scope → 403)")
        c.call("v2 attendance-periods missing scope", "GET", "/v2/attendance-periods", None, tok_persons_only, expect=(403,), source=HUB + " (missing scope → 403)")
        c.call("v2 persons with persons scope", "GET", "/v2/persons", None, tok_persons_only, expect=(200,))
    c.call("v2 unknown route", "GET", "/v2/no-such-endpoint", None, tok2, expect=(404,))
    return facts


RESTRICTED_FLAGS = ["--persons-without-attributes", "--scope", "personio:persons:read"]


def crawl_restricted(c: Client, say: Callable[[str], None]) -> dict:
    """A second sandbox whose credential has only `personio:persons:read` and no whitelisted attributes."""
    facts: dict[str, Any] = {"next_links": []}
    say("restricted credential")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    good = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    ex = c.call("restricted: v2 token", "POST", "/v2/auth/token", headers=form, body=urllib.parse.urlencode(good).encode(), expect=(200,))
    tok = (ex.json() or {}).get("access_token")
    if ex.status != 200 or not tok:
        raise CheckError(f"restricted sandbox: POST /v2/auth/token answered {ex.status}: {ex.body[:200]!r}")
    # Asking for a scope the credential lacks: 400 invalid_scope or a narrower token; which one is UNVERIFIED.
    c.call("restricted: v2 token asking for more scope", "POST", "/v2/auth/token", headers=form,
           body=urllib.parse.urlencode({**good, "scope": "personio:absences:read"}).encode())
    ex = c.call("restricted: v2 persons (no attributes)", "GET", "/v2/persons", [("limit", "50")], tok, expect=(200,))
    ids = []
    while True:
        b = ex.json() or {}
        ids += [str(p.get("id")) for p in b.get("_data") or [] if isinstance(p, dict)]
        nxt = _next_href(ex)
        if not nxt or len(ids) > 100_000:
            break
        facts["next_links"].append(("restricted: v2 persons (no attributes)", "/v2/persons", [], nxt))
        u = urllib.parse.urlsplit(nxt)
        ex = c.call("restricted: v2 persons (no attributes) (next)", "GET", u.path, u.query, tok, expect=(200,))
    for pid in ids[:10]:
        c.call("restricted: v2 person by id (no attributes)", "GET", f"/v2/persons/{pid}", None, tok, expect=(200,))
    for path in ("/v2/absence-periods", "/v2/absence-types", "/v2/attendance-periods", "/v2/projects"):
        c.call(f"restricted: {path} without its scope", "GET", path, None, tok, expect=(403,), source=HUB + " (missing scope → 403)")
    if ids:
        c.call("restricted: employments without their scope", "GET", f"/v2/persons/{ids[0]}/employments", None, tok,
               expect=(403,), source=HUB + " (missing scope → 403)")
    return facts


# ------------------------------------------------------------------------------------------------ validation


@dataclass
class Violation:
    endpoint: str
    spec: str
    kind: str  # status | content-type | schema | undeclared-status | expectation | behaviour | json
    status: int
    message: str
    case: str
    target: str
    norm_path: str = ""
    keyword: str = ""
    erratum: str | None = None


@dataclass
class Tally:
    responses: int = 0
    statuses: dict = field(default_factory=lambda: defaultdict(int))
    violations: int = 0
    tolerated: int = 0
    coverage: str = ""


def _norm(path: Any) -> str:
    out = "$"
    for p in path:
        out += "[*]" if isinstance(p, int) else f".{p}"
    return out


def _media(ct: str) -> str:
    return ct.split(";")[0].strip().lower()


def _undeclared_fields(specs: Specs, spec: str, schema: Any, inst: Any, path: list, out: set, depth: int = 0) -> None:
    """Collects instance fields that the schema does not declare (no additionalProperties given)."""
    if depth > 40 or not isinstance(schema, dict):
        return
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#"):
            return
        schema = specs.get(spec, ref[1:])
        if not isinstance(schema, dict):
            return
    props = dict(schema.get("properties") or {})
    addl = schema.get("additionalProperties")
    for sub in schema.get("allOf") or []:
        s = sub
        while isinstance(s, dict) and "$ref" in s and s["$ref"].startswith("#"):
            s = specs.get(spec, s["$ref"][1:])
        if isinstance(s, dict):
            props.update(s.get("properties") or {})
    if schema.get("oneOf") or schema.get("anyOf"):
        return  # which branch applies is the validator's business
    if isinstance(inst, dict) and (props or schema.get("type") == "object"):
        for k, v in inst.items():
            if k in props:
                _undeclared_fields(specs, spec, props[k], v, path + [k], out, depth + 1)
            elif isinstance(addl, dict):
                _undeclared_fields(specs, spec, addl, v, path + [k], out, depth + 1)
            elif addl is None and props and not re.fullmatch(r"dynamic_\d+", k):  # v1 custom attributes: open by design
                out.add(_norm(path + [k]))
    elif isinstance(inst, list) and isinstance(schema.get("items"), dict):
        for v in inst:
            _undeclared_fields(specs, spec, schema["items"], v, path + [0], out, depth + 1)


def _leaves(err: Any, where: str) -> list[tuple[Any, str]]:
    """The errors to report for err: for oneOf/anyOf, those of the branch that came closest (a branch whose
    discriminating enum fails counts as far), so each can be matched by an erratum on its own."""
    if not err.context:
        return [(err, where)]
    branches: dict[int, list] = defaultdict(list)
    for sub in err.context:
        branches[sub.relative_schema_path[0] if sub.relative_schema_path else 0].append(sub)
    def score(kv: tuple[int, list]) -> tuple[int, int]:
        subs = kv[1]
        shallow_enum = any((s.validator == "enum" and len(s.relative_path) <= 1) or (s.validator == "type" and not s.relative_path) for s in subs)
        return (1 if shallow_enum else 0, len(subs))
    idx, subs = min(branches.items(), key=score)
    here = f" (in {err.validator} branch {idx} at {_norm(err.absolute_path)})"
    out: list[tuple[Any, str]] = []
    for sub in subs:
        out.extend(_leaves(sub, where or here))
    return out


def _short_message(err: Any) -> str:
    """jsonschema's message with a long instance repr cut down."""
    msg = err.message
    r = repr(err.instance)
    if len(r) > 60 and r in msg:
        kind = type(err.instance).__name__
        msg = msg.replace(r, f"<{kind} of {len(err.instance)}>" if hasattr(err.instance, "__len__") else f"<{kind}>")
    return msg if len(msg) <= 220 else msg[:220] + "…"


V2_UNSPECCED = re.compile(r"^/v2/(absence-periods|absence-types|attendance-periods|projects)(/.*)?$")
_V2_BASE = r"/v2/\1"


class Checker:
    def __init__(self, specs: Specs, errata: list[Erratum]) -> None:
        self.specs = specs
        self.errata = errata
        self.tally: dict[str, Tally] = defaultdict(Tally)
        self.violations: list[Violation] = []
        self.undeclared: dict[str, set] = defaultdict(set)

    def _add(self, v: Violation) -> Erratum | None:
        t = self.tally[v.endpoint]
        for e in self.errata:
            if e.matches(v):
                e.used += 1
                v.erratum = e.id
                t.tolerated += 1
                self.violations.append(v)
                return e
        t.violations += 1
        self.violations.append(v)
        return None

    def _schema(self, ex: Exchange, endpoint: str, spec: str, pointer: str, body: Any) -> None:
        seen = set()
        for err in self.specs.validator(spec, pointer).iter_errors(body):
            for leaf, where in _leaves(err, ""):
                path = _norm(leaf.absolute_path)
                msg = _short_message(leaf) + where
                if (path, msg) in seen:
                    continue
                seen.add((path, msg))
                self._add(Violation(endpoint, spec, "schema", ex.status, f"{path}: {msg}", ex.case, ex.target, path, str(leaf.validator)))

    def check(self, ex: Exchange) -> None:
        op = self.specs.find(ex.method, ex.path)
        if op is not None:
            endpoint, spec = op.key, op.spec
        elif V2_UNSPECCED.match(ex.path):
            endpoint, spec = f"{ex.method} {V2_UNSPECCED.sub(_V2_BASE, ex.path)}", "v2-common"
        else:
            endpoint, spec = f"{ex.method} (no spec operation) {ex.path.split('/')[1] if '/' in ex.path else ex.path}", "none"
        t = self.tally[endpoint]
        t.responses += 1
        t.statuses[ex.status] += 1

        if ex.expect and ex.status not in ex.expect:
            self._add(Violation(endpoint, spec, "expectation", ex.status,
                                f"status {ex.status}, expected {'/'.join(map(str, ex.expect))} ({ex.expect_source or 'crawl'})", ex.case, ex.target))

        body = ex.json()
        if ex.body and body is None and _media(ex.content_type).endswith("json"):
            self._add(Violation(endpoint, spec, "json", ex.status, "body is not valid JSON", ex.case, ex.target))
            return

        if op is None:
            if spec == "v2-common":
                t.coverage = "common components only (no official spec file for this endpoint)"
                self._common_v2(ex, endpoint, body)
            else:
                t.coverage = "no operation in the spec files"
            return
        t.coverage = f"{self.specs.files[op.spec]} {op.pointer}"
        responses = op.obj.get("responses") or {}
        code = str(ex.status)
        key = code if code in responses else (code[0] + "XX" if code[0] + "XX" in responses else ("default" if "default" in responses else None))
        if key is None:
            v = Violation(endpoint, spec, "undeclared-status", ex.status,
                          f"status {ex.status} is not declared (declared: {', '.join(sorted(responses))})", ex.case, ex.target)
            e = self._add(v)
            if e is not None and e.validate_with:
                w = e.validate_with
                wspec = w["spec"]
                if w.get("content_type") and _media(ex.content_type) != w["content_type"]:
                    self._add(Violation(endpoint, spec, "content-type", ex.status,
                                        f"content type {ex.content_type!r}, expected {w['content_type']} (per erratum {e.id})", ex.case, ex.target))
                self._schema(ex, endpoint, wspec, w["pointer"], body)
            return
        resp_ptr, resp = self.specs.deref(op.spec, f"{op.pointer}/responses/{_esc(key)}")
        content = resp.get("content") or {}
        if not content:
            return  # the spec declares no body for this status
        mt = _media(ex.content_type)
        if mt not in content:
            self._add(Violation(endpoint, spec, "content-type", ex.status,
                                f"content type {ex.content_type!r} is not declared (declared: {', '.join(content)})", ex.case, ex.target))
            mt = next(iter(content))  # still check the body against the declared schema
        if "schema" not in content[mt]:
            return  # examples only
        ptr = f"{resp_ptr}/content/{_esc(mt)}/schema"
        self._schema(ex, endpoint, op.spec, ptr, body)
        fields: set = set()
        _undeclared_fields(self.specs, op.spec, self.specs.get(op.spec, ptr), body, [], fields)
        self.undeclared[endpoint] |= fields

    def _common_v2(self, ex: Exchange, endpoint: str, body: Any) -> None:
        """v2 endpoints without their own spec: envelope and errors against common-components-v2.json."""
        if ex.status == 200:
            if _media(ex.content_type) != "application/json":
                self._add(Violation(endpoint, "v2-common", "content-type", ex.status, f"content type {ex.content_type!r}, expected application/json", ex.case, ex.target))
            if not (isinstance(body, dict) and isinstance(body.get("_data"), list) and isinstance(body.get("_meta"), dict)):
                self._add(Violation(endpoint, "v2-common", "schema", ex.status, "$: not a {_data: [...], _meta: {...}} envelope", ex.case, ex.target, "$", "envelope"))
                return
            self._schema(ex, endpoint, "v2-common", "/components/schemas/MetaObject", body["_meta"])
        elif ex.status >= 400:
            if _media(ex.content_type) != "application/problem+json":
                self._add(Violation(endpoint, "v2-common", "content-type", ex.status,
                                    f"content type {ex.content_type!r}, expected application/problem+json ({HUB})", ex.case, ex.target))
            self._schema(ex, endpoint, "v2-common", "/components/schemas/ErrorResponse", body)

    def behaviour(self, facts: dict) -> None:
        """Facts no schema expresses, from personio-api.md §13.1: next links carry only cursor (and limit)."""
        for case, path, params, href in facts.get("next_links", []):
            q = urllib.parse.parse_qsl(urllib.parse.urlsplit(href).query, keep_blank_values=True)
            extra = sorted({k for k, _ in q} - {"cursor", "limit"})
            if extra:
                endpoint = next((o.key for o in self.specs.ops if o.method == "GET" and o.regex.match(path)), f"GET {path}")
                self._add(Violation(endpoint, "behaviour", "behaviour", 200,
                                    f"next link echoes {', '.join(extra)} (Personio's carry only cursor/limit: {HUB})", case, href,
                                    keyword="next-link"))


# ------------------------------------------------------------------------------------------------ sandbox process


class Sandbox:
    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd
        self.proc: subprocess.Popen | None = None
        self.stderr: list[str] = []

    def start(self, timeout: float = 60.0) -> str:
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        except OSError as e:
            raise CheckError(f"cannot start the sandbox {self.cmd[0]}: {e}") from e
        assert self.proc.stdout and self.proc.stderr
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()  # type: ignore[union-attr]
        found: list[str] = []

        def read() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                m = re.search(r"listening on (http://\S+)", line)
                if m and not found:
                    found.append(m.group(1))

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.02)
        if not found:
            self.stop()
            raise CheckError(f"the sandbox ({' '.join(self.cmd)}) did not report its address: {''.join(self.stderr[-20:]).strip()}")
        return found[0]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# ------------------------------------------------------------------------------------------------ report


def report(chk: Checker, errata: list[Erratum], verbose: bool, elapsed: float, out=sys.stdout) -> int:
    p = lambda s="": print(s, file=out)  # noqa: E731
    total = sum(t.responses for t in chk.tally.values())
    bad = [v for v in chk.violations if v.erratum is None]
    tolerated = [v for v in chk.violations if v.erratum is not None]
    p(f"contract: {total} responses from {len(chk.tally)} endpoints in {elapsed:.1f} s")
    p()
    w = max(len(k) for k in chk.tally) if chk.tally else 10
    p(f"  {'endpoint':<{w}}  {'responses':>9}  {'violations':>10}  {'tolerated':>9}  statuses")
    for k in sorted(chk.tally):
        t = chk.tally[k]
        st = " ".join(f"{s}×{n}" for s, n in sorted(t.statuses.items()))
        p(f"  {k:<{w}}  {t.responses:>9}  {t.violations:>10}  {t.tolerated:>9}  {st}")
    p()
    partial = sorted(k for k, t in chk.tally.items() if t.coverage and not t.coverage.startswith(("personio", "v2/", "common-comp")))
    if partial:
        p("coverage notes:")
        for k in partial:
            p(f"  {k}: {chk.tally[k].coverage}")
        p()
    if tolerated:
        by = defaultdict(int)
        for v in tolerated:
            by[v.erratum] += 1
        p("tolerated by errata: " + ", ".join(f"{k} ×{n}" for k, n in sorted(by.items())))
    unused = [e.id for e in errata if e.used == 0]
    if unused:
        p(f"errata that matched nothing in this crawl (stale? keep the list short): {', '.join(unused)}")
    if chk.undeclared:
        p()
        p("fields the spec does not declare (not violations; the spec's schemas are open):")
        for k in sorted(chk.undeclared):
            if chk.undeclared[k]:
                fs = sorted(chk.undeclared[k])
                p(f"  {k}: {', '.join(fs[:25])}{' …' if len(fs) > 25 else ''}")
    if bad:
        p()
        p(f"VIOLATIONS ({len(bad)}):")
        groups: dict[tuple, list[Violation]] = defaultdict(list)
        for v in bad:
            groups[(v.endpoint, v.kind, v.status, v.norm_path or v.message, v.keyword)].append(v)
        for (endpoint, kind, status, _, _), vs in sorted(groups.items(), key=lambda kv: kv[0][:3]):
            v = vs[0]
            more = f" (×{len(vs)})" if len(vs) > 1 else ""
            p(f"  [{kind}] {endpoint} → {status}{more}: {v.message}")
            p(f"      e.g. {v.case}: {v.target[:160]}")
            if verbose:
                for o in vs[1:6]:
                    p(f"      also {o.case}: {o.target[:160]}")
    p()
    kinds = len({(v.endpoint, v.kind, v.status, v.norm_path or v.message, v.keyword) for v in bad})
    p(f"contract: {len(chk.tally)} endpoints, {total} responses, {len(bad)} violations ({kinds} distinct), "
      f"{len(tolerated)} tolerated by {len(errata) - len(unused)} errata")
    return 1 if bad else 0


def self_test(specs: Specs, errata: list[Erratum]) -> int:
    """Planted responses: each must give exactly the expected (kind, tolerated) outcome."""
    person = specs.get("v2-persons", "/components/examples/PersonsResponse/value")
    person = {**person, "custom_attributes": [{**a, "type": "STRING"} for a in person["custom_attributes"]]}
    employment = specs.get("v2-employments", "/components/examples/EmploymentResponse/value")
    problem = {"personio_trace_id": "t", "timestamp": "2026-01-01T00:00:00Z",
               "errors": [{"title": "Bad request", "detail": "x", "type": "https://developer.personio.de/reference/errors#common.bad_request"}]}
    oauth = {"error": "invalid_client", "error_description": "x", "timestamp": "2026-01-01T00:00:00Z", "trace_id": "t"}
    pj, aj = "application/problem+json", "application/json"

    def ex(case: str, method: str, path: str, status: int, ct: str, body: Any, expect: tuple[int, ...] | None = None, query: str = "") -> Exchange:
        return Exchange(case, method, path, query, status, ct, json.dumps(body).encode(), {}, expect)

    # (exchange, expected set of (kind, tolerated) outcomes)
    cases = [
        (ex("valid person", "GET", "/v2/persons/1", 200, aj, person), set()),
        (ex("gender enum", "GET", "/v2/persons/1", 200, aj, {**person, "gender": "ROBOT"}), {("schema", False)}),
        (ex("person list", "GET", "/v2/persons", 200, aj, {"_data": [person], "_meta": {"links": {}}}), set()),
        (ex("token error as 401", "POST", "/v2/auth/token", 401, aj, oauth), {("undeclared-status", False)}),
        (ex("token error as json", "POST", "/v2/auth/token", 400, aj, oauth), {("content-type", False)}),
        (ex("token error ok", "POST", "/v2/auth/token", 400, pj, oauth), set()),
        (ex("limit 51 accepted", "GET", "/v2/persons", 200, aj, {"_data": [], "_meta": {}}, (400,), "limit=51"), {("expectation", False)}),
        (ex("persons 401", "GET", "/v2/persons", 401, pj, problem), {("undeclared-status", True)}),
        (ex("persons 401 as json", "GET", "/v2/persons", 401, aj, problem), {("undeclared-status", True), ("content-type", False)}),
        # the spec's own example has employment_end_date: null (erratum v2-employment-absent-dates-null)
        (ex("open employment", "GET", "/v2/persons/1/employments/x", 200, aj, employment), {("schema", True)}),
        (ex("employment without start", "GET", "/v2/persons/1/employments/x", 200, aj, {**employment, "employment_start_date": None}),
         {("schema", True), ("schema", False)}),
        (ex("v1 employee list", "GET", "/v1/company/employees", 200, aj,
            {"success": True, "metadata": {"total_elements": 0, "current_page": 0, "total_pages": 0}, "offset": 0, "limit": 50, "data": []}),
         {("schema", True)}),
        (ex("v1 metadata without total_pages", "GET", "/v1/company/employees", 200, aj,
            {"success": True, "metadata": {"total_elements": 0, "current_page": 0}, "data": []}),
         {("schema", True), ("schema", False)}),
        (ex("v1 401", "GET", "/v1/company/employees", 401, aj, {"success": False, "error": {"code": 401, "message": "x"}}),
         {("undeclared-status", True)}),
        (ex("v1 401 wrong body", "GET", "/v1/company/employees", 401, aj, {"success": "no", "error": {"code": 401, "message": "x"}}),
         {("undeclared-status", True), ("schema", False)}),
        (ex("absences envelope", "GET", "/v2/absence-periods", 200, aj, {"items": []}), {("schema", False)}),
        (ex("absences error as json", "GET", "/v2/absence-periods", 403, aj, problem), {("content-type", False)}),
    ]
    failed = 0
    for exch, want in cases:
        chk = Checker(specs, errata)
        chk.check(exch)
        got = {(v.kind, v.erratum is not None) for v in chk.violations}
        ok = got == want
        failed += not ok
        print(f"contract self-test: {'ok  ' if ok else 'FAIL'} {exch.case}" + ("" if ok else f": got {sorted(got)}, want {sorted(want)}"))
    chk = Checker(specs, errata)
    chk.behaviour({"next_links": [("echo", "/v2/persons", [], "http://x/v2/persons?cursor=a&updated_at.gt=1")]})
    ok = [v.kind for v in chk.violations] == ["behaviour"]
    failed += not ok
    print(f"contract self-test: {'ok  ' if ok else 'FAIL'} next link echoing a filter")
    print(f"contract self-test: {len(cases) + 1 - failed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    global CLIENT_ID, CLIENT_SECRET
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec-dir", required=True, type=Path)
    ap.add_argument("--errata", type=Path, default=Path(__file__).with_name("errata.yaml"))
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--sandbox", nargs=argparse.REMAINDER, help="command that serves the sandbox and prints 'listening on URL'")
    g.add_argument("--base-url", help="an already running sandbox (see --client-id, --client-secret)")
    g.add_argument("--replay", type=Path, help="validate the exchanges a --dump wrote, without a sandbox")
    g.add_argument("--self-test", action="store_true", help="check the checker on planted responses")
    ap.add_argument("--client-id", default=CLIENT_ID, help="with --base-url: the sandbox's client id")
    ap.add_argument("--client-secret", default=CLIENT_SECRET, help="with --base-url: the sandbox's client secret")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--dump", type=Path, help="write every exchange and crawl fact (JSON) here, for --replay")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    sb: Sandbox | None = None
    try:
        specs = Specs(a.spec_dir)
        errata = load_errata(a.errata)
        if a.self_test:
            return self_test(specs, errata)
        if a.replay:
            try:
                saved = json.loads(a.replay.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise CheckError(f"cannot read {a.replay}: {e}") from e
            log = [Exchange(**{**x, "body": x["body"].encode("utf-8"), "expect": tuple(x["expect"]) if x["expect"] else None})
                   for x in saved["exchanges"]]
            facts = saved["facts"]
            print(f"contract: replaying {len(log)} exchanges from {a.replay}; spec files in {a.spec_dir}; {len(errata)} errata")
        else:
            if a.base_url:
                base = a.base_url
                CLIENT_ID, CLIENT_SECRET = a.client_id, a.client_secret
            else:
                sb = Sandbox(a.sandbox + ["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
                base = sb.start()
            print(f"contract: sandbox at {base}; spec files in {a.spec_dir}; {len(errata)} errata")
            client = Client(base)
            say = (lambda s: print(f"contract: crawling {s}")) if a.verbose else (lambda s: None)
            facts = crawl(client, say)
            log = client.log
            if sb:
                sb.stop()
                sb = Sandbox(a.sandbox + ["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET] + RESTRICTED_FLAGS)
                client2 = Client(sb.start())
                facts2 = crawl_restricted(client2, say)
                facts["next_links"] += facts2["next_links"]
                log = log + client2.log
                sb.stop()
                sb = None
            else:
                print("contract: --base-url: the restricted-credential crawl (a second sandbox) is skipped")
        t_crawl = time.monotonic() - t0
        if a.dump:
            exchanges = [{**ex.__dict__, "body": ex.body.decode("utf-8", "replace")} for ex in log]
            a.dump.write_text(json.dumps({"exchanges": exchanges, "facts": facts}), encoding="utf-8")
        chk = Checker(specs, errata)
        for ex in log:
            chk.check(ex)
        chk.behaviour(facts)
        slow = sorted(log, key=lambda e: -e.seconds)[:3]
        print(f"contract: {'replay load' if a.replay else 'crawl'} {t_crawl:.1f} s "
              f"(slowest requests: {', '.join(f'{e.case} {e.seconds:.2f} s' for e in slow)}), "
              f"validation {time.monotonic() - t0 - t_crawl:.1f} s")
        return report(chk, errata, a.verbose, time.monotonic() - t0)
    except CheckError as e:
        print(f"contract: ERROR: {e}", file=sys.stderr)
        return 2
    finally:
        if sb:
            sb.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
