//! Bounded memory buffer that spills to a temp file.
