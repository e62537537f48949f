//! Renders a fixed gallery of the world to a PNG for eyeballing and the model card:
//! one row per style (8 shapes, then Zorbo, Mipsy, Blonk, skull with and without crossbones), then
//! a row of backgrounds and sizes/positions.
//!
//! `cargo run -p classroom --example gallery -- OUT.png [SCALE]`

use classroom::{
    Background, BgKind, Character, Colour, Object, ObjectKind, Position, Scene, Shape, Size, Style, png, render,
};

fn obj(kind: ObjectKind, size: Size, position: Position) -> Object {
    Object { kind, size, position, jitter: [0.0, 0.0], scale_jitter: 1.0, rotation: 0.0 }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).cloned().unwrap_or_else(|| "gallery.png".into());
    let scale = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut kinds: Vec<ObjectKind> =
        Shape::ALL.iter().enumerate().map(|(i, &shape)| ObjectKind::Shape { shape, colour: Colour::ALL[i] }).collect();
    kinds.extend(Character::ALL.iter().map(|&character| ObjectKind::Character { character }));
    kinds.push(ObjectKind::Skull { crossbones: false });
    kinds.push(ObjectKind::Skull { crossbones: true });
    let bg_colour = |k: &ObjectKind| match k {
        ObjectKind::Shape { colour: Colour::Blue, .. } => Colour::Yellow,
        _ => Colour::Blue,
    };
    let mut scenes = Vec::new();
    for &style in Style::ALL {
        for k in &kinds {
            let background = Background { kind: BgKind::Plain, colour: bg_colour(k), phase: [0, 0] };
            scenes.push(Scene { background, style, objects: vec![obj(*k, Size::Big, Position::Centre)] });
        }
    }
    for (i, &bg) in BgKind::ALL.iter().enumerate() {
        for (j, colour) in [Colour::Blue, Colour::Black, Colour::White].into_iter().enumerate() {
            let shape = Shape::ALL[(i * 3 + j) % 8];
            let kind =
                ObjectKind::Shape { shape, colour: if colour == Colour::Blue { Colour::Yellow } else { Colour::Red } };
            let position = Position::ALL[(i + j) % 5];
            let background = Background { kind: bg, colour, phase: [0, 0] };
            scenes.push(Scene { background, style: Style::Flat, objects: vec![obj(kind, Size::ALL[j % 2], position)] });
        }
    }
    let images: Vec<Vec<u8>> = scenes.iter().map(render).collect();
    let refs: Vec<&[u8]> = images.iter().map(|v| v.as_slice()).collect();
    let (w, h, rgb) = png::grid(&refs, classroom::SIZE, kinds.len(), scale, 4);
    match png::encode_png_rgb(w, h, &rgb).map(|b| std::fs::write(&out, b).map_err(|e| e.to_string())) {
        Ok(Ok(())) => eprintln!("wrote {out} ({w}x{h})"),
        Ok(Err(e)) | Err(e) => eprintln!("gallery: {e}"),
    }
}
