"""Images dropped under ``inference/<batch>/`` become Spot inference jobs, and their results.

Intake records each upload once; the closer seals a quiet, ready or full batch exactly once and
launches its parts; the model comes from the folder's ``_job.yaml`` or the promoted one; once
every part has completed or failed for good, the batch is written under ``results/<batch>/``
(predictions streamed, summary, missing images, previews) and announced once. Imports
:mod:`spotline.runs` and the layers below it; never :mod:`spotline.training`.
"""
