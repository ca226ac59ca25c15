-- Deliveries are queued by the store's Rust code in the transaction that
-- finishes a job, not by a trigger: the trigger that did it goes.
DROP TRIGGER IF EXISTS callbacks_on_finish;
