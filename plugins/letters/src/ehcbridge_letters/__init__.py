"""ehcbridge plugin: letters. Notices to people without email as printed PDF letters, collected in
one print pack per day. Rendering (fpdf2, pypdf) is imported only when a letter is written."""

from __future__ import annotations

from typing import Any

from ehcbridge import hookimpl


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    from ehcbridge_letters.settings import LettersSettings

    register(LettersSettings)


@hookimpl
def deliver_notice(notice: Any, ctx: Any) -> Any:
    """Write the letter into today's folder and rebuild today's print pack."""
    from ehcbridge.notices import LETTER, NoticeReceipt

    from ehcbridge_letters.pack import add_letter
    from ehcbridge_letters.settings import LettersSettings

    if notice.channel != LETTER:
        return None
    if not notice.recipient.address:
        from ehcbridge import PermanentError

        raise PermanentError(f"{notice.kind}: the recipient has no postal address")
    settings = ctx.settings if isinstance(ctx.settings, LettersSettings) else LettersSettings()
    pack, _new = add_letter(settings, notice, ctx.clock.now().date())
    return NoticeReceipt(channel=LETTER, reference=pack.name, detail=str(pack))


@hookimpl
def check(ctx: Any) -> Any:
    """Doctor: can the letters folder be written?"""
    import os

    from ehcbridge.events import CheckResult

    from ehcbridge_letters.settings import LettersSettings

    settings = ctx.settings if isinstance(ctx.settings, LettersSettings) else LettersSettings()
    folder = settings.folder
    probe = folder if folder.exists() else folder.parent
    if probe.exists() and not os.access(probe, os.W_OK):
        return CheckResult("letters folder", "failed", f"{folder} cannot be written")
    return CheckResult("letters folder", "ok", f"print packs written to {folder}"
                       + (" (large print)" if settings.large_print else ""))


@hookimpl
def forget_cases(case_ids: Any, ctx: Any) -> None:
    """Erase: take the cases' letters out of every day's folder and print pack."""
    import logging

    from ehcbridge_letters.pack import forget
    from ehcbridge_letters.settings import LettersSettings

    settings = ctx.settings if isinstance(ctx.settings, LettersSettings) else LettersSettings()
    deleted = forget(settings, set(case_ids))
    if deleted:
        logging.getLogger("ehcbridge.letters").info("erase: %d letter(s) deleted", deleted)


@hookimpl
def export_case(case_id: Any, ctx: Any) -> Any:
    """A subject access request: the case's letters, each with its PDF."""
    from ehcbridge_letters.pack import letters_of
    from ehcbridge_letters.settings import LettersSettings

    settings = ctx.settings if isinstance(ctx.settings, LettersSettings) else LettersSettings()
    return letters_of(settings, case_id) or None


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``ehcbridge letters ...``."""
    from ehcbridge_letters.cli import letters

    cli.add_command(letters)
