"""The web app's logic: uploads, the views it shows, shipped examples. ``demo.py`` wires it to Gradio."""
