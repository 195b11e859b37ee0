//! Deterministic synthetic music-like songs: the built-in default dataset.
