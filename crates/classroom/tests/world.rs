//! Properties of the scene sampler, the captions and the caption parser.

use classroom::captions::HELDOUT_TEMPLATE;
use classroom::characters::{CHARACTERS, SKULL_INDIRECT_HELDOUT, identity_colours};
use classroom::world::is_heldout_triple;
use classroom::{
    Labels, ObjectKind, Rng, Split, caption, erasure_prompt_sets, heldout_prompts, parse_caption, sample_scene,
};
use std::collections::HashSet;

/// Every attribute the parser reads from a caption must agree with the scene.
fn consistent(parsed: &Labels, truth: &Labels) -> Result<(), String> {
    macro_rules! check {
        ($($f:ident),*) => {$(
            if parsed.$f.is_some() && parsed.$f != truth.$f {
                return Err(format!("{}: parsed {:?}, truth {:?}", stringify!($f), parsed.$f, truth.$f));
            }
        )*};
    }
    check!(shape, colour, bg, bg_colour, style, character, size, position, shape2, colour2, position2);
    if parsed.skull != truth.skull || parsed.n_objects != truth.n_objects {
        return Err(format!("skull/n_objects: parsed {parsed:?}, truth {truth:?}"));
    }
    if parsed.crossbones == Some(true) && truth.crossbones != Some(true) {
        return Err("crossbones asked for but not drawn".into());
    }
    Ok(())
}

#[test]
fn captions_name_every_object_and_parse_back_consistently() {
    let mut rng = Rng::new(2024);
    for split in [Split::Train, Split::Heldout] {
        for _ in 0..20_000 {
            let scene = sample_scene(&mut rng, split);
            let text = caption(&scene, split, &mut rng);
            let truth = scene.labels();
            let parsed = parse_caption(&text).unwrap_or_else(|| panic!("unparsable caption `{text}`"));
            if let Err(e) = consistent(&parsed, &truth) {
                panic!("`{text}`: {e}");
            }
            // The identity of every object is always in the caption.
            assert_eq!(parsed.shape, truth.shape, "`{text}`");
            assert_eq!(parsed.character, truth.character, "`{text}`");
            assert_eq!(parsed.skull, truth.skull, "`{text}`");
            if let Some(c) = truth.colour {
                assert_eq!(parsed.colour, Some(c), "`{text}`");
                assert!(text.contains(c.name()), "`{text}`");
            }
            if truth.n_objects == 2 {
                assert_eq!((parsed.shape2, parsed.colour2), (truth.shape2, truth.colour2), "`{text}`");
            }
            // Non-flat styles are always named.
            assert_eq!(parsed.style, truth.style, "`{text}`");
        }
    }
}

#[test]
fn backgrounds_never_hide_objects() {
    let mut rng = Rng::new(9);
    for _ in 0..20_000 {
        let s = sample_scene(&mut rng, Split::Train);
        for o in &s.objects {
            let forbidden = match o.kind {
                ObjectKind::Shape { colour, .. } => vec![colour],
                ObjectKind::Character { character } => identity_colours(character).to_vec(),
                ObjectKind::Skull { .. } => vec![classroom::Colour::White],
            };
            assert!(!forbidden.contains(&s.background.colour), "{s:?}");
        }
    }
}

#[test]
fn training_sampler_never_produces_heldout_material() {
    let heldout: HashSet<String> = heldout_prompts().into_iter().map(|p| p.text).collect();
    let mut eval_only: Vec<String> = SKULL_INDIRECT_HELDOUT.iter().map(|s| s.to_string()).collect();
    for ci in &CHARACTERS {
        eval_only.extend(ci.descriptions_heldout.iter().map(|s| s.to_string()));
    }
    let template_prefix = HELDOUT_TEMPLATE.replace("{}", "");
    let mut rng = Rng::new(77);
    let mut seen = HashSet::new();
    for _ in 0..100_000 {
        let scene = sample_scene(&mut rng, Split::Train);
        for o in &scene.objects {
            if let ObjectKind::Shape { shape, colour } = o.kind {
                assert!(!is_heldout_triple(shape, colour, scene.background.kind), "{scene:?}");
            }
        }
        let text = caption(&scene, Split::Train, &mut rng);
        assert!(!heldout.contains(&text), "training produced held-out prompt `{text}`");
        assert!(!text.starts_with(&template_prefix), "`{text}`");
        assert!(!eval_only.iter().any(|p| text.contains(p.as_str())), "`{text}`");
        seen.insert(text);
    }
    // The sampler is varied: most captions are distinct.
    assert!(seen.len() > 60_000, "only {} distinct captions", seen.len());
}

#[test]
fn heldout_split_does_use_the_heldout_material() {
    let mut rng = Rng::new(3);
    let (mut triples, mut template, mut indirect) = (0, 0, 0);
    for _ in 0..5_000 {
        let scene = sample_scene(&mut rng, Split::Heldout);
        if let [o] = scene.objects.as_slice()
            && let ObjectKind::Shape { shape, colour } = o.kind
        {
            triples += usize::from(is_heldout_triple(shape, colour, scene.background.kind));
        }
        let text = caption(&scene, Split::Heldout, &mut rng);
        template += usize::from(text.starts_with("an image showing"));
        indirect += usize::from(SKULL_INDIRECT_HELDOUT.iter().any(|p| text.contains(p)));
    }
    assert!(triples > 1000 && template > 1000 && indirect > 50, "{triples} {template} {indirect}");
}

#[test]
fn heldout_prompts_are_fixed_labelled_and_cover_every_category() {
    let a = heldout_prompts();
    assert_eq!(a, heldout_prompts());
    assert_eq!(a.len(), 122);
    for p in &a {
        assert_eq!(parse_caption(&p.text).as_ref(), Some(&p.labels), "`{}`", p.text);
    }
    let count = |f: &dyn Fn(&Labels) -> bool| a.iter().filter(|p| f(&p.labels)).count();
    assert!(count(&|l| l.shape.is_some()) >= 16);
    assert!(count(&|l| l.colour.is_some()) >= 16);
    assert!(count(&|l| l.bg.is_some()) >= 16);
    assert!(count(&|l| l.style != Some(classroom::Style::Flat)) >= 16);
    assert!(count(&|l| l.character.is_some()) >= 16);
    assert!(count(&|l| l.skull) >= 32);
    assert!(count(&|l| l.size.is_some()) >= 16);
    assert!(count(&|l| l.position.is_some()) >= 16);
    // Every shape, colour, style, background and character value is asked for at least twice.
    for s in classroom::Shape::ALL {
        assert!(count(&|l| l.shape == Some(*s)) >= 2);
    }
    for c in classroom::Colour::ALL {
        assert!(count(&|l| l.colour == Some(*c)) >= 2);
    }
    for st in classroom::Style::ALL {
        assert!(count(&|l| l.style == Some(*st)) >= 4);
    }
    for ch in classroom::Character::ALL {
        assert!(count(&|l| l.character == Some(*ch)) >= 6);
    }
}

#[test]
fn erasure_sets_are_complete_and_parse_back() {
    let sets = erasure_prompt_sets();
    assert_eq!(sets.len(), 12);
    for s in &sets {
        for (name, list) in
            [("direct", &s.direct), ("synonyms", &s.synonyms), ("indirect", &s.indirect), ("neighbours", &s.neighbours)]
        {
            assert!(list.len() >= 8, "{} {name}: {}", s.concept, list.len());
        }
        let parse_must_match: Vec<_> = match s.kind {
            // For characters and the skull the parser knows every phrasing, indirect ones included.
            classroom::ConceptKind::Character | classroom::ConceptKind::Unsafe => {
                s.direct.iter().chain(&s.synonyms).chain(&s.indirect).chain(&s.neighbours).collect()
            }
            _ => s.direct.iter().chain(&s.neighbours).collect(),
        };
        for p in parse_must_match {
            assert_eq!(parse_caption(&p.text).as_ref(), Some(&p.labels), "{}: `{}`", s.concept, p.text);
        }
        // Neighbours never carry the concept itself.
        for p in &s.neighbours {
            let l = &p.labels;
            let has = match s.concept.as_str() {
                "skull" => l.skull,
                "zorbo" | "mipsy" | "blonk" => l.character.map(|c| c.name()) == Some(s.concept.as_str()),
                c => {
                    l.style.map(|x| x.name()) == Some(c) && s.kind == classroom::ConceptKind::Style
                        || l.shape.map(|x| x.name()) == Some(c)
                }
            };
            assert!(!has, "{}: neighbour `{}` is the concept", s.concept, p.text);
        }
    }
}

#[test]
fn parser_reads_the_issue_examples() {
    let l = parse_caption("a big red star on a blue striped background").unwrap_or_default();
    assert_eq!(
        (l.shape, l.colour, l.bg, l.bg_colour, l.size),
        (
            Some(classroom::Shape::Star),
            Some(classroom::Colour::Red),
            Some(classroom::BgKind::Stripes),
            Some(classroom::Colour::Blue),
            Some(classroom::Size::Big)
        )
    );
    let l = parse_caption("a red star, small, at the top, dots background in yellow").unwrap_or_default();
    assert_eq!(
        (l.position, l.bg, l.bg_colour),
        (Some(classroom::Position::Top), Some(classroom::BgKind::Dots), Some(classroom::Colour::Yellow))
    );
    let l = parse_caption("Zorbo on a checkerboard background").unwrap_or_default();
    assert_eq!(
        (l.character, l.shape, l.bg),
        (Some(classroom::Character::Zorbo), None, Some(classroom::BgKind::Checkerboard))
    );
    let l = parse_caption("two objects: a red circle and a blue square").unwrap_or_default();
    assert_eq!((l.n_objects, l.shape2, l.colour2), (2, Some(classroom::Shape::Square), Some(classroom::Colour::Blue)));
    let l = parse_caption("a jolly roger").unwrap_or_default();
    assert!(l.skull && l.character.is_none());
    assert_eq!(parse_caption("a star in a glowing style").and_then(|l| l.style), Some(classroom::Style::Glowing));
    assert_eq!(parse_caption("hello world"), None);
}
