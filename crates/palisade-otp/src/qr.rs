//! QR codes of `otpauth://` URIs (feature `qr`): SVG for web pages, PNG for images and e-mail,
//! and Unicode text for terminals.
//!
//! Built on `qrcode` (without its `image` dependency: it renders SVG and text by itself) and
//! `png` from image-rs for the PNG encoding; neither is compiled without the feature. Error
//! correction level M, a four-module quiet zone, black on white.
//!
//! # Errors
//! [`OtpError::Qr`] when the URI is too long for a QR code (issuer and account names of
//! thousands of characters) or the PNG encoder fails.
//!
//! # Security
//! The picture encodes the secret. Outputs are zeroizing buffers; serve them with
//! `Cache-Control: no-store`. The encoder's intermediate module matrix is not wiped (the
//! `qrcode` crate has no zeroize support).

use qrcode::render::{svg, unicode};
use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

use crate::OtpError;
use crate::uri::OtpauthUri;

/// Quiet zone in modules, as the QR specification requires.
const QUIET: usize = 4;

fn encode(uri: &OtpauthUri) -> Result<QrCode, OtpError> {
    QrCode::with_error_correction_level(uri.expose_uri().as_bytes(), EcLevel::M).map_err(|e| {
        OtpError::Qr {
            reason: e.to_string(),
        }
    })
}

/// An SVG document at least `min_px` pixels wide.
///
/// # Errors
/// [`OtpError::Qr`].
pub fn to_svg(uri: &OtpauthUri, min_px: u32) -> Result<Zeroizing<String>, OtpError> {
    let code = encode(uri)?;
    Ok(Zeroizing::new(
        code.render::<svg::Color<'_>>()
            .min_dimensions(min_px, min_px)
            .quiet_zone(true)
            .build(),
    ))
}

/// Text for a terminal with a dark background: two modules per character cell (`▀`, `▄`, `█`),
/// light modules drawn, so scanners see dark-on-light.
///
/// # Errors
/// [`OtpError::Qr`].
pub fn to_terminal(uri: &OtpauthUri) -> Result<Zeroizing<String>, OtpError> {
    let code = encode(uri)?;
    Ok(Zeroizing::new(
        code.render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Light)
            .light_color(unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    ))
}

/// An 8-bit grayscale PNG with `px_per_module` pixels per module (clamped to 1..=32).
///
/// # Errors
/// [`OtpError::Qr`].
pub fn to_png(uri: &OtpauthUri, px_per_module: u32) -> Result<Zeroizing<Vec<u8>>, OtpError> {
    let code = encode(uri)?;
    let scale = usize::try_from(px_per_module.clamp(1, 32)).unwrap_or(1);
    let modules = code.width();
    let colors = code.to_colors();
    let side_modules = modules.saturating_add(2 * QUIET);
    let side = side_modules.saturating_mul(scale);
    let mut pixels = Zeroizing::new(vec![0xffu8; side.saturating_mul(side)]);
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = ((i % modules + QUIET) * scale, (i / modules + QUIET) * scale);
        for row in y..y + scale {
            let start = row * side + x;
            if let Some(run) = pixels.get_mut(start..start + scale) {
                run.fill(0);
            }
        }
    }
    let side32 = u32::try_from(side).map_err(|_| OtpError::Qr {
        reason: "image too large".into(),
    })?;
    let png_error = |e: png::EncodingError| OtpError::Qr {
        reason: e.to_string(),
    };
    let mut out = Zeroizing::new(Vec::new());
    {
        let mut encoder = png::Encoder::new(&mut *out, side32, side32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&pixels).map_err(png_error)?;
        writer.finish().map_err(png_error)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri() -> OtpauthUri {
        OtpauthUri::parse(
            "otpauth://totp/ACME:ann@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME",
        )
        .unwrap()
    }

    #[test]
    fn svg_terminal_and_png() {
        let svg = to_svg(&uri(), 200).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg") && svg.trim_end().ends_with("</svg>")
        );
        let text = to_terminal(&uri()).unwrap();
        assert!(text.lines().count() > 10);
        assert!(text.contains('█') || text.contains('▀'));
        let png = to_png(&uri(), 4).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Decode it back and check the size and the quiet zone.
        let decoder = png::Decoder::new(std::io::Cursor::new(png.to_vec()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let code = encode(&uri()).unwrap();
        assert_eq!(info.width as usize, (code.width() + 8) * 4);
        assert!(buf[..info.width as usize * 16].iter().all(|&p| p == 0xff));
        assert!(buf.contains(&0));
    }

    #[test]
    fn oversized_uris_are_errors() {
        // The longest names, every byte percent-encoded: past a QR code's capacity.
        let name = "(".repeat(crate::uri::MAX_NAME_LEN);
        let uri = OtpauthUri::totp(
            crate::OtpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
            &crate::TotpParams::new(),
            Some(&name),
            &name,
        )
        .unwrap();
        assert!(matches!(to_svg(&uri, 100), Err(OtpError::Qr { .. })));
    }
}
