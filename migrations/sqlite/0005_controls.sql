-- Matched-compute controls and live validation accuracy (SQLite). Lockstep with postgres/0005.
-- controls_pending: 1 while a sweep with `controls:` has yet to plan its control jobs (set at
-- submit and by a --merge submit that adds jobs; 0 once Store::submit_controls ran). A sweep is
-- not finished while it is 1.
ALTER TABLE sweeps ADD COLUMN controls_pending INTEGER NOT NULL DEFAULT 0;
-- Each epoch's accuracy on the validation split (NULL when the run has none).
ALTER TABLE epoch_metrics ADD COLUMN val_acc REAL;
