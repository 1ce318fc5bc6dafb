"""Draw the PWA icons (a white leaf on Companion teal) into companion/static/icons/.

Run from anywhere: `python scripts/make_icons.py`. Needs only Pillow; the output is
deterministic, so re-running it leaves the committed PNGs unchanged.
"""

import math
from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parent.parent / "companion" / "static" / "icons"
TEAL = (15, 118, 110, 255)  # #0f766e, the manifest's theme_color; white on it is 5.5:1
WHITE = (255, 255, 255, 255)
CLEAR = (0, 0, 0, 0)
SUPERSAMPLE = 4  # draw large, then shrink: Pillow's shapes have no anti-aliasing


def leaf_outline(cx: float, cy: float, length: float, width: float) -> list[tuple[float, float]]:
    """Return the outline of a leaf centred on (cx, cy), tip to the upper right.

    Half-width along the axis is sin(pi * t**0.8): widest a little below the middle,
    rounded at the base, pointed at the tip, like a real leaf.
    """
    steps = 120
    side = []
    for i in range(steps + 1):
        t = i / steps
        side.append((length * (t - 0.5), width / 2 * math.sin(math.pi * t**0.8)))
    other = [(x, -y) for x, y in reversed(side)]
    return [rotate(x, y, cx, cy) for x, y in side + other]


def rotate(x: float, y: float, cx: float, cy: float, degrees: float = -45) -> tuple[float, float]:
    """Rotate a leaf-space point and place it on the canvas (y grows downwards)."""
    a = math.radians(degrees)
    return cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)


def tapered(
    cx: float, cy: float, start: float, end: float, w0: float, w1: float
) -> list[tuple[float, float]]:
    """Return a quad along the leaf axis from start to end, w0 wide tapering to w1."""
    points = [(start, w0 / 2), (end, w1 / 2), (end, -w1 / 2), (start, -w0 / 2)]
    return [rotate(x, y, cx, cy) for x, y in points]


def draw_leaf(
    draw: ImageDraw.ImageDraw, size: int, scale: float, leaf, vein, detail: bool = True
) -> None:
    """Draw the leaf, its stem and (when big enough to see) its midrib."""
    length, width = size * scale, size * scale * 0.5
    stem = length * 0.14
    # Shift along the axis so leaf plus stem, not the leaf alone, is centred.
    cx, cy = rotate(stem / 2, 0, size / 2, size / 2)
    draw.polygon(leaf_outline(cx, cy, length, width), fill=leaf)
    stem_width = length * 0.055
    draw.polygon(
        tapered(cx, cy, -length / 2 - stem, -length / 2 + stem, stem_width * 0.8, stem_width),
        fill=leaf,
    )
    x, y = rotate(-length / 2 - stem, 0, cx, cy)
    r = stem_width * 0.4
    draw.ellipse([x - r, y - r, x + r, y + r], fill=leaf)
    if detail:
        draw.polygon(
            tapered(cx, cy, -length * 0.44, length * 0.36, length * 0.045, length * 0.008),
            fill=vein,
        )


def render(
    size: int, *, background: str, scale: float, detail: bool = True, badge: bool = False
) -> Image.Image:
    """Render one icon; background is "square" (full bleed), "rounded" or "none"."""
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), CLEAR)
    draw = ImageDraw.Draw(image)
    if background == "square":
        draw.rectangle([0, 0, big, big], fill=TEAL)
    elif background == "rounded":
        draw.rounded_rectangle([0, 0, big - 1, big - 1], radius=round(big * 0.22), fill=TEAL)
    # A badge is a silhouette: the midrib is cut out of the white, not painted teal.
    draw_leaf(draw, big, scale, WHITE, CLEAR if badge else TEAL, detail)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    """Write every icon the manifest, the pages and the service worker use."""
    ICONS.mkdir(parents=True, exist_ok=True)
    icons = {
        "icon-192.png": render(192, background="rounded", scale=0.62),
        "icon-512.png": render(512, background="rounded", scale=0.62),
        # Maskable: full bleed, leaf well inside the central 80% safe circle.
        "maskable-512.png": render(512, background="square", scale=0.58),
        # iOS rounds the corners itself and shows transparency as black.
        "apple-touch-icon.png": render(180, background="square", scale=0.56).convert("RGB"),
        # Android shows the badge as a white-on-transparent mask in the status bar.
        "badge-96.png": render(96, background="none", scale=0.78, badge=True),
        "favicon-32.png": render(32, background="rounded", scale=0.66, detail=False),
    }
    for name, image in icons.items():
        image.save(ICONS / name, optimize=True)
        print(f"{ICONS / name} {image.size[0]}x{image.size[1]} {image.mode}")


if __name__ == "__main__":
    main()
