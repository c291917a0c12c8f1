"""A plugin's settings: the base class of its `[plugins.<name>]` section and one way to read it."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ehcbridge import NotConfigured

if TYPE_CHECKING:
    from ehcbridge.events import HookContext

S = TypeVar("S", bound=BaseModel)


class PluginSettings(BaseModel):
    """Subclass this for your ``[plugins.<name>]`` section; unknown keys are an error (typos)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True

    def missing(self) -> list[str]:
        """Keys still needed before the plugin can do its work (none here; override it).

        Keep such keys optional in the model, so the plugin loads (and ``doctor`` can say what is
        missing) before they are set.
        """
        return []


def settings_of(ctx: HookContext, model: type[S], *, require: bool = True) -> S:
    """The plugin's validated settings as ``model``.

    The defaults when the context carries none (a unit test, a plugin without a section). With
    ``require`` (the default), raises ``NotConfigured`` naming the missing keys, or saying the
    plugin is disabled, so a delivery is skipped rather than retried.
    """
    name = ctx.plugin
    settings = ctx.settings
    if isinstance(settings, model):
        value = settings
    else:
        raw = settings.model_dump() if settings is not None else {}
        try:
            value = model.model_validate(raw)
        except ValidationError as exc:
            keys = sorted({".".join(str(p) for p in e["loc"]) or "?" for e in exc.errors()})
            raise NotConfigured(f"{name}: not configured ([plugins.{name}] needs: "
                                f"{', '.join(keys)})") from None
    if require:
        if getattr(value, "enabled", True) is False:
            raise NotConfigured(f"{name}: disabled (enabled = false in [plugins.{name}])")
        missing = value.missing() if isinstance(value, PluginSettings) else []
        if missing:
            raise NotConfigured(f"{name}: not configured ([plugins.{name}] needs: "
                                f"{', '.join(missing)})")
    return value
