//! Standard Webhooks v1 signing and verification (being written).
