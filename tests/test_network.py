"""The Keras network's optional colour constancy layer, and its export to LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

from model.preprocessing import scale

GAINS = np.array([1.2, 1.0, 0.75])  # a warm light: red up, blue down


def _scenes(n: int = 3, size: tuple[int, int] = (64, 80)) -> np.ndarray:
    """Colourful uint8 scenes dim enough that a GAINS cast does not clip."""
    rng = np.random.default_rng(0)
    return rng.uniform(20, 190, (n, *size, 3)).astype(np.uint8)


def _cast(scenes: np.ndarray) -> np.ndarray:
    """The scenes under a warm light of the same brightness (float pixels).

    Shades of Gray keeps the mean of the three illuminant estimates, so a cast that also
    changed it would change the balanced image's brightness: GAINS are rescaled per image.
    """
    x = scenes.astype(np.float64)
    illuminant = np.mean(x**6, axis=(1, 2)) ** (1 / 6)  # (N, 3)
    gains = GAINS * (illuminant.mean(1) / (illuminant * GAINS).mean(1))[:, None]
    return x * gains[:, None, None, :]


def test_shades_of_gray_layer_matches_the_reference_and_undoes_a_cast():
    from model.network import ShadesOfGray
    from training.probe import shades_of_gray

    scenes = _scenes()
    layer = ShadesOfGray()
    balanced = np.asarray(layer(scale(scenes.astype(np.float32))))
    reference = scale(shades_of_gray(scenes).astype(np.float32))
    assert np.abs(balanced - reference).max() <= 1.01 / 127.5  # the reference rounds to uint8

    cast = _cast(scenes)
    assert cast.max() < 255 and np.abs(cast - scenes).max() > 20
    assert np.abs(np.asarray(layer(scale(cast.astype(np.float32)))) - balanced).max() < 1e-4
    assert np.asarray(layer(-np.ones((1, 40, 40, 3), np.float32))).max() == -1.0  # black stays black, no NaN


def test_gray_equalised_layer_matches_opencv():
    from model.network import GrayEqualised
    from training.probe import gray_equalised

    scenes = _scenes()
    out = np.asarray(GrayEqualised()(scale(scenes.astype(np.float32))))
    reference = gray_equalised(scenes).astype(np.float32)
    levels = np.abs((out + 1.0) * 127.5 - reference)
    assert levels.max() <= 8 and (levels > 0.5).mean() < 0.01  # OpenCV's fixed-point grey: one level apart
    assert np.ptp(out, axis=-1).max() == 0  # three equal channels


@pytest.mark.parametrize("colour", ["none", "shades_of_gray", "gray_equalised"])
def test_exported_network_keeps_its_colour_handling(colour, tmp_path):
    """The layer travels in the .keras and LiteRT files: a cast moves the answers only without it."""
    from model.network import build_network, load_network
    from model.runtime import KERAS_FILE
    from training.export import export_model

    network = build_network((64, 80), colour=colour)  # ImageNet features: random ones answer alike
    dense = network.get_layer("logits")
    kernel, bias = dense.get_weights()
    dense.set_weights([np.random.default_rng(1).normal(0, 2, kernel.shape), bias])  # answers that vary
    scenes = scale(_scenes().astype(np.float32))
    cast = scale(_cast(_scenes()).astype(np.float32))
    runtime, files = export_model(network, tmp_path, scenes)
    assert files["litert_vs_keras"]["max_abs_diff_probs"] < 1e-4

    moved = np.abs(runtime.run(cast)[0] - runtime.run(scenes)[0]).max()
    if colour == "none":
        assert moved > 0.01
    elif colour == "shades_of_gray":
        assert moved < 1e-3
    reloaded = load_network(tmp_path / KERAS_FILE)
    assert np.abs(reloaded.predict(scenes, verbose=0) - network.predict(scenes, verbose=0)).max() < 1e-5


def test_unknown_colour_is_refused():
    from model.network import build_network

    with pytest.raises(ValueError, match="colour"):
        build_network((64, 80), weights=None, colour="grey_world")
