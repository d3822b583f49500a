"""Demo data for outcomes: placeholder."""


def seed_outcomes() -> list[str]:
    return []
