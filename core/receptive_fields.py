"""Which input pixels one unit of a layer sees, from the manifest's layer table.

The same computation as the web page's `service/static/js/fields.js`: unit (row, col)
of a spatial layer covers input rows start + row*jump .. start + row*jump + size - 1
(columns likewise), where `start` is minus the padding accumulated along the way,
each layer's padding counted in the jump of its input. A window may reach past the
image's edges; `Window.inside` is the part that does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.manifest import Layer


@dataclass(frozen=True)
class Box:
    """Input rows top..bottom-1 and columns left..right-1."""

    top: int
    left: int
    bottom: int
    right: int


@dataclass(frozen=True)
class Window:
    """The size x size input square one unit sees, with its top-left corner (maybe negative)."""

    top: int
    left: int
    size: int

    def inside(self, height: int, width: int) -> Box | None:
        """The part of the window inside a height x width input (None if no part is)."""
        top, left = max(0, self.top), max(0, self.left)
        bottom, right = min(height, self.top + self.size), min(width, self.left + self.size)
        return Box(top, left, bottom, right) if bottom > top and right > left else None


@dataclass(frozen=True)
class Field:
    """A spatial layer's receptive field: side, jump between units and the first unit's start."""

    size: int
    jump: int
    start: int

    def window(self, row: int, col: int) -> Window:
        return Window(self.start + row * self.jump, self.start + col * self.jump, self.size)


def receptive_fields(layers: Sequence[Layer]) -> dict[str, Field]:
    """The field of every spatial layer by name (fully connected layers see everything)."""
    fields: dict[str, Field] = {}
    start, jump = 0, 1  # jump: of the current layer's input
    for layer in layers:
        if layer.type == "fc":
            continue
        if layer.type != "lrn":  # LRN mixes channels, not positions
            start -= layer.padding * jump
            jump = layer.jump
        fields[layer.name] = Field(layer.receptive_field, layer.jump, start)
    return fields
