//! Properties of renders: colours, styles, anti-aliasing, placement, determinism, golden checksum.

use classroom::{
    Background, BgKind, Character, Colour, IMAGE_BYTES, Object, ObjectKind, Position, Rng, SIZE, Scene, Shape, Size,
    Split, Style, example, fnv1a64, render, render_into, sample_scene,
};

const N: usize = SIZE;

fn obj(kind: ObjectKind, size: Size, position: Position) -> Object {
    Object { kind, size, position, jitter: [0.0, 0.0], scale_jitter: 1.0, rotation: 0.0 }
}

fn plain_scene(kind: ObjectKind, bg: Colour, style: Style, size: Size, position: Position) -> Scene {
    Scene {
        background: Background { kind: BgKind::Plain, colour: bg, phase: [0, 0] },
        style,
        objects: vec![obj(kind, size, position)],
    }
}

fn px(img: &[u8], x: usize, y: usize) -> [u8; 3] {
    let i = (y * N + x) * 3;
    [img[i], img[i + 1], img[i + 2]]
}

fn dist(a: [u8; 3], b: [u8; 3]) -> i32 {
    (0..3).map(|k| (a[k] as i32 - b[k] as i32).abs()).max().unwrap_or(0)
}

/// Pixels that differ from the background colour.
fn object_pixels(img: &[u8], bg: [u8; 3]) -> Vec<(usize, usize, [u8; 3])> {
    let mut v = Vec::new();
    for y in 0..N {
        for x in 0..N {
            let p = px(img, x, y);
            if dist(p, bg) > 8 {
                v.push((x, y, p));
            }
        }
    }
    v
}

#[test]
fn flat_object_pixels_have_the_object_colour() {
    for &shape in Shape::ALL {
        for &colour in Colour::ALL {
            let bg = if colour == Colour::Blue { Colour::Yellow } else { Colour::Blue };
            let img =
                render(&plain_scene(ObjectKind::Shape { shape, colour }, bg, Style::Flat, Size::Big, Position::Centre));
            let obj = object_pixels(&img, bg.rgb());
            let exact = obj.iter().filter(|p| dist(p.2, colour.rgb()) <= 2).count();
            // A big shape covers a few hundred pixels; all but the anti-aliased rim are exact (the
            // thin crescent has the largest rim share, ~28 %).
            assert!(obj.len() > 250, "{shape:?} {colour:?}: only {} object pixels", obj.len());
            assert!(exact * 100 >= obj.len() * 65, "{shape:?} {colour:?}: {exact}/{} exact", obj.len());
        }
    }
}

#[test]
fn edges_are_anti_aliased_and_interiors_are_not() {
    let img = render(&plain_scene(
        ObjectKind::Shape { shape: Shape::Circle, colour: Colour::Red },
        Colour::Blue,
        Style::Flat,
        Size::Big,
        Position::Centre,
    ));
    let (red, blue) = (Colour::Red.rgb(), Colour::Blue.rgb());
    let mixed = (0..N * N).filter(|&i| {
        let p = px(&img, i % N, i / N);
        dist(p, red) > 4 && dist(p, blue) > 4
    });
    let mixed: Vec<usize> = mixed.collect();
    assert!(mixed.len() > 40, "{} blended rim pixels", mixed.len());
    // Every blended pixel lies on the rim: radius ≈ 0.85 × 17 px from the centre.
    for i in mixed {
        let (dx, dy) = ((i % N) as f32 + 0.5 - 32.0, (i / N) as f32 + 0.5 - 32.0);
        let r = (dx * dx + dy * dy).sqrt();
        assert!((r - 14.45).abs() < 1.6, "blended pixel at radius {r}");
    }
}

#[test]
fn pixelated_renders_are_made_of_hard_4px_blocks() {
    let mut rng = Rng::new(11);
    let mut checked = 0;
    while checked < 200 {
        let mut s = sample_scene(&mut rng, Split::Train);
        s.style = Style::Pixelated;
        s.background.kind = BgKind::Plain;
        let img = render(&s);
        for by in 0..N / 4 {
            for bx in 0..N / 4 {
                let first = px(&img, bx * 4, by * 4);
                for j in 0..4 {
                    for i in 0..4 {
                        assert_eq!(px(&img, bx * 4 + i, by * 4 + j), first, "block ({bx},{by}) of {s:?}");
                    }
                }
            }
        }
        checked += 1;
    }
}

#[test]
fn outlined_leaves_the_inside_empty_and_flat_fills_it() {
    let kind = ObjectKind::Shape { shape: Shape::Square, colour: Colour::Green };
    let flat = render(&plain_scene(kind, Colour::White, Style::Flat, Size::Big, Position::Centre));
    let outlined = render(&plain_scene(kind, Colour::White, Style::Outlined, Size::Big, Position::Centre));
    assert_eq!(px(&flat, 32, 32), Colour::Green.rgb());
    assert_eq!(px(&outlined, 32, 32), Colour::White.rgb());
    // The contour is there: walking right from the centre meets green before the edge of the image.
    assert!((32..N).any(|x| px(&outlined, x, 32) == Colour::Green.rgb()));
    let green = |img: &[u8]| object_pixels(img, Colour::White.rgb()).len();
    assert!(green(&outlined) * 2 < green(&flat), "outline is not thinner than the fill");
}

#[test]
fn glowing_has_a_halo_and_a_brighter_centre() {
    let kind = ObjectKind::Shape { shape: Shape::Circle, colour: Colour::Blue };
    let flat = render(&plain_scene(kind, Colour::Black, Style::Flat, Size::Big, Position::Centre));
    let glow = render(&plain_scene(kind, Colour::Black, Style::Glowing, Size::Big, Position::Centre));
    // Radius ≈ 14.45 px; 3 px outside the edge the flat render is background, the glow is lit.
    let (x, y) = (32 + 17, 32);
    assert_eq!(px(&flat, x, y), Colour::Black.rgb());
    assert!(px(&glow, x, y).iter().map(|&v| v as i32).sum::<i32>() > 150, "{:?}", px(&glow, x, y));
    let sum = |p: [u8; 3]| p.iter().map(|&v| v as i32).sum::<i32>();
    assert!(sum(px(&glow, 32, 32)) > sum(Colour::Blue.rgb()) + 100);
    // The halo is bluish: blue channel dominates.
    let h = px(&glow, x, y);
    assert!(h[2] > h[0] && h[2] > h[1]);
}

#[test]
fn objects_are_where_their_position_says() {
    let mut rng = Rng::new(5);
    for _ in 0..400 {
        let s = sample_scene(&mut rng, Split::Train);
        if s.objects.len() != 1 || s.style == Style::Glowing {
            continue;
        }
        let mut s = s;
        s.background.kind = BgKind::Plain;
        let img = render(&s);
        let pts = object_pixels(&img, s.background.colour.rgb());
        assert!(!pts.is_empty());
        let cx = pts.iter().map(|p| p.0 as f32).sum::<f32>() / pts.len() as f32;
        let cy = pts.iter().map(|p| p.1 as f32).sum::<f32>() / pts.len() as f32;
        let ok = match s.objects[0].position {
            Position::Left => cx < 26.0,
            Position::Right => cx > 37.0,
            Position::Top => cy < 26.0,
            Position::Bottom => cy > 37.0,
            Position::Centre => (26.0..38.0).contains(&cx) && (25.0..39.0).contains(&cy),
        };
        assert!(ok, "centroid ({cx}, {cy}) for {:?}", s.objects[0]);
    }
}

#[test]
fn big_is_bigger_than_small() {
    for &shape in Shape::ALL {
        let area = |size| {
            let img = render(&plain_scene(
                ObjectKind::Shape { shape, colour: Colour::Red },
                Colour::Blue,
                Style::Flat,
                size,
                Position::Centre,
            ));
            object_pixels(&img, Colour::Blue.rgb()).len()
        };
        let (big, small) = (area(Size::Big), area(Size::Small));
        assert!(big as f32 > 2.3 * small as f32, "{shape:?}: big {big}, small {small}");
    }
}

#[test]
fn characters_and_skull_are_drawn_in_their_identity_colours() {
    let cases = [
        (ObjectKind::Character { character: Character::Zorbo }, Colour::Purple),
        (ObjectKind::Character { character: Character::Mipsy }, Colour::Yellow),
        (ObjectKind::Character { character: Character::Blonk }, Colour::Green),
        (ObjectKind::Skull { crossbones: true }, Colour::White),
    ];
    for (kind, main) in cases {
        let img = render(&plain_scene(kind, Colour::Blue, Style::Flat, Size::Big, Position::Centre));
        let pts = object_pixels(&img, Colour::Blue.rgb());
        let main_px = pts.iter().filter(|p| dist(p.2, main.rgb()) <= 2).count();
        assert!(main_px * 2 > pts.len(), "{kind:?}: {main_px}/{}", pts.len());
        // Composite: clearly more than one colour (eyes, hat, bow, sockets).
        let other = pts.iter().filter(|p| dist(p.2, main.rgb()) > 60).count();
        assert!(other > 15, "{kind:?}: only {other} detail pixels");
    }
}

#[test]
fn renders_are_deterministic_and_seed_dependent() {
    for i in 0..50 {
        let a = example(42, i, Split::Train);
        let b = example(42, i, Split::Train);
        assert_eq!(a, b);
        let mut buf = [0u8; IMAGE_BYTES];
        render_into(&a.0, &mut buf);
        assert_eq!(buf.as_slice(), a.2.as_slice());
    }
    let differ = (0..50).filter(|&i| example(42, i, Split::Train).2 != example(43, i, Split::Train).2).count();
    assert!(differ >= 48);
}

/// Guards against accidental changes to the world: any change to sampling, captions or pixels
/// changes this hash. If a change is intended, update the constant and say so in the commit (a
/// dataset made before it is not comparable with one made after).
#[test]
fn golden_checksum_of_the_first_renders() {
    let mut bytes = Vec::new();
    for i in 0..64 {
        let (_, text, image) = example(0, i, Split::Train);
        bytes.extend_from_slice(&image);
        bytes.extend_from_slice(text.as_bytes());
    }
    assert_eq!(format!("{:016x}", fnv1a64(&bytes)), GOLDEN);
}

const GOLDEN: &str = "4937864ed5aee08d";

/// Decodes our own PNG output (chunk CRCs, stored deflate blocks, Adler-32) and compares pixels.
#[test]
fn preview_png_round_trips() {
    use classroom::png::{encode_png_rgb, grid};
    let imgs: Vec<Vec<u8>> = (0..3).map(|i| example(1, i, Split::Train).2).collect();
    let refs: Vec<&[u8]> = imgs.iter().map(|v| v.as_slice()).collect();
    let (w, h, rgb) = grid(&refs, SIZE, 2, 2, 3);
    assert_eq!((w, h), (2 * 128 + 3 * 3, 2 * 128 + 3 * 3));
    let png = encode_png_rgb(w, h, &rgb).unwrap_or_default();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (mut pos, mut idat) = (8, Vec::new());
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap_or_default()) as usize;
        let kind = &png[pos + 4..pos + 8];
        if kind == b"IDAT" {
            idat.extend_from_slice(&png[pos + 8..pos + 8 + len]);
        }
        pos += 12 + len;
    }
    assert_eq!(pos, png.len());
    // zlib header, then stored blocks: [final, len lo, len hi, !len lo, !len hi, bytes...].
    let mut raw = Vec::new();
    let mut p = 2;
    loop {
        let last = idat[p] & 1 == 1;
        let len = u16::from_le_bytes([idat[p + 1], idat[p + 2]]) as usize;
        assert_eq!(!u16::from_le_bytes([idat[p + 3], idat[p + 4]]) as usize, len);
        raw.extend_from_slice(&idat[p + 5..p + 5 + len]);
        p += 5 + len;
        if last {
            break;
        }
    }
    assert_eq!(p + 4, idat.len());
    let rows: Vec<u8> = raw
        .chunks_exact(w * 3 + 1)
        .flat_map(|r| {
            assert_eq!(r[0], 0);
            r[1..].to_vec()
        })
        .collect();
    assert_eq!(rows, rgb);
    // The first image sits at (3, 3), each pixel doubled.
    let at = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    assert_eq!(at(3 + 2 * 10 + 1, 3 + 2 * 20), px(&imgs[0], 10, 20));
}

#[test]
fn renders_at_128_px_are_the_64_px_scenes_sharper() {
    use classroom::render_sized;
    let mut worst = 0.0f64;
    for i in 0..96u64 {
        let (scene, _, img64) = example(1, i, if i % 2 == 0 { Split::Train } else { Split::Heldout });
        assert_eq!(render_sized(&scene, 64), img64, "item {i}: render_sized(64) is render");
        let img128 = render_sized(&scene, 128);
        assert_eq!(img128.len(), 128 * 128 * 3);
        // 2×2 box filter back to 64 px: the same picture, edges anti-aliased a little differently.
        let mut diff = 0u64;
        for y in 0..64 {
            for x in 0..64 {
                for c in 0..3 {
                    let at = |xx: usize, yy: usize| img128[(yy * 128 + xx) * 3 + c] as u32;
                    let mean =
                        (at(2 * x, 2 * y) + at(2 * x + 1, 2 * y) + at(2 * x, 2 * y + 1) + at(2 * x + 1, 2 * y + 1) + 2)
                            / 4;
                    diff += (mean as i32 - img64[(y * 64 + x) * 3 + c] as i32).unsigned_abs() as u64;
                }
            }
        }
        let mean = diff as f64 / (64.0 * 64.0 * 3.0);
        worst = worst.max(mean);
        assert!(mean < 4.0, "item {i}: 128 px render differs from the 64 px one by {mean:.2}/255 on average");
    }
    assert!(worst > 0.0, "the 128 px renders are only upscaled 64 px ones");
}
