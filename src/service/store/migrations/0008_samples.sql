-- Which of a model's answers to a task a job is (`sample`), when it sent
-- several: jobs are keyed by (model, task, sample), not by `model#2`.
ALTER TABLE jobs ADD COLUMN sample TEXT;
