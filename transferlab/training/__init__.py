"""Training: the configuration and its plan, callbacks and records, frozen-prefix features,
the arms (`Run`, `TunedRun`, `BaselineRun`), the comparison and its kept result (`Outcome`)."""
