"""Small helpers shared by the reference ops (no validation: the reference trusts its input)."""


def pair(v) -> tuple[int, int]:
    """An int or an (h, w) pair as a pair of ints."""
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))
