# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbouncer: the [databases] section of pgbouncer.ini (which server each entry points at) and the
admin console (SHOW DATABASES, RELOAD). Private; used by pgbouncer_repoint.

The text work (parse, retarget) is pure, so every branch is unit-tested; passwords that an entry may
carry never leave this file (entries are described by name, host and port only).
"""

from __future__ import annotations

import re
import typing as t

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_ENTRY = re.compile(r"^(\s*)([^=;#\s][^=]*?)(\s*=\s*)(.*?)(\s*)$")
_PAIR = re.compile(r"(\w+)\s*=\s*('(?:[^'\\]|\\.|'')*'|[^\s']+)")


class ConfigError(ValueError):
    """The file cannot be re-pointed safely (no [databases] section, a named entry is missing...)."""


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'").replace("\\'", "'")
    return value


def entry_target(connstr: str) -> tuple[str | None, int | None]:
    """host and port of a [databases] entry's connection string (pgbouncer's defaults: no host =
    the unix socket, port 5432)."""
    pairs = {k.lower(): _unquote(v) for k, v in _PAIR.findall(connstr)}
    try:
        port = int(pairs.get("port", "5432"))
    except ValueError:
        port = None
    return pairs.get("host") or None, port


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[^\s'\\]+", value) else "'" + value.replace("'", "''") + "'"


def retarget(connstr: str, host: str, port: int) -> str:
    """The connection string with host and port replaced (added when absent); every other key
    (dbname, user, password, pool settings) kept as written."""
    out = connstr
    for key, value in (("host", host), ("port", str(port))):
        pattern = re.compile(rf"(?i)(?<![\w]){key}\s*=\s*('(?:[^'\\]|\\.|'')*'|[^\s']+)")
        if pattern.search(out):
            out = pattern.sub(lambda _m, k=key, v=value: f"{k}={_quote(v)}", out, count=1)
        else:
            out = f"{out} {key}={_quote(value)}".strip()
    return out


def databases(text: str) -> list[dict[str, t.Any]]:
    """The [databases] entries: name, line index, host, port (the connection string stays here)."""
    out: list[dict[str, t.Any]] = []
    section = None
    for index, line in enumerate(text.splitlines()):
        match = _SECTION.match(line)
        if match:
            section = match.group(1).strip().lower()
            continue
        if section != "databases" or not line.strip() or line.lstrip().startswith((";", "#")):
            continue
        entry = _ENTRY.match(line)
        if entry:
            host, port = entry_target(entry.group(4))
            out.append({"name": entry.group(2).strip(), "line": index, "host": host, "port": port})
    return out


def has_databases_section(text: str) -> bool:
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match and match.group(1).strip().lower() == "databases":
            return True
    return False


def target_name(host: str | None, port: int | None) -> str:
    return f"{host or '(unix socket)'}:{port}"


def plan_repoint(text: str, host: str, port: int, names: list[str] | None = None) -> tuple[str, list[dict]]:
    """(new text, changes): every selected entry (all of them when names is None) pointed at host:port.
    A change is {name, before, after} with host:port only. Raises ConfigError when the file has no
    [databases] section or a named entry is absent."""
    if not has_databases_section(text):
        raise ConfigError("the file has no [databases] section: is it a pgbouncer.ini?")
    entries = databases(text)
    if names is not None:
        missing = sorted(set(names) - {e["name"] for e in entries})
        if missing:
            raise ConfigError(f"no [databases] entry named {', '.join(missing)} (entries: "
                              f"{', '.join(e['name'] for e in entries) or 'none'})")
    selected = [e for e in entries if names is None or e["name"] in names]
    if not selected:
        raise ConfigError("the [databases] section has no entry to re-point")
    lines = text.splitlines(keepends=True)
    changes = []
    for e in selected:
        if e["host"] == host and e["port"] == port:
            continue
        line = lines[e["line"]]
        ending = line[len(line.rstrip("\r\n")):]
        m = _ENTRY.match(line.rstrip("\r\n"))
        if m is None:  # databases() matched this very line
            raise ConfigError(f"line {e['line'] + 1} of [databases] does not parse")
        lines[e["line"]] = f"{m.group(1)}{m.group(2)}{m.group(3)}{retarget(m.group(4), host, port)}{m.group(5)}{ending}"
        changes.append({"name": e["name"], "before": target_name(e["host"], e["port"]),
                        "after": target_name(host, port)})
    return "".join(lines), changes


def stale_live(rows: list[dict[str, t.Any]], entries: list[dict[str, t.Any]], host: str, port: int,
               names: list[str] | None = None) -> list[dict[str, t.Any]]:
    """Rows of SHOW DATABASES that the selected entries govern and that still point elsewhere.
    An auto-created database (from the '*' entry) is governed by '*'; the admin database is not."""
    explicit = {e["name"] for e in entries}
    selected = explicit if names is None else set(names)
    out = []
    for row in rows:
        name = row.get("name")
        if name == "pgbouncer":
            continue
        governed = name in selected if name in explicit else "*" in selected
        if governed and (row.get("host") != host or row.get("port") != port):
            out.append({"name": name, "live": target_name(row.get("host"), row.get("port"))})
    return out
