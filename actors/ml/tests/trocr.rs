//! TrOCR on text-line crops, on the CPU with the tiny random model; and, when an operator's
//! checkpoint is given in `CAREPORT_TROCR_DIR`, on real lines of a scanned page (ignored by
//! default: `cargo test -p careport-ml --test trocr -- --ignored`).

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use careport_ml::trocr::{self, LineImage, LineText, TINY_SPECIAL_TOKENS, TINY_WORDS, TrOcr, TrOcrError, availability};

const SEED: u64 = 20_240_118;

fn tiny() -> TrOcr {
    TrOcr::tiny_random(SEED, &Device::Cpu).expect("the tiny model builds")
}

/// A synthetic crop: dark strokes of varying width on a light background, a bit of colour.
fn crop(width: u32, height: u32, salt: u32) -> LineImage {
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let stroke = ((x / (2 + salt % 5)) + salt) % 7 < 2 && y > height / 5 && y < height - height / 5;
            let base: u8 = if stroke { 30 } else { 235 };
            rgb.extend_from_slice(&[base, base.saturating_add((x % 13) as u8), base.saturating_sub((y % 11) as u8)]);
        }
    }
    LineImage { width, height, rgb }
}

fn five_crops() -> Vec<LineImage> {
    vec![crop(120, 32, 1), crop(300, 40, 2), crop(64, 64, 3), crop(17, 5, 4), crop(500, 24, 5)]
}

fn vocabulary() -> HashSet<&'static str> {
    TINY_WORDS.iter().copied().collect()
}

fn assert_sane(results: &[LineText]) {
    let vocabulary = vocabulary();
    for result in results {
        assert!((0.0..=100.0).contains(&result.confidence), "confidence {}", result.confidence);
        for word in result.text.split_whitespace() {
            assert!(vocabulary.contains(word), "{word:?} is not in the tiny vocabulary ({:?})", result.text);
        }
        for special in TINY_SPECIAL_TOKENS {
            assert!(!result.text.contains(special), "special token left in {:?}", result.text);
        }
    }
}

fn texts(results: &[LineText]) -> Vec<&str> {
    results.iter().map(|r| r.text.as_str()).collect()
}

#[test]
fn trocr_is_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<TrOcr>();
}

#[test]
fn the_tiny_model_loads_with_its_configured_geometry() {
    let model = tiny();
    assert_eq!(model.image_size(), 64);
    assert_eq!(model.max_length(), 24);
    assert!(model.device().is_cpu());
    assert_eq!(model.tokenizer().get_vocab_size(true), TINY_SPECIAL_TOKENS.len() + TINY_WORDS.len());
}

#[test]
fn five_crops_in_batches_of_two_come_back_in_order() {
    let model = tiny();
    let crops = five_crops();
    let started = Instant::now();
    let results = model.read_lines(&crops, 2).expect("read");
    eprintln!("tiny TrOCR, 5 crops, batch 2, CPU: {:?}", started.elapsed());
    eprintln!("{results:#?}");
    assert_eq!(results.len(), 5);
    assert_sane(&results);
    // Each result is the one its crop gets alone.
    for (crop, result) in crops.iter().zip(&results) {
        let alone = model.read_lines(std::slice::from_ref(crop), 1).expect("read one");
        assert_eq!(alone[0].text, result.text);
        assert!((alone[0].confidence - result.confidence).abs() < 1e-3);
    }
    let started = Instant::now();
    model.read_lines(&crops, 5).expect("read");
    eprintln!("tiny TrOCR, 5 crops, batch 5, CPU: {:?}", started.elapsed());
}

#[test]
fn the_same_crops_read_the_same_twice_and_across_instances() {
    let crops = five_crops();
    let model = tiny();
    let first = model.read_lines(&crops, 3).expect("read");
    let second = model.read_lines(&crops, 3).expect("read again");
    assert_eq!(first, second);
    let other = tiny().read_lines(&crops, 3).expect("read with a second instance of the same seed");
    assert_eq!(first, other);
}

#[test]
fn the_batch_size_does_not_change_the_results() {
    let model = tiny();
    let crops = five_crops();
    let one = model.read_lines(&crops, 1).expect("batch 1");
    let four = model.read_lines(&crops, 4).expect("batch 4");
    let zero = model.read_lines(&crops, 0).expect("batch 0 counts as 1");
    assert_eq!(texts(&one), texts(&four));
    assert_eq!(texts(&one), texts(&zero));
    for (a, b) in one.iter().zip(&four) {
        assert!((a.confidence - b.confidence).abs() < 1e-3, "{} vs {}", a.confidence, b.confidence);
    }
}

#[test]
fn no_crops_read_as_nothing() {
    assert!(tiny().read_lines(&[], 8).expect("read nothing").is_empty());
}

#[test]
fn degenerate_crops_still_read() {
    let model = tiny();
    let crops = vec![crop(1, 1, 0), crop(800, 20, 6), crop(20, 800, 7), crop(2, 3, 8)];
    let results = model.read_lines(&crops, 4).expect("read");
    assert_eq!(results.len(), 4);
    assert_sane(&results);
}

#[test]
fn a_malformed_crop_is_named_by_index() {
    let model = tiny();
    let mut bad = crop(10, 10, 0);
    bad.rgb.pop();
    let err = model.read_lines(&[crop(10, 10, 1), bad], 2).expect_err("short buffer");
    assert!(matches!(err, TrOcrError::InvalidLine { index: 1, .. }), "{err}");
    assert!(err.to_string().contains("10×10"), "{err}");
    let empty = LineImage { width: 0, height: 7, rgb: Vec::new() };
    let err = model.read_lines(&[empty], 1).expect_err("no pixels");
    assert!(matches!(err, TrOcrError::InvalidLine { index: 0, .. }), "{err}");
}

#[test]
fn loading_an_empty_directory_names_the_missing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = TrOcr::load(dir.path(), &Device::Cpu).expect_err("empty directory");
    let message = err.to_string();
    for file in trocr::REQUIRED_FILES {
        assert!(message.contains(file), "{message}");
    }
    std::fs::write(dir.path().join("config.json"), trocr::TINY_CONFIG).expect("write config");
    let message = TrOcr::load(dir.path(), &Device::Cpu).expect_err("still incomplete").to_string();
    assert!(!message.contains("config.json") && message.contains("model.safetensors"), "{message}");

    let missing = dir.path().join("not-there");
    let err = TrOcr::load(&missing, &Device::Cpu).expect_err("no directory");
    assert!(matches!(err, TrOcrError::NotADirectory(_)), "{err}");
}

#[test]
fn availability_explains_why_the_worker_is_off() {
    let reason = availability(None).expect_err("no weights directory");
    assert!(reason.contains("no TrOCR weights directory configured"), "{reason}");
    if cfg!(not(feature = "cuda")) {
        assert!(reason.contains("built without the `cuda` feature"), "{reason}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let reason = availability(Some(dir.path())).expect_err("empty directory");
    assert!(reason.contains("tokenizer.json"), "{reason}");
}

/// What an operator's directory holds, written from the tiny model: its weights, its tokenizer
/// and a `config.json` in Hugging Face's layout written out here (with keys the loader ignores).
fn write_checkpoint(model: &TrOcr, dir: &Path) {
    model.save_weights(&dir.join("model.safetensors")).expect("save weights");
    model.tokenizer().save(dir.join("tokenizer.json"), false).expect("save tokenizer");
    let config = serde_json::json!({
        "_name_or_path": "careport/tiny-trocr",
        "architectures": ["VisionEncoderDecoderModel"],
        "model_type": "vision-encoder-decoder",
        "is_encoder_decoder": true,
        "tie_word_embeddings": false,
        "torch_dtype": "float32",
        "transformers_version": "4.44.0",
        "decoder_start_token_id": 2,
        "eos_token_id": 2,
        "pad_token_id": 1,
        "max_length": 24,
        "encoder": {
            "_name_or_path": "",
            "model_type": "vit",
            "architectures": null,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "initializer_range": 0.02,
            "layer_norm_eps": 1e-12,
            "image_size": 64,
            "patch_size": 16,
            "num_channels": 3,
            "qkv_bias": false,
            "encoder_stride": 16,
            "max_length": 20
        },
        "decoder": {
            "_name_or_path": "",
            "model_type": "trocr",
            "add_cross_attention": true,
            "is_decoder": true,
            "vocab_size": 64,
            "d_model": 32,
            "cross_attention_hidden_size": 32,
            "decoder_layers": 2,
            "decoder_attention_heads": 2,
            "decoder_ffn_dim": 64,
            "activation_function": "gelu",
            "max_position_embeddings": 64,
            "dropout": 0.1,
            "attention_dropout": 0.0,
            "activation_dropout": 0.0,
            "classifier_dropout": 0.0,
            "init_std": 0.02,
            "decoder_layerdrop": 0.0,
            "use_cache": false,
            "scale_embedding": true,
            "use_learned_position_embeddings": true,
            "layernorm_embedding": true,
            "tie_word_embeddings": false,
            "bos_token_id": 0,
            "pad_token_id": 1,
            "eos_token_id": 2,
            "decoder_start_token_id": 2,
            "max_length": 20
        }
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).expect("json")).expect("write");
}

#[test]
fn a_saved_checkpoint_loads_and_reads_like_the_model_in_memory() {
    let model = tiny();
    let dir = tempfile::tempdir().expect("tempdir");
    write_checkpoint(&model, dir.path());

    let loaded = TrOcr::load(dir.path(), &Device::Cpu).expect("load the written checkpoint");
    assert_eq!(loaded.image_size(), model.image_size());
    assert_eq!(loaded.max_length(), model.max_length());
    let crops = five_crops();
    let expected = model.read_lines(&crops, 2).expect("in memory");
    let got = loaded.read_lines(&crops, 2).expect("loaded");
    assert_eq!(texts(&got), texts(&expected));
    for (a, b) in got.iter().zip(&expected) {
        assert!((a.confidence - b.confidence).abs() < 1e-4);
    }

    // A complete directory leaves only the device to complain about.
    if cfg!(not(feature = "cuda")) {
        let reason = availability(Some(dir.path())).expect_err("no cuda");
        assert_eq!(reason, "built without the `cuda` feature");
    }

    let err = loaded.save_weights(&dir.path().join("again.safetensors")).expect_err("loaded models keep no copy");
    assert!(matches!(err, TrOcrError::NotInMemory), "{err}");

    // A checkpoint whose weights do not fit its config says so.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).expect("read")).expect("json");
    json["decoder"]["decoder_ffn_dim"] = 48.into();
    std::fs::write(dir.path().join("config.json"), json.to_string()).expect("write");
    let err = TrOcr::load(dir.path(), &Device::Cpu).expect_err("mismatch");
    assert!(matches!(err, TrOcrError::Weights(_)), "{err}");
}

/// The text lines of a grayscale page: bands of rows with dark pixels, cut to their dark columns
/// with a margin, as RGB crops.
fn line_crops(gray: &[u8], width: usize, height: usize) -> Vec<LineImage> {
    let dark = |x: usize, y: usize| gray[y * width + x] < 128;
    let inked: Vec<bool> = (0..height).map(|y| (0..width).any(|x| dark(x, y))).collect();
    let mut bands = Vec::new();
    let mut y = 0;
    while y < height {
        if inked[y] {
            let top = y;
            while y < height && inked[y] {
                y += 1;
            }
            bands.push((top, y));
        }
        y += 1;
    }
    let margin = 6;
    bands
        .into_iter()
        .filter(|(top, bottom)| bottom - top >= 8)
        .filter_map(|(top, bottom)| {
            let columns: Vec<usize> = (0..width).filter(|&x| (top..bottom).any(|y| dark(x, y))).collect();
            let (left, right) = (*columns.first()?, *columns.last()?);
            let (x0, x1) = (left.saturating_sub(margin), (right + margin + 1).min(width));
            let (y0, y1) = (top.saturating_sub(margin), (bottom + margin).min(height));
            let mut rgb = Vec::with_capacity((x1 - x0) * (y1 - y0) * 3);
            for y in y0..y1 {
                for x in x0..x1 {
                    let v = gray[y * width + x];
                    rgb.extend_from_slice(&[v, v, v]);
                }
            }
            Some(LineImage { width: (x1 - x0) as u32, height: (y1 - y0) as u32, rgb })
        })
        .collect()
}

/// An operator's checkpoint on the first lines of the scanned lab report fixture. Set
/// `CAREPORT_TROCR_DIR`; it uses the GPU when built with `cuda` and one is there, else the CPU.
#[test]
#[ignore = "needs real TrOCR weights in CAREPORT_TROCR_DIR"]
fn real_weights_read_a_line() {
    let Some(dir) = std::env::var_os("CAREPORT_TROCR_DIR") else {
        eprintln!("CAREPORT_TROCR_DIR is not set: nothing to test");
        return;
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scan-2p.tif");
    let file = std::fs::File::open(&fixture).expect("the scanned fixture");
    let mut decoder = tiff::decoder::Decoder::new(std::io::BufReader::new(file)).expect("a TIFF");
    let (width, height) = decoder.dimensions().expect("dimensions");
    let gray = match decoder.read_image().expect("page 1") {
        tiff::decoder::DecodingResult::U8(pixels) => pixels,
        _ => panic!("expected an 8-bit grayscale page"),
    };
    assert_eq!(gray.len(), (width * height) as usize, "expected one channel");
    let lines = line_crops(&gray, width as usize, height as usize);
    eprintln!("{} lines: {:?}", lines.len(), lines.iter().map(|l| (l.width, l.height)).collect::<Vec<_>>());
    assert!(lines.len() >= 3, "the page has several lines");

    let device = trocr::device_for_gpu().unwrap_or_else(|reason| {
        eprintln!("on the CPU: {reason}");
        Device::Cpu
    });
    let model = TrOcr::load(Path::new(&dir), &device).expect("load the checkpoint");
    let started = Instant::now();
    let results = model.read_lines(&lines, 8).expect("read");
    eprintln!("{} lines in {:?} on {:?}", lines.len(), started.elapsed(), device);
    for result in &results {
        eprintln!("{:5.1}  {}", result.confidence, result.text);
        assert!((0.0..=100.0).contains(&result.confidence));
    }
    assert_eq!(results.len(), lines.len());
    let all = texts(&results).join("\n").to_lowercase();
    assert!(
        ["laboratory", "blood", "haemoglobin", "platelets"].iter().any(|word| all.contains(word)),
        "none of the expected words was read: {all:?}"
    );
}
