"""The ``[notices]`` settings: the council's wording, contacts and how each channel is reached."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

KINDS = ("views_request", "advice_reminder", "report", "decision", "text_reminder",
         "termly_list", "meeting", "meeting_withdrawn")


class NoticeSettings(BaseModel):
    """``[notices]``: sender, contacts, template overrides and channel plugins."""

    model_config = ConfigDict(extra="forbid")

    council_name: str = "The local authority SEN team"
    council_address: list[str] = Field(default_factory=list,
                                       description="Postal address replies by letter go to")
    council_email: str | None = None
    council_phone: str | None = None
    hub_url: str | None = Field(default=None, description="The council's EHC Hub link")
    templates: dict[str, Path] = Field(default_factory=dict,
                                       description="kind -> Jinja2 file replacing the default")
    email_via: str = "outlook"
    letter_via: str = "letters"
    text_via: str = "notify"
    letters_for_families: bool = Field(
        default=False, description="Also post a letter to parents who have an email address")
    text_reminders: bool = True
    attachment_limit_mb: float = Field(default=10.0, ge=0)
    include_names_for_professionals: bool = False
    sendiass: str = "your local SEND Information, Advice and Support Service (SENDIASS)"
    mediation: str = "The council's mediation service"
    disagreement_resolution: str = "The council's disagreement resolution service"
    large_print: bool = False

    @field_validator("templates")
    @classmethod
    def _known(cls, value: dict[str, Path]) -> dict[str, Path]:
        unknown = sorted(set(value) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown notice kind(s) {', '.join(unknown)}; "
                             f"known: {', '.join(KINDS)}")
        return value
