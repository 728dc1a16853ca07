"""Input: schemas, readers and the synthetic data generator."""
