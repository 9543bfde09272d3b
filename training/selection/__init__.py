"""Choosing the model to ship: the written rule (``rule``), a candidate against the shipped model
(``choose``), and a candidate recipe's runs against the baseline recipe's (``judge``, from v35 on)."""
