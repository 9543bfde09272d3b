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
    label, gradcam_path, lime_path, summary, details, similar = result
    assert len(_confidences(label)) == 7
    with Image.open(examples[1]["path"]) as original:
        size = original.size
    for path in (gradcam_path, lime_path):
        with Image.open(path) as img:
            assert img.size == size  # overlays at the input image's size
    assert "not a medical device" in summary
    assert details["explained_class"] == "mel"
    assert "not a medical device" in details["disclaimer"]
    assert len(similar) == 6 and all("similarity" in case["caption"] for case in similar)  # added last
    # settings have defaults: the image alone is enough
    assert len(client.predict(handle_file(str(examples[2]["path"])), api_name="/explain")) == 6


def test_bad_upload_gets_a_clear_error_and_the_server_keeps_serving(client, examples, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "holiday.jpg"
    bad.write_text("definitely not a jpeg")
    with pytest.raises(Exception, match="holiday.jpg: not an image file"):
        client.predict(handle_file(str(bad)), api_name="/classify")
    label = client.predict(handle_file(str(examples[0]["path"])), api_name="/classify")
    assert len(label["confidences"]) == 7


def test_batch_endpoint_with_labels_reports_metrics(client, examples):
    import csv

    from gradio_client import handle_file

    files = [handle_file(str(e["path"])) for e in examples]
    labels = handle_file(str(examples[0]["path"].parent / "examples.csv"))  # image_id, dx columns
    table, summary, _plot, csv_path = client.predict(files, labels, api_name="/batch")
    assert table["headers"][:9] == ["image", "akiec", "bcc", "bkl", "df", "mel", "nv", "vasc", "prediction"]
    assert len(table["data"]) == len(examples)
    assert "balanced accuracy" in summary and f"{len(examples)} labelled images" in summary
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["true_dx"] for r in rows] == [e["dx"] for e in examples]
    assert all(r["prediction"] in [c for c in table["headers"][1:8]] for r in rows)


def test_batch_endpoint_takes_a_zip_without_labels(client, examples, tmp_path):
    import zipfile

    from gradio_client import handle_file

    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for e in examples[:3]:
            zf.write(e["path"], f"set/{e['file']}")
        zf.writestr("set/broken.jpg", b"not an image")
        zf.writestr("set/readme.txt", b"ignored")
    table, summary, plot, _ = client.predict([handle_file(str(archive))], None, api_name="/batch")
    assert len(table["data"]) == 4
    assert "3 of 4 images classified" in summary and "balanced accuracy" not in summary
    broken = next(r for r in table["data"] if r[0] == "broken.jpg")
    assert "not an image" in broken[-1]
    assert "Not read: **broken.jpg** (not an image file" in summary  # which file, and why
    assert plot is None


def test_batch_endpoint_names_a_damaged_zip_as_such(client, examples, tmp_path):
    from gradio_client import handle_file

    whole = tmp_path / "whole.zip"
    import zipfile

    with zipfile.ZipFile(whole, "w") as zf:
        zf.write(examples[0]["path"], examples[0]["file"])
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(whole.read_bytes()[:-30])  # the directory at its end is cut off
    table, summary, _, _ = client.predict([handle_file(str(damaged)), handle_file(str(examples[1]["path"]))],
                                          None, api_name="/batch")
    row = next(r for r in table["data"] if r[0] == "damaged.zip")
    assert "damaged or truncated zip file" in row[-1] and "not an image" not in row[-1]
    assert "1 of 2 images classified" in summary and "damaged.zip" in summary


def test_report_endpoint_makes_a_png(client, examples):
    from gradio_client import handle_file
    from PIL import Image

    path = client.predict(handle_file(str(examples[0]["path"])), "top class", 0.45, None, api_name="/report")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= 800 and img.size[1] >= 800


def test_documented_client_examples_run(app_server, examples):
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, "docs/api_client.py", app_server], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    n = len(examples)
    assert out.count("\n  ") >= 7 + 3 and "classify:" in out and "explain:" in out
    assert "not a medical device" in out and f"batch: {n} of {n} images classified" in out and ".png" in out


def test_every_api_output_is_labelled_and_the_readme_lists_every_detail(client, examples):
    """view_api() used to name two outputs value_19 and value_36; the README omitted five details."""
    import re

    from gradio_client import handle_file

    from tests.conftest import ROOT

    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(api) == {"/classify", "/explain", "/similar", "/batch", "/report"}
    for name, endpoint in api.items():
        for part in endpoint["parameters"] + endpoint["returns"]:
            assert part["label"] and not re.fullmatch(r"value_\d+", part["label"]), (name, part)
    details = client.predict(handle_file(str(examples[0]["path"])), "top class", 100, 0.45, api_name="/explain")[4]
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `/explain` |"))
    assert set(re.findall(r"`(\w+)`", row.split("details (JSON:", 1)[1])) == set(details)
    demo = (ROOT / "demo.py").read_text().split('"""')[1]
    assert all(f"/{n}" in demo for n in ("classify", "explain", "batch", "report"))  # the docstring lists all four


def test_one_verdict_for_one_image_through_every_door(client, examples, clf):
    """The page (/explain), the documented Python call and the CLI flag the same images."""
    import csv
    import io
    from pathlib import Path

    from gradio_client import handle_file

    from model import load_image
    from model.cli import predict_files
    from model.risk import assess

    out = io.StringIO()
    predict_files([Path(e["path"]) for e in examples], out, clf, workers=1, progress=False)
    cli = {Path(r["image"]).name: r["suspicious"] == "1" for r in csv.DictReader(io.StringIO(out.getvalue()))}
    for e in examples[:4]:
        details = client.predict(handle_file(str(e["path"])), "top class", 50, 0.45, api_name="/explain")[4]
        python = assess(clf.predict([load_image(e["path"])])[0])
        assert details["suspicious"] == python.suspicious == cli[e["file"]], e["file"]
        assert details["malignant_threshold"] == round(python.threshold, 6)


def test_explain_withholds_the_verdict_for_a_picture_that_may_not_be_dermoscopic(client, tmp_path):
    """Issue 31: a photographed note got "Dermatofibroma" and "Suspicious ... flagged all the same"."""
    from gradio_client import handle_file

    from tests.test_page import _note

    note = _note(tmp_path / "note.png")
    _, _, _, summary, details, _ = client.predict(handle_file(note), "top class", 100, 0.45, api_name="/explain")
    assert details["not_dermoscopic"] is True
    assert summary.startswith("⚠️ **This may not be a dermoscopic image, so no verdict is given.**")
    assert "Suspicious" not in summary and "Lower risk" not in summary and "not a medical device" in summary
    assert set(details) >= {"probabilities", "prediction", "explained_class", "p_malignant", "malignant_threshold",
                            "suspicious", "uncertain", "lime_r2", "model_version", "disclaimer"}  # every field kept


def test_report_endpoint_refuses_a_lime_overlay_of_another_class(client, examples):
    from gradio_client import handle_file

    image = handle_file(str(examples[0]["path"]))
    lime_png = client.predict(image, "mel", 100, 0.45, api_name="/explain")[2]
    assert client.predict(image, "mel", 0.45, handle_file(lime_png), api_name="/report").endswith(".png")
    with pytest.raises(Exception, match="LIME overlay explains Melanoma"):
        client.predict(image, "nv", 0.45, handle_file(lime_png), api_name="/report")
