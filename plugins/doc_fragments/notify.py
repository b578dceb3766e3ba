# Copyright: contributors to sre.runbooks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Delivery options shared by the notification modules (module_utils/_notify.NOTIFY_ARGUMENT_SPEC)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  retries:
    description: Retries after the first attempt for connection errors, 408, 425, 429 and 5xx.
    type: int
    default: 3
  retry_delay:
    description: Seconds before the first retry; doubled each time, at most 30. C(Retry-After) wins.
    type: float
    default: 1.0
  timeout:
    description: Seconds per attempt.
    type: float
    default: 10.0
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
"""
