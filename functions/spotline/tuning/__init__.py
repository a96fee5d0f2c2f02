"""Tuning runs: a config with a ``tuning:`` section becomes a SageMaker hyperparameter tuning job.

The tuner runs the trials (spotline never relaunches one); spotline records each trial as it ends
(:mod:`spotline.tuning.trials`), enforces the run's budget by stopping the tuning job, and when
the tuning job ends settles the run with its best trial, or follows the trials Spot capacity
ended up with one warm-started tuning job (:mod:`spotline.tuning.ended`).
"""
