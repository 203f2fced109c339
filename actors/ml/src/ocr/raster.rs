//! Page images in memory: [`Raster`] (8-bit grey) and [`LineBox`], with the conversions that
//! bring every decoder's pixels to it and the crops and turns the engines need.
//!
//! Why grey: Tesseract thresholds every image to black and white from its grey levels (an RGB
//! image is turned grey first), so colour adds nothing to recognition while costing three
//! times the memory and time in every copy, turn and crop. A 300-dpi letter page is 8.4 MB in
//! grey. TrOCR takes RGB: [`Raster::to_rgb8`] repeats the grey level in each channel.
//!
//! Every operation here is total: a box outside the image is clamped, a raster whose fields
//! were changed by hand is read with checked indexing (missing pixels are white), and nothing
//! panics on any input.

use std::fmt;

use super::OcrError;

/// A page image: 8-bit grey (0 black, 255 white), one byte per pixel, row-major, rows not
/// padded: pixel `(x, y)` is byte `y * width + x`. `width` and `height` are public to read;
/// build one with [`Raster::from_grey`], which checks that they match the pixels.
#[derive(Clone, PartialEq, Eq)]
pub struct Raster {
    pub width: u32,
    pub height: u32,
    pixels: Vec<u8>,
    /// The resolution of the scan or of the rendering, where it is known: Tesseract uses it
    /// to size its expectations of text, and estimates it (less well) where it is not.
    dpi: Option<u32>,
}

/// A rectangle of a raster in pixels, from its top-left corner: a text line, for TrOCR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

// The pixels are a page of a patient's document: a raster's `Debug` gives its size only.
impl fmt::Debug for Raster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Raster")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("dpi", &self.dpi)
            .finish()
    }
}

/// White, the colour of paper: what a missing pixel reads as.
const WHITE: u8 = 255;

impl Raster {
    /// A raster of `pixels` (grey, row-major, `width * height` bytes).
    pub fn from_grey(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self, OcrError> {
        if area(width, height) != Some(pixels.len()) {
            return Err(OcrError::Malformed("the image's pixels do not match its size".into()));
        }
        Ok(Self { width, height, pixels, dpi: None })
    }

    /// The same raster, with its resolution (dots per inch) known, or not.
    #[must_use]
    pub fn with_dpi(mut self, dpi: Option<u32>) -> Self {
        self.dpi = dpi;
        self
    }

    /// The resolution in dots per inch, where the file or the rendering said.
    pub fn dpi(&self) -> Option<u32> {
        self.dpi
    }

    /// The grey pixels, row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Whether the fields agree with the pixels (they always do unless changed by hand).
    pub(crate) fn is_consistent(&self) -> bool {
        area(self.width, self.height) == Some(self.pixels.len())
    }

    fn at(&self, x: u32, y: u32) -> u8 {
        let i = u64::from(y) * u64::from(self.width) + u64::from(x);
        usize::try_from(i).ok().and_then(|i| self.pixels.get(i)).copied().unwrap_or(WHITE)
    }

    /// The part of the raster under `b`, clamped to the raster (a box wholly outside gives an
    /// empty raster). Keeps the resolution.
    pub fn crop(&self, b: &LineBox) -> Raster {
        let x0 = b.x.min(self.width);
        let y0 = b.y.min(self.height);
        let x1 = b.x.saturating_add(b.width).min(self.width);
        let y1 = b.y.saturating_add(b.height).min(self.height);
        let (w, h) = (x1 - x0, y1 - y0);
        let mut pixels = Vec::with_capacity(area(w, h).unwrap_or(0));
        for y in y0..y1 {
            let start = u64::from(y) * u64::from(self.width) + u64::from(x0);
            let row = usize::try_from(start).ok().and_then(|s| self.pixels.get(s..s.checked_add(w as usize)?));
            match row {
                Some(row) => pixels.extend_from_slice(row),
                None => pixels.extend((x0..x1).map(|x| self.at(x, y))),
            }
        }
        Raster { width: w, height: h, pixels, dpi: self.dpi }
    }

    /// Row-major RGB, three bytes a pixel (the grey level in each), as TrOCR takes it.
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.pixels.iter().flat_map(|&g| [g, g, g]).collect()
    }

    /// The raster turned clockwise by `degrees`: 90, 180 or 270 (any multiple of 90 works,
    /// modulo 360); other angles give the raster unturned.
    #[must_use]
    pub fn rotate(&self, degrees: u16) -> Raster {
        let (w, h) = (self.width, self.height);
        let turned = |width: u32, height: u32, source: &dyn Fn(u32, u32) -> (u32, u32)| {
            let mut pixels = Vec::with_capacity(area(width, height).unwrap_or(0));
            for y in 0..height {
                for x in 0..width {
                    let (sx, sy) = source(x, y);
                    pixels.push(self.at(sx, sy));
                }
            }
            Raster { width, height, pixels, dpi: self.dpi }
        };
        match degrees % 360 {
            // Clockwise a quarter: the new row y is the old column y, read from the bottom.
            90 => turned(h, w, &|x, y| (y, h - 1 - x)),
            180 => turned(w, h, &|x, y| (w - 1 - x, h - 1 - y)),
            270 => turned(h, w, &|x, y| (w - 1 - y, x)),
            _ => self.clone(),
        }
    }
}

/// `width * height` as a length, if it is one.
pub(crate) fn area(width: u32, height: u32) -> Option<usize> {
    usize::try_from(u64::from(width) * u64::from(height)).ok()
}

/// The grey level of an RGB colour (ITU-R BT.601 weights in integer arithmetic, as scanners
/// and Leptonica do it).
pub(crate) fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 77 + u32::from(g) * 150 + u32::from(b) * 29 + 128) >> 8) as u8
}

/// How a decoder laid out its samples, for [`to_grey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Grey,
    GreyAlpha,
    Rgb,
    Rgba,
    /// RGBA with colour premultiplied by alpha (hayro's and vello's pixmaps).
    RgbaPremultiplied,
    Cmyk,
}

impl Layout {
    fn channels(self) -> usize {
        match self {
            Layout::Grey => 1,
            Layout::GreyAlpha => 2,
            Layout::Rgb => 3,
            Layout::Rgba | Layout::RgbaPremultiplied | Layout::Cmyk => 4,
        }
    }
}

/// 8-bit samples in `layout` to grey, transparency laid on white paper. Fails when the
/// samples are fewer than `width * height` pixels need.
pub(crate) fn to_grey(width: u32, height: u32, samples: &[u8], layout: Layout) -> Result<Raster, OcrError> {
    let n = area(width, height).ok_or_else(|| OcrError::Malformed("the image is too large".into()))?;
    let needed = n.checked_mul(layout.channels());
    let samples = needed
        .and_then(|needed| samples.get(..needed))
        .ok_or_else(|| OcrError::Malformed("the image has fewer pixels than its size says".into()))?;
    let on_white = |grey: u8, alpha: u8| -> u8 {
        // Straight alpha over white: grey·a + 255·(1 − a).
        ((u32::from(grey) * u32::from(alpha) + 255 * (255 - u32::from(alpha)) + 127) / 255) as u8
    };
    let pixels: Vec<u8> = match layout {
        Layout::Grey => samples.to_vec(),
        Layout::GreyAlpha => samples.chunks_exact(2).map(|p| on_white(p[0], p[1])).collect(),
        Layout::Rgb => samples.chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect(),
        Layout::Rgba => samples.chunks_exact(4).map(|p| on_white(luma(p[0], p[1], p[2]), p[3])).collect(),
        // Premultiplied over white: c + (255 − a), the colour already carrying its alpha.
        Layout::RgbaPremultiplied => {
            samples.chunks_exact(4).map(|p| luma(p[0], p[1], p[2]).saturating_add(255 - p[3])).collect()
        }
        // CMYK as ink: each channel darkens the paper.
        Layout::Cmyk => samples
            .chunks_exact(4)
            .map(|p| {
                let k = 255 - u32::from(p[3]);
                let c = |v: u8| ((255 - u32::from(v)) * k / 255) as u8;
                luma(c(p[0]), c(p[1]), c(p[2]))
            })
            .collect(),
    };
    Raster::from_grey(width, height, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×2 raster with distinct pixels: 0 1 2 / 3 4 5.
    fn sample() -> Raster {
        Raster::from_grey(3, 2, vec![0, 1, 2, 3, 4, 5]).expect("consistent")
    }

    #[test]
    fn turns_are_clockwise_and_four_make_a_whole() {
        let r = sample();
        let q = r.rotate(90);
        assert_eq!((q.width, q.height), (2, 3));
        // Clockwise: the bottom-left corner comes to the top-left.
        assert_eq!(q.pixels(), &[3, 0, 4, 1, 5, 2]);
        assert_eq!(r.rotate(180).pixels(), &[5, 4, 3, 2, 1, 0]);
        assert_eq!(r.rotate(270).pixels(), &[2, 5, 1, 4, 0, 3]);
        assert_eq!(q.rotate(270), r);
        assert_eq!(r.rotate(90).rotate(90).rotate(180), r);
        assert_eq!(r.rotate(45), r);
    }

    #[test]
    fn crops_are_clamped_to_the_raster() {
        let r = sample();
        let c = r.crop(&LineBox { x: 1, y: 1, width: 10, height: 10 });
        assert_eq!((c.width, c.height, c.pixels()), (2, 1, &[4u8, 5][..]));
        let outside = r.crop(&LineBox { x: 7, y: 0, width: 2, height: 2 });
        assert_eq!((outside.width, outside.height), (0, 2));
        assert!(outside.pixels().is_empty());
        let huge = r.crop(&LineBox { x: u32::MAX, y: u32::MAX, width: u32::MAX, height: u32::MAX });
        assert!(huge.pixels().is_empty());
    }

    #[test]
    fn a_raster_changed_by_hand_reads_white_where_pixels_are_missing() {
        let mut r = sample();
        r.width = 5;
        assert!(!r.is_consistent());
        let c = r.crop(&LineBox { x: 0, y: 1, width: 5, height: 1 });
        assert_eq!(c.pixels().len(), 5);
        assert_eq!(r.rotate(90).pixels().len(), 10);
    }

    #[test]
    fn rgb_for_trocr_repeats_the_grey_level() {
        assert_eq!(sample().crop(&LineBox { x: 2, y: 0, width: 1, height: 2 }).to_rgb8(), [2, 2, 2, 5, 5, 5]);
    }

    #[test]
    fn colour_and_transparency_become_grey_on_paper() {
        let r = to_grey(2, 1, &[255, 0, 0, 255, 0, 0, 0, 0], Layout::Rgba).expect("grey");
        // Opaque red is darkish grey; fully transparent is white paper.
        assert_eq!(r.pixels(), &[luma(255, 0, 0), 255]);
        let premul = to_grey(1, 1, &[0, 0, 0, 0], Layout::RgbaPremultiplied).expect("grey");
        assert_eq!(premul.pixels(), &[255]);
        assert_eq!(to_grey(1, 1, &[0, 0, 0, 0], Layout::Cmyk).expect("grey").pixels(), &[255]);
        assert_eq!(to_grey(1, 1, &[0, 0, 0, 255], Layout::Cmyk).expect("grey").pixels(), &[0]);
        assert!(matches!(to_grey(2, 2, &[0; 3], Layout::Grey), Err(OcrError::Malformed(_))));
        assert!(matches!(Raster::from_grey(2, 2, vec![0; 5]), Err(OcrError::Malformed(_))));
    }
}
