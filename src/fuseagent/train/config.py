"""Reading training configs: one reader for every trainer (JSON, or YAML when PyYAML is present)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["read_config"]


def read_config(path: str | os.PathLike | None) -> dict[str, Any]:
    """Settings from a JSON (``.json``) or YAML (``.yaml``/``.yml``) file; ``{}`` for None.

    Keys starting with ``_`` are comments and are dropped.

    Raises:
        InputError: missing file, invalid JSON/YAML, or a file that does not hold a mapping.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.json"
        >>> _ = p.write_text('{"_why": "a note", "steps": 3}')
        >>> read_config(p)
        {'steps': 3}
    """
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file not found: '{path}'")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InputError("YAML configs need PyYAML (pip install pyyaml); or use a .json config") from None
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"config '{path}' is not valid YAML: {exc}") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"config '{path}' is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise InputError(f"config '{path}' must hold a mapping of settings")
    return {k: v for k, v in values.items() if not str(k).startswith("_")}
