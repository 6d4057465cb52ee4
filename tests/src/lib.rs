//! End-to-end tests live in `tests/end_to_end/` (one test binary, a module per
//! capability); this library is empty on purpose.
