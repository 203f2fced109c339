//! Previews of a medical image: a thumbnail (longest side at most [`THUMB_SIDE`] px) and a
//! web-sized image (at most [`WEB_SIDE`] px), both 8-bit grey PNGs.
//!
//! The input is a [`Grey`] raster: a DICOM file's first frame as [`super::dicom::decode_preview`]
//! windows it, or an uploaded PNG, JPEG or TIFF decoded by careport-ml's document reader
//! ([`previews_of_image`]). Downscaling averages every source pixel a target pixel covers (area
//! averaging: no aliasing on fine detail such as a CT's noise or text burnt into an image);
//! an image already small enough is kept at its own size, never enlarged.

use std::sync::Arc;

use careport_ml::ocr::{Document, DocumentKind, DocumentLimits, PageInput};

/// The longest side of a thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 256;
/// The longest side of the web-sized preview, in pixels.
pub const WEB_SIDE: u32 = 1024;

/// An 8-bit grey image, row-major, one byte per pixel, no padding: pixel `(x, y)` is
/// `pixels[y * width + x]`. Constructed with [`Grey::new`], which checks that the sizes agree.
#[derive(Clone, PartialEq, Eq)]
pub struct Grey {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

// An image is a patient's: `Debug` gives its size, not its pixels.
impl std::fmt::Debug for Grey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Grey({}x{})", self.width, self.height)
    }
}

impl Grey {
    /// `None` when `pixels` is not exactly `width * height` bytes or a side is 0.
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Option<Grey> {
        let area = usize::try_from(u64::from(width) * u64::from(height)).ok()?;
        (width > 0 && height > 0 && pixels.len() == area).then_some(Grey { width, height, pixels })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixel at `(x, y)`; `None` outside the image.
    pub fn get(&self, x: u32, y: u32) -> Option<u8> {
        if x >= self.width || y >= self.height {
            return None;
        }
        self.pixels.get(y as usize * self.width as usize + x as usize).copied()
    }
}

/// The thumbnail and the web-sized preview of `grey`, as PNG files: `(thumbnail, web)`.
pub fn previews(grey: &Grey) -> (Vec<u8>, Vec<u8>) {
    (png_of(&fit(grey, THUMB_SIDE)), png_of(&fit(grey, WEB_SIDE)))
}

/// Previews of an uploaded PNG, JPEG or TIFF (its first frame), in grey: `None` when the bytes
/// are not one of those formats, are not the format `media_type` declares, or do not decode
/// (damaged, larger than the document reader's limits).
pub fn previews_of_image(bytes: &[u8], media_type: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let kind = DocumentKind::sniff(bytes)?;
    if !matches!(kind, DocumentKind::Png | DocumentKind::Jpeg | DocumentKind::Tiff) {
        return None;
    }
    let declared = media_type.split(';').next().unwrap_or("").trim();
    if !declared.eq_ignore_ascii_case(kind.media_type()) {
        return None;
    }
    let document = Document::open(Arc::from(bytes), &DocumentLimits::default()).ok()?;
    let PageInput::Image(raster) = document.page(0).ok()? else {
        return None;
    };
    let grey = Grey::new(raster.width, raster.height, raster.pixels().to_vec())?;
    Some(previews(&grey))
}

/// The size `(width, height)` that fits `width × height` into a `side × side` box, keeping the
/// aspect ratio (each side at least 1), never larger than the original.
pub fn fitted_size(width: u32, height: u32, side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= side || longest == 0 {
        return (width, height);
    }
    let scale = |v: u32| -> u32 {
        // Rounded to nearest, in integers: v * side / longest.
        let scaled = (u64::from(v) * u64::from(side) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(scaled).unwrap_or(side).clamp(1, side)
    };
    (scale(width), scale(height))
}

/// `grey` downscaled by area averaging to fit a `side × side` box; a copy when it already fits.
pub fn fit(grey: &Grey, side: u32) -> Grey {
    let (tw, th) = fitted_size(grey.width, grey.height, side);
    if (tw, th) == (grey.width, grey.height) {
        return grey.clone();
    }
    let (sw, sh) = (grey.width as u64, grey.height as u64);
    let (tw64, th64) = (u64::from(tw), u64::from(th));
    // Work in units of 1/(tw) of a source column and 1/(th) of a source row: target column x
    // covers source coordinates [x*sw, (x+1)*sw) in units of 1/tw, so every boundary is an
    // integer and each source pixel's coverage is exact.
    let spans_x = spans(sw, tw64);
    let spans_y = spans(sh, th64);
    let mut row_acc = vec![0u64; tw as usize];
    let mut out = Vec::with_capacity(tw as usize * th as usize);
    let total_weight = sw * sh; // (tw * sw/tw) * (th * sh/th) in the scaled units
    for (y_first, y_weights) in &spans_y {
        row_acc.iter_mut().for_each(|a| *a = 0);
        for (dy, wy) in y_weights.iter().enumerate() {
            let row = (*y_first + dy as u64) as usize * grey.width as usize;
            let src = &grey.pixels[row..row + grey.width as usize];
            for (acc, (x_first, x_weights)) in row_acc.iter_mut().zip(&spans_x) {
                let mut sum = 0u64;
                for (dx, wx) in x_weights.iter().enumerate() {
                    sum += u64::from(src[*x_first as usize + dx]) * wx;
                }
                *acc += sum * wy;
            }
        }
        // Each target pixel's weights sum to (sw) * (sh); divide, rounding.
        out.extend(row_acc.iter().map(|acc| ((acc + total_weight / 2) / total_weight).min(255) as u8));
    }
    Grey { width: tw, height: th, pixels: out }
}

/// For each of `target` cells over `source` pixels: the first source pixel it covers and the
/// weight (coverage in units of 1/target of a pixel) of each source pixel from there on.
fn spans(source: u64, target: u64) -> Vec<(u64, Vec<u64>)> {
    (0..target)
        .map(|t| {
            let (start, end) = (t * source, (t + 1) * source);
            let first = start / target;
            let last = (end - 1) / target;
            let weights = (first..=last)
                .map(|s| {
                    let (lo, hi) = (s * target, (s + 1) * target);
                    hi.min(end) - lo.max(start)
                })
                .collect();
            (first, weights)
        })
        .collect()
}

/// `grey` as an 8-bit greyscale PNG.
fn png_of(grey: &Grey) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, grey.width, grey.height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    // Writing to a Vec fails only on sizes the constructor already refused (a zero side);
    // an empty result would be the sign.
    if let Ok(mut writer) = encoder.write_header() {
        let _ = writer.write_image_data(&grey.pixels);
        let _ = writer.finish();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png_bytes: &[u8]) -> Grey {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
        let info = reader.next_frame(&mut buf).expect("a frame");
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        Grey::new(info.width, info.height, buf).expect("consistent")
    }

    #[test]
    fn preview_sizes_fit_and_never_upscale() {
        assert_eq!(fitted_size(64, 48, 256), (64, 48));
        assert_eq!(fitted_size(2048, 1024, 256), (256, 128));
        assert_eq!(fitted_size(1000, 3, 256), (256, 1));
        assert_eq!(fitted_size(5000, 4000, 1024), (1024, 819));
        assert_eq!(fitted_size(1024, 1024, 1024), (1024, 1024));

        let big = Grey::new(1500, 40, (0..1500 * 40).map(|i| (i % 251) as u8).collect()).expect("grey");
        let (thumb, web) = previews(&big);
        let (thumb, web) = (decode(&thumb), decode(&web));
        assert_eq!((thumb.width(), thumb.height()), (256, 7));
        assert_eq!((web.width(), web.height()), (1024, 27));

        let small = Grey::new(30, 20, vec![7; 600]).expect("grey");
        let (thumb, web) = previews(&small);
        assert_eq!(decode(&thumb), small);
        assert_eq!(decode(&web), small);
    }

    #[test]
    fn preview_downscale_averages_areas() {
        // 4x2 -> 2x1: each target pixel is the mean of a 2x2 block.
        let g = Grey::new(4, 2, vec![0, 100, 200, 255, 100, 200, 255, 255]).expect("grey");
        let small = fit(&g, 2);
        assert_eq!(small.pixels(), &[100, 241]);
        // 3 -> 2 columns: the middle pixel is shared half and half.
        let g = Grey::new(3, 1, vec![0, 90, 180]).expect("grey");
        let small = fit(&g, 2);
        assert_eq!(small.pixels(), &[30, 150]);
        // A flat image stays flat at any scale.
        let g = Grey::new(999, 777, vec![123; 999 * 777]).expect("grey");
        assert!(fit(&g, 256).pixels().iter().all(|&p| p == 123));
    }

    #[test]
    fn preview_grey_checks_its_size() {
        assert!(Grey::new(2, 2, vec![0; 3]).is_none());
        assert!(Grey::new(0, 0, vec![]).is_none());
        let g = Grey::new(2, 1, vec![1, 2]).expect("grey");
        assert_eq!((g.get(1, 0), g.get(2, 0)), (Some(2), None));
        assert_eq!(format!("{g:?}"), "Grey(2x1)");
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/dicom/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).expect("fixture")
    }

    #[test]
    fn preview_of_uploaded_images() {
        // PNG, made here: 1300x10, so the web preview is scaled down too.
        let grey = Grey::new(1300, 10, (0..13_000).map(|i| (i % 256) as u8).collect()).expect("grey");
        let png_bytes = png_of(&grey);
        let (thumb, web) = previews_of_image(&png_bytes, "image/png").expect("PNG previews");
        assert_eq!((decode(&thumb).width(), decode(&web).width()), (256, 1024));

        let jpeg = fixture("photo.jpg");
        let (thumb, web) = previews_of_image(&jpeg, "image/jpeg").expect("JPEG previews");
        let (thumb, web) = (decode(&thumb), decode(&web));
        assert_eq!((thumb.width(), thumb.height()), (160, 120));
        assert_eq!(thumb, web);
        // The gradient runs dark (left) to light (right).
        let (left, right) = (thumb.get(2, 60).expect("px"), thumb.get(157, 60).expect("px"));
        assert!(left < 30 && right > 225, "{left} {right}");

        let tiff = fixture("scan.tif");
        let (thumb, _) = previews_of_image(&tiff, "image/tiff").expect("TIFF previews");
        let thumb = decode(&thumb);
        assert_eq!((thumb.width(), thumb.height()), (120, 90));
        assert_eq!((thumb.get(60, 45), thumb.get(5, 5)), (Some(220), Some(30)));

        // Declared type and content must agree; other formats and garbage give none.
        assert!(previews_of_image(&jpeg, "image/png").is_none());
        assert!(previews_of_image(b"%PDF-1.4 not an image", "application/pdf").is_none());
        assert!(previews_of_image(&[0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0], "image/png").is_none());
        assert!(previews_of_image(b"random bytes", "image/png").is_none());
    }
}
