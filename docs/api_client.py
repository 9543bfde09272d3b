"""Calling the app from Python with gradio_client: every endpoint once.

    python docs/api_client.py [URL]      # default http://127.0.0.1:7860/

The test suite runs this file against a live app, so these examples stay true.
"""

import sys
from pathlib import Path

from gradio_client import Client, handle_file

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7860/"
examples = Path(__file__).resolve().parent.parent / "examples"
image = handle_file(str(examples / "ISIC_0033394.jpg"))

client = Client(url)

# /classify: image -> probabilities ({"label": top class, "confidences": [{"label", "confidence"}, ...]})
label = client.predict(image, api_name="/classify")
print("classify:", label["label"])
for item in label["confidences"]:
    print(f"  {item['label']}: {item['confidence']:.3f}")

# /explain: image, class to explain, LIME samples, Grad-CAM opacity (all but the image optional)
# -> probabilities, Grad-CAM PNG path, LIME PNG path, risk summary (Markdown), details (dict), similar cases
label, gradcam_png, lime_png, summary, details, similar = client.predict(
    image, "top class", 1000, 0.45, api_name="/explain"
)
print("explain:", details["prediction"], f"P(malignant)={details['p_malignant']:.2f}",
      "suspicious" if details["suspicious"] else "not flagged")
print("  Grad-CAM overlay:", gradcam_png)
print("  LIME overlay:", lime_png)
print("  disclaimer:", details["disclaimer"])
for case in similar:  # gallery items: {"image": {"path": ...}, "caption": "Melanoma (mel), histopathology; ..."}
    print("  similar:", case["caption"])

# /similar: image -> the same six similar confirmed cases alone
print("similar:", len(client.predict(image, api_name="/similar")), "cases")

# /batch: list of images (or zips), optional labels CSV (image_id, dx)
# -> table {"headers", "data"}, summary (Markdown), confusion-matrix plot or None, CSV path
table, batch_summary, plot, csv_path = client.predict(
    [handle_file(str(p)) for p in sorted(examples.glob("*.jpg"))],
    handle_file(str(examples / "examples.csv")),
    api_name="/batch",
)
print("batch:", batch_summary.splitlines()[0], "->", csv_path)

# /report: image, class to explain, opacity, LIME overlay to include (or None) -> PNG path
report_png = client.predict(image, "top class", 0.45, handle_file(lime_png), api_name="/report")
print("report:", report_png)
