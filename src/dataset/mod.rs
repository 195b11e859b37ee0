//! Datasets: FMA-style trees or any folder of audio files, the song catalog, synthetic corpora.
