"""A rendered configuration checked by nginx itself (`nginx -t`, with stand-in certificates),
and nginx's messages explained by the server and location of the line they name."""

from __future__ import annotations

import datetime
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certbotless.acme.keys import private_key_pem
from certbotless.edge.mounts import NGINX_CONF_TARGET, SNIPPETS_DIR


class NginxConfigError(Exception):
    """`nginx -t` rejected a rendered configuration; the message is nginx's own."""


_PLACE_RE = re.compile(r"(/[^\s:]*\.conf):([0-9]+)", re.ASCII)
# A route's named location says its path in a comment: `location @certbotless_route_1 {  # /x`.
_CONTEXT_RE = re.compile(r"^\s*(server_name|location)\s+([^{;]+)(?:\{\s*#\s*(.+))?")


def explain_nginx_error(message: str, files: str | Mapping[str, str]) -> str:
    """nginx's message, plus the server and location of the line it names, so the operator
    knows which route (and so which service's labels) to look at. `files`: target path → text
    (or nginx.conf's text alone)."""
    match = _PLACE_RE.search(message)
    if match is None:
        return message
    path, number = match.group(1), int(match.group(2))
    text = _file_named(path, {NGINX_CONF_TARGET: files} if isinstance(files, str) else files)
    if text is None:
        return message
    lines = text.splitlines()
    context: dict[str, str] = {}
    for line in lines[: max(number, 0)]:
        found = _CONTEXT_RE.match(line)
        if found:
            if found.group(1) == "server_name":
                context = {"server": found.group(2).strip()}
            else:
                context["location"] = (found.group(3) or found.group(2)).strip()
    where = ", ".join(f"{key} {value}" for key, value in context.items())
    offending = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    return f"{message}\n  at line {number}: {offending}" + (f" ({where})" if where else "")


def _file_named(path: str, files: Mapping[str, str]) -> str | None:
    """The file nginx names: by its path, or else by the only one of that file name."""
    if path in files:
        return files[path]
    same_name = [text for target, text in files.items() if Path(target).name == Path(path).name]
    return same_name[0] if len(same_name) == 1 else None


_CERT_PATH_RE = re.compile(r"\bssl_certificate(_key)?\s+([^\s;]+);", re.ASCII)
_TICKET_KEY_RE = re.compile(r"\bssl_session_ticket_key\s+[^\s;]+;", re.ASCII)
# Forward auth's TLS files (Swarm secrets the edge mounts under SNIPPETS_DIR).
_PROXY_TLS_RE = re.compile(
    r"\bproxy_ssl_(certificate(_key)?|trusted_certificate)\s+(" + re.escape(SNIPPETS_DIR)
    + r"/[^\s;]+);", re.ASCII
)  # fmt: skip


def certificate_paths(files: Mapping[str, str]) -> dict[str, bool]:
    """Every certificate chain and key a configuration names → whether it is a key."""
    found = {
        match.group(2): bool(match.group(1))
        for text in files.values()
        for match in _CERT_PATH_RE.finditer(text)
        if "$" not in match.group(2)  # named by SNI (edge/certificates.py): not one file
    }
    for text in files.values():
        found.update({m.group(3): bool(m.group(2)) for m in _PROXY_TLS_RE.finditer(text)
                      if m.group(3) not in files})  # fmt: skip
    return found


def moved_paths(text: str, moves: Mapping[str, str]) -> str:
    """`text` with every absolute path under a directory of `moves` (directory → where it
    went) pointed at the new place; the longest directory wins when they nest."""
    if not moves:
        return text
    directories = sorted(moves, key=len, reverse=True)
    under = re.compile(
        r"(?<![\w./-])(" + "|".join(re.escape(d.rstrip("/")) for d in directories) + r")(?=/)"
    )
    by_directory = {d.rstrip("/"): moves[d].rstrip("/") for d in directories}
    return under.sub(lambda match: by_directory[match.group(1)], text)


def validate_nginx_conf(
    files: str | Mapping[str, str],
    *,
    command: Sequence[str] = ("nginx",),
    root: Path = Path("/"),
) -> tuple[str, ...]:
    """Run `nginx -t` on a configuration (target path → text, as `render_nginx_conf` gives it;
    or nginx.conf's text alone) with stand-in certificates at the paths it names. Raises
    NginxConfigError when nginx rejects it; returns nginx's warnings (each explained like an
    error), which an edge would print at every start.

    Secrets cannot be read back from the swarm, so every certificate and key is one self-signed
    stand-in pair in a scratch directory, where the included files go too; syntax, includes and
    TLS settings are what this proves (the edge image's check proves the real pairs).

    `command` is the argv that runs nginx and `root` the directory that nginx sees as `/`: with
    `command=("chroot", root, "nginx")` the scratch tree goes under `root`/tmp, and nginx is given
    the paths as it sees them.
    """
    files = {NGINX_CONF_TARGET: files} if isinstance(files, str) else dict(files)
    scratch_parent = None if root == Path("/") else root / "tmp"
    with tempfile.TemporaryDirectory(prefix="certbotless-nginx-", dir=scratch_parent) as scratch:
        seen = PurePosixPath("/") / Path(scratch).relative_to(root)  # the scratch tree to nginx
        _write_scratch_tree(files, root, seen)
        result = subprocess.run(
            [*command, "-t", "-q", "-e", "stderr", "-p", f"{seen}/", "-c", f"{seen}/nginx.conf",
             "-g", f"pid {seen}/nginx.pid;"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    output = (
        result.stderr.strip()
        .replace(f"{seen}/nginx.conf", NGINX_CONF_TARGET)
        .replace(f"{seen}/certbotless/", f"{SNIPPETS_DIR}/")
        .replace(str(seen), "<scratch>")
    )
    if result.returncode != 0 or "[emerg]" in output:
        raise NginxConfigError(explain_nginx_error(output, files))
    return tuple(
        explain_nginx_error(line, files) for line in output.splitlines() if "[warn]" in line
    )


def _write_scratch_tree(files: Mapping[str, str], root: Path, seen: PurePosixPath) -> None:
    """The configuration under `seen` (as nginx sees it; `root` / `seen` here), its paths
    rewritten there, and every certificate and key it names pointed at one stand-in pair
    (lines keep their numbers, so nginx's messages still name the right ones)."""
    stand_in = root / seen.relative_to("/") / "stand-in"
    stand_in.mkdir()
    chain_pem, key_pem = stand_in_certificate()
    (stand_in / "fullchain.pem").write_bytes(chain_pem)
    (stand_in / "privkey.pem").write_bytes(key_pem)
    (stand_in / "ticket.key").write_bytes(bytes(80))  # a session ticket key's size

    # A path named by a variable (certificates read on first use) becomes the stand-in too:
    # nginx -t then loads it, and a test's nginx serves it for every name.
    def to_stand_in(match: re.Match[str]) -> str:
        file = "privkey.pem" if match.group(1) else "fullchain.pem"
        return f"ssl_certificate{match.group(1) or ''} {seen}/stand-in/{file};"

    def proxy_stand_in(match: re.Match[str]) -> str:
        if match.group(3) in files:  # given (a test's): kept
            return match.group(0)
        file = "privkey.pem" if match.group(2) else "fullchain.pem"
        return f"proxy_ssl_{match.group(1)} {seen}/stand-in/{file};"

    for target, text in files.items():
        text = _PROXY_TLS_RE.sub(proxy_stand_in, _CERT_PATH_RE.sub(to_stand_in, text))
        text = _TICKET_KEY_RE.sub(f"ssl_session_ticket_key {seen}/stand-in/ticket.key;", text)
        local = moved_paths(text, {SNIPPETS_DIR: f"{seen}/certbotless"})
        if target == NGINX_CONF_TARGET:
            relative = PurePosixPath("nginx.conf")
        else:
            relative = PurePosixPath("certbotless") / PurePosixPath(target).relative_to(
                SNIPPETS_DIR
            )
        destination = root / seen.relative_to("/") / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(local)


@cache
def stand_in_certificate() -> tuple[bytes, bytes]:
    """One self-signed pair, made once per process, for every certificate a check names."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certbotless validation")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM), private_key_pem(key)
