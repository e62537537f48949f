//! A minimal PNG writer (8-bit RGB, uncompressed "stored" deflate blocks) and an image grid.
//!
//! Why: previews and model-card grids are needed natively and in the browser, and this crate stays
//! free of image/zlib dependencies. Stored blocks make files about as large as the raw pixels,
//! which is fine for 64×64 renders and small grids. Format: PNG spec (ISO/IEC 15948) chunks
//! IHDR/IDAT/IEND with CRC-32; IDAT holds a zlib stream (RFC 1950) of stored deflate blocks
//! (RFC 1951 §3.2.4) ending in an Adler-32.

fn crc32(chunks: &[&[u8]]) -> u32 {
    let mut table = [0u32; 256];
    for (n, t) in table.iter_mut().enumerate() {
        let mut c = n as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *t = c;
    }
    let mut crc = 0xFFFF_FFFFu32;
    for bytes in chunks {
        for &b in *bytes {
            crc = table[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
        }
    }
    crc ^ 0xFFFF_FFFF
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += x as u32;
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    (b << 16) | a
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// Encodes `rgb` (`[height, width, 3]`, row-major) as a PNG file. Errors when the buffer length
/// does not match the dimensions.
pub fn encode_png_rgb(width: usize, height: usize, rgb: &[u8]) -> Result<Vec<u8>, String> {
    if width == 0 || height == 0 || rgb.len() != width * height * 3 {
        return Err(format!("{} bytes is not a {width}x{height} RGB image", rgb.len()));
    }
    // Raw scanlines, each prefixed with filter type 0 (none).
    let mut raw = Vec::with_capacity(height * (width * 3 + 1));
    for row in rgb.chunks_exact(width * 3) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = b.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(b);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, truecolour, deflate, filter 0, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

/// Tiles square `side`×`side` RGB images into a grid of `cols` columns, each pixel repeated
/// `scale` times, separated by `gap` pixels of grey. Returns `(width, height, rgb)`.
pub fn grid(images: &[&[u8]], side: usize, cols: usize, scale: usize, gap: usize) -> (usize, usize, Vec<u8>) {
    let cols = cols.max(1);
    let scale = scale.max(1);
    let rows = images.len().div_ceil(cols).max(1);
    let cell = side * scale;
    let (w, h) = (cols * cell + (cols + 1) * gap, rows * cell + (rows + 1) * gap);
    let mut out = vec![128u8; w * h * 3];
    for (i, img) in images.iter().enumerate() {
        if img.len() != side * side * 3 {
            continue;
        }
        let (ox, oy) = (gap + (i % cols) * (cell + gap), gap + (i / cols) * (cell + gap));
        for y in 0..cell {
            for x in 0..cell {
                let s = ((y / scale) * side + x / scale) * 3;
                let d = ((oy + y) * w + ox + x) * 3;
                out[d..d + 3].copy_from_slice(&img[s..s + 3]);
            }
        }
    }
    (w, h, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(&[b"IEND"]), 0xAE42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn png_has_signature_and_rejects_bad_sizes() {
        let png = encode_png_rgb(2, 1, &[255, 0, 0, 0, 255, 0]).unwrap_or_default();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
        assert!(encode_png_rgb(2, 2, &[0; 6]).is_err());
    }
}
