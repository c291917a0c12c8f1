"""Plugin discovery and isolated calling.

Pluggy calls every implementation in one loop and stops at the first exception. ehcbridge instead
loads each plugin on its own (an import error, a bad signature, a misspelt hook, a settings error or
a failing ``startup`` fails only that plugin) and calls each plugin on its own, through a pluggy
hook caller narrowed to that one plugin (``subset_hook_caller``), so pluggy checks the arguments,
and tracing is pluggy's hook-call monitoring. Hook wrappers cannot wrap other plugins when each is
called on its own, so a plugin declaring one is refused at load; ``optionalhook`` is honoured.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from ehcbridge import __version__, hookspecs

if TYPE_CHECKING:
    from pydantic import BaseModel

GROUP = "ehcbridge"
LOADED, FAILED, DISABLED, SKIPPED = "loaded", "failed", "disabled", "skipped"


class PluginLoadError(Exception):
    """Raised instead of marking a plugin failed when EHCBRIDGE_STRICT_PLUGINS=1."""


@dataclass
class PluginRecord:
    """What ``ehcbridge plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    status: str = LOADED
    reason: str = ""
    module: Any = None
    settings_model: type[BaseModel] | None = None
    settings: BaseModel | None = None

    def as_json(self) -> dict[str, Any]:
        """The six keys of ``ehcbridge plugins --json``."""
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "hooks": list(self.hooks), "status": self.status, "reason": self.reason}


@dataclass
class Outcome:
    """The result of calling one plugin's implementation of a hook."""

    plugin: str
    result: Any = None
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the implementation returned without raising."""
        return self.error is None


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [p.strip().lower().replace("-", "_") for p in raw.split(",") if p.strip()]


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _enabled(raw: dict[str, Any]) -> bool:
    value = raw.get("enabled", True)
    return _truthy(value) if isinstance(value, str) else bool(value)


class PluginManager:
    """Discovers entry points of group ``ehcbridge`` lazily and calls their hooks in isolation."""

    def __init__(
        self,
        plugin_settings: dict[str, dict[str, Any]] | None = None,
        config_path: Path | None = None,
        entry_points: Iterable[metadata.EntryPoint] | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugin_settings = plugin_settings or {}
        self.config_path = config_path
        self._entry_points = entry_points
        self.records: dict[str, PluginRecord] = {}
        self._loaded = False
        self._configured = False
        self._started = False
        self.strict = _truthy(os.environ.get("EHCBRIDGE_STRICT_PLUGINS", ""))
        self.trace = _truthy(os.environ.get("EHCBRIDGE_TRACE_PLUGINS", ""))
        if self.trace:
            self.pm.add_hookcall_monitoring(_trace_before, _trace_after)

    # Loading -------------------------------------------------------------------------------

    def load(self) -> dict[str, PluginRecord]:
        """Import and register every allowed plugin once per process; return the records."""
        if self._loaded:
            return self.records
        self._loaded = True
        allow = _env_list("EHCBRIDGE_LOAD_PLUGINS")
        deny = set(_env_list("EHCBRIDGE_DISABLE_PLUGINS") or [])
        eps = self._entry_points
        if eps is None:
            eps = metadata.entry_points(group=GROUP)
        for ep in sorted(eps, key=lambda e: e.name):
            self._load_one(ep, allow, deny)
        return self.records

    def _load_one(self, ep: metadata.EntryPoint, allow: list[str] | None, deny: set[str]) -> None:
        name = ep.name.lower().replace("-", "_")
        dist = ep.dist
        record = PluginRecord(name=name, distribution=dist.name if dist else "",
                              version=dist.version if dist else "")
        self.records[name] = record
        raw = self.plugin_settings.get(name, {})
        if allow is not None and name not in allow:
            record.status, record.reason = DISABLED, "not in EHCBRIDGE_LOAD_PLUGINS"
            return
        if name in deny:
            record.status, record.reason = DISABLED, "listed in EHCBRIDGE_DISABLE_PLUGINS"
            return
        if not _enabled(raw):
            record.status, record.reason = DISABLED, f"enabled = false in [plugins.{name}]"
            return
        unmet = _unmet_core_requirement(dist)
        if unmet:
            record.status, record.reason = SKIPPED, unmet
            return
        try:
            module = ep.load()
            self.pm.register(module, name=name)
        except Exception as exc:
            self._fail(record, f"{type(exc).__name__}: {exc}")
            return
        record.module = module
        callers = self.pm.get_hookcallers(module) or []
        impls = [impl for hc in callers for impl in hc.get_hookimpls() if impl.plugin is module]
        # An optionalhook names a hook this core may not have (a newer one): not an error.
        unknown = [hc.name for hc in callers if not hc.has_spec()
                   and not all(i.optionalhook for i in hc.get_hookimpls() if i.plugin is module)]
        record.hooks = sorted(hc.name for hc in callers if hc.has_spec())
        if unknown:
            self._fail(record, f"unknown hook {', '.join(sorted(unknown))} "
                               "(misspelt? see docs/hooks.md)")
            return
        wrappers = sorted(impl.function.__name__ for impl in impls
                          if impl.wrapper or impl.hookwrapper)
        if wrappers:
            self._fail(record, f"hook wrapper {', '.join(wrappers)} is not supported: ehcbridge "
                               "calls each plugin on its own, so a wrapper has nothing to wrap "
                               "(drop wrapper=True/hookwrapper=True)")
            return

    def configure(self) -> None:
        """Validate each loaded plugin's settings section with the model it registers (once).

        Kept apart from :meth:`load` so listing commands never imports pydantic.
        """
        if self._configured:
            return
        self.load()
        self._configured = True
        for record in list(self.records.values()):
            if record.status == LOADED:
                self._register_settings(record, self.plugin_settings.get(record.name, {}))

    def _register_settings(self, record: PluginRecord, raw: dict[str, Any]) -> None:
        models: list[type[BaseModel]] = []
        outcome = self._call_plugin(record.name, "register_settings",
                                    {"register": models.append})
        if outcome and outcome.error is not None:
            self._fail(record, f"register_settings raised {outcome.error!r}")
            return
        if not models:
            return
        record.settings_model = models[-1]
        from ehcbridge.settings import SettingsError, validate_section

        try:
            record.settings = validate_section(record.name, models[-1], raw, self.config_path)
            from ehcbridge.redact import register_settings

            register_settings(record.settings)  # its secrets never reach a log line
        except SettingsError as exc:
            self._fail(record, str(exc))

    def _fail(self, record: PluginRecord, reason: str) -> None:
        record.status, record.reason = FAILED, reason
        if record.module is not None and self.pm.is_registered(record.module):
            self.pm.unregister(record.module)
        if self.strict:
            raise PluginLoadError(f"plugin {record.name} failed: {reason}")

    def start(self, ctx_for: Callable[[str], Any]) -> None:
        """Call each loaded plugin's ``startup``; one that raises is marked failed."""
        if self._started:
            return
        self.configure()
        self._started = True
        for outcome in self.call_each("startup", ctx=ctx_for):
            if outcome.error is not None:
                self._fail(self.records[outcome.plugin],
                           f"startup failed: {type(outcome.error).__name__}: {outcome.error}")

    # Calling -------------------------------------------------------------------------------

    def loaded(self) -> list[PluginRecord]:
        """Plugins whose status is ``loaded`` (settings validated)."""
        self.configure()
        return [r for r in self.records.values() if r.status == LOADED]

    def implementers(self, hook: str) -> list[str]:
        """Names of loaded plugins that implement ``hook``, in a stable order."""
        self.load()
        caller = getattr(self.pm.hook, hook)
        # A stable order by name, with tryfirst and trylast honoured as pluggy would.
        impls = sorted(caller.get_hookimpls(),
                       key=lambda i: (0 if i.tryfirst else 2 if i.trylast else 1, i.plugin_name))
        names = [impl.plugin_name for impl in impls]
        return [n for n in dict.fromkeys(names)
                if n in self.records and self.records[n].status == LOADED]

    def call_each(
        self, hook: str, plugins: Iterable[str] | None = None, **kwargs: Any
    ) -> list[Outcome]:
        """Call every (or the named) plugin's implementation on its own and collect outcomes.

        A keyword value that is callable and named ``ctx`` is called with the plugin name, so each
        plugin gets its own context.
        """
        if hook != "register_commands":
            self.configure()
        wanted = set(plugins) if plugins is not None else None
        outcomes = []
        for name in self.implementers(hook):
            if wanted is not None and name not in wanted:
                continue
            outcome = self._call_plugin(name, hook, kwargs)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def call_first(self, hook: str, **kwargs: Any) -> Any:
        """Ask plugins in turn and return the first non-None answer; failures are skipped."""
        self.configure()
        for name in self.implementers(hook):
            outcome = self._call_plugin(name, hook, kwargs)
            if outcome is not None and outcome.error is None and outcome.result is not None:
                return outcome.result
        return None

    def _call_plugin(self, name: str, hook: str, kwargs: dict[str, Any]) -> Outcome | None:
        caller = getattr(self.pm.hook, hook)
        plugin = self.pm.get_plugin(name)
        if plugin is None or not any(i.plugin is plugin for i in caller.get_hookimpls()):
            return None
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        one = self.pm.subset_hook_caller(hook, others)
        # pluggy wants every argument of the spec; a caller may leave some out (None).
        call_kwargs = {arg: kwargs.get(arg) for arg in (caller.spec.argnames if caller.spec
                                                        else kwargs)}
        ctx_for = call_kwargs.get("ctx")
        if callable(ctx_for):  # each plugin gets its own context
            call_kwargs["ctx"] = ctx_for(name)
        started = time.perf_counter()
        try:
            result = one(**call_kwargs)
        except Exception as exc:
            return Outcome(name, error=exc, seconds=time.perf_counter() - started)
        if isinstance(result, list) and not (caller.spec and caller.spec.opts.get("firstresult")):
            # A plain hook returns the list of its implementations' results: here just one.
            result = result[0] if result else None
        return Outcome(name, result=result, seconds=time.perf_counter() - started)


def _trace_before(hook: str, impls: Any, kwargs: Any) -> None:
    names = ", ".join(i.plugin_name for i in impls)
    print(f"ehcbridge trace: {hook} -> {names}", file=sys.stderr)
    _started().append(time.perf_counter())


def _trace_after(outcome: pluggy.Result[Any], hook: str, impls: Any, kwargs: Any) -> None:
    stack = _started()
    seconds = time.perf_counter() - (stack.pop() if stack else 0.0)
    names = ", ".join(i.plugin_name for i in impls)
    error = outcome.exception
    result = None if error is not None else outcome.get_result()
    if isinstance(result, list) and len(result) <= 1:  # one plugin's answer to a plain hook
        result = result[0] if result else None
    from ehcbridge.redact import redact

    shown = (redact(f"raised {type(error).__name__}: {error}") if error is not None
             else f"returned {type(result).__name__}")
    print(f"ehcbridge trace: {hook} <- {names} {shown} ({seconds * 1000:.1f} ms)",
          file=sys.stderr)


_TRACE = threading.local()  # plugins may be called from several threads at once


def _started() -> list[float]:
    if not hasattr(_TRACE, "started"):
        _TRACE.started = []
    stack: list[float] = _TRACE.started
    return stack


def _unmet_core_requirement(dist: metadata.Distribution | None) -> str:
    """Why the installed core does not satisfy the plugin's ``ehcbridge`` requirement, or ''."""
    from packaging.requirements import InvalidRequirement, Requirement

    if dist is None:
        return ""
    for line in dist.requires or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if (req.name.lower() == "ehcbridge" and not req.marker and req.specifier
                and not req.specifier.contains(__version__, prereleases=True)):
                return f"requires ehcbridge{req.specifier}, installed core is {__version__}"
    return ""


def quick_plugin_sections(config_path: Path | None) -> dict[str, dict[str, Any]]:
    """Raw ``[plugins.*]`` sections from the TOML file and environment, read without pydantic
    (enough to know which plugins are enabled when building the command list)."""
    import tomllib

    sections: dict[str, dict[str, Any]] = {}
    if config_path is not None and config_path.is_file():
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        for name, section in (data.get("plugins") or {}).items():
            if isinstance(section, dict):
                sections[name.lower()] = {k.lower(): v for k, v in section.items()}
    for key, value in os.environ.items():
        parts = key.lower().split("__")
        if len(parts) == 3 and parts[0] == "ehcbridge_plugins":
            sections.setdefault(parts[1], {})[parts[2]] = value
    return sections
