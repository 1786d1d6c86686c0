//! End-to-end tests of the built binaries; see `tests/`.
