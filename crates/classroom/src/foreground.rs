//! Where the objects are in a classroom image: the pixels that are not background.
//!
//! Every background of this world is one colour or a two-tone pattern of that colour and its
//! [`crate::render::pattern_tint`], and it fills the image's border (objects keep a margin from the
//! edge, [`crate::world::placement`]). So the background's tones are the two clusters of the border
//! pixels (2-means), and a pixel is foreground when it is far from both. On renders this recovers
//! the objects' mask up to anti-aliased edges (the test below); on generated images it is the
//! studio's object mask for the attention maps' IoU (`pipeline::daam::iou`).

/// RGB distance (0–441) beyond which a pixel is not one of the background's tones.
pub const BACKGROUND_DISTANCE: f32 = 60.0;

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

fn mean(px: &[[f32; 3]]) -> [f32; 3] {
    let n = px.len().max(1) as f32;
    let s = px.iter().fold([0f32; 3], |a, p| [a[0] + p[0], a[1] + p[1], a[2] + p[2]]);
    [s[0] / n, s[1] / n, s[2] / n]
}

/// The background's two tones: 2-means of the pixels within `ring` pixels of the border.
pub fn background_tones(rgb: &[u8], width: usize, height: usize, ring: usize) -> [[f32; 3]; 2] {
    let at = |x: usize, y: usize| {
        let o = (y * width + x) * 3;
        [rgb[o] as f32, rgb[o + 1] as f32, rgb[o + 2] as f32]
    };
    let mut border = vec![];
    for y in 0..height {
        for x in 0..width {
            if x < ring || y < ring || x + ring >= width || y + ring >= height {
                border.push(at(x, y));
            }
        }
    }
    if border.is_empty() {
        return [[0.0; 3]; 2];
    }
    // Start from the mean and the border pixel farthest from it.
    let m = mean(&border);
    let far = border.iter().copied().fold(m, |best, p| if dist(p, m) > dist(best, m) { p } else { best });
    let mut c = [m, far];
    for _ in 0..10 {
        let (a, b): (Vec<[f32; 3]>, Vec<[f32; 3]>) = border.iter().partition(|p| dist(**p, c[0]) <= dist(**p, c[1]));
        c = [if a.is_empty() { c[0] } else { mean(&a) }, if b.is_empty() { c[1] } else { mean(&b) }];
    }
    c
}

/// `[height * width]`, row-major: true where the pixel is farther than [`BACKGROUND_DISTANCE`]
/// from both background tones.
pub fn foreground_mask(rgb: &[u8], width: usize, height: usize) -> Vec<bool> {
    let ring = (width.min(height) / 32).max(1);
    let tones = background_tones(rgb, width, height, ring);
    rgb.chunks_exact(3)
        .map(|p| {
            let p = [p[0] as f32, p[1] as f32, p[2] as f32];
            dist(p, tones[0]).min(dist(p, tones[1])) > BACKGROUND_DISTANCE
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::SIZE;

    /// On the world's own renders the mask is the objects' mask: the pixels that change when the
    /// objects are removed from the scene, up to anti-aliased edge pixels.
    #[test]
    fn recovers_the_objects_of_renders() {
        let mut ious = vec![];
        for i in 0..200 {
            let (scene, _, rgb) = crate::example(3, i, crate::Split::Train);
            let mut empty = scene.clone();
            empty.objects.clear();
            let bg = crate::render::render(&empty);
            let truth: Vec<bool> = rgb.chunks_exact(3).zip(bg.chunks_exact(3)).map(|(a, b)| a != b).collect();
            let mask = foreground_mask(&rgb, SIZE, SIZE);
            let inter = mask.iter().zip(&truth).filter(|(a, b)| **a && **b).count();
            let union = mask.iter().zip(&truth).filter(|(a, b)| **a || **b).count();
            if union > 0 {
                ious.push(inter as f64 / union as f64);
            }
        }
        ious.sort_by(f64::total_cmp);
        let median = ious[ious.len() / 2];
        assert!(median > 0.8, "median IoU with the true object mask {median:.3}");
    }
}
