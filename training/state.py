"""A run's progress: its folder's ``state.json``, saved after every epoch so an interrupted run resumes.

Written by the training loop (``training.train``), read back when a finished run is scored
(``training.finish``) and when runs are souped (``training.soup``).
"""

from __future__ import annotations

import json
from pathlib import Path


class RunState:
    """Progress of a run, saved after every epoch so an interrupted run resumes."""

    def __init__(self, path: Path):
        self.path = path
        data = json.loads(path.read_text()) if path.is_file() else {}
        self.history: list[dict] = data.get("history", [])
        self.phases_done: list[str] = data.get("phases_done", [])
        self.best: dict | None = data.get("best")
        self.seconds: float = data.get("seconds", 0.0)

    def save(self) -> None:
        data = {
            "history": self.history,
            "phases_done": self.phases_done,
            "best": self.best,
            "seconds": self.seconds,
        }
        self.path.write_text(json.dumps(data, indent=2))
