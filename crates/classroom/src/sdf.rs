//! Signed distance functions (SDFs) of the world's primitives, and the affine maps that place them.
//!
//! Why SDFs: one description of a shape gives the filled shape (`d < 0`), its contour band (the
//! outlined style), its halo (the glowing style, a function of `d > 0`) and a cheap anti-aliasing
//! test (a pixel whose centre is more than ~0.71 px from the edge is uniform, so only edge pixels are
//! supersampled). The formulas are Inigo Quilez's exact 2D SDFs
//! (<https://iquilezles.org/articles/distfunctions2d/>), ported to f32 with y pointing up.
//!
//! Determinism: only `+ - * /`, `sqrt`, `abs`, `min`/`max`, `floor` and comparisons are used — all
//! exactly rounded in IEEE 754 — and Rust never fuses multiply-adds on its own, so every platform
//! (wasm32 included) computes identical bits. `sin`/`cos` from the platform's libm are *not*
//! guaranteed identical, hence our own [`sin_cos`].

/// `sin` and `cos` computed with f64 Taylor series (to x^21 after reduction to [-π, π], error
/// < 1e-9, far below f32 resolution), so rotations are bit-identical on every platform.
pub fn sin_cos(x: f32) -> (f32, f32) {
    const TAU: f64 = std::f64::consts::TAU;
    let x = x as f64;
    let r = x - (x / TAU).round() * TAU;
    let r2 = r * r;
    let mut s = 1.0;
    let mut c = 1.0;
    // Horner form of the Taylor series, innermost term first.
    for k in (1..=10).rev() {
        let k = k as f64;
        s = 1.0 - r2 / ((2.0 * k) * (2.0 * k + 1.0)) * s;
        c = 1.0 - r2 / ((2.0 * k - 1.0) * (2.0 * k)) * c;
    }
    ((r * s) as f32, c as f32)
}

fn len(x: f32, y: f32) -> f32 {
    (x * x + y * y).sqrt()
}

/// GLSL `sign`, except that 0 maps to 1 (Rust's `signum`); only exact-zero edge points differ.
fn sign(x: f32) -> f32 {
    if x < 0.0 { -1.0 } else { 1.0 }
}

/// A primitive in its local frame (units: object units; y up). All are centred near the origin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Prim {
    Circle {
        r: f32,
    },
    /// Annulus of mid-radius `r` and half-thickness `w`.
    Ring {
        r: f32,
        w: f32,
    },
    /// Rectangle of half-extents `hx`, `hy` with corner radius `round`.
    Rect {
        hx: f32,
        hy: f32,
        round: f32,
    },
    /// Equilateral triangle, apex up, side `2r`, centroid at the origin.
    Triangle {
        r: f32,
    },
    /// Five-pointed star, a tip up at distance `r`; `rf` sets how fat the arms are.
    Star {
        r: f32,
        rf: f32,
    },
    /// Heart of height ≈ 1.1 k, centred.
    Heart {
        k: f32,
    },
    /// Plus sign: two bars of half-length `arm`, half-width `w`.
    Cross {
        arm: f32,
        w: f32,
    },
    /// Crescent: a disc of radius `r` minus a disc of radius `cut_r` at `(cut_x, cut_y)`.
    Moon {
        r: f32,
        cut_r: f32,
        cut_x: f32,
        cut_y: f32,
    },
    /// Segment from `a` to `b` with radius `r` (rounded ends).
    Capsule {
        ax: f32,
        ay: f32,
        bx: f32,
        by: f32,
        r: f32,
    },
    /// The part of a ring below `y = cut_y`: a smile.
    Arc {
        r: f32,
        w: f32,
        cut_y: f32,
    },
}

impl Prim {
    /// Signed distance from local point `(x, y)` to the primitive's edge (negative inside).
    ///
    /// Exact for all but `Cross`, `Moon` and `Arc`, which are unions/differences of exact SDFs and
    /// therefore never overestimate the distance — all that the anti-aliasing shortcut needs.
    pub fn sdf(&self, x: f32, y: f32) -> f32 {
        match *self {
            Prim::Circle { r } => len(x, y) - r,
            Prim::Ring { r, w } => (len(x, y) - r).abs() - w,
            Prim::Rect { hx, hy, round } => rect(x, y, hx, hy, round),
            Prim::Triangle { r } => triangle(x, y, r),
            Prim::Star { r, rf } => star5(x, y, r, rf),
            Prim::Heart { k } => heart(x / k, y / k + 0.55) * k,
            Prim::Cross { arm, w } => rect(x, y, arm, w, 0.0).min(rect(x, y, w, arm, 0.0)),
            Prim::Moon { r, cut_r, cut_x, cut_y } => (len(x, y) - r).max(cut_r - len(x - cut_x, y - cut_y)),
            Prim::Capsule { ax, ay, bx, by, r } => {
                let (pax, pay, bax, bay) = (x - ax, y - ay, bx - ax, by - ay);
                let h = ((pax * bax + pay * bay) / (bax * bax + bay * bay)).clamp(0.0, 1.0);
                len(pax - bax * h, pay - bay * h) - r
            }
            Prim::Arc { r, w, cut_y } => ((len(x, y) - r).abs() - w).max(y - cut_y),
        }
    }

    /// Radius of a disc around the local origin that contains the primitive (for bounding boxes).
    pub fn bound(&self) -> f32 {
        match *self {
            Prim::Circle { r } | Prim::Moon { r, .. } => r,
            Prim::Ring { r, w } | Prim::Arc { r, w, .. } => r + w,
            Prim::Rect { hx, hy, .. } => len(hx, hy),
            Prim::Triangle { r } => r * 1.1548,
            Prim::Star { r, .. } => r,
            Prim::Heart { k } => 0.75 * k,
            Prim::Cross { arm, w } => len(arm, w),
            Prim::Capsule { ax, ay, bx, by, r } => len(ax, ay).max(len(bx, by)) + r,
        }
    }
}

fn rect(x: f32, y: f32, hx: f32, hy: f32, round: f32) -> f32 {
    let qx = x.abs() - hx + round;
    let qy = y.abs() - hy + round;
    len(qx.max(0.0), qy.max(0.0)) + qx.max(qy).min(0.0) - round
}

fn triangle(x: f32, y: f32, r: f32) -> f32 {
    const K: f32 = 1.732_050_8; // sqrt(3)
    let mut px = x.abs() - r;
    let mut py = y + r / K;
    if px + K * py > 0.0 {
        let (nx, ny) = ((px - K * py) / 2.0, (-K * px - py) / 2.0);
        px = nx;
        py = ny;
    }
    px -= px.clamp(-2.0 * r, 0.0);
    -len(px, py) * sign(py)
}

fn star5(x: f32, y: f32, r: f32, rf: f32) -> f32 {
    // cos and sin of 36°: the star's fold directions.
    const K1X: f32 = 0.809_017;
    const K1Y: f32 = -0.587_785_25;
    let mut px = x.abs();
    let mut py = y;
    let d1 = (K1X * px + K1Y * py).max(0.0);
    px -= 2.0 * d1 * K1X;
    py -= 2.0 * d1 * K1Y;
    let d2 = (-K1X * px + K1Y * py).max(0.0);
    px -= 2.0 * d2 * -K1X;
    py -= 2.0 * d2 * K1Y;
    px = px.abs();
    py -= r;
    let (bax, bay) = (rf * -K1Y, rf * K1X - 1.0);
    let h = ((px * bax + py * bay) / (bax * bax + bay * bay)).clamp(0.0, r);
    len(px - bax * h, py - bay * h) * sign(py * bax - px * bay)
}

fn heart(x: f32, y: f32) -> f32 {
    let px = x.abs();
    if y + px > 1.0 {
        return len(px - 0.25, y - 0.75) - std::f32::consts::SQRT_2 / 4.0;
    }
    let m = 0.5 * (px + y).max(0.0);
    let a = px * px + (y - 1.0) * (y - 1.0);
    let b = (px - m) * (px - m) + (y - m) * (y - m);
    a.min(b).sqrt() * sign(px - y)
}

/// Maps pixel coordinates (x right, y down, pixel centres at +0.5) to a primitive's local frame.
/// `scale` is pixels per local unit, so `sdf_local * scale` is a distance in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    a: f32,
    b: f32,
    c: f32,
    d: f32,
    tx: f32,
    ty: f32,
    pub scale: f32,
}

impl Affine {
    /// The frame of an object centred at pixel `(cx, cy)`, `s` pixels per unit, rotated `rot`
    /// radians counter-clockwise; local y points up.
    pub fn object(cx: f32, cy: f32, s: f32, rot: f32) -> Affine {
        let (sn, cs) = sin_cos(rot);
        let inv = 1.0 / s;
        Affine {
            a: cs * inv,
            b: -sn * inv,
            c: -sn * inv,
            d: -cs * inv,
            tx: (-cs * cx + sn * cy) * inv,
            ty: (sn * cx + cs * cy) * inv,
            scale: s,
        }
    }

    /// The frame of a part placed at `(ox, oy)` with rotation `rot` inside this frame.
    pub fn then(&self, ox: f32, oy: f32, rot: f32) -> Affine {
        let (sn, cs) = sin_cos(rot);
        let (tx, ty) = (self.tx - ox, self.ty - oy);
        Affine {
            a: cs * self.a + sn * self.c,
            b: cs * self.b + sn * self.d,
            c: -sn * self.a + cs * self.c,
            d: -sn * self.b + cs * self.d,
            tx: cs * tx + sn * ty,
            ty: -sn * tx + cs * ty,
            scale: self.scale,
        }
    }

    /// Local coordinates of pixel point `(x, y)`.
    pub fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        (self.a * x + self.b * y + self.tx, self.c * x + self.d * y + self.ty)
    }
}

/// One coloured primitive of a figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Part {
    pub prim: Prim,
    /// Offset of the part in object units (y up).
    pub at: [f32; 2],
    /// Extra rotation of the part, radians counter-clockwise.
    pub rot: f32,
    pub colour: [f32; 3],
    /// Details (eyes, mouths, teeth) stay filled in the outlined style and unlit in the glowing
    /// style: outlining a 2-pixel pupil would erase it.
    pub detail: bool,
}

impl Part {
    pub fn body(prim: Prim, at: [f32; 2], colour: [f32; 3]) -> Part {
        Part { prim, at, rot: 0.0, colour, detail: false }
    }
    pub fn detail(prim: Prim, at: [f32; 2], colour: [f32; 3]) -> Part {
        Part { prim, at, rot: 0.0, colour, detail: true }
    }
    pub fn rotated(mut self, rot: f32) -> Part {
        self.rot = rot;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sin_cos_matches_std_closely() {
        for i in -100..=100 {
            let x = i as f32 * 0.173;
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 1e-6 && (c - x.cos()).abs() < 1e-6, "{x}");
        }
    }

    #[test]
    fn primitives_are_negative_inside_positive_outside() {
        let prims = [
            Prim::Circle { r: 0.8 },
            Prim::Rect { hx: 0.7, hy: 0.5, round: 0.1 },
            Prim::Triangle { r: 0.9 },
            Prim::Star { r: 1.0, rf: 0.5 },
            Prim::Heart { k: 1.6 },
            Prim::Cross { arm: 0.9, w: 0.3 },
        ];
        for p in prims {
            assert!(p.sdf(0.0, 0.0) < 0.0, "{p:?} centre");
            assert!(p.sdf(3.0, 0.0) > 1.0 && p.sdf(0.0, -3.0) > 1.0, "{p:?} far");
            // Every point outside the bound is outside the shape.
            for k in 0..16 {
                let (s, c) = sin_cos(k as f32 * std::f32::consts::FRAC_PI_8);
                let b = p.bound() + 0.01;
                assert!(p.sdf(c * b, s * b) > 0.0, "{p:?} bound");
            }
        }
        // The ring's hole and the moon's bite are outside.
        assert!(Prim::Ring { r: 0.7, w: 0.2 }.sdf(0.0, 0.0) > 0.0);
        assert!(Prim::Moon { r: 0.9, cut_r: 0.75, cut_x: 0.4, cut_y: 0.1 }.sdf(0.4, 0.1) > 0.0);
        // Exactness where it matters: the circle's distance is Euclidean.
        assert!((Prim::Circle { r: 1.0 }.sdf(3.0, 4.0) - 4.0).abs() < 1e-6);
    }

    #[test]
    fn affine_round_trip() {
        let o = Affine::object(20.0, 30.0, 10.0, 0.3);
        let (x, y) = o.apply(20.0, 30.0);
        assert!(x.abs() < 1e-5 && y.abs() < 1e-5);
        // A pixel above the centre is at +y locally (before rotation), rotated by -0.3.
        let (x, y) = Affine::object(20.0, 30.0, 10.0, 0.0).apply(20.0, 20.0);
        assert!((x - 0.0).abs() < 1e-6 && (y - 1.0).abs() < 1e-6);
        let p = o.then(0.5, 0.0, 0.0);
        let (lx, _) = o.apply(25.0, 30.0);
        let (px, _) = p.apply(25.0, 30.0);
        assert!((lx - px - 0.5).abs() < 1e-5);
    }
}
