//! Line plots for reports, written as SVG (for documents) and PNG (for quick viewing).
//!
//! Text is rendered with the DejaVu Sans font bundled in `assets/fonts/` (registered with
//! plotters' `ab_glyph` backend), so PNG output does not depend on the fonts installed on
//! the machine. Both files are written atomically: the SVG through [`crate::fsutil`], the
//! PNG by rendering to a temporary sibling and renaming it over the target.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::ReportError;

/// Width and height of every plot, in pixels (SVG user units).
pub const PLOT_SIZE: (u32, u32) = (1000, 600);

const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Tableau 10: distinct, colour-blind friendly colours, cycled over the series.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Colour of the horizontal reference lines (dashed, so they differ from the series).
const HLINE_COLORS: [RGBColor; 3] = [
    RGBColor(40, 40, 40),
    RGBColor(120, 120, 120),
    RGBColor(180, 60, 60),
];

/// One curve of a plot. Points with a NaN or infinite coordinate are skipped (and, on a
/// log-scale y axis, points with y <= 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// `(x, y)` pairs, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

/// A line plot: one line with markers per series, a legend, a grid.
#[derive(Debug, Clone, Copy)]
pub struct LinePlot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    /// Logarithmic y axis (base 10).
    pub log_y: bool,
    /// Logarithmic x axis (base 10), e.g. for catalog sizes 100 … 8000.
    pub log_x: bool,
    /// Fixed y range `(min, max)`; `None` fits the data and the reference lines.
    /// Parts of lines outside the range are clipped.
    pub y_range: Option<(f64, f64)>,
    /// Horizontal reference lines (label, y), e.g. the float baseline.
    pub hlines: &'a [(String, f64)],
    /// Names of a categorical x axis: the tick at integer x = k reads `x_names[k]`
    /// (empty: numeric ticks).
    pub x_names: &'a [String],
}

/// Writes `<stem>.svg` and `<stem>.png` (1000×600), each atomically. Parent directories
/// are created. A plot without drawable data (no series, or only NaN points) gives an
/// empty frame with the title and axis labels, not an error.
pub fn line_plot(stem: &Path, plot: &LinePlot) -> Result<(), ReportError> {
    register_font_once();
    let svg_path = with_extension(stem, "svg");
    let png_path = with_extension(stem, "png");
    let layout = Layout::new(plot).map_err(|reason| ReportError::Plot {
        path: svg_path.clone(),
        reason,
    })?;

    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| ReportError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }

    // SVG: render to memory, then write atomically.
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT_SIZE).into_drawing_area();
        render(root, plot, &layout).map_err(|reason| ReportError::Plot {
            path: svg_path.clone(),
            reason,
        })?;
    }
    crate::fsutil::write_atomic(&svg_path, svg.as_bytes()).map_err(|source| ReportError::Io {
        path: svg_path.clone(),
        source,
    })?;

    // PNG: the bitmap backend encodes to a path (the format follows the extension), so
    // render to a `.png` temporary sibling, sync it and rename it over the target.
    let tmp = png_temp_path(&png_path);
    let result = (|| {
        {
            let root = BitMapBackend::new(&tmp, PLOT_SIZE).into_drawing_area();
            render(root, plot, &layout).map_err(|reason| ReportError::Plot {
                path: png_path.clone(),
                reason,
            })?;
        }
        let io_err = |source| ReportError::Io {
            path: png_path.clone(),
            source,
        };
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err)?;
        fs::rename(&tmp, &png_path).map_err(io_err)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn register_font_once() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The font is compiled in and known to be valid; a failure here is a build defect.
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            panic!("bundled font assets/fonts/DejaVuSans.ttf is not a valid font");
        }
    });
}

/// `stem` with `.ext` appended (not replacing: `acc_vs_bits.n8` keeps its dot part).
fn with_extension(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Same directory as `path` (atomic rename), hidden, and still ending in `.png`.
fn png_temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp.png", std::process::id()))
}

/// Where a legend goes (the corner of the plotting area with the fewest points).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Corner {
    UpperRight,
    UpperLeft,
    LowerRight,
    LowerLeft,
}

impl Corner {
    fn position(self) -> SeriesLabelPosition {
        match self {
            Corner::UpperRight => SeriesLabelPosition::UpperRight,
            Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
            Corner::LowerRight => SeriesLabelPosition::LowerRight,
            Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
        }
    }
}

/// The data as drawn: filtered series split into clipped runs, axis ranges, legend corner.
#[derive(Debug)]
struct Layout {
    /// Per series: connected runs of points inside the y range.
    runs: Vec<Vec<Vec<(f64, f64)>>>,
    /// Per series: the points inside the y range (markers).
    points: Vec<Vec<(f64, f64)>>,
    x: (f64, f64),
    y: (f64, f64),
    /// Number of x labels requested from plotters (integer steps for small integer axes).
    x_labels: usize,
    empty: bool,
    legend: Corner,
}

impl Layout {
    fn new(plot: &LinePlot) -> Result<Layout, String> {
        let log = plot.log_y;
        let usable = |&(x, y): &(f64, f64)| {
            x.is_finite() && y.is_finite() && (!log || y > 0.0) && (!plot.log_x || x > 0.0)
        };
        let series: Vec<Vec<(f64, f64)>> = plot
            .series
            .iter()
            .map(|s| s.points.iter().copied().filter(usable).collect())
            .collect();
        let hlines: Vec<f64> = plot
            .hlines
            .iter()
            .map(|(_, y)| *y)
            .filter(|y| y.is_finite() && (!log || *y > 0.0))
            .collect();
        let all = || series.iter().flatten();
        let empty = all().next().is_none();

        // x range: the data, padded; integer data gets integer ticks.
        let (xmin, xmax) = min_max(all().map(|p| p.0)).unwrap_or((0.0, 1.0));
        let integer_x = !empty && all().all(|p| p.0 == p.0.round() && p.0.abs() < 1e15);
        let (x, x_labels) = if plot.log_x {
            let factor = if xmax > xmin {
                10f64.powf(0.04 * (xmax / xmin).log10())
            } else {
                2.0
            };
            let (lo, hi) = if empty { (1.0, 10.0) } else { (xmin, xmax) };
            ((lo / factor, hi * factor), 10)
        } else if integer_x && xmax - xmin <= 20.0 {
            ((xmin - 0.5, xmax + 0.5), (xmax - xmin) as usize + 1)
        } else {
            let pad = if xmax > xmin {
                0.03 * (xmax - xmin)
            } else {
                0.5 * xmin.abs().max(1.0)
            };
            ((xmin - pad, xmax + pad), 10)
        };

        // y range: fixed, or the data and reference lines, padded.
        let y = match plot.y_range {
            Some((lo, hi)) => {
                if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                    return Err(format!(
                        "invalid y range ({lo}, {hi}): need finite min < max"
                    ));
                }
                if log && lo <= 0.0 {
                    return Err(format!(
                        "y range ({lo}, {hi}) is not positive: log scale needs min > 0"
                    ));
                }
                (lo, hi)
            }
            None => {
                let ys = all().map(|p| p.1).chain(hlines.iter().copied());
                match (min_max(ys), log) {
                    (None, false) => (0.0, 1.0),
                    (None, true) => (0.1, 10.0),
                    (Some((lo, hi)), false) => {
                        let pad = if hi > lo {
                            0.05 * (hi - lo)
                        } else {
                            0.5 * lo.abs().max(1e-9)
                        };
                        (lo - pad, hi + pad)
                    }
                    (Some((lo, hi)), true) => {
                        let factor = if hi > lo {
                            10f64.powf(0.05 * (hi / lo).log10())
                        } else {
                            2.0
                        };
                        (lo / factor, hi * factor)
                    }
                }
            }
        };

        // Clip to the y range in the drawn (possibly logarithmic) coordinate.
        let t = |v: f64| if log { v.log10() } else { v };
        let inv = |v: f64| if log { 10f64.powf(v) } else { v };
        let (ty0, ty1) = (t(y.0), t(y.1));
        let runs = series
            .iter()
            .map(|pts| clip_runs(pts, ty0, ty1, &t, &inv))
            .collect();
        let points: Vec<Vec<(f64, f64)>> = series
            .iter()
            .map(|pts| {
                pts.iter()
                    .copied()
                    .filter(|p| p.1 >= y.0 && p.1 <= y.1)
                    .collect()
            })
            .collect();

        // Legend corner: the one with the fewest points and reference lines nearby.
        let tx = |v: f64| if plot.log_x { v.log10() } else { v };
        let norm = |(px, py): (f64, f64)| {
            (
                (tx(px) - tx(x.0)) / (tx(x.1) - tx(x.0)),
                (t(py) - ty0) / (ty1 - ty0),
            )
        };
        let corners = [
            Corner::UpperRight,
            Corner::UpperLeft,
            Corner::LowerRight,
            Corner::LowerLeft,
        ];
        let crowding = |c: Corner| {
            let right = matches!(c, Corner::UpperRight | Corner::LowerRight);
            let upper = matches!(c, Corner::UpperRight | Corner::UpperLeft);
            let in_x = |u: f64| if right { u >= 0.6 } else { u <= 0.4 };
            let in_y = |v: f64| if upper { v >= 0.6 } else { v <= 0.4 };
            let pts = points
                .iter()
                .flatten()
                .filter(|&&p| {
                    let (u, v) = norm(p);
                    in_x(u) && in_y(v)
                })
                .count();
            let lines = hlines.iter().filter(|&&h| in_y(norm((x.0, h)).1)).count();
            pts + 3 * lines
        };
        let legend = corners
            .into_iter()
            .min_by_key(|&c| crowding(c))
            .unwrap_or(Corner::UpperRight);

        Ok(Layout {
            runs,
            points,
            x,
            y,
            x_labels,
            empty,
            legend,
        })
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Splits a polyline into runs inside `lo <= t(y) <= hi`, cutting segments at the border
/// (interpolating in the transformed coordinate, where the drawn lines are straight).
fn clip_runs(
    pts: &[(f64, f64)],
    lo: f64,
    hi: f64,
    t: &dyn Fn(f64) -> f64,
    inv: &dyn Fn(f64) -> f64,
) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let inside = |v: f64| v >= lo && v <= hi;
    if let Some(&first) = pts.first() {
        if inside(t(first.1)) {
            current.push(first);
        }
    }
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (ta, tb) = (t(a.1), t(b.1));
        // Parametric clip of the segment to the band [lo, hi].
        let (mut s0, mut s1) = (0.0f64, 1.0f64);
        let d = tb - ta;
        if d == 0.0 {
            if !inside(ta) {
                s0 = 1.0;
                s1 = 0.0;
            }
        } else {
            let (e0, e1) = ((lo - ta) / d, (hi - ta) / d);
            let (e0, e1) = if e0 < e1 { (e0, e1) } else { (e1, e0) };
            s0 = s0.max(e0);
            s1 = s1.min(e1);
        }
        if s0 > s1 {
            // Entirely outside: close the current run.
            if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
            continue;
        }
        let at = |s: f64| (a.0 + s * (b.0 - a.0), inv(ta + s * d));
        if s0 > 0.0 {
            if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
            current.push(at(s0));
        } else if current.is_empty() {
            current.push(a);
        }
        if s1 < 1.0 {
            current.push(at(s1));
            runs.push(std::mem::take(&mut current));
        } else {
            current.push(b);
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// Tick label: integers without decimals, otherwise up to 4 significant digits.
fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a < 1e-12 {
        return "0".to_string();
    }
    if a < 1e15 && (v - v.round()).abs() <= 1e-9 * a.max(1.0) {
        return if a >= 1e6 {
            format!("{v:.0e}")
        } else {
            format!("{v:.0}")
        };
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 8) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

fn render<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    plot: &LinePlot,
    layout: &Layout,
) -> Result<(), String> {
    // Log coordinates are built only for the axes that are logarithmic (their ranges are > 0).
    let (x, y) = (layout.x.0..layout.x.1, layout.y.0..layout.y.1);
    let lin = |r: std::ops::Range<f64>| -> RangedCoordf64 { r.into() };
    let log = |r: std::ops::Range<f64>| -> LogCoord<f64> { r.log_scale().into() };
    match (plot.log_x, plot.log_y) {
        (false, false) => draw_chart(root, plot, layout, lin(x), lin(y)),
        (false, true) => draw_chart(root, plot, layout, lin(x), log(y)),
        (true, false) => draw_chart(root, plot, layout, log(x), lin(y)),
        (true, true) => draw_chart(root, plot, layout, log(x), log(y)),
    }
}

fn draw_chart<DB, X, Y>(
    root: DrawingArea<DB, Shift>,
    plot: &LinePlot,
    layout: &Layout,
    x: X,
    y: Y,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(plot.title, (FONT, 28))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)
        .map_err(e)?;

    let x_fmt = |v: &f64| {
        let k = v.round();
        match plot.x_names.get(k as usize) {
            Some(name) if k >= 0.0 && (v - k).abs() < 1e-9 => name.clone(),
            _ if !plot.x_names.is_empty() => String::new(),
            _ => fmt_tick(*v),
        }
    };
    let y_fmt = |v: &f64| fmt_tick(*v);
    chart
        .configure_mesh()
        .x_desc(plot.x_label)
        .y_desc(plot.y_label)
        .x_labels(layout.x_labels)
        .y_labels(10)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .axis_desc_style((FONT, 20))
        .label_style((FONT, 16))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(e)?;

    if layout.empty {
        let (w, h) = chart.plotting_area().dim_in_pixel();
        let style = TextStyle::from((FONT, 22).into_font())
            .color(&RGBColor(120, 120, 120))
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ));
        chart
            .plotting_area()
            .strip_coord_spec()
            .draw_text("no data", &style, (w as i32 / 2, h as i32 / 2))
            .map_err(e)?;
    }

    for (i, (label, value)) in plot.hlines.iter().enumerate() {
        let usable = value.is_finite() && (!plot.log_y || *value > 0.0);
        if !usable || *value < layout.y.0 || *value > layout.y.1 {
            continue;
        }
        let color = HLINE_COLORS[i % HLINE_COLORS.len()];
        let style = color.stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(layout.x.0, *value), (layout.x.1, *value)],
                10,
                6,
                style,
            ))
            .map_err(e)?
            .label(label.as_str())
            .legend(move |(lx, ly)| {
                EmptyElement::at((lx, ly))
                    + PathElement::new(vec![(-4, 0), (4, 0)], style)
                    + PathElement::new(vec![(10, 0), (18, 0)], style)
            });
    }

    for (i, s) in plot.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line = color.stroke_width(2);
        let fill = color.filled();
        let anno = chart
            .draw_series(
                layout.runs[i]
                    .iter()
                    .map(|run| PathElement::new(run.clone(), line)),
            )
            .map_err(e)?;
        anno.label(s.name.as_str());
        let pts = layout.points[i].iter().copied();
        // One marker shape per series (circle, triangle, square, cross), so series stay
        // apart in grayscale prints too. Each shape is its own element type.
        let sample = move |(lx, ly): (i32, i32)| {
            EmptyElement::at((lx, ly)) + PathElement::new(vec![(-4, 0), (18, 0)], line)
        };
        match marker_shape(i) {
            0 => {
                anno.legend(move |c| sample(c) + Circle::new((7, 0), 4, fill));
                let m = pts.map(|p| EmptyElement::at(p) + Circle::new((0, 0), 4, fill));
                chart.draw_series(m).map_err(e)?;
            }
            1 => {
                anno.legend(move |c| sample(c) + TriangleMarker::new((7, 0), 6, fill));
                let m = pts.map(|p| EmptyElement::at(p) + TriangleMarker::new((0, 0), 6, fill));
                chart.draw_series(m).map_err(e)?;
            }
            2 => {
                anno.legend(move |c| sample(c) + Rectangle::new([(3, -4), (11, 4)], fill));
                let m = pts.map(|p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], fill));
                chart.draw_series(m).map_err(e)?;
            }
            _ => {
                anno.legend(move |c| sample(c) + Cross::new((7, 0), 5, line));
                let m = pts.map(|p| EmptyElement::at(p) + Cross::new((0, 0), 5, line));
                chart.draw_series(m).map_err(e)?;
            }
        }
    }

    if !plot.series.is_empty() || !plot.hlines.is_empty() {
        chart
            .configure_series_labels()
            .position(layout.legend.position())
            .margin(12)
            .legend_area_size(28)
            .label_font((FONT, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// Index of the marker shape of series `i`; after a full palette cycle the shapes shift,
/// so series that share a colour still differ.
fn marker_shape(i: usize) -> usize {
    (i / PALETTE.len() + i) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

    fn series(name: &str, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.to_string(),
            points,
        }
    }

    fn plot<'a>(title: &'a str, series: &'a [Series], hlines: &'a [(String, f64)]) -> LinePlot<'a> {
        LinePlot {
            title,
            x_label: "n_bits",
            y_label: "accuracy",
            series,
            log_y: false,
            log_x: false,
            y_range: None,
            hlines,
            x_names: &[],
        }
    }

    fn check_outputs(stem: &Path) -> (String, Vec<u8>) {
        let svg = fs::read_to_string(with_extension(stem, "svg")).unwrap();
        let png = fs::read(with_extension(stem, "png")).unwrap();
        assert!(png.starts_with(PNG_MAGIC), "not a PNG");
        let dir = stem.parent().unwrap();
        let leftovers: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        (svg, png)
    }

    #[test]
    fn writes_svg_and_png_with_title_and_legend() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("sub/accuracy_vs_bits");
        let s = [
            series(
                "top-1 (clear)",
                (2..=12).map(|b| (b as f64, 1.0 - 0.5f64.powi(b))).collect(),
            ),
            series(
                "top-1 (FHE)",
                (2..=12)
                    .map(|b| (b as f64, 0.97 - 0.6f64.powi(b)))
                    .collect(),
            ),
        ];
        let h = [("float baseline".to_string(), 0.99)];
        line_plot(&stem, &plot("Accuracy vs quantization bits", &s, &h)).unwrap();
        let (svg, png) = check_outputs(&stem);
        assert!(svg.contains("Accuracy vs quantization bits"));
        assert!(svg.contains("top-1 (clear)") && svg.contains("top-1 (FHE)"));
        assert!(svg.contains("float baseline"));
        assert!(svg.contains("n_bits") && svg.contains("accuracy"));
        assert!(
            png.len() > 8_000,
            "PNG only {} bytes: text not rendered?",
            png.len()
        );
        // Overwriting an existing plot works too.
        line_plot(&stem, &plot("Second version", &s, &h)).unwrap();
        let (svg, _) = check_outputs(&stem);
        assert!(svg.contains("Second version"));
    }

    #[test]
    fn log_scale_from_hundredth_to_hundred() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("latency");
        let s = [
            series(
                "keygen",
                vec![(2.0, 0.01), (4.0, 0.1), (8.0, 1.0), (12.0, 100.0)],
            ),
            series(
                "score",
                vec![(2.0, 0.02), (4.0, 0.5), (8.0, 5.0), (12.0, 60.0)],
            ),
        ];
        let mut p = plot("Latency", &s, &[]);
        p.log_y = true;
        p.y_label = "seconds";
        line_plot(&stem, &p).unwrap();
        let (svg, png) = check_outputs(&stem);
        assert!(svg.contains("Latency") && svg.contains("keygen"));
        assert!(png.len() > 8_000);

        // Fixed log range; non-positive values are skipped, not fatal.
        let s = [series(
            "x",
            vec![(1.0, 0.0), (2.0, -1.0), (3.0, 0.5), (4.0, 1e4)],
        )];
        p.series = &s;
        p.y_range = Some((0.01, 100.0));
        line_plot(&stem, &p).unwrap();
        check_outputs(&stem);
    }

    #[test]
    fn log_x_spans_catalog_sizes_and_skips_non_positive_x() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("scale");
        let s = [series(
            "ms",
            vec![
                (0.0, 1.0),
                (100.0, 1.5),
                (400.0, 3.4),
                (2000.0, 11.7),
                (8000.0, 45.0),
            ],
        )];
        let mut p = plot("Latency vs catalog", &s, &[]);
        p.log_x = true;
        p.log_y = true;
        let layout = Layout::new(&p).unwrap();
        assert_eq!(
            layout.points[0].len(),
            4,
            "x = 0 has no place on a log axis"
        );
        assert!(layout.x.0 > 0.0 && layout.x.0 < 100.0 && layout.x.1 > 8000.0);
        line_plot(&stem, &p).unwrap();
        let (svg, _) = check_outputs(&stem);
        assert!(svg.contains("1000"), "decade ticks on the size axis");
        p.log_y = false;
        line_plot(&stem, &p).unwrap();
    }

    #[test]
    fn empty_and_nan_input_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("empty");
        line_plot(&stem, &plot("Nothing", &[], &[])).unwrap();
        let (svg, _) = check_outputs(&stem);
        assert!(svg.contains("Nothing"));

        let s = [
            series(
                "all nan",
                vec![(f64::NAN, 1.0), (2.0, f64::NAN), (3.0, f64::INFINITY)],
            ),
            series("no points", vec![]),
        ];
        line_plot(&stem, &plot("NaN only", &s, &[])).unwrap();
        let (svg, _) = check_outputs(&stem);
        assert!(svg.contains("all nan") && svg.contains("no points"));

        let nan_line = [("nan line".to_string(), f64::NAN)];
        let mut p = plot("NaN log", &s, &nan_line);
        p.log_y = true;
        line_plot(&stem, &p).unwrap();

        // A single point and a constant series give a non-degenerate range.
        let s = [series("one", vec![(5.0, 0.0), (f64::NAN, 3.0)])];
        line_plot(&stem, &plot("Single point", &s, &[])).unwrap();
        check_outputs(&stem);
    }

    #[test]
    fn invalid_y_range_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("bad");
        let s = [series("a", vec![(1.0, 1.0)])];
        let mut p = plot("Bad", &s, &[]);
        p.y_range = Some((1.0, 1.0));
        let err = line_plot(&stem, &p).unwrap_err().to_string();
        assert!(err.contains("bad.svg") && err.contains("y range"), "{err}");
        p.y_range = Some((0.0, 1.0));
        p.log_y = true;
        let err = line_plot(&stem, &p).unwrap_err().to_string();
        assert!(err.contains("log scale"), "{err}");
        assert!(!with_extension(&stem, "svg").exists());
    }

    #[test]
    fn lines_are_clipped_to_a_fixed_y_range() {
        let pts = [(0.0, 0.5), (1.0, 2.0), (2.0, 0.5), (3.0, 0.7)];
        let id = |v: f64| v;
        let runs = clip_runs(&pts, 0.0, 1.0, &id, &id);
        assert_eq!(runs.len(), 2);
        let close = |a: &[(f64, f64)], b: &[(f64, f64)]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(p, q)| (p.0 - q.0).abs() < 1e-12 && (p.1 - q.1).abs() < 1e-12)
        };
        assert!(close(&runs[0], &[(0.0, 0.5), (1.0 / 3.0, 1.0)]), "{runs:?}");
        assert!(
            close(&runs[1], &[(5.0 / 3.0, 1.0), (2.0, 0.5), (3.0, 0.7)]),
            "{runs:?}"
        );
        assert!(clip_runs(&[(0.0, 5.0), (1.0, 6.0)], 0.0, 1.0, &id, &id).is_empty());
        assert_eq!(
            clip_runs(&[(0.0, 0.5)], 0.0, 1.0, &id, &id),
            vec![vec![(0.0, 0.5)]]
        );
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(fmt_tick(4.0), "4");
        assert_eq!(fmt_tick(0.30000000000000004), "0.3");
        assert_eq!(fmt_tick(0.01), "0.01");
        assert_eq!(fmt_tick(-0.0), "0");
        assert_eq!(fmt_tick(1e-5), "1.00e-5");
        assert_eq!(fmt_tick(12.5), "12.5");
    }

    /// Writes sample plots to `$FHE_SHAZAM_PLOT_DEMO` for a visual check (skipped otherwise).
    #[test]
    fn demo_plots_for_visual_check() {
        let Ok(dir) = std::env::var("FHE_SHAZAM_PLOT_DEMO") else {
            return;
        };
        let dir = PathBuf::from(dir);
        let s: Vec<Series> = ["top-1", "top-3", "top-5", "FHE top-1", "chunk acc"]
            .iter()
            .enumerate()
            .map(|(k, n)| {
                series(
                    n,
                    (2..=12)
                        .map(|b| (b as f64, 0.95 - 0.1 * k as f64 - 0.7 * 0.55f64.powi(b - 1)))
                        .collect(),
                )
            })
            .collect();
        let h = [
            ("float baseline".to_string(), 0.97),
            ("chance".to_string(), 0.05),
        ];
        line_plot(
            &dir.join("demo_linear"),
            &plot("Accuracy vs quantization bits", &s, &h),
        )
        .unwrap();
        let ls = [
            series(
                "keygen",
                vec![(2.0, 0.01), (4.0, 0.1), (8.0, 1.0), (12.0, 100.0)],
            ),
            series(
                "score",
                vec![(2.0, 0.02), (4.0, 0.5), (8.0, 5.0), (12.0, 60.0)],
            ),
        ];
        let mut p = plot("Latency (log scale)", &ls, &[]);
        p.log_y = true;
        p.y_label = "seconds";
        line_plot(&dir.join("demo_log"), &p).unwrap();
        line_plot(&dir.join("demo_empty"), &plot("Empty", &[], &[])).unwrap();
        let mut p = plot("Clipped to [0.5, 1]", &s, &h);
        p.y_range = Some((0.5, 1.0));
        line_plot(&dir.join("demo_clipped"), &p).unwrap();
    }
}
