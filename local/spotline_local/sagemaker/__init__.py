"""A local SageMaker: the training-job API spotline calls, answered on this machine.

:mod:`~spotline_local.sagemaker.api` serves the API (botocore's model plus the rules the real
service enforces, :mod:`~spotline_local.sagemaker.validation`); each job
(:mod:`~spotline_local.sagemaker.jobs`) runs the container's own entry point as a process on the
``/opt/ml`` contract (:mod:`~spotline_local.sagemaker.runner`) and emits realistic state-change events.
"""
