"""The real app on a free port, called as a user's program would: gradio_client on both endpoints."""

from __future__ import annotations

import pytest


def _confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def test_classify_endpoint_returns_the_seven_probabilities(client, examples, clf):
    from gradio_client import handle_file

    from model import CLASSES, display_name, load_image

    label = client.predict(handle_file(str(examples[0]["path"])), api_name="/classify")
    conf = _confidences(label)
    assert set(conf) == {display_name(c) for c in CLASSES}
    assert abs(sum(conf.values()) - 1) < 1e-4
    expected = clf.predict([load_image(examples[0]["path"])])[0]
    for code, p in zip(CLASSES, expected, strict=True):
        assert conf[display_name(code)] == pytest.approx(float(p), abs=1e-5)
    assert label["label"] == display_name(CLASSES[int(expected.argmax())])


def test_explain_endpoint_outputs_in_contract_order(client, examples):
    from gradio_client import handle_file
    from PIL import Image

    result = client.predict(handle_file(str(examples[1]["path"])), "mel", 200, 0.5, api_name="/explain")
    label, gradcam_path, lime_path, summary, details = result
    assert len(_confidences(label)) == 7
    for path in (gradcam_path, lime_path):
        with Image.open(path) as img:
            assert img.size == (200, 150)  # overlays at the input image's size
    assert "not a medical device" in summary
    assert details["explained_class"] == "mel"
    assert "not a medical device" in details["disclaimer"]
    # settings have defaults: the image alone is enough
    assert len(client.predict(handle_file(str(examples[2]["path"])), api_name="/explain")) == 5


def test_bad_upload_gets_a_clear_error_and_the_server_keeps_serving(client, examples, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "holiday.jpg"
    bad.write_text("definitely not a jpeg")
    with pytest.raises(Exception, match="holiday.jpg: not an image file"):
        client.predict(handle_file(str(bad)), api_name="/classify")
    label = client.predict(handle_file(str(examples[0]["path"])), api_name="/classify")
    assert len(label["confidences"]) == 7
