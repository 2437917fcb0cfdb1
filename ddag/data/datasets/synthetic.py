"""Built-in synthetic two-modality re-ID dataset: no files, deterministic from its seed.

Each identity is a procedurally drawn "person": upper and lower garment colours, a stripe pattern
(period, phase, orientation), the height of the waist line and the body width. A visible image
renders it in colour with per-image jitter (shift, scale of brightness, background, noise). The
thermal image of the same shot passes through a fixed modality transform: a channel mix unlike
luminance, a gamma curve, a gain/offset and sensor noise, replicated to 3 channels. Colour is
largely lost in the thermal view, so cross-modality matching has to rely on shape and pattern:
learnable in a few epochs, but not trivial.
"""

from typing import Optional

import numpy as np

from ddag.data.datasets.base import ArrayImageSet, Split, VIReIDDataset

# Fixed modality transform of the thermal view: channel weights (not luminance), gamma, gain.
_THERMAL_MIX = np.array([0.55, 0.15, 0.30], dtype=np.float32)
_THERMAL_GAMMA = 0.7
VISIBLE_CAM, THERMAL_CAM = 1, 2


class SyntheticDataset(VIReIDDataset):
    """Learnable synthetic visible/thermal identities.

    Args:
        num_train_ids: identities used for training.
        num_val_ids: identities held out for model selection (0 for none).
        num_test_ids: identities of the query/gallery test split.
        images_per_id: images per identity and modality.
        height: image height in pixels.
        width: image width in pixels.
        seed: seed of everything drawn; two datasets with the same arguments are identical.
    """

    name = "synthetic"

    def __init__(
        self,
        num_train_ids: int = 32,
        num_val_ids: int = 6,
        num_test_ids: int = 12,
        images_per_id: int = 8,
        height: int = 64,
        width: int = 32,
        seed: int = 0,
    ):
        if min(num_train_ids, num_test_ids, images_per_id) < 1 or num_val_ids < 0:
            raise ValueError(
                "synthetic dataset needs at least one train id, test id and image per id"
            )
        if height < 16 or width < 8:
            raise ValueError(f"synthetic images must be at least 16x8, got {height}x{width}")
        self.height, self.width = height, width
        rng = np.random.default_rng(seed)
        total = num_train_ids + num_val_ids + num_test_ids
        people = [_draw_person(rng) for _ in range(total)]
        bounds = np.cumsum([0, num_train_ids, num_val_ids, num_test_ids])
        self._splits = {}
        for name, start, stop, relabel in (
            ("train", bounds[0], bounds[1], True),
            ("val", bounds[1], bounds[2], False),
            ("test", bounds[2], bounds[3], False),
        ):
            if stop > start:
                self._splits[name] = self._render_split(
                    people[start:stop], range(start, stop), images_per_id, rng, relabel, name
                )

    def _render_split(self, people, identities, images_per_id, rng, relabel, split_name) -> Split:
        visible, thermal, ids = [], [], []
        for label, (identity, person) in enumerate(zip(identities, people)):
            for _ in range(images_per_id):
                visible.append(_render(person, self.height, self.width, rng))
                thermal.append(_to_thermal(_render(person, self.height, self.width, rng), rng))
                ids.append(label if relabel else identity)
        names = [f"{split_name}/{i:04d}_{k:03d}" for k, i in enumerate(ids)]
        n = len(ids)
        return Split(
            visible=ArrayImageSet(
                np.stack(visible), ids, [VISIBLE_CAM] * n, [f"v/{s}" for s in names]
            ),
            thermal=ArrayImageSet(
                np.stack(thermal), ids, [THERMAL_CAM] * n, [f"t/{s}" for s in names]
            ),
        )

    def train_split(self) -> Split:
        return self._splits["train"]

    def val_split(self) -> Optional[Split]:
        return self._splits.get("val")

    def test_split(self) -> Split:
        return self._splits["test"]


def _draw_person(rng: np.random.Generator) -> dict:
    return {
        "upper": rng.uniform(0, 255, 3),
        "lower": rng.uniform(0, 255, 3),
        "stripe_period": int(rng.integers(3, 9)),
        "stripe_phase": float(rng.uniform(0, 2 * np.pi)),
        "stripe_vertical": bool(rng.integers(0, 2)),
        "stripe_strength": float(rng.uniform(0.3, 0.8)),
        "waist": float(rng.uniform(0.4, 0.65)),
        "body_width": float(rng.uniform(0.45, 0.9)),
        "head_tone": float(rng.uniform(60, 220)),
    }


def _render(person: dict, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One visible-light shot (height, width, 3) uint8 with pose and lighting jitter."""
    y = np.arange(height, dtype=np.float32)[:, None] / height
    x = np.arange(width, dtype=np.float32)[None, :] / width
    y = y + rng.uniform(-0.05, 0.05)
    x = x + rng.uniform(-0.08, 0.08)
    background = rng.uniform(0, 255, 3).astype(np.float32)
    image = np.broadcast_to(background, (height, width, 3)).copy()
    half_width = person["body_width"] / 2
    body = (np.abs(x - 0.5) < half_width) & (y > 0.18) & (y < 0.98)
    head = ((x - 0.5) ** 2 / 0.02 + (y - 0.1) ** 2 / 0.006) < 1
    coordinate = (x * width if person["stripe_vertical"] else y * height) * (2 * np.pi)
    stripes = 1 - person["stripe_strength"] * (
        np.sin(coordinate / person["stripe_period"] + person["stripe_phase"]) > 0
    )
    upper = body & (y < person["waist"])
    lower = body & (y >= person["waist"])
    image[upper] = _paint(upper, person["upper"], stripes)
    image[lower] = person["lower"]
    image[head] = person["head_tone"]
    image *= rng.uniform(0.8, 1.2)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _paint(mask, colour, pattern):
    """Colour times the stripe shading at the masked pixels, (count, 3)."""
    shade = np.broadcast_to(pattern, mask.shape)[mask]
    return colour[None, :] * shade[:, None]


def _to_thermal(visible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fixed visible->thermal modality transform plus sensor noise; 3 equal channels."""
    intensity = visible.astype(np.float32) @ _THERMAL_MIX / 255.0
    intensity = intensity**_THERMAL_GAMMA
    intensity = 255.0 * (0.15 + 0.8 * intensity) + rng.normal(0, 8, intensity.shape)
    gray = np.clip(intensity, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)
