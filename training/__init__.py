"""Training, evaluation and export of the HAM10000 MobileNetV2 classifier."""
