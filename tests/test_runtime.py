"""The shipped model: public API, and LiteRT agreeing with the Keras model it was exported from."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from model import CLASSES, ImageError, ModelFileError, load_classifier
from model.preprocessing import prepare_batch
from model.runtime import KERAS_FILE, SHIPPED_DIR


@pytest.fixture(scope="module")
def keras_model():
    from training.network import load_network

    return load_network(SHIPPED_DIR / KERAS_FILE)


def test_predict_contract(clf, examples):
    from model import load_image

    images = [load_image(e["path"]) for e in examples]
    images.append(np.zeros((480, 640, 3), np.uint8))  # another size works too
    probs = clf.predict(images)
    assert probs.shape == (len(images), len(CLASSES)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs >= 0).all()


def test_predict_is_batch_independent(clf, examples):
    from model import load_image

    images = [load_image(e["path"]) for e in examples]
    together = clf.predict(images * 6)  # 42 images: more than one internal chunk
    alone = np.concatenate([clf.predict([img]) for img in images])
    np.testing.assert_allclose(together[: len(images)], alone, atol=1e-5)
    np.testing.assert_allclose(together[-len(images) :], alone, atol=1e-5)


def test_run_follows_the_input_shape_and_back(clf, examples):
    """The interpreter is resized for each new input shape, spatial ones included."""
    from model import load_image

    batch = prepare_batch([load_image(e["path"]) for e in examples[:2]], clf.input_size)
    before, _ = clf.run(batch)
    _, features = clf.run(batch[:, ::2, ::2])  # a smaller input: a smaller feature map
    assert features.shape[1] < clf.run(batch)[1].shape[1]
    np.testing.assert_allclose(clf.run(batch)[0], before, atol=1e-6)


def test_litert_matches_keras(clf, keras_model, examples):
    from model import load_image
    from training.network import serving_model

    batch = prepare_batch([load_image(e["path"]) for e in examples], clf.input_size)
    ref_probs, ref_features = map(np.asarray, serving_model(keras_model)(batch, training=False))
    probs, features = clf.run(batch)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-4)
    np.testing.assert_allclose(features, ref_features, atol=1e-4 * max(1.0, np.abs(ref_features).max()))


def test_head_kernel_read_from_flatbuffer_is_the_dense_layer(clf, keras_model):
    """The flatbuffer's kernel is the dense layer's, up to the temperature the converter may fold in."""
    from training.network import head_weights

    kernel, _ = head_weights(keras_model)
    temperature = clf.card()["temperature"]
    assert any(np.allclose(clf.head_kernel, kernel * factor, rtol=1e-5, atol=1e-7)
               for factor in (1.0, 1.0 / temperature))


def test_concurrent_callers_get_their_own_answers(clf, examples):
    from model import load_image

    images = [load_image(e["path"]) for e in examples]
    expected = clf.predict(images)
    results: dict[int, np.ndarray] = {}

    def worker(i: int) -> None:
        for _ in range(5):
            results[i] = clf.predict([images[i % len(images)]] * (1 + i % 3))[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, row in results.items():
        np.testing.assert_allclose(row, expected[i % len(images)], atol=1e-5)


def test_bad_arrays_raise_image_error(clf):
    with pytest.raises(ImageError):
        clf.predict([np.zeros((10, 10, 3), np.uint8)])
    with pytest.raises(ImageError):
        clf.predict([])


def test_missing_or_damaged_model_file_names_the_file(tmp_path):
    with pytest.raises(ModelFileError, match="missing"):
        load_classifier(tmp_path / "nope.tflite")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"\0" * 1000)
    with pytest.raises(ModelFileError, match="broken.tflite"):
        load_classifier(broken)


def test_advice_for_a_bad_model_path_fits_where_it_is(tmp_path):
    from model.runtime import LITERT_FILE, restore_advice

    assert restore_advice(SHIPPED_DIR / LITERT_FILE) == "restore it with `git checkout -- model/shipped/" \
                                                       f"{LITERT_FILE}`"
    picture = tmp_path / "x.jpg"
    picture.write_bytes(b"\xff\xd8 a photo")
    for wrong in (picture, tmp_path / "missing.tflite"):
        with pytest.raises(ModelFileError) as refused:
            load_classifier(wrong)
        message = str(refused.value)
        assert wrong.name in message and "git checkout" not in message and ".tflite" in message
    with pytest.raises(ModelFileError, match="not a LiteRT model file"):
        load_classifier(picture)


def test_altered_or_truncated_shipped_model_is_refused(tmp_path):
    import shutil

    from model.runtime import CARD_FILE, LITERT_FILE

    for name in (LITERT_FILE, CARD_FILE):
        shutil.copy(SHIPPED_DIR / name, tmp_path / name)
    data = (tmp_path / LITERT_FILE).read_bytes()
    (tmp_path / LITERT_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"damaged or altered") as refused:
        load_classifier(tmp_path)
    assert "git checkout" not in str(refused.value)  # git cannot restore a copy outside the repository
    altered = bytearray(data)
    altered[len(data) // 2] ^= 0xFF
    (tmp_path / LITERT_FILE).write_bytes(bytes(altered))
    with pytest.raises(ModelFileError, match=LITERT_FILE):
        load_classifier(tmp_path)
    (tmp_path / LITERT_FILE).write_bytes(data)
    assert load_classifier(tmp_path).predict([np.zeros((64, 64, 3), np.uint8)]).shape == (1, 7)


def test_model_card_describes_the_shipped_files(clf):
    from model.runtime import sha256

    card = clf.card()
    assert card["classes"] == list(CLASSES)
    assert (card["input_size"]["height"], card["input_size"]["width"]) == clf.input_size
    for name, info in card["files"].items():
        assert sha256(SHIPPED_DIR / name) == info["sha256"], f"{name} differs from its model card"


def test_run_uint8_scales_like_predict_and_refuses_other_sizes(clf, examples):
    from model import load_image
    from model.preprocessing import resize

    images = np.stack([resize(load_image(e["path"]), clf.input_size) for e in examples[:2]])
    out = clf.run_uint8(images)
    assert np.allclose(out.probs, clf.predict(list(images)), atol=1e-5)
    assert out.features.shape[0] == 2
    with pytest.raises(ValueError, match="predict\\(\\) resizes"):
        clf.run_uint8(images[:, :-1])
