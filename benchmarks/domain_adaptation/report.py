"""The domain-adaptation report, rendered from a run's record."""

from __future__ import annotations

import json
from typing import Any


def render(record: dict[str, Any]) -> str:
    """The markdown report of ``record``."""
    return (
        "# Domain adaptation\n\n```\n"
        + json.dumps(record["results"])[:2000]
        + "\n```\n"
    )
