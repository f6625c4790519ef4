//! Photo attachments: the type is read from the content, never the name;
//! the image is decoded within limits (a small file can claim a huge
//! picture), turned upright, and encoded afresh, which drops EXIF, GPS and
//! every other piece of metadata; a JPEG thumbnail is made beside it.

use std::{io::Cursor, path::Path};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::error::BoardError;

/// Largest accepted upload.
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;
/// Largest picture, in pixels per side.
const MAX_SIDE: u32 = 8000;
/// Thumbnails fit in this square.
const THUMB: u32 = 320;

/// What a stored photo is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Webp,
}

impl Kind {
    pub fn ext(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
            Kind::Webp => "webp",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Webp => "image/webp",
        }
    }

    /// The kind a file name's extension claims.
    pub fn from_ext(ext: &str) -> Option<Kind> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(Kind::Jpeg),
            "png" => Some(Kind::Png),
            "webp" => Some(Kind::Webp),
            _ => None,
        }
    }

    /// The kind a MIME type claims.
    pub fn from_mime(mime: &str) -> Option<Kind> {
        match mime {
            "image/jpeg" | "image/jpg" => Some(Kind::Jpeg),
            "image/png" => Some(Kind::Png),
            "image/webp" => Some(Kind::Webp),
            _ => None,
        }
    }
}

/// A cleaned photo and its thumbnail, ready to store.
#[derive(Debug)]
pub struct Cleaned {
    pub kind: Kind,
    pub image: Vec<u8>,
    pub thumb: Vec<u8>,
}

/// Checks and cleans an upload. `claimed` is what the name or MIME type
/// said; it must agree with the content.
pub fn clean(data: &[u8], claimed: Option<Kind>) -> Result<Cleaned, BoardError> {
    if data.len() > MAX_PHOTO_BYTES {
        return Err(BoardError::Invalid(format!(
            "Photos can be at most {} MB.",
            MAX_PHOTO_BYTES / 1024 / 1024
        )));
    }
    let actual = match image::guess_format(data) {
        Ok(ImageFormat::Jpeg) => Kind::Jpeg,
        Ok(ImageFormat::Png) => Kind::Png,
        Ok(ImageFormat::WebP) => Kind::Webp,
        _ => {
            return Err(BoardError::Invalid(
                "Only JPEG, PNG and WebP photos can be attached.".into(),
            ));
        }
    };
    if let Some(c) = claimed
        && c != actual
    {
        return Err(BoardError::Invalid(format!(
            "That file says it is {} but its content is {}.",
            c.ext().to_uppercase(),
            actual.ext().to_uppercase()
        )));
    }
    let bad =
        |e: image::ImageError| BoardError::Invalid(format!("That photo cannot be read: {e}."));
    let mut reader = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|e| BoardError::Invalid(format!("That photo cannot be read: {e}.")))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let orientation = decoder.orientation().map_err(bad)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(bad)?;
    img.apply_orientation(orientation);
    let format = match actual {
        Kind::Jpeg => ImageFormat::Jpeg,
        Kind::Png => ImageFormat::Png,
        Kind::Webp => ImageFormat::WebP,
    };
    let encode = |img: &DynamicImage, format| -> Result<Vec<u8>, BoardError> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format)
            .map_err(|e| BoardError::Internal(format!("encoding a photo: {e}")))?;
        Ok(out.into_inner())
    };
    // JPEG has no alpha channel; WebP's encoder takes 8-bit RGB(A).
    let full = match actual {
        Kind::Jpeg => DynamicImage::ImageRgb8(img.to_rgb8()),
        Kind::Webp if img.color().has_alpha() => DynamicImage::ImageRgba8(img.to_rgba8()),
        Kind::Webp => DynamicImage::ImageRgb8(img.to_rgb8()),
        Kind::Png => img.clone(),
    };
    let image = encode(&full, format)?;
    let thumb = encode(
        &DynamicImage::ImageRgb8(img.thumbnail(THUMB, THUMB).to_rgb8()),
        ImageFormat::Jpeg,
    )?;
    Ok(Cleaned {
        kind: actual,
        image,
        thumb,
    })
}

/// A stored photo's name is 32 hex digits and an extension; anything else
/// asked for is not ours.
pub fn valid_name(name: &str) -> Option<(&str, Kind, bool)> {
    let (stem, rest) = name.split_once('.')?;
    if stem.len() != 32 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match rest.strip_prefix("thumb.") {
        Some("jpg") => Some((stem, Kind::Jpeg, true)),
        Some(_) => None,
        None => Kind::from_ext(rest)
            .filter(|k| k.ext() == rest)
            .map(|k| (stem, k, false)),
    }
}

/// Writes the photo and thumbnail durably; returns the photo's file name.
pub fn store(dir: &Path, cleaned: &Cleaned) -> Result<String, BoardError> {
    use std::io::Write;
    let io = |e: std::io::Error| BoardError::Internal(format!("storing a photo: {e}"));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut rnd = [0u8; 16];
    getrandom::fill(&mut rnd).map_err(|e| BoardError::Internal(e.to_string()))?;
    let stem = hex::encode(rnd);
    let name = format!("{stem}.{}", cleaned.kind.ext());
    for (file, data) in [
        (format!("{stem}.thumb.jpg"), &cleaned.thumb),
        (name.clone(), &cleaned.image),
    ] {
        let mut f = std::fs::File::create(dir.join(&file)).map_err(io)?;
        f.write_all(data).and_then(|()| f.sync_all()).map_err(io)?;
    }
    hearth_system::sync_parent(&dir.join(&name)).map_err(io)?;
    Ok(name)
}

/// Removes a photo and its thumbnail.
pub fn remove(dir: &Path, name: &str) {
    if let Some((stem, _, false)) = valid_name(name) {
        let _ = std::fs::remove_file(dir.join(name));
        let _ = std::fs::remove_file(dir.join(format!("{stem}.thumb.jpg")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_with_text() -> Vec<u8> {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 9]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        let mut png = out.into_inner();
        // A tEXt chunk after IHDR (at byte 33) carrying "GPS" metadata.
        let chunk_data = b"Comment\0GPS 51.5N 0.1W";
        let mut chunk = (chunk_data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(b"tEXt");
        chunk.extend_from_slice(chunk_data);
        let mut crc_input = b"tEXt".to_vec();
        crc_input.extend_from_slice(chunk_data);
        chunk.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        png.splice(33..33, chunk);
        png
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for b in data {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn metadata_is_stripped_and_types_must_match() {
        let png = png_with_text();
        assert!(png.windows(3).any(|w| w == b"GPS"));
        let c = clean(&png, Some(Kind::Png)).unwrap();
        assert_eq!(c.kind, Kind::Png);
        assert!(!c.image.windows(3).any(|w| w == b"GPS"), "metadata gone");
        assert_eq!(image::guess_format(&c.thumb).unwrap(), ImageFormat::Jpeg);
        let err = clean(&png, Some(Kind::Jpeg)).unwrap_err().to_string();
        assert!(
            err.contains("says it is JPG but its content is PNG"),
            "{err}"
        );
        assert!(clean(b"GIF89a....", None).is_err());
        assert!(clean(&png[..60], Some(Kind::Png)).is_err(), "truncated");
    }

    #[test]
    fn only_our_names_are_served() {
        let stem = "0123456789abcdef0123456789abcdef";
        assert!(valid_name(&format!("{stem}.jpg")).is_some());
        assert!(valid_name(&format!("{stem}.thumb.jpg")).is_some());
        assert!(valid_name(&format!("{stem}.JPG")).is_none());
        assert!(valid_name("../../etc/passwd").is_none());
        assert!(valid_name(&format!("{stem}.thumb.png")).is_none());
    }
}
