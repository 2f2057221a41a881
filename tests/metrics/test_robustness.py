"""Every registered fusion and no-reference metric on degenerate inputs: constant, tiny (8×8) and
mismatched-size images give a finite float or a clear :class:`InputError`, never NaN, inf or
another exception (warnings are errors here too)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.metrics import create_metric, list_metrics

SIDE = 96


def _textured(seed: int, shape: tuple[int, ...] = (SIDE, SIDE)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _flat(value: float, shape: tuple[int, ...] = (SIDE, SIDE)) -> np.ndarray:
    return np.full(shape, value, np.float32)


FUSION_CASES: dict[str, Callable[[], tuple[list[np.ndarray], np.ndarray]]] = {
    "all_black": lambda: ([_flat(0.0), _flat(0.0)], _flat(0.0)),
    "all_mid_grey": lambda: ([_flat(0.5), _flat(0.5)], _flat(0.5)),
    "constant_colour": lambda: ([_flat(0.3, (SIDE, SIDE, 3)), _flat(0.7, (SIDE, SIDE, 3))], _flat(0.5, (SIDE, SIDE, 3))),
    "constant_sources_textured_fused": lambda: ([_flat(0.0), _flat(1.0)], _textured(1)),
    "textured_sources_constant_fused": lambda: ([_textured(2), 1.0 - _textured(2)], _flat(0.5)),
    "tiny_8x8": lambda: ([_textured(3, (8, 8)), _textured(4, (8, 8))], _textured(5, (8, 8))),
    "tiny_8x8_constant": lambda: ([_flat(0.0, (8, 8)), _flat(0.0, (8, 8))], _flat(0.0, (8, 8))),
    "mismatched_sizes": lambda: ([_textured(6), _textured(7, (SIDE - 6, SIDE))], _textured(6)),
}

NR_CASES: dict[str, Callable[[], np.ndarray]] = {
    "all_black": lambda: _flat(0.0),
    "all_white_colour": lambda: _flat(1.0, (SIDE, SIDE, 3)),
    "all_mid_grey": lambda: _flat(0.5),
    "tiny_8x8": lambda: _textured(8, (8, 8)),
    "tiny_8x8_constant": lambda: _flat(0.0, (8, 8)),
}


def _assert_finite_or_input_error(compute: Callable[[], float]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            value = compute()
        except InputError as exc:
            message = str(exc)
            assert message and "\n" not in message
            return
    assert isinstance(value, float) and math.isfinite(value), value


class TestFusionMetricsOnDegenerateInputs:
    @pytest.mark.parametrize("case", sorted(FUSION_CASES))
    @pytest.mark.parametrize("name", list_metrics(mode="fusion"))
    def test_finite_or_input_error(self, name: str, case: str) -> None:
        sources, fused = FUSION_CASES[case]()
        metric = create_metric(name)
        _assert_finite_or_input_error(lambda: metric(sources, fused))

    def test_mismatched_sizes_are_always_rejected(self) -> None:
        sources, fused = FUSION_CASES["mismatched_sizes"]()
        for name in list_metrics(mode="fusion"):
            with pytest.raises(InputError):
                create_metric(name)(sources, fused)


class TestNoReferenceMetricsOnDegenerateInputs:
    @pytest.mark.parametrize("case", sorted(NR_CASES))
    @pytest.mark.parametrize("name", list_metrics(mode="nr"))
    def test_finite_or_input_error(self, name: str, case: str) -> None:
        image = NR_CASES[case]()
        metric = create_metric(name)
        _assert_finite_or_input_error(lambda: metric(image))

    def test_flat_image_brisque_is_an_input_error(self) -> None:
        with pytest.raises(InputError, match="flat image"):
            create_metric("brisque")(_flat(0.5))
