//! The order saga: a pure state machine and the orchestrator that persists it and sends its commands.
