"""Compose files → one stack's configuration, as `docker stack deploy` would read it.

With the Docker CLI, `docker stack config` merges and interpolates the files (the deploy's own
loader); it never reaches a daemon, because it is pointed at a socket that cannot exist. Without
the CLI, or when it fails, the files are read here: YAML, `${VAR}` interpolation from the
environment as Compose does it, and a merge of what discovery reads (labels and networks).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# `docker stack config` pings the daemon first (and goes on without one): point it at a socket
# under /dev/null, which no daemon can listen on, so linting never contacts one.
NO_DAEMON = "unix:///dev/null/certbotless-lint-contacts-no-daemon.sock"
CLI_TIMEOUT = 60  # seconds
_STACK_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", re.ASCII)
_VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class ComposeError(Exception):
    """Input that cannot be read: a missing file, bad YAML, no services, a required variable."""


@dataclass(frozen=True)
class StackFiles:
    """One stack: its name and its compose files, merged in order (`-c a.yml -c b.yml`)."""

    name: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class Stack:
    name: str
    files: tuple[Path, ...]
    config: dict[str, Any]  # merged and interpolated
    read_by: str  # "docker stack config" or "certbotless"
    notes: tuple[str, ...] = ()  # warnings: unset variables, why the CLI was not used


def parse_stack_argument(argument: str) -> StackFiles:
    """`[NAME=]FILE[,FILE…]`: the stack's name defaults to the first file's name without its
    extension (stacks/demo.yml → demo)."""
    name, _, files_text = argument.rpartition("=")
    files = tuple(Path(f) for f in files_text.split(",") if f)
    if not files:
        raise ComposeError(f"{argument!r}: name a compose file, e.g. demo=stacks/demo.yml")
    name = name or files[0].stem
    if not _STACK_NAME_RE.match(name):
        raise ComposeError(
            f"{argument!r}: {name!r} is not a stack name (letters, digits, '_', '.', '-'); "
            "name it: NAME=FILE"
        )
    return StackFiles(name, files)


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
    )


def docker_cli() -> Runner | None:
    """The Docker CLI's runner when `docker` is on PATH."""
    return run_command if shutil.which("docker") else None


def load_stack(stack: StackFiles, env: Mapping[str, str], docker: Runner | None = None) -> Stack:
    """The stack's configuration: by the Docker CLI when given and it succeeds, else read
    here (a CLI failure is kept as a note: read here, the files say more precisely what is
    wrong, and an older CLI may lack `stack config`)."""
    notes: list[str] = []
    if docker is not None:
        try:
            config = stack_config_by_docker(stack.files, docker)
            return Stack(stack.name, stack.files, config, "docker stack config")
        except ComposeError as error:
            notes.append(f"docker stack config failed, so certbotless read the files: {error}")
    config = stack_config_from_files(stack.files, env, notes)
    return Stack(stack.name, stack.files, config, "certbotless", tuple(notes))


def stack_config_by_docker(files: Sequence[Path], run: Runner) -> dict[str, Any]:
    argv = ["docker", "-H", NO_DAEMON, "stack", "config"]
    for path in files:
        argv += ["-c", str(path)]
    try:
        done = run(argv)
    except (OSError, subprocess.SubprocessError) as error:
        raise ComposeError(f"could not run the Docker CLI: {error}") from None
    if done.returncode != 0:
        raise ComposeError((done.stderr or done.stdout).strip() or f"exit {done.returncode}")
    try:
        config = yaml.safe_load(done.stdout)
    except yaml.YAMLError as error:
        raise ComposeError(f"its output is not YAML: {error}") from None
    return _checked(config, "docker stack config's output")


def stack_config_from_files(
    files: Sequence[Path], env: Mapping[str, str], notes: list[str] | None = None
) -> dict[str, Any]:
    """Each file read, interpolated and normalized, then merged over the one before."""
    merged: dict[str, Any] = {}
    for path in files:
        config = _checked(_read_yaml(path), str(path))
        config = _interpolated(config, env, str(path), notes if notes is not None else [])
        merged = _merged(merged, _normalized(config))
    return merged


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ComposeError(f"{path}: cannot be read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ComposeError(f"{path}: is not UTF-8 text") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and _expanded_size(root) > MAX_EXPANDED_NODES:
            raise ComposeError(f"{path}: expands to more than {MAX_EXPANDED_NODES:,} values "
                               "through YAML aliases (*name): write the values out, or use "
                               "fewer aliases of aliases")  # fmt: skip
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ComposeError(f"{path}: is not valid YAML: {error}") from None
    except RecursionError:
        raise ComposeError(
            f"{path}: nests deeper than certbotless reads (about 900 levels)"
        ) from None


# Values a compose file may stand for once its aliases are expanded: far above any real stack,
# far below what would keep `lint` (and the sidecar) busy for minutes on a tiny file.
MAX_EXPANDED_NODES = 1_000_000


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document stands for with every alias expanded, counted once per
    node of YAML's graph (an alias is a shared node), in time linear in the file."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        total = 1 + sum(size(child) for child in children)
        sizes[id(node)] = min(total, MAX_EXPANDED_NODES + 1)
        return sizes[id(node)]

    return size(root)


def _checked(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ComposeError(f"{where}: is not a compose file (a mapping with services:)")
    services = config.get("services")
    if not isinstance(services, dict) or not all(isinstance(s, dict) for s in services.values()):
        raise ComposeError(
            f"{where}: has no services: mapping (each service a mapping of its settings)"
        )
    return config


def _normalized(config: dict[str, Any]) -> dict[str, Any]:
    """Labels and service networks as mappings, as the Docker CLI gives them, so that files
    merge key by key."""
    services = {}
    for name, service in config["services"].items():
        service = dict(service)
        if "labels" in service:
            service["labels"] = labels_mapping(service["labels"])
        deploy = service.get("deploy")
        if isinstance(deploy, dict) and "labels" in deploy:
            service["deploy"] = {**deploy, "labels": labels_mapping(deploy["labels"])}
        if isinstance(service.get("networks"), list):
            service["networks"] = {str(n): None for n in service["networks"]}
        services[str(name)] = service
    return {**config, "services": services}


def labels_mapping(labels: Any) -> dict[str, str]:
    """Compose labels, a mapping or a list of KEY=VALUE, as strings (YAML's true is "true")."""
    if isinstance(labels, list):
        pairs = [str(item).partition("=") for item in labels]
        return {key: value for key, _, value in pairs}
    if isinstance(labels, dict):
        return {str(key): _label_text(value) for key, value in labels.items()}
    return {}


def _label_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merged(base[key], value) if key in base else value
        return merged
    return override


def _interpolated(value: Any, env: Mapping[str, str], where: str, notes: list[str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env, where, notes)
    if isinstance(value, dict):
        return {key: _interpolated(item, env, where, notes) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolated(item, env, where, notes) for item in value]
    return value


def interpolate(text: str, env: Mapping[str, str], where: str, notes: list[str]) -> str:
    """Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
    `${VAR:?error}`, `${VAR?error}`, `${VAR:+alternative}`, `${VAR+alternative}`; defaults may
    hold variables themselves. An unset variable without a default is blank, with a note."""
    out: list[str] = []
    index = 0
    while (dollar := text.find("$", index)) >= 0:
        out.append(text[index:dollar])
        following = text[dollar + 1 : dollar + 2]
        if following == "$":
            out.append("$")
            index = dollar + 2
        elif following == "{":
            end = _closing_brace(text, dollar + 2, where)
            out.append(_substitute(text[dollar + 2 : end], env, where, notes))
            index = end + 1
        elif match := _VARIABLE_RE.match(text, dollar + 1):
            out.append(_value(match.group(), env, where, notes))
            index = match.end()
        else:
            raise ComposeError(f"{where}: invalid interpolation in {text!r}: use $$ for a $")
    out.append(text[index:])
    return "".join(out)


def _closing_brace(text: str, start: int, where: str) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ComposeError(f"{where}: invalid interpolation in {text!r}: a '${{' is never closed")


def _substitute(expression: str, env: Mapping[str, str], where: str, notes: list[str]) -> str:
    match = _VARIABLE_RE.match(expression)
    if match is None:
        raise ComposeError(f"{where}: invalid interpolation ${{{expression}}}: no variable name")
    name, rest = match.group(), expression[match.end() :]
    if not rest:
        return _value(name, env, where, notes)
    operator = rest[:2] if rest[:2] in (":-", ":?", ":+") else rest[:1]
    if operator not in (":-", ":?", ":+", "-", "?", "+"):
        raise ComposeError(f"{where}: invalid interpolation ${{{expression}}}")
    argument = interpolate(rest[len(operator) :], env, where, notes)
    value = env.get(name)
    present = value is not None and (value != "" or ":" not in operator)
    if operator.endswith("-"):
        return value if present and value is not None else argument
    if operator.endswith("+"):
        return argument if present else ""
    if not present or value is None:
        raise ComposeError(f"{where}: required variable {name} is missing: {argument or name}")
    return value


def _value(name: str, env: Mapping[str, str], where: str, notes: list[str]) -> str:
    if name in env:
        return env[name]
    note = f"{where}: the {name} variable is not set, so it is blank"
    if note not in notes:
        notes.append(note)
    return ""
