"""What every run shares, training or inference: its first attempt, what happens when a job ends
(classify, then relaunch or settle), the relaunch itself, and publishing a settled run once.

What a *completed* job publishes, and what a run that fails for good does, depend on its kind;
the kinds plug in through :class:`spotline.runs.publish.CompletedPublisher` and
:class:`spotline.runs.publish.FailedPublisher`, so this folder never imports the flows above it.
Imports :mod:`spotline.ledger`, :mod:`spotline.adapters` and :mod:`spotline.domain`.
"""
