//! The Ledgerline event contract.
