-- Why a job's task was chosen (given, or resembled), as JSON.
ALTER TABLE jobs ADD COLUMN task_choice TEXT;
