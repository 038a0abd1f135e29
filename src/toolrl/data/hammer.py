"""Hammer's data (MadeAgents/xlam-irrelevance-7.5k and Hammer's xLAM-format training files).

The records are xLAM's (`query`, `tools`, `answers`); the irrelevance set has an empty answer list,
so each becomes a no-call example answered directly. What makes Hammer Hammer is function masking
(tool names replaced by random strings, so the model reads descriptions instead of names): for this
source `mask_tool_names` defaults to on (see `toolrl.data.masking`, applicable to any source).
"""

from __future__ import annotations

from toolrl.config import DataParams, SourceParams
from toolrl.data import xlam
from toolrl.data.readers import RawRecord
from toolrl.data.schema import Converted

MASK_BY_DEFAULT = True


def records(src: SourceParams) -> list[RawRecord]:
    return xlam.records(src)


def convert(raw: RawRecord, src: SourceParams, data: DataParams) -> list[Converted]:
    return xlam.convert(raw, src, data)
