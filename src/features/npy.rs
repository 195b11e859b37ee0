//! The .npy files of the feature store (4-byte little-endian elements, C order), written and
//! read in pieces so that memory never holds more than the matrix being read — and, when
//! writing, not even that.
//!
//! Every file is written with a header of fixed size ([`HEADER_BYTES`]): a writer reserves it,
//! streams the elements, and fills in the shape once it knows it. The same header text for the
//! same shape makes a streamed file and a file written in one go byte-identical; numpy, which
//! reads any header length, reads both.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Magic, version 1.0, length and dictionary, padded with spaces to a multiple of 64 bytes:
/// room for any shape of two 20-digit dimensions.
pub const HEADER_BYTES: usize = 128;

/// The element types the store uses.
pub trait Element: Copy {
    /// numpy's type string.
    const DESCR: &'static str;
    fn to_le(self) -> [u8; 4];
    fn from_le(bytes: [u8; 4]) -> Self;
}

impl Element for f32 {
    const DESCR: &'static str = "<f4";
    fn to_le(self) -> [u8; 4] {
        self.to_le_bytes()
    }
    fn from_le(bytes: [u8; 4]) -> Self {
        f32::from_le_bytes(bytes)
    }
}

impl Element for u32 {
    const DESCR: &'static str = "<u4";
    fn to_le(self) -> [u8; 4] {
        self.to_le_bytes()
    }
    fn from_le(bytes: [u8; 4]) -> Self {
        u32::from_le_bytes(bytes)
    }
}

/// The fixed-size header of an array of `T` and `shape`.
fn header<T: Element>(shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}",
        T::DESCR
    );
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&((HEADER_BYTES - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(HEADER_BYTES - 1, b' ');
    out.push(b'\n');
    debug_assert_eq!(
        out.len(),
        HEADER_BYTES,
        "shape {shape:?} does not fit the header"
    );
    out
}

/// A .npy file written element by element; [`NpyWriter::finish`] gives it its shape.
pub struct NpyWriter<T: Element> {
    path: PathBuf,
    file: BufWriter<File>,
    elements: u64,
    _element: PhantomData<T>,
}

impl<T: Element> NpyWriter<T> {
    /// Creates `path` with the header's room reserved.
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut file = BufWriter::new(File::create(path)?);
        file.write_all(&[0; HEADER_BYTES])?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            elements: 0,
            _element: PhantomData,
        })
    }

    /// Appends elements (C order).
    pub fn write(&mut self, values: impl IntoIterator<Item = T>) -> io::Result<()> {
        for v in values {
            self.file.write_all(&v.to_le())?;
            self.elements += 1;
        }
        Ok(())
    }

    /// Writes the header of `shape` (which must account for every element written), flushes
    /// and syncs the file.
    pub fn finish(self, shape: &[usize]) -> io::Result<()> {
        let expected: u64 = shape.iter().map(|&d| d as u64).product();
        if expected != self.elements {
            return Err(io::Error::other(format!(
                "{}: shape {shape:?} needs {expected} elements but {} were written",
                self.path.display(),
                self.elements
            )));
        }
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header::<T>(shape))?;
        file.sync_all()
    }
}

/// Writes a whole array of `shape` to `path` (not atomically: callers write into a staging
/// folder).
pub fn write<T: Element>(
    path: &Path,
    shape: &[usize],
    values: impl IntoIterator<Item = T>,
) -> io::Result<()> {
    let mut w = NpyWriter::create(path)?;
    w.write(values)?;
    w.finish(shape)
}

/// An opened .npy file: its shape, checked against the file's length before anything is
/// allocated (a damaged header must not make the reader allocate what it claims).
pub struct NpyFile<T: Element> {
    file: File,
    pub shape: Vec<usize>,
    data_offset: u64,
    _element: PhantomData<T>,
}

impl<T: Element> NpyFile<T> {
    pub fn open(path: &Path) -> Result<Self, String> {
        let mut file = File::open(path).map_err(|e| crate::fsutil::explain(path, &e))?;
        let mut start = [0u8; 12];
        let got = read_up_to(&mut file, &mut start).map_err(|e| e.to_string())?;
        let (header_len, text) = match &start[..got.min(10)] {
            [0x93, b'N', b'U', b'M', b'P', b'Y', 1, _, a, b] => {
                (10 + u16::from_le_bytes([*a, *b]) as usize, 10)
            }
            [0x93, b'N', b'U', b'M', b'P', b'Y', 2 | 3, _, _, _] if got == 12 => (
                12 + u32::from_le_bytes([start[8], start[9], start[10], start[11]]) as usize,
                12,
            ),
            _ => return Err("not a .npy file (bad magic or version)".into()),
        };
        let file_len = file.metadata().map_err(|e| e.to_string())?.len();
        if header_len as u64 > file_len || header_len > 1 << 16 {
            return Err(format!("truncated .npy header ({file_len} bytes)"));
        }
        let mut header = vec![0u8; header_len - text];
        file.seek(SeekFrom::Start(text as u64))
            .and_then(|_| file.read_exact(&mut header))
            .map_err(|e| e.to_string())?;
        let header = String::from_utf8_lossy(&header);
        let field = |name: &str| {
            header
                .split_once(&format!("'{name}':"))
                .map(|(_, rest)| rest.trim_start())
                .ok_or_else(|| format!("no {name} in the .npy header"))
        };
        let descr = field("descr")?;
        if !descr.starts_with(&format!("'{}'", T::DESCR)) {
            return Err(format!(
                "element type {} where {} was expected",
                descr.split(',').next().unwrap_or(descr),
                T::DESCR
            ));
        }
        if !field("fortran_order")?.starts_with("False") {
            return Err("Fortran-order arrays are not read: save it in C order".into());
        }
        let dims = field("shape")?
            .strip_prefix('(')
            .and_then(|rest| rest.split_once(')'))
            .map(|(dims, _)| dims)
            .ok_or("no shape in the .npy header")?;
        let shape = dims
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| {
                d.parse::<usize>()
                    .map_err(|_| format!("bad dimension {d:?} in the .npy shape"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let elements = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .ok_or("the .npy shape overflows")?;
        let data = file_len - header_len as u64;
        if elements.checked_mul(4) != Some(data) {
            return Err(format!(
                "the header's shape ({dims}) needs {elements} × 4 bytes but {data} follow it"
            ));
        }
        Ok(Self {
            file,
            shape,
            data_offset: header_len as u64,
            _element: PhantomData,
        })
    }

    /// `count` elements from element `first` on, read without moving the file's cursor (so a
    /// shared `NpyFile` serves parallel readers).
    pub fn read_at(&self, first: usize, count: usize) -> io::Result<Vec<T>> {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0u8; count * 4];
        self.file
            .read_exact_at(&mut bytes, self.data_offset + first as u64 * 4)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| T::from_le([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Every element, read in blocks into one vector: memory ~ the array.
    pub fn read_all(mut self) -> io::Result<Vec<T>> {
        let total: usize = self.shape.iter().product();
        let mut out = Vec::with_capacity(total);
        self.file.seek(SeekFrom::Start(self.data_offset))?;
        let mut reader = io::BufReader::new(self.file);
        let mut block = vec![0u8; 1 << 16];
        while out.len() < total {
            let n = ((total - out.len()) * 4).min(block.len());
            reader.read_exact(&mut block[..n])?;
            out.extend(
                block[..n]
                    .chunks_exact(4)
                    .map(|b| T::from_le([b[0], b[1], b[2], b[3]])),
            );
        }
        Ok(out)
    }
}

/// Reads into `buf` until it is full or the file ends; how many bytes were read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_file_is_what_numpy_writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let mut w = NpyWriter::<f32>::create(&path).unwrap();
        w.write([1.0, 2.0, 3.0]).unwrap();
        w.write([4.0, 5.0, 6.0]).unwrap();
        w.finish(&[2, 3]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), HEADER_BYTES + 24);
        let text = String::from_utf8_lossy(&bytes[10..HEADER_BYTES]);
        assert!(
            text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"),
            "{text}"
        );
        assert!(text.ends_with(" \n"));
        // ndarray-npy, an independent reader, agrees.
        let a: ndarray::Array2<f32> = ndarray_npy::read_npy(&path).unwrap();
        assert_eq!(a, ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        let f = NpyFile::<f32>::open(&path).unwrap();
        assert_eq!(f.shape, vec![2, 3]);
        assert_eq!(f.read_at(4, 2).unwrap(), vec![5.0, 6.0]);
        assert_eq!(f.read_all().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // A 1-D array keeps numpy's trailing comma.
        write(&path, &[3], [7u32, 8, 9]).unwrap();
        let u: ndarray::Array1<u32> = ndarray_npy::read_npy(&path).unwrap();
        assert_eq!(u.to_vec(), vec![7, 8, 9]);
    }

    #[test]
    fn a_wrong_shape_type_or_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let mut w = NpyWriter::<u32>::create(&path).unwrap();
        w.write([1, 2, 3]).unwrap();
        let err = w.finish(&[2, 2]).unwrap_err().to_string();
        assert!(err.contains("needs 4 elements but 3"), "{err}");
        write(&path, &[3], [1u32, 2, 3]).unwrap();
        let err = NpyFile::<f32>::open(&path).err().unwrap();
        assert!(err.contains("<u4"), "{err}");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&path, &bytes).unwrap();
        let err = NpyFile::<u32>::open(&path).err().unwrap();
        assert!(err.contains("needs 3 × 4 bytes but 11"), "{err}");
        std::fs::write(&path, b"hello").unwrap();
        assert!(NpyFile::<u32>::open(&path).is_err());
    }
}
