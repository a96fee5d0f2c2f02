"""The embedded default: spotline on one machine (moto server, a local SageMaker, the CLI)."""
