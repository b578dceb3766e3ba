# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Masking of secret values in text a module returns: command lines, log lines, env lists,
connection strings, SQL.

Every module that returns text it did not write itself (a process command line, a container's
log, a pod template in a diff, a query) passes it through here first. The rule is by name:
a value whose key looks like a secret (password, token, secret, key, credential, DSN...) is
replaced by MASK, and so are the credentials inside URLs/DSNs. Masking is one-way and keeps
the shape of the text, so an on-call engineer still sees which option was set.

Private to this collection (underscore name): no compatibility promise to other collections.
"""

from __future__ import annotations

import re
import typing as t

MASK = "********"

# Key names whose values are secrets, searched in the lower-cased name: DB_PASSWORD, api_token,
# clientSecret, --auth-key, PGPASSWORD, stripe_webhook_secret, --requirepass, masterauth...
_SECRET_PART = re.compile(
    r"passw|passwd|pwd|secret|token|credential|dsn|requirepass|masterauth|"
    r"(?:api|private|access|auth|signing|encryption|master)[_-]?key|auth$"
)
# Names that contain such a part but hold no secret.
_NOT_SECRET = frozenset({"auth_method", "auth_type", "auth_mode", "authmethod", "token_type",
                         "token_ttl", "password_encryption", "pwd_dir"})
# A key as it stands in text: --opt, KEY, key.sub, "key" (JSON).
# Only secret-looking keys match, so a harmless outer key (`config: API_KEY=x`, `env=DB_PASSWORD=x`)
# never swallows a secret assignment nested in its value.
_KEY = (r"-{0,2}[A-Za-z0-9_.-]*?(?:passw|passwd|pwd|secret|token|credential|dsn|requirepass|masterauth|"
        r"(?:api|private|access|auth|signing|encryption|master)[_-]?key)[A-Za-z0-9_.-]*"
        r"|-{0,2}[A-Za-z0-9_.-]*auth(?![A-Za-z0-9_.-])")

# user:password@ inside a URL or DSN (postgresql://u:pw@h, redis://:pw@h, amqp://u:pw@h).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s'\"]*):(?P<pw>[^@/\s'\"]+)@", re.I)
# A lone token as a URL's user part: https://TOKEN@host/ (GitHub-style token URLs).
_URL_TOKEN = re.compile(r"(?P<scheme>\bhttps?://)(?P<token>[^:/@\s'\"]{16,})@", re.I)
# key=value, key: value, --key=value, KEY="value", key='value', "key": "value".
_ASSIGNMENT = re.compile(
    r"(?P<q>\"?)(?P<key>(?<![A-Za-z0-9_.-])(?:" + _KEY + r"))(?P=q)"
    # `:` but not `::` (a SQL cast such as token::text) nor `://` (a URL).
    r"(?P<sep>\s*=\s*|\s*:(?![:/])\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&'\"}]+)",
    re.I,
)
# HTTP Authorization headers and bearer tokens.
_BEARER = re.compile(r"(?P<lead>\b(?:bearer|basic|token)\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})", re.I)


def is_secret_name(name: t.Any) -> bool:
    """True when a key, env var or option name looks like it holds a secret."""
    text = str(name or "").strip().lstrip("-").lower()
    if not text or text in _NOT_SECRET:
        return False
    return bool(_SECRET_PART.search(text))


def _mask_assignment(match: re.Match) -> str:
    key = match.group("key")
    if not is_secret_name(key):
        return match.group(0)
    value = match.group("value")
    quote = value[0] if value[:1] in "\"'" else ""
    return f"{match.group('q')}{key}{match.group('q')}{match.group('sep')}{quote}{MASK}{quote}"


def mask_text(text: t.Any) -> t.Any:
    """Mask secrets in free text (a log line, a command line, a DSN). Non-strings pass through."""
    if not isinstance(text, str) or not text:
        return text
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{MASK}@", text)
    text = _URL_TOKEN.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _BEARER.sub(lambda m: f"{m.group('lead')}{MASK}", text)
    return _ASSIGNMENT.sub(_mask_assignment, text)


# Short options that take a password, by program: `redis-cli -a PW` / `-aPW`, `mysql -pPW`.
# `-p` means a port for most other programs, so the rule is only applied to these.
_SHORT_SECRET_OPTIONS = {
    "redis-cli": ("-a",),
    "redis-benchmark": ("-a",),
    "mysql": ("-p",),
    "mysqldump": ("-p",),
    "mysqladmin": ("-p",),
    "mariadb": ("-p",),
    "mariadb-dump": ("-p",),
    "sshpass": ("-p",),
}


def mask_argv(argv: t.Sequence[str]) -> list[str]:
    """Mask an argument vector: `--password VALUE` (value in the next word), `--token=VALUE`,
    URLs with credentials, and the password short options of the programs that have one
    (`redis-cli -a PW`, `mysql -pPW`); elsewhere `-pVALUE` is left alone (a port, mostly)."""
    program = str(argv[0]).rsplit("/", 1)[-1] if argv else ""
    short = _SHORT_SECRET_OPTIONS.get(program, ())
    masked: list[str] = []
    hide_next = False
    for index, word in enumerate(argv):
        if hide_next:
            masked.append(MASK)
            hide_next = False
            continue
        if index and word in short:
            masked.append(word)
            hide_next = True
            continue
        attached = next((opt for opt in short if index and word.startswith(opt) and len(word) > len(opt)), None)
        if attached:
            masked.append(attached + MASK)
            continue
        if word.startswith("-") and "=" not in word and is_secret_name(word):
            masked.append(word)
            hide_next = True
            continue
        masked.append(mask_text(word))
    return masked


def mask_env(env: t.Iterable[t.Mapping[str, t.Any]]) -> list[dict[str, t.Any]]:
    """Mask a container's env list: a literal `value` is never kept for a secret-looking name,
    and values of any name are masked inside (URLs with credentials). `valueFrom` stays (it is a
    reference, not the secret)."""
    masked = []
    for entry in env or []:
        entry = dict(entry)
        if "value" in entry and entry["value"] is not None:
            entry["value"] = MASK if is_secret_name(entry.get("name")) else mask_text(str(entry["value"]))
        masked.append(entry)
    return masked


def mask_mapping(data: t.Any) -> t.Any:
    """Recursively mask a JSON-like structure: values under secret-looking keys, and strings."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key == "env" and isinstance(value, list):
                out[key] = mask_env(value)
            elif is_secret_name(key) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
                out[key] = MASK
            else:
                out[key] = mask_mapping(value)
        return out
    if isinstance(data, list):
        return [mask_mapping(item) for item in data]
    if isinstance(data, str):
        return mask_text(data)
    return data
