"""The default shop's modalities overlap as a real shop's do: the photo shows the type."""

import numpy as np

from pipeline.sources import synthetic


def _item(**changes) -> dict:
    item = {"type": 0, "colour": 1, "pattern": 0, "frame": (0.0, 0.0, 1.0)}
    return {**item, **changes}


def test_the_photo_shows_the_type_in_the_items_colour():
    same = np.asarray(synthetic._render(_item(), 64))
    assert (same == np.asarray(synthetic._render(_item(), 64))).all()
    # Every type has its own silhouette...
    pictures = {t: np.asarray(synthetic._render(_item(type=t), 64)).tobytes()
                for t in range(len(synthetic.TYPES))}
    assert len(set(pictures.values())) == len(synthetic.TYPES)
    # ...drawn in the item's colour (its base) and a darker shade of it (its details).
    pixels = {tuple(p) for p in np.asarray(synthetic._render(_item(colour=5), 64)).reshape(-1, 3)}
    assert synthetic.COLOURS[5] in pixels
    assert tuple(int(c * 0.45) for c in synthetic.COLOURS[5]) in pixels


def test_types_of_one_group_share_its_base_silhouette():
    guitars = [t for t, (_, group, _) in enumerate(synthetic.TYPES) if group == "Guitars"]
    bases = {synthetic._glyph(t)[:len(synthetic.BASES["Guitars"])] for t in guitars}
    assert len(bases) == 1 and len({synthetic._glyph(t) for t in guitars}) == len(guitars)
