"""Running a grid: configuration, units, devices, identity and the training harness."""
