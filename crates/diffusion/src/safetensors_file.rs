//! The safetensors container: an 8-byte little-endian header length, a JSON header
//! `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}`, then raw
//! little-endian tensor bytes. We parse it ourselves so that a browser worker can read the
//! header first and then feed one tensor at a time (ranged reads), never holding a whole
//! checkpoint in wasm memory, and so that every malformation gets a precise message.

use crate::error::{LoadError, ReadError};
use std::collections::BTreeMap;

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    Other,
}

impl Dtype {
    fn parse(s: &str) -> Self {
        match s {
            "F32" => Self::F32,
            "F16" => Self::F16,
            "BF16" => Self::BF16,
            "F64" => Self::F64,
            "I64" => Self::I64,
            "I32" => Self::I32,
            _ => Self::Other,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::F64 => "F64",
            Self::I64 => "I64",
            Self::I32 => "I32",
            Self::Other => "unknown",
        }
    }
    pub fn size(self) -> usize {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::F64 | Self::I64 => 8,
            Self::Other => 1,
        }
    }
}

/// Where one tensor lives in the file.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte range relative to the start of the data section.
    pub begin: usize,
    pub end: usize,
}

/// A parsed header. `data_start` is the absolute offset of the data section.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub tensors: BTreeMap<String, TensorInfo>,
    pub metadata: BTreeMap<String, String>,
    pub data_start: usize,
}

/// Reads the header length from the first 8 bytes.
pub fn header_len(prefix: &[u8], file: &str) -> Result<usize, LoadError> {
    if prefix.len() < 8 {
        return Err(LoadError::Safetensors {
            file: file.into(),
            reason: format!("file has {} bytes, shorter than the 8-byte header length", prefix.len()),
        });
    }
    let n = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
    if n > 100_000_000 {
        return Err(LoadError::Safetensors { file: file.into(), reason: format!("header length {n} is implausible") });
    }
    Ok(n as usize)
}

/// Parses a header. `bytes` must hold at least the first `8 + header_len` bytes of the file;
/// `file_len` (the whole file's size) is used to check that every tensor lies inside the file.
pub fn parse_header(bytes: &[u8], file_len: usize, file: &str) -> Result<Header, LoadError> {
    let err = |reason: String| LoadError::Safetensors { file: file.into(), reason };
    let n = header_len(bytes, file)?;
    if bytes.len() < 8 + n {
        return Err(err(format!("header needs {} bytes, file has {}", 8 + n, bytes.len())));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| err(format!("header is not JSON: {e}")))?;
    let obj = json.as_object().ok_or_else(|| err("header is not a JSON object".into()))?;
    let data_start = 8 + n;
    let data_len = file_len.checked_sub(data_start).ok_or_else(|| err("file ends inside the header".into()))?;
    let mut header = Header { data_start, ..Default::default() };
    for (name, v) in obj {
        if name == "__metadata__" {
            if let Some(m) = v.as_object() {
                for (k, v) in m {
                    header.metadata.insert(k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
                }
            }
            continue;
        }
        let dtype =
            v.get("dtype").and_then(|d| d.as_str()).ok_or_else(|| err(format!("tensor `{name}` has no dtype")))?;
        let shape: Vec<usize> = v
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| err(format!("tensor `{name}` has no shape")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| err(format!("tensor `{name}` has a malformed shape")))?;
        let offs = v
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_u64()? as usize, a[1].as_u64()? as usize)))
            .ok_or_else(|| err(format!("tensor `{name}` has malformed data_offsets")))?;
        let dtype = Dtype::parse(dtype);
        let bytes_needed = shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
        let Some(bytes_needed) = bytes_needed else {
            return Err(err(format!(
                "tensor `{name}` has shape {shape:?}, whose size overflows: the header is corrupt"
            )));
        };
        if offs.1 < offs.0 || offs.1 - offs.0 != bytes_needed && dtype != Dtype::Other {
            return Err(err(format!("tensor `{name}` with shape {shape:?} does not match its byte range {offs:?}")));
        }
        if offs.1 > data_len {
            return Err(err(format!(
                "tensor `{name}` ends at byte {} of the data but the file has only {data_len}: the file is truncated",
                offs.1
            )));
        }
        header.tensors.insert(name.clone(), TensorInfo { dtype, shape, begin: offs.0, end: offs.1 });
    }
    // The format stores tensors back to back; two byte ranges sharing bytes mean a corrupt or
    // crafted header (writing one tensor would change the other).
    let mut ranges: Vec<(&String, &TensorInfo)> = header.tensors.iter().filter(|(_, t)| t.end > t.begin).collect();
    ranges.sort_by_key(|(_, t)| (t.begin, t.end));
    if let Some(w) = ranges.windows(2).find(|w| w[1].1.begin < w[0].1.end) {
        return Err(err(format!(
            "tensors `{}` (bytes {}..{}) and `{}` (bytes {}..{}) overlap: the header is corrupt",
            w[0].0, w[0].1.begin, w[0].1.end, w[1].0, w[1].1.begin, w[1].1.end
        )));
    }
    Ok(header)
}

/// Converts stored little-endian bytes to f32.
pub fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::F64 => bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8")) as f32).collect(),
        _ => return None,
    })
}

/// An in-memory safetensors file.
#[derive(Debug, Clone)]
pub struct SafetensorsBytes {
    pub name: String,
    pub header: Header,
    pub bytes: Vec<u8>,
}

impl SafetensorsBytes {
    pub fn parse(name: &str, bytes: Vec<u8>) -> Result<Self, LoadError> {
        let header = parse_header(&bytes, bytes.len(), name)?;
        Ok(Self { name: name.into(), header, bytes })
    }

    /// Raw bytes of one tensor.
    pub fn raw(&self, name: &str) -> Option<(&TensorInfo, &[u8])> {
        let info = self.header.tensors.get(name)?;
        Some((info, &self.bytes[self.header.data_start + info.begin..self.header.data_start + info.end]))
    }

    /// One tensor as f32 values and its shape.
    pub fn f32(&self, name: &str) -> Option<(Vec<f32>, Vec<usize>)> {
        let (info, raw) = self.raw(name)?;
        Some((to_f32(info.dtype, raw)?, info.shape.clone()))
    }
}

/// Byte ranges of a file that is not held in memory as a whole (the browser worker's buffer of a
/// downloaded or dropped checkpoint, outside wasm memory).
pub trait ByteRanges {
    /// The file's size in bytes.
    fn len(&self) -> usize;
    /// Whether the file has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes `begin..end` (within `0..len()`), copied out.
    fn read(&mut self, begin: usize, end: usize) -> Result<Vec<u8>, String>;
}

/// A safetensors file read tensor by tensor: only its header and the tensor being loaded are ever
/// copied in, so a 1.7 GB UNet does not have to fit in wasm32's 4 GB beside everything else.
pub struct RangedSafetensors {
    pub name: String,
    pub header: Header,
    source: Box<dyn ByteRanges>,
}

impl RangedSafetensors {
    /// Reads and checks the header (the same checks as [`SafetensorsBytes::parse`]).
    pub fn open(name: &str, mut source: Box<dyn ByteRanges>) -> Result<Self, LoadError> {
        let len = source.len();
        let read = |s: &mut Box<dyn ByteRanges>, end: usize| {
            s.read(0, end.min(len)).map_err(|reason| LoadError::Safetensors { file: name.into(), reason })
        };
        let prefix = read(&mut source, 8)?;
        let n = header_len(&prefix, name)?;
        let head = read(&mut source, 8 + n)?;
        let header = parse_header(&head, len, name)?;
        Ok(Self { name: name.into(), header, source })
    }

    /// Raw bytes of one tensor (a copy).
    pub fn raw(&mut self, name: &str) -> Option<Result<(&TensorInfo, Vec<u8>), String>> {
        let info = self.header.tensors.get(name)?;
        let start = self.header.data_start;
        Some(self.source.read(start + info.begin, start + info.end).map(|b| (info, b)))
    }
}

/// A weight file of a model component, whole in memory or read by ranges.
pub enum WeightFile {
    InMemory(SafetensorsBytes),
    Ranged(RangedSafetensors),
}

impl WeightFile {
    pub fn header(&self) -> &Header {
        match self {
            Self::InMemory(f) => &f.header,
            Self::Ranged(f) => &f.header,
        }
    }
    /// The name it was opened under (e.g. `unet/diffusion_pytorch_model.safetensors`).
    pub fn name(&self) -> &str {
        match self {
            Self::InMemory(f) => &f.name,
            Self::Ranged(f) => &f.name,
        }
    }
    /// The first float tensor (in name order) holding a NaN or an infinity, with that value:
    /// what a run that produced NaN looks for to name the culprit. Unreadable tensors are skipped.
    pub fn first_non_finite(&mut self) -> Option<(String, f32)> {
        let names: Vec<String> = self.header().tensors.keys().cloned().collect();
        names.into_iter().find_map(|name| {
            let v = self.read_f32(&name).ok()?;
            v.into_iter().find(|x| !x.is_finite()).map(|x| (name, x))
        })
    }
    /// One tensor as f32.
    pub fn read_f32(&mut self, name: &str) -> Result<Vec<f32>, ReadError> {
        let dtype = |info: &TensorInfo| ReadError::Dtype(info.dtype.name().to_string());
        match self {
            Self::InMemory(f) => {
                let (info, raw) = f.raw(name).ok_or(ReadError::Missing)?;
                to_f32(info.dtype, raw).ok_or_else(|| dtype(info))
            }
            Self::Ranged(f) => {
                let (info, raw) = f.raw(name).ok_or(ReadError::Missing)?.map_err(ReadError::Io)?;
                to_f32(info.dtype, &raw).ok_or_else(|| dtype(info))
            }
        }
    }
}

/// A tensor to write: f32 data stored as the given dtype (F32 or F16).
pub struct WriteTensor<'a> {
    pub name: &'a str,
    pub shape: Vec<usize>,
    pub data: &'a [f32],
    pub dtype: Dtype,
}

/// Serializes tensors (sorted by name, as the reference implementation does) with metadata.
pub fn serialize(tensors: &[WriteTensor<'_>], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut sorted: Vec<&WriteTensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::to_value(metadata).expect("string map"));
    }
    let mut data = Vec::new();
    for t in &sorted {
        let begin = data.len();
        match t.dtype {
            Dtype::F16 => t.data.iter().for_each(|v| data.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
            _ => t.data.iter().for_each(|v| data.extend_from_slice(&v.to_le_bytes())),
        }
        header.insert(
            t.name.into(),
            serde_json::json!({"dtype": if t.dtype == Dtype::F16 {"F16"} else {"F32"}, "shape": t.shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
    while !(h.len() + 8).is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + data.len());
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let a = [1.0f32, -2.5, 3.25, 0.0, 7.0, 8.0];
        let bytes = serialize(
            &[
                WriteTensor { name: "w", shape: vec![2, 3], data: &a, dtype: Dtype::F32 },
                WriteTensor { name: "h", shape: vec![2], data: &a[..2], dtype: Dtype::F16 },
            ],
            &BTreeMap::from([("method".to_string(), "uce".to_string())]),
        );
        let f = SafetensorsBytes::parse("x", bytes.clone()).unwrap();
        assert_eq!(f.f32("w").unwrap(), (a.to_vec(), vec![2, 3]));
        assert_eq!(f.f32("h").unwrap().0, vec![1.0, -2.5]);
        assert_eq!(f.header.metadata["method"], "uce");
        let cut = SafetensorsBytes::parse("x.safetensors", bytes[..bytes.len() - 3].to_vec()).unwrap_err().to_string();
        assert!(cut.contains("truncated"), "{cut}");
        let garbage = SafetensorsBytes::parse("y", b"\x05\0\0\0\0\0\0\0{nope".to_vec()).unwrap_err().to_string();
        assert!(garbage.contains("not JSON"), "{garbage}");
    }

    /// A file read by ranges, counting how many bytes were copied out.
    struct Counted(Vec<u8>, std::rc::Rc<std::cell::Cell<usize>>);
    impl ByteRanges for Counted {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn read(&mut self, begin: usize, end: usize) -> Result<Vec<u8>, String> {
            self.1.set(self.1.get() + end - begin);
            Ok(self.0[begin..end].to_vec())
        }
    }

    #[test]
    fn ranged_reads_one_tensor_at_a_time() {
        let big: Vec<f32> = (0..4096).map(|i| i as f32 * 0.5).collect();
        let bytes = serialize(
            &[
                WriteTensor { name: "big", shape: vec![64, 64], data: &big, dtype: Dtype::F16 },
                WriteTensor { name: "small", shape: vec![3], data: &big[..3], dtype: Dtype::F32 },
            ],
            &BTreeMap::new(),
        );
        let copied = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut f = WeightFile::Ranged(
            RangedSafetensors::open("r.safetensors", Box::new(Counted(bytes.clone(), copied.clone()))).unwrap(),
        );
        let header_bytes = copied.get();
        assert!(header_bytes < 300, "the header read copied {header_bytes} bytes");
        assert_eq!(f.read_f32("small").unwrap(), vec![0.0, 0.5, 1.0]);
        assert_eq!(copied.get() - header_bytes, 12, "reading a 3-float tensor copied more than its 12 bytes");
        let whole = WeightFile::InMemory(SafetensorsBytes::parse("w", bytes.clone()).unwrap()).read_f32("big").unwrap();
        assert_eq!(f.read_f32("big").unwrap(), whole);
        assert_eq!(f.read_f32("nope").unwrap_err(), ReadError::Missing);
        // The same checks as the in-memory parse.
        let cut = RangedSafetensors::open(
            "cut.safetensors",
            Box::new(Counted(bytes[..bytes.len() - 3].to_vec(), copied.clone())),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(cut.contains("truncated"), "{cut}");
        let short = RangedSafetensors::open("s.safetensors", Box::new(Counted(vec![1, 2, 3], copied)))
            .err()
            .unwrap()
            .to_string();
        assert!(short.contains("shorter than the 8-byte"), "{short}");
    }
}
