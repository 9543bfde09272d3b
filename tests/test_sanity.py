"""Sanity checks: the cascade reaches every weight, a randomised model's map is unlike the trained one's,
a swapped head is the runtime's own when it is the trained head, and the study writes its card section."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny(run_with_extra):
    from model.runtime import KERAS_FILE
    from training.network import load_network

    return load_network(run_with_extra / "export" / KERAS_FILE)


def test_the_cascade_names_every_layer_with_weights_and_shuffling_keeps_the_values(tiny):
    import keras

    from training.studies.sanity import STAGES, block_of, shuffle_block

    weighted = [layer.name for layer in tiny.layers if layer.get_weights()]
    assert {block_of(name) for name in weighted} == set(STAGES)  # all randomised by the last stage, none left over
    copy = keras.models.clone_model(tiny)
    copy.set_weights(tiny.get_weights())
    before = copy.get_layer("block_13_expand").get_weights()[0]
    assert shuffle_block(copy, "block_13", np.random.default_rng(0)) >= 10  # convolutions and batch norms
    after = copy.get_layer("block_13_expand").get_weights()[0]
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(np.sort(before.ravel()), np.sort(after.ravel()))  # the scale is kept
    np.testing.assert_array_equal(copy.get_layer("block_12_expand").get_weights()[0],
                                  tiny.get_layer("block_12_expand").get_weights()[0])  # below it: untouched


def test_a_randomised_models_map_is_less_like_the_trained_map_than_the_same_models(tiny, shared_data):
    import keras

    from explain.gradcam import SERVED, cam_map
    from explain.quality import map_similarity
    from model.preprocessing import load_image, prepare_batch
    from training.studies.sanity import STAGES, KerasClassifier, shuffle_block

    copy = keras.models.clone_model(tiny)
    copy.set_weights(tiny.get_weights())
    clf = KerasClassifier(copy)
    images = sorted((shared_data / "ham10000" / "images").glob("*.jpg"))[::9][:6]
    inputs = [prepare_batch([load_image(p)], clf.input_size)[0] for p in images]
    labels = [int(clf.run(x[None]).probs[0].argmax()) for x in inputs]

    def maps() -> list[np.ndarray]:
        return [cam_map(clf, x, clf.run(x[None]).features[0], k, clf.input_size, SERVED) for x, k in zip(inputs, labels,
                                                                                                      strict=True)]

    trained, again = maps(), maps()
    rng = np.random.default_rng(0)
    for stage in STAGES:
        shuffle_block(copy, stage, rng)
    randomised = maps()  # the same KerasClassifier reads the shuffled weights
    same = [map_similarity(a, b)["spearman"] for a, b in zip(trained, again, strict=True)]
    other = [map_similarity(a, b)["spearman"] for a, b in zip(trained, randomised, strict=True)]
    assert min(same) == pytest.approx(1.0)
    assert np.mean(other) < 0.6 and max(other) < 0.95


def test_a_swapped_head_with_the_trained_weights_is_the_runtime(run_with_extra, tiny):
    from model.runtime import load_classifier
    from training.network import head_weights
    from training.studies.sanity import HeadSwapped

    runtime = load_classifier(run_with_extra / "export")
    temperature = json.loads((run_with_extra / "export" / "model_card.json").read_text())["temperature"]
    batch = np.random.default_rng(0).uniform(-1, 1, (3, *runtime.input_size, 3)).astype(np.float32)
    swapped = HeadSwapped(runtime, *head_weights(tiny), temperature)
    np.testing.assert_allclose(swapped.run(batch).probs, runtime.run(batch).probs, atol=1e-4)
    kernel, bias = head_weights(tiny)
    other = HeadSwapped(runtime, kernel[:, ::-1], bias[::-1], temperature).run(batch).probs
    np.testing.assert_allclose(other, swapped.run(batch).probs[:, ::-1], atol=1e-4)  # the head decides the classes


@pytest.mark.slow
def test_sanity_study_writes_its_section_into_the_card(cam_export, shared_data, tmp_path):
    from explain.gradcam import METHODS, SERVED
    from training.studies import STUDIES
    from training.studies.sanity import STAGES, measure_exported

    export = tmp_path / "export"
    shutil.copytree(cam_export, export)  # with its gradient model, which the study would otherwise make
    section = measure_exported(export, shared_data / "ham10000", images=2, samples=40,
                               lime_stages=("logits", "Conv1"), train_images=40)
    card = json.loads((export / "model_card.json").read_text())
    assert card[STUDIES["sanity"].key] == json.loads(json.dumps(section))  # the study's key is the section it wrote
    assert section["served"]["Grad-CAM"] == SERVED
    lime = section["LIME"]
    assert {"logits", "Conv1"} <= set(lime) and "block_13" not in lime and "seed 1" in lime
    for method in METHODS:  # every candidate, so the rule can read them
        assert set(STAGES) <= set(section[method]) and "served runtime" in section[method]
    assert section[SERVED]["served runtime"]["spearman"] > 0.9  # TensorFlow's map is the one the runtime serves
    for row in (section[SERVED], lime):
        assert {"labels shuffled", "labels refit", "centre prior"} <= set(row)
        assert set(row["verdict"]) == {"model_randomisation", "label_randomisation"}
    assert all(section["tensors_shuffled"][stage] > 0 for stage in STAGES)
    heads = section["heads"]
    assert heads["labels refit"]["train_images"] == heads["labels shuffled"]["train_images"] > 7
    rows = (export / "sanity_checks.csv").read_text().count("\n") - 1
    assert rows == section["images"] * sum(len([row for row in section[m].values() if isinstance(row, dict)
                                                and "ci95" in row]) for m in (*METHODS, "LIME"))
    text = (export / "MODEL_CARD.md").read_text()
    assert "Do the maps change when the model does?" in text and f"{SERVED} (served)" in text
    printed = list(STUDIES["sanity"].report(section))  # what `python -m training sanity` prints
    assert any(line.startswith(f"{SERVED}: model randomisation ") for line in printed)
    assert any(line.startswith("LIME ") and "seed 1" in line for line in printed)
