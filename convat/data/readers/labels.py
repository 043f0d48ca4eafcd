"""Class schemes: how each dataset's emotion labels map to the classes of a protocol.

``megc3`` is the MEGC2019 composite's 3-class scheme (negative / positive / surprise); ``5class`` is each
dataset's customary 5-class scheme (CASME II: happiness, surprise, disgust, repression, others;
SAMM: anger, contempt, happiness, surprise, other). Emotions a scheme does not use map to ``None``: the clip
is left out of that protocol (e.g. CASME II fear and sadness, SAMM disgust, fear and sadness in 5-class).
Emotions are compared lower-case and stripped, since CASME II writes them lower-case and SAMM capitalised.
"""

from __future__ import annotations

#: Every emotion spelling each dataset uses (lower-case); anything else is reported as unknown.
EMOTIONS: dict[str, tuple[str, ...]] = {
    "casme2": ("happiness", "surprise", "disgust", "repression", "others", "fear", "sadness"),
    "samm": ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "other"),
    "smic": ("negative", "positive", "surprise"),
}

SCHEMES: dict[str, dict[str, dict[str, str]]] = {
    "megc3": {
        "casme2": {"happiness": "positive", "surprise": "surprise", "disgust": "negative", "repression": "negative"},
        "samm": {"happiness": "positive", "surprise": "surprise", "anger": "negative", "contempt": "negative",
                 "disgust": "negative", "fear": "negative", "sadness": "negative"},
        "smic": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
    },
    "5class": {
        "casme2": {e: e for e in ("happiness", "surprise", "disgust", "repression", "others")},
        "samm": {e: e for e in ("anger", "contempt", "happiness", "surprise", "other")},
    },
}

#: The scheme each reader uses when none is given.
DEFAULT_SCHEME = {"casme2": "5class", "samm": "5class", "smic": "megc3", "megc2019": "megc3"}


def normalize_emotion(value: object) -> str:
    return str(value if value is not None else "").strip().lower()


def scheme_mapping(dataset: str, scheme: str) -> dict[str, str]:
    """The emotion → class mapping of ``scheme`` for ``dataset``; raises naming the accepted schemes."""
    available = [name for name, per in SCHEMES.items() if dataset in per]
    if scheme not in SCHEMES or dataset not in SCHEMES[scheme]:
        raise ValueError(f"unknown class scheme {scheme!r} for {dataset}; accepted: {', '.join(available)}")
    return SCHEMES[scheme][dataset]


def classes(dataset: str, scheme: str) -> list[str]:
    """The classes of a scheme, in a stable order."""
    return sorted(set(scheme_mapping(dataset, scheme).values()))
