"""The review lifecycle: every duty of a review as data, and each transition as a pure function.

Nothing here reads the clock, a file or the database. A transition takes what is known about a
review and returns what must be written (status, duties, timers, events with their keys and hook
names); the store persists it and decides nothing. Dates come from ``timeline.milestones()`` so a
date is defined once. See docs/lifecycle.md for every duty, its rule, who owes it and to whom.
"""

from __future__ import annotations

from datetime import date

from ehcbridge.models import Duty, DutyStatus

# Duty names (stable: stored in the ``duties`` table and shown to plugins) -----------------------

INVITATIONS_SENT = "invitations_sent"  # reg 20(3): >= 2 weeks before the meeting
INVITATIONS_GOOD_PRACTICE = "invitations_good_practice"  # 16 weeks ahead (good practice)
VIEWS_REQUESTED = "views_requested"  # 6 weeks ahead (good practice)
ADVICE_CIRCULATED = "advice_circulated"  # reg 20(4): >= 2 weeks before the meeting
MEETING_HELD = "meeting_held"  # by meeting_latest and before the review is due
REPORT_SENT = "report_sent"  # reg 20(7): within 2 weeks of the meeting
DECISION_MADE = "decision_made"  # reg 20(10)/s44: 4 weeks after the meeting, in 12 months
DECISION_NOTIFIED = "decision_notified"  # reg 20(10): told to parent/YP and setting
AMENDMENTS_PROPOSED = "amendments_proposed"  # reg 22, after `amend`
REPRESENTATIONS_WINDOW = "representations_window"  # reg 22: at least 15 days
FINAL_PLAN_ISSUED = "final_plan_issued"  # reg 22: within 8 weeks of proposed amendments
PHASE_TRANSFER_FINAL_PLAN = "phase_transfer_final_plan"  # reg 18: 15 Feb (31 Mar post-16)

# Hook names, shared with hookspecs and the engine -----------------------------------------------

HOOK_REVIEW_SCHEDULED = "on_review_scheduled"
HOOK_VIEWS_DUE = "on_views_due"
HOOK_MEETING_HELD = "on_meeting_held"
HOOK_DECISION = "on_decision"
HOOK_DEADLINE = "on_deadline"
LIFECYCLE_HOOKS = (HOOK_REVIEW_SCHEDULED, HOOK_VIEWS_DUE, HOOK_MEETING_HELD, HOOK_DECISION,
                   HOOK_DEADLINE)


def meet(duty: Duty, on: date, evidence: str) -> Duty:
    """The duty marked met on ``on`` (``late`` when after its due date), with its evidence."""
    late = duty.due is not None and on > duty.due
    return duty.model_copy(update={"status": DutyStatus.LATE if late else DutyStatus.MET,
                                   "met_on": on, "evidence": evidence})
