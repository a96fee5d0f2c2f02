"""spotline's GPU container: the SageMaker-contract runner and the rail-defect detector."""
