"""Training schedules: freezing, staged unfreezing, tuning."""
