//! Property tests on every decoder of untrusted bytes: the ciphertext wire format (queries and
//! replies), model files, key files, feature stores and audio headers (WAV, MP3 frames).
//! Valid inputs made by the real encoders are mutated (bit flips, overwritten bytes, length
//! fields set to 2^31 / 2^32 − 1 / 2^63, truncation, insertion, deletion), and random bytes are
//! fed as they are: decoding returns Ok or an error, never panics, and no single allocation
//! exceeds [`MAX_ALLOCATION`] (inputs are a few hundred KiB at most, so a length field taken
//! at its word would show up as a multi-GiB request).

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;

use fhe_shazam::audio::{load, write_wav, Audio, LoadOptions};
use fhe_shazam::dataset::synth::{write_corpus, SynthParams};
use fhe_shazam::dataset::{scan, ScanOptions};
use fhe_shazam::features::{extract, FeatureParams, FeatureSet};
use fhe_shazam::fhe::{
    wire, ClientKey, GlweParams, IntegerLinear, Layout, ScoringSpec, ServerModel,
};
use fhe_shazam::model::{fit, LogisticParams, ModelFile, QuantOptions, QuantizedModel};
use fhe_shazam::net::KeyStore;

/// The largest single allocation a decoder may ask for on these inputs.
const MAX_ALLOCATION: usize = 64 << 20;

/// Tracks the largest allocation request of the current thread.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only records the requested size.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `decode` and returns the largest single allocation it made.
fn largest_allocation<T>(decode: impl FnOnce() -> T) -> usize {
    LARGEST.with(|l| l.set(0));
    let out = decode();
    drop(out);
    LARGEST.with(|l| l.get())
}

/// One change to a valid input.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    /// A little-endian length field at `at` set to a huge value.
    Huge {
        at: usize,
        value: u64,
        width: u8,
    },
    Truncate {
        to: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = prop_oneof![
        Just(u64::from(u32::MAX)),
        Just(1u64 << 31),
        Just(1u64 << 32),
        Just(1u64 << 63),
        Just(u64::MAX)
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), huge, prop_oneof![Just(4u8), Just(8u8)])
            .prop_map(|(at, value, width)| Mutation::Huge { at, value, width }),
        any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
    ]
}

/// Positions are taken modulo the input length; early header bytes are hit more often (they
/// hold the magic, versions, sizes and lengths).
fn apply(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for m in mutations {
        let n = b.len().max(1);
        let pos = |at: usize| {
            if at.is_multiple_of(2) {
                (at / 2) % n.min(128)
            } else {
                (at / 2) % n
            }
        };
        match m {
            Mutation::Flip { at, bit } if !b.is_empty() => {
                let p = pos(*at);
                b[p] ^= 1 << bit;
            }
            Mutation::Set { at, byte } if !b.is_empty() => {
                let p = pos(*at);
                b[p] = *byte;
            }
            Mutation::Huge { at, value, width } => {
                let w = usize::from(*width);
                if b.len() >= w {
                    let p = pos(*at).min(b.len() - w);
                    b[p..p + w].copy_from_slice(&value.to_le_bytes()[..w]);
                }
            }
            Mutation::Truncate { to } => b.truncate(to % (b.len() + 1)),
            Mutation::Insert { at, bytes } => {
                let p = pos(*at).min(b.len());
                b.splice(p..p, bytes.iter().copied());
            }
            Mutation::Delete { at, len } if !b.is_empty() => {
                let p = pos(*at);
                let end = (p + len).min(b.len());
                b.drain(p..end);
            }
            _ => {}
        }
    }
    b
}

fn mutated(valid: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(mutation(), 1..5).prop_map(move |ms| apply(valid, &ms))
}

/// A small layer, its scoring spec, a real encrypted query and a real reply.
struct Wire {
    spec: ScoringSpec,
    query: Vec<u8>,
    reply: Vec<u8>,
}

fn wire_fixture() -> &'static Wire {
    static W: OnceLock<Wire> = OnceLock::new();
    W.get_or_init(|| {
        let params = GlweParams::TUNIFORM_2M128_N2048;
        let (d, c, j) = (4, 5, 3);
        let layer = IntegerLinear {
            weights: ndarray::Array2::from_shape_fn((d, c), |(i, k)| {
                (i * 7 + k * 3) as i64 % 9 - 4
            }),
            bias: ndarray::Array1::from_iter((0..c).map(|k| k as i64)),
            input_min: -8,
            input_max: 7,
        };
        let layout = Layout::densest(j, d, params.polynomial_size).unwrap();
        let server = ServerModel::new(&layer, layout, params).unwrap();
        let spec = server.spec().clone();
        let key = ClientKey::generate(&params).unwrap();
        let q = ndarray::Array2::from_shape_fn((j, d), |(a, b)| (a + b) as i64 % 8 - 4);
        let encrypted = key.encrypt_query(&spec, q.view()).unwrap();
        let reply = wire::encode_scores(&server.score(&encrypted).unwrap());
        Wire {
            query: wire::encode_query(&encrypted),
            reply,
            spec,
        }
    })
}

/// A real feature store, model file and key file of a 3-song synthetic corpus.
struct Files {
    _dir: tempfile::TempDir,
    store: Vec<(&'static str, Vec<u8>)>,
    model: Vec<u8>,
    key: Vec<u8>,
    key_name: PathBuf,
    wav: Vec<u8>,
}

fn files() -> &'static Files {
    static F: OnceLock<Files> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("synth");
        let params = SynthParams {
            songs: 3,
            seconds: 4.0,
            seed: 11,
            ..SynthParams::default()
        };
        write_corpus(&root, &params, &|| {}).unwrap();
        let catalog = scan(&root, &ScanOptions::default()).unwrap();
        let features = FeatureParams::default();
        let store_dir = dir.path().join("features");
        let (set, _) = extract(
            &root,
            &catalog,
            &LoadOptions::default(),
            &features,
            &store_dir,
            &|| {},
        )
        .unwrap();
        let store = ["features.json", "features.npy", "labels.npy", "chunks.npy"]
            .map(|name| (name, std::fs::read(store_dir.join(name)).unwrap()))
            .to_vec();
        let x = set.features.view();
        let float = fit(x, &set.labels, set.n_songs(), &LogisticParams::default()).unwrap();
        let q = QuantizedModel::from_float(&float, x, &QuantOptions::concrete(8)).unwrap();
        let model_path = dir.path().join("q8.json");
        ModelFile::quantized(features, set.catalog(), q, None)
            .unwrap()
            .save(&model_path)
            .unwrap();
        let keys = KeyStore::new(dir.path().join("keys"));
        let params = GlweParams::TUNIFORM_2M128_N2048;
        keys.load_or_generate(&params, false).unwrap();
        let key_path = keys.path_for(&params);
        let wav_path = dir.path().join("tone.wav");
        write_wav(
            &wav_path,
            &Audio {
                samples: (0..22_050).map(|n| (n as f32 * 0.05).sin() * 0.3).collect(),
                sample_rate: 22_050,
            },
        )
        .unwrap();
        Files {
            store,
            model: std::fs::read(&model_path).unwrap(),
            key: std::fs::read(&key_path).unwrap(),
            key_name: key_path.file_name().unwrap().into(),
            wav: std::fs::read(&wav_path).unwrap(),
            _dir: dir,
        }
    })
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Loads a key from `bytes` as the client would; the folder and file are private.
fn load_key(bytes: &[u8]) -> usize {
    use std::os::unix::fs::PermissionsExt;
    let f = files();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = write(&keys, &f.key_name.to_string_lossy(), bytes);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let store = KeyStore::new(&keys);
    largest_allocation(|| {
        store
            .load_or_generate(&GlweParams::TUNIFORM_2M128_N2048, false)
            .map(|_| ())
    })
}

fn load_audio(name: &str, bytes: &[u8]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, bytes);
    largest_allocation(|| load(&path, &LoadOptions::default()).map(|a| a.samples.len()))
}

/// MP3-looking bytes: an ID3 tag (size field fuzzed), then frames with valid sync words and
/// header fields, random payloads.
fn mp3_like() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<[u8; 4]>(),
        prop::collection::vec(
            (any::<u8>(), prop::collection::vec(any::<u8>(), 0..600)),
            1..8,
        ),
    )
        .prop_map(|(id3_size, frames)| {
            let mut b = b"ID3\x04\x00\x00".to_vec();
            b.extend_from_slice(&id3_size.map(|x| x & 0x7f));
            for (flags, payload) in frames {
                b.extend_from_slice(&[0xff, 0xfb, 0x90 | (flags & 0x0c), 0x64 | (flags & 0x03)]);
                b.extend_from_slice(&payload);
            }
            b
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_queries_never_panic_or_overallocate(bytes in mutated(&wire_fixture().query)) {
        let w = wire_fixture();
        let largest = largest_allocation(|| wire::decode_query(&bytes, &w.spec).map(|_| ()));
        prop_assert!(largest <= MAX_ALLOCATION, "{largest} bytes");
    }

    #[test]
    fn mutated_replies_never_panic_or_overallocate(bytes in mutated(&wire_fixture().reply)) {
        let w = wire_fixture();
        let largest = largest_allocation(|| wire::decode_scores(&bytes, &w.spec).map(|_| ()));
        prop_assert!(largest <= MAX_ALLOCATION, "{largest} bytes");
    }

    #[test]
    fn random_bytes_are_not_ciphertexts(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let w = wire_fixture();
        prop_assert!(wire::decode_query(&bytes, &w.spec).is_err());
        prop_assert!(wire::decode_scores(&bytes, &w.spec).is_err());
    }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn mutated_model_files_never_panic_or_overallocate(bytes in mutated(&files().model)) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "q8.json", &bytes);
        let largest = largest_allocation(|| ModelFile::load(&path).map(|_| ()));
        prop_assert!(largest <= MAX_ALLOCATION, "{largest} bytes");
    }

    #[test]
    fn mutated_key_files_never_panic_or_overallocate(bytes in mutated(&files().key)) {
        let largest = load_key(&bytes);
        prop_assert!(largest <= MAX_ALLOCATION, "{largest} bytes");
    }

    #[test]
    fn mutated_feature_stores_never_panic_or_overallocate(
        which in 0usize..4,
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let f = files();
        let dir = tempfile::tempdir().unwrap();
        for (k, (name, bytes)) in f.store.iter().enumerate() {
            let bytes = if k == which { apply(bytes, &mutations) } else { bytes.clone() };
            write(dir.path(), name, &bytes);
        }
        let largest = largest_allocation(|| FeatureSet::load(dir.path()).map(|_| ()));
        prop_assert!(largest <= MAX_ALLOCATION, "{largest} bytes");
    }

    #[test]
    fn mutated_wav_files_never_panic_or_overallocate(bytes in mutated(&files().wav)) {
        let largest = load_audio("song.wav", &bytes);
        prop_assert!(largest <= MAX_ALLOCATION, "{largest} bytes");
    }

    #[test]
    fn mp3_like_bytes_never_panic_or_overallocate(bytes in mp3_like()) {
        let largest = load_audio("song.mp3", &bytes);
        prop_assert!(largest <= MAX_ALLOCATION, "{largest} bytes");
    }

    #[test]
    fn random_bytes_as_audio_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        for name in ["x.wav", "x.mp3", "x.flac", "x.ogg"] {
            let largest = load_audio(name, &bytes);
            prop_assert!(largest <= MAX_ALLOCATION, "{name}: {largest} bytes");
        }
    }
}

/// Explicit huge length fields: each must be refused without allocating what it claims.
#[test]
fn huge_length_fields_are_refused_without_allocating_them() {
    let f = files();
    // A .npy header claiming 2^31 × 20 f32 rows.
    let npy = &f
        .store
        .iter()
        .find(|(n, _)| *n == "features.npy")
        .unwrap()
        .1;
    let header_end = npy.iter().position(|&b| b == b'\n').unwrap() + 1;
    let header = String::from_utf8_lossy(&npy[10..header_end]).into_owned();
    let start = header.find("'shape': (").unwrap() + "'shape': (".len();
    let end = start + header[start..].find(',').unwrap();
    let claimed = format!("{}{}{}", &header[..start], 1u64 << 31, &header[end..]);
    let mut big = npy[..8].to_vec();
    big.extend_from_slice(&(claimed.len() as u16).to_le_bytes());
    big.extend_from_slice(claimed.as_bytes());
    big.extend_from_slice(&npy[header_end..]);
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &f.store {
        let bytes = if *name == "features.npy" { &big } else { bytes };
        write(dir.path(), name, bytes);
    }
    let mut result = None;
    let largest = largest_allocation(|| result = Some(FeatureSet::load(dir.path()).map(|_| ())));
    let err = result.unwrap().unwrap_err().to_string();
    assert!(err.contains("features.npy"), "{err}");
    assert!(largest <= MAX_ALLOCATION, "npy shape 2^31: {largest} bytes");

    // A WAV whose data chunk claims 4 GiB.
    let wav = &f.wav;
    let data = wav.windows(4).position(|w| w == b"data").unwrap();
    let mut huge = wav.clone();
    huge[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let largest = load_audio("huge.wav", &huge);
    assert!(largest <= MAX_ALLOCATION, "wav data 4 GiB: {largest} bytes");

    // A query whose body length field says 2^32 − 1.
    let w = wire_fixture();
    let mut q = w.query.clone();
    let len_at = 61 + 16;
    q[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut result = None;
    let largest = largest_allocation(|| result = Some(wire::decode_query(&q, &w.spec).map(|_| ())));
    assert!(result.unwrap().is_err());
    assert!(
        largest <= MAX_ALLOCATION,
        "query body 2^32: {largest} bytes"
    );
}
