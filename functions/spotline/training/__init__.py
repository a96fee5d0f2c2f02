"""A config dropped under ``configs/`` becomes a Managed Spot training run, or a rejection; a run
that completes and passes its ``promote`` gate becomes the model inference uses by default.

Imports :mod:`spotline.runs` and the layers below it; never :mod:`spotline.inference`.
"""
