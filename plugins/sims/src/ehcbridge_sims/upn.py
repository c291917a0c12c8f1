"""The DfE Unique Pupil Number check, from the core's shared parsing (one rule everywhere).

Kept as a module so ``from ehcbridge_sims.upn import validate_upn`` goes on working.
"""

from __future__ import annotations

from ehcbridge.formats.upn import InvalidUPN, is_valid_upn, make_upn, validate_upn

__all__ = ["InvalidUPN", "is_valid_upn", "make_upn", "validate_upn"]
