//! Cross-service tests live in tests/e2e.
