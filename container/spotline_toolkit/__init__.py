"""What any training image needs to be Spot-safe under spotline, on the standard library alone.

* :mod:`~spotline_toolkit.checkpoints`: atomic files, numbered checkpoints with a ``latest`` pointer,
  a reader that falls back past truncated or corrupt ones;
* :mod:`~spotline_toolkit.stopping`: SIGTERM as a "stop soon" flag, with a watchdog inside
  SageMaker's 120 s;
* :mod:`~spotline_toolkit.failures`: ``UserError`` / ``PlatformError`` written to
  ``/opt/ml/output/failure`` with the exit status spotline's control plane reads;
* :mod:`~spotline_toolkit.metrics`: metric lines and the regexes (``job.metrics``) that read them;
* :mod:`~spotline_toolkit.paths`: the ``/opt/ml`` tree (``SAGEMAKER_BASE_DIR`` overrides it);
* :mod:`~spotline_toolkit.torch_state`: the same checkpoints holding PyTorch state (imports torch
  only when used).

Copy the folder into your image (``COPY container/spotline_toolkit/ /opt/spotline_toolkit/`` and put
its parent on ``PYTHONPATH``); nothing else of spotline comes with it.
"""
