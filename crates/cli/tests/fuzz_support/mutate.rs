//! A small mutation fuzzer on stable Rust (issue 18, item 2): seeded, so a failure replays from
//! its iteration number. Byte-level operations (bit flips, interesting bytes and integers,
//! truncation, deletion, insertion, duplication) plus two structure-aware ones: numbers in text
//! replaced by boundary values, and a safetensors header's tensor fields set to hostile JSON.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Mutator {
    rng: StdRng,
}

const NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1",
    "2",
    "4294967296",
    "18446744073709551616",
    "1e309",
    "-1e309",
    "1e-320",
    "NaN",
    "null",
    "[]",
    "{}",
    "\"x\"",
];
const INTS: [u64; 8] = [0, 1, 7, 255, 1 << 31, 1 << 32, 1 << 62, u64::MAX];

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }

    /// 1–4 random operations on a copy of `seed`.
    pub fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut b = seed.to_vec();
        for _ in 0..self.rng.random_range(1..=4) {
            self.one(&mut b);
        }
        b
    }

    fn pos(&mut self, len: usize) -> usize {
        if len == 0 { 0 } else { self.rng.random_range(0..len) }
    }

    fn one(&mut self, b: &mut Vec<u8>) {
        let len = b.len();
        match self.rng.random_range(0..11) {
            0 if len > 0 => {
                let i = self.pos(len);
                b[i] ^= 1 << self.rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = self.pos(len);
                b[i] = [0u8, 0xff, 0x7f, 0x80, b'"', b'{', b'[', b',', b':'][self.rng.random_range(0..9)];
            }
            2 if len >= 8 => {
                let i = self.pos(len - 7);
                let v = INTS[self.rng.random_range(0..INTS.len())];
                b[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            3 => b.truncate(self.pos(len + 1)),
            4 if len > 0 => {
                let i = self.pos(len);
                let n = self.rng.random_range(1..=(len - i).min(64));
                b.drain(i..i + n);
            }
            5 => {
                let i = self.pos(len + 1);
                let n = self.rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                b.splice(i..i, bytes);
            }
            6 if len > 0 => {
                let i = self.pos(len);
                let n = self.rng.random_range(1..=(len - i).min(256));
                let chunk = b[i..i + n].to_vec();
                let at = self.pos(len + 1);
                b.splice(at..at, chunk);
            }
            7 | 8 => self.number(b),
            9 | 10 => self.header_field(b),
            _ => {}
        }
    }

    /// Replaces a run of digits (an id, a size, an offset) with a boundary value.
    fn number(&mut self, b: &mut Vec<u8>) {
        let starts: Vec<usize> =
            (0..b.len()).filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit())).collect();
        if starts.is_empty() {
            return;
        }
        let s = starts[self.rng.random_range(0..starts.len())];
        let e = (s..b.len()).find(|&i| !b[i].is_ascii_digit()).unwrap_or(b.len());
        let with = NUMBERS[self.rng.random_range(0..NUMBERS.len())];
        b.splice(s..e, with.bytes());
    }

    /// In a safetensors file: one tensor's `dtype`, `shape` or `data_offsets` set to a hostile value.
    fn header_field(&mut self, b: &mut Vec<u8>) {
        if b.len() < 8 {
            return;
        }
        let n = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])) as usize;
        let Some(end) = n.checked_add(8).filter(|&e| e <= b.len()) else { return self.number(b) };
        let Ok(serde_json::Value::Object(mut h)) = serde_json::from_slice::<serde_json::Value>(&b[8..end]) else {
            return self.number(b);
        };
        let names: Vec<String> = h.keys().filter(|k| *k != "__metadata__").cloned().collect();
        if names.is_empty() {
            return;
        }
        let name = &names[self.rng.random_range(0..names.len())];
        let values = [
            serde_json::json!("F16"),
            serde_json::json!("BOOL"),
            serde_json::json!("I64"),
            serde_json::json!("X"),
            serde_json::json!([]),
            serde_json::json!([0]),
            serde_json::json!([u64::MAX, 2]),
            serde_json::json!([1u64 << 40, 1u64 << 40]),
            serde_json::json!([-1, 3]),
            serde_json::json!([0, 0]),
            serde_json::json!(null),
            serde_json::json!([0, 1e30]),
        ];
        let field = ["dtype", "shape", "data_offsets"][self.rng.random_range(0..3)];
        if let Some(t) = h.get_mut(name).and_then(|t| t.as_object_mut()) {
            t.insert(field.into(), values[self.rng.random_range(0..values.len())].clone());
        }
        let text = serde_json::Value::Object(h).to_string().into_bytes();
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&text);
        out.extend_from_slice(&b[end..]);
        *b = out;
    }
}
