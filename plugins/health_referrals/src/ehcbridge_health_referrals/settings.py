"""The ``[plugins.health_referrals]`` settings section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ehcbridge.mail import MailSettings
from ehcbridge.plugin_settings import PluginSettings
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from .rules import (
    RoutingRule,
    RoutingTable,
    RuleError,
    load_csv,
    parse_rule,
    rules_from_settings,
)

DEFAULT_RETURN = ("Reply to this email with your advice attached, quoting the case reference "
                  "in the subject line.")


def build_table(rules: list[RoutingRule], csv_path: Path | None) -> RoutingTable:
    """The routing table from settings rules plus an optional CSV file."""
    entries = rules_from_settings(rules)
    if csv_path is not None:
        entries += load_csv(csv_path)
    return RoutingTable.build(entries)


class HealthReferralsSettings(PluginSettings, MailSettings):
    """Settings of the [plugins.health_referrals] section: the routing table, the DCO fallback
    and the mail keys (transport, outbox_dir, smtp_host, ..., from_address) used for advice
    requests."""

    rules: list[RoutingRule] = []
    dco_team: str = "Designated Clinical Officer service"
    dco_mailbox: str | None = None
    dco_portal_url: str | None = None
    la_code: str | None = None
    fallback_roles: list[str] = ["health", "social_care"]
    reply_to: str | None = None
    return_instructions: str = DEFAULT_RETURN
    setting_names: dict[str, str] = {}
    # Last, so its validator sees every other field (and an error shows only the path).
    rules_csv: Path | None = Field(default=None, validate_default=True)

    _table: RoutingTable | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _parse_rules(cls, data: Any) -> Any:
        # Parse rules here so an error names the rule rather than a list index.
        if isinstance(data, dict) and isinstance(data.get("rules"), list):
            data = dict(data)
            data["rules"] = [parse_rule(raw, f"rules[{i}]") for i, raw in enumerate(data["rules"])]
        return data

    @field_validator("la_code")
    @classmethod
    def _la_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = str(value).strip().zfill(3)
        if not (value.isdigit() and len(value) == 3):
            raise ValueError(f"la_code {value!r} is not a three-digit DfE LA number")
        return value

    @field_validator("dco_mailbox")
    @classmethod
    def _dco_mailbox(cls, value: str | None) -> str | None:
        if value is not None and "@" not in value:
            raise ValueError(f"dco_mailbox {value!r} is not an email address")
        return value

    @field_validator("fallback_roles")
    @classmethod
    def _fallback_roles(cls, value: list[str]) -> list[str]:
        allowed = {"health", "social_care", "other"}
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ValueError(f"fallback_roles: unknown role {bad[0]!r} (use health, social_care, "
                             f"other)")
        return value

    @field_validator("rules_csv")
    @classmethod
    def _check_table(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        # Validated here rather than on the whole model so an error never echoes other keys
        # (such as smtp_password) back to the user.
        rules = info.data.get("rules") or []
        base = (info.context or {}).get("config_dir") if isinstance(info.context, dict) else None
        if value is not None and base and not value.is_absolute():
            value = Path(base) / value
        if (rules or value) and not info.data.get("dco_mailbox"):
            raise ValueError("dco_mailbox is required when routing rules are set: unmatched "
                             "invitations go to the DCO service")
        build_table(rules, value)
        return value

    @model_validator(mode="after")
    def _keep_table(self) -> HealthReferralsSettings:
        self._table = self.load_table()
        return self

    def load_table(self) -> RoutingTable:
        """Build the routing table from ``rules`` and ``rules_csv``; raises RuleError naming the
        rule (and CSV row and column)."""
        return build_table(self.rules, self.rules_csv)

    @property
    def table(self) -> RoutingTable:
        """The validated routing table."""
        if self._table is None:
            self._table = self.load_table()
        return self._table

    @property
    def configured(self) -> bool:
        """True when there is somewhere to route to (a DCO mailbox at least)."""
        return self.enabled and self.dco_mailbox is not None

    def missing(self) -> list[str]:
        """``dco_mailbox`` until it is set: without it no advice request has anywhere to go."""
        return [] if self.dco_mailbox is not None else ["dco_mailbox"]

    def mail_settings(self) -> MailSettings:
        """The shared transport's settings, taken from this section's flat mail keys."""
        return MailSettings(**{k: getattr(self, k) for k in MailSettings.model_fields})


__all__ = ["HealthReferralsSettings", "RuleError"]
