//! normalizer integration tests (in progress).
