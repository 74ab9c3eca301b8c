"""`certbotless lint --render DIR`: the configuration a pass would roll for stack files, written
where the edge mounts each file, checked by the real `nginx -t` and answered by a real nginx
on loopback."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certbotless import cli
from certbotless.edge.tree import EdgeTree, TreeError, write_tree
from certbotless.edge.validation import moved_paths
from certbotless.proxy_protocol import connect_to_edge_task
from tests.support.paths import REPO
from tests.support.ports import unused_ports

STACKS = [str(REPO / "stacks" / "seed-traefik.yml"), str(REPO / "stacks" / "native-access.yml")]
HOSTS = ("tapi.example.test", "tsite.example.test", "tnlp.example.test", "tdash.example.test",
         "native.example.test", "usersfile.example.test")  # fmt: skip
needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")


@pytest.fixture(autouse=True)
def _both_dialects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTBOTLESS_LABEL_DIALECTS", "certbotless,traefik")
    # seed-traefik.yml's `errors` service has no router: Traefik's default rule routes it.
    monkeypatch.setenv(
        "CERTBOTLESS_TRAEFIK_DEFAULT_RULE", "Host(`{{ normalize .Name }}.example.test`)"
    )
    for name in ("CERTBOTLESS_NGINX_CONF", "CERTBOTLESS_CERTS_DIR", "CERTBOTLESS_FRONT_SUBNET"):
        monkeypatch.delenv(name, raising=False)


def _render(tree: Path, *options: str) -> int:
    return cli.main(["lint", "--no-docker-cli", "--render", str(tree), *options, *STACKS])


def _files(tree: Path) -> dict[str, str]:
    """Target as the edge mounts it → text, for every file under `tree`."""
    return {
        "/" + str(path.relative_to(tree)): path.read_text()
        for path in sorted(tree.rglob("*"))
        if path.is_file()
    }


def test_every_file_lands_at_its_mount_target_as_deployed(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    assert _render(tree) == 0
    files = _files(tree)
    assert "include /etc/nginx/certbotless/hosts/*.conf;" in files["/etc/nginx/nginx.conf"]
    hosts_files = [target for target in files if target.startswith("/etc/nginx/certbotless/hosts/")]
    assert hosts_files and all(target.endswith(".conf") for target in hosts_files)
    served = "".join(files[target] for target in hosts_files)
    for host in HOSTS:  # every certificate as if issued: each host has its 443 server
        assert re.search(rf"listen 443 ssl[^;]*;\n\s+server_name {re.escape(host)};", served)
        chain = files[f"/etc/nginx/certs/{host}/fullchain.pem"]
        assert x509.load_pem_x509_certificate(chain.encode()).subject  # a real self-signed one
        assert "PRIVATE KEY" in files[f"/etc/nginx/certs/{host}/privkey.pem"]
    # The paths are the edge's own: nothing points into the tree without --rebase.
    assert str(tree) not in "".join(files.values())
    secret = files["/etc/nginx/certbotless/htpasswd-secrets/native-access_htpasswd_82e847d5"]
    assert secret.startswith("# Placeholder for the Swarm secret native-access_htpasswd_82e847d5")


def test_a_directory_with_files_in_it_is_refused(tmp_path: Path) -> None:
    (tmp_path / "stale.conf").write_text("server {}\n")
    assert _render(tmp_path) == 2
    with pytest.raises(TreeError, match="not an empty directory"):
        write_tree(EdgeTree({}, {}), tmp_path, "/etc/nginx/certs", rebase=False)


def test_rebase_without_render_is_refused() -> None:
    assert cli.main(["lint", "--no-docker-cli", "--rebase", *STACKS]) == 2


def test_paths_move_only_where_a_whole_directory_matches() -> None:
    moves = {"/etc/nginx/certbotless": "/t/etc/nginx/certbotless", "/etc/nginx/certs": "/t/c"}
    text = (
        "include /etc/nginx/certbotless/hosts/*.conf; ssl_certificate /etc/nginx/certs/a/f;"
        " include /etc/nginx/mime.types; x /etc/nginx/certbotless-other/y; /etc/nginx/certs;"
    )
    assert moved_paths(text, moves) == (
        "include /t/etc/nginx/certbotless/hosts/*.conf; ssl_certificate /t/c/a/f;"
        " include /etc/nginx/mime.types; x /etc/nginx/certbotless-other/y; /etc/nginx/certs;"
    )  # fmt: skip


@needs_nginx
def test_nginx_t_passes_on_the_rebased_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    assert _render(tree, "--rebase") == 0
    result = subprocess.run(
        ["nginx", "-t", "-p", f"{tree}/", "-c", f"{tree}/etc/nginx/nginx.conf",
         "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.fixture
def served_tree(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """A real nginx on the rebased tree; only its listeners moved to loopback ports (the tree
    says 80 and 443, with PROXY protocol behind the default L4 front)."""
    tree = tmp_path / "tree"
    assert _render(tree, "--rebase") == 0
    port, tls_port = unused_ports(2)
    for path in tree.rglob("*.conf"):
        text = path.read_text().replace("listen 80 ", f"listen 127.0.0.1:{port} ")
        path.write_text(text.replace("listen 443 ", f"listen 127.0.0.1:{tls_port} "))
    stderr = (tmp_path / "stderr").open("wb")
    nginx = subprocess.Popen(
        ["nginx", "-p", f"{tree}/", "-c", f"{tree}/etc/nginx/nginx.conf", "-g",
         f"daemon off; pid {tmp_path}/nginx.pid; user root;"],  # workers read pytest's 0700 dirs
        stderr=stderr,
    )  # fmt: skip
    try:
        for _ in range(100):
            assert nginx.poll() is None, (tmp_path / "stderr").read_text()
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("nginx did not listen within 5 s")
        yield tree, port, tls_port
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        stderr.close()


def _ask(port: int, host: str, path: str, tls: bool) -> tuple[str, bytes | None]:
    """The status line nginx answers a GET with (after the front's PROXY protocol header), and
    the certificate it showed over TLS."""
    connection = connect_to_edge_task("127.0.0.1", port, 5.0, proxy_protocol=True)
    certificate = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # a placeholder
        connection = context.wrap_socket(connection, server_hostname=host)
        certificate = connection.getpeercert(binary_form=True)
    with connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                           .encode())  # fmt: skip
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode(), certificate


@needs_nginx
def test_a_real_nginx_answers_on_the_tree_as_the_labels_ask(
    served_tree: tuple[Path, int, int],
) -> None:
    tree, port, tls_port = served_tree
    status, _ = _ask(port, "tdash.example.test", "/", tls=False)
    assert status.split()[1] in ("301", "308")  # plain HTTP goes to HTTPS
    status, shown = _ask(tls_port, "tdash.example.test", "/", tls=True)
    assert status.split()[1] == "401"  # the basic-auth middleware, before any upstream
    placeholder = (tree / "etc/nginx/certs/tdash.example.test/fullchain.pem").read_bytes()
    assert shown == x509.load_pem_x509_certificate(placeholder).public_bytes(Encoding.DER)
    assert _ask(tls_port, "tdash.example.test", "/internal", tls=True)[0].split()[1] == "403"
    # A basic-auth secret's placeholder lets nobody in.
    assert _ask(tls_port, "native.example.test", "/", tls=True)[0].split()[1] == "401"
    assert _ask(port, "unknown.example.test", "/", tls=False)[0].split()[1] == "404"


def test_lint_says_what_an_older_nginx_cannot_honour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sticky cookie rendered for nginx 1.22 (no upstream follows Swarm's DNS): served in
    turn, and lint says so by the label's name and fails, as the deployer reports it."""
    stack = tmp_path / "sticky.yml"
    stack.write_text("""
services:
  app:
    image: app
    networks: [edge]
    deploy:
      labels:
        traefik.enable: "true"
        traefik.http.routers.app.rule: Host(`sticky.example.test`)
        traefik.http.services.app.loadbalancer.server.port: "8000"
        traefik.http.services.app.loadbalancer.sticky.cookie.name: lb
networks:
  edge:
    external: true
    name: certbotless-edge
""")
    args = ["lint", "--no-docker-cli", "--render"]
    assert cli.main([*args, str(tmp_path / "new"), "--nginx-version", "1.30.0", str(stack)]) == 0
    capsys.readouterr()
    assert cli.main([*args, str(tmp_path / "old"), "--nginx-version", "1.22.1", str(stack)]) == 1
    said = capsys.readouterr().err
    assert "sticky.cookie" in said and "1.27.3" in said, said
