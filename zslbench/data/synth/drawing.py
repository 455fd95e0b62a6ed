"""Drawing one image of the synthetic benchmark: a creature of four parts among distractor shapes,
with its part mask. Each image is drawn from its own random stream (:func:`instance_rng`).

>>> from zslbench.data.synth.presets import PRESETS
>>> image, mask = render_instance([0] * len(attribute_groups()), PRESETS["tiny"], instance_rng(0, 0))
>>> image.shape, mask.shape, int(mask.max()) <= len(PARTS)
((32, 32, 3), (32, 32), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from zslbench.data.synth.presets import COLOURS, PARTS, PATTERNS, SHAPES, SynthPreset, attribute_groups


@dataclass(frozen=True)
class Shape:
    """A filled shape in image pixels: centre, half extents, and where a triangle points."""

    kind: str  # round | square | triangle
    cx: float
    cy: float
    rx: float
    ry: float
    point: str = "up"  # triangle apex: up | left | right


#: Part geometry in units of the body's half-width: (side, centre y, half-size small, half-size large).
#: side +1 attaches the part to the front edge of the body, -1 to the back, 0 puts it on top.
_PART_GEOMETRY: dict[str, tuple[int, float, float, float]] = {
    "head": (1, -0.55, 0.40, 0.66),
    "tail": (-1, -0.15, 0.32, 0.58),
    "wing": (0, -0.60, 0.40, 0.68),
}
_BODY_ASPECT = 0.68  # body half-height / half-width
_CREATURE_UNITS = 3.6  # typical creature width in body half-widths
_DRAW_ORDER = ("tail", "body", "wing", "head")  # later parts cover earlier ones


def render_instance(values: Sequence[int], preset: SynthPreset,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image: (RGB uint8 [S, S, 3], part mask uint8 [S, S]).

    ``values`` are the instance's value indices, one per attribute group (see :func:`attribute_groups`).
    """
    size = preset.image_size
    image = _background(size, rng)
    for _ in range(int(rng.integers(preset.clutter[0], preset.clutter[1] + 1))):
        _draw_distractor(image, preset, rng)
    mask = np.zeros((size, size), dtype=np.uint8)
    chosen = {g.name: g.values[v] for g, v in zip(attribute_groups(), values)}
    for part, shape in _creature_layout(chosen, preset, rng):
        window, covered = _rasterise(shape, size)
        _paint(image, window, covered, chosen[f"{part} colour"], chosen[f"{part} pattern"], shape, rng)
        mask[window][covered] = PARTS.index(part) + 1
    return image, mask


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A low-saturation grey with a gentle linear gradient."""
    level = rng.uniform(70, 190)
    tint = rng.uniform(-10, 10, size=3)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    direction = rng.uniform(-14, 14, size=2)
    gradient = np.float32(direction[0]) * ramp[None, :] + np.float32(direction[1]) * ramp[:, None]
    image = gradient[:, :, None] + (level + tint).astype(np.float32)[None, None, :]
    return np.clip(image, 0, 255).astype(np.uint8)


def _creature_layout(chosen: dict[str, str], preset: SynthPreset, rng: np.random.Generator) -> list[tuple[str, Shape]]:
    """The creature's parts in drawing order, at a random position, scale and facing."""
    size = preset.image_size
    unit = rng.uniform(*preset.creature_width) * size / _CREATURE_UNITS
    facing = 1.0 if rng.random() < 0.5 else -1.0
    local: dict[str, tuple[float, float, float, float]] = {"body": (0.0, 0.0, unit, unit * _BODY_ASPECT)}
    for part, (side, y, small, large) in _PART_GEOMETRY.items():
        half = (large if chosen[f"{part} size"] == "large" else small) * unit
        if side == 0:  # the wing: wider than tall, over the body's upper half
            local[part] = (-0.1 * unit * facing, y * unit, half * 1.25, half * 0.8)
        else:  # head and tail overlap the body's edge by about half their size
            local[part] = (facing * side * (unit + 0.55 * half), y * unit, half, half)
    left = min(x - rx for x, _, rx, _ in local.values())
    right = max(x + rx for x, _, rx, _ in local.values())
    top = min(y - ry for _, y, _, ry in local.values())
    bottom = max(y + ry for _, y, _, ry in local.values())
    margin = 1.0
    cx = rng.uniform(margin - left, max(margin - left, size - 1 - margin - right))
    cy = rng.uniform(margin - top, max(margin - top, size - 1 - margin - bottom))
    points = {"head": "right" if facing > 0 else "left", "tail": "left" if facing > 0 else "right",
              "wing": "up", "body": "up"}
    return [(part, Shape(chosen[f"{part} shape"], cx + local[part][0], cy + local[part][1],
                         local[part][2], local[part][3], points[part])) for part in _DRAW_ORDER]


def _draw_distractor(image: np.ndarray, preset: SynthPreset, rng: np.random.Generator) -> None:
    """One clutter shape with a colour, shape and pattern from the creatures' vocabulary."""
    size = preset.image_size
    half = rng.uniform(*preset.clutter_size) * size
    aspect = rng.uniform(0.7, 1.3)
    shape = Shape(SHAPES[rng.integers(len(SHAPES))], rng.uniform(0, size), rng.uniform(0, size),
                  half * aspect, half / aspect, ("up", "left", "right")[rng.integers(3)])
    colour = tuple(COLOURS)[rng.integers(len(COLOURS))]
    window, covered = _rasterise(shape, size)
    _paint(image, window, covered, colour, PATTERNS[rng.integers(len(PATTERNS))], shape, rng)


Window = tuple[slice, slice]


def _rasterise(shape: Shape, size: int) -> tuple[Window, np.ndarray]:
    """Where ``shape`` lies: (row and column slices of the image, bool coverage inside that window).

    PIL's rasteriser (no anti-aliasing) draws into a canvas the size of the shape's bounding box,
    clipped to the image, so the cost does not grow with the image.
    """
    from PIL import Image, ImageDraw

    left, top = max(0, int(np.floor(shape.cx - shape.rx)) - 1), max(0, int(np.floor(shape.cy - shape.ry)) - 1)
    right = min(size, int(np.ceil(shape.cx + shape.rx)) + 2)
    bottom = min(size, int(np.ceil(shape.cy + shape.ry)) + 2)
    window = (slice(top, max(top, bottom)), slice(left, max(left, right)))
    if right <= left or bottom <= top:
        return window, np.zeros((max(0, bottom - top), max(0, right - left)), dtype=bool)
    canvas = Image.new("L", (right - left, bottom - top), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy = shape.cx - left, shape.cy - top
    x0, y0, x1, y1 = cx - shape.rx, cy - shape.ry, cx + shape.rx, cy + shape.ry
    if shape.kind == "round":
        draw.ellipse((x0, y0, x1, y1), fill=1)
    elif shape.kind == "square":
        draw.rectangle((x0, y0, x1, y1), fill=1)
    else:
        apex = {"up": [(cx, y0), (x1, y1), (x0, y1)],
                "right": [(x1, cy), (x0, y1), (x0, y0)],
                "left": [(x0, cy), (x1, y0), (x1, y1)]}[shape.point]
        draw.polygon(apex, fill=1)
    return window, np.asarray(canvas, dtype=bool)


def _paint(image: np.ndarray, window: Window, covered: np.ndarray, colour: str, pattern: str, shape: Shape,
           rng: np.random.Generator) -> None:
    """Fill ``covered`` (inside ``window``) with a jittered ``colour``; stripes/spots in a darker shade."""
    base = np.clip(np.asarray(COLOURS[colour], dtype=np.float64) + rng.normal(0, 8, size=3), 0, 255)
    region = image[window]  # a view: writes go to the image
    if pattern == "plain":
        region[covered] = base.astype(np.uint8)
        return
    period = max(2, int(round(min(shape.rx, shape.ry) * 0.55)))
    # pattern phase is anchored at the shape's centre, so it moves with the shape
    dx = np.arange(window[1].start, window[1].stop)[None, :] - int(shape.cx)
    dy = np.arange(window[0].start, window[0].stop)[:, None] - int(shape.cy)
    if pattern == "striped":
        marked = np.broadcast_to((np.floor_divide(dx, period) % 2) == 1, covered.shape)
    else:  # spotted: a grid of square dots one period wide, two periods apart
        marked = ((dx % (2 * period)) < period) & ((dy % (2 * period)) < period)
    colours = np.where(marked[..., None], (base * 0.45).astype(np.uint8), base.astype(np.uint8))
    region[covered] = colours[covered]


def instance_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of image ``index`` (independent of how images are split among workers)."""
    return np.random.default_rng(np.random.SeedSequence([seed, index, 0xD2A3]))
