-- The timeout sweeper's read: running sagas whose deadline has passed,
-- earliest first. Terminal sagas have no deadline and stay out of the index.
CREATE INDEX saga_due ON saga (deadline) WHERE deadline IS NOT NULL;
