//! Shared helpers for the integration tests (fixtures, builds, running the real binaries).
