//! The one font plots use: DejaVu Sans, compiled into the crate and registered with plotters' ab_glyph
//! text renderer, so PNG text looks the same on every machine and needs no system fonts (font-kit is
//! not linked at all). SVG files name the family `sans-serif` and leave glyphs to the viewer.

use std::sync::Once;

use plotters::style::FontStyle;

/// DejaVu Sans 2.37 (Bitstream Vera licence; see `assets/DejaVuSans-LICENSE.txt`).
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The family name every text style of this crate uses.
pub const FAMILY: &str = "sans-serif";

static REGISTER: Once = Once::new();

/// Registers the embedded font under the generic family names; idempotent and thread-safe.
pub fn ensure_registered() {
    REGISTER.call_once(|| {
        for family in [FAMILY, "serif", "monospace"] {
            for style in [
                FontStyle::Normal,
                FontStyle::Bold,
                FontStyle::Italic,
                FontStyle::Oblique,
            ] {
                if plotters::style::register_font(family, style, DEJAVU_SANS).is_err() {
                    unreachable!("the embedded DejaVu Sans parses");
                }
            }
        }
    });
}
