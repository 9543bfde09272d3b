"""The web app's logic: uploads, the views it shows, shipped examples. ``demo.py`` wires it to Gradio.

Imports sit at the top of each module, with two exceptions, both for start-up time (``import demo`` loads
neither scikit-learn nor matplotlib; on 2 busy cores they take about 4 s and 1 s to import): scikit-learn
(``model.metrics``: the batch tab's metrics, also loaded by ``views.warm_up`` once the app is serving) and
matplotlib's figures (``app.report``: the PNG report) are imported where they are first used. The
explanations' libraries load the same way, behind ``explain/__init__``.
"""
