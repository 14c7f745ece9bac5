"""The real free-recall data sets that psifr ships, read through psifr (not copied: they are GPL)."""

from __future__ import annotations

import functools

from superpose.recall.data import RecallDataset, from_events

SAMPLES: dict[str, tuple[str, ...]] = {
    "Morton2013": ("list_type", "list_category", "session"),
    "peers_notask": ("session",),
}
"""Sample names and the per-list conditions kept from each."""

ITEM_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Morton2013": ("category",),
    "peers_notask": (),
}
"""The per-item columns kept from each sample (``RecallDataset.item_attributes``)."""

INSTALL_HINT = "pip install 'superpose[recall]' (or: pip install psifr)"


def psifr_available() -> bool:
    """True when the optional psifr package can be imported."""
    try:
        import psifr  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=4)
def load_sample(name: str) -> RecallDataset:
    """Loads ``"Morton2013"`` (40 subjects × 48 lists of 24 words, with each item's ``category``
    in ``item_attributes``) or ``"peers_notask"`` (126 subjects, lists of 16 words) from the psifr
    package.

    The result is cached and shared by every call, so it is immutable: its arrays are read-only
    (writing to one raises ``ValueError``); copy an array to change it.

    Raises:
        ValueError: for an unknown name.
        ImportError: when psifr is not installed, saying how to install it.
    """
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; available: {sorted(SAMPLES)}")
    try:
        from psifr import fr
    except ImportError as error:
        raise ImportError(f"load_sample({name!r}) reads the data that psifr ships; install it with: "
                          f"{INSTALL_HINT}") from error
    return from_events(fr.sample_data(name), conditions=SAMPLES[name], item_attributes=ITEM_ATTRIBUTES[name])
