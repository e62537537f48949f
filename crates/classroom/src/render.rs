//! The rasteriser: background patterns, figures and the four styles, anti-aliased.
//!
//! The world is laid out on a 64-unit canvas ([`SIZE`]); [`render_sized`] draws it at `64·k`
//! pixels (k = 1 or 2: the first and second classroom models' 64 and 128 px) with every length —
//! object scale, margins, pattern periods, outline width, pixel blocks, halo — multiplied by `k`,
//! so a scene looks the same at every size, only sharper. At k = 1 the bytes are those of
//! [`render`] (the golden checksum test guards it).
//!
//! Anti-aliasing is 4×4 supersampling, but only where it matters: every primitive has a signed
//! distance in pixels, and a pixel whose centre is farther than 0.75 px (> half its diagonal) from
//! an edge is entirely inside or outside, so only edge pixels pay for 16 samples. That keeps a
//! render at roughly 0.1 ms while edges stay as clean as full supersampling.
//!
//! Styles (the "artists" of this world):
//! - **flat**: filled parts;
//! - **outlined**: only a thick inner contour band of each body part (≥ 2 px), details filled;
//! - **pixelated**: each part is decided per 4×4-pixel block (filled when at least half the block is
//!   inside) so the object is made of hard blocks on a 16×16 grid; the background stays sharp. The
//!   block is 4 px, not 8: at 8 px a small object would be 2×2 blocks and every shape would become
//!   the same blob, which would make "shape" unlearnable for that style;
//! - **glowing**: a soft halo (a lighter tint fading over ~0.6 object units) around the figure and
//!   a centre lightened towards white.

use crate::characters::{figure, main_colour};
use crate::sdf::{Affine, Part, Prim, sin_cos};
use crate::world::{Background, BgKind, Colour, Object, SIZE, Scene, Style, placement};

/// Bytes in one image: `[SIZE, SIZE, 3]`, row-major, RGB.
pub const IMAGE_BYTES: usize = SIZE * SIZE * 3;
/// Side of a block in the pixelated style, in world units (`k` pixels each).
pub const PIXEL_BLOCK: usize = 4;
/// Image sides [`render_sized`] draws: 64 (v1 classroom model) and 128 (v2).
pub const SIZES: [usize; 2] = [64, 128];

const AA: usize = 4;
/// Beyond this distance (px) from an edge a pixel is uniform: √2/2 plus a margin for rounding.
const EARLY_OUT: f32 = 0.75;

/// The pixels being drawn: `n × n`, `k` pixels per world unit.
struct Canvas {
    px: Vec<[f32; 3]>,
    n: usize,
    k: usize,
}

impl Canvas {
    fn new(size: usize) -> Canvas {
        let k = (size / SIZE).max(1);
        Canvas { px: vec![[0.0; 3]; k * SIZE * k * SIZE], n: k * SIZE, k }
    }
    fn kf(&self) -> f32 {
        self.k as f32
    }
}

/// Renders a scene to `[64, 64, 3]` RGB bytes (row-major, HWC).
pub fn render(scene: &Scene) -> Vec<u8> {
    render_sized(scene, SIZE)
}

/// Renders a scene to `[size, size, 3]` RGB bytes; `size` is one of [`SIZES`] (another multiple of
/// 64 works the same way; anything else is rounded down to one, at least 64).
pub fn render_sized(scene: &Scene, size: usize) -> Vec<u8> {
    let mut cv = Canvas::new(size);
    draw_scene(&mut cv, scene);
    let mut out = vec![0u8; cv.n * cv.n * 3];
    write_bytes(&cv, &mut out);
    out
}

/// Renders into a caller's buffer (for filling a dataset without reallocating).
pub fn render_into(scene: &Scene, out: &mut [u8; IMAGE_BYTES]) {
    let mut cv = Canvas::new(SIZE);
    draw_scene(&mut cv, scene);
    write_bytes(&cv, out);
}

fn draw_scene(cv: &mut Canvas, scene: &Scene) {
    draw_background(cv, &scene.background);
    for o in &scene.objects {
        draw_object(cv, o, scene.style);
    }
}

fn write_bytes(cv: &Canvas, out: &mut [u8]) {
    for (px, o) in cv.px.iter().zip(out.chunks_exact_mut(3)) {
        for k in 0..3 {
            o[k] = (px[k].clamp(0.0, 255.0) + 0.5) as u8;
        }
    }
}

fn rgb(c: Colour) -> [f32; 3] {
    let [r, g, b] = c.rgb();
    [r as f32, g as f32, b as f32]
}

fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

const WHITE: [f32; 3] = [255.0, 255.0, 255.0];

/// The second tone of a patterned background: darker for light colours, lighter for dark ones,
/// so the pattern is visible yet the colour name stays unambiguous.
pub fn pattern_tint(c: Colour) -> [f32; 3] {
    let v = rgb(c);
    let luma = 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2];
    if luma > 150.0 { [v[0] * 0.76, v[1] * 0.76, v[2] * 0.76] } else { lerp3(v, WHITE, 0.33) }
}

/// Fraction of the pixel centred at `(x, y)` where `f < 0`, given `dc = f(x, y)`.
#[inline]
fn coverage(dc: f32, x: f32, y: f32, f: &impl Fn(f32, f32) -> f32) -> f32 {
    if dc >= EARLY_OUT {
        return 0.0;
    }
    if dc <= -EARLY_OUT {
        return 1.0;
    }
    let mut inside = 0u32;
    for j in 0..AA {
        let sy = y - 0.5 + (j as f32 + 0.5) / AA as f32;
        for i in 0..AA {
            let sx = x - 0.5 + (i as f32 + 0.5) / AA as f32;
            if f(sx, sy) < 0.0 {
                inside += 1;
            }
        }
    }
    inside as f32 / (AA * AA) as f32
}

/// Floor-based modulo into `[0, m)`.
fn wrap(v: f32, m: f32) -> f32 {
    v - (v / m).floor() * m
}

/// Signed distance (px) to the pattern's second tone; `None` for plain backgrounds. `k` is the
/// canvas's pixels per world unit.
fn pattern_sdf(bg: &Background, x: f32, y: f32, k: f32) -> Option<f32> {
    let (p0, p1) = (bg.phase[0] as f32 * k, bg.phase[1] as f32 * k);
    match bg.kind {
        BgKind::Plain => None,
        BgKind::Stripes => {
            // 45° stripes, period 10 units, half of it tinted.
            let p = 10.0 * k;
            let v = wrap((x + y) * std::f32::consts::FRAC_1_SQRT_2 + p0, p);
            let dc = (v - p / 4.0).abs();
            Some(dc.min(p - dc) - p / 4.0)
        }
        BgKind::Dots => {
            // Dots of radius 2.6 units on a 12-unit grid.
            let q = 12.0 * k;
            let fx = wrap(x + p0, q) - q / 2.0;
            let fy = wrap(y + p1, q) - q / 2.0;
            Some((fx * fx + fy * fy).sqrt() - 2.6 * k)
        }
        BgKind::Checkerboard => {
            // 8-unit squares aligned to the pixel grid (integer phase), so edges are crisp.
            let c = 8.0 * k;
            let (gx, gy) = (wrap(x + p0.floor(), 2.0 * c), wrap(y + p1.floor(), 2.0 * c));
            let (ex, ey) = (wrap(gx, c), wrap(gy, c));
            let e = ex.min(c - ex).min(ey).min(c - ey);
            let tinted = (gx < c) != (gy < c);
            Some(if tinted { -e } else { e })
        }
    }
}

/// Coverage of the pattern's second tone at pixel `(px, py)`, 4×4 supersampled at edges.
fn pattern_coverage(bg: &Background, px: usize, py: usize, k: f32) -> f32 {
    let (x, y) = (px as f32 + 0.5, py as f32 + 0.5);
    match pattern_sdf(bg, x, y, k) {
        None => 0.0,
        Some(dc) => coverage(dc, x, y, &|sx: f32, sy: f32| pattern_sdf(bg, sx, sy, k).unwrap_or(1.0)),
    }
}

/// Patterns are periodic, so coverage is computed once per distinct value and looked up: stripes
/// depend only on `x + y`, dots repeat every 12 units, the checkerboard is pixel-aligned. This
/// gives the same numbers as evaluating every pixel, about 20× faster.
fn draw_background(cv: &mut Canvas, bg: &Background) {
    let base = rgb(bg.colour);
    let alt = pattern_tint(bg.colour);
    let (n, k, kf) = (cv.n, cv.k, cv.kf());
    match bg.kind {
        BgKind::Plain => cv.px.fill(base),
        BgKind::Stripes => {
            let lut: Vec<[f32; 3]> = (0..2 * n - 1)
                .map(|s| {
                    let px = s.min(n - 1);
                    lerp3(base, alt, pattern_coverage(bg, px, s - px, kf))
                })
                .collect();
            for py in 0..n {
                for px in 0..n {
                    cv.px[py * n + px] = lut[px + py];
                }
            }
        }
        BgKind::Dots => {
            let q = 12 * k;
            let tile: Vec<[f32; 3]> =
                (0..q * q).map(|i| lerp3(base, alt, pattern_coverage(bg, i % q, i / q, kf))).collect();
            for py in 0..n {
                for px in 0..n {
                    cv.px[py * n + px] = tile[(py % q) * q + px % q];
                }
            }
        }
        BgKind::Checkerboard => {
            let (p0, p1) = (bg.phase[0] as usize * k, bg.phase[1] as usize * k);
            let c = 8 * k;
            for py in 0..n {
                for px in 0..n {
                    let tinted = ((px + p0) / c + (py + p1) / c) % 2 == 1;
                    cv.px[py * n + px] = if tinted { alt } else { base };
                }
            }
        }
    }
}

/// A part placed in the image: its pixel→local map and pixel bounding box `[x0, y0, x1, y1)`.
struct Placed {
    xf: Affine,
    prim: Prim,
    colour: [f32; 3],
    detail: bool,
    bbox: [usize; 4],
}

impl Placed {
    /// Signed distance in pixels.
    #[inline]
    fn d(&self, x: f32, y: f32) -> f32 {
        let (lx, ly) = self.xf.apply(x, y);
        self.prim.sdf(lx, ly) * self.xf.scale
    }
}

fn clamp_box(x0: f32, y0: f32, x1: f32, y1: f32, n: usize) -> [usize; 4] {
    let c = |v: f32| v.clamp(0.0, n as f32) as usize;
    [c(x0.floor()), c(y0.floor()), c(x1.ceil()), c(y1.ceil())]
}

/// The object's parts in pixels, and its pixels per object unit.
fn place(o: &Object, n: usize, k: f32) -> (Vec<Placed>, f32) {
    let (cx, cy, s, rot) = placement(o);
    let (cx, cy, s) = (cx * k, cy * k, s * k);
    let base = Affine::object(cx, cy, s, rot);
    let (sn, cs) = sin_cos(rot);
    let parts: Vec<Part> = figure(&o.kind);
    let placed = parts
        .iter()
        .map(|p| {
            let (u, v) = (cs * p.at[0] - sn * p.at[1], sn * p.at[0] + cs * p.at[1]);
            let (px, py) = (cx + u * s, cy - v * s);
            let r = p.prim.bound() * s + 1.5;
            Placed {
                xf: base.then(p.at[0], p.at[1], p.rot),
                prim: p.prim,
                colour: p.colour,
                detail: p.detail,
                bbox: clamp_box(px - r, py - r, px + r, py + r, n),
            }
        })
        .collect();
    (placed, s)
}

/// Blends `colour(d_centre)` over the part's coverage after `shape` reshapes its distance.
fn fill(cv: &mut Canvas, p: &Placed, shape: impl Fn(f32) -> f32, colour: impl Fn(f32) -> [f32; 3]) {
    let [x0, y0, x1, y1] = p.bbox;
    for py in y0..y1 {
        for px in x0..x1 {
            let (x, y) = (px as f32 + 0.5, py as f32 + 0.5);
            let dc = p.d(x, y);
            let cov = coverage(shape(dc), x, y, &|sx, sy| shape(p.d(sx, sy)));
            if cov > 0.0 {
                let dst = &mut cv.px[py * cv.n + px];
                *dst = lerp3(*dst, colour(dc), cov);
            }
        }
    }
}

/// The pixelated style: a block is filled when at least half of its pixel centres are inside.
fn fill_blocks(cv: &mut Canvas, p: &Placed) {
    let (b, n) = (PIXEL_BLOCK * cv.k, cv.n);
    let half_diag = b as f32 * std::f32::consts::FRAC_1_SQRT_2 + 0.01;
    let [x0, y0, x1, y1] = p.bbox;
    for by in y0 / b..y1.div_ceil(b).min(n / b) {
        for bx in x0 / b..x1.div_ceil(b).min(n / b) {
            let (cx, cy) = ((bx * b) as f32 + b as f32 / 2.0, (by * b) as f32 + b as f32 / 2.0);
            let dc = p.d(cx, cy);
            let filled = if dc > half_diag {
                false
            } else if dc < -half_diag {
                true
            } else {
                let mut inside = 0;
                for j in 0..b {
                    for i in 0..b {
                        let (x, y) = ((bx * b + i) as f32 + 0.5, (by * b + j) as f32 + 0.5);
                        if p.d(x, y) < 0.0 {
                            inside += 1;
                        }
                    }
                }
                2 * inside >= b * b
            };
            if filled {
                for j in 0..b {
                    let row = (by * b + j) * n + bx * b;
                    cv.px[row..row + b].fill(p.colour);
                }
            }
        }
    }
}

/// The glowing style's halo: alpha falls from 0.85 at the edge to 0 at `w` px, quadratically.
fn draw_halo(cv: &mut Canvas, parts: &[Placed], colour: [f32; 3], s: f32) {
    let n = cv.n;
    let w = 0.6 * s + 2.0 * cv.kf();
    let halo = lerp3(colour, WHITE, 0.35);
    let body: Vec<&Placed> = parts.iter().filter(|p| !p.detail).collect();
    let mut bb = [n, n, 0, 0];
    for p in &body {
        let g = clamp_box(p.bbox[0] as f32 - w, p.bbox[1] as f32 - w, p.bbox[2] as f32 + w, p.bbox[3] as f32 + w, n);
        bb = [bb[0].min(g[0]), bb[1].min(g[1]), bb[2].max(g[2]), bb[3].max(g[3])];
    }
    for py in bb[1]..bb[3] {
        for px in bb[0]..bb[2] {
            let (x, y) = (px as f32 + 0.5, py as f32 + 0.5);
            let d = body.iter().map(|p| p.d(x, y)).fold(f32::INFINITY, f32::min);
            if d > 0.0 && d < w {
                let t = 1.0 - d / w;
                let dst = &mut cv.px[py * n + px];
                *dst = lerp3(*dst, halo, 0.85 * t * t);
            }
        }
    }
}

fn draw_object(cv: &mut Canvas, o: &Object, style: Style) {
    let (parts, s) = place(o, cv.n, cv.kf());
    match style {
        Style::Flat => {
            for p in &parts {
                fill(cv, p, |d| d, |_| p.colour);
            }
        }
        Style::Outlined => {
            let t = (0.13 * s).max(2.0 * cv.kf());
            for p in &parts {
                if p.detail {
                    fill(cv, p, |d| d, |_| p.colour);
                } else {
                    fill(cv, p, |d| d.max(-d - t), |_| p.colour);
                }
            }
        }
        Style::Pixelated => {
            for p in &parts {
                fill_blocks(cv, p);
            }
        }
        Style::Glowing => {
            draw_halo(cv, &parts, main_colour(&o.kind), s);
            let depth = 0.45 * s;
            for p in &parts {
                if p.detail {
                    fill(cv, p, |d| d, |_| p.colour);
                } else {
                    fill(cv, p, |d| d, |d| lerp3(p.colour, WHITE, 0.5 * (-d / depth).clamp(0.0, 1.0)));
                }
            }
        }
    }
}
