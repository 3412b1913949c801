"""Fine-tuning jobs: the ``/v1/fine_tuning/jobs`` service, its store, the progress follower and the
evaluate and register stages (see :mod:`lmdeck.finetune.jobs.service`)."""
