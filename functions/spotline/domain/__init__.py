"""Pure rules of the control plane: no boto3, no I/O, no clock of their own.

Run and attempt states, deterministic names, the drop bucket's layout, event parsing, the
classification of ended jobs, the retry ladder, recovery policy, prices and savings, instance
facts, the CreateTrainingJob requests spotline sends, and the deployment's settings. Imports only
:mod:`spotline.config`, :mod:`spotline.metric_names` and other ``domain`` modules.
"""
