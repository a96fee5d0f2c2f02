"""What every run shares, training or inference: its first attempt, what happens when a job ends
(classify, then relaunch or settle), the relaunch itself, and publishing a settled run once.

What a *completed* job publishes depends on its kind; the kinds plug in through
:class:`spotline.runs.publish.CompletedPublishers`, so this folder never imports the flows above it.
Imports :mod:`spotline.ledger`, :mod:`spotline.adapters` and :mod:`spotline.domain`.
"""
