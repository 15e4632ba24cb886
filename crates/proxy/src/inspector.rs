//! CDP inspector source.
