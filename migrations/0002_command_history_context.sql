-- Which plugin served a command, which request it came in on, and through which API, so a
-- history row can be matched with the logs.
ALTER TABLE command_history ADD COLUMN plugin TEXT;
ALTER TABLE command_history ADD COLUMN request_id TEXT;
ALTER TABLE command_history ADD COLUMN source TEXT;
