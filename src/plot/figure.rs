use anyhow::{Context, Result};
use resvg::{tiny_skia, usvg};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// A finished figure: an SVG document with its pixel size.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    svg: String,
    width: u32,
    height: u32,
}

impl Figure {
    /// Wrap an SVG document of the given size (e.g. a gridworld picture).
    pub fn from_svg(svg: impl Into<String>, width: u32, height: u32) -> Self {
        Self {
            svg: svg.into(),
            width,
            height,
        }
    }

    /// A figure from an SVG document, reading its size from the root element.
    pub fn from_svg_document(svg: impl Into<String>) -> Result<Self> {
        let svg = svg.into();
        let tree = usvg::Tree::from_str(&svg, &usvg::Options::default()).context("parsing SVG")?;
        let size = tree.size().to_int_size();
        Ok(Self::from_svg(svg, size.width(), size.height()))
    }

    /// The SVG source.
    pub fn svg(&self) -> &str {
        &self.svg
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Place figures side by side (`columns` per row), aligned to the top-left.
    pub fn grid(figures: &[Figure], columns: usize) -> Figure {
        let columns = columns.max(1);
        let mut out = String::new();
        let mut y = 0u32;
        let mut width = 0u32;
        for row in figures.chunks(columns) {
            let mut x = 0u32;
            let mut row_h = 0u32;
            for f in row {
                let inner = strip_xml_declaration(&f.svg);
                // A nested <svg> establishes its own viewport at (x, y).
                out.push_str(&format!(r#"<g transform="translate({x},{y})">{inner}</g>"#));
                x += f.width;
                row_h = row_h.max(f.height);
            }
            width = width.max(x);
            y += row_h;
        }
        let svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" viewBox="0 0 {width} {y}"><rect width="{width}" height="{y}" fill="white"/>{out}</svg>"#
        );
        Figure::from_svg(svg, width, y)
    }

    /// Write the SVG document; the error names the file.
    pub fn save_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        crate::io::write_atomic(path, self.svg.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Rasterise to PNG bytes with resvg (system fonts, DejaVu Sans preferred).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let opt = usvg::Options {
            fontdb: font_database(),
            ..Default::default()
        };
        let tree = usvg::Tree::from_str(&self.svg, &opt).context("parsing the figure's SVG")?;
        let size = tree.size().to_int_size();
        check_png_size(size.width(), size.height())?;
        let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
            .context("figure has zero width or height")?;
        pixmap.fill(tiny_skia::Color::WHITE);
        resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
        pixmap.encode_png().context("encoding PNG")
    }

    /// Render and write a PNG; the error names the file.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let png = self.to_png()?;
        crate::io::write_atomic(path, &png).with_context(|| format!("writing {}", path.display()))
    }

    /// evcxr rich output: the figure shows inline as `image/svg+xml`.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT",
            strip_xml_declaration(&self.svg)
        );
    }
}

/// The most pixels [`Figure::to_png`] renders: 8192×8192 = 67,108,864, i.e.
/// 256 MiB of RGBA canvas (4 bytes a pixel) before PNG encoding. The project's
/// figures are below 2000×2000; an SVG that declares 100000×100000 would need
/// 40 GB and abort the process on allocation.
pub const MAX_PNG_PIXELS: u64 = 8192 * 8192;

/// An error unless a `width`×`height` canvas is within [`MAX_PNG_PIXELS`].
fn check_png_size(width: u32, height: u32) -> Result<()> {
    let pixels = width as u64 * height as u64;
    if pixels > MAX_PNG_PIXELS {
        anyhow::bail!(
            "the SVG declares {width}×{height} = {pixels} pixels; PNG rendering is capped at \
             {MAX_PNG_PIXELS} pixels (8192×8192: 4 bytes a pixel = 256 MiB of memory). \
             Give the <svg> element a smaller width and height (its viewBox keeps the drawing)"
        );
    }
    Ok(())
}

fn strip_xml_declaration(svg: &str) -> &str {
    let s = svg.trim_start();
    if s.starts_with("<?xml") {
        s.find("?>").map(|i| s[i + 2..].trim_start()).unwrap_or(s)
    } else {
        s
    }
}

fn font_database() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_system_fonts();
        db.set_sans_serif_family("DejaVu Sans");
        Arc::new(db)
    })
    .clone()
}

impl From<gridworld::GridView> for Figure {
    fn from(view: gridworld::GridView) -> Self {
        Figure::from_svg_document(view.to_svg()).expect("GridView writes valid SVG")
    }
}
