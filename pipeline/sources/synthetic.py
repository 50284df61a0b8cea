"""A deterministic generator of a small musical-instrument shop in the Amazon 2018 format.

The modalities overlap as a real shop's do, and each keeps something of its own:
- text (title, description, categories, brand) shows product type, brand and material, and
  about one title in three names the colour;
- the product photo shows the type (one silhouette per product type: every guitar looks like
  a guitar, framed a little differently per item) in the item's colour on a patterned
  background; colour and pattern are the picture's own (pattern never reaches the text);
- behaviour follows long-term taste (group, brand, colour) plus short-term complementary
  transitions between product types (guitar -> strings -> tuner), visible only in sequences.
The files it writes are read back by the same reader as real Amazon 2018 data. A few realistic
flaws are planted: repeated reviews, items without metadata, missing image files and HTML
in descriptions.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# (product type, group, complementary types bought next)
TYPES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("acoustic guitar", "Guitars", ("guitar strings", "capo", "clip-on tuner", "gig bag")),
    ("electric guitar", "Guitars", ("guitar amplifier", "guitar strings", "guitar picks")),
    ("bass guitar", "Guitars", ("bass strings", "guitar amplifier", "guitar strap")),
    ("guitar strings", "Guitar Accessories", ("guitar picks", "clip-on tuner")),
    ("bass strings", "Guitar Accessories", ("clip-on tuner", "guitar strap")),
    ("guitar picks", "Guitar Accessories", ("capo", "guitar strap")),
    ("capo", "Guitar Accessories", ("clip-on tuner", "guitar picks")),
    ("clip-on tuner", "Guitar Accessories", ("guitar strings", "capo")),
    ("guitar strap", "Guitar Accessories", ("gig bag", "guitar picks")),
    ("gig bag", "Guitar Accessories", ("guitar strap", "clip-on tuner")),
    ("guitar amplifier", "Amplifiers & Effects", ("instrument cable", "effects pedal")),
    ("effects pedal", "Amplifiers & Effects", ("instrument cable", "pedal power supply")),
    ("pedal power supply", "Amplifiers & Effects", ("instrument cable", "effects pedal")),
    ("instrument cable", "Amplifiers & Effects", ("effects pedal", "guitar strap")),
    ("digital piano", "Keyboards", ("keyboard stand", "sustain pedal", "piano bench")),
    ("keyboard stand", "Keyboards", ("sustain pedal", "piano bench")),
    ("sustain pedal", "Keyboards", ("keyboard stand", "studio headphones")),
    ("piano bench", "Keyboards", ("sustain pedal", "keyboard stand")),
    ("snare drum", "Drums & Percussion", ("drum sticks", "drumhead", "snare stand")),
    ("snare stand", "Drums & Percussion", ("drum sticks", "practice pad")),
    ("drum sticks", "Drums & Percussion", ("practice pad", "drumhead")),
    ("drumhead", "Drums & Percussion", ("drum sticks", "cymbal")),
    ("cymbal", "Drums & Percussion", ("drum sticks", "cymbal stand")),
    ("cymbal stand", "Drums & Percussion", ("cymbal", "drum sticks")),
    ("practice pad", "Drums & Percussion", ("drum sticks", "metronome")),
    ("metronome", "Drums & Percussion", ("practice pad", "drum sticks")),
    ("condenser microphone", "Studio & Recording", ("microphone stand", "pop filter", "XLR cable")),
    ("microphone stand", "Studio & Recording", ("pop filter", "XLR cable")),
    ("pop filter", "Studio & Recording", ("XLR cable", "studio headphones")),
    ("XLR cable", "Studio & Recording", ("audio interface", "microphone stand")),
    ("audio interface", "Studio & Recording", ("studio headphones", "condenser microphone")),
    ("studio headphones", "Studio & Recording", ("audio interface", "XLR cable")),
)
GROUPS = tuple(sorted({group for _, group, _ in TYPES}))
BRANDS = ("Arbor", "Bellweather", "Corvid", "Dunmore", "Ember", "Fjordline", "Galena", "Harlow",
          "Ironwood", "Juniper", "Kestrel", "Lumen", "Marlowe", "Nimbus", "Orchard", "Pinecrest")
MATERIALS = ("maple", "rosewood", "steel", "nickel", "nylon", "carbon fiber", "aluminum",
             "walnut", "brass", "phosphor bronze")
COLOURS = ((200, 30, 40), (240, 130, 20), (235, 205, 40), (40, 160, 70), (30, 150, 150),
           (40, 80, 200), (120, 60, 170), (230, 110, 170), (30, 30, 30), (150, 150, 150))
COLOUR_NAMES = ("Red", "Orange", "Yellow", "Green", "Teal", "Blue", "Purple", "Pink", "Black",
                "Silver")
COLOUR_IN_TITLE = 0.35     # share of titles that name the item's colour
PATTERNS = ("solid", "stripes", "dots", "checker")
# Each group's base silhouette, (primitive, centre x, centre y, half width, half height) in a
# box of half-side 1; every type adds details of its own (see `_glyph`).
BASES = {
    "Guitars": (("ellipse", 0, .45, .5, .42), ("ellipse", 0, .02, .36, .3),
                ("rect", 0, -.6, .07, .38)),
    "Guitar Accessories": (("ellipse", 0, 0, .32, .32),),
    "Amplifiers & Effects": (("rect", 0, .05, .7, .55),),
    "Keyboards": (("rect", 0, .1, .92, .26),),
    "Drums & Percussion": (("rect", 0, .15, .62, .38), ("ellipse", 0, -.25, .62, .18)),
    "Studio & Recording": (("ellipse", 0, -.45, .3, .32), ("rect", 0, .35, .06, .5)),
}
ADJECTIVES = ("durable", "lightweight", "professional", "compact", "vintage-style", "premium",
              "beginner-friendly", "road-ready")
USES = {"Guitars": "stage and studio", "Guitar Accessories": "everyday playing",
        "Amplifiers & Effects": "shaping your tone", "Keyboards": "home practice",
        "Drums & Percussion": "rehearsals and gigs", "Studio & Recording": "home recording"}
COMPLEMENT_RATE = 0.5      # share of next purchases that follow a complementary transition
START, SPAN = 1_388_534_400, 4 * 365 * 86_400   # reviews between 2014-01-01 and 2018


def generate(folder: Path, name: str, n_items: int, n_users: int, min_len: int, max_len: int,
             image_size: int, seed: int) -> dict:
    """Write `<name>.json.gz`, `meta_<name>.json.gz` and `images/` into `folder`.

    Returns counts of what was written and of every planted flaw.
    """
    rng = np.random.default_rng(seed)
    items = _make_items(rng, n_items)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    flaws = {"items_without_metadata": 0, "missing_image_files": 0, "items_without_image": 0}
    meta_lines = []
    for i, item in enumerate(items):
        roll = rng.random()
        if roll < 0.005:
            flaws["items_without_metadata"] += 1
            continue
        record = _meta_record(rng, item)
        if roll < 0.01:
            flaws["items_without_image"] += 1
        else:
            ref = f"images/{item['asin']}.png"
            record["imageURLHighRes"] = [ref]
            if roll < 0.02:
                flaws["missing_image_files"] += 1
            else:
                _render(item, image_size).save(folder / ref)
        meta_lines.append(record)
    reviews, duplicates = _make_reviews(rng, items, n_users, min_len, max_len)
    _write_gz_jsonl(folder / f"meta_{name}.json.gz", meta_lines)
    _write_gz_jsonl(folder / f"{name}.json.gz", reviews)
    return {"items": n_items, "meta_lines": len(meta_lines), "users": n_users,
            "reviews": len(reviews), "duplicate_reviews": duplicates, **flaws}


def _make_items(rng: np.random.Generator, n_items: int) -> list[dict]:
    type_weight = rng.dirichlet(np.full(len(TYPES), 2.0))
    brand_of_type = [rng.choice(len(BRANDS), size=4, replace=False) for _ in TYPES]
    items = []
    for i in range(n_items):
        t = int(rng.choice(len(TYPES), p=type_weight)) if i >= len(TYPES) else i
        items.append({
            "asin": f"B0SYN{i:05d}",
            "type": t,
            "brand": int(rng.choice(brand_of_type[t])),
            "material": int(rng.integers(len(MATERIALS))),
            "colour": int(rng.integers(len(COLOURS))),
            "colour_in_title": bool(rng.random() < COLOUR_IN_TITLE),
            "pattern": int(rng.integers(len(PATTERNS))),
            "popularity": float(rng.lognormal(0.0, 0.8)),
            # Each product photo is framed a little differently: offset and size of the silhouette.
            "frame": (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.08, 0.08)),
                      float(rng.uniform(0.8, 1.1))),
            "model": f"{'ABCDEFGHJKLMNPRSTVX'[int(rng.integers(19))]}-{int(rng.integers(10, 999))}",
        })
    return items


def _meta_record(rng: np.random.Generator, item: dict) -> dict:
    kind, group, _ = TYPES[item["type"]]
    brand, material = BRANDS[item["brand"]], MATERIALS[item["material"]]
    adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
    description = [f"A {adjective} {kind} with {material} construction, made for "
                   f"{USES[group]}.", f"{brand} quality &amp; care in every detail."]
    if rng.random() < 0.2:
        description.append("<b>Ships fast.</b><br/>Backed by a 1-year warranty.")
    return {
        "asin": item["asin"],
        "title": f"{brand} {material.title()} {kind.title()} {item['model']}"
                 + (f", {COLOUR_NAMES[item['colour']]}" if item["colour_in_title"] else ""),
        "brand": brand,
        "category": ["Musical Instruments", group, kind.title()],
        "description": description,
    }


def _glyph(t: int) -> tuple[tuple, ...]:
    """The silhouette of product type `t`: its group's base shape plus two details placed by
    a generator seeded with the type, so every item of a type shares it."""
    rng = np.random.default_rng(7919 * (t + 1))
    details = tuple((str(rng.choice(("ellipse", "rect", "triangle"))),
                     *(float(v) for v in rng.uniform(-.65, .65, 2)),
                     *(float(v) for v in rng.uniform(.12, .32, 2))) for _ in range(2))
    return BASES[TYPES[t][1]] + details


def _render(item: dict, size: int) -> Image.Image:
    """The product photo: the type's silhouette in the item's colour, framed per item, on a
    background in the item's pattern."""
    colour = COLOURS[item["colour"]]
    pale = tuple(int(c + (255 - c) * 0.7) for c in colour)
    img = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    step = max(size // 8, 2)
    pattern = PATTERNS[item["pattern"]]
    for k in range(0, size, step):
        if pattern == "stripes":
            draw.rectangle([k, 0, k + step // 2, size], fill=pale)
        for j in range(0, size, step):
            if pattern == "dots":
                draw.ellipse([k + 1, j + 1, k + step // 2, j + step // 2], fill=pale)
            elif pattern == "checker" and (k // step + j // step) % 2 == 0:
                draw.rectangle([k, j, k + step - 1, j + step - 1], fill=pale)
    dx, dy, scale = item["frame"]
    unit = size * 0.4 * scale
    cx, cy = size * (0.5 + dx), size * (0.5 + dy)
    dark = tuple(int(c * 0.45) for c in colour)
    glyph = _glyph(item["type"])
    base = len(BASES[TYPES[item["type"]][1]])
    for part, (kind, x, y, w, h) in enumerate(glyph):
        fill = colour if part < base else dark        # details (knobs, pegs) in a darker shade
        lo = (cx + (x - w) * unit, cy + (y - h) * unit)
        hi = (cx + (x + w) * unit, cy + (y + h) * unit)
        if kind == "ellipse":
            draw.ellipse([*lo, *hi], fill=fill)
        elif kind == "rect":
            draw.rectangle([*lo, *hi], fill=fill)
        else:
            draw.polygon([((lo[0] + hi[0]) / 2, lo[1]), hi, (lo[0], hi[1])], fill=fill)
    return img


def _make_reviews(rng: np.random.Generator, items: list[dict], n_users: int, min_len: int,
                  max_len: int) -> tuple[list[dict], int]:
    type_of = np.array([it["type"] for it in items])
    brand_of = np.array([it["brand"] for it in items])
    colour_of = np.array([it["colour"] for it in items])
    group_of_type = np.array([GROUPS.index(g) for _, g, _ in TYPES])
    log_pop = np.log([it["popularity"] for it in items])
    by_type = [np.flatnonzero(type_of == t) for t in range(len(TYPES))]
    names = [t for t, _, _ in TYPES]
    complements = [[names.index(c) for c in comp] for _, _, comp in TYPES]
    type_has_items = np.array([len(ix) > 0 for ix in by_type])
    reviews, duplicates = [], 0
    for u in range(n_users):
        group_taste = rng.dirichlet(np.full(len(GROUPS), 0.3))
        brand_taste = np.log(rng.dirichlet(np.full(len(BRANDS), 0.5)) * len(BRANDS) + 1e-3)
        colour_taste = np.log(rng.dirichlet(np.full(len(COLOURS), 0.5)) * len(COLOURS) + 1e-3)
        type_taste = group_taste[group_of_type] * type_has_items
        length = int(min(max_len, min_len + rng.geometric(1 / 8) - 1))
        stamp = START + int(rng.integers(SPAN))
        seen: set[int] = set()
        previous = None
        for _ in range(length):
            allowed = [c for c in complements[previous] if type_has_items[c]] if previous is not None else []
            if allowed and rng.random() < COMPLEMENT_RATE:
                t = int(rng.choice(allowed))
            else:
                t = int(rng.choice(len(TYPES), p=type_taste / type_taste.sum()))
            # The type's items the user has not reviewed, in item order (a Python loop over
            # them made the generator quadratic in the catalogue; this keeps the same draws).
            pool = by_type[t]
            candidates = pool[~np.isin(pool, list(seen))] if seen else pool
            if len(candidates) == 0:
                continue
            score = log_pop[candidates] + brand_taste[brand_of[candidates]] \
                + colour_taste[colour_of[candidates]]
            prob = np.exp(score - score.max())
            i = int(rng.choice(candidates, p=prob / prob.sum()))
            seen.add(i)
            previous = t
            stamp += int(rng.exponential(9 * 86_400)) + 60
            reviews.append(_review(u, items[i]["asin"], stamp, rng))
            if rng.random() < 0.01:
                duplicates += 1
                reviews.append(_review(u, items[i]["asin"], stamp + 86_400, rng))
    return reviews, duplicates


def _review(user: int, asin: str, stamp: int, rng: np.random.Generator) -> dict:
    return {"overall": float(rng.integers(3, 6)), "reviewerID": f"ASYN{user:07d}",
            "asin": asin, "unixReviewTime": stamp, "summary": "Works as described"}


def _write_gz_jsonl(path: Path, records: list[dict]) -> None:
    # mtime=0 and no file name in the header: the same records give the same bytes.
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                               mtime=0) as gz:
        for record in records:
            gz.write((json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
