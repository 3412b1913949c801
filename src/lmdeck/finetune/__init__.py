"""Fine-tuning and the flywheel: a dataset version becomes training data (``prep``), a LoRA adapter
(``training``, run by a ``runners`` job runner), an evaluated and registered model version (``jobs``),
and, chained from production traces, a release (``flywheel``)."""
