"""Seed lists as users type them, the seed → latent rule, and the seed plane."""
from __future__ import annotations

import pytest
import torch

from modules.errors import InvalidRequest
from modules.generation.seeds import (MAX_SEED, PLANE_WIDTH, format_seeds, nearest_plane_seed, parse_seeds,
                                      plane_latent, plane_point, plane_seed, seed_latent, shift_seeds)


@pytest.mark.parametrize("text, seeds", [
    ("0,1,4-6", [0, 1, 4, 5, 6]),
    ("7", [7]),
    (" 3  4 - 6, ", [3, 4, 5, 6]),
    ("5-5", [5]),
    ([2, 9], [2, 9]),
    (42, [42]),
    (f"{MAX_SEED}", [MAX_SEED]),
])
def test_seed_lists_and_ranges(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [
    ("", "seeds: is empty"),
    ("a", "seeds: 'a' is not a seed or a range"),
    ("-1", "seeds: '-1' is not a seed or a range"),
    ("1.5", "seeds: '1.5' is not a seed or a range"),
    ("1-2-3", "seeds: '1-2-3' is not a seed or a range"),
    ("6-4", "seeds: range '6-4' runs backwards: write it as 4-6"),
    ("4294967296", "seeds: seed 4294967296 is over the largest seed 4294967295"),
    ("0-100000", "seeds: '0-100000' makes more than 256 seeds"),
    (None, "seeds: must be seeds like 0,1,4-6"),
    (True, "seeds: must be seeds like 0,1,4-6"),
])
def test_bad_seed_strings_name_the_field_and_the_item(text, message):
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(")) as error:
        parse_seeds(text)
    assert error.value.field == "seeds"


def test_format_and_page_through_seeds():
    assert format_seeds([0, 1, 4, 5, 6, 9]) == "0,1,4-6,9"
    assert parse_seeds(format_seeds([3, 8, 9, 10, 11])) == [3, 8, 9, 10, 11]
    assert shift_seeds("0-7", 1) == "8-15" and shift_seeds("8-15", -1) == "0-7"
    assert shift_seeds("5", -1) == "4" and shift_seeds("0", -1) == "0"  # never below 0


def test_a_seed_gives_the_same_latent_from_a_cpu_generator():
    expected = torch.randn(16, generator=torch.Generator().manual_seed(1234))
    assert torch.equal(seed_latent(1234, 16), expected)
    assert seed_latent(1234, 16).device.type == "cpu" and seed_latent(1234, 16).dtype == torch.float32


def test_the_seed_plane_is_exact_at_integer_points_and_smooth_between():
    assert plane_seed(3, 2) == 3 + 2 * PLANE_WIDTH and plane_point(3 + 2 * PLANE_WIDTH) == (3, 2)
    assert torch.equal(plane_latent(3.0, 2.0, 8), seed_latent(3 + 2 * PLANE_WIDTH, 8))
    assert nearest_plane_seed(3.4, 1.6) == 3 + 2 * PLANE_WIDTH
    # Along an edge only two seeds take part; a small step moves the latent a little.
    a, b = seed_latent(3, 8).double(), seed_latent(4, 8).double()
    assert torch.allclose(plane_latent(3.5, 0.0, 8).double(), (a + b) / 2 / 0.5 ** 0.5, atol=1e-6)
    step = (plane_latent(3.5, 0.5, 8) - plane_latent(3.51, 0.5, 8)).norm()
    assert 0 < step < 0.1
    # The blend keeps the variance of a standard normal latent, so the middle is no "average" image.
    z = torch.stack([plane_latent(i + 0.5, 0.5, 256) for i in range(20)])
    assert 0.8 < z.std().item() < 1.2
