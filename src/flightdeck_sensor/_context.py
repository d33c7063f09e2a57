"""The ``session_start`` fields: where this process runs (docs/protocol.md, event types).

Read from the process itself, the environment and a few files: no subprocess
(git is read from ``.git`` directly), no network, no ``importlib.metadata``
(SDK versions come from the modules already imported; a framework's version
missing from its module is read from its distribution as the sender encodes
the event, see ``_frameworks.VersionFromMetadata``). Each part is
best-effort: one that fails is left out, the session still starts.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._config import PROVIDER_NAMES, Config
from ._frameworks import loaded_frameworks
from ._version import __version__

T = TypeVar("T")

_MAX_PARENT_DIRS = 64
_POD_NAME_VARS = ("POD_NAME", "K8S_POD_NAME", "MY_POD_NAME", "KUBERNETES_POD_NAME")
_NAMESPACE_VARS = ("POD_NAMESPACE", "K8S_NAMESPACE", "MY_POD_NAMESPACE", "KUBERNETES_NAMESPACE")
_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def session_start_fields(config: Config) -> dict[str, Any]:
    return {
        "sensor_version": __version__,
        "context": _safely(lambda: process_context(config)) or {},
        "capture_prompts": config.capture_prompts,
        "interceptor_versions": _safely(interceptor_versions) or {},
    }


def process_context(config: Config, cwd: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "pid": os.getpid(),
        "process_name": _safely(_process_name),
        "os": _safely(platform.system),
        "os_release": _safely(platform.release),
        "arch": _safely(platform.machine),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "hostname": config.hostname,
        "docker": _safely(in_container) or False,
        "frameworks": _safely(loaded_frameworks) or [],
    }
    context.update(_safely(lambda: orchestration(os.environ)) or {})
    context.update(_safely(lambda: git_info(cwd or os.getcwd())) or {})
    return context


def interceptor_versions() -> dict[str, str]:
    """``{"openai": "3.1.0", ...}`` for the provider SDKs already imported."""
    versions: dict[str, str] = {}
    for name in PROVIDER_NAMES:
        if name not in sys.modules:
            continue
        version = _module_version(name)
        if version:
            versions[name] = version
    return versions


def _module_version(name: str) -> str | None:
    for module_name in (name, f"{name}._version", f"{name}.version"):
        module = sys.modules.get(module_name)
        for attribute in ("__version__", "version", "VERSION"):
            value = getattr(module, attribute, None)
            if isinstance(value, str) and value:
                return value
    return None


def _process_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else sys.executable
    return os.path.basename(argv0) or argv0


def in_container() -> bool:
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"):
        return True
    try:
        with open("/proc/1/cgroup", encoding="utf-8", errors="replace") as f:
            cgroups = f.read(65536)
    except OSError:
        return False
    return any(mark in cgroups for mark in ("docker", "containerd", "kubepods", "libpod"))


def orchestration(env: Mapping[str, str]) -> dict[str, Any]:
    if env.get("KUBERNETES_SERVICE_HOST"):
        return {"orchestration": "kubernetes", "kubernetes": {
            "pod": _first_env(env, _POD_NAME_VARS) or env.get("HOSTNAME"),
            "namespace": _first_env(env, _NAMESPACE_VARS) or _read_first_line(
                _SERVICE_ACCOUNT_NAMESPACE),
        }}
    if env.get("ECS_CONTAINER_METADATA_URI_V4") or env.get("ECS_CONTAINER_METADATA_URI"):
        return {"orchestration": "ecs"}
    if env.get("NOMAD_ALLOC_ID"):
        return {"orchestration": "nomad"}
    return {"orchestration": None}


def _first_env(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if env.get(name):
            return env[name]
    return None


# -- git, read from the .git directory ----------------------------------------


def git_info(start: str) -> dict[str, str | None]:
    """``git_commit``, ``git_branch``, ``git_repo`` of the repository around ``start``."""
    git_dir = _find_git_dir(start)
    if git_dir is None:
        return {}
    common_dir = _common_dir(git_dir)
    head = _read_first_line(os.path.join(git_dir, "HEAD")) or ""
    branch: str | None = None
    if head.startswith("ref:"):
        ref = head[4:].strip()
        branch = ref.removeprefix("refs/heads/")
        commit = _resolve_ref(git_dir, common_dir, ref)
    else:
        commit = head or None
    return {"git_commit": commit, "git_branch": branch, "git_repo": _remote_url(common_dir)}


def _find_git_dir(start: str) -> str | None:
    directory = os.path.abspath(start)
    for _ in range(_MAX_PARENT_DIRS):
        candidate = os.path.join(directory, ".git")
        if os.path.isdir(candidate):
            return candidate
        if os.path.isfile(candidate):  # worktree or submodule: "gitdir: <path>"
            line = _read_first_line(candidate) or ""
            if line.startswith("gitdir:"):
                return os.path.normpath(os.path.join(directory, line[7:].strip()))
            return None
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
    return None


def _common_dir(git_dir: str) -> str:
    relative = _read_first_line(os.path.join(git_dir, "commondir"))
    return os.path.normpath(os.path.join(git_dir, relative)) if relative else git_dir


def _resolve_ref(git_dir: str, common_dir: str, ref: str) -> str | None:
    for base in (git_dir, common_dir):
        value = _read_first_line(os.path.join(base, *ref.split("/")))
        if value:
            return value
    try:
        with open(os.path.join(common_dir, "packed-refs"), encoding="utf-8") as f:
            for line in f:
                sha, _, name = line.strip().partition(" ")
                if name == ref:
                    return sha
    except OSError:
        pass
    return None


def _remote_url(common_dir: str) -> str | None:
    """origin's URL (else the first remote's), credentials and query removed."""
    try:
        with open(os.path.join(common_dir, "config"), encoding="utf-8") as f:
            lines = f.read(1 << 20).splitlines()
    except OSError:
        return None
    urls: dict[str, str] = {}
    remote: str | None = None
    for raw in lines:
        line = raw.strip()
        if line.startswith("["):
            remote = line[len('[remote "'):-2] if line.startswith('[remote "') else None
        elif remote is not None and remote not in urls:
            key, _, value = line.partition("=")
            if key.strip() == "url":
                urls[remote] = value.strip()
    url = urls.get("origin") or next(iter(urls.values()), None)
    return strip_url_credentials(url) if url else None


def strip_url_credentials(url: str) -> str:
    """A remote URL without user:password@ (or a token) and without query/fragment."""
    if "://" not in url:
        return url  # scp-like "git@host:org/repo.git" carries no secret
    scheme, _, rest = url.partition("://")
    for mark in ("?", "#"):
        rest = rest.partition(mark)[0]
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


# -- helpers --------------------------------------------------------------


def _read_first_line(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline(4096).strip() or None
    except OSError:
        return None


def _safely(produce: Callable[[], T]) -> T | None:
    try:
        return produce()
    except Exception:
        return None

