//! NumPy `.npz` archives (SPEC §3): large inputs that need not be JSON text, and answers
//! written as their binary64 and binary32 roundings.
//!
//! Reading keeps every value exact: float64 arrays as they are, float32 widened to binary64
//! (exact), integers as `i64`; C and Fortran order; either byte order. Every array's
//! declared size is checked against the bytes the archive really holds before anything is
//! allocated, so a forged header cannot exhaust memory, and the whole archive is bounded by
//! [`MAX_NPZ_BYTES`]. Errors name the file and the array.

use crate::error::{Error, ErrorKind, Result};
use npyz::npz::{NpzArchive, NpzWriter};
use npyz::{AutoSerialize, Deserialize, NpyFile, Order, WriterBuilder};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The largest `.npz` archive lossref reads: 4 GiB of array data, uncompressed.
pub const MAX_NPZ_BYTES: u64 = 4 << 30;

/// The default limit on a case's `.npz` inputs read from a file (`lossref eval`): 64 MiB
/// of array data, uncompressed, as for a JSON case file. The certified evaluation holds an
/// enclosure of every intermediate, many times the inputs' size, so the limit bounds its
/// memory; `lossref eval --max-input-mib N` raises it ([`set_input_limit`]).
pub const DEFAULT_INPUT_BYTES: u64 = 64 << 20;

static INPUT_LIMIT: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_INPUT_BYTES);

/// Sets the limit on the array data of `.npz` inputs read from files ([`read`]), at most
/// [`MAX_NPZ_BYTES`].
pub fn set_input_limit(bytes: u64) {
    INPUT_LIMIT.store(
        bytes.min(MAX_NPZ_BYTES),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// An array's values.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// float64 (or float32, widened exactly).
    Float(Vec<f64>),
    /// Any integer type.
    Int(Vec<i64>),
    /// Unicode strings (numpy `<U…`), written for decimal values.
    Text(Vec<String>),
}

/// One named array: its shape (row-major) and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// The shape, e.g. `[N, D]`; `[]` for a scalar.
    pub shape: Vec<usize>,
    /// The values in row-major (C) order.
    pub data: Data,
    /// True when the file stored float32 values.
    pub was_f32: bool,
}

fn io_error(file: &str, reason: impl Into<String>) -> Error {
    Error::new(ErrorKind::Io, file, reason)
}

/// Reads every array of the `.npz` at `path`.
///
/// # Errors
/// A file that cannot be opened or is not an `.npz`, an array of an unsupported type (only
/// floats, integers and unicode strings are read), a pickled array, or a declared size larger than what
/// the archive holds, each naming the file and the array.
pub fn read(path: &Path) -> Result<BTreeMap<String, Array>> {
    let file = path.display().to_string();
    let archive = NpzArchive::open(path)
        .map_err(|e| io_error(&file, format!("cannot open as a numpy .npz archive: {e}")))?;
    let limit = INPUT_LIMIT.load(std::sync::atomic::Ordering::Relaxed);
    read_archive(archive, &file, limit)
}

/// [`read`] for an archive held in memory (the embedded corpus); `file` names it in errors.
///
/// # Errors
/// As [`read`].
pub fn read_bytes(bytes: &[u8], file: &str) -> Result<BTreeMap<String, Array>> {
    let archive = NpzArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| io_error(file, format!("cannot open as a numpy .npz archive: {e}")))?;
    read_archive(archive, file, MAX_NPZ_BYTES)
}

fn read_archive<R: Read + std::io::Seek>(
    mut archive: NpzArchive<R>,
    file: &str,
    limit: u64,
) -> Result<BTreeMap<String, Array>> {
    let file = file.to_string();
    let zip = archive.zip_archive();
    let mut total: u64 = 0;
    let mut out = BTreeMap::new();
    for index in 0..zip.len() {
        let entry = zip
            .by_index(index)
            .map_err(|e| io_error(&file, format!("entry {index}: {e}")))?;
        let entry_name = entry.name().to_string();
        let Some(name) = entry_name.strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        let stored = entry.size();
        total = total.saturating_add(stored);
        if total > limit {
            let raise = if limit < MAX_NPZ_BYTES {
                format!(
                    "; `lossref eval --max-input-mib N` raises it (the certified evaluation takes \
                     many times the inputs' size in memory), up to {} MiB",
                    MAX_NPZ_BYTES >> 20
                )
            } else {
                String::new()
            };
            return Err(io_error(
                &file,
                format!(
                    "holds more than the limit of {} MiB of arrays{raise}",
                    limit >> 20
                ),
            ));
        }
        let place = format!("{file}:{name}");
        let mut entry = entry.take(stored);
        let head = checked_header(&mut entry, &place)?;
        let npy = NpyFile::new(std::io::Cursor::new(head).chain(entry))
            .map_err(|e| io_error(&place, format!("not a numpy array: {e}")))?;
        out.insert(name, array(npy, stored, &place)?);
    }
    Ok(out)
}

/// The longest `.npy` header read (numpy writes a few hundred bytes).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// Reads an `.npy` entry's magic string, version and header dictionary (and returns those
/// bytes), refusing a header over [`MAX_HEADER_BYTES`], or a shape that is not a tuple of
/// decimal integers or whose element count overflows 64 bits, which the `.npy` reader would
/// multiply out unchecked. Anything else malformed is left to that reader, which names it.
fn checked_header(entry: &mut impl Read, place: &str) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    entry
        .by_ref()
        .take(10)
        .read_to_end(&mut head)
        .map_err(|e| io_error(place, format!("cannot read: {e}")))?;
    if head.len() < 10 || !head.starts_with(b"\x93NUMPY") {
        return Ok(head);
    }
    let header_len = if head[6] == 1 {
        usize::from(u16::from_le_bytes([head[8], head[9]]))
    } else {
        let mut more = [0u8; 2];
        if entry.read_exact(&mut more).is_err() {
            return Ok(head);
        }
        head.extend_from_slice(&more);
        u32::from_le_bytes([head[8], head[9], more[0], more[1]]) as usize
    };
    if header_len > MAX_HEADER_BYTES {
        return Err(io_error(
            place,
            format!("has a header of {header_len} bytes, over the limit of {MAX_HEADER_BYTES}"),
        ));
    }
    let start = head.len();
    entry
        .by_ref()
        .take(header_len as u64)
        .read_to_end(&mut head)
        .map_err(|e| io_error(place, format!("cannot read: {e}")))?;
    let text = String::from_utf8_lossy(&head[start..]);
    // Every tuple of the header (numpy writes one, the shape) must be plain decimal
    // integers whose product fits: the reader parses Python expressions such as
    // `109+511627776` and multiplies the dimensions out unchecked.
    let mut rest: &str = &text;
    while let Some(open) = rest.find('(') {
        let Some(len) = rest[open..].find(')') else {
            break;
        };
        let tuple = &rest[open + 1..open + len];
        rest = &rest[open + len..];
        let mut size = Some(16u64); // 16 bytes: the widest item lossref could be asked to read
        for dim in tuple.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let n = dim
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| dim.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| {
                    io_error(
                        place,
                        format!(
                            "has a header tuple ({tuple}) that is not a shape of decimal integers"
                        ),
                    )
                })?;
            // Zero dimensions are left out: the reader's strides multiply the dimensions
            // one by one, so (0, 2^40, 2^40) overflows there although it holds no values.
            if n != 0 {
                size = size.and_then(|s| s.checked_mul(n));
            }
        }
        if size.is_none() {
            return Err(io_error(
                place,
                format!("declares the shape ({tuple}), whose size overflows 64 bits"),
            ));
        }
    }
    Ok(head)
}

fn array<R: Read>(npy: NpyFile<R>, stored: u64, place: &str) -> Result<Array> {
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| io_error(place, "a dimension does not fit in memory"))?;
    let item = npy.dtype().num_bytes().unwrap_or(0) as u64;
    let declared = npy.len().saturating_mul(item.max(1));
    if declared > stored {
        return Err(io_error(
            place,
            format!(
                "declares {} values ({declared} bytes) but the archive holds only {stored} bytes",
                npy.len()
            ),
        ));
    }
    let fortran = npy.order() == Order::Fortran;
    let descr = npy.dtype().descr();
    let bad_type = || {
        io_error(
            place,
            format!(
                "has dtype {descr}; lossref reads float64, float32, integer and unicode arrays"
            ),
        )
    };
    let read_err = |e: std::io::Error| io_error(place, format!("cannot read the values: {e}"));
    let (data, was_f32) = match npy.try_data::<f64>() {
        Ok(r) => (Data::Float(collect(r).map_err(read_err)?), false),
        Err(npy) => match npy.try_data::<f32>() {
            Ok(r) => (
                Data::Float(
                    collect(r)
                        .map_err(read_err)?
                        .into_iter()
                        .map(f64::from)
                        .collect(),
                ),
                true,
            ),
            Err(npy) => match npy.try_data::<String>() {
                Ok(r) => (Data::Text(collect(r).map_err(read_err)?), false),
                Err(npy) => (
                    Data::Int(integers(npy).ok_or_else(bad_type)?.map_err(read_err)?),
                    false,
                ),
            },
        },
    };
    let data = if fortran && shape.len() == 2 {
        transpose(data, shape[0], shape[1])
    } else if fortran && shape.len() > 2 {
        return Err(io_error(
            place,
            "is a Fortran-ordered array of more than 2 dimensions",
        ));
    } else {
        data
    };
    Ok(Array {
        shape,
        data,
        was_f32,
    })
}

fn collect<T: Deserialize, R: Read>(r: npyz::NpyReader<T, R>) -> std::io::Result<Vec<T>> {
    r.collect()
}

/// The values of an integer array of type `T`, widened to i64; the file back when its dtype
/// is not `T`.
fn widen<T, R>(npy: NpyFile<R>) -> std::result::Result<std::io::Result<Vec<i64>>, NpyFile<R>>
where
    T: Deserialize + TryInto<i64> + Copy + std::fmt::Display,
    R: Read,
{
    npy.try_data::<T>().map(|r| {
        r.map(|v| {
            v.and_then(|x| {
                x.try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{x} does not fit in int64"),
                    )
                })
            })
        })
        .collect()
    })
}

/// Any integer dtype, widened to i64 (`None`: not an integer dtype).
fn integers<R: Read>(npy: NpyFile<R>) -> Option<std::io::Result<Vec<i64>>> {
    macro_rules! first_of {
        ($npy:ident; $($t:ty),*) => {{
            $(
                let $npy = match widen::<$t, R>($npy) {
                    Ok(values) => return Some(values),
                    Err(file) => file,
                };
            )*
            drop($npy);
            None
        }};
    }
    first_of!(npy; i64, i32, i16, i8, u64, u32, u16, u8)
}

/// How an archive's entries are held: as numpy's `savez` writes them or as its
/// `savez_compressed` does. Both are read by [`read`] and by numpy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Stored as they are (`np.savez`): the quickest to write and read.
    Stored,
    /// Deflated (`np.savez_compressed`): what the corpus uses, whose tolerance arrays
    /// repeat a few values and shrink to almost nothing.
    Deflated,
}

impl Compression {
    /// An entry's options, with a fixed timestamp so that equal arrays give equal bytes
    /// (deflate's output is fixed by the pinned `miniz_oxide` at level 6).
    fn options(self) -> zip::write::FileOptions {
        let options =
            zip::write::FileOptions::default().last_modified_time(zip::DateTime::default());
        match self {
            Compression::Stored => options.compression_method(zip::CompressionMethod::Stored),
            Compression::Deflated => options
                .compression_method(zip::CompressionMethod::Deflated)
                .compression_level(Some(6)),
        }
    }
}

/// One array entry of `dtype` and `shape`, its values in row-major order.
fn entry<T, W>(
    npz: &mut NpzWriter<W>,
    compression: Compression,
    name: &str,
    dtype: npyz::DType,
    shape: &[u64],
    values: impl IntoIterator<Item = impl std::borrow::Borrow<T>>,
) -> std::io::Result<()>
where
    T: npyz::Serialize + ?Sized,
    W: std::io::Write + std::io::Seek,
{
    let mut w = npz
        .array::<T>(name, compression.options())?
        .dtype(dtype)
        .shape(shape)
        .begin_nd()?;
    for v in values {
        w.push(v.borrow())?;
    }
    w.finish()
}

fn transpose(data: Data, rows: usize, cols: usize) -> Data {
    // Fortran order stores column by column: element (i, j) is at j·rows + i.
    fn t<T: Clone>(v: Vec<T>, rows: usize, cols: usize) -> Vec<T> {
        (0..rows * cols)
            .map(|k| v[(k % cols) * rows + k / cols].clone())
            .collect()
    }
    match data {
        Data::Float(v) => Data::Float(t(v, rows, cols)),
        Data::Int(v) => Data::Int(t(v, rows, cols)),
        Data::Text(v) => Data::Text(t(v, rows, cols)),
    }
}

/// Writes `arrays` as an `.npz` held as `compression` says, in the given order, with
/// fixed timestamps so that the same arrays always give the same bytes:
/// float arrays as float64, or float32 when `was_f32` is set (the values must then be
/// binary32 numbers), integers as int64, text as fixed-width unicode.
///
/// # Errors
/// The file cannot be written, naming it.
pub fn write(path: &Path, arrays: &[(String, Array)], compression: Compression) -> Result<()> {
    let mut archive = ArchiveWriter::create(path, compression)?;
    for (name, a) in arrays {
        archive.array(name, a)?;
    }
    archive.finish()
}

/// An `.npz` written one array at a time ([`write()`]'s format), so that an array can be
/// written as its values arrive ([`ArchiveWriter::float64`]) without holding it.
pub struct ArchiveWriter {
    npz: NpzWriter<std::io::BufWriter<std::fs::File>>,
    compression: Compression,
    file: String,
}

/// One float64 array being written ([`ArchiveWriter::float64`]).
pub struct Float64Entry<'a> {
    writer: npyz::NpyWriter<f64, &'a mut zip::ZipWriter<std::io::BufWriter<std::fs::File>>>,
    file: &'a str,
}

impl Float64Entry<'_> {
    /// The next value, in row-major order.
    ///
    /// # Errors
    /// The file cannot be written, naming it.
    pub fn push(&mut self, x: f64) -> Result<()> {
        self.writer.push(&x).map_err(|e| write_error(self.file, e))
    }

    /// Ends the array (it must have received every value its shape declares).
    ///
    /// # Errors
    /// The file cannot be written, naming it.
    pub fn finish(self) -> Result<()> {
        self.writer.finish().map_err(|e| write_error(self.file, e))
    }
}

fn write_error(file: &str, e: std::io::Error) -> Error {
    io_error(file, format!("cannot write the .npz: {e}"))
}

impl ArchiveWriter {
    /// Creates (or truncates) the archive at `path`, its entries held as `compression`
    /// says.
    ///
    /// # Errors
    /// The file cannot be created, naming it.
    pub fn create(path: &Path, compression: Compression) -> Result<ArchiveWriter> {
        let file = path.display().to_string();
        let npz = NpzWriter::create(path).map_err(|e| write_error(&file, e))?;
        Ok(ArchiveWriter {
            npz,
            compression,
            file,
        })
    }

    /// Writes one whole array, as [`write()`] does.
    ///
    /// # Errors
    /// The file cannot be written, naming it.
    pub fn array(&mut self, name: &str, a: &Array) -> Result<()> {
        let (npz, file, how) = (&mut self.npz, &self.file, self.compression);
        let shape: Vec<u64> = a.shape.iter().map(|&d| d as u64).collect();
        let written = match &a.data {
            Data::Float(v) if a.was_f32 => {
                let dtype = <f32 as AutoSerialize>::default_dtype();
                entry::<f32, _>(npz, how, name, dtype, &shape, v.iter().map(|&x| x as f32))
            }
            Data::Float(v) => {
                let dtype = <f64 as AutoSerialize>::default_dtype();
                entry::<f64, _>(npz, how, name, dtype, &shape, v.iter().copied())
            }
            Data::Int(v) => {
                let dtype = <i64 as AutoSerialize>::default_dtype();
                entry::<i64, _>(npz, how, name, dtype, &shape, v.iter().copied())
            }
            Data::Text(v) => {
                let width = v
                    .iter()
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(1)
                    .max(1);
                let dtype = npyz::DType::Plain(
                    format!("<U{width}")
                        .parse()
                        .map_err(|e| io_error(file, format!("text dtype: {e}")))?,
                );
                entry::<str, _>(npz, how, name, dtype, &shape, v.iter().map(String::as_str))
            }
        };
        written.map_err(|e| write_error(file, e))
    }

    /// Writes a float32 array from binary32 values (without widening them first).
    ///
    /// # Errors
    /// The file cannot be written, naming it.
    pub fn float32(&mut self, name: &str, shape: &[usize], values: &[f32]) -> Result<()> {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let dtype = <f32 as AutoSerialize>::default_dtype();
        entry::<f32, _>(
            &mut self.npz,
            self.compression,
            name,
            dtype,
            &shape,
            values.iter().copied(),
        )
        .map_err(|e| write_error(&self.file, e))
    }

    /// Begins a float64 array of `shape`, whose values are then pushed one by one.
    ///
    /// # Errors
    /// The file cannot be written, naming it.
    pub fn float64(&mut self, name: &str, shape: &[usize]) -> Result<Float64Entry<'_>> {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let writer = self
            .npz
            .array::<f64>(name, self.compression.options())
            .and_then(|b| {
                b.dtype(<f64 as AutoSerialize>::default_dtype())
                    .shape(&shape)
                    .begin_nd()
            })
            .map_err(|e| write_error(&self.file, e))?;
        Ok(Float64Entry {
            writer,
            file: &self.file,
        })
    }

    /// Ends the archive.
    ///
    /// # Errors
    /// The file cannot be written, naming it.
    pub fn finish(mut self) -> Result<()> {
        let file = self.file.clone();
        self.npz
            .zip_writer()
            .finish()
            .map_err(|e| io_error(&file, format!("cannot finish the .npz: {e}")))?;
        Ok(())
    }
}
